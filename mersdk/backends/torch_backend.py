"""PyTorch backends: ``torch`` (CPU, the reference inference path) and ``cuda`` (the same model on an
NVIDIA GPU with the compiled kernels). Both run the EmotionModel training uses; where a compiled
kernel applies (``mersdk.ops`` decides: the log-mel here, the masked attention inside the model) it
replaces the reference op.

``cuda`` options (``Recognizer(backend_options=...)``): ``dtype`` ("float32" default, "float16",
"bfloat16": the model's weights and activations on the GPU).
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..gpu import cuda_gpu_name
from .base import BackendSpec, default_num_threads, register


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # a finder that refuses the module (a sandbox, a test) means: not usable
        return False


def _probe(device: str) -> str | None:
    if not _installed("torch"):
        return "PyTorch is not installed (pip install 'mersdk[torch]', which pins torch==2.13.0)"
    if not _installed("transformers"):
        return "transformers is not installed"
    return None


def _probe_cuda(device: str) -> str | None:
    # the driver is asked first, through ctypes: an auto choice on a machine without a GPU must not
    # pay for importing torch (seconds) just to learn that
    _, why = cuda_gpu_name()
    if why:
        return why
    why = _probe(device)
    if why:
        return why
    import torch

    if not torch.cuda.is_available():
        return f"this PyTorch ({torch.__version__}) has no CUDA support (install a CUDA build of torch==2.13.0)"
    return None


class TorchBackend:
    """``base.Backend`` on PyTorch. Thread-safe: the model runs under ``inference_mode`` without
    state; the Hugging Face tokenizer is not safe to share, so lyric encoding takes a lock.
    PyTorch's intra-op thread count is process-wide (torch has no per-model one): ``num_threads``
    (default ``default_num_threads()``, half the cores, so a player beside it keeps the rest) is set
    around each call and the caller's value restored after it."""

    name = "torch"
    _text_encoder: Any  # a TextEncoder, or None until first use (from_module) and after close()

    def __init__(self, checkpoint, device: str = "cpu", num_threads: int | None = None, *, dtype: str = "float32"):
        from ..checkpoint import load_model
        from ..text_encoder import TextEncoder

        model = load_model(checkpoint)  # weight shapes checked against the config before allocating
        self._setup(model, checkpoint.config, device, num_threads, dtype)
        # loaded now, not on first lyrics: a missing text encoder is an error at load time
        self._text_encoder = TextEncoder(checkpoint.config.text_encoder, device=device)

    @classmethod
    def from_module(cls, model, config, device: str = "cpu", dtype: str = "float32") -> TorchBackend:
        """A backend around a model already in memory, used as it is (its device, dtype and train/eval
        mode are the caller's): evaluation of training runs and baselines, any module with
        EmotionModel's forward signature. Its text encoder loads on first use."""
        self = cls.__new__(cls)
        self._setup(model, config, device, None, dtype, move=False)
        self.num_threads = None  # the caller's thread settings, as they are
        return self

    def _setup(self, model, config, device: str, num_threads: int | None, dtype: str, move: bool = True) -> None:
        import torch

        self._torch = torch
        self.num_threads: int | None = int(num_threads or default_num_threads())
        if dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"dtype must be 'float32', 'float16' or 'bfloat16', not {dtype!r}")
        if dtype != "float32" and device == "cpu":
            raise ValueError("reduced precision is for the cuda backend; the CPU path runs float32")
        self.device = device
        self.config = config
        self.dtype = getattr(torch, dtype)
        self.model = model.to(device=device, dtype=self.dtype).eval() if move else model
        self._text_encoder = None
        self._text_lock = threading.Lock()
        if device != "cpu":
            self.name = "cuda"

    @property
    def text_encoder(self):
        with self._text_lock:
            if self._text_encoder is None:
                from ..text_encoder import TextEncoder

                self._text_encoder = TextEncoder(self.config.text_encoder, device=self.device)
            return self._text_encoder

    def log_mel(self, windows: Sequence[np.ndarray]):
        """Log-mel of a batch of windows where the model runs (on the GPU for ``cuda``)."""
        from .. import ops
        from ..padding import pad_stack

        if self.device == "cpu":
            return ops.log_mel_batch_fast(list(windows), self.config.frontend)
        batch, lengths = pad_stack(windows)
        x = self._torch.from_numpy(batch).pin_memory().to(self.device, non_blocking=True)
        return ops.log_mel_batch_fast(x, self.config.frontend, lengths)

    def kernels(self) -> dict[str, str]:
        from .. import ops

        return ops.describe(self.device, self.config.d_model // self.config.n_heads)

    @contextlib.contextmanager
    def _threads(self):
        torch = self._torch
        if self.num_threads is None:
            yield
            return
        before = torch.get_num_threads()
        if before != self.num_threads:
            torch.set_num_threads(self.num_threads)
        try:
            yield
        finally:
            if before != self.num_threads:
                torch.set_num_threads(before)

    def close(self) -> None:
        # PyTorch frees the model's memory with the last reference; drop ours
        self.model = None
        self._text_encoder = None

    def encode_lyrics(self, texts: Sequence[str | None]) -> list[np.ndarray | None]:
        """Per text: token embeddings (Tl, hidden) float32, or None when there are no lyrics."""
        encoder = self.text_encoder
        # the fast tokenizer raises "Already borrowed" when shared by threads
        with self._text_lock, self._threads():
            return encoder.encode_arrays(list(texts))

    def forward(self, mel: Any, mel_lengths: Any, lyr_emb: np.ndarray, lyr_mask: np.ndarray) -> dict[str, np.ndarray]:
        torch = self._torch
        if self.model is None:
            from ..errors import BackendUnavailableError

            raise BackendUnavailableError("this Recognizer was closed")
        d = self.device
        f = self.dtype
        with torch.inference_mode(), self._threads():
            # inputs may be NumPy (host) or tensors already on the device (log_mel above)
            out = self.model(
                torch.as_tensor(mel).to(d, f),
                torch.as_tensor(mel_lengths).to(d),
                torch.as_tensor(lyr_emb).to(d, f),
                torch.as_tensor(lyr_mask).to(d),
            )
            res = {t.name: torch.softmax(out[t.name], dim=-1).float().cpu().numpy() for t in self.config.tasks}
            res["va"] = out["va"].float().cpu().numpy()
            res["gate"] = out["gate"].float().cpu().numpy()
        return res


def _create_cuda(checkpoint, device: str = "cuda", num_threads: int | None = None, *, dtype: str = "float32"):
    return TorchBackend(checkpoint, device=device, num_threads=num_threads, dtype=dtype)


register(BackendSpec(name="torch", devices=("cpu",), probe=_probe, create=TorchBackend))
register(BackendSpec(name="cuda", devices=("cuda",), probe=_probe_cuda, create=_create_cuda))
