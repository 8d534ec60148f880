"""Environment steps stored once: the circular step store, and the chunks adders write into it.

An R2D2 sequence of L steps overlaps its neighbours (period P < L), so a replay that stores
every sequence whole keeps each step about L / P times. Here a step is written once into
a :class:`StepStore` and sequences refer to it by step id (:mod:`r2d2_state.replay.sequences`).

A stored step holds what cannot be derived from its neighbours:

- ``observation``: the observation structure; for a leaf that is a stack of the last k
  frames (:class:`FrameStack`), only the newest frame;
- ``action`` int32, ``reward`` float32: the action taken on this observation and the
  reward after it (0 where the step is not a transition: an episode's final observation);
- ``flags`` uint8: ``TRANSITION`` (the step is a transition), ``TERMINATED`` (the episode
  terminated after it: no bootstrap), ``STORED`` (always: the padding row has no flag);
- ``state`` (optional): the recurrent state fed with this observation, for diagnostics.

``prev_action`` / ``prev_reward`` are the previous step's action and reward, and padding is
not data: both are rebuilt when a sequence is read.

Store ids grow with every block the store hands out; id ``i`` lives in row ``i % capacity``
until the store has moved ``capacity`` ids on. Each env of each writer (a *lane*) fills a
block of consecutive ids of its own, so the steps of one sequence lie together in memory
(with N envs written in turn they would lie N rows apart: one cache line per step read);
blocks are overwritten first-in first-out. Each array has one extra row of zeros, read for
the padding (id -1).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import numpy as np

from r2d2_state.replay.compression import CompressedRows
from r2d2_state.replay.spec import ItemSpec

__all__ = ["FrameStack", "SequenceLayout", "StepChunk", "StepStore", "TRANSITION", "TERMINATED", "STORED"]

_PACKED_LEAF_BYTES = 64
TRANSITION = np.uint8(1)
TERMINATED = np.uint8(2)
STORED = np.uint8(4)  # set on every stored step; the zero row (padding) has no flag
PADDINGS = ("reset", "zero")


@dataclasses.dataclass(frozen=True)
class FrameStack:
    """An observation leaf that stacks the last ``size`` frames along ``axis``, newest last.

    ``padding`` is what fills the stack at an episode's first step: ``"reset"`` repeats
    the first frame (Gymnasium's ``FrameStackObservation`` default), ``"zero"`` zeros.
    """

    leaf: str
    """The observation leaf's name as ``ItemSpec`` names it: ``"observation"`` for a single
    array, ``"observation/pixels"`` for a dict key."""
    size: int
    axis: int = 0
    padding: str = "reset"

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, (int, np.integer)) or self.size < 2:
            raise ValueError(f"FrameStack.size must be an int >= 2, got {self.size!r}")
        if isinstance(self.axis, bool) or not isinstance(self.axis, (int, np.integer)):
            raise ValueError(f"FrameStack.axis must be an int, got {self.axis!r}")
        if self.padding not in PADDINGS:
            raise ValueError(f"FrameStack.padding must be one of {PADDINGS}, got {self.padding!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class SequenceLayout:
    """The geometry every sequence of a replay shares (set by its adder)."""

    burn_in: int
    trace_length: int
    n_step: int
    period: int
    frame_stacks: tuple[FrameStack, ...] = ()

    @property
    def length(self) -> int:
        """L = burn_in + trace_length + n_step."""
        return self.burn_in + self.trace_length + self.n_step

    @functools.cached_property
    def lookback(self) -> int:
        """Steps before a sequence's first position it refers to: the previous step (its
        action and reward are ``prev_action`` / ``prev_reward``) and the older frames of stacks."""
        return max([1] + [stack.size - 1 for stack in self.frame_stacks])

    @functools.cached_property
    def width(self) -> int:
        """Step ids per sequence: lookback + L."""
        return self.lookback + self.length

    def to_dict(self) -> dict[str, Any]:
        return {"burn_in": self.burn_in, "trace_length": self.trace_length, "n_step": self.n_step,
                "period": self.period, "frame_stacks": [s.to_dict() for s in self.frame_stacks]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SequenceLayout:
        if not isinstance(data, dict):
            raise ValueError(f"expected a sequence layout object, got {data!r}")
        values = {k: data[k] for k in ("burn_in", "trace_length", "n_step", "period")}
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{key} must be an int >= 0, got {value!r}")
        stacks = tuple(FrameStack(**s) for s in data.get("frame_stacks", []))
        return cls(**values, frame_stacks=stacks)


@dataclasses.dataclass
class StepChunk:
    """Steps and the sequences that refer to them, as one adder hands them to a replay.

    Every array is numpy (a chunk pickles cheaply: Ray actors ship it as it is). Step ids
    in ``sequences`` are the *writer's* own (``first_id + row``); the replay maps them to
    its store ids, so a sequence may refer to steps of this writer's earlier chunks.
    """

    writer: str
    """Identifies the adder (a new adder, e.g. after a worker restart, is a new writer)."""
    first_id: int
    """Writer id of ``steps``' first row; rows have consecutive ids."""
    steps: dict[str, Any]
    """``observation``, ``action``, ``reward``, ``flags`` (and ``state``), leaves [M, ...]."""
    sequences: np.ndarray
    """int64 [K, width]: writer step ids of each sequence (lookback, then its L positions), -1 for none."""
    start_state: Any
    """The recurrent state fed with each sequence's first observation, leaves [K, ...]."""
    layout: SequenceLayout
    history: int
    """How many writer ids before ``first_id`` a sequence of this writer may refer to."""
    num_envs: int = 1
    """Envs of the writer: the step of writer id ``i`` belongs to env ``i % num_envs``."""

    @property
    def num_steps(self) -> int:
        return int(np.shape(self.steps["flags"])[0])

    @property
    def num_sequences(self) -> int:
        return int(self.sequences.shape[0])

    @classmethod
    def concatenate(cls, chunks: Sequence[StepChunk]) -> StepChunk:
        """Consecutive chunks of one writer as one chunk."""
        import tree

        first = chunks[0]
        for before, after in zip(chunks, chunks[1:]):
            if after.writer != first.writer or after.first_id != before.first_id + before.num_steps:
                raise ValueError("only consecutive chunks of one writer can be concatenated")
        if len(chunks) == 1:
            return first
        join = lambda *xs: np.concatenate(xs)  # noqa: E731
        return cls(first.writer, first.first_id, tree.map_structure(join, *[c.steps for c in chunks]),
                   np.concatenate([c.sequences for c in chunks]),
                   tree.map_structure(join, *[c.start_state for c in chunks]), first.layout, first.history,
                   first.num_envs)

    def nbytes(self) -> int:
        """Bytes of every array in the chunk (what a process ships)."""
        import tree

        leaves = tree.flatten([self.steps, self.start_state]) + [self.sequences]
        return int(sum(np.asarray(leaf).nbytes for leaf in leaves))


