"""SequenceReplay: prioritized replay of R2D2 sequences stored as references to steps stored once.

Two ways to fill it, one way to sample it:

- ``add_chunk(chunk)``: what a :class:`~r2d2_state.replay.adder.SequenceAdder` writes. Each
  environment step goes once into a circular step store (``capacity_steps``); a sequence
  is a row of step ids plus its start state, so overlapping sequences share their steps
  and a frame stack keeps one frame per step. A sequence is retired as soon as one of its
  steps is overwritten (first-in first-out by steps) and never sampled after.
- ``add(item)`` / ``add_batch(items)``: any nested numpy item of a fixed spec, stored whole
  (``capacity`` items, first-in first-out).

Sampling is the same for both (:class:`~r2d2_state.replay.sampler.PrioritizedSampler`):
``P(i) = p_i ** alpha / sum_k p_k ** alpha``, importance weights ``(size * P(i)) ** -beta``
over their max; keys are insert ids for ``update_priorities``.

Capacities. ``capacity`` counts items or sequences, ``capacity_steps`` env steps (the
paper's unit: 4M observations). For sequences give ``capacity_steps``; the sequence table
then holds up to ``1.25 * capacity_steps / period + 1024`` sequences (enough for episodes of
four periods or longer; give ``capacity`` as well for shorter ones). Given only ``capacity``
(sequences), the step store is sized so that the last ``capacity`` sequences of one
writer always fit (``(capacity + num_envs) * (trace_length + n_step + 1)`` steps plus the
lookback of every env): first-in first-out by sequences, exactly as a replay that copies
them. With several writers (actor processes), give both.

One lock guards every mutation and every sample, so actor threads may add while a learner
thread samples. All validation happens before any mutation: a call that raises leaves the
replay exactly as it was.

Usage::

    replay = SequenceReplay(capacity_steps=1_000_000, seed=0)
    adder = SequenceAdder(replay, num_envs=8, burn_in=40, trace_length=80, period=40, n_step=5)
    ...                                        # adder.add(...) once per env.step
    keys, data, weights, probs = replay.sample(64)
    replay.update_priorities(keys, new_priorities)
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any, NamedTuple

import numpy as np

from r2d2_state.replay import persistence
from r2d2_state.replay.compression import check_compression
from r2d2_state.replay.items import ItemStore
from r2d2_state.replay.sampler import PrioritizedSampler, make_sampler
from r2d2_state.replay.sequences import SequenceIndex
from r2d2_state.replay.spec import ItemSpec
from r2d2_state.replay.steps import SequenceLayout, StepChunk, StepStore

__all__ = ["Sample", "SequenceReplay"]

_SEQUENCE_SLACK = 1024
# An env completes a sequence every period steps of an episode, plus one at its end: a
# quarter more covers episodes of four periods or longer (shorter ones: give capacity).
_SEQUENCES_PER_PERIOD = 1.25
_COMPRESS_FROM_BYTES = 1024  # smaller rows: the codec's per-row cost outweighs what it saves


class Sample(NamedTuple):
    """One sampled batch.

    keys: int64 [batch], insert ids to pass back to ``update_priorities``.
    data: the item structure, each leaf [batch, ...]. Never shared with the storage or with
      a sample the caller still holds (items stored whole: unless ``reuse_buffers``).
    weights: float32 [batch], importance weights ``(size * P(i)) ** -beta / max``.
    probabilities: float64 [batch], the probability P(i) each item was drawn with.
    """

    keys: np.ndarray
    data: Any
    weights: np.ndarray
    probabilities: np.ndarray


class _Writer:
    """Where one adder's step ids landed in the store: a ring of store ids by writer id."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.store_ids = np.full(size, -1, np.int64)
        self.next_id: int | None = None  # the writer id its next chunk must start at
        self.first_id = 0  # the first writer id this replay saw

    def resolve(self, ids: np.ndarray) -> np.ndarray:
        """Store ids of writer ids (-1 stays -1); call after :meth:`record`."""
        return np.where(ids >= 0, self.store_ids[np.where(ids >= 0, ids, 0) % self.size], -1)

    def record(self, chunk_first: int, store_ids: np.ndarray) -> None:
        ids = np.arange(chunk_first, chunk_first + store_ids.size)
        self.store_ids[ids % self.size] = store_ids
        self.next_id = chunk_first + store_ids.size


