"""Versioned checkpoints: ``<dir>/config.json`` + ``<dir>/model.safetensors``.

config.json holds ``format_version``, the mersdk version that wrote it, the full ``ModelConfig``
(sample rate, mel settings, label names, text-encoder reference), the SHA-256 of the weights file,
``model_sha256`` (format 2: the SHA-256 of the model config and the weights' hash together, so a
changed config is caught like changed weights) and free-form ``metadata`` (training data, metrics;
descriptive, not covered by the hash).

Everything in the folder is data from outside, checked before anything is built from it:
config.json is read with a size limit, only from a regular file, without NaN/Infinity and with a
nesting limit; the model config is checked against the schema in ``mersdk.config`` (types, bounds,
required and unknown keys); the weights file's size is bounded and its safetensors header is parsed
and checked (offsets inside the file) before the file is hashed, and the header's tensor shapes are
compared with the shapes the config implies before any weight is loaded (``load_model``). Every
failure is a ``CheckpointError`` that says what and where.

Format 1 checkpoints (no ``model_sha256``) still load: their config is schema-checked but not
hash-covered, and their ``model_hash`` stays the weights' hash prefix it always was.
``upgrade_checkpoint`` rewrites one as format 2 (the ``model_hash`` then changes once).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._version import __version__
from .config import FORMAT_VERSION, READABLE_FORMATS, ModelConfig
from .errors import CheckpointError
from .files import atomic_path, open_regular_file, read_bounded, sha256_file, write_text_atomic

log = logging.getLogger("mersdk.checkpoint")

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
DEFAULT_MODEL_DIR = Path(__file__).parent / "models" / "default"

# Limits on what a checkpoint folder may hold (the bundled model: 4 KB config, 2.4 MB weights)
MAX_CONFIG_BYTES = 1 << 20
MAX_JSON_DEPTH = 32
MAX_WEIGHTS_BYTES = 4 << 30
MAX_SAFETENSORS_HEADER_BYTES = 16 << 20
MAX_TENSOR_DIMS = 8
# safetensors dtype -> bytes per element
SAFETENSORS_DTYPES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U64": 8,
    "U32": 4,
    "U16": 2,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
}
TOP_LEVEL_KEYS = ("format_version", "mersdk_version", "model", "weights_sha256", "model_sha256", "metadata")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as the safetensors header describes it."""

    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    config: ModelConfig
    weights_sha256: str
    metadata: dict[str, Any] = field(default_factory=dict)
    # format 2: SHA-256 over the model config and weights_sha256 (see model_config_sha256); "" for format 1
    model_sha256: str = ""
    format_version: int = FORMAT_VERSION
    tensors: dict[str, TensorInfo] = field(default_factory=dict, compare=False, repr=False)

    @property
    def model_hash(self) -> str:
        """Short id of the model: changes whenever the weights or (format 2) the model config do."""
        return (self.model_sha256 or self.weights_sha256)[:12]

    @property
    def weights_path(self) -> Path:
        return self.path / WEIGHTS_NAME


# JSON -----------------------------------------------------------------------------------------------
def _json_depth_ok(obj: Any, limit: int) -> bool:
    stack = [(obj, 1)]
    while stack:
        o, depth = stack.pop()
        if isinstance(o, (dict, list)):
            if depth > limit:
                return False
            stack.extend((v, depth + 1) for v in (o.values() if isinstance(o, dict) else o))
    return True


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"{text[:20]} overflows a float")
    return v


