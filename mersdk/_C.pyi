# Type stub of the private compiled extension. Use the mersdk API; this module may be absent.
import numpy as np
import numpy.typing as npt

def build_info() -> dict[str, object]:
    """{'version': str, 'cuda': bool, 'openmp': bool, 'compiler': str}"""

def audio_stats(x: npt.NDArray[np.float32]) -> tuple[float, float, int]:
    """x: float32[n], C-contiguous -> (peak |x|, rms, number of NaN/Inf samples)."""
