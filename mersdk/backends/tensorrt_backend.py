"""TensorRT backend (NVIDIA GPU): engines built from the ONNX export, run by the TensorRT runtime.

NOT YET RUN ON A GPU: written against the TensorRT 10 Python API and checked only by building the
same ONNX with TensorRT-RTX on a CPU (``tests/test_export.py``). Each Recognizer owns one CUDA
stream, pinned host buffers and device buffers sized for the engine's largest profile shape;
CUDA memory and streams come from ``cuda-python`` (``cuda.bindings.runtime``), never PyTorch.
The engines are loaded from, or built into, the cache of ``mersdk.export.engine`` (keyed by GPU
model, TensorRT version, ONNX hash and precision).

Options: ``precision`` ("fp16" | "fp32", default "fp16"), ``cache_dir`` (engines), ``max_batch`` and
``max_tokens`` (the profile's upper bounds; larger inputs are split by batch or refused).
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import threading
from collections.abc import Sequence

import numpy as np

from ..errors import BackendUnavailableError
from ..export import TEXT_OUTPUT, find_export, probe_export
from ..export.engine import DEFAULT_PROFILE
from ..gpu import cuda_gpu_name
from .base import BackendSpec, register
from .onnx_backend import graph_kernels

log = logging.getLogger("mersdk.tensorrt")


def _probe(device: str) -> str | None:
    reasons = []
    if importlib.util.find_spec("tensorrt") is None:
        reasons.append(
            "no tensorrt module (pip install 'mersdk[tensorrt]'; tensorrt_rtx does not count: "
            "its engines do not target data-centre GPUs)"
        )
    elif importlib.util.find_spec("cuda") is None:
        reasons.append("no cuda-python module (pip install 'mersdk[tensorrt]')")
    _, why = cuda_gpu_name()
    if why:
        reasons.append(why)
    return "; ".join(reasons) or None


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        from cuda import cudart  # older cuda-python
    return cudart


def _check(result):
    """cuda-python returns (err, *values); raise on error, return the values."""
    err, *vals = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA error {err}")
    return vals[0] if len(vals) == 1 else vals


class _Engine:
    """One deserialised engine with device buffers and pinned host buffers sized for the largest
    shapes of its profile, all on the backend's stream."""

    def __init__(self, trt, runtime, path, stream, cudart):
        self.cudart, self.stream = cudart, stream
        self.engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise BackendUnavailableError(f"TensorRT could not load {path} (built for another GPU or version?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self.limits = {n: self.engine.get_tensor_profile_shape(n, 0) for n in self.inputs}  # (min, opt, max)
        for n in self.inputs:
            self.context.set_input_shape(n, tuple(self.limits[n][2]))
        self.dtype, self.dev, self.host, self.host_ptr = {}, {}, {}, {}
        for n in names:
            shape = tuple(self.limits[n][2]) if n in self.inputs else tuple(self.context.get_tensor_shape(n))
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(n)))
            nbytes = int(np.prod(shape)) * dtype.itemsize
            self.dtype[n] = dtype
            self.dev[n] = _check(cudart.cudaMalloc(nbytes))
            self.host_ptr[n] = _check(cudart.cudaMallocHost(nbytes))
            raw = (ctypes.c_uint8 * nbytes).from_address(int(self.host_ptr[n]))
            self.host[n] = np.frombuffer(raw, dtype=np.uint8).view(dtype)
            self.context.set_tensor_address(n, int(self.dev[n]))
            log.info("%s: %s %s max %s", path.name, n, dtype, shape)

    def max_dim(self, name: str, axis: int) -> int:
        return int(self.limits[name][2][axis])

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cudart = self.cudart
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for n in self.inputs:
            a = np.ascontiguousarray(feeds[n], dtype=self.dtype[n])
            lo, _, hi = self.limits[n]
            if a.ndim != len(hi) or any(not (low <= d <= high) for low, d, high in zip(lo, a.shape, hi)):
                raise ValueError(
                    f"input {n} has shape {a.shape}; this engine takes {tuple(lo)} to {tuple(hi)} "
                    "(rebuild it with a larger profile: mersdk export engine --help)"
                )
            self.host[n][: a.size] = a.ravel()
            _check(cudart.cudaMemcpyAsync(self.dev[n], self.host_ptr[n], a.nbytes, h2d, self.stream))
            self.context.set_input_shape(n, a.shape)
        if not self.context.execute_async_v3(int(self.stream)):
            raise RuntimeError("TensorRT execution failed")
        shapes = {n: tuple(self.context.get_tensor_shape(n)) for n in self.outputs}
        for n in self.outputs:
            nbytes = int(np.prod(shapes[n])) * self.dtype[n].itemsize
            _check(cudart.cudaMemcpyAsync(self.host_ptr[n], self.dev[n], nbytes, d2h, self.stream))
        _check(cudart.cudaStreamSynchronize(self.stream))
        return {n: self.host[n][: int(np.prod(shapes[n]))].reshape(shapes[n]).copy() for n in self.outputs}

    def close(self):
        for n in list(self.dev):
            self.cudart.cudaFree(self.dev.pop(n))
            self.cudart.cudaFreeHost(self.host_ptr.pop(n))
        self.host.clear()


