"""PrioritizedSampler: keys, priorities and proportional sampling over a table of entries.

The sampler knows nothing of what an entry holds (an item row, or a sequence that refers
to stored steps): it hands out keys and slots, keeps raw priorities, and draws slots.

- Keys are insert ids, ``0, 1, 2, ...``; entry ``key`` lives in slot ``key % capacity``
  until a later insert takes that slot (first-in first-out), or until :meth:`remove`
  retires it earlier (a sequence whose steps were overwritten). A key whose slot holds a
  later key, or was retired, is *stale*: its priority updates are skipped.
- ``P(i) = p_i ** alpha / sum_k p_k ** alpha`` over the live entries (alpha =
  ``priority_exponent``; 0 is uniform), importance weights ``(size * P(i)) ** -beta``
  divided by their max over the batch (beta = ``importance_exponent``), size = live entries.

All validation happens before any mutation: a call that raises changes nothing.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from r2d2_state.replay.sum_tree import SumTree

__all__ = ["PrioritizedSampler", "UniformSampler", "make_sampler", "Draw", "COUNTER_KEYS"]

COUNTER_KEYS = ("sampled_batches", "sampled_items", "priority_updates", "stale_updates_skipped")


class Draw(NamedTuple):
    """One draw of ``batch`` entries: keys int64, slots int64, weights float32, probabilities float64."""

    keys: np.ndarray
    slots: np.ndarray
    weights: np.ndarray
    probabilities: np.ndarray


class PrioritizedSampler:
    """Proportional prioritized sampling over ``capacity`` slots (module docstring)."""

    def __init__(self, capacity: int, priority_exponent: float = 0.9, importance_exponent: float = 0.6,
                 seed: int | None = None) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity < 1:
            raise ValueError(f"capacity must be a positive int, got {capacity!r}")
        for name, value in (("priority_exponent", priority_exponent), ("importance_exponent", importance_exponent)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not (
                    np.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        self.capacity = int(capacity)
        self.priority_exponent = float(priority_exponent)
        self.importance_exponent = float(importance_exponent)
        self.rng = np.random.default_rng(seed)
        self.priorities = np.zeros(self.capacity, np.float64)  # raw, before the exponent
        self.alive = np.zeros(self.capacity, bool)
        self.tree = SumTree(self.capacity)
        self.next_key = 0
        self.size = 0
        self.max_priority = 1.0
        self.counters = dict.fromkeys(COUNTER_KEYS, 0)
        self._max_allowed: float | None = None  # max_allowed_priority(), once

    # ------------------------------------------------------------------ keys

    def is_fresh(self, keys: np.ndarray) -> np.ndarray:
        """bool [K]: the key's entry is still in its slot (not evicted, not retired)."""
        keys = np.asarray(keys, np.int64)
        return (keys >= self.next_key - self.capacity) & (keys < self.next_key) & self.alive[keys % self.capacity]

    def check_keys(self, keys: Any) -> np.ndarray:
        """int64 [K] keys, or TypeError / IndexError for keys that were never issued."""
        keys = np.asarray(keys)
        if keys.ndim != 1 or not (keys.dtype.kind in "iu" or keys.size == 0):
            raise TypeError(f"keys must be a 1-D integer array, got dtype {keys.dtype} shape {keys.shape!r}")
        keys = keys.astype(np.int64, copy=False)
        if keys.size and keys.view(np.uint64).max() >= self.next_key:  # negatives wrap above it
            bad = keys[(keys < 0) | (keys >= self.next_key)]
            raise IndexError(f"keys out of range: {bad[:5].tolist()!r} (issued keys are 0..{self.next_key - 1})")
        return keys

    # ------------------------------------------------------------------ mutation

    def insert(self, count: int, raw: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Issue ``count`` keys with raw priorities ``raw`` (float64 [count], checked; None:
        the max priority seen so far). Returns (keys, slots of the kept keys, evicted slots
        that held a live entry before). With ``count > capacity`` only the last ``capacity``
        keys are stored."""
        if raw is None:
            raw = np.full(count, self.max_priority, np.float64)
        keys = np.arange(self.next_key, self.next_key + count, dtype=np.int64)
        kept = slice(max(0, count - self.capacity), count)
        slots = keys[kept] % self.capacity
        replaced = slots[self.alive[slots]]
        self.size += int(slots.size - replaced.size)
        self.alive[slots] = True
        self.priorities[slots] = raw[kept]
        self.tree.set(slots, raw[kept] ** self.priority_exponent)
        self.next_key += count
        return keys, slots, replaced

    def note_given_priorities(self, raw: np.ndarray) -> None:
        """Priorities given by the caller (not the default max) raise the max priority."""
        if raw.size:
            self.max_priority = max(self.max_priority, float(raw.max()))

    def remove(self, slots: np.ndarray) -> None:
        """Retire the live entries of ``slots`` (e.g. their steps were overwritten)."""
        slots = np.asarray(slots, np.int64)
        slots = slots[self.alive[slots]]
        if slots.size == 0:
            return
        self.alive[slots] = False
        self.priorities[slots] = 0.0
        self.tree.set(slots, np.zeros(slots.size))
        self.size -= int(slots.size)

    def update(self, keys: np.ndarray, raw: np.ndarray) -> int:
        """Set fresh keys' raw priorities (keys checked by :meth:`check_keys`, priorities by
        :meth:`check_priorities`); stale keys are skipped. Returns how many were applied."""
        slots = keys % self.capacity
        # Checked keys are < next_key: fresh if not evicted by a later key, nor retired.
        fresh = (keys >= self.next_key - self.capacity) & self.alive[slots]
        if not fresh.all():  # the usual batch is all fresh: no masking then
            slots, raw = slots[fresh], raw[fresh]
        applied = raw
        if slots.size:
            self.priorities[slots] = applied
            self.tree.set(slots, applied ** self.priority_exponent)
            self.max_priority = max(self.max_priority, float(applied.max()))
        self.counters["priority_updates"] += int(slots.size)
        self.counters["stale_updates_skipped"] += int(keys.size - slots.size)
        return int(slots.size)

    # ------------------------------------------------------------------ sampling

    def _check_batch(self, batch_size: Any) -> None:
        """ValueError unless ``batch_size`` entries can be drawn (with replacement)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if self.size == 0:
            raise ValueError("cannot sample from an empty SequenceReplay")
        if batch_size > self.size:
            raise ValueError(f"batch_size {batch_size} is larger than the {self.size} items held")

    def sample(self, batch_size: int) -> Draw:
        """Draw ``batch_size`` live entries with replacement (ValueError if impossible)."""
        self._check_batch(batch_size)
        total = self.tree.total
        if not total > 0.0:
            raise ValueError("every stored priority is zero (alpha > 0): nothing to sample")
        slots, values = self.tree.sample(self.rng, int(batch_size))
        probabilities = values / total
        weights = (self.size * probabilities) ** -self.importance_exponent
        weights = (weights / weights.max()).astype(np.float32)
        last = self.next_key - 1
        keys = last - (last - slots) % self.capacity
        self.counters["sampled_batches"] += 1
        self.counters["sampled_items"] += int(batch_size)
        return Draw(keys, slots, weights, probabilities)

    # ------------------------------------------------------------------ priorities

    def _limit(self) -> float:
        if self._max_allowed is None:
            self._max_allowed = self.max_allowed_priority()
        return self._max_allowed

    def max_allowed_priority(self) -> float:
        """The largest raw priority accepted: ``p ** alpha`` may be at most ``float64 max /
        capacity``, so the sum over a full table cannot overflow (with alpha = 1 and capacity
        1e5 about 1.8e303; with alpha = 0 every finite priority)."""
        largest = float(np.finfo(np.float64).max)
        if self.priority_exponent == 0.0:
            return largest
        log_limit = (np.log(largest) - np.log(self.capacity)) / self.priority_exponent  # no overflow
        return largest if log_limit >= np.log(largest) else float(np.exp(log_limit))

    def check_priorities(self, priorities: Any, count: int, what: str = "priorities") -> np.ndarray:
        """float64 [count] raw priorities, or a TypeError/ValueError naming the bad values."""
        array = np.asarray(priorities)
        if array.dtype.kind == "f" and array.shape == (count,):  # the learner's priorities: one pass
            raw = array.astype(np.float64, copy=False)
            if count == 0 or (raw.min() >= 0.0 and raw.max() <= self._limit()):  # NaN fails both
                return raw
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
        limit = self._limit()
        if np.any(raw > limit):
            raise ValueError(
                f"{what} too large to sample: {raw[raw > limit][:5].tolist()!r}; with priority_exponent "
                f"{self.priority_exponent:g} and capacity {self.capacity} at most {limit:.6g} is accepted "
                "(priority ** exponent summed over the buffer must stay finite)")
        return raw

    def live_priorities(self) -> np.ndarray:
        """float64 [size]: the raw priorities of the live entries, in slot order."""
        return self.priorities[self.alive].copy()

    def priority_summary(self) -> dict[str, float]:
        """min / mean / max of the live raw priorities (mean computed without overflow)."""
        live = self.priorities[self.alive]
        if live.size == 0:
            return {"priority_min": 0.0, "priority_mean": 0.0, "priority_max": 0.0}
        top = float(live.max())
        mean = float(np.mean(live / top)) * top if top > 0 else 0.0  # scaled: no overflow near float64 max
        return {"priority_min": float(live.min()), "priority_mean": mean, "priority_max": top}

    # ------------------------------------------------------------------ persistence

    def state(self) -> dict[str, Any]:
        """JSON-ready scalars (the arrays ``priorities`` and ``alive`` are saved beside)."""
        return {"next_key": self.next_key, "max_priority": self.max_priority, "counters": dict(self.counters),
                "rng": self.rng.bit_generator.state}

    def restore(self, next_key: int, max_priority: float, counters: dict[str, int], rng: np.random.Generator,
                priorities: np.ndarray, alive: np.ndarray) -> None:
        """Take back checked values (see ``persistence``); the tree is rebuilt from them."""
        self.next_key = next_key
        self.max_priority = max_priority
        self.counters = dict(counters)
        self.rng = rng
        self.priorities[:] = np.where(alive, priorities, 0.0)
        self.alive[:] = alive
        self.size = int(alive.sum())
        self.tree.set_all(self.priorities ** self.priority_exponent * alive)


