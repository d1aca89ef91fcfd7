"""Log-mel reference vs an independent implementation: a direct DFT (no FFT) and a filterbank built
point by point from the HTK mel formula. Tolerance: relative 1e-3 on mel power above the floor
(float32 FFT vs float64 DFT), i.e. about 1e-3 absolute on the log."""

import math

import numpy as np
import pytest

from mersdk.config import FrontendConfig
from mersdk.features import log_mel, log_mel_batch, mel_filterbank

CFG = FrontendConfig()


def independent_log_mel(x: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    n_fft, hop = cfg.n_fft, cfg.hop_length
    padded = np.concatenate([np.zeros(n_fft // 2), x.astype(np.float64), np.zeros(n_fft)])
    n_frames = 1 + len(x) // hop
    n = np.arange(n_fft)
    window = 0.5 - 0.5 * np.cos(2 * math.pi * n / n_fft)
    k = np.arange(n_fft // 2 + 1)[:, None]
    basis = np.exp(-2j * math.pi * k * n[None, :] / n_fft)  # (bins, n_fft) direct DFT
    frames = np.stack([padded[t * hop : t * hop + n_fft] * window for t in range(n_frames)])
    power = np.abs(frames @ basis.T) ** 2
    mel = lambda f: 2595.0 * math.log10(1 + f / 700.0)
    imel = lambda m: 700.0 * (10 ** (m / 2595.0) - 1)
    lo, hi = mel(cfg.f_min), mel(cfg.f_max)
    edges = [imel(lo + (hi - lo) * i / (cfg.n_mels + 1)) for i in range(cfg.n_mels + 2)]
    freqs = [b * cfg.sample_rate / n_fft for b in range(n_fft // 2 + 1)]
    fb = np.zeros((cfg.n_mels, len(freqs)))
    for m in range(cfg.n_mels):
        a, c, b = edges[m], edges[m + 1], edges[m + 2]
        for j, f in enumerate(freqs):
            if a < f <= c:
                fb[m, j] = (f - a) / (c - a)
            elif c < f < b:
                fb[m, j] = (b - f) / (b - c)
    return np.log(np.maximum(power @ fb.T, cfg.log_floor)).T


@pytest.mark.parametrize("n", [1, 97, 1025, 16000 * 3 + 17])
def test_log_mel_matches_direct_dft(n):
    rng = np.random.default_rng(n)
    x = (0.3 * rng.standard_normal(n)).astype(np.float32)
    got, want = log_mel(x, CFG), independent_log_mel(x, CFG)
    assert got.shape == (CFG.n_mels, 1 + n // CFG.hop_length) == want.shape
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=2e-3, rtol=0)


def test_filterbank_matches_pointwise_formula():
    fb = mel_filterbank(CFG.sample_rate, CFG.n_fft, CFG.n_mels, CFG.f_min, CFG.f_max)
    assert fb.shape == (CFG.n_mels, CFG.n_fft // 2 + 1)
    assert (fb >= 0).all() and fb.max() <= 1.0
    assert (fb.sum(axis=1) > 0).all(), "every mel band must cover at least one FFT bin"


def test_silent_and_loud_input():
    silent = log_mel(np.zeros(16000, np.float32), CFG)
    assert np.all(silent == np.float32(math.log(CFG.log_floor)))
    loud = 1e4 * np.sin(np.arange(16000) * 0.1).astype(np.float32)
    out = log_mel(loud, CFG)
    assert np.isfinite(out).all()
    want = independent_log_mel(loud, CFG)
    # float32 FFT keeps about 7 digits: bands more than 90 dB below their frame's peak are rounding
    # noise in any float32 implementation, so they are compared only for finiteness
    meaningful = want > want.max(axis=0, keepdims=True) - math.log(1e9)
    np.testing.assert_allclose(out[meaningful], want[meaningful], atol=2e-3)


def test_sine_peaks_in_the_right_band():
    sr, f = CFG.sample_rate, 1000.0
    x = np.sin(2 * np.pi * f * np.arange(sr) / sr).astype(np.float32)
    band = int(np.argmax(log_mel(x, CFG)[:, 10]))
    fb = mel_filterbank(CFG.sample_rate, CFG.n_fft, CFG.n_mels, CFG.f_min, CFG.f_max)
    bin_1k = round(f * CFG.n_fft / sr)
    assert band == int(np.argmax(fb[:, bin_1k]))


def test_batch_padding_leaves_real_frames_unchanged():
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(n).astype(np.float32) for n in (5000, 16000, 321)]
    mels, lengths = log_mel_batch(xs, CFG)
    assert list(lengths) == [1 + len(x) // CFG.hop_length for x in xs]
    for i, x in enumerate(xs):
        np.testing.assert_array_equal(mels[i, :, : lengths[i]], log_mel(x, CFG))
        assert (mels[i, :, lengths[i] :] == 0).all()


def librosa_reference():
    """librosa 0.11's filterbanks, stored by tests/data/make_librosa_mel_reference.py."""
    import json
    from pathlib import Path

    ref = np.load(Path(__file__).parent / "data" / "librosa_mel_reference.npz")
    cases = json.loads(str(ref["cases"]))["cases"]
    return [(tuple(c), ref[f"fb{i}"]) for i, c in enumerate(cases)]


@pytest.mark.parametrize("case,want", librosa_reference(), ids=lambda v: str(v) if isinstance(v, tuple) else "")
def test_filterbank_matches_librosa(case, want):
    """Slaney scale with and without area norm, and HTK, against librosa.filters.mel; float32 filters,
    compared relative to each filter's peak (librosa computes in float64 then casts too)."""
    sr, n_fft, n_mels, fmin, fmax, htk, norm = case
    got = mel_filterbank(sr, n_fft, n_mels, fmin, fmax, "htk" if htk else "slaney", norm)
    assert got.shape == want.shape == (n_mels, n_fft // 2 + 1)
    peak = want.max(axis=1, keepdims=True)
    np.testing.assert_allclose(got / peak, want / peak, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(got > 0, want > 0)


def test_log10_1p_compression_matches_definition():
    """musicnn's compression: log10(1 + log_gain * mel power), from the same mel power as "log"."""
    rng = np.random.default_rng(5)
    x = (0.3 * rng.standard_normal(16000)).astype(np.float32)
    log_cfg = FrontendConfig(mel_scale="slaney", mel_norm="slaney")
    musicnn = FrontendConfig(mel_scale="slaney", mel_norm="slaney", compression="log10_1p", log_gain=10000.0)
    power = np.exp(log_mel(x, log_cfg).astype(np.float64))  # every band is above the floor for this noise
    assert power.min() > log_cfg.log_floor
    np.testing.assert_allclose(log_mel(x, musicnn), np.log10(1 + 10000.0 * power), rtol=1e-5, atol=1e-6)
