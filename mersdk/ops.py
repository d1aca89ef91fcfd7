"""Fast paths for the two hot spots -- the batch log-mel and the masked cross-attention -- with the
references as fallback. This is the one place that decides whether a compiled kernel (``mersdk._C``)
runs: it does when the extension is present, was built for the input's device, and supports the
dtype/shape; otherwise the reference runs (``mersdk.features.log_mel_batch``,
``mersdk.attention.masked_attention``). On CPU the attention kernel runs only at the shapes where it was
measured faster than PyTorch's SDPA, which runs at the others (``_cpu_prefers_sdpa``).
``log_mel_kernel_for`` / ``attention_kernel_for`` say which one a call would use and why.
``EmotionModel`` calls ``cross_attention`` and the Recognizer calls ``log_mel_batch_fast``, so both
pick up the kernels without a second code path.

Importing this module does not import torch: the ONNX Runtime backend (no torch installed) uses the
NumPy log-mel path; torch is imported only for torch tensors.
"""

from __future__ import annotations

import math

import numpy as np

from . import _ext
from .config import FrontendConfig
from .features import filterbank_for, hann_window, log_mel_batch
from .padding import pad_stack

_ATTENTION_HEAD_DIMS = (32, 64, 128)


def extension_has_cuda() -> bool:
    return _ext.available() and bool(_ext.build_info().get("cuda", False))


def _compiled():
    """mersdk._C, once a ``*_kernel_for`` check said it is there."""
    if _ext._C is None:
        raise RuntimeError(f"mersdk._C is not installed ({_ext.IMPORT_ERROR})")
    return _ext._C


def _is_torch_tensor(x) -> bool:
    # without importing torch: a NumPy-only process must not pay for it
    return type(x).__module__.startswith("torch") and hasattr(x, "device")


def _device_type(device) -> str:
    return getattr(device, "type", None) or str(device).split(":")[0]


def _stream_of(t) -> int:
    import torch

    return torch.cuda.current_stream(t.device).cuda_stream if t.is_cuda else 0


# --------------------------------------------------------------------------------------------------
# log-mel


def log_mel_kernel_for(device="cpu") -> tuple[bool, str]:
    """(uses the compiled kernel?, why) for a log-mel input on `device` (a torch.device or str)."""
    kind = _device_type(device)
    if not _ext.available():
        return False, f"mersdk._C is not installed ({_ext.IMPORT_ERROR})"
    if kind == "cpu":
        return True, "compiled CPU kernel"
    if kind == "cuda":
        if not extension_has_cuda():
            return False, "mersdk._C was built without CUDA"
        return True, "compiled CUDA kernel"
    return False, f"no kernel for device type {kind!r}"


def log_mel_batch_fast(signals, cfg: FrontendConfig = FrontendConfig(), lengths=None, *, out_dtype=None):
    """Batch log-mel with the definition (and the output) of ``features.log_mel_batch``.

    signals: a list of 1-D float arrays, or a (B, N) float32 NumPy array / torch tensor whose row b
    holds lengths[b] valid samples (``lengths`` (B,) ints; default: all N). Returns (mels (B, n_mels,
    T), frame lengths (B,) int64): NumPy for list / NumPy input; torch tensors on the input's device
    for torch input. ``out_dtype`` (torch dtype, CUDA only): float32 (default), float16 or bfloat16.
    """
    if _is_torch_tensor(signals):
        return _log_mel_torch(signals, cfg, lengths, out_dtype)
    if isinstance(signals, np.ndarray) and signals.ndim == 2:
        batch = np.ascontiguousarray(signals, dtype=np.float32)
        lens = np.full(batch.shape[0], batch.shape[1], np.int64) if lengths is None else np.asarray(lengths, np.int64)
    else:
        if lengths is not None:
            raise ValueError("lengths is only for a (B, N) batch; a list of signals carries its own")
        batch, lens = pad_stack(list(signals))
    if len(lens) == 0:
        raise ValueError("log_mel_batch_fast: the batch is empty")
    use_kernel, _ = log_mel_kernel_for("cpu")
    if not use_kernel:
        return log_mel_batch([batch[i, : lens[i]] for i in range(len(lens))], cfg)
    mels = _compiled().log_mel(batch, lens, *_frontend_constants(cfg), **_frontend_options(cfg))
    return mels, 1 + lens // cfg.hop_length


