"""Every bad input raises a clear error and leaves the buffer (and adder) as they were."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from r2d2_state.replay import SequenceAdder, SequenceReplay
from r2d2_state.replay.compression import CompressedRows


def make_item(value: float) -> dict:
    return {
        "observation": {"pixels": np.full((3, 2, 2), value, np.uint8)},
        "action": np.full(3, value, np.int32),
        "start_state": [np.full(4, value, np.float32)],
    }


def _arrays(part) -> list[np.ndarray]:
    """Copies of every array a replay part holds (its storage)."""
    out = []
    for _, value in sorted(vars(part).items()) if part is not None else ():
        if isinstance(value, np.ndarray):
            out.append(value.copy())
        elif isinstance(value, list) and value and all(isinstance(v, (np.ndarray, CompressedRows)) for v in value):
            out.extend(v.blocks.copy() if isinstance(v, CompressedRows) else v.copy() for v in value)
        elif isinstance(value, list) and value and isinstance(value[0], tuple):  # the eviction heap
            out.append(np.array(sorted(value)))
    return out


def snapshot(replay: SequenceReplay) -> dict:
    sampler = replay._sampler
    return {
        "stats": replay.stats(),
        "priorities": replay.priorities(),
        "storage": _arrays(replay._items) + _arrays(replay._steps) + _arrays(replay._index),
        "tree": [] if sampler is None else [sampler.tree._leaves.copy(), sampler.tree._block_sums.copy(),
                                            sampler.alive.copy()],
        "rng": None if sampler is None else copy.deepcopy(sampler.rng.bit_generator.state),
        "spec": None if replay.spec is None else replay.spec.to_json(),
        "writers": {k: (w.next_id, w.store_ids.copy()) for k, w in replay._writers.items()},
    }


def assert_unchanged(before: dict, replay: SequenceReplay) -> None:
    after = snapshot(replay)
    assert after["stats"] == before["stats"]
    assert after["rng"] == before["rng"]
    assert after["spec"] == before["spec"]
    assert after["writers"].keys() == before["writers"].keys()
    for key, (next_id, ids) in before["writers"].items():
        assert after["writers"][key][0] == next_id
        np.testing.assert_array_equal(after["writers"][key][1], ids)
    assert len(after["storage"]) == len(before["storage"])
    np.testing.assert_array_equal(after["priorities"], before["priorities"])
    for a, b in zip(after["storage"] + after["tree"], before["storage"] + before["tree"]):
        np.testing.assert_array_equal(a, b)


@pytest.fixture
def replay():
    replay = SequenceReplay(4, seed=0)
    replay.add(make_item(1))
    replay.add(make_item(2), priority=3.0)
    return replay


def with_leaf(item, path, value):
    item = copy.deepcopy(item)
    target = item
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return item


BAD_ITEMS = {
    "missing_key": ({"action": np.zeros(3, np.int32)}, ValueError, "structure"),
    "extra_key": (dict(make_item(0), extra=np.zeros(1)), ValueError, "structure"),
    "wrong_shape": (with_leaf(make_item(0), ("observation", "pixels"), np.zeros((3, 2, 3), np.uint8)),
                    ValueError, "observation/pixels"),
    "wrong_dtype": (with_leaf(make_item(0), ("observation", "pixels"), np.zeros((3, 2, 2), np.float32)),
                    TypeError, "observation/pixels"),
    "wrong_state_dtype": (with_leaf(make_item(0), ("start_state", 0), np.zeros(4, np.float64)),
                          TypeError, "start_state/0"),
    "list_instead_of_tuple_leaf_count": (with_leaf(make_item(0), ("start_state",), [np.zeros(4, np.float32)] * 2),
                                         ValueError, "structure"),
}


@pytest.mark.parametrize("name", sorted(BAD_ITEMS))
def test_bad_item(replay, name):
    item, error, match = BAD_ITEMS[name]
    before = snapshot(replay)
    with pytest.raises(error, match=match):
        replay.add(item)
    assert_unchanged(before, replay)


def test_bad_batch_leading_sizes_disagree(replay):
    batch = {"observation": {"pixels": np.zeros((2, 3, 2, 2), np.uint8)}, "action": np.zeros((3, 3), np.int32),
             "start_state": [np.zeros((2, 4), np.float32)]}
    before = snapshot(replay)
    # Leaves are checked in dm-tree order (sorted keys): 'action' fixes K = 3 first.
    with pytest.raises(ValueError, match=r"observation/pixels': expected shape \(3, 3, 2, 2\)"):
        replay.add_batch(batch)
    assert_unchanged(before, replay)


@pytest.mark.parametrize("priority", [np.nan, np.inf, -np.inf, -1.0])
def test_bad_priority_on_add(replay, priority):
    before = snapshot(replay)
    with pytest.raises(ValueError, match="priorities must be"):
        replay.add(make_item(3), priority=priority)
    with pytest.raises(ValueError, match="priorities must be"):
        replay.add_batch(_stack2(make_item(3)), priorities=np.array([1.0, priority]))
    assert_unchanged(before, replay)


def _stack2(item):
    import tree
    return tree.map_structure(lambda x: np.stack([x, x]), item)


def test_bad_priorities_count_on_add_batch(replay):
    before = snapshot(replay)
    with pytest.raises(ValueError, match="expected 2 priorities"):
        replay.add_batch(_stack2(make_item(3)), priorities=np.array([1.0, 2.0, 3.0]))
    assert_unchanged(before, replay)


@pytest.mark.parametrize("priority", [np.nan, np.inf, -0.5])
def test_bad_priority_on_update(replay, priority):
    before = snapshot(replay)
    with pytest.raises(ValueError, match="priorities must be"):
        replay.update_priorities(np.array([0, 1]), np.array([2.0, priority]))
    assert_unchanged(before, replay)


@pytest.mark.parametrize("keys", [[0, 2], [-1], [1, 99]])
def test_keys_out_of_range(replay, keys):
    before = snapshot(replay)
    with pytest.raises(IndexError, match="keys out of range"):
        replay.update_priorities(np.array(keys), np.ones(len(keys)))
    assert_unchanged(before, replay)


def test_float_keys_and_mismatched_lengths(replay):
    before = snapshot(replay)
    with pytest.raises(TypeError, match="integer"):
        replay.update_priorities(np.array([0.0, 1.0]), np.ones(2))
    with pytest.raises(ValueError, match="expected 2 priorities"):
        replay.update_priorities(np.array([0, 1]), np.ones(3))
    assert_unchanged(before, replay)


def test_sample_from_empty_buffer():
    replay = SequenceReplay(4, seed=0)
    before = snapshot(replay)
    with pytest.raises(ValueError, match="empty"):
        replay.sample(1)
    assert_unchanged(before, replay)


@pytest.mark.parametrize("batch_size,match", [(3, "larger than the 2 items"), (0, "positive"), (1.5, "positive")])
def test_bad_batch_size(replay, batch_size, match):
    before = snapshot(replay)
    with pytest.raises(ValueError, match=match):
        replay.sample(batch_size)
    assert_unchanged(before, replay)


def test_all_zero_priorities_cannot_be_sampled(replay):
    replay.update_priorities(np.array([0, 1]), np.zeros(2))
    before = snapshot(replay)
    with pytest.raises(ValueError, match="zero"):
        replay.sample(1)
    assert_unchanged(before, replay)


@pytest.mark.parametrize("kwargs,match", [
    (dict(capacity=0), "capacity"), (dict(capacity=4, priority_exponent=-1), "priority_exponent"),
    (dict(capacity=4, importance_exponent=np.nan), "importance_exponent"),
])
def test_bad_constructor(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SequenceReplay(**kwargs)


# ---------------------------------------------------------------- adder


def adder_snapshot(adder: SequenceAdder) -> dict:
    return copy.deepcopy({k: v for k, v in vars(adder).items() if k != "replay"})


def _assert_same(a, b, key) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), key
        for name in a:
            _assert_same(a[name], b[name], key)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), key
        for x, y in zip(a, b):
            _assert_same(x, y, key)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=key)
    else:
        assert str(a) == str(b), key


def assert_adder_unchanged(before: dict, adder: SequenceAdder) -> None:
    after = adder_snapshot(adder)
    assert before.keys() == after.keys()
    for key in before:
        _assert_same(before[key], after[key], key)


def good_step(num_envs=2, obs_dtype=np.float32):
    return dict(
        observation={"x": np.zeros((num_envs, 3), obs_dtype)},
        action=np.zeros(num_envs, np.int64),
        reward=np.zeros(num_envs, np.float32),
        terminated=np.zeros(num_envs, bool),
        truncated=np.zeros(num_envs, bool),
        state=[np.zeros((num_envs, 4), np.float32)],
    )


ADDER_BAD_STEPS = {
    "obs_batch_not_num_envs": (dict(observation={"x": np.zeros((3, 3), np.float32)}), ValueError, "observation/x"),
    "obs_wrong_shape": (dict(observation={"x": np.zeros((2, 4), np.float32)}), ValueError, "observation/x"),
    "obs_wrong_dtype": (dict(observation={"x": np.zeros((2, 3), np.float64)}), TypeError, "observation/x"),
    "obs_wrong_structure": (dict(observation=np.zeros((2, 3), np.float32)), ValueError, "structure"),
    "state_wrong_shape": (dict(state=[np.zeros((2, 5), np.float32)]), ValueError, "state/0"),
    "action_wrong_shape": (dict(action=np.zeros(3, np.int64)), ValueError, "action"),
    "action_float": (dict(action=np.zeros(2, np.float32)), TypeError, "action"),
    "action_negative": (dict(action=np.array([0, -1])), ValueError, "action"),
    "reward_nan": (dict(reward=np.array([0.0, np.nan])), ValueError, "reward"),
    "terminated_not_bool": (dict(terminated=np.zeros(2, np.float32)), TypeError, "terminated"),
    "truncated_wrong_shape": (dict(truncated=np.zeros(1, bool)), ValueError, "truncated"),
}


@pytest.mark.parametrize("name", sorted(ADDER_BAD_STEPS))
def test_adder_bad_step(name):
    override, error, match = ADDER_BAD_STEPS[name]
    replay = SequenceReplay(8, seed=0)
    adder = SequenceAdder(replay, num_envs=2, burn_in=0, trace_length=1, period=1)
    adder.add(**good_step())  # fixes the spec and emits one sequence per env
    before, replay_before = adder_snapshot(adder), snapshot(replay)
    with pytest.raises(error, match=match):
        adder.add(**dict(good_step(), **override))
    assert_adder_unchanged(before, adder)
    assert_unchanged(replay_before, replay)


def test_adder_unknown_env_id():
    adder = SequenceAdder(None, num_envs=2, burn_in=0, trace_length=1, period=1)
    adder.add(**good_step())
    before = adder_snapshot(adder)
    with pytest.raises(IndexError, match="unknown env id 2"):
        adder.reset([0, 2])
    with pytest.raises(IndexError, match="unknown env id -1"):
        adder.reset([-1])
    assert_adder_unchanged(before, adder)


@pytest.mark.parametrize("kwargs,match", [
    (dict(period=0), "period"), (dict(period=3), "period"), (dict(trace_length=0, period=1), "trace_length"),
    (dict(burn_in=-1), "burn_in"), (dict(num_envs=0), "num_envs"), (dict(n_step=-2), "n_step"),
])
def test_adder_bad_config(kwargs, match):
    config = dict(replay=None, num_envs=2, burn_in=1, trace_length=2, period=1)
    with pytest.raises(ValueError, match=match):
        SequenceAdder(**dict(config, **kwargs))


# ---------------------------------------------------------------- priorities that cannot be sampled


@pytest.mark.parametrize("alpha,priority", [(1.0, 1.7e308), (2.0, 1e200)])
def test_overflowing_priorities_are_refused_everywhere(alpha, priority):
    replay = SequenceReplay(4, priority_exponent=alpha, seed=0)
    replay.add(make_item(1))
    replay.add(make_item(2), priority=3.0)
    before = snapshot(replay)
    with pytest.raises(ValueError, match="too large to sample"):
        replay.update_priorities(np.array([0]), np.array([priority]))
    with pytest.raises(ValueError, match="too large to sample"):
        replay.add(make_item(3), priority=priority)
    with pytest.raises(ValueError, match="too large to sample"):
        replay.add_batch(_stack2(make_item(3)), priorities=np.array([1.0, priority]))
    assert_unchanged(before, replay)
    # The largest accepted priority still samples with finite weights and probabilities.
    replay.update_priorities(np.array([0, 1]), np.array([replay.max_allowed_priority()] * 2))
    sample = replay.sample(2)
    assert np.all(np.isfinite(sample.weights)) and np.all(sample.probabilities > 0)


@pytest.mark.parametrize("priorities", [np.array([1 + 2j, 1.0]), np.array([True, False]),
                                        np.array([b"1", b"2"]), np.array(["1", "2"]),
                                        np.array([1.0, None], dtype=object)])
def test_priorities_that_are_not_real_numbers_are_refused(replay, priorities):
    before = snapshot(replay)
    with pytest.raises(TypeError, match="real numbers"):
        replay.update_priorities(np.array([0, 1]), priorities)
    with pytest.raises(TypeError, match="real numbers"):
        replay.add_batch(_stack2(make_item(3)), priorities=priorities)
    with pytest.raises(TypeError, match="real numbers"):
        replay.add(make_item(3), priority=priorities[:1])
    assert_unchanged(before, replay)


# ---------------------------------------------------------------- the adder checks what it stores


ADDER_BAD_STORED_VALUES = {
    "action_beyond_int32": (dict(action=np.array([0, 2**31], np.int64)), ValueError, "int32"),
    "action_uint64_huge": (dict(action=np.array([0, 2**63], np.uint64)), ValueError, "int32"),
    "reward_beyond_float32": (dict(reward=np.array([0.0, 1e39])), ValueError, "float32"),
    "reward_int_bool": (dict(reward=np.array([True, False])), TypeError, "reward"),
    "obs_nan": (dict(observation={"x": np.array([[0, 0, 0], [0, np.nan, 0]], np.float32)}), ValueError,
                r"observation/x.*\[1\]"),
    "obs_inf": (dict(observation={"x": np.array([[np.inf, 0, 0], [0, 0, 0]], np.float32)}), ValueError,
                "observation/x"),
    "state_nan": (dict(state=[np.array([[0, 0, 0, np.nan], [0, 0, 0, 0]], np.float32)]), ValueError, "state/0"),
    "state_inf": (dict(state=[np.full((2, 4), -np.inf, np.float32)]), ValueError, "state/0"),
}


@pytest.mark.parametrize("name", sorted(ADDER_BAD_STORED_VALUES))
def test_adder_checks_the_values_it_stores(name):
    override, error, match = ADDER_BAD_STORED_VALUES[name]
    replay = SequenceReplay(8, seed=0)
    adder = SequenceAdder(replay, num_envs=2, burn_in=0, trace_length=1, period=1)
    adder.add(**good_step())
    before, replay_before = adder_snapshot(adder), snapshot(replay)
    with pytest.raises(error, match=match):
        adder.add(**dict(good_step(), **override))
    assert_adder_unchanged(before, adder)
    assert_unchanged(replay_before, replay)


def test_adder_refuses_a_non_finite_first_step_before_fixing_its_spec():
    adder = SequenceAdder(None, num_envs=2, burn_in=0, trace_length=1, period=1)
    with pytest.raises(ValueError, match="observation/x"):
        adder.add(**dict(good_step(), observation={"x": np.full((2, 3), np.nan, np.float64)}))
    assert adder._input_spec is None
    adder.add(**good_step())  # the spec is still open: float32 now


def test_adder_non_finite_observations_switch():
    with pytest.raises(ValueError, match="non_finite_observations"):
        SequenceAdder(None, num_envs=2, burn_in=0, trace_length=1, period=1, non_finite_observations="zero")
    replay = SequenceReplay(8, seed=0)
    adder = SequenceAdder(replay, num_envs=2, burn_in=0, trace_length=1, period=1, non_finite_observations="allow")
    adder.add(**dict(good_step(), observation={"x": np.full((2, 3), np.inf, np.float32)}))
    items = replay.get(np.arange(2))  # trace 1, period 1: emitted at once
    assert np.isinf(items["observation"]["x"]).all()
    with pytest.raises(ValueError, match="state/0"):  # states are always checked
        adder.add(**dict(good_step(), state=[np.full((2, 4), np.nan, np.float32)]))


def test_a_list_for_a_tuple_is_named_by_its_containers(replay):
    """Same leaves, other container: the message shows the containers, not the same text twice."""
    item = make_item(2)
    item["start_state"] = (item["start_state"][0],)  # a tuple where the spec has a list
    before = snapshot(replay)
    with pytest.raises(ValueError) as error:
        replay.add(item)
    message = str(error.value)
    assert "expected {'observation': {'pixels': *}, 'action': *, 'start_state': [*]}" in message, message
    assert "got {'observation': {'pixels': *}, 'action': *, 'start_state': (*,)}" in message, message
    assert_unchanged(before, replay)


def test_a_nan_item_is_refused_as_the_adder_refuses_one(replay):
    item = {"observation": {"pixels": np.zeros((3, 2, 2), np.uint8)}, "action": np.zeros(3, np.int32),
            "start_state": [np.full(4, np.nan, np.float32)]}
    before = snapshot(replay)
    with pytest.raises(ValueError, match="start_state/0.*NaN or inf"):
        replay.add(item)
    assert_unchanged(before, replay)


def test_huge_priorities_keep_the_stats_finite():
    replay = SequenceReplay(4, seed=0)
    replay.add(make_item(1), priority=1e308)
    replay.add(make_item(2), priority=1e308)
    with np.errstate(over="raise"):  # no overflow, no warning
        stats = replay.stats()
    assert stats["priority_mean"] == pytest.approx(1e308) and np.isfinite(stats["priority_mean"])


def test_save_into_a_missing_folder_names_the_path(tmp_path, replay):
    path = tmp_path / "missing" / "replay.npz"
    with pytest.raises(FileNotFoundError, match="missing.*does not exist"):
        replay.save(path)
    assert not (tmp_path / "missing").exists()
