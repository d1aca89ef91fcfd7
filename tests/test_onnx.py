"""The ONNX Runtime backend: parity with PyTorch through the whole Recognizer (synthetic audio
always, real clips when ../shared/data exists), no torch import, backend selection and options."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest
from conftest import DATA as SHARED_DATA  # $MERSDK_DATA or ../shared/data

from mersdk import BackendUnavailableError, Recognizer
from mersdk.export.compare import TOLERANCES, max_diffs, predict_all, shared_clips, synthetic_clips

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")
P_TOL, VA_TOL = TOLERANCES["onnx"]  # 1e-4 both; measured ~5e-8 (probabilities) and ~2e-7 (va)


@pytest.fixture(scope="module")
def recognizers(exported_ckpt):
    pytest.importorskip("torch")
    return Recognizer(exported_ckpt, backend="torch"), Recognizer(exported_ckpt, backend="onnx")


def test_parity_synthetic(recognizers):
    clips = synthetic_clips()
    ref, got = (predict_all(r, clips) for r in recognizers)
    dp, dva, where = max_diffs(ref, got)
    assert dp <= P_TOL and dva <= VA_TOL, f"max |dp| {dp:.2e}, |dva| {dva:.2e} at {where}"


def test_parity_batched_with_and_without_lyrics(recognizers):
    rng = np.random.default_rng(3)
    items = [
        ((0.1 * rng.standard_normal(n)).astype(np.float32), ly, 16000)
        for n, ly in ((16000 * 7, "la la la\nsing it loud"), (16000 * 31, None), (16000 * 2, "quiet words"))
    ]
    a, b = (r.predict_batch(items, batch_size=3) for r in recognizers)
    for x, y in zip(a, b):
        assert x.lyrics_used == y.lyrics_used
        assert abs(x.fusion_weight - y.fusion_weight) <= VA_TOL
        for t in x.task_probabilities:
            for k in x.task_probabilities[t]:
                assert abs(x.task_probabilities[t][k] - y.task_probabilities[t][k]) <= P_TOL
    assert b[1].fusion_weight == 0.0  # no lyrics: the gate is exactly zero in the ONNX graph too


def test_tokenization_matches_transformers(recognizers):
    torch_rec, onnx_rec = recognizers
    text = "Don't stop me now — I'm havin' such a good time!\n" * 60 + "naïve café, 12:30 ünïcödé"
    hf = torch_rec._backend.text_encoder.token_windows(text)
    tk = onnx_rec._backend.text_encoder.token_windows(text)
    assert len(hf) > 1 and hf == tk


@pytest.mark.data
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} not found (real clips live outside the repo)")
def test_parity_real_clips(recognizers):
    clips = shared_clips(SHARED_DATA, n=4)
    assert any(c.lyrics for c in clips)
    ref, got = (predict_all(r, clips) for r in recognizers)
    dp, dva, where = max_diffs(ref, got)
    assert dp <= P_TOL and dva <= VA_TOL, f"max |dp| {dp:.2e}, |dva| {dva:.2e} at {where}"


def test_onnx_backend_never_imports_torch(exported_ckpt):
    code = textwrap.dedent(f"""
        import sys
        class NoTorch:  # any attempt to import torch or transformers fails loudly
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "transformers"):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, NoTorch())
        import numpy as np, mersdk
        rec = mersdk.Recognizer({str(exported_ckpt)!r})
        x = (0.1 * np.random.default_rng(0).standard_normal(16000 * 5)).astype(np.float32)
        p = rec.predict(x, lyrics="hello darkness my old friend", sample_rate=16000)
        assert rec.backend == "onnx", rec.choice
        assert p.lyrics_used and 0 < p.fusion_weight <= 1
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))
        assert not bad, bad
        print("ok", rec.choice.reason)
    """)
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tempfile.gettempdir()
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("ok")


def test_auto_prefers_onnx_and_says_why(exported_ckpt):
    from mersdk import backends
    from mersdk.checkpoint import read_checkpoint

    choice = backends.choose("auto", "auto", checkpoint=read_checkpoint(exported_ckpt))
    assert choice.name == "onnx" and choice.device == "cpu"
    if backends.availability()["tensorrt"] is not None:
        assert "skipped tensorrt on cuda" in choice.reason


def test_without_export_auto_falls_back_and_explicit_fails(plain_ckpt):
    pytest.importorskip("torch")
    from mersdk import backends
    from mersdk.checkpoint import read_checkpoint

    ck = read_checkpoint(plain_ckpt)
    choice = backends.choose("auto", "cpu", checkpoint=ck)
    assert choice.name == "torch"
    assert "no ONNX export" in choice.reason and "mersdk export onnx" in choice.reason
    with pytest.raises(BackendUnavailableError, match="no ONNX export.*mersdk export onnx"):
        Recognizer(plain_ckpt, backend="onnx")


def test_tensorrt_explicit_says_why(exported_ckpt):
    from mersdk import backends

    why = backends.availability()["tensorrt"]
    if why is None:
        pytest.skip("TensorRT and a GPU are present here")
    with pytest.raises(BackendUnavailableError, match="tensorrt") as e:
        Recognizer(exported_ckpt, backend="tensorrt")
    assert why in str(e.value)


def test_session_options(exported_ckpt):
    rec = Recognizer(
        exported_ckpt,
        backend="onnx",
        num_threads=1,
        backend_options={"graph_optimization_level": "basic", "inter_op_threads": 1},
    )
    so = rec._backend.session.get_session_options()
    assert so.intra_op_num_threads == 1
    # no spin-waiting by default: the two sessions alternate and would steal each other's cores
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    spin = Recognizer(exported_ckpt, backend="onnx", backend_options={"allow_spinning": True})
    assert (
        spin._backend.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "1"
    )
    with pytest.raises(ValueError, match="graph_optimization_level"):
        Recognizer(exported_ckpt, backend="onnx", backend_options={"graph_optimization_level": "max"})
    with pytest.raises(ValueError, match="no option.*precision.*it takes"):
        Recognizer(exported_ckpt, backend="onnx", backend_options={"precision": "fp16"})
