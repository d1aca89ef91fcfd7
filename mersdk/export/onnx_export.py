"""Stage 1 of deployment: a checkpoint -> ONNX (EmotionModel and text encoder), verified.

Uses the dynamo exporter (``torch.onnx.export(..., dynamo=True)``, needs onnxscript) at opset
``OPSET`` with dynamic batch, frames and tokens; weights are embedded in each .onnx file. Shapes
come from the checkpoint's config, so any checkpoint of this architecture family exports. Every
export is checked with ``onnx.checker`` and run once in ONNX Runtime against PyTorch (including a
row with no lyrics: the all-masked attention must give zeros, not NaN).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._version import __version__
from ..checkpoint import load_model, read_checkpoint
from ..files import fsync_file, remove_stale_temps, sha256_file, temp_sibling, write_text_atomic
from ..model import EmotionModel
from . import (
    MANIFEST,
    MANIFEST_VERSION,
    MODEL_INPUTS,
    MODEL_ONNX,
    OPSET,
    TEXT_INPUTS,
    TEXT_INT8_ONNX,
    TEXT_ONNX,
    TEXT_OUTPUT,
    TEXT_WEIGHTLESS,
    TEXT_WEIGHTLESS_ONNX,
    TOKENIZER_JSON,
)

# ONNX Runtime vs PyTorch on the export's own check inputs (fp32 both sides); the measured
# differences are around 1e-6, so these only catch a wrong graph, not rounding.
CHECK_ATOL = 1e-4
# Upper bounds written into the dynamic axes (engines take their own, tighter profiles)
MAX_BATCH = 4096
MAX_FRAMES = 1 << 22
MAX_TOKENS = 1 << 20


class ExportedEmotionModel(nn.Module):
    """EmotionModel as shipped: softmax probabilities per task, valence/arousal, fusion gate."""

    def __init__(self, model: EmotionModel):
        super().__init__()
        self.model = model
        self.output_names = [t.name for t in model.cfg.tasks] + ["va", "gate"]

    def forward(self, mel, mel_lengths, lyr_emb, lyr_mask):
        out = self.model(mel, mel_lengths, lyr_emb, lyr_mask)
        probs = tuple(torch.softmax(out[t.name], dim=-1) for t in self.model.cfg.tasks)
        return probs + (out["va"], out["gate"])


class ExportedTextEncoder(nn.Module):
    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids, attention_mask):
        return self.lm(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def load_torch_model(checkpoint) -> EmotionModel:
    return load_model(checkpoint)


def example_model_inputs(cfg, batch: int = 3, frames: int | None = None, tokens: int = 11, seed: int = 0):
    """Inputs covering the cases that matter: unequal lengths, lyrics on some rows, none on the last."""
    g = torch.Generator().manual_seed(seed)
    fe = cfg.frontend
    frames = frames or fe.n_frames(int(cfg.window_s * fe.sample_rate))
    mel = torch.randn(batch, fe.n_mels, frames, generator=g)
    lengths = torch.tensor([max(cfg.time_downsample, frames - 97 * i) for i in range(batch)], dtype=torch.long)
    for i, n in enumerate(lengths.tolist()):
        mel[i, :, n:] = 0
    emb = torch.randn(batch, tokens, cfg.text_encoder.hidden_size, generator=g)
    mask = torch.zeros(batch, tokens, dtype=torch.bool)
    for i in range(batch - 1):
        mask[i, : tokens - 3 * i] = True
    return mel, lengths, emb, mask


@contextlib.contextmanager
def _quiet(verbose: bool):
    """The exporter prints progress lines and warns that shared axis names are merged: both noise."""
    # "torchvision is not installed. Skipping torchvision::nms": the exporter's registry, not ours;
    # quietened for the export only, the level restored after
    registry_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry_log.level
    registry_log.setLevel(logging.ERROR)
    with contextlib.ExitStack() as restore, warnings.catch_warnings():
        restore.callback(registry_log.setLevel, level)
        warnings.filterwarnings("ignore", message=".*axis name.*will not be used.*")
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        if verbose:
            yield
        else:
            with contextlib.redirect_stdout(io.StringIO()):
                yield


def _export(module, args, dynamic_shapes, input_names, output_names, path: Path, opset: int, verbose: bool):
    with _quiet(verbose), torch.no_grad():
        prog = torch.onnx.export(
            module,
            args,
            dynamo=True,
            dynamic_shapes=dynamic_shapes,
            opset_version=opset,
            input_names=list(input_names),
            output_names=list(output_names),
            external_data=False,
            optimize=True,
            verbose=False,
        )
        assert prog is not None  # dynamo=True always returns the program
        prog.save(str(path), external_data=False)
    import onnx

    onnx.checker.check_model(str(path), full_check=True)


def _ort_session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def export_model(checkpoint, path: Path, opset: int = OPSET, verbose: bool = False) -> dict:
    """EmotionModel -> ONNX; returns its manifest entry (checked against PyTorch in ORT)."""
    cfg = checkpoint.config
    wrapper = ExportedEmotionModel(load_torch_model(checkpoint)).eval()
    D = torch.export.Dim
    batch = D("batch", min=1, max=MAX_BATCH)
    frames = D("frames", min=cfg.time_downsample, max=MAX_FRAMES)
    tokens = D("tokens", min=1, max=MAX_TOKENS)
    dyn = {
        "mel": {0: batch, 2: frames},
        "mel_lengths": {0: batch},
        "lyr_emb": {0: batch, 1: tokens},
        "lyr_mask": {0: batch, 1: tokens},
    }
    # batch >= 2 when tracing, or the exporter specialises the batch axis to 1
    _export(wrapper, example_model_inputs(cfg), dyn, MODEL_INPUTS, wrapper.output_names, path, opset, verbose)
    sess = _ort_session(path)
    worst = 0.0
    for batch_n, frames_n, tokens_n in ((1, 4 * cfg.time_downsample + 3, 1), (3, 1501, 23)):
        args = example_model_inputs(cfg, batch_n, frames_n, tokens_n, seed=batch_n)
        with torch.no_grad():
            ref = wrapper(*args)
        got = sess.run(wrapper.output_names, {k: v.numpy() for k, v in zip(MODEL_INPUTS, args)})
        for name, r, o in zip(wrapper.output_names, ref, got):
            if not np.all(np.isfinite(o)):
                raise RuntimeError(f"{path}: ONNX Runtime gives non-finite {name!r} at batch {batch_n}")
            worst = max(worst, float(np.abs(r.numpy() - o).max()))
        if float(np.abs(got[-1][-1])) != 0.0:  # the last row has no lyrics: its gate must be exactly 0
            raise RuntimeError(f"{path}: the gate of a row without lyrics is {got[-1][-1]}, not 0")
    if worst > CHECK_ATOL:
        raise RuntimeError(f"{path}: ONNX Runtime differs from PyTorch by {worst:.2e} (> {CHECK_ATOL})")
    return {
        "file": path.name,
        "sha256": sha256_file(path),
        "inputs": list(MODEL_INPUTS),
        "outputs": wrapper.output_names,
        "check_max_abs_diff": worst,
    }


def load_text_lm(cfg):
    """The frozen LM and its HF tokenizer, exactly as the PyTorch backend loads them."""
    from ..text_encoder import TextEncoder

    te = TextEncoder(cfg.text_encoder, device="cpu")
    return te.model.eval(), te.tokenizer


def export_text_encoder(checkpoint, path: Path, opset: int = OPSET, verbose: bool = False) -> tuple[dict, Any]:
    cfg = checkpoint.config
    lm, hf_tok = load_text_lm(cfg)
    wrapper = ExportedTextEncoder(lm).eval()
    D = torch.export.Dim
    windows = D("windows", min=1, max=MAX_BATCH)
    length = D("window_tokens", min=1, max=cfg.text_encoder.max_tokens)
    dyn = {"input_ids": {0: windows, 1: length}, "attention_mask": {0: windows, 1: length}}
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 5000, (2, 37), generator=g)
    att = torch.ones_like(ids)
    att[1, 20:] = 0
    _export(wrapper, (ids, att), dyn, TEXT_INPUTS, [TEXT_OUTPUT], path, opset, verbose)
    sess = _ort_session(path)
    worst = 0.0
    for n, L in ((1, 5), (3, cfg.text_encoder.max_tokens)):
        ids = torch.randint(1000, 5000, (n, L), generator=g)
        att = torch.ones_like(ids)
        att[-1, L // 2 :] = 0
        with torch.no_grad():
            ref = wrapper(ids, att).numpy()
        got = sess.run([TEXT_OUTPUT], {"input_ids": ids.numpy(), "attention_mask": att.numpy()})[0]
        valid = att.numpy().astype(bool)  # padded positions are never read downstream
        worst = max(worst, float(np.abs(ref - got)[valid].max()))
    if worst > CHECK_ATOL:
        raise RuntimeError(f"{path}: ONNX Runtime differs from PyTorch by {worst:.2e} (> {CHECK_ATOL})")
    return {
        "file": path.name,
        "sha256": sha256_file(path),
        "inputs": list(TEXT_INPUTS),
        "outputs": [TEXT_OUTPUT],
        "source": cfg.text_encoder.source,
        "precision": "fp32",
        "check_max_abs_diff": worst,
    }, hf_tok


def _write_tokenizer(hf_tok, path: Path) -> dict:
    """tokenizer.json for the ``tokenizers`` library and the special ids the windowing needs."""
    hf_tok.backend_tokenizer.save(str(path))
    return {
        "file": TOKENIZER_JSON,
        "sha256": sha256_file(path),
        "cls_id": int(hf_tok.cls_token_id),
        "sep_id": int(hf_tok.sep_token_id),
        "pad_id": int(hf_tok.pad_token_id or 0),
    }


def weightless_text_encoder(full: Path, path: Path, cfg) -> dict:
    """A copy of the text-encoder graph ``full`` without the weights that the text-encoder package's
    ``model.safetensors`` holds (every tensor, some stored transposed by the exporter): each becomes
    an external initializer that ``onnx_backend.load_weightless`` fills at load time. Returns its
    manifest entry (named TEXT_WEIGHTLESS_ONNX), with the map initializer -> (safetensors key,
    transposed, shape)."""
    import onnx
    from onnx import TensorProto, numpy_helper
    from safetensors.numpy import load_file

    from ..text_encoder import resolve_source

    weights_path = Path(resolve_source(cfg.text_encoder.source)) / "model.safetensors"
    weights = load_file(str(weights_path))
    by_shape: dict[tuple, list[str]] = {}
    for key, a in weights.items():
        by_shape.setdefault(a.shape, []).append(key)
    graph = onnx.load(str(full))
    tensors: dict[str, list] = {}
    for init in graph.graph.initializer:
        a = numpy_helper.to_array(init)
        if a.dtype != np.float32 or a.size < 2:
            continue
        found = next(((k, False) for k in by_shape.get(a.shape, ()) if np.array_equal(weights[k], a)), None)
        if found is None and a.ndim == 2:
            found = next(((k, True) for k in by_shape.get(a.shape[::-1], ()) if np.array_equal(weights[k].T, a)), None)
        if found is None:
            continue
        tensors[init.name] = [found[0], found[1], list(a.shape)]
        init.ClearField("raw_data")
        init.data_location = TensorProto.EXTERNAL
        del init.external_data[:]
        # never read: the values are given in memory; the entries only say how large the tensor is
        for k, v in (("location", weights_path.name), ("offset", "0"), ("length", str(a.nbytes))):
            entry = init.external_data.add()
            entry.key, entry.value = k, v
    path.write_bytes(graph.SerializeToString())  # a staged temporary file (export_onnx renames it)
    return {
        "file": TEXT_WEIGHTLESS_ONNX,
        "sha256": sha256_file(path),
        "inputs": list(TEXT_INPUTS),
        "outputs": [TEXT_OUTPUT],
        "source": cfg.text_encoder.source,
        "precision": "fp32",
        "weights": {"file": weights_path.name, "sha256": sha256_file(weights_path), "tensors": tensors},
    }


def quantize_text_encoder(src: Path, dst: Path, fp32_entry: dict) -> dict:
    """int8 dynamic quantisation of the text encoder's weights (MatMul/Gemm), ~4x smaller; ``src``
    holds the fp32 graph, ``dst`` gets the int8 one (its manifest entry names TEXT_INT8_ONNX)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    entry = dict(fp32_entry, file=TEXT_INT8_ONNX, sha256=sha256_file(dst), precision="int8")
    entry.pop("check_max_abs_diff", None)
    return entry


