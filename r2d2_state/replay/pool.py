"""Output buffers of sampled batches, recycled once no caller holds them.

Allocating a fresh batch of large leaves costs as much as filling it (page faults), so the
last few outputs of each shape are kept and one is handed out again when nothing outside
the pool references it: every array given out is the buffer itself or a view holding a
reference to it, so a refcount of 2 (the pool's list and getrefcount's argument) proves no
sample still uses it. Samples a caller keeps are therefore never overwritten. Without
refcounts (not CPython), every call allocates.
"""

from __future__ import annotations

import sys

import numpy as np

from r2d2_state.replay.compression import CompressedRows

__all__ = ["BufferPool"]

_HAS_REFCOUNT = hasattr(sys, "getrefcount")
_MIN_BYTES = 1 << 20  # smaller outputs are cheaper to allocate than to track


class BufferPool:
    """``empty(shape, dtype)``: an array nobody else references (module docstring)."""

    def __init__(self, per_shape: int = 2) -> None:
        self.per_shape = per_shape
        self._buffers: dict[tuple, list[np.ndarray]] = {}

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        if not _HAS_REFCOUNT or int(np.prod(shape)) * dtype.itemsize < _MIN_BYTES:
            return np.empty(shape, dtype)
        key = (tuple(shape), dtype.str)
        buffers = self._buffers.setdefault(key, [])
        for index in range(len(buffers)):
            if sys.getrefcount(buffers[index]) == 2:
                buffer = buffers.pop(index)
                buffers.append(buffer)
                return buffer
        buffer = np.empty(shape, dtype)
        buffers.append(buffer)
        del buffers[:-self.per_shape]
        return buffer

    def take(self, array: np.ndarray | CompressedRows, rows: np.ndarray) -> np.ndarray:
        """``array[rows]`` (rows int of any shape) into a recycled buffer."""
        if isinstance(array, CompressedRows):
            out = self.empty(rows.shape + array.shape[1:], array.dtype)
            array.take_into(rows, out)
            return out
        if not _HAS_REFCOUNT or rows.size * array[:1].nbytes < _MIN_BYTES:
            return np.take(array, rows, axis=0, mode="clip")
        out = self.empty(rows.shape + array.shape[1:], array.dtype)
        # mode='clip' skips numpy's bounds-check buffering; rows are in range anyway.
        np.take(array, rows, axis=0, out=out, mode="clip")
        return out
