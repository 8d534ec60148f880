"""Sequences as references to stored steps, and how a sampled sequence is read back.

A sequence is its row of step-store rows (``layout.lookback`` steps before its first
position, then its L positions; the store's zero row where there is no step: the padding
before an episode's first step and after its final observation) plus the recurrent state
fed with its first observation. Overlapping sequences share their steps.

Reading a sequence (:meth:`SequenceIndex.read`) rebuilds the R2D2 item the learner trains
on, leaves [B, L, ...] (see :mod:`r2d2_state.replay.adder` for what each field means):
``observation`` (frame stacks rebuilt from single frames, bit-identical to what the env
returned, episode starts included), ``action``, ``reward``, ``discount``, ``mask``,
``valid``, ``prev_action`` / ``prev_reward`` (the previous step's), ``start_state`` and,
when steps carry states, ``states``. Padding reads zeros (``prev_action`` -1).

Eviction. A sequence is retired as soon as the oldest step it refers to is overwritten:
sequences are kept in a heap by that step id, so each step write retires exactly the
sequences that lost a step, in whatever order they were inserted.
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np

from r2d2_state.replay.pool import BufferPool
from r2d2_state.replay.spec import ItemSpec
from r2d2_state.replay.steps import STORED, TERMINATED, TRANSITION, SequenceLayout, StepStore

__all__ = ["SequenceIndex", "frame_shape"]

_NO_STEP = np.iinfo(np.int64).max


def frame_shape(shape: tuple[int, ...], axis: int, size: int, name: str) -> tuple[tuple[int, ...], int]:
    """The stored frame's shape and the stack axis normalised, for an observation leaf of
    ``shape`` stacking ``size`` frames along ``axis`` (ValueError if it cannot)."""
    if not -len(shape) <= axis < len(shape):
        raise ValueError(f"frame stack of leaf {name!r}: axis {axis} does not exist in shape {shape!r}")
    axis %= len(shape)
    if shape[axis] != size:
        raise ValueError(f"frame stack of leaf {name!r}: expected {size} frames along axis {axis}, "
                         f"got shape {shape!r}")
    return shape[:axis] + shape[axis + 1:], axis


def _flag_fields() -> np.ndarray:
    """float32 [256, 4]: discount, mask and valid of a step, by its flags byte (and a zero
    column: 16-byte rows take numpy's fixed-size copy when gathered)."""
    flags = np.arange(256)
    transition = (flags & TRANSITION) != 0
    return np.stack([transition & ((flags & TERMINATED) == 0), transition, (flags & STORED) != 0,
                     np.zeros(256, bool)], axis=1).astype(np.float32)


_FLAG_FIELDS = _flag_fields()


def _take(array: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``array[index]`` along the first axis (np.take: faster than fancy indexing; the
    indices are in range, so mode='clip' skips the bounds-check buffering)."""
    return array.take(index, axis=0, mode="clip")


class SequenceIndex:
    """Step-id rows and start states of up to ``capacity`` sequences, by sampler slot."""

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self.layout: SequenceLayout | None = None
        self.state_spec: ItemSpec | None = None
        self.pad = 0  # the step store's zero row
        self.rows = np.zeros((0, 0), np.int32)
        self.oldest = np.zeros(0, np.int64)
        self.states: list[np.ndarray] = []
        self._heap: list[tuple[int, int]] = []  # (oldest step id, key)
        self.pool = BufferPool()

    def allocate(self, layout: SequenceLayout, state_spec: ItemSpec, store_capacity: int) -> None:
        self.layout, self.state_spec = layout, state_spec
        self.pad = store_capacity
        dtype = np.int32 if store_capacity < np.iinfo(np.int32).max else np.int64
        self.rows = np.full((self.capacity, layout.width), self.pad, dtype)
        self.oldest = np.full(self.capacity, _NO_STEP, np.int64)
        self.states = [np.zeros((self.capacity,) + leaf.shape, leaf.dtype) for leaf in state_spec.leaves]

    @staticmethod
    def oldest_of(ids: np.ndarray) -> np.ndarray:
        """int64 [K]: the oldest store id each row refers to."""
        return np.where(ids >= 0, ids, _NO_STEP).min(axis=1)

    def write(self, slots: np.ndarray, keys: np.ndarray, ids: np.ndarray, states: list[np.ndarray]) -> None:
        """Store sequences ``keys`` (their store ids ``ids`` [K, W], -1 for none; state leaves
        [K, ...]) in ``slots``."""
        self.rows[slots] = np.where(ids >= 0, ids % self.pad, self.pad)
        oldest = self.oldest_of(ids)
        self.oldest[slots] = oldest
        for array, leaf in zip(self.states, states):
            array[slots] = leaf
        for step, key in zip(oldest.tolist(), keys.tolist()):
            heapq.heappush(self._heap, (step, key))

    def ids(self, slots: np.ndarray, head: int) -> np.ndarray:
        """int64 [K, W]: the store ids of the sequences in ``slots`` (-1 for none), given the
        store's head: the ids held are a window of at most ``pad`` consecutive ids."""
        rows = self.rows[slots].astype(np.int64)
        last = head - 1
        return np.where(rows != self.pad, last - (last - rows) % self.pad, -1)

    def expired(self, cut: int) -> list[int]:
        """Keys of sequences that refer to a step older than store id ``cut`` (popped)."""
        out = []
        heap = self._heap
        while heap and heap[0][0] < cut:
            out.append(heapq.heappop(heap)[1])
        return out

    def rebuild_heap(self, keys: np.ndarray, slots: np.ndarray) -> None:
        """After a load: the heap of the live sequences ``keys`` in ``slots``."""
        self._heap = list(zip(self.oldest[slots].tolist(), keys.tolist()))
        heapq.heapify(self._heap)

    def nbytes(self) -> int:
        return int(self.rows.nbytes + self.oldest.nbytes + sum(a.nbytes for a in self.states)
                   + 40 * len(self._heap))  # a heap entry: a tuple of two ints and its list slot

    # ------------------------------------------------------------------ reading

    def read(self, slots: np.ndarray, store: StepStore, step_names: dict[str, int], obs_spec: ItemSpec,
             stacks: dict[int, tuple[int, int, str]]) -> dict[str, Any]:
        """The items of sequences in ``slots`` (int [B]), leaves [B, L, ...].

        ``step_names``: store leaf index of ``action``, ``reward``, ``flags`` and of the
        first observation / state leaf (``observation``, ``state``); ``obs_spec``: the
        observation structure as the env returns it; ``stacks``: observation leaf index ->
        (frames, axis, padding) for frame-stacked leaves.
        """
        layout = self.layout
        assert layout is not None and self.state_spec is not None
        lb, length = layout.lookback, layout.length
        pad = self.pad
        window = _take(self.rows, slots)  # [B, W]
        rows = window[:, lb:]
        arrays = store.arrays
        records = store.take_records(window)  # every small leaf of the window's steps, one gather

        def over_window(index: int) -> np.ndarray:
            return records[f"f{index}"] if index in store.packed else _take(arrays[index], window)

        def over_sequence(index: int) -> np.ndarray:
            if index in store.packed:
                return records[f"f{index}"][:, lb:]
            return self.pool.take(arrays[index], rows)

        # Flags, actions and rewards over the whole window: the previous step's are a shifted view.
        flags = over_window(step_names["flags"])
        actions = over_window(step_names["action"])
        rewards = over_window(step_names["reward"])
        fields = _take(_FLAG_FIELDS, flags[:, lb:])  # [B, L, 4]: discount, mask, valid, unused
        # The previous step counts only for a real step of the same episode: a window holds
        # one episode, the padding row (no step) elsewhere.
        present = window != pad
        previous = present[:, lb:] & present[:, lb - 1: lb - 1 + length]
        item: dict[str, Any] = {
            "action": actions[:, lb:],
            "reward": rewards[:, lb:],
            "discount": fields[..., 0],
            "mask": fields[..., 1],
            "valid": fields[..., 2],
            "prev_action": np.where(previous, actions[:, lb - 1: lb - 1 + length], np.int32(-1)),
            "prev_reward": np.where(previous, rewards[:, lb - 1: lb - 1 + length], np.float32(0.0)),
        }
        first_obs = step_names["observation"]
        observation = []
        for index, leaf in enumerate(obs_spec.leaves):
            if index in stacks:
                observation.append(self._stacks(window, present[:, lb:], arrays[first_obs + index], *stacks[index]))
            else:
                observation.append(over_sequence(first_obs + index))
        item["observation"] = obs_spec.unflatten(observation)
        item["start_state"] = self.state_spec.unflatten([_take(array, slots) for array in self.states])
        if "state" in step_names:
            first_state = step_names["state"]
            item["states"] = self.state_spec.unflatten(
                [over_sequence(first_state + i) for i in range(len(self.state_spec.leaves))])
        return item

    def _stacks(self, window: np.ndarray, present: np.ndarray, frames: np.ndarray, size: int, axis: int,
                padding: str) -> np.ndarray:
        """Frame stacks [B, L, *obs shape] from the single frames of the rows ``window`` [B, W]."""
        layout = self.layout
        lb, length = layout.lookback, layout.length
        pad = self.pad
        if padding == "reset":
            # Before the episode's first step, its first frame repeats (FrameStackObservation's reset padding).
            first = (window != pad).argmax(axis=1)
            fill = window[np.arange(window.shape[0]), first]
            window = np.where(np.arange(window.shape[1])[None, :] < first[:, None], fill[:, None], window)
        columns = lb + np.arange(length)[:, None] - (size - 1) + np.arange(size)[None, :]  # [L, size]
        frame_rows = np.where(present[:, :, None], window[:, columns], pad)  # padded positions read zeros
        stacked = self.pool.take(frames, frame_rows)  # [B, L, size, *frame]
        if axis:
            stacked = np.ascontiguousarray(np.moveaxis(stacked, 2, 2 + axis))
        return stacked
