"""Noise for robustness evaluation and training augmentation.

Evaluation mixes in the waveform domain: ``mix_at_snr(signal, noise, snr_db)`` scales the noise so
that 10*log10(mean(signal^2) / mean(scaled_noise^2)) equals ``snr_db`` exactly (powers over the
whole clip). Noises: white (Gaussian), pink (1/f power, shaped in the frequency domain), music
(another clip of the same split, tiled or cut to length). Every noise is drawn from a generator
seeded by (seed, dataset, clip id, noise kind), so every model and every SNR sees the same noise.

Training augments cached log-mels instead (no waveforms are kept): ``mix_mel_power`` adds noise in
the mel power domain, P_mix = P_signal + k * P_noise. That drops the signal x noise cross term of
the power spectrum, whose expectation is zero for independent signals, so it is the expected mel
power of the waveform mix; the SNR is set from the mel-band powers (30 Hz - 8 kHz).
"""

from __future__ import annotations

import zlib

import numpy as np

NOISE_KINDS = ("white", "pink", "music")


def clip_rng(seed: int, *keys: str) -> np.random.Generator:
    """A generator that depends only on the seed and the keys (stable across runs and processes)."""
    return np.random.default_rng([seed] + [zlib.crc32(k.encode()) for k in keys])


def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(n).astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with power spectral density proportional to 1/f (DC removed)."""
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.arange(n // 2 + 1, dtype=np.float64)
    f[0] = 1.0
    spec /= np.sqrt(f)
    spec[0] = 0.0
    x = np.fft.irfft(spec, n)
    return (x / (np.std(x) + 1e-12)).astype(np.float32)


def fit_length(noise: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Tile a shorter noise, or cut a random stretch of a longer one, to exactly n samples."""
    if len(noise) < n:
        noise = np.tile(noise, int(np.ceil(n / len(noise))))
    start = int(rng.integers(0, len(noise) - n + 1))
    return noise[start : start + n]


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """signal + g * noise with g chosen so the mix has exactly ``snr_db`` (see module docstring)."""
    if len(noise) != len(signal):
        raise ValueError("noise and signal must have the same length")
    p_sig = float(np.mean(signal.astype(np.float64) ** 2))
    p_noise = float(np.mean(noise.astype(np.float64) ** 2))
    if p_sig == 0.0 or p_noise == 0.0:
        return signal.astype(np.float32, copy=True)
    g = np.sqrt(p_sig / (p_noise * 10.0 ** (snr_db / 10.0)))
    return (signal + g * noise).astype(np.float32)


def make_noise(kind: str, n: int, rng: np.random.Generator, music_pool=None) -> np.ndarray:
    if kind == "white":
        return white_noise(n, rng)
    if kind == "pink":
        return pink_noise(n, rng)
    if kind == "music":
        if not music_pool:
            raise ValueError("music noise needs a pool of other clips")
        other = music_pool[int(rng.integers(len(music_pool)))]
        return fit_length(np.asarray(other, np.float32), n, rng)
    raise ValueError(f"unknown noise {kind!r}; expected one of {NOISE_KINDS}")


def mix_mel_power(log_mel_signal: np.ndarray, log_mel_noise: np.ndarray, snr_db: float, floor: float) -> np.ndarray:
    """Mel-power-domain mix of two log-mels of the same shape (training augmentation)."""
    ps = np.exp(log_mel_signal.astype(np.float32))
    pn = np.exp(log_mel_noise.astype(np.float32))
    k = ps.sum() / (pn.sum() * 10.0 ** (snr_db / 10.0) + 1e-30)
    return np.log(np.maximum(ps + k * pn, floor)).astype(np.float32)
