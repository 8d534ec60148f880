"""SequenceReplay: a fixed-capacity FIFO of nested numpy items with prioritized sampling."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, NamedTuple

import numpy as np

from r2d2_state.replay import persistence
from r2d2_state.replay.layout import RowLayout
from r2d2_state.replay.spec import ItemSpec
from r2d2_state.replay.sum_tree import SumTree


_POOL_SIZE = 2  # a learner holds at most its current batch while sampling the next one
_HAS_REFCOUNT = hasattr(sys, "getrefcount")


class Sample(NamedTuple):
    """One sampled batch.

    keys: int64 [batch], insert ids to pass back to ``update_priorities``.
    data: the item structure, each leaf [batch, ...] with the stored dtype. The leaves are
      views into one buffer gathered for this sample (so not C-contiguous: row stride =
      the packed item size); that buffer is never shared with the storage or with a
      sample the caller still holds, unless the caller opted into ``reuse_buffers``.
    weights: float32 [batch], importance weights ``(size * P(i)) ** -beta / max``.
    probabilities: float64 [batch], the probability P(i) each item was drawn with.
    """

    keys: np.ndarray
    data: Any
    weights: np.ndarray
    probabilities: np.ndarray


class SequenceReplay:
    """Prioritized replay of fixed-spec items (R2D2 sequences, or any nested numpy item).

    Storage is one array per leaf with a leading capacity axis, allocated on the first
    insert, whose structure, shapes and dtypes become the spec every later item must
    match. Items are evicted first-in first-out. Each insert gets a key, a monotonically
    increasing insert id (slot = key % capacity), so a key whose slot has been rewritten
    since it was sampled is recognised as stale and its priority update skipped.

    Sampling draws ``batch_size`` items with replacement with probability
    ``P(i) = p_i ** alpha / sum_k p_k ** alpha`` (alpha = ``priority_exponent``; alpha = 0
    is uniform) and returns importance weights ``w_i = (size * P(i)) ** -beta`` divided
    by their max over the batch (beta = ``importance_exponent``).

    One lock guards every mutation and every sample, so actor threads may ``add`` while
    a learner thread samples and updates priorities. All validation happens before any
    mutation: a call that raises leaves the buffer exactly as it was.

    Usage::

        replay = SequenceReplay(capacity=100_000, seed=0)
        replay.add(item)                         # priority = max seen so far
        keys, data, weights, probs = replay.sample(64)
        replay.update_priorities(keys, new_priorities)
    """

    def __init__(
        self,
        capacity: int,
        priority_exponent: float = 0.9,
        importance_exponent: float = 0.6,
        seed: int | None = None,
    ) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity < 1:
            raise ValueError(f"capacity must be a positive int, got {capacity!r}")
        for name, value in (("priority_exponent", priority_exponent), ("importance_exponent", importance_exponent)):
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        self.capacity = int(capacity)
        self.priority_exponent = float(priority_exponent)
        self.importance_exponent = float(importance_exponent)
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._spec: ItemSpec | None = None
        self._layout: RowLayout | None = None
        self._rows = np.zeros((0, 0), np.uint8)  # [capacity, row_bytes] after the first insert
        self._leaf_views: list[np.ndarray] = []  # typed views of each leaf over the rows
        self._priorities = np.zeros(self.capacity, np.float64)  # raw, before the exponent
        self._tree = SumTree(self.capacity)
        self._next_key = 0
        self._max_priority = 1.0
        self._counters = {"sampled_batches": 0, "sampled_items": 0, "priority_updates": 0, "stale_updates_skipped": 0}
        self._out: np.ndarray | None = None  # reused output rows, only when opted in
        self._pool: list[np.ndarray] = []  # recent output rows, recycled once unreferenced

    # ------------------------------------------------------------------ inserting

    def add(self, item: Any, priority: float | None = None) -> int:
        """Inserts one item (leaves without a batch axis); returns its key.

        ``priority`` is the raw priority (before the exponent), e.g. one computed by the
        actor; ``None`` gives the max priority seen so far (1.0 on an empty buffer).
        """
        priorities = None if priority is None else np.asarray([priority])
        with self._lock:
            spec = self._spec if self._spec is not None else ItemSpec.from_item(item)
            leaves = spec.flatten(item)
            keys = self._insert(spec, leaves, 1, priorities, single=True)
        return int(keys[0])

    def add_batch(self, items: Any, priorities: np.ndarray | None = None) -> np.ndarray:
        """Inserts K stacked items (every leaf [K, ...]); returns their keys, int64 [K].

        If K exceeds the capacity, only the last ``capacity`` items are stored (the first
        ones would be evicted by the same call anyway); all K keys are still returned.
        """
        with self._lock:
            spec = self._spec if self._spec is not None else ItemSpec.from_item(items, leading_axes=1)
            leaves = spec.flatten(items, leading_shape=(None,))
            count = leaves[0].shape[0] if leaves else 0
            return self._insert(spec, leaves, count, priorities)

    def _insert(
        self, spec: ItemSpec, leaves: list[np.ndarray], count: int, priorities: Any, single: bool = False
    ) -> np.ndarray:
        """Writes ``count`` stacked items (leaves [count, ...], or one unstacked item if
        ``single``) after validating the priorities; the only place storage is written."""
        if priorities is None:
            raw = np.full(count, self._max_priority, np.float64)
        else:
            raw = self._check_priorities(priorities, count)
        keys = np.arange(self._next_key, self._next_key + count, dtype=np.int64)
        if count == 0:
            return keys
        # Validation is over; mutate from here on.
        if self._spec is None:
            self._spec = spec
            self._layout = RowLayout(spec)
            self._rows = self._layout.allocate(self.capacity)
            self._leaf_views = self._layout.leaf_views(self._rows)
        kept = slice(max(0, count - self.capacity), count)
        slots = keys[kept] % self.capacity
        first = int(slots[0])
        if single:
            for view, leaf in zip(self._leaf_views, leaves):
                view[first] = leaf
        else:
            if first + slots.shape[0] <= self.capacity:  # contiguous: a plain slice copy
                target: Any = slice(first, first + slots.shape[0])
            else:
                target = slots
            for view, leaf in zip(self._leaf_views, leaves):
                view[target] = leaf[kept]
        self._priorities[slots] = raw[kept]
        self._tree.set(slots, raw[kept] ** self.priority_exponent)
        if priorities is not None:
            self._max_priority = max(self._max_priority, float(raw.max()))
        self._next_key += count
        return keys

    # ------------------------------------------------------------------ sampling

    def sample(self, batch_size: int, reuse_buffers: bool = False) -> Sample:
        """Draws ``batch_size`` items with replacement, proportionally to priority ** alpha.

        By default the returned data never changes afterwards: later inserts and samples
        do not write into it (memory of samples nobody references any more is recycled).
        With ``reuse_buffers=True`` the data are views into one preallocated buffer that
        the *next* ``reuse_buffers=True`` call overwrites even if the caller still holds
        the previous batch.

        Raises ValueError on an empty buffer, a batch larger than ``len(self)``, or when
        every stored priority is zero.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        with self._lock:
            size = self._size()
            if size == 0:
                raise ValueError("cannot sample from an empty SequenceReplay")
            if batch_size > size:
                raise ValueError(f"batch_size {batch_size} is larger than the {size} items held")
            total = self._tree.total
            if not total > 0.0:
                raise ValueError("every stored priority is zero (alpha > 0): nothing to sample")
            slots = self._tree.sample(self._rng, int(batch_size))
            probabilities = self._tree.get(slots) / total
            weights = (size * probabilities) ** -self.importance_exponent
            weights = (weights / weights.max()).astype(np.float32)
            last = self._next_key - 1
            keys = last - (last - slots) % self.capacity
            data = self._gather(slots, reuse_buffers)
            spec = self._spec
            assert spec is not None  # internal invariant: size > 0 implies a spec
            self._counters["sampled_batches"] += 1
            self._counters["sampled_items"] += int(batch_size)
        return Sample(keys, spec.unflatten(data), weights, probabilities)

    def _gather(self, slots: np.ndarray, reuse: bool) -> list[np.ndarray]:
        assert self._layout is not None
        if reuse:
            if self._out is None or self._out.shape[0] != slots.shape[0]:
                self._out = np.empty((slots.shape[0], self._layout.row_bytes), np.uint8)
            # mode='clip' skips numpy's bounds-check buffering; slots are in range anyway.
            rows = np.take(self._rows, slots, axis=0, out=self._out, mode="clip")
        else:
            rows = np.take(self._rows, slots, axis=0, out=self._free_rows(slots.shape[0]), mode="clip")
        return self._layout.read(rows)

    def _free_rows(self, batch: int) -> np.ndarray:
        """Output rows [batch, row_bytes] that no caller can see.

        Allocating a fresh 36 MB batch of Atari sequences costs as much as copying it
        (page faults), so the last ``_POOL_SIZE`` outputs are kept and one is recycled
        when nothing outside this buffer references it any more: every leaf handed out is
        a numpy view holding a reference to its rows, so a refcount of 2 (the pool list and
        getrefcount's argument) proves no sample still uses it. Samples a caller keeps are
        therefore never overwritten. Without refcounts (not CPython), always allocate.
        """
        assert self._layout is not None
        if _HAS_REFCOUNT:
            for index in range(len(self._pool)):
                if self._pool[index].shape[0] == batch and sys.getrefcount(self._pool[index]) == 2:
                    rows = self._pool.pop(index)
                    self._pool.append(rows)
                    return rows
        rows = np.empty((batch, self._layout.row_bytes), np.uint8)
        if _HAS_REFCOUNT:
            self._pool.append(rows)
            del self._pool[:-_POOL_SIZE]
        return rows

    # ------------------------------------------------------------------ priorities

    def update_priorities(self, keys: np.ndarray, priorities: np.ndarray) -> int:
        """Sets the raw priorities of ``keys`` (int [K]) to ``priorities`` (float [K]).

        Keys whose slot has been overwritten since they were sampled (key < next key -
        capacity) are skipped. Returns the number of priorities applied. Raises IndexError
        for keys never issued (negative or >= next key), TypeError for priorities that are
        not real numbers (bool, complex, bytes, str), ValueError for NaN, inf, negative or
        too large priorities (:meth:`max_allowed_priority`) or mismatched shapes; nothing
        is applied then.
        """
        keys = np.asarray(keys)
        if keys.ndim != 1 or not (np.issubdtype(keys.dtype, np.integer) or keys.size == 0):
            raise TypeError(f"keys must be a 1-D integer array, got dtype {keys.dtype} shape {keys.shape!r}")
        keys = keys.astype(np.int64, copy=False)
        raw = self._check_priorities(priorities, keys.shape[0])
        with self._lock:
            if keys.size and (keys.min() < 0 or keys.max() >= self._next_key):
                bad = keys[(keys < 0) | (keys >= self._next_key)]
                raise IndexError(
                    f"keys out of range: {bad[:5].tolist()!r} (issued keys are 0..{self._next_key - 1})"
                )
            fresh = keys >= self._next_key - self.capacity
            slots = keys[fresh] % self.capacity
            applied = raw[fresh]
            if slots.size:
                self._priorities[slots] = applied
                self._tree.set(slots, applied ** self.priority_exponent)
                self._max_priority = max(self._max_priority, float(applied.max()))
            self._counters["priority_updates"] += int(slots.size)
            self._counters["stale_updates_skipped"] += int(keys.size - slots.size)
            return int(slots.size)

    def max_allowed_priority(self) -> float:
        """The largest raw priority accepted by ``add``, ``add_batch`` and ``update_priorities``.

        Sampling needs ``sum_i p_i ** alpha`` to be finite: each ``p ** alpha`` may be at most
        ``float64 max / capacity``, so the sum over a full buffer cannot overflow (with
        alpha = 1 and capacity 1e5, about 1.8e303; with alpha = 0 every finite priority).
        Larger priorities are refused, not clipped: they come from a diverging learner.
        """
        largest = float(np.finfo(np.float64).max)
        if self.priority_exponent == 0.0:
            return largest
        log_limit = (np.log(largest) - np.log(self.capacity)) / self.priority_exponent  # no overflow
        return largest if log_limit >= np.log(largest) else float(np.exp(log_limit))

    def _check_priorities(self, priorities: Any, count: int, what: str = "priorities") -> np.ndarray:
        """float64 [count] raw priorities, or a TypeError/ValueError naming the bad values."""
        array = np.asarray(priorities)
        if array.dtype == object or array.dtype.kind not in "iuf":
            raise TypeError(f"{what} must be real numbers (int or float), got dtype {array.dtype} "
                            f"({_preview(array)})")
        raw = array.astype(np.float64)
        if raw.shape != (count,):
            raise ValueError(f"expected {count} {what} (shape ({count},)), got shape {raw.shape!r}")
        if not np.all(np.isfinite(raw)):
            raise ValueError(f"{what} must be finite, got {raw[~np.isfinite(raw)][:5].tolist()!r}")
        if np.any(raw < 0):
            raise ValueError(f"{what} must be >= 0, got {raw[raw < 0][:5].tolist()!r}")
        limit = self.max_allowed_priority()
        if np.any(raw > limit):
            raise ValueError(
                f"{what} too large to sample: {raw[raw > limit][:5].tolist()!r}; with priority_exponent "
                f"{self.priority_exponent:g} and capacity {self.capacity} at most {limit:.6g} is accepted "
                "(priority ** exponent summed over the buffer must stay finite)")
        return raw

    # ------------------------------------------------------------------ inspection

    def __len__(self) -> int:
        return self._size()

    def _size(self) -> int:
        return min(self._next_key, self.capacity)

    @property
    def spec(self) -> ItemSpec | None:
        """The stored spec (None before the first insert)."""
        return self._spec

    def priorities(self) -> np.ndarray:
        """float64 [len]: a copy of the raw priorities of slots 0..len-1."""
        with self._lock:
            return self._priorities[: self._size()].copy()

    def stats(self) -> dict[str, Any]:
        """Counts and priority summaries (plain Python numbers, JSON-serialisable)."""
        with self._lock:
            size = self._size()
            stored = self._priorities[:size]
            item_bytes = self._spec.nbytes() if self._spec is not None else 0
            return {
                "size": size,
                "capacity": self.capacity,
                "inserted": self._next_key,
                "evicted": max(0, self._next_key - self.capacity),
                **self._counters,
                "max_priority_seen": self._max_priority,
                "priority_min": float(stored.min()) if size else 0.0,
                "priority_mean": float(stored.mean()) if size else 0.0,
                "priority_max": float(stored.max()) if size else 0.0,
                "item_bytes": item_bytes,
                "row_bytes": 0 if self._layout is None else self._layout.row_bytes,
                "storage_bytes": int(self._rows.nbytes),
            }

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike) -> None:
        """Writes contents, priorities, insert position, counters and RNG state to ``path``.

        Atomic: the file is written beside ``path`` and renamed over it, so a crash
        mid-save leaves the previous file intact. The lock is held while writing.
        """
        with self._lock:
            size = self._size()
            meta = {
                "capacity": self.capacity,
                "priority_exponent": self.priority_exponent,
                "importance_exponent": self.importance_exponent,
                "next_key": self._next_key,
                "max_priority": self._max_priority,
                "counters": dict(self._counters),
                "rng": self._rng.bit_generator.state,
                "spec": None if self._spec is None else self._spec.to_json(),
            }
            arrays = {"priorities": self._priorities[:size], "rows": self._rows[:size]}
            persistence.write(path, meta, arrays)

    def load(self, path: str | os.PathLike) -> None:
        """Restores a ``save``d buffer into this one, exactly.

        The file must have this buffer's capacity and, if this buffer already holds a
        spec, the same spec. Exponents stay this buffer's own (the stored raw priorities
        are re-exponentiated, which is exact for equal alpha).

        Every field is read, converted and validated before this buffer changes: any
        failure (an unreadable, truncated or bit-flipped file, corrupt metadata, a bad
        priority, ``max_priority`` or counter) is one ``ValueError`` naming the file and
        the field, and leaves the buffer exactly as it was.
        """
        name = os.fspath(path)
        meta, arrays = persistence.read(path)
        loaded = _parse_save(name, meta, arrays, self)
        with self._lock:
            if self._spec is not None and (loaded.spec is None or not loaded.spec.same_as(self._spec)):
                raise ValueError(
                    f"cannot load {name!r}: its item spec "
                    f"({'empty' if loaded.spec is None else loaded.spec.describe()}) differs from this buffer's "
                    f"({self._spec.describe()})"
                )
            # Validation is over; mutate from here on (nothing below can fail on file content).
            size = loaded.size
            if loaded.layout is not None and self._layout is None:
                self._layout = loaded.layout
                self._rows = loaded.layout.allocate(self.capacity)
                self._leaf_views = loaded.layout.leaf_views(self._rows)
            self._spec = loaded.spec
            if size:
                self._rows[:size] = loaded.rows
            self._priorities[:] = 0.0
            self._priorities[:size] = loaded.priorities
            self._tree.set_all(self._priorities ** self.priority_exponent * (np.arange(self.capacity) < size))
            self._next_key = loaded.next_key
            self._max_priority = loaded.max_priority
            self._counters = loaded.counters
            self._rng = loaded.rng

    @classmethod
    def restore(cls, path: str | os.PathLike) -> SequenceReplay:
        """A new buffer with the capacity and exponents stored in ``path``, loaded from it."""
        meta, _ = persistence.read(path)
        name = os.fspath(path)
        values = {}
        for key in ("capacity", "priority_exponent", "importance_exponent"):
            values[key] = _field(name, key, lambda key=key: meta[key])
        try:
            replay = cls(**values)
        except ValueError as error:
            raise ValueError(f"{name!r}: corrupt meta: {error}") from None
        replay.load(path)
        return replay


