"""Frames stored compressed: one LZ4 block per step, decompressed straight into the batch.

Atari frames are mostly background, so they compress to a small part of their size
(measured: docs/benchmarks.md, the replay rows). Each row is compressed on its own, so a
sampled sequence decompresses exactly its own frames (no neighbouring chunk to inflate, as
a chunked store would). A batch whose rows are all distinct is decompressed straight into
its places; rows that several stacks or sequences of one batch share are decompressed
once, then gathered.

The codec is LZ4 through ``cramjam`` (an optional dependency: ``pip install cramjam``, part
of the ``[atari]`` extra); nothing here imports it until a replay asks for compression.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

__all__ = ["CODECS", "CompressedRows", "check_compression"]

CODECS = ("lz4",)
_EMPTY = b""  # a row never written: reads as zeros (the padding row too)


def check_compression(value: Any) -> str | None:
    """``value`` if it names a codec that can be used here (None: no compression)."""
    if value is None:
        return None
    if value not in CODECS:
        raise ValueError(f"compression must be one of {CODECS} or None, got {value!r}")
    try:
        import cramjam  # noqa: F401
    except ImportError:
        raise ValueError(f"compression={value!r} needs the cramjam package: pip install cramjam "
                         "(or the project's [atari] extra)") from None
    return value


class CompressedRows:
    """A leaf of ``rows`` rows of ``shape`` / ``dtype``, each row one LZ4 block.

    Supports what the step store does with a leaf: ``leaf[rows] = values`` and
    ``leaf[rows]``, :meth:`take_into` for sampling and :attr:`nbytes` (every byte held:
    the blocks, their Python objects and the table of them).
    """

    def __init__(self, rows: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        import cramjam

        self._lz4 = cramjam.lz4
        self.shape = (int(rows),) + tuple(shape)
        self.dtype = np.dtype(dtype)
        self.row_bytes = int(np.prod(shape, dtype=np.int64)) * self.dtype.itemsize
        self.blocks = np.full(int(rows), _EMPTY, object)
        self._held = 0  # bytes of the written blocks' objects (as sys.getsizeof counts them)
        self._scratch = np.empty((0, self.row_bytes), np.uint8)  # distinct rows of a read (take_into)

    @property
    def nbytes(self) -> int:
        """The blocks' objects and the table of references to them (8 bytes a row)."""
        return int(self._held + self.blocks.nbytes)

    def _replace(self, row: int, block: bytes) -> int:
        """Store ``block`` at ``row``; the change in bytes held."""
        old = self.blocks[row]
        self.blocks[row] = block
        return (sys.getsizeof(block) if block is not _EMPTY else 0) - (sys.getsizeof(old) if old is not _EMPTY else 0)

    def __len__(self) -> int:
        return self.shape[0]

    def __setitem__(self, rows: np.ndarray, values: np.ndarray) -> None:
        """Compress ``values`` [K, *shape] into ``rows`` (int [K])."""
        rows = np.asarray(rows).reshape(-1)
        values = np.ascontiguousarray(values, self.dtype).reshape(rows.size, -1)
        compress = self._lz4.compress_block
        held = 0
        for row, value in zip(rows.tolist(), values):
            held += self._replace(row, bytes(compress(value, store_size=False)))
        self._held += held

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows)
        out = np.empty(rows.shape + self.shape[1:], self.dtype)
        self.take_into(rows, out)
        return out

    def take_into(self, rows: np.ndarray, out: np.ndarray) -> None:
        """``out[...] = self[rows]`` (rows int of any shape, ``out`` C-contiguous
        ``rows.shape + shape``), each distinct row decompressed once."""
        flat_rows = np.asarray(rows).reshape(-1)
        flat_out = out.reshape(flat_rows.size, -1).view(np.uint8)
        if flat_rows.size == 0:
            return
        unique, inverse = np.unique(flat_rows, return_inverse=True)
        if unique.size == flat_rows.size:  # no row twice: straight into place
            self._decompress(flat_rows, flat_out)
            return
        # Rows shared by stacks or overlapping sequences: decompressed once, then gathered.
        if self._scratch.shape[0] < unique.size:
            self._scratch = np.empty((unique.size, self.row_bytes), np.uint8)
        scratch = self._scratch[:unique.size]
        self._decompress(unique, scratch)
        np.take(scratch, inverse.reshape(-1), axis=0, out=flat_out, mode="clip")

    def _decompress(self, rows: np.ndarray, out: np.ndarray) -> None:
        decompress, blocks = self._lz4.decompress_block_into, self.blocks
        for place, row in enumerate(rows.tolist()):
            block = blocks[row]
            if block is _EMPTY:
                out[place] = 0
            else:
                decompress(block, out[place])

    # ------------------------------------------------------------------ persistence

    def export(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The blocks of ``rows`` as (uint8 [total] concatenated, int64 [K] sizes)."""
        chosen = [self.blocks[row] for row in np.asarray(rows).reshape(-1).tolist()]
        sizes = np.fromiter((len(block) for block in chosen), np.int64, len(chosen))
        return np.frombuffer(b"".join(chosen), np.uint8).copy(), sizes

    def check_blocks(self, data: np.ndarray, sizes: np.ndarray) -> list[bytes]:
        """The blocks of an :meth:`export` (loaded from a file), each checked to decompress
        to one row; ValueError naming the first bad block."""
        if data.dtype != np.uint8 or data.ndim != 1 or sizes.ndim != 1 or (sizes.size and sizes.min() < 0):
            raise ValueError("expected compressed blocks as uint8 [total] with int sizes [K] >= 0")
        if int(sizes.sum()) != data.size:
            raise ValueError(f"the block sizes add up to {int(sizes.sum())} bytes, the data has {data.size}")
        bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
        raw = data.tobytes()
        scratch = np.empty(self.row_bytes, np.uint8)
        blocks = []
        for k in range(sizes.size):
            block = raw[bounds[k]:bounds[k + 1]]
            if block:
                try:
                    written = self._lz4.decompress_block_into(block, scratch)
                except Exception as error:  # noqa: BLE001 - the codec's own error types vary
                    raise ValueError(f"compressed step {k} does not decompress ({error})") from None
                if int(written) != self.row_bytes:
                    raise ValueError(f"compressed step {k} holds {int(written)} bytes, expected {self.row_bytes}")
            blocks.append(block if block else _EMPTY)
        return blocks

    def put_blocks(self, rows: np.ndarray, blocks: list[bytes]) -> None:
        """Install checked blocks (from :meth:`check_blocks`) at ``rows``."""
        held = 0
        for row, block in zip(np.asarray(rows).reshape(-1).tolist(), blocks):
            held += self._replace(row, block)
        self._held += held
