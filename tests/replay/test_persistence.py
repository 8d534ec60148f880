from __future__ import annotations

import json
import os

import numpy as np
import pytest

from r2d2_state.replay import SequenceReplay
from r2d2_state.replay import persistence


def make_item(value: float) -> dict:
    return {"observation": {"img": np.full((3, 2, 2), value, np.uint8), "vec": np.full((3, 2), value, np.float32)},
            "action": np.full(3, value, np.int32), "start_state": [(np.full(4, value, np.float32),) * 2]}


def filled(capacity=5, count=7, seed=0):
    replay = SequenceReplay(capacity, priority_exponent=0.7, importance_exponent=0.4, seed=seed)
    for v in range(count):
        replay.add(make_item(v), priority=None if v % 2 else float(v) + 0.5)
    sample = replay.sample(3)
    replay.update_priorities(sample.keys, np.array([0.25, 2.0, 9.0]))
    return replay


def test_round_trip_is_exact(tmp_path):
    path = tmp_path / "replay.npz"
    original = filled()
    original.save(path)
    loaded = SequenceReplay(5, priority_exponent=0.7, importance_exponent=0.4, seed=123)
    loaded.load(path)
    assert loaded.stats() == original.stats()
    np.testing.assert_array_equal(loaded.priorities(), original.priorities())
    np.testing.assert_array_equal(loaded._items.rows, original._items.rows)
    np.testing.assert_array_equal(loaded._sampler.tree.leaves, original._sampler.tree.leaves)
    # Same RNG and insert position: the futures are identical.
    for replay in (original, loaded):
        replay.add(make_item(42))
    a, b = original.sample(4), loaded.sample(4)
    np.testing.assert_array_equal(a.keys, b.keys)
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.data["observation"]["img"], b.data["observation"]["img"])
    restored = SequenceReplay.restore(path)
    assert restored.capacity == 5 and restored.priority_exponent == 0.7 and len(restored) == 5


def test_empty_buffer_round_trip(tmp_path):
    path = tmp_path / "empty.npz"
    SequenceReplay(3, seed=1).save(path)
    loaded = SequenceReplay(3)
    loaded.load(path)
    assert len(loaded) == 0 and loaded.spec is None
    loaded.add(make_item(1))  # the spec is still open


def test_crash_mid_save_keeps_the_previous_save(tmp_path, monkeypatch):
    path = tmp_path / "replay.npz"
    replay = filled()
    replay.save(path)
    saved_stats = replay.stats()
    replay.add(make_item(99))

    def crash_halfway(file, arrays):
        file.write(b"PK\x03\x04 half a zip file")
        raise OSError("disk unplugged")

    monkeypatch.setattr(persistence, "_write_arrays", crash_halfway)
    with pytest.raises(OSError, match="disk unplugged"):
        replay.save(path)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["replay.npz"]  # no temp file left behind
    loaded = SequenceReplay(5, priority_exponent=0.7, importance_exponent=0.4)
    loaded.load(path)
    assert loaded.stats() == saved_stats


def test_load_into_other_structure_raises_and_changes_nothing(tmp_path):
    path = tmp_path / "replay.npz"
    filled().save(path)
    other = SequenceReplay(5, priority_exponent=0.7, importance_exponent=0.4, seed=0)
    other.add({"observation": np.zeros(3, np.float32)})
    before = other.stats()
    with pytest.raises(ValueError, match="item spec"):
        other.load(path)
    assert other.stats() == before
    with pytest.raises(ValueError, match="capacity 5"):
        SequenceReplay(6).load(path)


def test_format_version_is_checked(tmp_path):
    path = tmp_path / "replay.npz"
    filled().save(path)
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(str(arrays["meta"]))
    assert meta["version"] == persistence.FORMAT_VERSION == 2
    meta["version"] = 99
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="unsupported format version 99"):
        SequenceReplay(5).load(path)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable replay save file"):
        SequenceReplay(5).load(tmp_path / "junk.npz")


