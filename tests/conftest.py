"""Shared fixtures: one Recognizer per session (loading it costs seconds), synthetic audio, data path,
and one ONNX export of the bundled model per session (about 30 s)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from mersdk.checkpoint import CONFIG_NAME, DEFAULT_MODEL_DIR, WEIGHTS_NAME

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MERSDK_DATA", ROOT.parent / "shared" / "data"))
EXAMPLE_AUDIO = ROOT / "mersdk" / "examples" / "sunny_day.flac"
EXAMPLE_LYRICS = ROOT / "mersdk" / "examples" / "sunny_day.lrc"

needs_data = pytest.mark.skipif(
    not (DATA / "mirex_mm").is_dir(),
    reason=f"real data folder {DATA} is absent (it exists only on the project's development machines)",
)


def tone(seconds: float, sr: int = 16000, freq: float = 440.0, amp: float = 0.3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="session")
def recognizer():
    import mersdk

    return mersdk.Recognizer(backend="torch")


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
