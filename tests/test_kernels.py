"""Tests of the compiled kernels (mersdk._C via mersdk.ops) against the references.

Every body runs for each device: 'cpu' always (when the extension is built), 'cuda' only with a GPU
and a CUDA build -- otherwise it is skipped with the reason. Tolerances, per output dtype:

* log-mel, fp32 output: compared as mel power P (the compression inverted: exp(y) for "log",
  (10^y - 1) / log_gain for "log10_1p") against features.log_mel_batch, with
  |P - P_ref| <= 1e-4 * P_ref + 1e-6 * (the row's peak mel power) [+ 1e-6 / log_gain for
  "log10_1p": one float32 rounding of 1 + log_gain * P]. fp32 FFT rounding is additive in
  amplitude, so weak bands are only accurate relative to the frame's energy, hence the second
  term. fp16 / bf16 output (CUDA): |log-mel - ref| <= 1e-2 / 8e-2 (one rounding of values up to
  |log(1e-5)| = 11.5, plus the fp32 error). Both compressions and both filterbanks (HTK, and
  Slaney scale + area norm, musicnn's front end) are tested; the CPU kernel also takes any n_fft.
* attention: error against a float64 reference at most 2x the error of plain PyTorch
  (model.masked_attention) at the same precision on the same device, plus a floor of
  1e-6 (fp32), 1e-3 (fp16), 8e-3 (bf16).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from mersdk import _ext, ops
from mersdk.config import MUSICNN_FRONTEND, FrontendConfig
from mersdk.features import hann_window, log_mel_batch, mel_filterbank
from mersdk.model import masked_attention

CFG = FrontendConfig()
MUSICNN = MUSICNN_FRONTEND  # Slaney filterbank, log10(1 + 10000 * P) compression (issue 10)
FRONTENDS = {"default": CFG, "musicnn": MUSICNN}
SR = CFG.sample_rate
DEVICES = ["cpu", "cuda"]


def require_kernel(device: str) -> None:
    if not _ext.available():
        pytest.skip(f"mersdk._C is not built: {_ext.IMPORT_ERROR}")
    if device == "cuda":
        if not torch.cuda.is_available():
            pytest.skip("no CUDA GPU here (torch.cuda.is_available() is False)")
        if not ops.extension_has_cuda():
            pytest.skip("mersdk._C was built without CUDA (MERSDK_CUDA=OFF or no nvcc)")


# --------------------------------------------------------------------------------------------------
# log-mel


def make_signal(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SR
    if kind == "noise":
        x = 0.1 * rng.standard_normal(n)
    elif kind == "tone":  # energy in one band: the others test accuracy far below the peak
        x = 0.5 * np.sin(2 * np.pi * 440.0 * t) + 1e-3 * rng.standard_normal(n)
    elif kind == "chirp":
        x = 0.3 * np.sin(2 * np.pi * (50.0 * t + 2000.0 * t * t))
    elif kind == "silent":
        x = np.zeros(n)
    elif kind == "loud":
        x = 1e4 * rng.standard_normal(n)
    else:
        raise AssertionError(kind)
    return x.astype(np.float32)


LOG_MEL_LOG_ATOL = {torch.float16: 1e-2, torch.bfloat16: 8e-2}


def mel_power(y: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """The compression inverted (float64)."""
    if cfg.compression == "log10_1p":
        return (10.0**y - 1.0) / cfg.log_gain
    return np.exp(y)


def assert_log_mel_close(got: np.ndarray, ref: np.ndarray, frames: np.ndarray, out_dtype=torch.float32, cfg=CFG):
    assert got.shape == ref.shape
    for b, n in enumerate(frames):
        assert np.all(got[b, :, n:] == 0.0), f"row {b}: padded frames must be 0"
        g, r = got[b, :, :n].astype(np.float64), ref[b, :, :n].astype(np.float64)
        assert np.all(np.isfinite(g))
        if out_dtype == torch.float32:
            pg, pr = mel_power(g, cfg), mel_power(r, cfg)
            bound = 1e-4 * pr + 1e-6 * pr.max()
            if cfg.compression == "log10_1p":
                bound += 1e-6 / cfg.log_gain
            worst = np.max(np.abs(pg - pr) - bound)
            assert worst <= 0, f"row {b}: mel power error exceeds the bound by {worst:.3g}"
        else:
            err = np.max(np.abs(g - r))
            assert err <= LOG_MEL_LOG_ATOL[out_dtype], f"row {b}: log-mel error {err:.3g}"


def run_log_mel(signals: list[np.ndarray], device: str, out_dtype=torch.float32, cfg=CFG):
    lengths = np.array([len(s) for s in signals], np.int64)
    batch = np.zeros((len(signals), max(1, int(lengths.max()))), np.float32)
    for i, s in enumerate(signals):
        batch[i, : len(s)] = s
    x = torch.from_numpy(batch).to(device)
    assert ops.log_mel_kernel_for(device)[0], "the test must exercise the kernel, not the fallback"
    mels, frames = ops.log_mel_batch_fast(x, cfg, lengths, out_dtype=out_dtype)
    assert mels.device.type == device and mels.dtype == out_dtype
    return mels.float().cpu().numpy(), frames.cpu().numpy()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("frontend", list(FRONTENDS))
@pytest.mark.parametrize("n", [1, 97, 1025, 30 * SR])
@pytest.mark.parametrize("kind", ["noise", "tone", "silent", "loud"])
def test_log_mel_matches_reference(device, frontend, n, kind):
    require_kernel(device)
    cfg = FRONTENDS[frontend]
    x = make_signal(kind, n, np.random.default_rng(n))
    got, frames = run_log_mel([x], device, cfg=cfg)
    ref, ref_frames = log_mel_batch([x], cfg)
    np.testing.assert_array_equal(frames, ref_frames)
    assert_log_mel_close(got, ref, frames, cfg=cfg)
    if kind == "silent":  # every valid frame is exactly the floor (log) or exactly 0 (log10_1p)
        floor = np.log(np.float32(cfg.log_floor)) if cfg.compression == "log" else 0.0
        np.testing.assert_allclose(got, floor, rtol=1e-6, atol=0)


@pytest.mark.parametrize("compression", ["log", "log10_1p"])
@pytest.mark.parametrize("n_fft,hop,n_mels", [(400, 160, 40), (1023, 97, 80), (2048, 512, 128)])
def test_log_mel_cpu_odd_front_ends(compression, n_fft, hop, n_mels):
    """The CPU kernel takes any n_fft (pocketfft is mixed-radix): odd and non-power-of-two sizes,
    odd hops, a Slaney filterbank, either compression, a ragged batch."""
    require_kernel("cpu")
    cfg = FrontendConfig(
        sample_rate=22050,
        n_fft=n_fft,
        hop_length=hop,
        n_mels=n_mels,
        f_min=20.0,
        f_max=11025.0,
        mel_scale="slaney",
        mel_norm="slaney",
        compression=compression,
        log_gain=100.0,
    )
    rng = np.random.default_rng(n_fft)
    signals = [
        make_signal(kind, n, rng)
        for n, kind in [(5, "noise"), (n_fft + 1, "tone"), (22050 + 13, "chirp"), (3000, "loud")]
    ]
    got, frames = run_log_mel(signals, "cpu", cfg=cfg)
    ref, ref_frames = log_mel_batch(signals, cfg)
    np.testing.assert_array_equal(frames, ref_frames)
    assert_log_mel_close(got, ref, frames, cfg=cfg)


def device_dtype_params():
    """(device, dtype) pairs a kernel supports: the CPU kernels are float32 only."""
    for device in DEVICES:
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            if device == "cpu" and dtype != torch.float32:
                continue
            yield pytest.param(device, dtype, id=f"{device}-{str(dtype).split('.')[-1]}")


@pytest.mark.parametrize("device,out_dtype", list(device_dtype_params()))
@pytest.mark.parametrize("frontend", list(FRONTENDS))
def test_log_mel_ragged_batch(device, out_dtype, frontend):
    """Batch of 7 rows of different lengths and kinds: padding must never leak into a row."""
    require_kernel(device)
    cfg = FRONTENDS[frontend]
    rng = np.random.default_rng(7)
    specs = [
        (0, "noise"),
        (1, "loud"),
        (97, "tone"),
        (1025, "chirp"),
        (16000, "silent"),
        (30 * SR, "chirp"),
        (12345, "noise"),
    ]
    signals = [make_signal(kind, n, rng) for n, kind in specs]
    got, frames = run_log_mel(signals, device, out_dtype, cfg=cfg)
    ref, ref_frames = log_mel_batch(signals, cfg)
    np.testing.assert_array_equal(frames, ref_frames)
    assert_log_mel_close(got, ref, frames, out_dtype, cfg=cfg)


@pytest.mark.parametrize("device", DEVICES)
def test_log_mel_ignores_samples_beyond_length(device):
    """Garbage after lengths[b] must read as zero, as the reference's zero padding does."""
    require_kernel(device)
    rng = np.random.default_rng(3)
    x = make_signal("noise", 5000, rng)
    batch = np.stack([x, 1e3 * rng.standard_normal(5000).astype(np.float32)])
    lengths = np.array([3000, 4321], np.int64)
    mels, frames = ops.log_mel_batch_fast(torch.from_numpy(batch).to(device), CFG, lengths)
    ref, ref_frames = log_mel_batch([batch[0, :3000], batch[1, :4321]], CFG)
    np.testing.assert_array_equal(frames.cpu().numpy(), ref_frames)
    assert_log_mel_close(mels.cpu().numpy(), ref, ref_frames)


