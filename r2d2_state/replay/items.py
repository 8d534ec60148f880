"""ItemStore: whole items (any nested numpy structure of a fixed spec) stored as byte rows.

What ``SequenceReplay.add`` / ``add_batch`` store: each item is one packed row
(:class:`r2d2_state.replay.layout.RowLayout`), written into the slot the sampler gives it.
Sequences written by a :class:`~r2d2_state.replay.adder.SequenceAdder` do not go here:
they refer to steps stored once (:mod:`r2d2_state.replay.steps`).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from r2d2_state.replay.layout import RowLayout
from r2d2_state.replay.spec import ItemSpec

__all__ = ["ItemStore"]

_POOL_SIZE = 2  # a learner holds at most its current batch while sampling the next one
_HAS_REFCOUNT = hasattr(sys, "getrefcount")


class ItemStore:
    """Rows of ``capacity`` items; the spec is fixed by the first write."""

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self.spec: ItemSpec | None = None
        self.layout: RowLayout | None = None
        self.rows = np.zeros((0, 0), np.uint8)  # [capacity, row_bytes] after the first insert
        self.views: list[np.ndarray] = []  # typed views of each leaf over the rows
        self._out: np.ndarray | None = None  # reused output rows, only when opted in
        self._pool: list[np.ndarray] = []  # recent output rows, recycled once unreferenced

    def allocate(self, spec: ItemSpec, layout: RowLayout | None = None) -> None:
        self.spec = spec
        self.layout = layout or RowLayout(spec)
        self.rows = self.layout.allocate(self.capacity)
        self.views = self.layout.leaf_views(self.rows)

    def write(self, slots: np.ndarray, leaves: list[np.ndarray], kept: slice | None) -> None:
        """Write stacked leaves ``[kept]`` (or, with ``kept`` None, one unstacked item) to ``slots``."""
        first = int(slots[0])
        if kept is None:
            for view, leaf in zip(self.views, leaves):
                view[first] = leaf
            return
        target: Any = slice(first, first + slots.shape[0]) if first + slots.shape[0] <= self.capacity else slots
        for view, leaf in zip(self.views, leaves):
            view[target] = leaf[kept]

    def read(self, slots: np.ndarray, reuse: bool) -> Any:
        """The items of ``slots`` (leaves [K, ...]: views into one gathered buffer)."""
        assert self.layout is not None and self.spec is not None
        if reuse:
            if self._out is None or self._out.shape[0] != slots.shape[0]:
                self._out = np.empty((slots.shape[0], self.layout.row_bytes), np.uint8)
            out = self._out
        else:
            out = self._free_rows(slots.shape[0])
        # mode='clip' skips numpy's bounds-check buffering; slots are in range anyway.
        rows = np.take(self.rows, slots, axis=0, out=out, mode="clip")
        return self.spec.unflatten(self.layout.read(rows))

    def _free_rows(self, batch: int) -> np.ndarray:
        """Output rows [batch, row_bytes] that no caller can see.

        Allocating a fresh batch of large rows costs as much as copying it (page faults), so
        the last ``_POOL_SIZE`` outputs are kept and one is recycled when nothing outside this
        store references it any more: every leaf handed out is a numpy view holding a
        reference to its rows, so a refcount of 2 (the pool list and getrefcount's argument)
        proves no sample still uses it. Without refcounts (not CPython), always allocate.
        """
        assert self.layout is not None
        if _HAS_REFCOUNT:
            for index in range(len(self._pool)):
                if self._pool[index].shape[0] == batch and sys.getrefcount(self._pool[index]) == 2:
                    rows = self._pool.pop(index)
                    self._pool.append(rows)
                    return rows
        rows = np.empty((batch, self.layout.row_bytes), np.uint8)
        if _HAS_REFCOUNT:
            self._pool.append(rows)
            del self._pool[:-_POOL_SIZE]
        return rows
