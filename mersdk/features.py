"""Log-mel spectrogram: the NumPy reference.

This is the CPU path of the SDK and the oracle every faster implementation (the compiled kernels in
``csrc/ops/log_mel*``) is tested against. Definition, for a mono float32 signal x of n samples:

1. pad n_fft//2 zeros on both sides (centred frames, zero padding; see ``FrontendConfig``);
2. frame t covers padded[t*hop : t*hop + n_fft], for t in [0, 1 + n//hop);
3. multiply by a periodic Hann window of length n_fft;
4. power spectrum |rfft|^2 (n_fft//2 + 1 bins);
5. project with the HTK-scale triangular mel filterbank (peak 1, no area normalisation);
6. natural log of max(mel, log_floor).

Output layout: (n_mels, n_frames), float32.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .config import FrontendConfig


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """(n_mels, n_fft//2+1) float32 triangular filters on the HTK mel scale, peak 1."""
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    mel_pts = np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2)
    hz_pts = mel_to_hz(mel_pts)
    lower, centre, upper = hz_pts[:-2, None], hz_pts[1:-1, None], hz_pts[2:, None]
    up = (fft_freqs[None, :] - lower) / (centre - lower)
    down = (upper - fft_freqs[None, :]) / (upper - centre)
    fb = np.maximum(0.0, np.minimum(up, down))
    fb.setflags(write=False)
    return fb.astype(np.float32)


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
    return np.lib.stride_tricks.as_strided(
        padded, shape=(n_frames, n_fft), strides=(hop * 4, 4), writeable=False
    )


def log_mel(x: np.ndarray, cfg: FrontendConfig = FrontendConfig()) -> np.ndarray:
    """Log-mel spectrogram (n_mels, 1 + len(x)//hop) of a mono float32 signal at cfg.sample_rate."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"log_mel expects a 1-D signal, got shape {x.shape}")
    frames = frame_signal(x, cfg.n_fft, cfg.hop_length) * hann_window(cfg.n_fft)
    spec = np.fft.rfft(frames, axis=-1)
    power = (spec.real.astype(np.float32) ** 2 + spec.imag.astype(np.float32) ** 2)
    fb = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max)
    mel = power @ fb.T  # (frames, n_mels)
    return np.log(np.maximum(mel, cfg.log_floor)).T.astype(np.float32, copy=False)


def log_mel_batch(signals: list[np.ndarray], cfg: FrontendConfig = FrontendConfig()):
    """Batch of log-mels zero-padded in time: returns (mels (B, n_mels, T), lengths (B,) int64).

    Padded frames are 0 (the model masks them)."""
    mels = [log_mel(s, cfg) for s in signals]
    lengths = np.array([m.shape[1] for m in mels], dtype=np.int64)
    out = np.zeros((len(mels), cfg.n_mels, int(lengths.max())), dtype=np.float32)
    for i, m in enumerate(mels):
        out[i, :, : m.shape[1]] = m
    return out, lengths