@pytest.mark.parametrize("frontend", list(FRONTENDS))
def test_log_mel_numpy_list_input_matches_reference(frontend, monkeypatch):
    """NumPy input takes the kernel for both compressions (no NumPy fallback for "log10_1p")."""
    require_kernel("cpu")
    cfg = FRONTENDS[frontend]
    monkeypatch.setattr(ops, "log_mel_batch", lambda *a, **k: pytest.fail("took the NumPy fallback"))
    rng = np.random.default_rng(11)
    signals = [make_signal("noise", n, rng) for n in (400, 97, 3001)]
    got, frames = ops.log_mel_batch_fast(signals, cfg)
    ref, ref_frames = log_mel_batch(signals, cfg)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    np.testing.assert_array_equal(frames, ref_frames)
    assert_log_mel_close(got, ref, frames, cfg=cfg)


@pytest.mark.parametrize("frontend", list(FRONTENDS))
def test_log_mel_falls_back_without_extension(frontend, monkeypatch):
    cfg = FRONTENDS[frontend]
    signals = [make_signal("noise", n, np.random.default_rng(n)) for n in (500, 2000)]
    monkeypatch.setattr(_ext, "_C", None)
    assert ops.log_mel_kernel_for("cpu")[0] is False
    got, frames = ops.log_mel_batch_fast(signals, cfg)
    ref, ref_frames = log_mel_batch(signals, cfg)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(frames, ref_frames)


