"""Convert musicnn's pretrained MSD_musicnn to safetensors for ``mersdk.model.Musicnn``, and dump the
original TensorFlow model's outputs as test references.

musicnn 0.1.0 (PyPI; Pons & Serra 2019; ISC licence, Music Technology Group, Universitat Pompeu Fabra)
ships TensorFlow-1 checkpoints inside its wheel. This script runs once, in a throwaway venv: the SDK
never depends on TensorFlow.

    python -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install tensorflow-cpu==2.21.0 tf-keras==2.21.0 librosa==0.11.0
    /tmp/tfvenv/bin/pip install --no-deps musicnn==0.1.0      # its own pins are from 2019
    export TF_USE_LEGACY_KERAS=1
    /tmp/tfvenv/bin/python tools/convert_musicnn.py convert    # weights + licence + synthetic fixture
    PYTHONPATH=. /tmp/tfvenv/bin/python tools/convert_musicnn.py real --data ../shared/data --n 5

``convert`` writes ``mersdk/models/musicnn/MSD_musicnn.safetensors`` (float32 weights only, no Adam
slots, named as ``mersdk.model.Musicnn``'s state dict), musicnn's licence beside it, and
``tests/data/musicnn_msd_reference.npz``: a synthesized 7 s clip (int16), librosa's log-mel of it
(musicnn's own front end) and the TensorFlow model's outputs for its 3 s patches.
``real`` writes ``tests/data/musicnn_msd_real_outputs.npz``: the TensorFlow model's outputs (no audio,
no spectrogram) for the first ``--n`` clips of mirex_mm's val split, decoded by ``mersdk.audio``.

Traps of the package handled here (see shared/notes/pretrained-backbones.md): its preprocessing
computes log10(10000 x + 1) in float16, which overflows under NumPy 2 (we stay in float32); its
extractor restores the checkpoint inside a bare ``except`` (we restore outside one and check a
variable against the checkpoint); librosa >= 0.10 pads centred frames with zeros where the librosa of
2019 reflected the signal: ``ORIGINAL_PAD_MODE`` reproduces the original.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "mersdk" / "models" / "musicnn"
FIXTURE = REPO / "tests" / "data" / "musicnn_msd_reference.npz"
REAL_FIXTURE = REPO / "tests" / "data" / "musicnn_msd_real_outputs.npz"
MODEL = "MSD_musicnn"
SR, N_FFT, HOP, N_MELS, PATCH = 16000, 512, 256, 96, 187
ORIGINAL_PAD_MODE = "reflect"  # librosa 0.6-0.9 (musicnn's era) padded centred frames by reflection
OUTPUTS = ("taggram", "penultimate", "mean_pool", "max_pool")


def musicnn_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("musicnn")
    if spec is None:
        sys.exit("musicnn is not installed here: pip install --no-deps musicnn==0.1.0 (see this file's docstring)")
    return Path(spec.origin).parent


def librosa_log_mel(y: np.ndarray, pad_mode: str = ORIGINAL_PAD_MODE) -> np.ndarray:
    """musicnn's ``batch_data`` front end, (frames, 96), in float32 (the float16 cast overflows)."""
    import librosa

    mel = librosa.feature.melspectrogram(y=y, sr=SR, hop_length=HOP, n_fft=N_FFT, n_mels=N_MELS, pad_mode=pad_mode).T
    return np.log10(10000.0 * mel.astype(np.float32) + 1.0).astype(np.float32)


def patches_of(rep: np.ndarray) -> np.ndarray:
    """Non-overlapping PATCH-frame patches (as musicnn's extractor with input_overlap=False)."""
    n = rep.shape[0] // PATCH
    return np.stack([rep[i * PATCH : (i + 1) * PATCH] for i in range(n)])


