"""Stage 2 of deployment: ONNX -> TensorRT engines (fp32 and fp16), cached.

Written against the TensorRT 10 Python API (``import tensorrt``); when only TensorRT-RTX is
installed (``import tensorrt_rtx``, whose ONNX parser and builder run on a CPU and compile ahead of
time) the same code builds with it, which is how CI checks that the exported graphs parse and build.
Both are driven as strongly typed networks: the precision comes from the ONNX itself, so "fp16"
first writes an fp16 copy of the ONNX (weights and activations fp16, inputs/outputs fp32, IsInf kept
in fp32) with onnxruntime's converter; that copy can be checked in ONNX Runtime on a CPU.

Each engine has one optimisation profile with explicit min/opt/max shapes for batch, frames and
tokens, derived from the checkpoint config (``profile_for``); every input and output shape is
logged. Engines and the timing cache live in a cache folder; an engine's file name carries a key
made of the GPU model, the TensorRT module and version, the ONNX file's SHA-256, the precision and
the profile, so changing any of them builds a new engine instead of loading a wrong one.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import time
from pathlib import Path

from ..files import atomic_path, sha256_file, write_text_atomic
from ..gpu import cuda_gpu_name
from ..pipeline import ONE_WINDOW_SLACK
from . import MODEL_INPUTS, TEXT_INPUTS

_log = logging.getLogger("mersdk.export")  # progress lines; the CLI passes log=print instead

PRECISIONS = ("fp32", "fp16")
DEFAULT_CACHE = Path(os.environ.get("MERSDK_CACHE", Path.home() / ".cache" / "mersdk")) / "engines"


def tensorrt_module(prefer: str | None = None):
    """The TensorRT Python module: ``tensorrt`` (full TensorRT) or else ``tensorrt_rtx``."""
    names = (prefer,) if prefer else ("tensorrt", "tensorrt_rtx")
    errors = []
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError as e:
            errors.append(f"{name}: {e}")
    raise ImportError("no TensorRT module: " + "; ".join(errors))


def build_target(trt) -> str:
    """What the engine is built for: the GPU's name, or the ahead-of-time target of TensorRT-RTX."""
    name, _ = cuda_gpu_name()
    if name:
        return name
    if trt.__name__ == "tensorrt_rtx":
        return "tensorrt-rtx-aot-default-sm"
    raise RuntimeError("building a TensorRT engine needs a CUDA GPU (only TensorRT-RTX builds on a CPU)")


# Profile bounds shared by `mersdk export engine` and the tensorrt backend, so a prebuilt engine is
# the one the backend looks for. The largest input (lyr_emb, 32 x 2048 x 384 fp32 = 100 MB) gets
# a device buffer and a pinned host buffer of that size; larger batches are split, longer lyrics refused.
DEFAULT_PROFILE = {"max_batch": 32, "opt_batch": 8, "max_tokens": 2048, "opt_tokens": 512}


def profile_for(
    cfg,
    graph: str,
    *,
    max_batch: int = DEFAULT_PROFILE["max_batch"],
    opt_batch: int = DEFAULT_PROFILE["opt_batch"],
    max_tokens: int = DEFAULT_PROFILE["max_tokens"],
    opt_tokens: int = DEFAULT_PROFILE["opt_tokens"],
) -> dict[str, tuple[tuple[int, ...], ...]]:
    """input name -> (min, opt, max) shape, from the checkpoint config.

    "model": batch 1..max_batch; frames from one CNN token (time_downsample) up to the longest
    window the Recognizer makes (window_s x 1.25, see pipeline.ONE_WINDOW_SLACK), opt = window_s;
    lyric tokens 1..max_tokens. "text_encoder": windows 1..max_batch of 1..max_tokens_per_window."""
    fe, te = cfg.frontend, cfg.text_encoder
    if graph == "model":
        f_min = cfg.time_downsample
        f_opt = fe.n_frames(int(round(cfg.window_s * fe.sample_rate)))
        f_max = fe.n_frames(int(round(cfg.window_s * ONE_WINDOW_SLACK * fe.sample_rate)))
        b = (1, opt_batch, max_batch)
        t = (1, opt_tokens, max_tokens)
        f = (f_min, f_opt, f_max)
        shapes: dict[str, list[tuple[int, ...]]] = {
            "mel": [(b[i], fe.n_mels, f[i]) for i in range(3)],
            "mel_lengths": [(b[i],) for i in range(3)],
            "lyr_emb": [(b[i], t[i], te.hidden_size) for i in range(3)],
            "lyr_mask": [(b[i], t[i]) for i in range(3)],
        }
        assert tuple(shapes) == MODEL_INPUTS
    elif graph == "text_encoder":
        w = (1, 4, max_batch)
        L = (1, te.max_tokens, te.max_tokens)
        shapes = {n: [(w[i], L[i]) for i in range(3)] for n in TEXT_INPUTS}
    else:
        raise ValueError(f"graph must be 'model' or 'text_encoder', not {graph!r}")
    return {k: tuple(v) for k, v in shapes.items()}


