"""Atomic, validated single-file persistence for SequenceReplay: an uncompressed ``.npz``.

Layout of the file (a zip of ``.npy`` arrays, readable with ``numpy.load`` and no pickle):

- ``meta``: a 0-d unicode array holding JSON: ``format`` (``FORMAT_NAME``), ``version``
  (``FORMAT_VERSION``), ``mode`` (``items`` / ``sequences`` / null when empty), the
  capacities and exponents, the sampler's next key, max priority, counters and numpy bit
  generator state, the specs (structure, leaf paths, shapes, dtypes) and, for sequences,
  their layout and the step store's head.
- ``priorities`` float64 and ``slots`` int64: the raw priority of every entry held, and
  its slot.
- items: ``rows`` uint8 [held, row_bytes], the packed items of those slots.
- sequences: ``ids`` int64 [held, width] (their step ids), ``state_<i>`` (start-state
  leaves), and ``step_<i>`` [steps held, ...]: the step store's leaves from its oldest
  step to its head, each step once; a compressed leaf as ``step_<i>_lz4`` uint8 (its
  blocks, concatenated) and ``step_<i>_lz4_sizes`` int64 [steps held].

Writing goes to a temporary file in the destination directory, is flushed and fsynced,
then ``os.replace``d over the destination (atomic on POSIX and Windows), and the directory
is fsynced; a crash at any point leaves either the old file or the new one, never a mix.
Reading converts and checks every field before anything changes (:func:`load` returns a
:class:`Loaded`; :func:`apply` only assigns).
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

import numpy as np

from r2d2_state.files import atomic_write
from r2d2_state.replay.compression import CompressedRows, check_compression
from r2d2_state.replay.sampler import COUNTER_KEYS, PrioritizedSampler, make_sampler
from r2d2_state.replay.spec import ItemSpec
from r2d2_state.replay.steps import SequenceLayout

FORMAT_NAME = "r2d2_state.SequenceReplay"
FORMAT_VERSION = 2
_META_KEYS = ("mode", "capacity", "capacity_steps", "priority_exponent", "importance_exponent", "next_key",
              "max_priority", "counters", "rng")


def _write_arrays(file: Any, arrays: dict[str, np.ndarray]) -> None:
    """Writes the arrays into an open binary file (split out so tests can fail it midway)."""
    np.savez(file, **arrays)


def write(path: str | os.PathLike, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Atomically writes ``meta`` (JSON-serialisable) and ``arrays`` to ``path``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save the replay to {path!r}: the folder {directory!r} does not exist")
    header = dict(meta, format=FORMAT_NAME, version=FORMAT_VERSION)
    payload = {"meta": np.array(json.dumps(header)), **arrays}
    # Looked up at call time, so tests can make the writer fail midway.
    atomic_write(path, lambda file: _write_arrays(file, payload), binary=True)


def read(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Reads a file written by ``write``; checks format name, version and meta keys.

    Raises:
      ValueError: naming ``path`` (and the entry) for anything unreadable: a missing,
        truncated or bit-flipped file (zip or CRC errors), a pickled entry, corrupt meta.
    """
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not hasattr(archive, "files"):
                raise ValueError("a single .npy array, not an .npz archive")
            arrays = {name: archive[name] for name in archive.files}
    except Exception as error:  # noqa: BLE001 - zipfile.BadZipFile, zlib.error, EOFError, OSError, ...
        raise ValueError(f"{path!r} is not a readable replay save file "
                         f"({type(error).__name__}: {error})") from None
    if "meta" not in arrays:
        raise ValueError(f"{path!r} has no 'meta' entry: not a replay save file")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except (json.JSONDecodeError, ValueError) as error:
        raise ValueError(f"{path!r}: field 'meta' is corrupt: {error}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path!r}: field 'meta' is corrupt: expected a JSON object, got {type(meta).__name__}")
    if meta.get("format") != FORMAT_NAME:
        raise ValueError(f"{path!r}: expected format {FORMAT_NAME!r}, got {meta.get('format')!r}")
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{path!r}: unsupported format version {meta.get('version')!r} (this code reads {FORMAT_VERSION})"
        )
    missing = [key for key in _META_KEYS if key not in meta]
    if missing:
        raise ValueError(f"{path!r}: meta is missing {missing!r}")
    return meta, arrays


# ---------------------------------------------------------------------- saving