# --------------------------------------------------------------------------------------------------
# cross-attention

ATTN_FLOOR = {torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3}


def attention_inputs(B, H, Tq, Tk, D, device, dtype, seed, q_scale=1.0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, Tq, D, generator=g, dtype=torch.float64) * q_scale
    k = torch.randn(B, H, Tk, D, generator=g, dtype=torch.float64)
    v = torch.randn(B, H, Tk, D, generator=g, dtype=torch.float64)
    mask = torch.rand(B, Tk, generator=g) > 0.3
    if B > 1:
        mask[1] = False  # a row with no lyrics at all
    q, k, v = (t.to(dtype).to(torch.float64) for t in (q, k, v))  # the inputs exactly as the kernel sees them
    return q, k, v, mask


def reference64(q, k, v, mask):
    if k.shape[2] == 0:  # the reference cannot reduce over no keys; the defined answer is zeros
        return torch.zeros_like(q)
    return masked_attention(q, k, v, mask)


def check_attention(q64, k64, v64, mask, device, dtype):
    ref = reference64(q64, k64, v64, mask)
    q, k, v, m = (t.to(device) for t in (q64.to(dtype), k64.to(dtype), v64.to(dtype), mask))
    out = ops.cross_attention(q, k, v, m, impl="kernel")  # the kernel, whatever the shape rule prefers
    assert out.dtype == dtype and out.shape == q.shape and out.device.type == device
    err = (out.double().cpu() - ref).abs().max().item() if out.numel() else 0.0
    torch_out = reference64(q, k, v, m) if k.shape[2] else torch.zeros_like(q)
    err_torch = (torch_out.double().cpu() - ref).abs().max().item() if out.numel() else 0.0
    assert err <= 2 * err_torch + ATTN_FLOOR[dtype], f"kernel error {err:.3g} vs PyTorch {err_torch:.3g}"
    empty_rows = ~mask.any(dim=1)
    assert torch.all(out.cpu()[empty_rows] == 0), "rows with no valid key must be exactly zero"


