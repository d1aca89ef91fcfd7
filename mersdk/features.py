"""Log-mel spectrogram: the NumPy reference.

This is the CPU path of the SDK and the oracle every faster implementation (the compiled kernels in
``csrc/ops/log_mel*``) is tested against. Definition, for a mono float32 signal x of n samples:

1. pad n_fft//2 zeros on both sides (centred frames, zero padding; see ``FrontendConfig``);
2. frame t covers padded[t*hop : t*hop + n_fft], for t in [0, 1 + n//hop);
3. multiply by a periodic Hann window of length n_fft;
4. power spectrum |rfft|^2 (n_fft//2 + 1 bins);
5. project with the triangular mel filterbank: HTK scale, peak 1 (default), or librosa's Slaney
   scale, optionally area-normalised (``mel_scale``/``mel_norm``);
6. compress: natural log of max(mel, log_floor) (default), or log10(1 + log_gain * mel)
   (``compression="log10_1p"``, musicnn's).

Output layout: (n_mels, n_frames), float32.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .config import FrontendConfig
from .padding import pad_stack

_SLANEY_F_SP = 200.0 / 3  # Hz per mel below 1 kHz (linear part of Slaney's scale)
_SLANEY_MIN_LOG_HZ = 1000.0
_SLANEY_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(f, scale: str = "htk"):
    f = np.asarray(f, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    lin = f / _SLANEY_F_SP
    min_log_mel = _SLANEY_MIN_LOG_HZ / _SLANEY_F_SP
    log = min_log_mel + np.log(np.maximum(f, _SLANEY_MIN_LOG_HZ) / _SLANEY_MIN_LOG_HZ) / _SLANEY_LOGSTEP
    return np.where(f >= _SLANEY_MIN_LOG_HZ, log, lin)


def mel_to_hz(m, scale: str = "htk"):
    m = np.asarray(m, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    min_log_mel = _SLANEY_MIN_LOG_HZ / _SLANEY_F_SP
    log = _SLANEY_MIN_LOG_HZ * np.exp(_SLANEY_LOGSTEP * (m - min_log_mel))
    return np.where(m >= min_log_mel, log, _SLANEY_F_SP * m)


@lru_cache(maxsize=8)
def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float, scale: str = "htk", norm: str | None = None
) -> np.ndarray:
    """(n_mels, n_fft//2+1) float32 triangular filters, peak 1; on the HTK or Slaney mel scale;
    ``norm="slaney"`` divides each by half its bandwidth in Hz (unit area, as librosa does)."""
    fft_freqs = np.arange(n_fft // 2 + 1) * (sample_rate / n_fft)  # bin k's frequency, odd n_fft too
    mel_pts = np.linspace(hz_to_mel(f_min, scale), hz_to_mel(f_max, scale), n_mels + 2)
    hz_pts = mel_to_hz(mel_pts, scale)
    lower, centre, upper = hz_pts[:-2, None], hz_pts[1:-1, None], hz_pts[2:, None]
    up = (fft_freqs[None, :] - lower) / (centre - lower)
    down = (upper - fft_freqs[None, :]) / (upper - centre)
    fb = np.maximum(0.0, np.minimum(up, down))
    if norm == "slaney":
        fb *= (2.0 / (hz_pts[2:] - hz_pts[:-2]))[:, None]
    fb = fb.astype(np.float32)
    fb.setflags(write=False)
    return fb


def filterbank_for(cfg: FrontendConfig) -> np.ndarray:
    return mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max, cfg.mel_scale, cfg.mel_norm)


def compress(mel: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """The front end's amplitude compression of a mel power array (any layout)."""
    if cfg.compression == "log10_1p":
        return np.log10(1.0 + np.float32(cfg.log_gain) * mel)
    return np.log(np.maximum(mel, cfg.log_floor))


@lru_cache(maxsize=8)
def hann_window(n_fft: int) -> np.ndarray:
    """Periodic Hann window (the one STFT implementations use)."""
    n = np.arange(n_fft, dtype=np.float64)
    w = (0.5 - 0.5 * np.cos(2.0 * np.pi * n / n_fft)).astype(np.float32)
    w.setflags(write=False)
    return w


def frame_signal(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(n_frames, n_fft) view-copy of the zero-padded, centred frames of a 1-D signal."""
    pad = n_fft // 2
    padded = np.zeros(len(x) + 2 * pad, dtype=np.float32)
    padded[pad : pad + len(x)] = x
    n_frames = 1 + len(x) // hop
    # enough trailing room for the last frame (n_fft samples from (n_frames-1)*hop)
    need = (n_frames - 1) * hop + n_fft
    if need > len(padded):
        padded = np.concatenate([padded, np.zeros(need - len(padded), np.float32)])
    return np.lib.stride_tricks.as_strided(padded, shape=(n_frames, n_fft), strides=(hop * 4, 4), writeable=False)


def log_mel(x: np.ndarray, cfg: FrontendConfig = FrontendConfig()) -> np.ndarray:
    """Log-mel spectrogram (n_mels, 1 + len(x)//hop) of a mono float32 signal at cfg.sample_rate."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"log_mel expects a 1-D signal, got shape {x.shape}")
    frames = frame_signal(x, cfg.n_fft, cfg.hop_length) * hann_window(cfg.n_fft)
    spec = np.fft.rfft(frames, axis=-1)
    power = spec.real.astype(np.float32) ** 2 + spec.imag.astype(np.float32) ** 2
    mel = power @ filterbank_for(cfg).T  # (frames, n_mels)
    return compress(mel, cfg).T.astype(np.float32, copy=False)


def log_mel_batch(signals: list[np.ndarray], cfg: FrontendConfig = FrontendConfig()):
    """Batch of log-mels zero-padded in time: returns (mels (B, n_mels, T), lengths (B,) int64).

    Padded frames are 0 (the model masks them)."""
    return pad_stack([log_mel(s, cfg) for s in signals], axis=-1)