class StepStore:
    """A circular store of ``capacity`` steps with a fixed spec (module docstring)."""

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity < 1:
            raise ValueError(f"capacity_steps must be a positive int, got {capacity!r}")
        self.capacity = int(capacity)
        self.spec: ItemSpec | None = None
        self.arrays: list[np.ndarray | CompressedRows] = []  # per leaf, [capacity + 1, ...]; the last row stays zero
        self._owned: list[np.ndarray] = []  # the allocations behind them
        self.records: np.ndarray | None = None  # the small leaves, one record per step
        self.packed: frozenset[int] = frozenset()  # leaves that are fields of ``records``
        self.head = 0  # the end of the last block handed out
        self.block = 64  # ids per block at most (smaller for small stores: see ids_for)
        self._lanes: dict[Any, tuple[np.ndarray, np.ndarray]] = {}  # writer -> each env's next id, block end
        self.written = 0  # steps written

    def allocate(self, spec: ItemSpec, compressed: frozenset[int] = frozenset()) -> None:
        """One array per leaf, [capacity + 1, ...]. The small leaves (an action, a reward, the
        flags, a short vector observation) are fields of one record per step, so reading a
        step's fields costs one cache line, not one per field; large ones (frames) stand alone,
        those in ``compressed`` as one compressed block per row (:mod:`.compression`).
        np.zeros maps pages lazily: capacity nobody wrote yet costs no memory."""
        self.spec = spec
        rows = self.capacity + 1
        small = [i for i, leaf in enumerate(spec.leaves)
                 if int(np.prod(leaf.shape, dtype=np.int64)) * leaf.dtype.itemsize <= _PACKED_LEAF_BYTES]
        self.arrays = [None] * len(spec.leaves)
        self._owned = []
        self.records = None
        self.packed = frozenset(small)
        if small:
            fields = [(f"f{i}", spec.leaves[i].dtype, spec.leaves[i].shape) for i in small]
            aligned = np.dtype(fields, align=True)
            # A power-of-two record (up to 64 bytes) takes numpy's fixed-size copy when gathered.
            size = aligned.itemsize if aligned.itemsize > 64 else 1 << (aligned.itemsize - 1).bit_length()
            self.records = np.zeros(rows, np.dtype({"names": aligned.names, "offsets": [
                aligned.fields[n][1] for n in aligned.names], "formats": [aligned.fields[n][0] for n in aligned.names],
                "itemsize": size}))
            self._owned.append(self.records)
            for i in small:
                self.arrays[i] = self.records[f"f{i}"]  # a strided view: gather with take_records
        for i, leaf in enumerate(spec.leaves):
            if self.arrays[i] is None:
                if i in compressed:
                    self.arrays[i] = CompressedRows(rows, leaf.shape, leaf.dtype)
                else:
                    self.arrays[i] = np.zeros((rows,) + leaf.shape, leaf.dtype)
                self._owned.append(self.arrays[i])

    @property
    def oldest(self) -> int:
        """The oldest store id still held."""
        return max(0, self.head - self.capacity)

    def __len__(self) -> int:
        """Ids held (the blocks not yet overwritten; a lane's unfilled ids count too)."""
        return self.head - self.oldest

    def ids_for(self, writer: Any, num_envs: int, first: int, count: int) -> np.ndarray:
        """Store ids for ``count`` new steps of ``writer``, whose step ``first + m`` belongs to
        env ``(first + m) % num_envs``: each env's next id in its block, a new block at the
        head when its block is full."""
        lanes = self._lanes.get(writer)
        if lanes is None or lanes[0].shape[0] != num_envs:
            lanes = self._lanes[writer] = (np.zeros(num_envs, np.int64), np.zeros(num_envs, np.int64))
        nxt, end = lanes
        # Blocks small enough that all of a writer's partly filled blocks take at most 1/16
        # of the store: they are handed out early, so they shorten what the store holds.
        block = max(1, min(self.block, self.capacity // (16 * num_envs)))
        envs = (first + np.arange(count)) % num_envs
        if count % num_envs == 0 and first % num_envs == 0 and (end - nxt >= count // num_envs).all():
            # Whole vector steps that fit in the current blocks (all but one call in `block`).
            ids = (nxt[None, :] + np.arange(count // num_envs)[:, None]).reshape(-1)
            nxt += count // num_envs
            return ids
        out = np.empty(count, np.int64)
        for m, env in enumerate(envs.tolist()):
            if nxt[env] >= end[env]:
                nxt[env], end[env] = self.head, self.head + block
                self.head += block
            out[m] = nxt[env]
            nxt[env] += 1
        return out

    def write(self, leaves: Sequence[np.ndarray], ids: np.ndarray) -> None:
        """Write M steps (leaves [M, ...] in spec order) at store ids ``ids`` (from :meth:`ids_for`)."""
        rows = ids % self.capacity
        for array, leaf in zip(self.arrays, leaves):
            array[rows] = leaf
        self.written += int(ids.size)

    def forget_lanes(self) -> None:
        """Lanes start new blocks (after a load: the writers that filled them are gone)."""
        self._lanes.clear()

    def take_records(self, rows: np.ndarray) -> np.ndarray | None:
        """The packed records of ``rows`` (any shape), one gather for every small leaf; leaf
        ``i`` is the field ``f"f{i}"``. (np.take would first copy a strided field view whole.)"""
        if self.records is None:
            return None
        return self.records.take(rows, axis=0, mode="clip")

    def nbytes(self) -> int:
        return int(sum(array.nbytes for array in self._owned))
