"""The backend contract: what the pipeline calls on whatever runs the model, and the registry entry
each backend module registers. Every backend implements ``Backend``; nothing is discovered with
``getattr``. Backends must be safe to call from several threads at once (one ``Recognizer`` may be
shared): one that is not serialises its calls with a lock inside and says so in its docstring.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Backend(Protocol):
    """What runs the model. Arrays are NumPy unless the backend says otherwise."""

    name: str

    def log_mel(self, windows: Sequence[np.ndarray]) -> tuple[Any, Any]:
        """Log-mels of a batch of mono windows at the model rate, zero-padded in time:
        (mels (B, n_mels, T), frame lengths (B,)), computed where the model runs."""
        ...

    def encode_lyrics(self, texts: Sequence[str | None]) -> list[np.ndarray | None]:
        """Per text: token embeddings (Tl, hidden) float32, or None for no lyrics."""
        ...

    def forward(self, mel: Any, mel_lengths: Any, lyr_emb: np.ndarray, lyr_mask: np.ndarray) -> dict[str, np.ndarray]:
        """One batch -> {task: probabilities (B, n_labels), "va": (B, 2), "gate": (B,)} as NumPy."""
        ...

    def kernels(self) -> dict[str, str]:
        """Which implementation runs the log-mel and the attention, and why (``Recognizer.info()``)."""
        ...

    def close(self) -> None:
        """Free native resources (GPU memory, sessions); calling it twice is harmless."""
        ...


@dataclass(frozen=True)
class BackendSpec:
    name: str
    devices: tuple[str, ...]
    # probe(device) -> None when usable, else the reason it is not
    probe: Callable[[str], str | None]
    create: Callable[..., Backend]
    # probe_checkpoint(checkpoint) -> None when this checkpoint can run on it, else the reason
    probe_checkpoint: Callable[[Any], str | None] | None = None


REGISTRY: dict[str, BackendSpec] = {}


def default_num_threads() -> int:
    """CPU threads a backend uses when not told: half the cores (at least 1). A player shares the
    CPU with its host: on a loaded 2-core machine, 2 threads cost 7x a 1-thread call (PyTorch,
    measured), while on a quiet one they gain at most 1.5x."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    return max(1, cores // 2)


def register(spec: BackendSpec) -> None:
    REGISTRY[spec.name] = spec
