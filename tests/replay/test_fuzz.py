"""Random malformed inputs against the replay and the adder: every call either works or
raises a clear error (ValueError / TypeError / IndexError with a message), and a call
that raises leaves every buffer, adder and file exactly as it was.

Bounded (a fixed number of examples, derandomized) so it runs in seconds in the suite;
raise ``R2D2_FUZZ_EXAMPLES`` for a longer hunt.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from r2d2_state.replay import SequenceAdder, SequenceReplay  # noqa: E402

from .test_bad_input import adder_snapshot, assert_adder_unchanged, assert_unchanged, make_item, snapshot  # noqa: E402

CLEAR_ERRORS = (ValueError, TypeError, IndexError)
EXAMPLES = int(os.environ.get("R2D2_FUZZ_EXAMPLES", "120"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

SPECIAL_FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, np.nan, np.inf, -np.inf, 1e39, -1e39, 1.7e308, 1e-320, 2.0**31]
# Priorities: valid magnitudes from tiny to the overflow range, and the invalid kinds.
SPECIAL_PRIORITIES = [0.0, 1.0, 0.25, 1e-320, 1e39, 1e200, 1e300, 1.7e308, np.nan, np.inf, -1.0]
SPECIAL_INTS = [0, 1, -1, 2, 2**31 - 1, 2**31, -(2**31) - 1, 2**63 - 1]
DTYPES = ["float16", "float32", "float64", "int8", "int32", "int64", "uint8", "uint64", "bool",
          "complex64", "object", "U3", "S3", "f4,i2"]


@st.composite
def arrays(draw, shape=None):
    """An array of a random dtype and shape holding special values (or a non-array)."""
    kind = draw(st.sampled_from(["array", "array", "array", "scalar", "none", "str", "list", "dict"]))
    if kind == "none":
        return None
    if kind == "str":
        return draw(st.sampled_from(["", "abc", "1.0"]))
    if kind == "list":
        return draw(st.lists(st.sampled_from(SPECIAL_FLOATS + [None, "x"]), max_size=4))
    if kind == "dict":
        return {draw(st.sampled_from(["a", "observation", 1])): draw(st.sampled_from([0, 1.5, None]))}
    if kind == "scalar":
        return draw(st.sampled_from(SPECIAL_FLOATS + SPECIAL_INTS + [True, 1 + 2j, b"1"]))
    if shape is None:
        shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    size = int(np.prod(shape, dtype=np.int64))
    values = draw(st.lists(st.sampled_from(SPECIAL_FLOATS + SPECIAL_INTS), min_size=size, max_size=size))
    with np.errstate(all="ignore"):
        if dtype.fields is not None or dtype.kind in "USO":
            array = np.zeros(shape, dtype)
        else:
            try:
                array = np.asarray(values, np.float64).astype(dtype).reshape(shape)
            except (OverflowError, ValueError):
                array = np.zeros(shape, dtype)
    return array


@st.composite
def priority_arrays(draw, k: int):
    """Mostly float64 priorities of the right length (special values), sometimes anything."""
    if draw(st.integers(0, 3)) == 0:
        return draw(arrays())
    return np.asarray(draw(st.lists(st.sampled_from(SPECIAL_PRIORITIES), min_size=k, max_size=k)), np.float64)


def mutated_item(draw, base: dict) -> dict:
    """``base`` with one leaf or one key replaced, dropped or added."""
    item = {k: (dict(v) if isinstance(v, dict) else (list(v) if isinstance(v, list) else v)) for k, v in base.items()}
    what = draw(st.sampled_from(["leaf", "drop", "add", "nest"]))
    if what == "leaf":
        key = draw(st.sampled_from(sorted(item)))
        if isinstance(item[key], dict):
            item[key]["pixels"] = draw(arrays())
        elif isinstance(item[key], list):
            item[key][0] = draw(arrays())
        else:
            item[key] = draw(arrays())
    elif what == "drop":
        item.pop(draw(st.sampled_from(sorted(item))))
    elif what == "add":
        item[draw(st.sampled_from(["extra", "action2"]))] = draw(arrays())
    else:
        item["observation"] = draw(st.sampled_from([[item["observation"]], (item["observation"],), None]))
    return item


def stacked(item: dict, k: int) -> dict:
    import tree

    return tree.map_structure(lambda x: np.stack([x] * k), item)


@st.composite
def replay_calls(draw):
    name = draw(st.sampled_from(["add", "add_batch", "update_priorities", "sample", "add_priority"]))
    if name == "add":
        return name, (mutated_item(draw, make_item(3)),), {}
    if name == "add_priority":
        return "add", (make_item(3),), {"priority": draw(st.one_of(st.sampled_from(SPECIAL_PRIORITIES), arrays(shape=())))}
    if name == "add_batch":
        k = draw(st.integers(1, 3))
        items = stacked(make_item(3), k) if draw(st.booleans()) else stacked(mutated_item(draw, make_item(3)), k)
        return name, (items,), {"priorities": draw(st.one_of(st.none(), priority_arrays(k)))}
    if name == "update_priorities":
        keys = draw(st.one_of(arrays(shape=(2,)), st.just(np.array([0, 1])), st.lists(st.integers(-2, 5), max_size=3)))
        return name, (keys, draw(priority_arrays(2))), {}
    return name, (draw(st.one_of(st.integers(-1, 4), st.sampled_from([1.5, "2", None, True]))),), {}


def filled_replay(alpha: float) -> SequenceReplay:
    replay = SequenceReplay(4, priority_exponent=alpha, seed=0)
    replay.add(make_item(1))
    replay.add(make_item(2), priority=3.0)
    return replay


def check_call(target, snap, unchanged, name, args, kwargs):
    before = snap(target)
    try:
        result = getattr(target, name)(*args, **kwargs)
    except CLEAR_ERRORS as error:
        assert str(error), f"{type(error).__name__} without a message"
        unchanged(before, target)
        return None
    return result


@settings(FUZZ, max_examples=3 * EXAMPLES)
@given(call=replay_calls(), alpha=st.sampled_from([0.0, 0.9, 1.0, 2.0]))
def test_replay_fuzz(call, alpha):
    replay = filled_replay(alpha)
    name, args, kwargs = call
    result = check_call(replay, snapshot, assert_unchanged, name, args, kwargs)
    # Whatever was accepted keeps the buffer sampleable with finite weights.
    if result is not None or name != "sample":
        priorities = replay.priorities()
        assert np.all(np.isfinite(priorities)) and np.all(priorities >= 0)
        if replay._sampler.tree.total > 0:
            sample = replay.sample(2)
            assert np.all(np.isfinite(sample.weights)) and np.all(sample.probabilities > 0)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "replay.npz"
    replay = filled_replay(0.9)
    replay.update_priorities(np.array([0]), np.array([0.25]))
    replay.save(path)
    return path.read_bytes()


@FUZZ
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=4),
       truncate=st.one_of(st.none(), st.floats(0, 1)))
def test_load_fuzz(saved, tmp_path_factory, edits, truncate):
    data = bytearray(saved)
    for where, value in edits:
        data[int(where * len(data))] = value
    if truncate is not None:
        data = data[: int(truncate * len(data))]
    path = tmp_path_factory.getbasetemp() / "fuzzed.npz"
    path.write_bytes(bytes(data))
    target = filled_replay(0.9)
    before = snapshot(target)
    try:
        target.load(path)
    except ValueError as error:  # one error type for every failure, naming the file
        assert "fuzzed.npz" in str(error), str(error)
        assert_unchanged(before, target)


@st.composite
def adder_calls(draw):
    n = 2
    step = dict(observation={"x": np.zeros((n, 3), np.float32)}, action=np.zeros(n, np.int64),
                reward=np.zeros(n, np.float32), terminated=np.zeros(n, bool), truncated=np.zeros(n, bool),
                state=[np.zeros((n, 4), np.float32)])
    for _ in range(draw(st.integers(1, 2))):
        key = draw(st.sampled_from(sorted(step)))
        shape = draw(st.sampled_from([None, (n,), (n, 3), (n, 4)]))
        value = draw(arrays(shape=shape))
        if key == "observation" and draw(st.booleans()):
            value = {"x": value}
        if key == "state" and draw(st.booleans()):
            value = [value]
        step[key] = value
    return step


@FUZZ
@given(step=adder_calls(), allow=st.booleans())
def test_adder_fuzz(step, allow):
    replay = SequenceReplay(8, seed=0)
    adder = SequenceAdder(replay, num_envs=2, burn_in=1, trace_length=2, period=1, n_step=1,
                          non_finite_observations="allow" if allow else "raise")
    good = dict(observation={"x": np.ones((2, 3), np.float32)}, action=np.array([0, 1]),
                reward=np.array([0.5, -1.0], np.float32), terminated=np.array([False, True]),
                truncated=np.zeros(2, bool), state=[np.ones((2, 4), np.float32)])
    for _ in range(3):
        adder.add(**good)
    before, replay_before = adder_snapshot(adder), snapshot(replay)
    inserted = replay.stats()["inserted"]
    try:
        emitted = adder.add(**step)
    except CLEAR_ERRORS as error:
        assert str(error)
        assert_adder_unchanged(before, adder)
        assert_unchanged(replay_before, replay)
        return
    # Accepted: what was stored is what the spec says, with finite states.
    assert replay.stats()["inserted"] == inserted + emitted
    if emitted:
        items = replay.get(np.arange(inserted, inserted + emitted))
        assert items["action"].dtype == np.int32 and (items["action"] >= 0).all()
        assert np.all(np.isfinite(items["reward"])) and np.all(np.isfinite(items["start_state"][0]))
        if not allow:
            assert np.all(np.isfinite(items["observation"]["x"]))


@st.composite
def chunk_edits(draw):
    """A field of a good chunk replaced by a malformed value."""
    field = draw(st.sampled_from(["observation", "action", "reward", "flags", "sequences", "start_state",
                                  "first_id", "priorities"]))
    if field == "first_id":
        return field, draw(st.sampled_from([-1, 0, 3, 10**9]))
    if field == "sequences":
        kind = draw(st.sampled_from(["ids", "array"]))
        if kind == "ids":
            return field, draw(st.sampled_from([-2, -1, 0, 5, 10**6, 2**40]))
        return field, draw(arrays())
    return field, draw(arrays())


@FUZZ
@given(edit=chunk_edits(), draw_nan=st.booleans())
def test_chunk_fuzz(edit, draw_nan):
    """A malformed chunk (steps, step ids, start states, priorities, order) is one clear
    error and leaves the step store, sequence index and sum tree as they were."""
    geometry = dict(burn_in=1, trace_length=2, period=1, n_step=1)
    adder = SequenceAdder(None, 2, **geometry)
    replay = SequenceReplay(64, seed=0, capacity_steps=64)
    good = dict(observation={"x": np.ones((2, 3), np.float32)}, action=np.array([0, 1]),
                reward=np.array([0.5, -1.0], np.float32), terminated=np.array([False, True]),
                truncated=np.zeros(2, bool), state=[np.ones((2, 4), np.float32)])
    for _ in range(3):
        adder.add(**good)
    replay.add_chunk(adder.take_chunk())
    for _ in range(3):
        adder.add(**good)
    chunk = adder.take_chunk()
    field, value = edit
    priorities = None
    if field in ("observation", "action", "reward", "flags"):
        chunk.steps[field] = {"x": value} if field == "observation" else value
    elif field == "sequences":
        chunk.sequences = value if not isinstance(value, int) else np.where(chunk.sequences >= 0, value, -1)
    elif field == "start_state":
        chunk.start_state = [value if draw_nan is False else np.full_like(chunk.start_state[0], np.nan)]
    elif field == "first_id":
        chunk.first_id = value
    else:
        priorities = value
    before = snapshot(replay)
    try:
        keys = replay.add_chunk(chunk, priorities)
    except CLEAR_ERRORS as error:
        assert str(error)
        assert_unchanged(before, replay)
        return
    assert keys.shape == (chunk.num_sequences,)
    for key in keys[keys >= 0]:
        item = replay.get(np.array([key]))
        assert item["action"].dtype == np.int32 and np.all(np.isfinite(item["start_state"][0]))