class TensorRTBackend:
    """Both graphs as TensorRT engines; lyrics tokenized as in the ONNX backend. Not thread-safe by
    nature (one execution context and one set of buffers per engine): every engine call takes the
    backend's lock, so threads sharing a Recognizer are served one batch at a time."""

    name = "tensorrt"

    def __init__(
        self,
        checkpoint,
        device: str = "cuda",
        num_threads: int | None = None,
        *,
        precision: str = "fp16",
        cache_dir=None,
        max_batch: int | None = None,
        max_tokens: int | None = None,
    ):
        from ..export.engine import build_engines, tensorrt_module
        from .onnx_backend import OnnxTextEncoder

        export, why = find_export(checkpoint)
        if export is None:
            raise BackendUnavailableError(f"backend 'tensorrt' cannot run here: {why}")
        trt = tensorrt_module("tensorrt")
        self.config = checkpoint.config
        profile = dict(
            DEFAULT_PROFILE, **{k: v for k, v in (("max_batch", max_batch), ("max_tokens", max_tokens)) if v}
        )
        paths = build_engines(
            export, self.config, precisions=(precision,), cache_dir=cache_dir, trt=trt, log=log.info, **profile
        )
        self.cudart = _cudart()
        self._lock = threading.Lock()
        self.stream = _check(self.cudart.cudaStreamCreate())  # one stream per Recognizer
        self._trt_logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self._trt_logger)
        self.model = _Engine(trt, runtime, paths["model", precision], self.stream, self.cudart)
        self.text = _Engine(trt, runtime, paths["text_encoder", precision], self.stream, self.cudart)
        self.outputs = export.outputs
        self.text_encoder = OnnxTextEncoder(export, self.config.text_encoder, run=self._run_text)

    def _run_text(self, ids: np.ndarray, att: np.ndarray) -> np.ndarray:
        step = self.text.max_dim("input_ids", 0)
        with self._lock:
            self._check_open()
            parts = [
                self.text.run({"input_ids": ids[i : i + step], "attention_mask": att[i : i + step]})[TEXT_OUTPUT]
                for i in range(0, len(ids), step)
            ]
        return np.concatenate(parts, axis=0)

    def _check_open(self) -> None:
        if self.stream is None:
            raise BackendUnavailableError("this Recognizer was closed")

    def log_mel(self, windows):
        from ..ops import log_mel_batch_fast

        return log_mel_batch_fast(list(windows), self.config.frontend)

    def kernels(self) -> dict[str, str]:
        return graph_kernels(self.name)

    def encode_lyrics(self, texts: Sequence[str | None]) -> list[np.ndarray | None]:
        return self.text_encoder.encode(texts)

    def forward(self, mel, mel_lengths, lyr_emb, lyr_mask):
        step = self.model.max_dim("mel", 0)
        with self._lock:
            self._check_open()
            outs = [
                self.model.run(
                    {
                        "mel": mel[i : i + step],
                        "mel_lengths": mel_lengths[i : i + step],
                        "lyr_emb": lyr_emb[i : i + step],
                        "lyr_mask": lyr_mask[i : i + step],
                    }
                )
                for i in range(0, len(mel), step)
            ]
        return {n: np.concatenate([o[n] for o in outs], axis=0) for n in self.outputs}

    def close(self) -> None:
        lock = getattr(self, "_lock", None)  # __init__ may have failed before making it
        with lock or threading.Lock():
            for e in (getattr(self, "model", None), getattr(self, "text", None)):
                if e is not None:
                    e.close()
            if getattr(self, "stream", None) is not None:
                self.cudart.cudaStreamDestroy(self.stream)
                self.stream = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the CUDA context may already be gone
            pass


register(
    BackendSpec(name="tensorrt", devices=("cuda",), probe=_probe, create=TensorRTBackend, probe_checkpoint=probe_export)
)