class UniformSampler(PrioritizedSampler):
    """``priority_exponent`` 0: every live entry equally likely, importance weights 1.

    Keys, priorities (kept for ``update_priorities`` and statistics) and eviction are the
    prioritized sampler's; drawing is one ``rng.integers`` over the live slots, no sum tree.
    """

    def __init__(self, capacity: int, priority_exponent: float = 0.0, importance_exponent: float = 0.6,
                 seed: int | None = None) -> None:
        if priority_exponent != 0:
            raise ValueError(f"UniformSampler samples with priority_exponent 0, got {priority_exponent!r}")
        super().__init__(capacity, 0.0, importance_exponent, seed)

    def sample(self, batch_size: int) -> Draw:
        self._check_batch(batch_size)
        draws = self.rng.integers(0, self.size, int(batch_size))
        if self.size == self.capacity or self.alive[: self.size].all():  # live slots 0 .. size - 1
            slots = draws.astype(np.int64)
        else:
            slots = np.flatnonzero(self.alive)[draws]
        last = self.next_key - 1
        keys = last - (last - slots) % self.capacity
        self.counters["sampled_batches"] += 1
        self.counters["sampled_items"] += int(batch_size)
        return Draw(keys, slots, np.ones(int(batch_size), np.float32), np.full(int(batch_size), 1.0 / self.size))


def make_sampler(capacity: int, priority_exponent: float, importance_exponent: float,
                 seed: int | None = None) -> PrioritizedSampler:
    """A uniform sampler for priority_exponent 0, else the prioritized one."""
    kind = UniformSampler if priority_exponent == 0 else PrioritizedSampler
    return kind(capacity, priority_exponent, importance_exponent, seed)


def _preview(array: np.ndarray) -> str:
    text = repr(array.reshape(-1)[:5].tolist()) if array.ndim else repr(array.item())
    return text if len(text) < 120 else text[:117] + "..."