def synth_clip(seconds: float = 7.0, seed: int = 0) -> np.ndarray:
    """A deterministic musical test signal: a chord progression of harmonic tones, a kick, noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = np.zeros_like(t)
    for k, root in enumerate((220.0, 174.6, 261.6, 196.0)):
        seg = (t >= k * seconds / 4) & (t < (k + 1) * seconds / 4)
        for ratio in (1.0, 1.26, 1.5):
            for h in range(1, 5):
                y[seg] += np.sin(2 * np.pi * root * ratio * h * t[seg]) / (h * 6)
    beat = np.mod(t, 0.5)
    y += 0.6 * np.sin(2 * np.pi * 60 * t) * np.exp(-beat * 30)
    y += 0.02 * rng.standard_normal(len(t))
    y = 0.5 * y / np.abs(y).max()
    return (np.round(y * 32767) / 32767).astype(np.float32)  # exactly representable as int16


class TFMusicnn:
    """The original TensorFlow graph of ``musicnn.models`` with the checkpoint restored (checked)."""

    def __init__(self, model: str = MODEL):
        import tensorflow as tf

        tf.compat.v1.disable_eager_execution()
        from musicnn import models

        self.tf = tf
        self.ckpt = str(musicnn_dir() / model) + "/"
        tf.compat.v1.reset_default_graph()
        with tf.name_scope("model"):
            self.x = tf.compat.v1.placeholder(tf.float32, [None, PATCH, N_MELS])
            self.is_training = tf.compat.v1.placeholder(tf.bool)
            y, _, _, _, _, _, mean_pool, max_pool, penultimate = models.define_model(
                self.x, self.is_training, model, 50
            )
        self.fetch = {
            "taggram": tf.nn.sigmoid(y),
            "penultimate": penultimate,
            "mean_pool": mean_pool,
            "max_pool": max_pool,
        }
        self.sess = tf.compat.v1.Session()
        self.sess.run(tf.compat.v1.global_variables_initializer())
        tf.compat.v1.train.Saver().restore(self.sess, self.ckpt)  # no bare except: a failed restore stops here
        reader = tf.compat.v1.train.NewCheckpointReader(self.ckpt)  # the prefix: its "checkpoint" file points elsewhere
        self.variables = tf.compat.v1.global_variables()
        for v in self.variables:  # every graph variable really holds the checkpoint's value
            if not np.array_equal(self.sess.run(v), reader.get_tensor(v.op.name)):
                raise RuntimeError(f"{v.op.name}: restored value differs from the checkpoint")

    def run(self, patches: np.ndarray) -> dict[str, np.ndarray]:
        out = self.sess.run(self.fetch, {self.x: patches.astype(np.float32), self.is_training: False})
        return {k: np.asarray(v, np.float32) for k, v in out.items()}

    def state_dict(self) -> dict[str, np.ndarray]:
        """The weights under ``mersdk.model.Musicnn``'s names, mapped in the graph's creation order."""
        vals = {v.op.name: self.sess.run(v) for v in self.variables}
        layer = lambda name: sorted(
            {n.rsplit("/", 1)[0] for n in vals if n.rsplit("/", 2)[-2].startswith(name)}, key=lambda n: (len(n), n)
        )  # conv2d, conv2d_1, ..., conv2d_10 in order
        convs, bns, denses = layer("conv2d"), layer("batch_normalization"), layer("dense")
        if (len(convs), len(bns), len(denses)) != (8, 11, 2):
            raise RuntimeError(
                f"unexpected graph: {len(convs)} conv, {len(bns)} batch norm, {len(denses)} dense layers"
            )
        sd: dict[str, np.ndarray] = {}

        def conv2d(dst, src):  # TF (kh, kw, in, out) -> torch (out, in, kh, kw)
            sd[f"{dst}.weight"] = vals[f"{src}/kernel"].transpose(3, 2, 0, 1)
            sd[f"{dst}.bias"] = vals[f"{src}/bias"]

        def conv1d(dst, src):  # TF (7, channels, 1, out) over (time, channels) -> torch Conv1d (out, channels, 7)
            sd[f"{dst}.weight"] = vals[f"{src}/kernel"][:, :, 0, :].transpose(2, 1, 0)
            sd[f"{dst}.bias"] = vals[f"{src}/bias"]

        def bn(dst, src):
            for a, b in (
                ("weight", "gamma"),
                ("bias", "beta"),
                ("running_mean", "moving_mean"),
                ("running_var", "moving_variance"),
            ):
                sd[f"{dst}.{a}"] = vals[f"{src}/{b}"]
            sd[f"{dst}.num_batches_tracked"] = np.array(0, np.int64)

        def dense(dst, src):
            sd[f"{dst}.weight"] = vals[f"{src}/kernel"].T
            sd[f"{dst}.bias"] = vals[f"{src}/bias"]

        bn("input_bn", bns[0])
        for i in range(2):
            conv2d(f"timbral.{i}", convs[i])
            bn(f"timbral_bn.{i}", bns[1 + i])
        for i in range(3):
            conv2d(f"temporal.{i}", convs[2 + i])
            bn(f"temporal_bn.{i}", bns[3 + i])
            conv1d(f"midend.{i}", convs[5 + i])
            bn(f"midend_bn.{i}", bns[6 + i])
        bn("pool_bn", bns[9])
        dense("dense", denses[0])
        bn("dense_bn", bns[10])
        dense("tags", denses[1])
        return {k: np.ascontiguousarray(v) for k, v in sd.items()}


def cmd_convert(args) -> None:
    from safetensors.numpy import save_file

    net = TFMusicnn(MODEL)
    sd = net.state_dict()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    tmp = OUT_DIR / f".{MODEL}.safetensors.tmp"
    save_file(
        sd,
        str(tmp),
        metadata={
            "source": "musicnn 0.1.0 (PyPI) MSD_musicnn checkpoint",
            "licence": "ISC",
            "converted_by": "tools/convert_musicnn.py",
        },
    )
    os.chmod(tmp, 0o644)
    os.replace(tmp, OUT_DIR / f"{MODEL}.safetensors")
    shutil.copyfile(musicnn_dir().parent / "musicnn-0.1.0.dist-info" / "LICENSE.md", OUT_DIR / "LICENSE.musicnn.md")
    n = sum(v.size for k, v in sd.items() if "running" not in k and "num_batches" not in k)
    print(f"{MODEL}: {n} trainable parameters, {len(sd)} tensors -> {OUT_DIR}")

    y = synth_clip()
    rep = librosa_log_mel(y)
    out = net.run(patches_of(rep))
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        FIXTURE,
        audio_int16=np.round(y * 32767).astype(np.int16),
        log_mel=rep,
        log_mel_zero_pad=librosa_log_mel(y, "constant"),
        **out,
    )
    print(f"reference outputs of {len(patches_of(rep))} patches -> {FIXTURE}")


def cmd_real(args) -> None:
    sys.path.insert(0, str(REPO))
    from mersdk.audio import load_audio
    from mersdk.training.data import load_clips

    net = TFMusicnn(MODEL)
    clips = [c for c in load_clips(args.data, "mirex_mm") if c.split == "val"][: args.n]
    out: dict[str, np.ndarray] = {}
    for c in clips:
        y = load_audio(str(c.audio_path), SR).samples
        res = net.run(patches_of(librosa_log_mel(y)))
        for k in ("taggram", "penultimate", "mean_pool"):
            out[f"{c.id}/{k}"] = res[k]
    np.savez_compressed(REAL_FIXTURE, ids=np.array([c.id for c in clips]), **out)
    print(json.dumps({"clips": [c.id for c in clips], "out": str(REAL_FIXTURE)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("convert", help="weights + licence + synthetic reference fixture").set_defaults(func=cmd_convert)
    p = sub.add_parser("real", help="TensorFlow outputs for real clips (no audio stored)")
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--n", type=int, default=5)
    p.set_defaults(func=cmd_real)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