def save(replay: Any, path: str | os.PathLike) -> None:
    """Writes ``replay`` (its lock held by the caller) to ``path``."""
    sampler = replay._sampler
    meta: dict[str, Any] = {
        "mode": replay._mode, "capacity": replay.capacity, "capacity_steps": replay.capacity_steps,
        "priority_exponent": replay.priority_exponent, "importance_exponent": replay.importance_exponent,
        "compression": replay.compression, "next_key": 0, "max_priority": 1.0, "counters": dict.fromkeys(COUNTER_KEYS, 0),
        "rng": np.random.default_rng(replay._seed).bit_generator.state,
    }
    arrays: dict[str, np.ndarray] = {}
    if sampler is not None:
        meta.update(sampler.state())
        meta["table_capacity"] = sampler.capacity
        slots = np.flatnonzero(sampler.alive)
        arrays["slots"] = slots.astype(np.int64)
        arrays["priorities"] = sampler.priorities[slots]
    if replay._mode == "items":
        meta["spec"] = replay._items.spec.to_json()
        arrays["rows"] = replay._items.rows[arrays["slots"]]
    elif replay._mode == "sequences":
        index, steps = replay._index, replay._steps
        meta.update({"step_spec": replay._step_spec.to_json(), "state_spec": index.state_spec.to_json(),
                     "layout": replay._layout.to_dict(), "head": steps.head, "written": steps.written,
                     "retired": replay._retired,
                     "dropped": replay._dropped})
        arrays["ids"] = index.ids(arrays["slots"], steps.head)
        for i, leaf in enumerate(index.states):
            arrays[f"state_{i}"] = leaf[arrays["slots"]]
        rows = np.arange(steps.oldest, steps.head) % steps.capacity
        for i, leaf in enumerate(steps.arrays):
            if isinstance(leaf, CompressedRows):  # as stored: no decompressed copy of the whole store
                arrays[f"step_{i}_lz4"], arrays[f"step_{i}_lz4_sizes"] = leaf.export(rows)
            else:
                arrays[f"step_{i}"] = leaf[rows]
    write(path, meta, arrays)


# ---------------------------------------------------------------------- loading


class Loaded(NamedTuple):
    mode: str | None
    capacity: int | None
    capacity_steps: int | None
    table_capacity: int | None
    next_key: int
    max_priority: float
    counters: dict[str, int]
    rng: np.random.Generator
    slots: np.ndarray
    priorities: np.ndarray
    spec: ItemSpec | None  # items
    rows: np.ndarray | None
    step_spec: ItemSpec | None  # sequences
    state_spec: ItemSpec | None
    layout: SequenceLayout | None
    head: int
    written: int
    ids: np.ndarray | None
    states: list[np.ndarray]
    steps: list[np.ndarray]
    retired: int
    dropped: int


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


def _int(value: Any, low: int = 0, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"expected an int >= {low}, got {value!r}")
    return value


def _array(arrays: dict, name: str, dtype: Any, shape: tuple) -> np.ndarray:
    value = arrays.get(name)
    if value is None:
        raise ValueError("missing")
    if value.dtype != np.dtype(dtype) or value.shape != shape:
        raise ValueError(f"wrong shape or dtype: expected {np.dtype(dtype)} {shape!r}, got {value.dtype} "
                         f"{value.shape!r}")
    return value


def constructor_args(path: str | os.PathLike) -> dict[str, Any]:
    """``SequenceReplay(**this)`` re-creates the saved replay's capacities and exponents."""
    meta, _ = read(path)
    name = os.fspath(path)
    return {
        "capacity": _field(name, "capacity", lambda: _int(meta["capacity"], 1, allow_none=True)),
        "capacity_steps": _field(name, "capacity_steps", lambda: _int(meta["capacity_steps"], 1, allow_none=True)),
        "priority_exponent": meta["priority_exponent"], "importance_exponent": meta["importance_exponent"],
        "compression": _field(name, "compression", lambda: check_compression(meta.get("compression"))),
    }


