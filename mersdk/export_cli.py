"""Deprecated alias of ``mersdk.export.cli`` (moved there; this name goes in the next release)."""

import warnings

from .export.cli import (
    STAGES,
    add_compare_args,
    add_engine_args,
    add_onnx_args,
    cmd_compare,
    cmd_engine,
    cmd_onnx,
    register,
)

__all__ = [
    "STAGES",
    "add_compare_args",
    "add_engine_args",
    "add_onnx_args",
    "cmd_compare",
    "cmd_engine",
    "cmd_onnx",
    "register",
]

warnings.warn("mersdk.export_cli is deprecated; import mersdk.export.cli", DeprecationWarning, stacklevel=2)
