"""Result types: small frozen dataclasses with ``to_dict()``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Prediction:
    """What ``Recognizer.predict`` returns for one input.

    label / probabilities: the primary task's categories (probabilities sum to 1).
    valence / arousal: in [-1, 1]. lyrics_used: lyrics were given and non-empty.
    fusion_weight: mean dynamic-fusion gate in [0, 1] (how much the lyrics counted; 0 without lyrics).
    task_probabilities: every task head's probabilities, primary included.
    n_windows: how many analysis windows were pooled (see Recognizer: window_s, hop_s).
    """

    label: str
    probabilities: dict[str, float]
    valence: float
    arousal: float
    lyrics_used: bool
    fusion_weight: float
    duration_s: float
    backend: str
    task_probabilities: dict[str, dict[str, float]] = field(default_factory=dict)
    n_windows: int = 1
    model: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class BackendChoice:
    name: str
    device: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
