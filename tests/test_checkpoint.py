"""Checkpoint format: round trip, and clear errors for other versions, configs and corruption."""

import dataclasses
import json
import shutil

import pytest
import torch

from mersdk.checkpoint import (
    DEFAULT_MODEL_DIR,
    load_model,
    load_state_dict,
    model_config_sha256,
    read_checkpoint,
    save_checkpoint,
    upgrade_checkpoint,
)
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


def test_config_change_is_caught_by_the_hash(ckpt_dir):
    path, _ = ckpt_dir
    meta = json.loads((path / "config.json").read_text())
    assert meta["format_version"] == 2
    assert meta["model_sha256"] == model_config_sha256(meta["model"], meta["weights_sha256"])
    meta["model"]["primary_task"] = "cluster"  # valid, same weights: only the hash can tell
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="model_sha256 does not match"):
        read_checkpoint(path)


def test_config_that_does_not_match_weights_is_refused(ckpt_dir):
    path, _ = ckpt_dir
    meta = json.loads((path / "config.json").read_text())
    meta["model"]["d_model"] = 96
    meta["model"]["n_heads"] = 2
    meta["model_sha256"] = model_config_sha256(meta["model"], meta["weights_sha256"])  # a consistent forgery
    (path / "config.json").write_text(json.dumps(meta))
    ck = read_checkpoint(path)
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_state_dict(ck, EmotionModel(ck.config))
    with pytest.raises(CheckpointError, match="wrong shape.*config"):
        load_model(ck)


def test_model_hash_covers_config_and_weights(ckpt_dir):
    path, m = ckpt_dir
    ck = read_checkpoint(path)
    assert ck.model_hash == ck.model_sha256[:12] != ck.weights_sha256[:12]
    m2 = EmotionModel(dataclasses.replace(m.cfg, primary_task="cluster"))
    m2.load_state_dict(m.state_dict())
    ck2 = save_checkpoint(m2, path.parent / "other_task")
    assert ck2.weights_sha256 == ck.weights_sha256 and ck2.model_hash != ck.model_hash


def test_format_1_checkpoint_still_loads_and_upgrades(tmp_path):
    shutil.copytree(DEFAULT_MODEL_DIR, tmp_path / "old")
    meta = json.loads((tmp_path / "old" / "config.json").read_text())
    if meta["format_version"] != 1:  # the bundled model was upgraded: make a format-1 copy of it
        meta = {k: v for k, v in meta.items() if k != "model_sha256"} | {"format_version": 1}
        (tmp_path / "old" / "config.json").write_text(json.dumps(meta))
    old = read_checkpoint(tmp_path / "old")
    assert old.format_version == 1 and old.model_hash == old.weights_sha256[:12]
    new = upgrade_checkpoint(tmp_path / "old")
    assert new.format_version == 2 and new.model_hash != old.model_hash and new.config == old.config
    assert new.metadata == old.metadata and upgrade_checkpoint(tmp_path / "old") == new
    assert not list((tmp_path / "old").glob(".*.tmp"))
    load_model(new)


def test_unknown_config_key_is_refused(ckpt_dir):
    path, _ = ckpt_dir
    meta = json.loads((path / "config.json").read_text())
    meta["model"]["from_the_future"] = 1
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not match this mersdk version.*from_the_future"):
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