class SequenceReplay:
    """Prioritized replay of R2D2 sequences (steps stored once) or of whole items (module docstring).

    Args:
      capacity: items (``add``), or sequences (``add_chunk``) held at most.
      priority_exponent: alpha (0: uniform).
      importance_exponent: beta (0: unit weights).
      seed: the sampling generator's seed.
      capacity_steps: env steps held (sequences only).
      compression: ``"lz4"`` keeps each step's large observation leaves (frames: rows of
        at least 1 KiB) as one LZ4 block each, decompressed when sampled (needs ``cramjam``);
        None (default) stores them raw.
    """

    def __init__(self, capacity: int | None = None, priority_exponent: float = 0.9, importance_exponent: float = 0.6,
                 seed: int | None = None, *, capacity_steps: int | None = None,
                 compression: str | None = None) -> None:
        if capacity is None and capacity_steps is None:
            raise ValueError("give capacity (items or sequences) and/or capacity_steps (env steps)")
        for name, value in (("capacity", capacity), ("capacity_steps", capacity_steps)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                      or value < 1):
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        # Checks the exponents (and capacity) before anything is kept.
        probe = make_sampler(capacity or capacity_steps, priority_exponent, importance_exponent, seed)
        self.compression = check_compression(compression)
        self.capacity = None if capacity is None else int(capacity)
        self.capacity_steps = None if capacity_steps is None else int(capacity_steps)
        self.priority_exponent = probe.priority_exponent
        self.importance_exponent = probe.importance_exponent
        self._seed = seed
        self._lock = threading.Lock()
        self._sampler: PrioritizedSampler | None = probe if capacity is not None else None
        self._mode: str | None = None  # "items" or "sequences" after the first insert
        self._items: ItemStore | None = None
        self._steps: StepStore | None = None
        self._index: SequenceIndex | None = None
        self._layout: SequenceLayout | None = None
        self._step_spec: ItemSpec | None = None
        self._obs_spec: ItemSpec | None = None
        self._step_names: dict[str, int] = {}
        self._stacks: dict[int, tuple[int, int, str]] = {}
        self._writers: dict[str, _Writer] = {}
        self._dropped = 0  # sequences whose steps were overwritten before they arrived
        self._retired = 0  # sequences retired because one of their steps was overwritten

    # ------------------------------------------------------------------ items stored whole

    def add(self, item: Any, priority: float | None = None) -> int:
        """Inserts one item (leaves without a batch axis); returns its key.

        ``priority`` is the raw priority (before the exponent); ``None`` gives the max
        priority seen so far (1.0 on an empty replay).
        """
        with self._lock:
            spec = self._item_spec(item, 0)
            leaves = spec.flatten(item)
            raw = None if priority is None else self._need_sampler().check_priorities(np.asarray([priority]), 1)
            _check_finite_leaves(spec, leaves)
            return int(self._insert_items(spec, leaves, 1, raw, single=True)[0])

    def add_batch(self, items: Any, priorities: np.ndarray | None = None) -> np.ndarray:
        """Inserts K stacked items (every leaf [K, ...]); returns their keys, int64 [K].

        If K exceeds the capacity, only the last ``capacity`` items are stored (the first
        ones would be evicted by the same call anyway); all K keys are still returned.
        """
        with self._lock:
            spec = self._item_spec(items, 1)
            leaves = spec.flatten(items, leading_shape=(None,))
            count = leaves[0].shape[0] if leaves else 0
            raw = None if priorities is None else self._need_sampler().check_priorities(priorities, count)
            _check_finite_leaves(spec, leaves)
            return self._insert_items(spec, leaves, count, raw, single=False)

    def _item_spec(self, item: Any, leading_axes: int) -> ItemSpec:
        if self._mode == "sequences":
            raise ValueError("this replay holds sequences written by a SequenceAdder (add_chunk); "
                             "items stored whole need a replay of their own")
        if self.capacity is None:
            raise ValueError("add / add_batch store whole items: create the replay with capacity=ITEMS")
        if self._items is not None and self._items.spec is not None:
            return self._items.spec
        return ItemSpec.from_item(item, leading_axes=leading_axes)

    def _need_sampler(self) -> PrioritizedSampler:
        assert self._sampler is not None
        return self._sampler

    def _insert_items(self, spec: ItemSpec, leaves: list[np.ndarray], count: int, raw: np.ndarray | None,
                      single: bool) -> np.ndarray:
        sampler = self._need_sampler()
        if count == 0:
            return np.arange(sampler.next_key, sampler.next_key, dtype=np.int64)
        # Validation is over; mutate from here on.
        if self._items is None:
            self._mode = "items"
            self._items = ItemStore(sampler.capacity)
            self._items.allocate(spec)
        keys, slots, _ = sampler.insert(count, raw)
        kept = None if single else slice(max(0, count - sampler.capacity), count)
        self._items.write(slots, leaves, kept)
        if raw is not None:
            sampler.note_given_priorities(raw)
        return keys

    # ------------------------------------------------------------------ sequences over steps

    def add_chunk(self, chunk: StepChunk, priorities: np.ndarray | None = None) -> np.ndarray:
        """Writes a chunk's steps once and inserts its sequences; returns their keys, int64 [K]
        (-1 for a sequence whose oldest step was already overwritten on arrival: dropped).

        ``priorities``: raw priorities of the chunk's sequences (float [K]), or None for the
        max priority seen so far. Raises ValueError / TypeError naming what is wrong (a
        step or state of another spec or dtype, a chunk out of its writer's order, ids the
        writer never wrote, other sequence geometry, bad priorities); nothing changes then.
        """
        if not isinstance(chunk, StepChunk):
            raise TypeError(f"add_chunk takes a StepChunk (from SequenceAdder), got {type(chunk).__name__}")
        with self._lock:
            if self._mode == "items":
                raise ValueError("this replay holds whole items (add / add_batch); sequences written by a "
                                 "SequenceAdder need a replay of their own")
            plan = self._check_chunk(chunk, priorities)
            return self._write_chunk(chunk, *plan)

    def _check_chunk(self, chunk: StepChunk, priorities: Any) -> tuple:
        """Everything add_chunk needs, checked, with nothing changed."""
        layout = chunk.layout
        if self._layout is not None and layout != self._layout:
            raise ValueError(f"chunk sequence layout {layout.to_dict()} differs from this replay's "
                             f"{self._layout.to_dict()}")
        step_spec = self._step_spec or ItemSpec.from_item(chunk.steps, leading_axes=1)
        step_leaves = step_spec.flatten(chunk.steps, leading_shape=(None,))
        count = int(step_leaves[0].shape[0]) if step_leaves else 0
        names = [leaf.path[0] for leaf in step_spec.leaves]
        for required in ("action", "reward", "flags", "observation"):
            if required not in names:
                raise ValueError(f"chunk steps lack {required!r}: expected observation, action, reward, flags")
        _check_step_values(step_spec, step_leaves)
        ids = np.asarray(chunk.sequences)
        if ids.ndim != 2 or ids.shape[1] != layout.width or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"chunk sequences must be int [K, {layout.width}] (lookback + L step ids), "
                             f"got {ids.dtype} {ids.shape!r}")
        k = ids.shape[0]
        state_spec = self._index.state_spec if self._index is not None and self._index.layout is not None else \
            ItemSpec.from_item(chunk.start_state, leading_axes=1)
        state_leaves = state_spec.flatten(chunk.start_state, leading_shape=(k,)) if k else []
        for leaf_spec, leaf in zip(state_spec.leaves, state_leaves):
            if leaf.dtype.kind in "fc" and not np.all(np.isfinite(leaf)):
                raise ValueError(f"chunk start state {leaf_spec.name!r} has NaN or inf values: expected finite values")
        writer = self._writers.get(chunk.writer)
        if writer is not None and writer.next_id is not None and chunk.first_id != writer.next_id:
            raise ValueError(f"chunk of writer {chunk.writer!r} starts at step {chunk.first_id}, expected "
                             f"{writer.next_id} (chunks of one writer must arrive in order)")
        first_known = chunk.first_id if writer is None else writer.first_id
        lowest = max(first_known, chunk.first_id - chunk.history)
        used = ids[ids >= 0]
        if used.size and (used.min() < lowest or used.max() >= chunk.first_id + count):
            raise ValueError(f"chunk sequences refer to step ids outside [{lowest}, {chunk.first_id + count}) "
                             f"(this writer's steps that are still held): {used.min()}..{used.max()}")
        if np.any((ids < -1)):
            raise ValueError("chunk sequence ids must be >= -1 (-1: no step)")
        if self._step_spec is None:
            stored = ItemSpec(step_spec.skeleton["observation"],
                              tuple(leaf for leaf in step_spec.leaves if leaf.path[0] == "observation"))
            self._frame_stacks(layout, stored)  # raises for a stack of an unknown leaf
        sampler = self._sampler or make_sampler(self._sequence_capacity(chunk), self.priority_exponent,
                                                self.importance_exponent, self._seed)
        raw = None if priorities is None else sampler.check_priorities(priorities, k)
        return step_spec, step_leaves, count, ids.astype(np.int64, copy=False), state_spec, state_leaves, raw, \
            sampler

    def _frame_stacks(self, layout: SequenceLayout, obs_spec: ItemSpec) -> dict[int, tuple[int, int, str]]:
        names = {leaf.name.replace("observation", "", 1).lstrip("/") or "observation": i
                 for i, leaf in enumerate(obs_spec.leaves)}
        out = {}
        for stack in layout.frame_stacks:
            key = stack.leaf.replace("observation", "", 1).lstrip("/") or "observation"
            if key not in names:
                raise ValueError(f"frame stack of unknown observation leaf {stack.leaf!r}")
            out[names[key]] = stack
        return out

    def _sequence_capacity(self, chunk: StepChunk) -> int:
        period = max(1, chunk.layout.period)
        return math.ceil(_SEQUENCES_PER_PERIOD * self.capacity_steps / period) + _SEQUENCE_SLACK

    def _steps_for(self, chunk: StepChunk) -> int:
        """Steps that keep the last ``capacity`` sequences of one writer (module docstring)."""
        layout = chunk.layout
        num_envs = max(1, chunk.num_envs)
        # Each env completes a sequence at least every T + n steps of an episode, plus the
        # episode's final observation: the last `capacity` sequences span at most this many
        # steps; each env's block may be handed out up to a block early.
        steps = ((self.capacity + num_envs) * (layout.trace_length + layout.n_step + 1) + chunk.history
                 + 2 * max(chunk.num_steps, num_envs))
        return steps + steps // 8  # each env's partly filled block (steps.StepStore.ids_for)

    def _write_chunk(self, chunk: StepChunk, step_spec, step_leaves, count, ids, state_spec, state_leaves, raw,
                     sampler) -> np.ndarray:
        # Validation is over; mutate from here on.
        if self._mode is None:
            self.capacity_steps = self.capacity_steps or self._steps_for(chunk)
            self._install_sequences(chunk.layout, step_spec, state_spec, sampler)
        store, index = self._steps, self._index
        writer = self._writers.get(chunk.writer)
        if writer is None:
            size = 1 << max(4, int(chunk.history + count).bit_length())
            writer = self._writers[chunk.writer] = _Writer(size)
            writer.first_id = chunk.first_id
        elif writer.size < chunk.history + count:
            grown = _Writer(1 << int(chunk.history + count).bit_length())
            known = np.arange(max(writer.first_id, (writer.next_id or 0) - writer.size), writer.next_id or 0)
            grown.store_ids[known % grown.size] = writer.store_ids[known % writer.size]
            grown.first_id, grown.next_id = writer.first_id, writer.next_id
            writer = self._writers[chunk.writer] = grown
        written = store.ids_for(chunk.writer, max(1, chunk.num_envs), chunk.first_id, count)
        store.write(step_leaves, written)
        writer.record(chunk.first_id, written)
        store_ids = writer.resolve(ids)
        self._retire(store.oldest)
        k = ids.shape[0]
        oldest = SequenceIndex.oldest_of(store_ids) if k else np.zeros(0, np.int64)
        arrived = oldest >= store.oldest
        out = np.full(k, -1, np.int64)
        if arrived.any():
            keep = np.flatnonzero(arrived)
            keys, slots, replaced = sampler.insert(int(keep.size), None if raw is None else raw[keep])
            kept = slice(max(0, keep.size - sampler.capacity), keep.size)
            index.write(slots, keys[kept], store_ids[keep][kept], [leaf[keep][kept] for leaf in state_leaves])
            if raw is not None:
                sampler.note_given_priorities(raw[keep])
            out[keep] = keys
        self._dropped += int(k - arrived.sum())
        return out

    def _install_sequences(self, layout: SequenceLayout, step_spec: ItemSpec, state_spec: ItemSpec,
                           sampler: PrioritizedSampler) -> None:
        """Allocate the step store and the sequence index for this layout and these specs."""
        self._mode = "sequences"
        self._layout = layout
        self._step_spec = step_spec
        self._sampler = sampler
        self._steps = StepStore(self.capacity_steps)
        self._steps.allocate(step_spec, self._compressed_leaves(step_spec))
        self._index = SequenceIndex(sampler.capacity)
        self._index.allocate(layout, state_spec, self.capacity_steps)
        names = [leaf.path[0] for leaf in step_spec.leaves]
        self._step_names = {name: names.index(name) for name in ("action", "reward", "flags", "observation")}
        if "state" in names:
            self._step_names["state"] = names.index("state")
        stored = ItemSpec(step_spec.skeleton["observation"],
                          tuple(leaf for leaf in step_spec.leaves if leaf.path[0] == "observation"))
        stacks = self._frame_stacks(layout, stored)
        self._obs_spec = ItemSpec(stored.skeleton, tuple(
            _unstacked(leaf, stacks.get(i)) for i, leaf in enumerate(stored.leaves)))
        self._stacks = {i: (s.size, s.axis % len(self._obs_spec.leaves[i].shape), s.padding)
                        for i, s in stacks.items()}

    def _compressed_leaves(self, step_spec: ItemSpec) -> frozenset[int]:
        """Store leaves kept compressed: the observation leaves of at least 1 KiB a step."""
        if self.compression is None:
            return frozenset()
        return frozenset(i for i, leaf in enumerate(step_spec.leaves)
                         if leaf.path[0] == "observation"
                         and int(np.prod(leaf.shape, dtype=np.int64)) * leaf.dtype.itemsize >= _COMPRESS_FROM_BYTES)

    def _retire(self, cut: int) -> None:
        """Retire every live sequence that refers to a step older than store id ``cut``."""
        sampler, index = self._sampler, self._index
        keys = np.asarray(index.expired(cut), np.int64)
        if keys.size:
            fresh = keys[sampler.is_fresh(keys)]
            self._retired += int(fresh.size)
            sampler.remove(fresh % sampler.capacity)

    # ------------------------------------------------------------------ sampling

    def sample(self, batch_size: int, reuse_buffers: bool = False) -> Sample:
        """Draws ``batch_size`` entries with replacement, proportionally to priority ** alpha.

        The returned data never changes afterwards. For items stored whole,
        ``reuse_buffers=True`` returns views into one preallocated buffer that the *next*
        such call overwrites even if the caller still holds the previous batch.

        Raises ValueError on an empty replay, a batch larger than ``len(self)``, or when
        every stored priority is zero.
        """
        with self._lock:
            if self._sampler is None:
                raise ValueError("cannot sample from an empty SequenceReplay")
            draw = self._sampler.sample(batch_size)
            data = self._read(draw.slots, reuse_buffers)
        return Sample(draw.keys, data, draw.weights, draw.probabilities)

    def get(self, keys: Any) -> Any:
        """The stored items or sequences of ``keys`` (leaves [K, ...]), without sampling.

        Raises IndexError for keys never issued, KeyError for keys no longer held.
        """
        with self._lock:
            sampler = self._sampler
            if sampler is None:
                raise IndexError("no keys issued yet")
            keys = sampler.check_keys(keys)
            stale = keys[~sampler.is_fresh(keys)]
            if stale.size:
                raise KeyError(f"keys no longer held (evicted or retired): {stale[:5].tolist()!r}")
            return self._read(keys % sampler.capacity, reuse=False)

    def _read(self, slots: np.ndarray, reuse: bool) -> Any:
        if self._mode == "items":
            return self._items.read(slots, reuse)
        return self._index.read(slots, self._steps, self._step_names, self._obs_spec, self._stacks)

    # ------------------------------------------------------------------ priorities

    def update_priorities(self, keys: np.ndarray, priorities: np.ndarray) -> int:
        """Sets the raw priorities of ``keys`` (int [K]) to ``priorities`` (float [K]).

        Keys no longer held (their slot was taken by a later insert, or their sequence was
        retired) are skipped. Returns the number of priorities applied. Raises IndexError
        for keys never issued (negative or >= next key), TypeError for priorities that are
        not real numbers (bool, complex, bytes, str), ValueError for NaN, inf, negative or
        too large priorities (:meth:`max_allowed_priority`) or mismatched shapes; nothing
        is applied then.
        """
        with self._lock:
            sampler = self._sampler
            if sampler is None:
                sampler = PrioritizedSampler(self.capacity_steps, self.priority_exponent, self.importance_exponent)
            keys = sampler.check_keys(keys) if self._sampler is not None else _no_keys(keys)
            raw = sampler.check_priorities(priorities, keys.shape[0])
            if self._sampler is None:
                return 0
            return sampler.update(keys, raw)

    def max_allowed_priority(self) -> float:
        """The largest raw priority accepted by ``add``, ``add_batch``, ``add_chunk`` and
        ``update_priorities``: ``p ** alpha`` summed over a full table must stay finite
        (about 1.8e303 for alpha 1 and capacity 1e5; every finite priority for alpha 0).
        Larger priorities are refused, not clipped: they come from a diverging learner."""
        sampler = self._sampler or PrioritizedSampler(self.capacity or self.capacity_steps, self.priority_exponent,
                                                      self.importance_exponent)
        return sampler.max_allowed_priority()

    # ------------------------------------------------------------------ inspection

    def __len__(self) -> int:
        return 0 if self._sampler is None else self._sampler.size

    @property
    def spec(self) -> ItemSpec | None:
        """Items stored whole: their spec; sequences: the stored step spec (None before the first insert)."""
        if self._mode == "items":
            return self._items.spec
        return self._step_spec

    @property
    def layout(self) -> SequenceLayout | None:
        """The sequences' geometry (None before the first chunk, or for items stored whole)."""
        return self._layout

    def keys(self) -> np.ndarray:
        """int64 [len]: the keys of the entries held, in slot order (as :meth:`priorities`)."""
        with self._lock:
            sampler = self._sampler
            if sampler is None:
                return np.zeros(0, np.int64)
            slots = np.flatnonzero(sampler.alive)
            last = sampler.next_key - 1
            return last - (last - slots) % sampler.capacity

    def priorities(self) -> np.ndarray:
        """float64 [len]: a copy of the raw priorities of the entries held, in slot order."""
        with self._lock:
            return np.zeros(0) if self._sampler is None else self._sampler.live_priorities()

    def counts(self) -> tuple[int, int]:
        """(entries inserted, entries sampled) over the replay's life: ``stats()``'s
        ``inserted`` and ``sampled_items`` without its summaries over the whole table."""
        sampler = self._sampler
        return (0, 0) if sampler is None else (sampler.next_key, sampler.counters["sampled_items"])

    def stats(self) -> dict[str, Any]:
        """Counts, priority summaries and storage bytes (plain Python numbers, JSON-serialisable)."""
        with self._lock:
            sampler = self._sampler
            out: dict[str, Any] = {
                "size": len(self), "capacity": None if sampler is None else sampler.capacity,
                "capacity_steps": self.capacity_steps, "compression": self.compression,
                "inserted": 0 if sampler is None else sampler.next_key,
            }
            counters = dict.fromkeys(("sampled_batches", "sampled_items", "priority_updates",
                                      "stale_updates_skipped"), 0) if sampler is None else sampler.counters
            out["evicted"] = out["inserted"] - out["size"]
            out.update(counters)
            out["max_priority_seen"] = 1.0 if sampler is None else sampler.max_priority
            out.update(sampler.priority_summary() if sampler is not None else
                       {"priority_min": 0.0, "priority_mean": 0.0, "priority_max": 0.0})
            sampler_bytes = 0 if sampler is None else int(
                sampler.priorities.nbytes + sampler.alive.nbytes + sampler.tree._leaves.nbytes
                + sampler.tree._block_sums.nbytes * 2)
            if self._mode == "items":
                out.update({"item_bytes": self._items.spec.nbytes(), "row_bytes": self._items.layout.row_bytes,
                            "storage_bytes": int(self._items.rows.nbytes)})
            else:
                steps = self._steps
                out.update({
                    "steps_held": 0 if steps is None else len(steps),
                    "steps_written": 0 if steps is None else steps.written,
                    "step_bytes": 0 if self._step_spec is None else self._step_spec.nbytes(),
                    "retired_sequences": self._retired, "dropped_sequences": self._dropped,
                    "step_store_bytes": 0 if steps is None else steps.nbytes(),
                    "sequence_index_bytes": 0 if self._index is None else self._index.nbytes(),
                    "sampler_bytes": sampler_bytes,
                })
                out["storage_bytes"] = out["step_store_bytes"] + out["sequence_index_bytes"] + sampler_bytes
            return out

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike) -> None:
        """Writes contents, priorities, keys, counters and the sampling RNG state to ``path``.

        Atomic: the file is written beside ``path`` and renamed over it, so a crash mid-save
        leaves the previous file intact. The lock is held while writing. Adders that wrote
        here start afresh after a load (their episodes in progress are not saved).
        """
        with self._lock:
            persistence.save(self, path)

    def load(self, path: str | os.PathLike) -> None:
        """Restores a ``save``d replay into this one, exactly.

        The file must have this replay's capacities and, if this replay already holds
        data, the same specs. Exponents stay this replay's own (the stored raw priorities
        are re-exponentiated, which is exact for equal alpha). Every field is read, converted
        and validated before this replay changes: any failure is one ``ValueError`` naming
        the file and the field, and leaves the replay exactly as it was.
        """
        loaded = persistence.load(self, path)
        with self._lock:
            persistence.apply(self, loaded)

    @classmethod
    def restore(cls, path: str | os.PathLike) -> SequenceReplay:
        """A new replay with the capacities and exponents stored in ``path``, loaded from it."""
        replay = cls(**persistence.constructor_args(path))
        replay.load(path)
        return replay


