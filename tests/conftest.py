"""Shared fixtures: one Recognizer per session (loading it costs seconds), synthetic audio, data path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

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