def _frontend_constants(cfg: FrontendConfig) -> tuple[np.ndarray, np.ndarray]:
    return hann_window(cfg.n_fft), filterbank_for(cfg)


def _frontend_options(cfg: FrontendConfig) -> dict:
    """The kernel's keyword arguments for this front end (the filterbank carries mel_scale/mel_norm)."""
    return {"hop": cfg.hop_length, "log_floor": cfg.log_floor, "compression": cfg.compression, "log_gain": cfg.log_gain}


def _log_mel_torch(signals, cfg, lengths, out_dtype):
    import torch

    if signals.ndim != 2:
        raise ValueError(f"expected a (B, N) signal batch, got shape {tuple(signals.shape)}")
    if signals.shape[0] == 0:
        raise ValueError("log_mel_batch_fast: the batch is empty")
    n = signals.shape[1]
    if lengths is None:
        lens = np.full(signals.shape[0], n, np.int64)
    elif isinstance(lengths, torch.Tensor):
        lens = lengths.detach().to("cpu", torch.int64).numpy()
    else:
        lens = np.asarray(lengths, np.int64)
    out_dtype = torch.float32 if out_dtype is None else out_dtype
    device = signals.device
    use_kernel, _ = log_mel_kernel_for(device)
    if device.type == "cpu" and out_dtype != torch.float32:
        use_kernel = False
    frame_lengths = torch.from_numpy(1 + lens // cfg.hop_length).to(device)
    if not use_kernel:
        x = signals.detach().to("cpu", torch.float32).numpy()
        mels, _ = log_mel_batch([x[i, : lens[i]] for i in range(len(lens))], cfg)
        return torch.from_numpy(mels).to(device=device, dtype=out_dtype), frame_lengths
    x = signals.detach().to(torch.float32).contiguous()
    n_frames = 1 + int(lens.max()) // cfg.hop_length
    out = torch.empty((x.shape[0], cfg.n_mels, n_frames), device=device, dtype=out_dtype)
    _compiled().log_mel(x, lens, *_frontend_constants(cfg), **_frontend_options(cfg), out=out, stream=_stream_of(x))
    return out, frame_lengths


# --------------------------------------------------------------------------------------------------
# cross-attention


# CPU: the compiled kernel or PyTorch's SDPA, whichever was measured faster at the shape. Measured
# single-threaded on the 2-core development machine (`python benchmarks/kernels.py --ops attention_sweep`,
# benchmarks/results/kernels_cpu_attention_sweep_1thread.json; H=4, Tq=93, ragged key lengths): SDPA
# takes 0.62-0.94x the kernel's time at batch 1 in 7 of 8 shapes, and 0.77-0.93x at head dim 32 with
# <= 64 keys up to batch 16; elsewhere the kernel takes 0.3-1.0x SDPA's time (it skips masked keys).
_CPU_SDPA_MAX_K_LEN_D32 = 64
_CPU_SDPA_MAX_BATCH_D32 = 16
_PREFERS_SDPA = "PyTorch SDPA: measured faster than the CPU kernel at this shape (ops._cpu_prefers_sdpa)"


def _cpu_prefers_sdpa(batch: int, k_len: int, head_dim: int) -> bool:
    return batch == 1 or (head_dim <= 32 and k_len <= _CPU_SDPA_MAX_K_LEN_D32 and batch <= _CPU_SDPA_MAX_BATCH_D32)


def _static_attention_choice(kind: str, dtype_name: str | None, head_dim: int | None) -> tuple[bool, str]:
    """The part of the decision that depends only on device, dtype and head dim (shared with describe)."""
    if not _ext.available():
        return False, f"mersdk._C is not installed ({_ext.IMPORT_ERROR})"
    if head_dim is not None and head_dim not in _ATTENTION_HEAD_DIMS:
        return False, f"head dim {head_dim} is not one of {_ATTENTION_HEAD_DIMS}"
    if kind == "cpu":
        if dtype_name not in (None, "float32"):
            return False, f"the CPU kernel takes float32, not {dtype_name}"
        return True, "compiled CPU kernel"
    if kind == "cuda":
        if not extension_has_cuda():
            return False, "mersdk._C was built without CUDA"
        if dtype_name not in (None, "float32", "float16", "bfloat16"):
            return False, f"the CUDA kernel takes float32/float16/bfloat16, not {dtype_name}"
        return True, "compiled CUDA kernel"
    return False, f"no kernel for device type {kind!r}"


def attention_kernel_for(q, k) -> tuple[bool, str]:
    """(uses the compiled kernel?, why) for masked attention on these torch tensors."""
    import torch

    if torch.compiler.is_exporting() or torch.compiler.is_compiling() or torch.jit.is_tracing():
        # an exported/compiled graph must stay portable (ONNX, TensorRT): it keeps the reference ops
        return False, "tracing for export or torch.compile: the graph keeps the reference"
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad):
        return False, "the kernel has no backward pass; autograd needs the reference"
    use, why = _static_attention_choice(q.device.type, str(q.dtype).removeprefix("torch."), q.shape[-1])
    if use and q.device.type == "cpu" and _cpu_prefers_sdpa(q.shape[0], k.shape[-2], q.shape[-1]):
        return False, _PREFERS_SDPA
    return use, why


