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

import numpy as np

from . import BackendSpec, default_num_threads, register


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
    from ..export.engine import cuda_gpu_name

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
    name = "torch"

    def __init__(self, checkpoint, device: str = "cpu", num_threads: int | None = None, *, dtype: str = "float32"):
        import torch

        from ..checkpoint import load_state_dict
        from ..model import EmotionModel
        from ..text_encoder import TextEncoder

        # PyTorch's thread count is process-wide: it is set around each call and restored after
        self.num_threads = int(num_threads or default_num_threads())
        self.device = device
        self.config = checkpoint.config
        self.model = EmotionModel(checkpoint.config)
        load_state_dict(checkpoint, self.model)
        if dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"dtype must be 'float32', 'float16' or 'bfloat16', not {dtype!r}")
        if dtype != "float32" and device == "cpu":
            raise ValueError("reduced precision is for the cuda backend; the CPU path runs float32")
        self.dtype = getattr(torch, dtype)
        self.model.to(device=device, dtype=self.dtype).eval()
        self.text_encoder = TextEncoder(checkpoint.config.text_encoder, device=device)
        self._torch = torch
        if device != "cpu":
            self.name = "cuda"

    def log_mel(self, windows: list[np.ndarray]):
        """Log-mel of a batch of windows where the model runs (on the GPU for ``cuda``)."""
        from .. import ops

        if self.device == "cpu":
            return ops.log_mel_batch_fast(windows, self.config.frontend)
        batch, lengths = ops._stack(windows)
        x = self._torch.from_numpy(batch).pin_memory().to(self.device, non_blocking=True)
        return ops.log_mel_batch_fast(x, self.config.frontend, lengths)

    @contextlib.contextmanager
    def _threads(self):
        torch = self._torch
        before = torch.get_num_threads()
        if before != self.num_threads:
            torch.set_num_threads(self.num_threads)
        try:
            yield
        finally:
            if before != self.num_threads:
                torch.set_num_threads(before)

    def encode_lyrics(self, texts: list[str | None]) -> list[np.ndarray | None]:
        """Per text: token embeddings (Tl, hidden) float32, or None when there are no lyrics."""
        with self._threads():
            return self.text_encoder.encode_arrays(texts)

    def forward(self, mel: np.ndarray, mel_lengths: np.ndarray, lyr_emb: np.ndarray, lyr_mask: np.ndarray):
        torch = self._torch
        d = self.device
        f = self.dtype
        with torch.inference_mode(), self._threads():
            # inputs may be NumPy (host) or tensors already on the device (log_mel above)
            out = self.model(
                torch.as_tensor(mel).to(d, f), torch.as_tensor(mel_lengths).to(d),
                torch.as_tensor(lyr_emb).to(d, f), torch.as_tensor(lyr_mask).to(d),
            )
            res = {t.name: torch.softmax(out[t.name], dim=-1).float().cpu().numpy() for t in self.config.tasks}
            res["va"] = out["va"].float().cpu().numpy()
            res["gate"] = out["gate"].float().cpu().numpy()
        return res


def _create_cuda(checkpoint, device: str = "cuda", num_threads: int | None = None, *, dtype: str = "float32"):
    return TorchBackend(checkpoint, device=device, num_threads=num_threads, dtype=dtype)


register(BackendSpec(name="torch", devices=("cpu",), probe=_probe, create=TorchBackend))
register(BackendSpec(name="cuda", devices=("cuda",), probe=_probe_cuda, create=_create_cuda))