def _check_step_values(spec: ItemSpec, leaves: list[np.ndarray]) -> None:
    """A chunk's steps hold what an adder writes: int32 actions >= 0, finite float32 rewards,
    flags of the known bits with STORED set, finite states."""
    from r2d2_state.replay.steps import STORED, TERMINATED, TRANSITION

    for leaf_spec, leaf in zip(spec.leaves, leaves):
        field = leaf_spec.path[0]
        if field == "action" and (leaf.dtype != np.int32 or np.any(leaf < 0)):
            raise ValueError(f"chunk actions must be int32 >= 0, got {leaf.dtype} {leaf[:5].tolist()!r}")
        if field == "reward" and (leaf.dtype != np.float32 or not np.all(np.isfinite(leaf))):
            raise ValueError(f"chunk rewards must be finite float32, got {leaf.dtype} {leaf[:5].tolist()!r}")
        if field == "flags" and (leaf.dtype != np.uint8 or np.any(leaf & ~(TRANSITION | TERMINATED | STORED))
                                 or np.any((leaf & STORED) == 0)):
            raise ValueError(f"chunk flags must be uint8 of TRANSITION / TERMINATED / STORED (always set), "
                             f"got {leaf.dtype} {leaf[:5].tolist()!r}")
        if field == "state" and leaf.dtype.kind in "fc" and not np.all(np.isfinite(leaf)):
            raise ValueError(f"chunk step state {leaf_spec.name!r} has NaN or inf values: expected finite values")