class _LoadedSave(NamedTuple):
    spec: ItemSpec | None
    layout: RowLayout | None
    size: int
    rows: np.ndarray
    priorities: np.ndarray
    next_key: int
    max_priority: float
    counters: dict[str, int]
    rng: np.random.Generator


_COUNTER_KEYS = ("sampled_batches", "sampled_items", "priority_updates", "stale_updates_skipped")


def _field(path: str, field: str, convert: Any) -> Any:
    """``convert()``, with any failure turned into a ValueError naming the file and field."""
    try:
        return convert()
    except ValueError as error:
        if str(error).startswith(f"{path!r}"):
            raise
        raise ValueError(f"{path!r}: field {field!r} is corrupt: {error}") from None
    except Exception as error:  # noqa: BLE001 - corrupt content can fail in any way
        raise ValueError(f"{path!r}: field {field!r} is corrupt ({type(error).__name__}: {error})") from None


def _int(value: Any, field: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"expected an int >= {low}, got {value!r}")
    return value


def _parse_save(path: str, meta: dict, arrays: dict, replay: SequenceReplay) -> _LoadedSave:
    """Convert and check every field of a save file against ``replay``; mutates nothing."""
    capacity = _field(path, "capacity", lambda: _int(meta["capacity"], "capacity", 1))
    if capacity != replay.capacity:
        raise ValueError(f"{path!r} holds a buffer of capacity {capacity}, this one has {replay.capacity}")
    spec = _field(path, "spec", lambda: None if meta["spec"] is None else ItemSpec.from_json(meta["spec"]))
    layout = None if spec is None else _field(path, "spec", lambda: RowLayout(spec))
    next_key = _field(path, "next_key", lambda: _int(meta["next_key"], "next_key"))
    size = min(next_key, capacity)
    if size and spec is None:
        raise ValueError(f"{path!r}: field 'spec' is empty but next_key is {next_key} (items without a spec)")

    def priorities() -> np.ndarray:
        raw = arrays.get("priorities")
        if raw is None:
            raise ValueError("missing")
        if raw.shape != (size,) or raw.dtype != np.float64:
            raise ValueError(f"expected float64 ({size},), got {raw.dtype} {raw.shape!r}")
        return replay._check_priorities(raw, size, what="priorities")

    raw = _field(path, "priorities", priorities)
    row_bytes = 0 if layout is None else layout.row_bytes
    rows = arrays.get("rows")
    if rows is None or rows.dtype != np.uint8 or rows.shape != (size, row_bytes):
        raise ValueError(
            f"{path!r}: field 'rows' is missing or has the wrong shape "
            f"({None if rows is None else (rows.dtype.name, rows.shape)!r}, expected uint8 {(size, row_bytes)!r})"
        )

    def max_priority() -> float:
        value = meta["max_priority"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number, got {value!r}")
        value = float(value)
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"expected a finite number > 0, got {value!r}")
        replay._check_priorities(np.array([value]), 1, what="max_priority")
        if raw.size and value < raw.max():
            raise ValueError(f"{value!r} is below the largest stored priority {raw.max()!r}")
        return value

    max_priority = _field(path, "max_priority", max_priority)

    def counters() -> dict[str, int]:
        given = meta["counters"]
        if not isinstance(given, dict) or sorted(given) != sorted(_COUNTER_KEYS):
            raise ValueError(f"expected an object with keys {list(_COUNTER_KEYS)}, got {given!r}")
        return {key: _int(given[key], key) for key in _COUNTER_KEYS}

    counters = _field(path, "counters", counters)
    rng = _field(path, "rng", lambda: _rng_from_state(meta["rng"]))
    return _LoadedSave(spec, layout, size, rows, raw, next_key, max_priority, counters, rng)


def _preview(array: np.ndarray) -> str:
    text = repr(array.reshape(-1)[:5].tolist()) if array.ndim else repr(array.item())
    return text if len(text) < 120 else text[:117] + "..."


def _rng_from_state(state: dict) -> np.random.Generator:
    if not isinstance(state, dict):
        raise ValueError(f"expected a bit generator state object, got {type(state).__name__}")
    name = state.get("bit_generator")
    bit_generator_type = getattr(np.random, str(name), None)
    if not (isinstance(bit_generator_type, type) and issubclass(bit_generator_type, np.random.BitGenerator)):
        raise ValueError(f"unknown RNG bit generator in save file: {name!r}")
    bit_generator = bit_generator_type()
    bit_generator.state = state
    return np.random.Generator(bit_generator)
