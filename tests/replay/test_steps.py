"""Steps stored once: frame stacks rebuilt bit-identical, eviction by steps, chunks of several
writers, persistence of the step store."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import tree

from r2d2_state.replay import FrameStack, SequenceAdder, SequenceReplay

from .test_bad_input import assert_unchanged, snapshot


class Frames(gym.Env):
    """Random uint8 frames [6, 5]; episodes of 1-12 steps, some truncated."""

    observation_space = gym.spaces.Box(0, 255, (6, 5), np.uint8)
    action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.length = 0, int(self.np_random.integers(1, 13))
        return self._frame(), {}

    def _frame(self):
        return self.np_random.integers(0, 256, (6, 5), dtype=np.uint8)

    def step(self, action):
        self.t += 1
        done = self.t >= self.length
        truncated = done and self.length % 3 == 0
        return self._frame(), float(action), done and not truncated, truncated, {}


def _stacked_envs(num_envs: int, padding: str, channels_last: bool):
    def make():
        env = gym.wrappers.FrameStackObservation(Frames(), 4, padding_type=padding)
        if channels_last:
            env = gym.wrappers.TransformObservation(
                env, lambda obs: np.ascontiguousarray(np.moveaxis(obs, 0, -1)),
                gym.spaces.Box(0, 255, (6, 5, 4), np.uint8))
        return env

    return gym.vector.SyncVectorEnv([make] * num_envs)


def _drive(envs, adders, steps: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = envs.num_envs
    obs, _ = envs.reset(seed=seed)
    for _ in range(steps):
        action = rng.integers(0, 3, n)
        state = [[rng.standard_normal((n, 2)).astype(np.float32), rng.standard_normal((n, 2)).astype(np.float32)]]
        next_obs, reward, terminated, truncated, _ = envs.step(action)
        for adder in adders:
            adder.add(obs, action, reward, terminated, truncated, state)
        obs = next_obs


def _assert_same_sequences(a: SequenceReplay, b: SequenceReplay) -> None:
    keys = a.keys()
    np.testing.assert_array_equal(keys, b.keys())
    assert keys.size
    for x, y in zip(tree.flatten(a.get(keys)), tree.flatten(b.get(keys))):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("padding", ["reset", "zero"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_frame_stacks_stored_once_and_rebuilt_bit_identical(padding, channels_last):
    """FrameStackObservation's stacks, episode starts included, come back exactly as the env
    returned them, while each step keeps one frame."""
    envs = _stacked_envs(3, padding, channels_last)
    geometry = dict(num_envs=3, burn_in=3, trace_length=4, period=2, n_step=2)
    whole = SequenceReplay(5_000, capacity_steps=5_000, seed=0)
    single = SequenceReplay(5_000, capacity_steps=5_000, seed=0)
    stack = FrameStack("observation", 4, axis=-1 if channels_last else 0, padding=padding)
    adders = [SequenceAdder(whole, **geometry), SequenceAdder(single, **geometry, frame_stacks=[stack])]
    _drive(envs, adders, 120, seed=3)
    envs.close()
    _assert_same_sequences(whole, single)
    assert whole.stats()["step_bytes"] - single.stats()["step_bytes"] == 3 * 30  # one 30-byte frame a step, not 4


def test_a_declared_stack_that_is_not_one_is_refused_and_changes_nothing():
    replay = SequenceReplay(100, capacity_steps=100, seed=0)
    adder = SequenceAdder(replay, 1, burn_in=0, trace_length=2, period=1, frame_stacks=[FrameStack("observation", 3)])
    state = [np.zeros((1, 2), np.float32)]
    step = (np.zeros(1, np.int64), np.zeros(1), np.zeros(1, bool), np.zeros(1, bool), state)
    adder.add(np.full((1, 3, 2), 7, np.uint8), *step)  # reset padding: three equal frames
    adder.add(np.array([[[7, 7], [7, 7], [8, 8]]], np.uint8), *step)
    before = snapshot(replay)
    with pytest.raises(ValueError, match=r"3-frame stack.*env\(s\) \[0\]"):
        adder.add(np.array([[[1, 1], [8, 8], [9, 9]]], np.uint8), *step)  # frame 0 is not the previous frame 1
    assert_unchanged(before, replay)
    with pytest.raises(ValueError, match="expected 4 frames"):
        SequenceAdder(None, 1, 0, 2, 1, frame_stacks=[FrameStack("observation", 4)]).add(
            np.zeros((1, 3, 2), np.uint8), *step)


def test_overlapping_sequences_share_their_steps():
    """Period 2, length 8: each step lies in ~4 sequences but is stored once."""
    replay = SequenceReplay(1_000, capacity_steps=10_000, seed=0)
    adder = SequenceAdder(replay, 2, burn_in=2, trace_length=4, period=2, n_step=2)
    state = [np.zeros((2, 2), np.float32)]
    for t in range(100):
        adder.add(np.full((2, 16), t, np.float32), np.ones(2, np.int64), np.ones(2), np.zeros(2, bool),
                  np.zeros(2, bool), state)
    stats = replay.stats()
    assert stats["steps_written"] == 200 and 200 <= stats["steps_held"] <= 200 + 2 * 64  # whole blocks per env
    assert len(replay) == 2 * 48  # starts 0, 2, ..., 94 in padded time, per env
    assert stats["step_store_bytes"] <= 10_001 * 76  # 64 + 9 bytes a step, aligned to 4 (+ the padding row)


def test_sequences_are_retired_when_a_step_is_overwritten():
    """FIFO by steps: a sequence is never sampled once one of its steps is gone; the ones
    held read back exactly as emitted."""
    small = SequenceReplay(1_000, capacity_steps=50, seed=0)
    large = SequenceReplay(1_000, capacity_steps=10_000, seed=0)
    geometry = dict(burn_in=2, trace_length=4, period=2, n_step=1)
    adders = [SequenceAdder(small, 3, **geometry), SequenceAdder(large, 3, **geometry)]
    rng = np.random.default_rng(0)
    for t in range(200):
        obs = rng.standard_normal((3, 2)).astype(np.float32)
        done = rng.random(3) < 0.1
        for adder in adders:
            adder.add(obs, np.ones(3, np.int64), np.ones(3), done, np.zeros(3, bool),
                      [np.zeros((3, 2), np.float32)])
    stats = small.stats()
    assert stats["retired_sequences"] > 0 and stats["steps_held"] == 50 and stats["size"] < large.stats()["size"]
    assert small._steps.head - small._steps.written < 50  # blocks this small: few ids handed out unfilled
    keys = small.keys()
    ids = small._index.ids(keys % small._sampler.capacity, small._steps.head)
    assert (ids[ids >= 0] >= small._steps.oldest).all()
    for x, y in zip(tree.flatten(small.get(keys)), tree.flatten(large.get(keys))):
        np.testing.assert_array_equal(x, y)
    sampled = small.sample(len(small))
    assert np.isin(sampled.keys, keys).all()
    with pytest.raises(KeyError, match="no longer held"):
        small.get(np.array([0]))
    assert small.update_priorities(np.array([0]), np.array([5.0])) == 0  # retired: skipped


@pytest.mark.parametrize("seed", range(6))
def test_capacity_in_sequences_is_first_in_first_out_by_sequences(seed):
    """Given only ``capacity`` (sequences), the steps of the last ``capacity`` sequences are
    always held: none is retired early, whatever the episode lengths."""
    rng = np.random.default_rng(seed)
    n, burn_in, trace = int(rng.integers(1, 4)), int(rng.integers(0, 4)), int(rng.integers(1, 5))
    period, n_step, capacity = int(rng.integers(1, trace + 1)), int(rng.integers(0, 3)), int(rng.integers(3, 30))
    replay = SequenceReplay(capacity, seed=0)
    adder = SequenceAdder(replay, n, burn_in, trace, period, n_step)
    for _ in range(300):
        terminated = rng.random(n) < 0.2
        adder.add(np.zeros((n, 1), np.float32), np.zeros(n, np.int64), np.zeros(n), terminated, np.zeros(n, bool),
                  [np.zeros((n, 1), np.float32)])
    stats = replay.stats()
    assert stats["retired_sequences"] == 0 and stats["size"] == min(capacity, stats["inserted"])


def test_chunks_of_several_writers_into_one_replay():
    """Two actors' chunks, interleaved and each referring back to its earlier chunks, give
    the same sequences as the actors writing into replays of their own."""
    geometry = dict(burn_in=2, trace_length=3, period=1, n_step=1)
    remote = [SequenceAdder(None, 2, **geometry), SequenceAdder(None, 2, **geometry)]
    direct = [SequenceReplay(1_000, capacity_steps=5_000, seed=0) for _ in range(2)]
    local = [SequenceAdder(r, 2, **geometry) for r in direct]
    shared = SequenceReplay(2_000, capacity_steps=10_000, seed=0)
    rng = np.random.default_rng(1)
    keys = [[], []]
    for t in range(60):
        for i in (0, 1):
            obs = rng.standard_normal((2, 3)).astype(np.float32)
            done = rng.random(2) < 0.15
            for adder in (remote[i], local[i]):
                adder.add(obs, np.ones(2, np.int64), np.ones(2), done, np.zeros(2, bool), [obs[:, :1].copy()])
            if t % (3 + i) == 0:  # chunks of different sizes
                chunk = remote[i].take_chunk()
                if chunk is not None:
                    keys[i].extend(shared.add_chunk(chunk).tolist())
    for i in (0, 1):
        got = shared.get(np.array(keys[i]))
        want = direct[i].get(np.arange(len(keys[i])))
        for x, y in zip(tree.flatten(got), tree.flatten(want)):
            np.testing.assert_array_equal(x, y)


def test_bad_chunks_are_refused_and_change_nothing():
    geometry = dict(burn_in=1, trace_length=2, period=1, n_step=0)
    adder = SequenceAdder(None, 2, **geometry)
    replay = SequenceReplay(100, capacity_steps=100, seed=0)
    step = (np.ones(2, np.int64), np.ones(2), np.zeros(2, bool), np.zeros(2, bool), [np.zeros((2, 1), np.float32)])
    for _ in range(3):
        adder.add(np.zeros((2, 1), np.float32), *step)
    first = adder.take_chunk()
    replay.add_chunk(first)
    for _ in range(3):
        adder.add(np.zeros((2, 1), np.float32), *step)
    second = adder.take_chunk()
    before = snapshot(replay)
    with pytest.raises(ValueError, match="must arrive in order"):
        replay.add_chunk(first)  # the same chunk again
    bad = SequenceAdder(None, 2, **geometry)
    for _ in range(3):
        bad.add(np.zeros((2, 1), np.float64), *step)
    with pytest.raises(TypeError, match="dtype"):
        replay.add_chunk(bad.take_chunk())  # float64 steps into a float32 store
    with pytest.raises(ValueError, match="priorities"):
        replay.add_chunk(second, np.full(second.num_sequences, np.nan))
    second.sequences[0, -1] = 10_000
    with pytest.raises(ValueError, match="outside"):
        replay.add_chunk(second)
    assert_unchanged(before, replay)


def test_sequences_round_trip_through_save_and_load(tmp_path):
    replay = SequenceReplay(40, 0.7, 0.5, seed=3, capacity_steps=60)
    adder = SequenceAdder(replay, 2, burn_in=1, trace_length=3, period=2, n_step=1, store_states=True,
                          frame_stacks=[FrameStack("observation", 2)])
    rng = np.random.default_rng(0)
    frames = None
    for t in range(80):
        new = rng.integers(0, 256, (2, 1, 3), dtype=np.uint8)
        obs = np.concatenate([new if frames is None else frames, new], axis=1)  # reset padding first
        adder.add(obs, np.ones(2, np.int64), np.ones(2), np.zeros(2, bool), np.zeros(2, bool),
                  [rng.standard_normal((2, 2)).astype(np.float32)])
        frames = new
    replay.update_priorities(replay.keys()[:5], np.arange(1.0, 6.0))
    path = tmp_path / "replay.npz"
    replay.save(path)
    loaded = SequenceReplay.restore(path)
    _assert_same_sequences(replay, loaded)
    np.testing.assert_array_equal(loaded.priorities(), replay.priorities())
    assert loaded.stats() == replay.stats()
    a, b = replay.sample(16), loaded.sample(16)  # the same RNG state: the same draw
    np.testing.assert_array_equal(a.keys, b.keys)
    np.testing.assert_array_equal(a.weights, b.weights)
    other = SequenceReplay(40, capacity_steps=61)
    with pytest.raises(ValueError, match="capacity_steps"):
        other.load(path)


def test_uniform_sampling_has_its_own_sampler_and_skips_retired_sequences():
    from r2d2_state.replay.sampler import UniformSampler

    replay = SequenceReplay(1_000, priority_exponent=0.0, capacity_steps=40, seed=0)
    adder = SequenceAdder(replay, 2, burn_in=0, trace_length=2, period=1)
    for t in range(60):
        adder.add(np.full((2, 1), t, np.float32), np.ones(2, np.int64), np.ones(2), np.zeros(2, bool),
                  np.zeros(2, bool), [np.zeros((2, 1), np.float32)])
    assert isinstance(replay._sampler, UniformSampler) and replay.stats()["retired_sequences"] > 0
    held = set(replay.keys().tolist())
    counts = np.zeros(replay.stats()["inserted"])
    for _ in range(200):
        sample = replay.sample(8)
        assert set(sample.keys.tolist()) <= held
        np.testing.assert_array_equal(sample.weights, 1.0)
        np.testing.assert_allclose(sample.probabilities, 1.0 / len(replay))
        np.add.at(counts, sample.keys, 1)
    frequencies = counts[sorted(held)] / counts.sum()
    assert np.abs(frequencies - 1.0 / len(held)).max() < 4 * np.sqrt(1.0 / len(held) / 1600)