def load(replay: Any, path: str | os.PathLike) -> Loaded:
    """Read and check everything in ``path`` against ``replay``; changes nothing."""
    name = os.fspath(path)
    meta, arrays = read(path)
    mode = _field(name, "mode", lambda: _mode(meta["mode"]))
    capacity = _field(name, "capacity", lambda: _int(meta["capacity"], 1, allow_none=True))
    if capacity != replay.capacity:
        raise ValueError(f"{name!r} holds a replay of capacity {capacity}, this one has {replay.capacity}")
    capacity_steps = _field(name, "capacity_steps", lambda: _int(meta["capacity_steps"], 1, allow_none=True))
    if replay.capacity_steps is not None and capacity_steps != replay.capacity_steps:
        raise ValueError(f"{name!r} holds a replay of capacity_steps {capacity_steps}, this one has "
                         f"{replay.capacity_steps}")
    if replay._mode is not None and mode != replay._mode:
        raise ValueError(f"cannot load {name!r}: it holds {mode or 'nothing'}, this replay holds {replay._mode}")
    table = _field(name, "table_capacity", lambda: _int(meta.get("table_capacity", capacity), 1, allow_none=True))
    if mode is not None and table is None:
        raise ValueError(f"{name!r}: field 'table_capacity' is missing")
    if replay._sampler is not None and table is not None and table != replay._sampler.capacity:
        raise ValueError(f"{name!r} holds a table of {table} entries, this replay has {replay._sampler.capacity}")
    probe = PrioritizedSampler(table or capacity or capacity_steps or 1, replay.priority_exponent,
                               replay.importance_exponent)
    next_key = _field(name, "next_key", lambda: _int(meta["next_key"]))
    if mode is None and next_key:
        raise ValueError(f"{name!r}: field 'mode' is empty but next_key is {next_key}")

    held = int(arrays["slots"].shape[0]) if "slots" in arrays and arrays["slots"].ndim == 1 else -1
    slots = np.zeros(0, np.int64)
    raw = np.zeros(0)
    if mode is not None:
        def check_slots() -> np.ndarray:
            value = _array(arrays, "slots", np.int64, (held,))
            if held > table or np.any(value < 0) or np.any(value >= table) or np.unique(value).size != held:
                raise ValueError(f"expected distinct slots in [0, {table})")
            keys = next_key - 1 - (next_key - 1 - value) % table
            if np.any(keys < 0):
                raise ValueError("a slot holds a key that was never issued")
            return value

        slots = _field(name, "slots", check_slots)
        raw = _field(name, "priorities", lambda: probe.check_priorities(
            _array(arrays, "priorities", np.float64, (held,)), held))

    def max_priority() -> float:
        value = meta["max_priority"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number, got {value!r}")
        value = float(value)
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"expected a finite number > 0, got {value!r}")
        probe.check_priorities(np.array([value]), 1, what="max_priority")
        if raw.size and value < raw.max():
            raise ValueError(f"{value!r} is below the largest stored priority {raw.max()!r}")
        return value

    top = _field(name, "max_priority", max_priority)

    def counters() -> dict[str, int]:
        given = meta["counters"]
        if not isinstance(given, dict) or sorted(given) != sorted(COUNTER_KEYS):
            raise ValueError(f"expected an object with keys {list(COUNTER_KEYS)}, got {given!r}")
        return {key: _int(given[key]) for key in COUNTER_KEYS}

    counts = _field(name, "counters", counters)
    rng = _field(name, "rng", lambda: _rng_from_state(meta["rng"]))
    spec = rows = step_spec = state_spec = layout = ids = None
    states: list[np.ndarray] = []
    steps: list[np.ndarray] = []
    head = written = retired = dropped = 0
    if mode == "items":
        spec = _field(name, "spec", lambda: ItemSpec.from_json(meta["spec"]))
        if replay._items is not None and not spec.same_as(replay._items.spec):
            raise ValueError(f"cannot load {name!r}: its item spec ({spec.describe()}) differs from this "
                             f"replay's ({replay._items.spec.describe()})")
        from r2d2_state.replay.layout import RowLayout

        row_bytes = RowLayout(spec).row_bytes
        rows = _field(name, "rows", lambda: _array(arrays, "rows", np.uint8, (held, row_bytes)))
    elif mode == "sequences":
        step_spec = _field(name, "step_spec", lambda: ItemSpec.from_json(meta["step_spec"]))
        state_spec = _field(name, "state_spec", lambda: ItemSpec.from_json(meta["state_spec"]))
        layout = _field(name, "layout", lambda: SequenceLayout.from_dict(meta["layout"]))
        if replay._step_spec is not None and not (step_spec.same_as(replay._step_spec)
                                                  and state_spec.same_as(replay._index.state_spec)
                                                  and layout == replay._layout):
            raise ValueError(f"cannot load {name!r}: its steps ({step_spec.describe()}), states or sequence "
                             f"layout differ from this replay's ({replay._step_spec.describe()})")
        head = _field(name, "head", lambda: _int(meta["head"]))
        written = _field(name, "written", lambda: _int(meta["written"]))
        retired = _field(name, "retired", lambda: _int(meta["retired"]))
        dropped = _field(name, "dropped", lambda: _int(meta["dropped"]))
        oldest = max(0, head - capacity_steps)

        def check_ids() -> np.ndarray:
            value = _array(arrays, "ids", np.int64, (held, layout.width))
            used = value[value >= 0]
            if np.any(value < -1) or (used.size and (used.min() < oldest or used.max() >= head)):
                raise ValueError(f"expected step ids in [{oldest}, {head}) or -1")
            if held and np.any((value >= 0).sum(axis=1) == 0):
                raise ValueError("a sequence refers to no step")
            return value

        ids = _field(name, "ids", check_ids)
        states = [_field(name, f"state_{i}", lambda i=i, leaf=leaf: _array(
            arrays, f"state_{i}", leaf.dtype, (held,) + leaf.shape)) for i, leaf in enumerate(state_spec.leaves)]
        steps = [_field(name, f"step_{i}", lambda i=i, leaf=leaf: _step_leaf(arrays, i, leaf, head - oldest))
                 for i, leaf in enumerate(step_spec.leaves)]
    return Loaded(mode, capacity, capacity_steps, table, next_key, top, counts, rng, slots, raw, spec, rows, step_spec,
                  state_spec, layout, head, written, ids, states, steps, retired, dropped)


