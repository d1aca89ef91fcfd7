"""Is there an NVIDIA GPU? Asked through the CUDA driver API alone (ctypes), so an ``auto`` backend
choice on a machine without one pays for no framework import. Used by the backends and the engine
builder; it imports nothing of mersdk."""

from __future__ import annotations

import ctypes


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