def sdpa_attention(q, k, v, key_mask):
    """``attention.masked_attention``'s result through PyTorch's fused SDPA: rows without a valid key,
    and every row when there are no keys, are zeros."""
    import torch
    import torch.nn.functional as F

    if k.shape[-2] == 0:
        return q.new_zeros(q.shape[:-1] + (v.shape[-1],))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :])
    has_keys = key_mask.any(dim=1)[:, None, None, None]
    return torch.where(has_keys, out, torch.zeros((), dtype=out.dtype, device=out.device))


_ATTENTION_IMPLS = ("auto", "kernel", "sdpa", "reference")


def cross_attention(q, k, v, key_mask, *, impl: str = "auto"):
    """``attention.masked_attention`` (same arguments, same result), fused when a kernel applies.

    q (B, H, Tq, D); k, v (B, H, Tk, D); key_mask (B, Tk) bool, True = valid. Rows without a valid
    key -- and every row when Tk == 0, which the reference cannot take -- are zeros. ``impl``:
    "auto" (``attention_kernel_for`` decides), or "kernel" / "sdpa" / "reference" to force one
    ("kernel" raises ValueError when it cannot run on these inputs)."""
    import torch

    from .attention import masked_attention

    if impl not in _ATTENTION_IMPLS:
        raise ValueError(f"impl must be one of {_ATTENTION_IMPLS}, got {impl!r}")
    if impl == "auto":
        use_kernel, why = attention_kernel_for(q, k)
        impl = "kernel" if use_kernel else ("sdpa" if why == _PREFERS_SDPA else "reference")
    elif impl == "kernel":
        use_kernel, why = _static_attention_choice(q.device.type, str(q.dtype).removeprefix("torch."), q.shape[-1])
        if not use_kernel:
            raise ValueError(f"cross_attention(impl='kernel'): {why}")
    if impl == "sdpa":
        return sdpa_attention(q, k, v, key_mask.to(torch.bool))
    if impl == "reference":
        if k.shape[-2] == 0:
            return q.new_zeros(q.shape[:-1] + (v.shape[-1],))
        return masked_attention(q, k, v, key_mask)
    q, k, v = (t.contiguous() for t in (q, k, v))
    key_mask = key_mask.to(torch.bool).contiguous()
    out = torch.empty_like(q)
    _compiled().cross_attention(q, k, v, key_mask, out=out, scale=1.0 / math.sqrt(q.shape[-1]), stream=_stream_of(q))
    return out


def describe(device="cpu", head_dim: int | None = None) -> dict[str, str]:
    """Which implementation each hot op takes on ``device`` and why, without running anything
    (``Recognizer.info()["kernels"]``). Inference in float32 is assumed for the attention."""
    lm_use, lm_why = log_mel_kernel_for(device)
    kind = _device_type(device)
    use, why = _static_attention_choice(kind, None, head_dim)
    if not use:
        attention = f"PyTorch reference: {why}"
    elif kind == "cpu":
        attention = (
            "compiled CPU kernel, or PyTorch SDPA at the shapes where it measured faster (batch 1; head dim "
            f"32 with <= {_CPU_SDPA_MAX_K_LEN_D32} keys); training keeps the reference"
        )
    else:
        attention = f"{why} (inference; training keeps the reference)"
    return {"log_mel": lm_why if lm_use else f"NumPy reference: {lm_why}", "attention": attention}
