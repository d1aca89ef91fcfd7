"""The PyTorch port of musicnn's MSD_musicnn against the original TensorFlow model's outputs.

References come from ``tools/convert_musicnn.py`` (run once with TensorFlow in a throwaway venv):
``tests/data/musicnn_msd_reference.npz`` holds a synthesized 7 s clip, librosa's log-mel of it and the
TensorFlow outputs of its two 3 s patches; ``musicnn_msd_real_outputs.npz`` holds TensorFlow outputs
(no audio) for real clips of shared/data, checked only where that folder exists.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATA, needs_data

from mersdk.config import MUSICNN_FRONTEND, ModelConfig
from mersdk.errors import CheckpointError
from mersdk.features import log_mel
from mersdk.model import EmotionModel, Musicnn, MusicnnEncoder, load_pretrained_audio

FIXTURES = Path(__file__).parent / "data"
PATCH = 187
# float32 on both sides, different summation orders; max_pool reaches ~85, so its bound is relative
TOL = {"taggram": 1e-5, "penultimate": 1e-4, "mean_pool": 1e-4, "max_pool": 5e-4}


@pytest.fixture(scope="module")
def ref():
    return np.load(FIXTURES / "musicnn_msd_reference.npz")


@pytest.fixture(scope="module")
def net():
    torch.set_num_threads(1)
    model = EmotionModel(ModelConfig(frontend=MUSICNN_FRONTEND, audio_encoder="musicnn_msd"))
    assert load_pretrained_audio(model)
    return model.audio.backbone.eval()


def patches_of(rep):
    return np.stack([rep[i * PATCH : (i + 1) * PATCH] for i in range(rep.shape[0] // PATCH)])


def max_abs(a, b):
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())


def test_port_matches_tensorflow_on_the_same_input(net, ref):
    with torch.inference_mode():
        out = net(torch.from_numpy(patches_of(ref["log_mel"])))
    for k, tol in TOL.items():
        scale = max(1.0, float(np.abs(ref[k]).max())) if k == "max_pool" else 1.0
        assert max_abs(out[k], ref[k]) <= tol * scale, k


def test_random_weights_do_not_match(ref):
    """The comparison above can fail: an unconverted network is far from the references."""
    with torch.inference_mode():
        out = Musicnn().eval()(torch.from_numpy(patches_of(ref["log_mel"])))
    assert max_abs(out["penultimate"], ref["penultimate"]) > 0.1


def test_front_end_matches_librosa(ref):
    """Ours pads centred frames with zeros (librosa >= 0.10's default): equal to librosa's to float
    rounding. musicnn's era of librosa reflected the signal: only the first and last frame differ."""
    y = ref["audio_int16"].astype(np.float32) / 32767
    ours = log_mel(y, MUSICNN_FRONTEND).T
    assert ours.shape == ref["log_mel"].shape
    assert max_abs(ours, ref["log_mel_zero_pad"]) < 1e-4
    assert max_abs(ours[1:-1], ref["log_mel"][1:-1]) < 1e-4
    assert max_abs(ours[[0, -1]], ref["log_mel"][[0, -1]]) > 1e-2  # the edge frames really differ


def test_encoder_from_our_front_end_matches_tensorflow(net, ref):
    """Whole path (our log-mel -> patches -> port) against TensorFlow on librosa's (reflect) log-mel:
    the second patch is unaffected by the edge frame; the first differs a little through it."""
    y = ref["audio_int16"].astype(np.float32) / 32767
    mel = torch.from_numpy(log_mel(y, MUSICNN_FRONTEND))[None]
    enc = MusicnnEncoder(ModelConfig(frontend=MUSICNN_FRONTEND, audio_encoder="musicnn_msd", audio_layer="taggram"))
    enc.backbone = net
    with torch.inference_mode():
        feats, n = enc.features(mel, torch.tensor([mel.shape[-1]]))
    assert int(n[0]) == 2 and feats.shape == (1, 2, 50)
    assert max_abs(feats[0, 1], ref["taggram"][1]) < TOL["taggram"]
    assert max_abs(feats[0, 0], ref["taggram"][0]) < 0.05


@needs_data
def test_port_on_real_clips(net):
    """Real mirex_mm clips decoded by mersdk, our front end, the port; vs TensorFlow on librosa's
    log-mel of the same samples. Patches after the first see identical input up to rounding."""
    from mersdk.audio import load_audio
    from mersdk.training.data import load_clips

    path = FIXTURES / "musicnn_msd_real_outputs.npz"
    if not path.is_file():
        pytest.skip("no real-clip references (tools/convert_musicnn.py real)")
    z = np.load(path)
    clips = {c.id: c for c in load_clips(DATA, "mirex_mm")}
    worst = {}
    for cid in z["ids"][:2]:  # two clips keep the test short; the note reports all of them
        y = load_audio(str(clips[str(cid)].audio_path), 16000).samples
        with torch.inference_mode():
            out = net(torch.from_numpy(patches_of(log_mel(y, MUSICNN_FRONTEND).T)))
        for k in ("taggram", "penultimate", "mean_pool"):
            worst[k] = max(worst.get(k, 0.0), max_abs(out[k][1:], z[f"{cid}/{k}"][1:]))
    assert worst["taggram"] < 1e-4 and worst["penultimate"] < 1e-3 and worst["mean_pool"] < 1e-3, worst


def test_patches_padding_never_changes_tokens():
    """A short clip alone and in a batch beside a longer one gives the same tokens; a tail shorter than
    a patch is dropped; a clip shorter than one patch is padded with silence (one token)."""
    torch.manual_seed(0)
    cfg = ModelConfig(
        frontend=MUSICNN_FRONTEND,
        audio_encoder="musicnn_msd",
        patch_frames=40,
        d_model=32,
        n_heads=2,
        ffn_dim=64,
        n_layers=1,
    )
    model = EmotionModel(cfg).eval()
    mel = torch.rand(2, 96, 130) * 3
    lengths = torch.tensor([130, 95])
    mel[1, :, 95:] = 0
    with torch.inference_mode():
        batch = model(mel, lengths, torch.zeros(2, 1, 384), torch.zeros(2, 1, dtype=torch.bool))
        alone = model(mel[1:, :, :95], lengths[1:], torch.zeros(1, 1, 384), torch.zeros(1, 1, dtype=torch.bool))
        short = model.audio.features(mel[:1, :, :25], torch.tensor([25]))
        garbage = mel.clone()
        garbage[1, :, 95:] = 99.0  # what lies past a row's length must not matter
        batch2 = model(garbage, lengths, torch.zeros(2, 1, 384), torch.zeros(2, 1, dtype=torch.bool))
    for k in ("quadrant", "cluster", "va", "embedding"):
        assert torch.allclose(batch[k][1], alone[k][0], atol=1e-5), k
        assert torch.allclose(batch[k], batch2[k], atol=1e-5), k
    assert model.audio.token_lengths(lengths).tolist() == [3, 2]
    assert short[0].shape[1] == 1 and int(short[1][0]) == 1


def test_forward_features_equals_forward():
    torch.manual_seed(1)
    cfg = ModelConfig(
        frontend=MUSICNN_FRONTEND,
        audio_encoder="musicnn_msd",
        patch_frames=40,
        d_model=32,
        n_heads=2,
        ffn_dim=64,
        n_layers=1,
        audio_layer="pooled",
    )
    model = EmotionModel(cfg).eval()
    mel, lengths = torch.rand(1, 96, 90) * 3, torch.tensor([90])
    lyr, mask = torch.randn(1, 5, 384), torch.ones(1, 5, dtype=torch.bool)
    with torch.inference_mode():
        a = model(mel, lengths, lyr, mask)
        b = model.forward_features(*model.audio.features(mel, lengths), lyr, mask)
    assert a["embedding"].shape == (1, 64)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_backbone_batch_norm_stays_frozen_in_train_mode():
    model = EmotionModel(ModelConfig(frontend=MUSICNN_FRONTEND, audio_encoder="musicnn_msd")).train()
    assert not model.audio.backbone.input_bn.training and model.lyrics_proj.training


def test_config_checks_and_old_configs_read_as_cnn():
    with pytest.raises(CheckpointError, match="front end"):
        ModelConfig(audio_encoder="musicnn_msd")  # the default (CNN) front end
    with pytest.raises(CheckpointError, match="audio_encoder"):
        ModelConfig(audio_encoder="vggish")
    with pytest.raises(CheckpointError, match="audio_layer"):
        ModelConfig(frontend=MUSICNN_FRONTEND, audio_encoder="musicnn_msd", audio_layer="cnn9")
    old = ModelConfig().to_dict()
    for k in ("audio_encoder", "audio_layer", "patch_frames"):
        del old[k]
    cfg = ModelConfig.from_dict(old)
    assert cfg.audio_encoder == "cnn" and cfg.time_downsample == 16
    musicnn = ModelConfig.from_dict(ModelConfig(frontend=MUSICNN_FRONTEND, audio_encoder="musicnn_msd").to_dict())
    assert musicnn.frontend == MUSICNN_FRONTEND and musicnn.time_downsample == PATCH


def test_max_patches_keeps_the_central_patches_of_each_row():
    """With max_patches=2 a 5-patch row keeps patches 1-2 and a 3-patch row patches 0-1, whatever the
    batch; the same tokens as running those frames alone without the cap."""
    torch.manual_seed(2)
    kw = dict(
        frontend=MUSICNN_FRONTEND,
        audio_encoder="musicnn_msd",
        patch_frames=40,
        d_model=32,
        n_heads=2,
        ffn_dim=64,
        n_layers=1,
        audio_layer="mean_pool",
    )
    capped = EmotionModel(ModelConfig(max_patches=2, **kw)).eval()
    plain = EmotionModel(ModelConfig(**kw)).eval()
    plain.load_state_dict(capped.state_dict())
    mel = torch.rand(2, 96, 210) * 3
    lengths = torch.tensor([210, 125])
    mel[1, :, 125:] = 0
    with torch.inference_mode():
        feats, n = capped.audio.features(mel, lengths)
        ref0, _ = plain.audio.features(mel[:1, :, 40:120], torch.tensor([80]))
        ref1, _ = plain.audio.features(mel[1:, :, 0:80], torch.tensor([80]))
    assert n.tolist() == [2, 2] and feats.shape[1] == 2
    assert torch.allclose(feats[0], ref0[0], atol=1e-5) and torch.allclose(feats[1], ref1[0], atol=1e-5)
    with torch.inference_mode():  # a 1-patch row among them: 2 token slots, 1 valid, the same token
        short, n_short = capped.audio.features(mel[:, :, :45], torch.tensor([45, 40]))
        alone, _ = plain.audio.features(mel[:1, :, :40], torch.tensor([40]))
    assert n_short.tolist() == [1, 1] and short.shape[1] == 2 and torch.allclose(short[0, 0], alone[0, 0], atol=1e-5)
