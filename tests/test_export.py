"""The staged export: ONNX graphs with dynamic axes that match PyTorch, a manifest that refuses
stale weights, fp16 copies that stay finite, and TensorRT(-RTX) engine builds with a working cache."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from mersdk.checkpoint import read_checkpoint  # noqa: E402
from mersdk.export import MANIFEST, MODEL_INPUTS, OPSET, TEXT_INPUTS, TEXT_OUTPUT, find_export  # noqa: E402

# fp32 ONNX Runtime vs PyTorch: measured ~1e-7 (model) and ~6e-6 (text encoder); these leave room
# for other CPUs' kernels, not for a wrong graph
MODEL_ATOL = 1e-5
TEXT_ATOL = 5e-5


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_manifest_opset_and_dynamic_axes(exported_ckpt):
    exp, why = find_export(read_checkpoint(exported_ckpt))
    assert why is None
    assert exp.manifest["opset"] == OPSET
    for path, names in ((exp.model_path, MODEL_INPUTS), (exp.text_encoder_path, TEXT_INPUTS)):
        onnx.checker.check_model(str(path))
        m = onnx.load(str(path), load_external_data=False)
        assert not any(i.data_location == onnx.TensorProto.EXTERNAL for i in m.graph.initializer), (
            "weights must be embedded"
        )
        assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [OPSET]
        assert [i.name for i in m.graph.input] == list(names)
        for i in m.graph.input:  # batch and length axes symbolic; feature axes fixed
            dims = i.type.tensor_type.shape.dim
            assert dims[0].dim_param, f"{path.name}:{i.name} batch axis is fixed"
            if len(dims) > 1 and i.name != "mel":
                assert dims[1].dim_param, f"{path.name}:{i.name} length axis is fixed"
        if path == exp.model_path:
            mel = m.graph.input[0].type.tensor_type.shape.dim
            assert mel[1].dim_value == read_checkpoint(exported_ckpt).config.frontend.n_mels and mel[2].dim_param


@pytest.mark.parametrize("batch,frames,tokens", [(1, 67, 1), (3, 1501, 23), (2, 1876, 300)])
def test_model_onnx_matches_torch(exported_ckpt, batch, frames, tokens):
    from mersdk.export.onnx_export import ExportedEmotionModel, example_model_inputs, load_torch_model

    ck = read_checkpoint(exported_ckpt)
    wrapper = ExportedEmotionModel(load_torch_model(ck))
    sess = _session(find_export(ck)[0].model_path)
    args = example_model_inputs(ck.config, batch, frames, tokens, seed=batch + frames)
    if batch == 1:
        args[3][:] = False  # lyrics absent
    with torch.no_grad():
        ref = wrapper(*args)
    got = sess.run(wrapper.output_names, {k: v.numpy() for k, v in zip(MODEL_INPUTS, args)})
    for name, r, g in zip(wrapper.output_names, ref, got):
        assert g.shape == tuple(r.shape), name
        assert np.all(np.isfinite(g)), name
        np.testing.assert_allclose(g, r.numpy(), atol=MODEL_ATOL, rtol=0, err_msg=name)
    # rows without lyrics (the last row, or the only one): the all-masked cross-attention gives zeros
    assert got[-1][-1] == 0.0


def test_text_encoder_onnx_matches_torch(exported_ckpt):
    from mersdk.export.onnx_export import ExportedTextEncoder, load_text_lm

    ck = read_checkpoint(exported_ckpt)
    lm, _ = load_text_lm(ck.config)
    sess = _session(find_export(ck)[0].text_encoder_path)
    g = torch.Generator().manual_seed(1)
    for n, L in ((1, 3), (3, 256), (2, 97)):
        ids = torch.randint(1000, 20000, (n, L), generator=g)
        att = torch.ones_like(ids)
        att[-1, L // 3 + 1 :] = 0
        with torch.no_grad():
            ref = ExportedTextEncoder(lm)(ids, att).numpy()
        got = sess.run([TEXT_OUTPUT], {"input_ids": ids.numpy(), "attention_mask": att.numpy()})[0]
        valid = att.numpy().astype(bool)
        np.testing.assert_allclose(got[valid], ref[valid], atol=TEXT_ATOL, rtol=0)


def test_masked_attention_exports_all_masked_rows_as_zeros(tmp_path):
    """The reference attention alone, through the dynamo exporter: a row whose keys are all masked
    gives exactly zeros in ONNX Runtime (not NaN), for any number of keys."""
    from mersdk.export.onnx_export import _quiet
    from mersdk.model import masked_attention

    class Attn(torch.nn.Module):
        def forward(self, q, k, v, key_mask):
            return masked_attention(q, k, v, key_mask)

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 5, 8, generator=g) for _ in range(3))
    mask = torch.tensor([[True, True, False, True, False], [False] * 5])
    D = torch.export.Dim
    b, tk = D("b", min=1, max=64), D("tk", min=1, max=4096)
    dyn = {"q": {0: b}, "k": {0: b, 2: tk}, "v": {0: b, 2: tk}, "key_mask": {0: b, 1: tk}}
    path = tmp_path / "attn.onnx"
    with _quiet(False):
        torch.onnx.export(Attn().eval(), (q, k, v, mask), dynamo=True, dynamic_shapes=dyn, opset_version=OPSET).save(
            str(path)
        )
    sess = _session(path)
    for n_keys in (5, 1, 300):
        kk, vv = (torch.randn(2, 4, n_keys, 8, generator=g) for _ in range(2))
        m = torch.rand(2, n_keys, generator=g) > 0.5
        m[0, 0], m[1] = True, False
        got = sess.run(None, {"q": q.numpy(), "k": kk.numpy(), "v": vv.numpy(), "key_mask": m.numpy()})[0]
        assert np.all(got[1] == 0.0)
        np.testing.assert_allclose(got[0], masked_attention(q, kk, vv, m)[0].numpy(), atol=1e-5, rtol=0)


def test_stale_export_is_refused(exported_ckpt, tmp_path):
    import shutil

    for p in Path(exported_ckpt).iterdir():
        shutil.copy2(p, tmp_path / p.name)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    manifest["weights_sha256"] = "0" * 64
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    exp, why = find_export(read_checkpoint(tmp_path))
    assert exp is None and "stale" in why and "mersdk export onnx" in why


def test_fp16_copy_is_finite_and_close(exported_ckpt, tmp_path):
    from mersdk.export.engine import fp16_onnx
    from mersdk.export.onnx_export import example_model_inputs

    ck = read_checkpoint(exported_ckpt)
    src = find_export(ck)[0].model_path
    dst = fp16_onnx(src, tmp_path / "model.fp16.onnx")
    args = {k: v.numpy() for k, v in zip(MODEL_INPUTS, example_model_inputs(ck.config, 3, 1501, 23))}
    ref = _session(src).run(None, args)
    got = _session(dst).run(None, args)
    for r, g in zip(ref, got):
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, r, atol=5e-3, rtol=0)  # measured ~1.3e-4 (va)
    assert got[-1][-1] == 0.0  # no lyrics: still exactly zero in fp16


def test_tensorrt_rtx_builds_engines_and_caches(exported_ckpt, tmp_path):
    trt = pytest.importorskip("tensorrt_rtx", reason="tensorrt_rtx not installed (pip install tensorrt-rtx-cu13)")
    from mersdk.export.engine import build_engine, profile_for

    ck = read_checkpoint(exported_ckpt)
    exp = find_export(ck)[0]
    small = profile_for(ck.config, "model", max_batch=4, opt_batch=2, max_tokens=512, opt_tokens=64)
    lines: list[str] = []
    paths = {}
    for precision in ("fp32", "fp16"):
        paths[precision] = build_engine(exp.model_path, small, precision, cache_dir=tmp_path, trt=trt, log=lines.append)
        assert paths[precision].stat().st_size > 1_000_000
    assert paths["fp32"] != paths["fp16"]
    logged = "\n".join(lines)
    for name in (*MODEL_INPUTS, "quadrant", "cluster", "va", "gate"):
        assert name in logged
    mel_min, mel_opt, mel_max = small["mel"]  # the profile follows the model's front end and token size
    assert mel_min[1] == ck.config.frontend.n_mels and mel_min[2] == ck.config.time_downsample
    assert f"min {tuple(mel_min)} opt {tuple(mel_opt)} max {tuple(mel_max)}" in logged
    lines.clear()
    again = build_engine(exp.model_path, small, "fp32", cache_dir=tmp_path, trt=trt, log=lines.append)
    assert again == paths["fp32"] and "cached" in lines[-1]
    other = dict(small, mel_lengths=((1,), (2,), (8,)))  # a different profile is a different engine
    from mersdk.export.engine import build_target, engine_key

    k1 = engine_key(build_target(trt), trt, "x", "fp32", small)[0]
    k2 = engine_key(build_target(trt), trt, "x", "fp32", other)[0]
    k3 = engine_key(build_target(trt), trt, "y", "fp32", small)[0]
    assert len({k1, k2, k3}) == 3
    assert list(tmp_path.glob("timing-*.cache"))


def test_text_encoder_parses_in_tensorrt_rtx(exported_ckpt, tmp_path):
    trt = pytest.importorskip("tensorrt_rtx", reason="tensorrt_rtx not installed (pip install tensorrt-rtx-cu13)")
    from mersdk.export.engine import build_engine, profile_for

    ck = read_checkpoint(exported_ckpt)
    prof = profile_for(ck.config, "text_encoder", max_batch=4)
    path = build_engine(
        find_export(ck)[0].text_encoder_path, prof, "fp32", cache_dir=tmp_path, trt=trt, log=lambda *_: None
    )
    assert path.is_file()


def test_compare_cli_on_synthetic_clips(exported_ckpt, tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mersdk",
            "export",
            "compare",
            "--checkpoint",
            str(exported_ckpt),
            "--data",
            str(tmp_path / "none"),
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "onnx " in r.stdout and "ok" in r.stdout and "tensorrt-fp16" in r.stdout