def _unstacked(leaf, stack):
    """The observation leaf as the env returns it (the stored one holds one frame of a stack)."""
    from r2d2_state.replay.spec import LeafSpec

    if stack is None:
        return LeafSpec(leaf.path, leaf.shape, leaf.dtype)
    axis = stack.axis % (len(leaf.shape) + 1)
    shape = leaf.shape[:axis] + (stack.size,) + leaf.shape[axis:]
    return LeafSpec(leaf.path, shape, leaf.dtype)


def _no_keys(keys: Any) -> np.ndarray:
    keys = np.asarray(keys)
    if keys.ndim != 1 or not (np.issubdtype(keys.dtype, np.integer) or keys.size == 0):
        raise TypeError(f"keys must be a 1-D integer array, got dtype {keys.dtype} shape {keys.shape!r}")
    if keys.size:
        raise IndexError(f"keys out of range: {keys[:5].tolist()!r} (no keys issued yet)")
    return keys.astype(np.int64)


def _check_finite_leaves(spec: ItemSpec, leaves: list[np.ndarray]) -> None:
    """Items stored whole follow the adder's policy: NaN / inf in a float leaf is refused."""
    for leaf_spec, leaf in zip(spec.leaves, leaves):
        if leaf.dtype.kind in "fc" and not np.all(np.isfinite(leaf)):
            raise ValueError(f"leaf {leaf_spec.name!r} has NaN or inf values: expected finite values")
