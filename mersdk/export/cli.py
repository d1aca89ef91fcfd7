"""``mersdk export onnx|engine|compare``: the staged deployment export (see ``mersdk.export``).

Each stage runs and is checked on its own: ``mersdk export onnx``, then ``engine``, then ``compare``.
"""

from __future__ import annotations

import argparse


def add_onnx_args(p: argparse.ArgumentParser) -> None:
    from . import OPSET

    p.add_argument("--checkpoint", help="checkpoint folder (default: the bundled model)")
    p.add_argument(
        "--out", help="folder for the export (default: the checkpoint folder, the only place the backends look)"
    )
    p.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    p.add_argument(
        "--text-precision",
        choices=("fp32", "int8"),
        default="fp32",
        help="text encoder weights: fp32 (91 MB) or int8 dynamic quantisation (23 MB, less exact)",
    )
    p.add_argument("--verbose", action="store_true", help="show the exporter's progress")
    p.set_defaults(func=cmd_onnx)


def cmd_onnx(args) -> int:
    from .onnx_export import export_onnx

    export_onnx(
        args.checkpoint, args.out, opset=args.opset, text_precision=args.text_precision, verbose=args.verbose, log=print
    )
    return 0


def add_engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", help="checkpoint folder with an ONNX export (default: the bundled model)")
    p.add_argument("--precision", choices=("fp16", "fp32", "both"), default="both")
    p.add_argument(
        "--cache-dir", help="engine + timing cache folder (default: $MERSDK_CACHE/engines or ~/.cache/mersdk/engines)"
    )
    p.add_argument(
        "--tensorrt",
        choices=("tensorrt", "tensorrt_rtx"),
        help="TensorRT module (default: tensorrt, else tensorrt_rtx)",
    )
    from .engine import DEFAULT_PROFILE as D

    p.add_argument("--max-batch", type=int, default=D["max_batch"])
    p.add_argument("--opt-batch", type=int, default=D["opt_batch"])
    p.add_argument(
        "--max-tokens", type=int, default=D["max_tokens"], help="most lyric tokens per clip in the model profile"
    )
    p.set_defaults(func=cmd_engine)


def cmd_engine(args) -> int:
    from ..checkpoint import read_checkpoint
    from ..errors import CheckpointError
    from . import find_export
    from .engine import build_engines, tensorrt_module

    ck = read_checkpoint(args.checkpoint)
    export, why = find_export(ck)
    if export is None:
        raise CheckpointError(why)
    trt = tensorrt_module(args.tensorrt)
    precisions = ("fp16", "fp32") if args.precision == "both" else (args.precision,)
    build_engines(
        export,
        ck.config,
        precisions,
        cache_dir=args.cache_dir,
        trt=trt,
        max_batch=args.max_batch,
        opt_batch=args.opt_batch,
        max_tokens=args.max_tokens,
        log=print,
    )
    return 0


def add_compare_args(p: argparse.ArgumentParser) -> None:
    from .compare import SHARED_DATA

    p.add_argument("--checkpoint", help="checkpoint folder (default: the bundled model)")
    p.add_argument("--data", default=str(SHARED_DATA), help="folder of real clips (default: ../shared/data)")
    p.add_argument("--n-shared", type=int, default=6, help="mirex_mm clips to use (and half as many quadrants_4q)")
    p.add_argument("--cache-dir", help="TensorRT engine cache folder")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args) -> int:
    from .compare import compare

    return compare(args.checkpoint, data=args.data, n_shared=args.n_shared, cache_dir=args.cache_dir, log=print)


STAGES = {
    "onnx": (add_onnx_args, "export the model and text encoder to ONNX (needs torch + the [export] extra)"),
    "engine": (add_engine_args, "build TensorRT engines (fp16/fp32) from the ONNX export, cached"),
    "compare": (add_compare_args, "run clips through PyTorch, ONNX Runtime and TensorRT; check the differences"),
}


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="export for deployment: onnx, engine, compare")
    stages = p.add_subparsers(dest="stage", required=True)
    for name, (add, help_) in STAGES.items():
        add(stages.add_parser(name, help=help_, description=help_))
