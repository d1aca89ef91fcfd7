"""Versioned checkpoints: ``<dir>/config.json`` + ``<dir>/model.safetensors``.

config.json holds ``format_version``, the mersdk version that wrote it, the full ``ModelConfig``
(sample rate, mel settings, label names, text-encoder reference), the SHA-256 of the weights file
and free-form ``metadata`` (training data, metrics). Loading checks the format version, the hash and
that every weight matches the config's shapes; any mismatch is a ``CheckpointError`` that says what.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._version import __version__
from .config import FORMAT_VERSION, ModelConfig
from .errors import CheckpointError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
DEFAULT_MODEL_DIR = Path(__file__).parent / "models" / "default"


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    config: ModelConfig
    weights_sha256: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def model_hash(self) -> str:
        """Short id of the weights; changes whenever the weights do."""
        return self.weights_sha256[:12]

    @property
    def weights_path(self) -> Path:
        return self.path / WEIGHTS_NAME


def sha256_file(path: os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_checkpoint(path: os.PathLike | None = None) -> Checkpoint:
    """Read and verify a checkpoint folder's config and hash (weights are loaded by the backend)."""
    p = Path(path) if path is not None else DEFAULT_MODEL_DIR
    if p.is_file() and p.name == CONFIG_NAME:
        p = p.parent
    cfg_path, w_path = p / CONFIG_NAME, p / WEIGHTS_NAME
    if not cfg_path.is_file() or not w_path.is_file():
        raise CheckpointError(f"{p}: not a mersdk checkpoint (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
    try:
        meta = json.loads(cfg_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{cfg_path}: unreadable ({e})") from None
    fv = meta.get("format_version")
    if fv != FORMAT_VERSION:
        raise CheckpointError(
            f"{p}: checkpoint format {fv} (written by mersdk {meta.get('mersdk_version', '?')}); this "
            f"mersdk {__version__} reads format {FORMAT_VERSION}. Re-export the model with this version."
        )
    cfg = ModelConfig.from_dict(meta["model"])
    digest = sha256_file(w_path)
    if digest != meta.get("weights_sha256"):
        raise CheckpointError(f"{w_path}: SHA-256 {digest[:12]} does not match the config's {str(meta.get('weights_sha256'))[:12]}: the weights are corrupt or from another checkpoint")
    return Checkpoint(path=p, config=cfg, weights_sha256=digest, metadata=meta.get("metadata", {}))


def load_state_dict(ckpt: Checkpoint, model) -> None:
    """Load the weights into an ``EmotionModel`` built from ``ckpt.config``; shapes must match."""
    from safetensors.torch import load_file

    state = load_file(str(ckpt.weights_path))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{what}: {', '.join(ks[:4])}{' ...' if len(ks) > 4 else ''}"
            for what, ks in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if ks
        )
        raise CheckpointError(f"{ckpt.path}: weights do not match the model config ({detail})")
    model.load_state_dict(state, strict=True)


def save_checkpoint(model, path: os.PathLike, metadata: dict[str, Any] | None = None) -> Checkpoint:
    """Write ``model`` (an EmotionModel) as a checkpoint folder; returns the verified Checkpoint."""
    from safetensors.torch import save_file

    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(p / WEIGHTS_NAME))
    meta = {
        "format_version": FORMAT_VERSION,
        "mersdk_version": __version__,
        "model": model.cfg.to_dict(),
        "weights_sha256": sha256_file(p / WEIGHTS_NAME),
        "metadata": metadata or {},
    }
    (p / CONFIG_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return read_checkpoint(p)