def test_corrupt_leaf_is_rejected_before_mutation(tmp_path):
    path = tmp_path / "replay.npz"
    filled().save(path)
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["rows"] = arrays["rows"][:2]
    np.savez(path, **arrays)
    target = SequenceReplay(5, seed=0)
    with pytest.raises(ValueError, match="wrong shape"):
        target.load(path)
    assert len(target) == 0 and target.spec is None


# ---------------------------------------------------------------- a failed load changes nothing


def _state_of(replay: SequenceReplay) -> dict:
    return {"stats": replay.stats(), "priorities": replay.priorities(), "rows": replay._items.rows.copy() if replay._items else np.zeros(0),
            "tree": replay._sampler.tree.leaves.copy(), "rng": json.dumps(replay._sampler.rng.bit_generator.state, default=str),
            "spec": None if replay.spec is None else replay.spec.to_json()}


def _assert_same_state(a: dict, b: dict) -> None:
    assert a["stats"] == b["stats"] and a["rng"] == b["rng"] and a["spec"] == b["spec"]
    for key in ("priorities", "rows", "tree"):
        np.testing.assert_array_equal(a[key], b[key])


def _rewrite_meta(path, **changes) -> None:
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(str(arrays["meta"]))
    meta.update(changes)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)


def _other_buffer() -> SequenceReplay:
    # Same capacity and spec as filled(), other contents: a half-load would show.
    replay = SequenceReplay(5, priority_exponent=0.7, importance_exponent=0.4, seed=9)
    for v in (40, 41):
        replay.add(make_item(v), priority=0.5)
    return replay


@pytest.mark.parametrize("field,value", [
    ("max_priority", float("nan")), ("max_priority", -1.0), ("max_priority", "big"), ("max_priority", 0.0),
    ("counters", {"sampled_batches": "x"}), ("counters", [1, 2]), ("counters", None),
    ("rng", {"bit_generator": "Generator"}), ("rng", "PCG64"),
    ("spec", "{\"structure\": 1}"), ("spec", 5), ("next_key", -3), ("next_key", "7"), ("capacity", "5"),
])
def test_bad_meta_field_is_one_value_error_and_changes_nothing(tmp_path, field, value):
    path = tmp_path / "replay.npz"
    filled().save(path)
    _rewrite_meta(path, **{field: value})
    target = _other_buffer()
    before = _state_of(target)
    with pytest.raises(ValueError) as error:
        target.load(path)
    assert str(path) in str(error.value) and repr(field) in str(error.value) or \
        (field == "capacity" and "capacity" in str(error.value))
    _assert_same_state(before, _state_of(target))


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "empty", "meta_not_object"])
def test_truncated_or_bit_flipped_file_names_the_file(tmp_path, damage):
    path = tmp_path / "replay.npz"
    filled().save(path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip_byte":
        # A byte inside the stored rows: the zip CRC check catches it on read.
        with np.load(path) as archive:
            assert "rows" in archive.files
        position = data.index(b"rows.npy") + 200
        path.write_bytes(data[:position] + bytes([data[position] ^ 0xFF]) + data[position + 1:])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        with np.load(path) as archive:
            arrays = {name: archive[name] for name in archive.files}
        arrays["meta"] = np.array("[1, 2]")
        np.savez(path, **arrays)
    target = _other_buffer()
    before = _state_of(target)
    with pytest.raises(ValueError, match="replay.npz"):
        target.load(path)
    _assert_same_state(before, _state_of(target))


def test_structured_dtype_leaf_keeps_its_field_names(tmp_path):
    dtype = np.dtype([("x", "<f4"), ("flags", "u1", (2,))])
    item = {"observation": np.zeros(3, dtype), "action": np.arange(3, dtype=np.int32)}
    item["observation"]["x"] = [1.5, 2.5, 3.5]
    replay = SequenceReplay(2, seed=0)
    replay.add(item)
    path = tmp_path / "replay.npz"
    replay.save(path)
    restored = SequenceReplay.restore(path)
    assert restored.spec.leaves[1].dtype == dtype
    restored.add(item)  # same spec: accepted
    sample = restored.sample(1)
    np.testing.assert_array_equal(sample.data["observation"]["x"][0], [1.5, 2.5, 3.5])