def apply(replay: Any, loaded: Loaded) -> None:
    """Make ``replay`` hold what ``loaded`` (from :func:`load`) holds. Nothing here can fail
    on file content; the caller holds the replay's lock."""
    from r2d2_state.replay.items import ItemStore
    from r2d2_state.replay.sequences import SequenceIndex

    if loaded.mode is None:
        return
    if replay._sampler is None or replay._sampler.capacity != loaded.table_capacity:
        replay._sampler = make_sampler(loaded.table_capacity, replay.priority_exponent, replay.importance_exponent)
    sampler = replay._sampler
    priorities = np.zeros(sampler.capacity)
    alive = np.zeros(sampler.capacity, bool)
    priorities[loaded.slots] = loaded.priorities
    alive[loaded.slots] = True
    sampler.restore(loaded.next_key, loaded.max_priority, loaded.counters, loaded.rng, priorities, alive)
    replay._mode = loaded.mode
    if loaded.mode == "items":
        if replay._items is None:
            replay._items = ItemStore(sampler.capacity)
            replay._items.allocate(loaded.spec)
        replay._items.rows[loaded.slots] = loaded.rows
        return
    if replay._steps is None:
        replay.capacity_steps = loaded.capacity_steps
        replay._install_sequences(loaded.layout, loaded.step_spec, loaded.state_spec, sampler)
    store, index = replay._steps, replay._index
    store.head, store.written = loaded.head, loaded.written
    store.forget_lanes()
    oldest = store.oldest
    rows = np.arange(oldest, loaded.head) % store.capacity
    for array, leaf in zip(store.arrays, loaded.steps):
        if isinstance(leaf, CompressedSteps) and isinstance(array, CompressedRows):
            array.put_blocks(rows, leaf.blocks)
        elif isinstance(leaf, CompressedSteps):  # into a replay that stores this leaf raw
            array[rows] = leaf.rows[np.arange(rows.size)]
        else:
            array[rows] = leaf
    index.rows[:] = index.pad
    if loaded.slots.size:
        index.rows[loaded.slots] = np.where(loaded.ids >= 0, loaded.ids % index.pad, index.pad)
        index.oldest[loaded.slots] = SequenceIndex.oldest_of(loaded.ids)
    for array, leaf in zip(index.states, loaded.states):
        array[loaded.slots] = leaf
    last = loaded.next_key - 1
    keys = last - (last - loaded.slots) % sampler.capacity
    index.rebuild_heap(keys, loaded.slots)
    replay._writers.clear()
    replay._retired, replay._dropped = loaded.retired, loaded.dropped


class CompressedSteps(NamedTuple):
    """A compressed step leaf read from a file: its checked blocks, and them installed in
    rows of their own (to decompress into a replay that stores the leaf raw)."""

    blocks: list[bytes]
    rows: CompressedRows


def _step_leaf(arrays: dict, i: int, leaf: Any, count: int) -> np.ndarray | CompressedSteps:
    """Step leaf ``i`` of ``count`` steps: an array, or checked compressed blocks."""
    if f"step_{i}_lz4" not in arrays:
        return _array(arrays, f"step_{i}", leaf.dtype, (count,) + leaf.shape)
    check_compression("lz4")  # the blocks need the codec, whatever this replay's own setting
    rows = CompressedRows(count, leaf.shape, leaf.dtype)
    sizes = _array(arrays, f"step_{i}_lz4_sizes", np.int64, (count,))
    blocks = rows.check_blocks(np.asarray(arrays[f"step_{i}_lz4"]), sizes)
    rows.put_blocks(np.arange(count), blocks)
    return CompressedSteps(blocks, rows)


def _mode(value: Any) -> str | None:
    if value not in (None, "items", "sequences"):
        raise ValueError(f"expected 'items', 'sequences' or null, got {value!r}")
    return value


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
