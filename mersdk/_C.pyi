# Type stub of the private compiled extension. Use the mersdk API; this module may be absent.
import numpy as np
import numpy.typing as npt

def build_info() -> dict[str, object]:
    """{'version': str, 'cuda': bool, 'openmp': bool, 'compiler': str}"""

def log_mel(
    signal: object,
    lengths: npt.NDArray[np.int64],
    window: npt.NDArray[np.float32],
    filterbank: npt.NDArray[np.float32],
    *,
    hop: int,
    log_floor: float,
    compression: str = "log",
    log_gain: float = 1.0,
    out: object | None = None,
    stream: int = 0,
) -> object:
    """Fused batch log-mel (definition: mersdk.features.log_mel).

    signal: float32 (B, N) C-contiguous; NumPy / DLPack (CPU) or DLPack / __cuda_array_interface__
    (CUDA). lengths: host int64 (B,), each in [0, N]. window: host float32 (n_fft,). filterbank:
    host float32 (n_mels, n_fft//2+1). compression of the mel power P: "log" = ln(max(P, log_floor)),
    "log10_1p" = log10(1 + log_gain*P). out: (B, n_mels, 1 + max(lengths)//hop); CPU float32
    (allocated and returned as NumPy when None); CUDA float32/float16/bfloat16, required.
    Frames t >= 1 + lengths[b]//hop are 0. stream: cudaStream_t as int (0 = legacy default).
    Returns `out`. TypeError for a wrong dtype/kind, ValueError for a wrong shape/layout/device."""

def cross_attention(
    q: object,
    k: object,
    v: object,
    key_mask: object,
    *,
    out: object | None = None,
    scale: float | None = None,
    stream: int = 0,
) -> object:
    """Fused masked attention, online softmax (oracle: mersdk.model.masked_attention).

    q: (B, H, Tq, D); k, v: (B, H, Tk, D), Tk >= 0; key_mask: (B, Tk) bool/uint8, True = valid.
    D in {32, 64, 128}; C-contiguous, one device. CPU: float32; out (B, H, Tq, D) allocated as
    NumPy when None. CUDA: float32/float16/bfloat16, out required with q's dtype and shape.
    Rows with no valid key are 0. scale: default 1/sqrt(D). Returns `out`."""