def export_onnx(
    checkpoint=None,
    out_dir=None,
    opset: int = OPSET,
    text_precision: str = "fp32",
    verbose: bool = False,
    log=logging.getLogger("mersdk.export").info,
) -> Path:
    """Write the ONNX export of ``checkpoint`` (default: bundled model) into ``out_dir`` (default:
    the checkpoint folder). Returns the manifest path.

    Atomic: every file is written and checked under a temporary name in the folder first; only then
    is the old manifest removed, the files renamed into place and the new manifest written, last,
    itself through a temporary file. An export interrupted at any point (an exception, Ctrl-C, a
    kill) leaves the previous export intact, or no manifest at all (``auto`` then says "no ONNX
    export"), never a manifest naming files it does not match. Temporary files of a killed export
    are removed by the next one."""
    if text_precision not in ("fp32", "int8"):
        raise ValueError(f"text_precision must be 'fp32' or 'int8', not {text_precision!r}")
    ck = read_checkpoint(checkpoint)
    folder = Path(out_dir) if out_dir is not None else ck.path
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(folder)
    staged: dict[str, Path] = {}  # final name -> temporary file holding its new content
    try:
        t0 = time.perf_counter()
        staged[MODEL_ONNX] = temp_sibling(folder / MODEL_ONNX)
        model_entry = dict(export_model(ck, staged[MODEL_ONNX], opset, verbose), file=MODEL_ONNX)
        log(
            f"{folder / MODEL_ONNX}: {staged[MODEL_ONNX].stat().st_size / 1e6:.1f} MB, opset {opset}, "
            f"ORT vs torch max |diff| {model_entry['check_max_abs_diff']:.1e} ({time.perf_counter() - t0:.1f} s)"
        )
        t1 = time.perf_counter()
        staged[TEXT_ONNX] = temp_sibling(folder / TEXT_ONNX)
        text_entry, hf_tok = export_text_encoder(ck, staged[TEXT_ONNX], opset, verbose)
        text_entry = dict(text_entry, file=TEXT_ONNX)
        log(
            f"{folder / TEXT_ONNX}: {staged[TEXT_ONNX].stat().st_size / 1e6:.1f} MB, "
            f"ORT vs torch max |diff| {text_entry['check_max_abs_diff']:.1e} ({time.perf_counter() - t1:.1f} s)"
        )
        staged[TEXT_WEIGHTLESS_ONNX] = temp_sibling(folder / TEXT_WEIGHTLESS_ONNX)
        weightless = weightless_text_encoder(staged[TEXT_ONNX], staged[TEXT_WEIGHTLESS_ONNX], ck.config)
        log(
            f"{folder / TEXT_WEIGHTLESS_ONNX}: {staged[TEXT_WEIGHTLESS_ONNX].stat().st_size / 1e6:.1f} MB, "
            f"{len(weightless['weights']['tensors'])} tensors read from the text-encoder package at load time"
        )
        staged[TOKENIZER_JSON] = temp_sibling(folder / TOKENIZER_JSON)
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "mersdk_version": __version__,
            "torch_version": torch.__version__,
            "opset": opset,
            "weights_sha256": ck.weights_sha256,
            "model": model_entry,
            "text_encoder": text_entry,
            "tokenizer": _write_tokenizer(hf_tok, staged[TOKENIZER_JSON]),
            TEXT_WEIGHTLESS: weightless,
        }
        if text_precision == "int8":
            staged[TEXT_INT8_ONNX] = temp_sibling(folder / TEXT_INT8_ONNX)
            manifest["text_encoder_fp32"] = text_entry
            manifest["text_encoder"] = quantize_text_encoder(staged[TEXT_ONNX], staged[TEXT_INT8_ONNX], text_entry)
            log(
                f"{folder / TEXT_INT8_ONNX}: int8 dynamic quantisation, "
                f"{staged[TEXT_INT8_ONNX].stat().st_size / 1e6:.1f} MB"
            )
        _commit(folder, staged, manifest)
    finally:
        for tmp in staged.values():  # renamed away on success; on failure the partial files go
            with contextlib.suppress(OSError):
                tmp.unlink()
    path = folder / MANIFEST
    log(f"{path}: manifest for weights {ck.weights_sha256[:12]}")
    return path


def _commit(folder: Path, staged: dict[str, Path], manifest: dict) -> None:
    """Put a fully written export in place: old manifest out, files in, new manifest last."""
    for tmp in staged.values():
        fsync_file(tmp)
    with contextlib.suppress(FileNotFoundError):
        (folder / MANIFEST).unlink()
    for name, tmp in staged.items():
        os.replace(tmp, folder / name)
    write_text_atomic(folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
