"""Checkpoint format: round trip, and clear errors for other versions, configs and corruption."""

import json
import shutil

import pytest
import torch

from mersdk.checkpoint import DEFAULT_MODEL_DIR, load_state_dict, read_checkpoint, save_checkpoint
from mersdk.config import ModelConfig
from mersdk.errors import CheckpointError
from mersdk.model import EmotionModel


@pytest.fixture()
def ckpt_dir(tmp_path):
    torch.manual_seed(0)
    m = EmotionModel(ModelConfig(d_model=64, n_heads=2, n_layers=1, ffn_dim=64))
    save_checkpoint(m, tmp_path / "ck", {"note": "test"})
    return tmp_path / "ck", m


def test_round_trip(ckpt_dir):
    path, m = ckpt_dir
    ck = read_checkpoint(path)
    assert ck.config == m.cfg and ck.metadata == {"note": "test"} and len(ck.model_hash) == 12
    m2 = EmotionModel(ck.config)
    load_state_dict(ck, m2)
    for (k, a), (_, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert torch.equal(a, b), k


def test_other_format_version_is_refused(ckpt_dir):
    path, _ = ckpt_dir
    meta = json.loads((path / "config.json").read_text())
    meta["format_version"] = 999
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="format 999"):
        read_checkpoint(path)


def test_config_that_does_not_match_weights_is_refused(ckpt_dir):
    path, _ = ckpt_dir
    meta = json.loads((path / "config.json").read_text())
    meta["model"]["d_model"] = 96
    meta["model"]["n_heads"] = 2
    (path / "config.json").write_text(json.dumps(meta))
    ck = read_checkpoint(path)
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_state_dict(ck, EmotionModel(ck.config))


def test_unknown_config_key_is_refused(ckpt_dir):
    path, _ = ckpt_dir
    meta = json.loads((path / "config.json").read_text())
    meta["model"]["from_the_future"] = 1
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not match this mersdk version"):
        read_checkpoint(path)


def test_corrupt_weights_are_refused(ckpt_dir):
    path, _ = ckpt_dir
    with open(path / "model.safetensors", "r+b") as f:
        f.seek(-8, 2)
        f.write(b"\x00" * 8)
    with pytest.raises(CheckpointError, match="SHA-256"):
        read_checkpoint(path)


def test_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="not a mersdk checkpoint"):
        read_checkpoint(tmp_path / "nothing")


def test_bundled_default_checkpoint_loads(tmp_path):
    ck = read_checkpoint(None)
    assert ck.path == DEFAULT_MODEL_DIR
    assert ck.weights_path.stat().st_size < 50e6
    shutil.copytree(DEFAULT_MODEL_DIR, tmp_path / "copy")
    assert read_checkpoint(tmp_path / "copy").weights_sha256 == ck.weights_sha256
