"""The compiled kernels inside the SDK: the model and the Recognizer use them where they apply
(``mersdk.ops`` decides), with results equal to the reference path, and the ``cuda`` backend."""

from __future__ import annotations

import subprocess
import sys
import tempfile

import numpy as np
import pytest
import torch

import mersdk
from mersdk import _ext, ops
from mersdk.checkpoint import read_checkpoint
from mersdk.features import log_mel_batch
from mersdk.model import EmotionModel

needs_ext = pytest.mark.skipif(not _ext.available(), reason=f"mersdk._C is not built ({_ext.IMPORT_ERROR})")


def _inputs(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    mel = torch.randn(3, cfg.frontend.n_mels, 700, generator=g) - 4
    lengths = torch.tensor([700, 451, 96])
    lyr = torch.randn(3, 77, cfg.text_encoder.hidden_size, generator=g)
    lyr_mask = torch.zeros(3, 77, dtype=torch.bool)
    lyr_mask[0, :77] = True
    lyr_mask[1, :5] = True  # row 2: no lyrics at all (every key masked)
    return mel, lengths, lyr, lyr_mask


@needs_ext
def test_model_uses_the_kernel_and_matches_the_reference(monkeypatch):
    ck = read_checkpoint(None)
    model = EmotionModel(ck.config).eval()
    from mersdk.checkpoint import load_state_dict

    load_state_dict(ck, model)
    args = _inputs(ck.config)
    calls = []
    real = _ext._C.cross_attention
    monkeypatch.setattr(_ext._C, "cross_attention", lambda *a, **k: (calls.append(1), real(*a, **k))[1], raising=False)
    with torch.inference_mode():
        fast = model(*args)
    assert calls, "inference on CPU with the extension built must take the compiled attention"
    monkeypatch.setattr(ops, "attention_kernel_for", lambda q, k: (False, "forced reference"))
    with torch.inference_mode():
        ref = model(*args)
    for key in ref:
        # float32 attention, different summation order: the kernel tests bound the op at ~1e-6
        torch.testing.assert_close(fast[key], ref[key], rtol=1e-4, atol=1e-5, msg=key)
    assert float(fast["gate"][2].abs().max()) == 0.0  # no lyrics -> no cross-modal signal


@needs_ext
def test_training_keeps_the_reference(monkeypatch):
    """Autograd needs the reference (the kernel has no backward): the choice says so."""
    q = torch.randn(2, 4, 5, 32, requires_grad=True)
    k = torch.randn(2, 4, 77, 32, requires_grad=True)  # a shape where the CPU rule picks the kernel
    use, why = ops.attention_kernel_for(q, k)
    assert not use and "backward" in why
    with torch.no_grad():
        assert ops.attention_kernel_for(q, k)[0]


@needs_ext
def test_recognizer_log_mel_is_the_kernel_and_equals_the_reference():
    rng = np.random.default_rng(3)
    windows = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16000 * 30, 8001, 12345)]
    fast, lf = ops.log_mel_batch_fast(windows)
    ref, lr = log_mel_batch(windows)
    np.testing.assert_array_equal(lf, lr)
    np.testing.assert_allclose(fast, ref, rtol=0, atol=2e-4)
    rec = mersdk.Recognizer(backend="torch")
    kernels = rec.info()["kernels"]
    assert kernels["log_mel"] == "compiled CPU kernel"
    assert kernels["attention"].startswith("compiled CPU kernel, or PyTorch SDPA")


def test_ops_import_is_torch_free():
    code = "import sys, mersdk.ops; assert 'torch' not in sys.modules, 'mersdk.ops imported torch'"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tempfile.gettempdir())
    assert r.returncode == 0, r.stderr


def test_cuda_backend_is_registered_and_says_why_it_cannot_run():
    from mersdk import backends

    assert "cuda" in backends.registered()
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the parity test below covers the cuda backend")
    reason = backends.availability("cuda")["cuda"]
    assert reason and ("driver" in reason or "GPU" in reason or "CUDA" in reason)
    with pytest.raises(mersdk.BackendUnavailableError, match="cuda"):
        mersdk.Recognizer(backend="cuda")
    with pytest.raises(ValueError, match="reduced precision"):
        mersdk.Recognizer(backend="torch", backend_options={"dtype": "float16"})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here (torch.cuda.is_available() is False)")
def test_cuda_backend_matches_cpu(recognizer):
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(16000 * 31)).astype(np.float32)
    gpu = mersdk.Recognizer(backend="cuda")
    assert gpu.info()["backend"]["name"] == "cuda"
    a = recognizer.predict(audio, "la la love in the sun", sample_rate=16000)
    b = gpu.predict(audio, "la la love in the sun", sample_rate=16000)
    assert b.backend == "cuda"
    for lab in a.probabilities:
        assert abs(a.probabilities[lab] - b.probabilities[lab]) < 1e-3
    assert abs(a.valence - b.valence) < 1e-3 and abs(a.arousal - b.arousal) < 1e-3
