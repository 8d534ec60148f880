"""Frames stored compressed (``SequenceReplay(compression="lz4")``): the same sequences and
samples as raw storage, fewer bytes, and files that round-trip and are checked."""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import pytest
import tree

from r2d2_state.replay import FrameStack, SequenceAdder, SequenceReplay

from .test_bad_input import assert_unchanged, snapshot

pytest.importorskip("cramjam")


class Screens(gym.Env):
    """uint8 frames [40, 32] that look like a game screen: a flat background with a few
    moving blocks (compressible, like Atari frames); episodes of 3-30 steps, some truncated."""

    observation_space = gym.spaces.Box(0, 255, (40, 32), np.uint8)
    action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.length = 0, int(self.np_random.integers(3, 31))
        self.blocks = self.np_random.integers(0, 28, (3, 2))
        return self._frame(), {}

    def _frame(self):
        frame = np.full((40, 32), 87, np.uint8)
        self.blocks = np.clip(self.blocks + self.np_random.integers(-2, 3, self.blocks.shape), 0, 28)
        for y, x in self.blocks:
            frame[y:y + 4, x:x + 3] = self.np_random.integers(100, 256)
        return frame

    def step(self, action):
        self.t += 1
        done = self.t >= self.length
        truncated = done and self.length % 4 == 0
        return self._frame(), float(action), done and not truncated, truncated, {}


def _fill(replays, stacked: bool, steps: int = 300, padding: str = "reset", seed: int = 0):
    def make():
        env = Screens()
        return gym.wrappers.FrameStackObservation(env, 4, padding_type=padding) if stacked else env

    envs = gym.vector.SyncVectorEnv([make] * 3)
    stacks = [FrameStack("observation", 4, padding=padding)] if stacked else []
    adders = [SequenceAdder(r, 3, burn_in=2, trace_length=5, period=3, n_step=2, frame_stacks=stacks)
              for r in replays]
    rng = np.random.default_rng(seed)
    obs, _ = envs.reset(seed=seed)
    for _ in range(steps):
        action = rng.integers(0, 3, 3)
        state = [[rng.standard_normal((3, 2)).astype(np.float32) for _ in "hc"]]
        next_obs, reward, terminated, truncated, _ = envs.step(action)
        for adder in adders:
            adder.add(obs, action, reward, terminated, truncated, state)
        obs = next_obs
    envs.close()


def _assert_same(a: SequenceReplay, b: SequenceReplay) -> None:
    keys = a.keys()
    assert keys.size
    np.testing.assert_array_equal(keys, b.keys())
    for x, y in zip(tree.flatten(a.get(keys)), tree.flatten(b.get(keys))):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("stacked,padding", [(False, "reset"), (True, "reset"), (True, "zero")])
def test_compressed_frames_give_the_same_sequences_and_samples_in_fewer_bytes(stacked, padding):
    raw = SequenceReplay(capacity_steps=400, seed=5)
    packed = SequenceReplay(capacity_steps=400, seed=5, compression="lz4")
    _fill([raw, packed], stacked, padding=padding)  # 900 steps into 400: eviction included
    assert raw.stats()["retired_sequences"] > 0
    _assert_same(raw, packed)
    for _ in range(3):
        a, b = raw.sample(16), packed.sample(16)
        np.testing.assert_array_equal(a.keys, b.keys)
        np.testing.assert_array_equal(a.weights, b.weights)
        for x, y in zip(tree.flatten(a.data), tree.flatten(b.data)):
            np.testing.assert_array_equal(x, y)
        raw.update_priorities(a.keys, np.arange(1.0, 17.0))
        packed.update_priorities(b.keys, np.arange(1.0, 17.0))
    assert packed.stats()["compression"] == "lz4" and raw.stats()["compression"] is None
    # 1,280-byte frames of a flat screen: the compressed store holds a fraction of the raw one.
    assert packed.stats()["step_store_bytes"] < 0.5 * raw.stats()["step_store_bytes"]


def test_small_observations_stay_raw():
    """Rows under 1 KiB are not worth a block each: a vector observation is stored as before."""
    replay = SequenceReplay(capacity_steps=100, compression="lz4")
    adder = SequenceAdder(replay, 1, burn_in=0, trace_length=2, period=1)
    for _ in range(5):
        adder.add(np.zeros((1, 4), np.float32), np.zeros(1, np.int64), np.zeros(1), np.zeros(1, bool),
                  np.zeros(1, bool), [[np.zeros((1, 2), np.float32)] * 2])
    assert all(isinstance(array, np.ndarray) for array in replay._steps.arrays)


def test_compressed_replay_round_trips_through_a_file_and_into_raw_storage(tmp_path):
    packed = SequenceReplay(capacity_steps=400, seed=2, compression="lz4")
    raw = SequenceReplay(capacity_steps=400, seed=2)
    _fill([packed, raw], stacked=True)
    packed.update_priorities(packed.keys()[:4], [3.0, 1.0, 2.0, 5.0])
    path = tmp_path / "replay.npz"
    packed.save(path)
    with np.load(path) as archive:  # the blocks as stored, not the decompressed frames
        assert any(name.endswith("_lz4") for name in archive.files)
    restored = SequenceReplay.restore(path)
    assert restored.compression == "lz4"
    _assert_same(packed, restored)
    assert restored.stats() == packed.stats()
    np.testing.assert_array_equal(restored.sample(8).keys, packed.sample(8).keys)
    into_raw = SequenceReplay(capacity_steps=400, seed=2)  # the frames decompressed on load
    into_raw.load(path)
    _assert_same(raw, into_raw)
    raw_path = tmp_path / "raw.npz"
    raw.save(raw_path)
    into_packed = SequenceReplay(capacity_steps=400, seed=2, compression="lz4")  # compressed on load
    into_packed.load(raw_path)
    _assert_same(raw, into_packed)


def test_a_corrupt_block_is_refused_and_changes_nothing(tmp_path):
    packed = SequenceReplay(capacity_steps=400, seed=2, compression="lz4")
    _fill([packed], stacked=False)
    path = tmp_path / "replay.npz"
    packed.save(path)
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    name = next(n for n in arrays if n.endswith("_lz4"))
    sizes = arrays[name + "_sizes"]
    corrupt = dict(arrays)
    data = arrays[name].copy()
    data[int(sizes[0]) - 8: int(sizes[0])] = 255  # the end of the first block: its last literals
    corrupt[name] = data
    bad = tmp_path / "bad.npz"
    np.savez(bad, **corrupt)
    target = SequenceReplay(capacity_steps=400, seed=2, compression="lz4")
    _fill([target], stacked=False, seed=9)
    before = snapshot(target)
    with pytest.raises(ValueError, match=f"{name.rsplit('_', 1)[0]}"):
        target.load(bad)
    assert_unchanged(before, target)
    short = dict(arrays)
    short[name + "_sizes"] = sizes.copy()
    short[name + "_sizes"][0] += 1  # sizes that do not add up to the data
    np.savez(bad, **short)
    with pytest.raises(ValueError, match="add up"):
        target.load(bad)
    assert_unchanged(before, target)


def test_unknown_codec_and_missing_cramjam_are_clear_errors(monkeypatch):
    with pytest.raises(ValueError, match="compression must be one of .*'zip'"):
        SequenceReplay(capacity_steps=10, compression="zip")
    monkeypatch.setitem(sys.modules, "cramjam", None)  # as if not installed
    with pytest.raises(ValueError, match="needs the cramjam package"):
        SequenceReplay(capacity_steps=10, compression="lz4")
