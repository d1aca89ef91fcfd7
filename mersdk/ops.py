"""Fast paths for the two hot spots -- the batch log-mel and the masked cross-attention -- with the
references as fallback. This is the one place that decides whether a compiled kernel (``mersdk._C``)
runs: it does when the extension is present, was built for the input's device, and supports the
dtype/shape; otherwise the reference runs (``mersdk.features.log_mel_batch``,
``mersdk.model.masked_attention``). ``kernel_for(...)`` says which one a call would use and why.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import _ext
from .config import FrontendConfig
from .features import hann_window, log_mel_batch, mel_filterbank
from .model import masked_attention

_ATTENTION_HEAD_DIMS = (32, 64, 128)
_CUDA_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def extension_has_cuda() -> bool:
    return _ext.available() and bool(_ext.build_info().get("cuda", False))


def _stream_of(t: torch.Tensor) -> int:
    return torch.cuda.current_stream(t.device).cuda_stream if t.is_cuda else 0


# --------------------------------------------------------------------------------------------------
# log-mel


def log_mel_kernel_for(device: torch.device | str) -> tuple[bool, str]:
    """(uses the compiled kernel?, why) for a log-mel input on `device`."""
    device = torch.device(device)
    if not _ext.available():
        return False, f"mersdk._C is not installed ({_ext.IMPORT_ERROR})"
    if device.type == "cpu":
        return True, "compiled CPU kernel"
    if device.type == "cuda":
        if not extension_has_cuda():
            return False, "mersdk._C was built without CUDA"
        return True, "compiled CUDA kernel"
    return False, f"no kernel for device type {device.type!r}"


def _stack(signals) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([len(s) for s in signals], dtype=np.int64)
    batch = np.zeros((len(signals), int(lengths.max()) if len(signals) else 0), dtype=np.float32)
    for i, s in enumerate(signals):
        batch[i, : len(s)] = np.asarray(s, dtype=np.float32)
    return batch, lengths


def log_mel_batch_fast(signals, cfg: FrontendConfig = FrontendConfig(), lengths=None, *, out_dtype=None):
    """Batch log-mel with the definition (and the output) of ``features.log_mel_batch``.

    signals: a list of 1-D float arrays, or a (B, N) float32 NumPy array / torch tensor whose row b
    holds lengths[b] valid samples (``lengths`` (B,) ints; default: all N). Returns (mels (B, n_mels,
    T), frame lengths (B,) int64): NumPy for list / NumPy input; torch tensors on the input's device
    for torch input. ``out_dtype`` (torch dtype, CUDA only): float32 (default), float16 or bfloat16.
    """
    if isinstance(signals, torch.Tensor):
        return _log_mel_torch(signals, cfg, lengths, out_dtype)
    if isinstance(signals, np.ndarray) and signals.ndim == 2:
        batch = np.ascontiguousarray(signals, dtype=np.float32)
        lens = np.full(batch.shape[0], batch.shape[1], np.int64) if lengths is None else np.asarray(lengths, np.int64)
    else:
        if lengths is not None:
            raise ValueError("lengths is only for a (B, N) batch; a list of signals carries its own")
        batch, lens = _stack(list(signals))
    if len(lens) == 0:
        raise ValueError("log_mel_batch_fast: the batch is empty")
    use_kernel, _ = log_mel_kernel_for("cpu")
    if not use_kernel:
        return log_mel_batch([batch[i, : lens[i]] for i in range(len(lens))], cfg)
    mels = _ext._C.log_mel(batch, lens, *_frontend_constants(cfg), hop=cfg.hop_length, log_floor=cfg.log_floor)
    return mels, 1 + lens // cfg.hop_length


def _frontend_constants(cfg: FrontendConfig) -> tuple[np.ndarray, np.ndarray]:
    return hann_window(cfg.n_fft), mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max)


def _log_mel_torch(signals: torch.Tensor, cfg, lengths, out_dtype):
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
    _ext._C.log_mel(x, lens, *_frontend_constants(cfg), hop=cfg.hop_length, log_floor=cfg.log_floor, out=out,
                    stream=_stream_of(x))
    return out, frame_lengths


# --------------------------------------------------------------------------------------------------
# cross-attention


def attention_kernel_for(q: torch.Tensor, k: torch.Tensor) -> tuple[bool, str]:
    """(uses the compiled kernel?, why) for masked attention on these inputs."""
    if not _ext.available():
        return False, f"mersdk._C is not installed ({_ext.IMPORT_ERROR})"
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad):
        return False, "the kernel has no backward pass; autograd needs the reference"
    if q.shape[-1] not in _ATTENTION_HEAD_DIMS:
        return False, f"head dim {q.shape[-1]} is not one of {_ATTENTION_HEAD_DIMS}"
    if q.device.type == "cpu":
        if q.dtype != torch.float32:
            return False, f"the CPU kernel takes float32, not {q.dtype}"
        return True, "compiled CPU kernel"
    if q.device.type == "cuda":
        if not extension_has_cuda():
            return False, "mersdk._C was built without CUDA"
        if q.dtype not in _CUDA_FLOAT_DTYPES:
            return False, f"the CUDA kernel takes float32/float16/bfloat16, not {q.dtype}"
        return True, "compiled CUDA kernel"
    return False, f"no kernel for device type {q.device.type!r}"


def cross_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
    """``model.masked_attention`` (same arguments, same result), fused when a kernel applies.

    q (B, H, Tq, D); k, v (B, H, Tk, D); key_mask (B, Tk) bool, True = valid. Rows without a valid
    key -- and every row when Tk == 0, which the reference cannot take -- are zeros."""
    if k.shape[-2] == 0 and not attention_kernel_for(q, k)[0]:
        return q.new_zeros(q.shape[:-1] + (v.shape[-1],))
    if not attention_kernel_for(q, k)[0]:
        return masked_attention(q, k, v, key_mask)
    q, k, v = (t.contiguous() for t in (q, k, v))
    key_mask = key_mask.to(torch.bool).contiguous()
    out = torch.empty_like(q)
    _ext._C.cross_attention(q, k, v, key_mask, out=out, scale=1.0 / math.sqrt(q.shape[-1]), stream=_stream_of(q))
    return out
