"""Shared fixtures: one ONNX export of the bundled model per test session (about 30 s)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mersdk.checkpoint import DEFAULT_MODEL_DIR, CONFIG_NAME, WEIGHTS_NAME


def copy_checkpoint(dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        shutil.copy2(DEFAULT_MODEL_DIR / name, dst / name)
    return dst


@pytest.fixture(scope="session")
def plain_ckpt(tmp_path_factory) -> Path:
    """A checkpoint folder without any export."""
    return copy_checkpoint(tmp_path_factory.mktemp("plain"))


@pytest.fixture(scope="session")
def exported_ckpt(tmp_path_factory) -> Path:
    """A copy of the bundled checkpoint with its ONNX export beside it."""
    pytest.importorskip("onnxscript", reason="the ONNX export needs the [export] extra")
    from mersdk.export.onnx_export import export_onnx

    ck = copy_checkpoint(tmp_path_factory.mktemp("exported"))
    export_onnx(ck, log=lambda *_: None)
    return ck