def fp16_onnx(src: Path, dst: Path) -> Path:
    """fp16 copy of an fp32 ONNX: inputs/outputs stay fp32; IsInf stays fp32 (no fp16 kernel in ORT's
    CPU provider before opset 20). The converter lifts constants below fp16's range (the masked
    attention's clamp floor, float32 tiny) to the smallest fp16 value, so rows without lyrics still
    give zeros, not 0/0."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    m = onnx.load(str(src))
    keep = [n.name for n in m.graph.node if n.op_type in ("IsInf", "IsNaN")]
    m16 = convert_float_to_float16(m, keep_io_types=True, node_block_list=keep)
    with atomic_path(dst) as tmp:
        onnx.save(m16, str(tmp))
    return dst


def engine_key(target: str, trt, onnx_sha256: str, precision: str, profile: dict) -> tuple[str, dict]:
    parts = {
        "target": target,
        "tensorrt": f"{trt.__name__} {trt.__version__}",
        "onnx_sha256": onnx_sha256,
        "precision": precision,
        "profile": {k: [list(s) for s in v] for k, v in profile.items()},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16], parts


def _fmt(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _cached_engine_damage(engine_path: Path) -> str | None:
    """Why a cached engine cannot be trusted (no sidecar, or the engine's hash is not the one the
    sidecar recorded when it was built), or None."""
    from ..checkpoint import is_sha256, load_json

    try:
        recorded = load_json(engine_path.with_suffix(".json"), 1 << 20, "engine sidecar", error=ValueError)
    except ValueError as e:
        return f"no usable sidecar ({e})"
    want = recorded.get("engine_sha256") if isinstance(recorded, dict) else None
    if not is_sha256(want):
        return "its sidecar records no engine hash (made by an older mersdk)"
    if sha256_file(engine_path) != want:
        return "damaged (its SHA-256 is not the one recorded when it was built)"
    return None


def build_engine(
    onnx_path,
    profile: dict,
    precision: str = "fp16",
    cache_dir=None,
    trt=None,
    workspace_gb: float = 4.0,
    force: bool = False,
    log=_log.info,
) -> Path:
    """Load the cached engine for (GPU, TensorRT, ONNX, precision, profile) or build and cache it.
    Returns the engine path. Logs every input and output with its shapes."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    trt = trt or tensorrt_module()
    onnx_path = Path(onnx_path)
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE
    cache.mkdir(parents=True, exist_ok=True)
    target = build_target(trt)
    key, parts = engine_key(target, trt, sha256_file(onnx_path), precision, profile)
    engine_path = cache / f"{onnx_path.stem}-{precision}-{key}.engine"
    if engine_path.is_file() and not force:
        why = _cached_engine_damage(engine_path)
        if why is None:
            log(f"{engine_path}: cached ({parts['tensorrt']}, {target})")
            return engine_path
        log(f"{engine_path}: {why}; building it again")
    src = onnx_path
    if precision == "fp16":
        src = fp16_onnx(onnx_path, cache / f"{onnx_path.stem}-fp16-{key}.onnx")

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # strongly typed: precision comes from the ONNX types (TensorRT-RTX only knows this mode, and
    # full TensorRT deprecates the FP16 builder flag in its favour)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(src)):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{src}: the TensorRT ONNX parser failed: {errs}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    opt = builder.create_optimization_profile()
    names = [network.get_input(i).name for i in range(network.num_inputs)]
    if sorted(names) != sorted(profile):
        raise ValueError(f"{src} has inputs {names}, the profile gives {list(profile)}")
    for i in range(network.num_inputs):
        inp = network.get_input(i)
        mn, op, mx = profile[inp.name]
        opt.set_shape(inp.name, mn, op, mx)
        log(
            f"  input  {inp.name:<15} {inp.dtype!s:<18} {_fmt(inp.shape)}  min {_fmt(mn)} opt {_fmt(op)} max {_fmt(mx)}"
        )
    for i in range(network.num_outputs):
        out = network.get_output(i)
        log(f"  output {out.name:<15} {out.dtype!s:<18} {_fmt(out.shape)}")
    config.add_optimization_profile(opt)
    tc_path = cache / f"timing-{trt.__name__}-{trt.__version__}-{target.replace(' ', '_')}.cache"
    timing = config.create_timing_cache(tc_path.read_bytes() if tc_path.is_file() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)
    t0 = time.perf_counter()
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise RuntimeError(f"{src}: TensorRT failed to build the engine (see the log above)")
    # every cache file goes through a temporary file and a rename: a crash mid-write never leaves a
    # truncated file under a real name; the sidecar, written last, records the engine's hash
    with atomic_path(engine_path) as tmp:
        tmp.write_bytes(bytes(blob))
    with atomic_path(tc_path) as tmp:
        tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    sidecar = dict(parts, engine_sha256=sha256_file(engine_path))
    write_text_atomic(engine_path.with_suffix(".json"), json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
    log(
        f"{engine_path}: built in {time.perf_counter() - t0:.1f} s, {engine_path.stat().st_size / 1e6:.1f} MB "
        f"({parts['tensorrt']}, {precision}, target {target})"
    )
    return engine_path


def build_engines(export, cfg, precisions=("fp16", "fp32"), cache_dir=None, trt=None, log=_log.info, **profile_kw):
    """Engines for both graphs of an ONNX export; returns {(graph, precision): path}."""
    out = {}
    for precision in precisions:
        for graph, path in (("model", export.model_path), ("text_encoder", export.text_encoder_path)):
            log(f"{path.name} -> {precision} engine")
            out[graph, precision] = build_engine(
                path, profile_for(cfg, graph, **profile_kw), precision, cache_dir=cache_dir, trt=trt, log=log
            )
    return out
