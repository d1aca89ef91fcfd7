"""Zero-padding arrays of different lengths into one batch: the one padding helper the signal batch
(``ops``), the log-mel batch (``features``) and the pipeline's cached-feature batches share."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pad_stack(arrays: Sequence[np.ndarray], axis: int = -1, dtype: type = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Arrays equal in shape except along ``axis`` -> (batch (B, ...) zero-padded to the longest along
    ``axis``, lengths (B,) int64). ``axis`` counts in the arrays' own dimensions."""
    arrays = [np.asarray(a) for a in arrays]
    if not arrays:
        return np.zeros((0, 0), dtype), np.zeros(0, np.int64)
    ax = axis % arrays[0].ndim
    lengths = np.array([a.shape[ax] for a in arrays], dtype=np.int64)
    shape = list(arrays[0].shape)
    shape[ax] = int(lengths.max())
    out = np.zeros((len(arrays), *shape), dtype)
    for i, a in enumerate(arrays):
        index: list[int | slice] = [i] + [slice(None)] * a.ndim
        index[1 + ax] = slice(0, a.shape[ax])
        out[tuple(index)] = a
    return out, lengths