@pytest.mark.parametrize("device,dtype", list(device_dtype_params()))
@pytest.mark.parametrize("B", [1, 7])
@pytest.mark.parametrize("Tk", [0, 1, 77, 512])
@pytest.mark.parametrize("D", [32, 64, 128])
def test_attention_matches_reference(device, dtype, B, Tk, D):
    require_kernel(device)
    Tq = 93 if D == 64 else 17  # the model's audio token count, and an odd tile remainder
    check_attention(*attention_inputs(B, 4, Tq, Tk, D, device, dtype, seed=B * 1000 + Tk + D), device, dtype)


@pytest.mark.parametrize("device,dtype", list(device_dtype_params()))
def test_attention_peaked_softmax(device, dtype):
    """Large logits: the online rescaling must keep the max-subtraction exact across key tiles."""
    require_kernel(device)
    check_attention(*attention_inputs(3, 4, 33, 300, 64, device, dtype, seed=5, q_scale=12.0), device, dtype)


@pytest.mark.parametrize("device,dtype", list(device_dtype_params()))
def test_attention_all_keys_masked(device, dtype):
    require_kernel(device)
    q, k, v, _ = attention_inputs(3, 4, 9, 40, 64, device, dtype, seed=2)
    mask = torch.zeros(3, 40, dtype=torch.bool)
    for impl in ("kernel", "sdpa", "reference"):
        out = ops.cross_attention(
            q.to(dtype).to(device), k.to(dtype).to(device), v.to(dtype).to(device), mask.to(device), impl=impl
        )
        assert torch.all(out == 0) and not torch.isnan(out).any(), impl


@pytest.mark.parametrize("B,Tk,D", [(1, 0, 32), (1, 77, 64), (3, 40, 32), (5, 256, 32), (7, 93, 64)])
def test_attention_sdpa_path_matches_reference(B, Tk, D):
    """The SDPA path ops takes on CPU where it is faster gives the reference's result (zeros for
    rows without keys, Tk = 0 included); float32 tolerance as for the kernel."""
    q, k, v, mask = attention_inputs(B, 4, 17, Tk, D, "cpu", torch.float32, seed=B + Tk)
    ref = reference64(q, k, v, mask)
    out = ops.sdpa_attention(q.float(), k.float(), v.float(), mask)
    torch_out = reference64(q.float(), k.float(), v.float(), mask)
    err, err_torch = ((o.double() - ref).abs().max().item() if o.numel() else 0.0 for o in (out, torch_out))
    assert err <= 2 * err_torch + ATTN_FLOOR[torch.float32]