def load_json(path: os.PathLike, limit: int, what: str, error: type[Exception] = CheckpointError) -> Any:
    """Strict JSON from a regular file of at most ``limit`` bytes: no NaN/Infinity, numbers that fit,
    nesting at most MAX_JSON_DEPTH deep. Any failure is ``error`` naming the file."""
    data = read_bounded(path, limit, what, error=error)
    try:
        obj = json.loads(data, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise error(f"{path}: the {what} is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError; so is a 5000-digit int
        raise error(f"{path}: the {what} is not valid JSON ({str(e)[:200]})") from None
    if not _json_depth_ok(obj, MAX_JSON_DEPTH):
        raise error(f"{path}: the {what} is nested more than {MAX_JSON_DEPTH} levels deep")
    return obj


def is_sha256(v: Any) -> bool:
    return isinstance(v, str) and _SHA256.fullmatch(v) is not None


# Weights --------------------------------------------------------------------------------------------
def _naturals(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v)


def read_safetensors_header(path: os.PathLike) -> dict[str, TensorInfo]:
    """Tensor name -> dtype and shape from a safetensors file's header, checked against the file:
    bounded header, known dtypes, every tensor's byte range exactly its shape's size, the ranges
    back to back and ending at the end of the file. Reads only the header."""
    f, st = open_regular_file(path, error=CheckpointError, what="weights file")
    with f:
        if st.st_size > MAX_WEIGHTS_BYTES:
            raise CheckpointError(f"{path}: the weights file is {st.st_size:,} bytes; at most {MAX_WEIGHTS_BYTES:,}")
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 2 <= n <= min(MAX_SAFETENSORS_HEADER_BYTES, st.st_size - 8):
            raise CheckpointError(f"{path}: not a safetensors file (header length {n} in a {st.st_size:,}-byte file)")
        raw = f.read(n)
    try:
        header = json.loads(raw, parse_constant=_no_constant)
    except (RecursionError, ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: the safetensors header is not valid JSON ({str(e)[:200]})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the safetensors header is not a JSON object")
    data_bytes = st.st_size - 8 - n
    tensors, ranges = {}, []
    for name, t in header.items():
        if name == "__metadata__":
            continue
        bad = f"{path}: tensor {name[:100]!r} in the safetensors header"
        if not isinstance(t, dict) or set(t) != {"dtype", "shape", "data_offsets"}:
            raise CheckpointError(f"{bad} is not an object with dtype, shape and data_offsets")
        dtype, shape, offsets = t["dtype"], t["shape"], t["data_offsets"]
        if dtype not in SAFETENSORS_DTYPES:
            raise CheckpointError(f"{bad} has an unknown dtype {str(dtype)[:20]!r}")
        if not _naturals(shape) or len(shape) > MAX_TENSOR_DIMS or not _naturals(offsets) or len(offsets) != 2:
            raise CheckpointError(f"{bad} has a malformed shape or data_offsets")
        nbytes = math.prod(shape) * SAFETENSORS_DTYPES[dtype]
        if offsets[1] - offsets[0] != nbytes or offsets[1] > data_bytes:
            raise CheckpointError(
                f"{bad} claims shape {shape[:MAX_TENSOR_DIMS]} ({nbytes:,} bytes) at bytes "
                f"{offsets}, but the file holds {data_bytes:,} bytes of data"
            )
        tensors[name] = TensorInfo(dtype, tuple(shape))
        ranges.append(tuple(offsets))
    ranges.sort()
    end = 0
    for a, b in ranges:
        if a != end:
            raise CheckpointError(f"{path}: tensors in the safetensors header overlap or leave gaps")
        end = b
    if end != data_bytes:
        raise CheckpointError(f"{path}: the safetensors header covers {end:,} of {data_bytes:,} bytes of data")
    return tensors


def expected_weight_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Weight name -> shape the EmotionModel of ``cfg`` has, built on PyTorch's meta device
    (no memory for weights); ``cfg`` has passed the schema, so the module count is bounded."""
    import torch

    from .model import EmotionModel

    with torch.device("meta"):
        model = EmotionModel(cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _weights_mismatch(
    path: Path, tensors: dict[str, TensorInfo], want: dict[str, tuple[int, ...]]
) -> CheckpointError | None:
    have = {k: t.shape for k, t in tensors.items()}
    missing = sorted(set(want) - set(have))
    unexpected = sorted(set(have) - set(want))
    wrong = sorted(
        f"{k} {list(have[k])} (config: {list(want[k])})"
        for k in set(have) & set(want)
        if tuple(have[k]) != tuple(want[k])
    )
    if not (missing or unexpected or wrong):
        return None
    detail = "; ".join(
        f"{what}: {', '.join(ks[:4])}{' ...' if len(ks) > 4 else ''}"
        for what, ks in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
        if ks
    )
    return CheckpointError(f"{path}: weights do not match the model config ({detail})")


def load_state_dict(ckpt: Checkpoint, model) -> None:
    """Load the weights into an ``EmotionModel`` built from ``ckpt.config``. Names and shapes in the
    file's header must match the model's before any tensor is read."""
    from safetensors.torch import load_file

    tensors = ckpt.tensors or read_safetensors_header(ckpt.weights_path)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    err = _weights_mismatch(ckpt.path, tensors, want)
    if err is not None:
        raise err
    model.load_state_dict(load_file(str(ckpt.weights_path)), strict=True)


def load_model(ckpt: Checkpoint):
    """The ``EmotionModel`` of a checkpoint with its weights, in eval mode. The shapes the config
    implies are compared with the weights file's header before the model is allocated, so a config
    claiming a model larger than its weights file is refused without building it."""
    from .model import EmotionModel

    tensors = ckpt.tensors or read_safetensors_header(ckpt.weights_path)
    err = _weights_mismatch(ckpt.path, tensors, expected_weight_shapes(ckpt.config))
    if err is not None:
        raise err
    model = EmotionModel(ckpt.config)
    load_state_dict(ckpt, model)
    return model.eval()


# Config ---------------------------------------------------------------------------------------------
def model_config_sha256(model: Any, weights_sha256: str) -> str:
    """The format-2 ``model_sha256``: SHA-256 of the canonical JSON of the model config (as stored,
    so fields added to ModelConfig later do not change old checkpoints' hashes) and the weights' hash."""
    doc = {"format_version": 2, "model": model, "weights_sha256": weights_sha256}
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _check_meta(meta: Any, cfg_path: Path) -> int:
    """Top level of config.json; returns its format version."""
    if not isinstance(meta, dict):
        raise CheckpointError(f"{cfg_path}: must hold a JSON object, not a {type(meta).__name__}")
    fv = meta.get("format_version")
    if isinstance(fv, bool) or fv not in READABLE_FORMATS:
        writer = str(meta.get("mersdk_version", "?"))[:40]
        raise CheckpointError(
            f"{cfg_path.parent}: checkpoint format {str(fv)[:20]} (written by mersdk {writer}); this mersdk "
            f"{__version__} reads formats {', '.join(map(str, READABLE_FORMATS))}. "
            "Re-export the model with this version."
        )
    unknown = sorted(str(k)[:40] for k in meta if k not in TOP_LEVEL_KEYS)
    if unknown:
        raise CheckpointError(
            f"{cfg_path}: unknown key(s) {', '.join(unknown[:8])} (format {fv} has {', '.join(TOP_LEVEL_KEYS)})"
        )
    for key in ("model", "weights_sha256") + (("model_sha256",) if fv >= 2 else ()):
        if key not in meta:
            raise CheckpointError(f"{cfg_path}: required key {key!r} is missing")
    for key in ("weights_sha256", "model_sha256"):
        if key in meta and not is_sha256(meta[key]):
            raise CheckpointError(f"{cfg_path}: {key} must be 64 lowercase hex digits")
    if not isinstance(meta.get("metadata", {}), dict):
        raise CheckpointError(f"{cfg_path}: metadata must be a JSON object")
    if not isinstance(meta.get("mersdk_version", ""), str):
        raise CheckpointError(f"{cfg_path}: mersdk_version must be a string")
    return fv


def read_checkpoint(path: str | os.PathLike | None = None) -> Checkpoint:
    """Read and verify a checkpoint folder: config schema, hashes and the weights file's header (the
    weights themselves are loaded by the backend, ``load_model``). Raises ``CheckpointError``."""
    p = Path(path) if path is not None else DEFAULT_MODEL_DIR
    if p.is_file() and p.name == CONFIG_NAME:
        p = p.parent
    cfg_path, w_path = p / CONFIG_NAME, p / WEIGHTS_NAME
    if not cfg_path.exists() or not w_path.exists():
        raise CheckpointError(f"{p}: not a mersdk checkpoint (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
    meta = load_json(cfg_path, MAX_CONFIG_BYTES, "checkpoint config")
    fv = _check_meta(meta, cfg_path)
    try:
        cfg = ModelConfig.from_dict(meta["model"], complete=True)
    except CheckpointError as e:
        raise CheckpointError(f"{cfg_path}: {e}") from None
    if fv >= 2 and model_config_sha256(meta["model"], meta["weights_sha256"]) != meta["model_sha256"]:
        raise CheckpointError(
            f"{cfg_path}: model_sha256 does not match the model config and weights hash it "
            "holds: the config was changed after the checkpoint was written, or is damaged"
        )
    tensors = read_safetensors_header(w_path)
    try:
        digest = sha256_file(w_path)
    except OSError as e:  # replaced since its header was read
        raise CheckpointError(f"{w_path}: cannot read the weights file ({e.strerror or e})") from None
    if digest != meta["weights_sha256"]:
        raise CheckpointError(
            f"{w_path}: SHA-256 {digest[:12]} does not match the config's "
            f"{meta['weights_sha256'][:12]}: the weights are corrupt or from another checkpoint"
        )
    if fv < 2:
        log.info(
            "%s: checkpoint format %d: its config is schema-checked but not covered by a hash "
            "(mersdk.checkpoint.upgrade_checkpoint rewrites it as format %d)",
            p,
            fv,
            FORMAT_VERSION,
        )
    return Checkpoint(
        path=p,
        config=cfg,
        weights_sha256=digest,
        metadata=meta.get("metadata", {}),
        model_sha256=meta.get("model_sha256", ""),
        format_version=fv,
        tensors=tensors,
    )


def _write_config(p: Path, model: dict, weights_sha256: str, metadata: dict, version: str) -> None:
    meta = {
        "format_version": FORMAT_VERSION,
        "mersdk_version": version,
        "model": model,
        "weights_sha256": weights_sha256,
        "model_sha256": model_config_sha256(model, weights_sha256),
        "metadata": metadata,
    }
    write_text_atomic(p / CONFIG_NAME, json.dumps(meta, indent=2, sort_keys=True) + "\n")


def save_checkpoint(model, path: os.PathLike, metadata: dict[str, Any] | None = None) -> Checkpoint:
    """Write ``model`` (an EmotionModel) as a checkpoint folder; returns the verified Checkpoint.
    Each file is written beside its final name and renamed into place, weights first: an
    interrupted save leaves the old checkpoint, or one whose hash check fails, never a mix that loads."""
    from safetensors.torch import save_file

    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    # round-trip through JSON: the hash covers the config exactly as it will be read back
    cfg_json = json.loads(json.dumps(model.cfg.to_dict()))
    with atomic_path(p / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp))
        digest = sha256_file(tmp)
    _write_config(p, cfg_json, digest, metadata or {}, __version__)
    return read_checkpoint(p)


def upgrade_checkpoint(path: os.PathLike) -> Checkpoint:
    """Rewrite a format-1 checkpoint's config.json as the current format (adds ``model_sha256``),
    after verifying it; weights and metadata are kept. A current checkpoint is left as it is."""
    ck = read_checkpoint(path)
    if ck.format_version == FORMAT_VERSION:
        return ck
    meta = load_json(ck.path / CONFIG_NAME, MAX_CONFIG_BYTES, "checkpoint config")
    _write_config(
        ck.path,
        meta["model"],
        meta["weights_sha256"],
        meta.get("metadata", {}),
        meta.get("mersdk_version", __version__),
    )
    return read_checkpoint(ck.path)