def test_cpu_attention_choice_follows_the_measured_rule():
    """auto on CPU: SDPA at batch 1 and at head dim 32 with few keys, the kernel elsewhere (see ops)."""
    require_kernel("cpu")
    cases = {
        (1, 256, 64): "sdpa",
        (1, 77, 32): "sdpa",
        (8, 40, 32): "sdpa",
        (4, 93, 32): "kernel",
        (32, 16, 32): "kernel",
        (2, 16, 64): "kernel",
        (16, 256, 64): "kernel",
    }
    for (B, Tk, D), want in cases.items():
        q, k = torch.zeros(B, 4, 9, D), torch.zeros(B, 4, Tk, D)
        use, why = ops.attention_kernel_for(q, k)
        assert ("kernel" if use else "sdpa") == want and (use or "SDPA" in why), (B, Tk, D, why)


def test_attention_impl_kernel_refuses_what_it_cannot_run():
    require_kernel("cpu")
    q = torch.zeros(1, 4, 3, 48)
    with pytest.raises(ValueError, match="head dim"):
        ops.cross_attention(q, q, q, torch.ones(1, 3, dtype=torch.bool), impl="kernel")
    with pytest.raises(ValueError, match="impl must be"):
        ops.cross_attention(q, q, q, torch.ones(1, 3, dtype=torch.bool), impl="fast")


def test_attention_falls_back_for_autograd():
    require_kernel("cpu")
    q, k, v, mask = attention_inputs(2, 4, 5, 6, 64, "cpu", torch.float32, seed=1)
    q = q.float().requires_grad_()
    assert ops.attention_kernel_for(q, k)[0] is False
    out = ops.cross_attention(q, k.float(), v.float(), mask)
    out.sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


# --------------------------------------------------------------------------------------------------
# the bindings: array kinds and input checks


def log_mel_args(B=2, N=4000):
    x = np.random.default_rng(0).standard_normal((B, N)).astype(np.float32)
    lengths = np.full(B, N, np.int64)
    fb = mel_filterbank(CFG.sample_rate, CFG.n_fft, CFG.n_mels, CFG.f_min, CFG.f_max)
    return x, lengths, hann_window(CFG.n_fft), fb


def call_log_mel(x, lengths, window, fb, **kw):
    return _ext._C.log_mel(x, lengths, window, fb, **{"hop": CFG.hop_length, "log_floor": CFG.log_floor, **kw})


def test_log_mel_dlpack_matches_numpy_path():
    require_kernel("cpu")
    x, lengths, window, fb = log_mel_args()
    via_numpy = call_log_mel(x, lengths, window, fb)
    out = torch.full(via_numpy.shape, float("nan"))
    via_dlpack = call_log_mel(torch.from_numpy(x), lengths, window, fb, out=out)
    assert via_dlpack is out
    np.testing.assert_array_equal(out.numpy(), via_numpy)


@pytest.mark.parametrize(
    "change,error,message",
    [
        (lambda a: {**a, "x": a["x"].astype(np.float64)}, TypeError, "float32"),
        (lambda a: {**a, "x": a["x"][0]}, ValueError, "2 dimensions"),
        (lambda a: {**a, "x": np.asfortranarray(a["x"])}, ValueError, "C-contiguous"),
        (lambda a: {**a, "x": torch.from_numpy(a["x"]).t().contiguous().t()}, ValueError, "C-contiguous"),
        (lambda a: {**a, "x": a["x"].tolist()}, TypeError, "NumPy array"),
        (lambda a: {**a, "lengths": a["lengths"].astype(np.int32)}, TypeError, "int64"),
        (lambda a: {**a, "lengths": a["lengths"] + 1}, ValueError, "outside"),
        (lambda a: {**a, "lengths": a["lengths"][:1]}, ValueError, "batch size"),
        (lambda a: {**a, "fb": a["fb"][:, :-1].copy()}, ValueError, "n_fft//2 + 1"),
        (lambda a: {**a, "out": np.zeros((2, 64, 3), np.float32)}, ValueError, "max(lengths)"),
        (lambda a: {**a, "out": np.zeros((2, 64, 13), np.float64)}, TypeError, "float32"),
        (lambda a: {**a, "compression": "log2"}, ValueError, "compression must be"),
        (lambda a: {**a, "compression": "log10_1p", "log_gain": 0.0}, ValueError, "log_gain"),
        (lambda a: {**a, "compression": "log10_1p", "log_gain": float("inf")}, ValueError, "log_gain"),
        (lambda a: {**a, "compression": "log10_1p", "log_gain": 1e300}, ValueError, "log_gain"),
        (lambda a: {**a, "log_floor": float("nan")}, ValueError, "log_floor"),
    ],
)
def test_log_mel_rejects_bad_input(change, error, message):
    require_kernel("cpu")
    x, lengths, window, fb = log_mel_args()
    a = change({"x": x, "lengths": lengths, "fb": fb})
    kw = {key: a[key] for key in ("out", "compression", "log_gain", "log_floor") if key in a}
    with pytest.raises(error, match=re.escape(message)):
        call_log_mel(a["x"], a["lengths"], window, a["fb"], **kw)


def attention_args():
    q, k, v, mask = attention_inputs(2, 4, 5, 6, 64, "cpu", torch.float32, seed=0)
    return {"q": q.float().numpy(), "k": k.float().numpy(), "v": v.float().numpy(), "mask": mask.numpy()}


def readonly(a):
    a = a.copy()
    a.setflags(write=False)
    return a


@pytest.mark.parametrize(
    "change,error,message",
    [
        (lambda a: {**a, "q": a["q"].astype(np.float64)}, TypeError, "float32"),
        (lambda a: {**a, "k": a["k"].astype(np.float16)}, TypeError, "differs"),
        (lambda a: {**a, "q": np.zeros((2, 4, 5, 48), np.float32)}, ValueError, "head dim"),
        (lambda a: {**a, "k": a["k"][:1].copy()}, ValueError, "batch"),
        (lambda a: {**a, "v": a["v"][:, :, :3].copy()}, ValueError, "k's length"),
        (lambda a: {**a, "q": np.swapaxes(np.swapaxes(a["q"], 1, 2).copy(), 1, 2)}, ValueError, "C-contiguous"),
        (lambda a: {**a, "mask": a["mask"].astype(np.float32)}, TypeError, "bool or uint8"),
        (lambda a: {**a, "mask": a["mask"][:, :3].copy()}, ValueError, "k's length"),
        (lambda a: {**a, "q": a["q"][0]}, ValueError, "4 dimensions"),
        (lambda a: {**a, "out": readonly(a["q"])}, ValueError, "writable"),
        (lambda a: {**a, "out": np.zeros((2, 4, 5, 32), np.float32)}, ValueError, "q's shape"),
    ],
)
def test_attention_rejects_bad_input(change, error, message):
    require_kernel("cpu")
    a = change(attention_args())
    kw = {"out": a["out"]} if "out" in a else {}
    with pytest.raises(error, match=re.escape(message)):
        _ext._C.cross_attention(a["q"], a["k"], a["v"], a["mask"], **kw)


class FakeCudaArray:
    """Exposes __cuda_array_interface__ for a pointer that is not device memory."""

    def __init__(self, shape, typestr="<f4"):
        self.__cuda_array_interface__ = {
            "shape": shape,
            "typestr": typestr,
            "data": (4096, False),
            "version": 3,
            "strides": None,
        }


def test_cuda_array_that_is_not_usable_is_rejected():
    """Host memory posing as CUDA (or a CPU-only build, or no driver) gives an exception, never a crash."""
    require_kernel("cpu")
    _, lengths, window, fb = log_mel_args()
    with pytest.raises((ValueError, RuntimeError), match=r"CUDA|device"):
        call_log_mel(FakeCudaArray((2, 4000)), lengths, window, fb, out=FakeCudaArray((2, 64, 13)))


def test_attention_cuda_input_needs_out():
    require_kernel("cpu")
    fake = FakeCudaArray((1, 1, 1, 64))
    with pytest.raises((ValueError, RuntimeError), match=r"out|CUDA|device"):
        _ext._C.cross_attention(fake, fake, fake, FakeCudaArray((1, 1), "|b1"))
