"""Table-driven SequenceAdder tests: hand-written steps in, hand-written sequences out.

Conventions of the tables: observations are scalars named by episode and step (10, 11,
... for episode 1; 20, 21, ... for episode 2); the recurrent state passed with
observation o is ``o + 0.5``, so ``start_state`` shows which step's state a sequence got.
``F`` rows are NEXT_STEP reset steps: the env returns the final observation, the adder
receives it with an ignored action and reward 0 (exactly what Gymnasium 1.x does).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from r2d2_state.replay import SequenceAdder, SequenceReplay

_ = 0.0  # padding observation in expected tables, for readability


@dataclasses.dataclass
class Step:
    obs: float
    action: int
    reward: float
    terminated: bool = False
    truncated: bool = False


def final(obs: float) -> Step:
    """A NEXT_STEP reset step: final observation, action ignored, reward 0."""
    return Step(obs, 0, 0.0)


def seq(obs, action, reward, discount, mask, valid, prev_action, prev_reward, start_state):
    return dict(
        observation=np.asarray(obs, np.float32),
        action=np.asarray(action, np.int32),
        reward=np.asarray(reward, np.float32),
        discount=np.asarray(discount, np.float32),
        mask=np.asarray(mask, np.float32),
        valid=np.asarray(valid, np.float32),
        prev_action=np.asarray(prev_action, np.int32),
        prev_reward=np.asarray(prev_reward, np.float32),
        start_state=[np.asarray([start_state], np.float32)],
    )


class Recorder:
    """An adder writing into a replay; ``add`` returns the sequences that call inserted,
    read back from the replay (leaves [K, ...]), or None."""

    def __init__(self, **config) -> None:
        self.replay = SequenceReplay(capacity=10_000, capacity_steps=10_000, seed=0)
        self.adder = SequenceAdder(self.replay, **config)

    def add(self, *args) -> dict | None:
        before = self.replay.stats()["inserted"]
        self.adder.add(*args)
        after = self.replay.stats()["inserted"]
        return None if after == before else self.replay.get(np.arange(before, after))

    def reset(self, env_ids=None) -> None:
        self.adder.reset(env_ids)


def run(config: dict, steps_per_env: list[list[Step]]) -> list[dict]:
    """Feeds the scripted steps (same count per env) and returns emitted items in order."""
    num_envs = len(steps_per_env)
    adder = Recorder(num_envs=num_envs, **config)
    emitted = []
    for t in range(len(steps_per_env[0])):
        rows = [steps[t] for steps in steps_per_env]
        items = adder.add(
            np.array([r.obs for r in rows], np.float32),
            np.array([r.action for r in rows], np.int64),
            np.array([r.reward for r in rows], np.float64),
            np.array([r.terminated for r in rows]),
            np.array([r.truncated for r in rows]),
            [np.array([[r.obs + 0.5] for r in rows], np.float32)],
        )
        if items is not None:
            count = items["action"].shape[0]
            for k in range(count):
                emitted.append(
                    {
                        name: (value[k] if name != "start_state" else [value[0][k]])
                        for name, value in items.items()
                    }
                )
    return emitted


CASES = {
    # B=3 > episode length 2: front padding, the padded burn-in carries step 0's state.
    "episode_shorter_than_burn_in": (
        dict(burn_in=3, trace_length=2, period=1, n_step=0),
        [[Step(10, 1, 1.0), Step(11, 2, 2.0, terminated=True), final(12), Step(20, 1, 1.0)]],
        [
            seq([_, _, _, 10, 11], [0, 0, 0, 1, 2], [0, 0, 0, 1, 2], [0, 0, 0, 1, 0],
                [0, 0, 0, 1, 1], [0, 0, 0, 1, 1], [-1, -1, -1, -1, 1], [0, 0, 0, 0, 1], 10.5),
            seq([_, _, 10, 11, 12], [0, 0, 1, 2, 0], [0, 0, 1, 2, 0], [0, 0, 1, 0, 0],
                [0, 0, 1, 1, 0], [0, 0, 1, 1, 1], [-1, -1, -1, 1, 2], [0, 0, 0, 1, 2], 10.5),
        ],
    ),
    # Truncation keeps discount 1 (bootstrap from the stored final obs); termination 0.
    # The step after F brings the next episode's first observation (NEXT_STEP reset).
    "truncation_vs_termination": (
        dict(burn_in=0, trace_length=3, period=3, n_step=0),
        [[Step(10, 1, 1.0), Step(11, 2, 1.0, truncated=True), final(12),
          Step(20, 3, 1.0), Step(21, 4, 1.0, terminated=True), final(22), Step(30, 1, 1.0)]],
        [
            seq([10, 11, 12], [1, 2, 0], [1, 1, 0], [1, 1, 0], [1, 1, 0], [1, 1, 1],
                [-1, 1, 2], [0, 1, 1], 10.5),
            seq([20, 21, 22], [3, 4, 0], [1, 1, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1],
                [-1, 3, 4], [0, 1, 1], 20.5),
        ],
    ),
    # P=1 < T: adjacent sequences overlap by L - P = 3; the tail (n=1) is zero-padded at
    # the end; mid-episode starts get the state passed with their first observation.
    "overlap_with_period_and_tail": (
        dict(burn_in=1, trace_length=2, period=1, n_step=1),
        [[Step(10, 1, 1.0), Step(11, 2, 2.0), Step(12, 3, 3.0), Step(13, 4, 4.0, terminated=True),
          final(14)]],
        [
            seq([_, 10, 11, 12], [0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 1, 1], [0, 1, 1, 1],
                [0, 1, 1, 1], [-1, -1, 1, 2], [0, 0, 1, 2], 10.5),
            seq([10, 11, 12, 13], [1, 2, 3, 4], [1, 2, 3, 4], [1, 1, 1, 0], [1, 1, 1, 1],
                [1, 1, 1, 1], [-1, 1, 2, 3], [0, 1, 2, 3], 10.5),
            seq([11, 12, 13, 14], [2, 3, 4, 0], [2, 3, 4, 0], [1, 1, 0, 0], [1, 1, 1, 0],
                [1, 1, 1, 1], [1, 2, 3, 4], [1, 2, 3, 4], 11.5),
            seq([12, 13, 14, _], [3, 4, 0, 0], [3, 4, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0],
                [1, 1, 1, 0], [2, 3, 4, -1], [2, 3, 4, 0], 12.5),
        ],
    ),
    # P=2 with an episode that ends mid-period: the last sequence starts at step 2.
    "period_two_partial_last_sequence": (
        dict(burn_in=0, trace_length=2, period=2, n_step=1),
        [[Step(10, 1, 1.0), Step(11, 1, 1.0), Step(12, 1, 1.0, terminated=True), final(13)]],
        [
            seq([10, 11, 12], [1, 1, 1], [1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 1, 1],
                [-1, 1, 1], [0, 1, 1], 10.5),
            seq([12, 13, _], [1, 0, 0], [1, 0, 0], [0, 0, 0], [1, 0, 0], [1, 1, 0],
                [1, 1, -1], [1, 1, 0], 12.5),
        ],
    ),
    # Acme's single-transition episode: one sequence holding the transition and the final
    # observation, padded on both sides; the next sequence (trained window past F) is not
    # emitted, and the next episode does not leak into it.
    "single_transition_episode": (
        dict(burn_in=2, trace_length=2, period=2, n_step=1),
        [[Step(10, 1, 1.0, terminated=True), final(11), Step(20, 2, 1.0)]],
        [
            seq([_, _, 10, 11, _], [0, 0, 1, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0], [0, 0, 1, 0, 0],
                [0, 0, 1, 1, 0], [-1, -1, -1, 1, -1], [0, 0, 0, 1, 0], 10.5),
        ],
    ),
    "single_transition_episode_truncated": (
        dict(burn_in=0, trace_length=3, period=3, n_step=1),
        [[Step(10, 1, 1.0, truncated=True), final(11), Step(20, 2, 1.0)]],
        [
            seq([10, 11, _, _], [1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0],
                [1, 1, 0, 0], [-1, 1, -1, -1], [0, 1, 0, 0], 10.5),
        ],
    ),
    # An episode exactly one sequence long (transitions + final observation = L): one
    # sequence without any padding; the next episode starts its own sequence.
    "episode_exactly_one_sequence_long": (
        dict(burn_in=0, trace_length=2, period=2, n_step=1),
        [[Step(10, 1, 1.0), Step(11, 2, 2.0, terminated=True), final(12),
          Step(20, 3, 1.0), Step(21, 4, 1.0, truncated=True), final(22)]],
        [
            seq([10, 11, 12], [1, 2, 0], [1, 2, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1],
                [-1, 1, 2], [0, 1, 2], 10.5),
            seq([20, 21, 22], [3, 4, 0], [1, 1, 0], [1, 1, 0], [1, 1, 0], [1, 1, 1],
                [-1, 3, 4], [0, 1, 1], 20.5),
        ],
    ),
    # Transitions alone fill the sequence (n = 0): the final observation falls outside it
    # and no sequence is emitted for it (its trained window holds no transition).
    "episode_transitions_fill_one_sequence": (
        dict(burn_in=0, trace_length=3, period=3, n_step=0),
        [[Step(10, 1, 1.0), Step(11, 2, 2.0), Step(12, 3, 3.0, terminated=True), final(13)]],
        [
            seq([10, 11, 12], [1, 2, 3], [1, 2, 3], [1, 1, 0], [1, 1, 1], [1, 1, 1],
                [-1, 1, 2], [0, 1, 2], 10.5),
        ],
    ),
    # Two envs ending at different times; emission order is by call, then env index.
    "two_envs_ending_at_different_times": (
        dict(burn_in=0, trace_length=2, period=2, n_step=0),
        [
            [Step(10, 1, 1.0), Step(11, 2, 1.0, terminated=True), final(12), Step(20, 3, 1.0), Step(21, 4, 1.0)],
            [Step(30, 5, 1.0), Step(31, 6, 1.0), Step(32, 7, 1.0), Step(33, 8, 1.0, truncated=True), final(34)],
        ],
        [
            seq([10, 11], [1, 2], [1, 1], [1, 0], [1, 1], [1, 1], [-1, 1], [0, 1], 10.5),
            seq([30, 31], [5, 6], [1, 1], [1, 1], [1, 1], [1, 1], [-1, 5], [0, 1], 30.5),
            seq([32, 33], [7, 8], [1, 1], [1, 1], [1, 1], [1, 1], [6, 7], [1, 1], 32.5),
            seq([20, 21], [3, 4], [1, 1], [1, 1], [1, 1], [1, 1], [-1, 3], [0, 1], 20.5),
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_expected_sequences(name):
    config, steps, expected = CASES[name]
    emitted = run(config, steps)
    assert len(emitted) == len(expected), f"{name}: {len(emitted)} sequences emitted"
    for index, (got, want) in enumerate(zip(emitted, expected)):
        assert set(got) == set(want)
        for field in want:
            np.testing.assert_array_equal(
                np.asarray(got[field]), np.asarray(want[field]), err_msg=f"{name} seq {index} {field}"
            )
            if field != "start_state":
                assert got[field].dtype == want[field].dtype, (name, field)


def test_nested_observations_uint8_images_and_states_option():
    """dict/tuple observations keep structure and dtype; ``states`` holds every step."""
    num_envs, length = 2, 3
    adder = Recorder(num_envs=num_envs, burn_in=1, trace_length=2, period=2, store_states=True)
    emitted = []
    for t in range(4):
        obs = {
            "pixels": np.full((num_envs, 2, 2), t, np.uint8) + np.arange(num_envs, dtype=np.uint8)[:, None, None] * 100,
            "extra": (np.full((num_envs, 3), t, np.float32), np.full((num_envs,), -t, np.int64)),
        }
        state = [[np.full((num_envs, 4), t, np.float32), np.full((num_envs, 4), -t, np.float32)]]
        items = adder.add(obs, np.ones(num_envs, np.int32), np.zeros(num_envs), np.zeros(num_envs, bool),
                          np.zeros(num_envs, bool), state)
        if items is not None:
            emitted.append((t, items))
    # L=3 with front padding 1: sequence 0 completes at step 1, sequence 1 at step 3.
    assert [t for t, _ in emitted] == [1, 3]
    t, items = emitted[0]
    pixels = items["observation"]["pixels"]
    assert pixels.dtype == np.uint8 and pixels.shape == (2, length, 2, 2)
    np.testing.assert_array_equal(pixels[:, :, 0, 0], [[0, 0, 1], [0, 100, 101]])
    floats, ints = items["observation"]["extra"]
    assert isinstance(items["observation"]["extra"], tuple)
    assert floats.dtype == np.float32 and floats.shape == (2, length, 3)
    assert ints.dtype == np.int64
    np.testing.assert_array_equal(ints[0], [0, 0, -1])
    h, c = items["start_state"][0]
    assert h.shape == (2, 4) and h.dtype == np.float32
    np.testing.assert_array_equal(h[:, 0], [0, 0])  # front padding: state of step 0
    states_h = items["states"][0][0]
    assert states_h.shape == (2, length, 4)
    np.testing.assert_array_equal(states_h[0, :, 0], [0, 0, 1])  # zeros on padding
    t, items = emitted[1]
    # Sequence 1 covers padded [2, 5) = steps 1..3: the state passed with step 1.
    np.testing.assert_array_equal(items["start_state"][0][0][:, 0], [1, 1])
    np.testing.assert_array_equal(items["start_state"][0][1][:, 0], [-1, -1])
    np.testing.assert_array_equal(items["observation"]["pixels"][1, :, 0, 0], [101, 102, 103])


def test_chunks_carry_steps_once_and_take_given_priorities():
    """Without a replay the adder keeps a chunk: each step once, sequences as step ids; a
    replay inserts it with the priorities given (an actor process computes them)."""
    adder = SequenceAdder(None, num_envs=1, burn_in=0, trace_length=2, period=1)
    for step in [Step(10, 1, 1.0), Step(11, 1, 1.0), Step(12, 1, 1.0, terminated=True), final(13)]:
        adder.add(np.array([step.obs], np.float32), np.array([step.action]), np.array([step.reward]),
                  np.array([step.terminated]), np.array([False]), [np.zeros((1, 1), np.float32)])
    chunk = adder.take_chunk()
    assert adder.take_chunk() is None  # taken
    # 4 steps stored once; 3 overlapping sequences (lookback 1 + L 2) refer to them.
    np.testing.assert_array_equal(chunk.steps["observation"], [10, 11, 12, 13])
    np.testing.assert_array_equal(chunk.sequences, [[-1, 0, 1], [0, 1, 2], [1, 2, 3]])
    assert adder.num_emitted == 3
    replay = SequenceReplay(10, seed=0)
    keys = replay.add_chunk(chunk, np.array([2.0, 1.0, 0.5]))
    np.testing.assert_array_equal(keys, [0, 1, 2])
    np.testing.assert_array_equal(replay.priorities(), [2.0, 1.0, 0.5])
    np.testing.assert_array_equal(replay.get(keys)["observation"], [[10, 11], [11, 12], [12, 13]])


def test_reset_drops_partial_episodes():
    adder = Recorder(num_envs=1, burn_in=0, trace_length=2, period=2)
    args = (np.array([1], np.int32), np.array([0.0]), np.array([False]), np.array([False]), [np.zeros((1, 1))])
    adder.add(np.array([10.0]), *args)
    adder.reset()
    assert adder.add(np.array([20.0]), *args) is None  # a new episode: 20 is its step 0
    items = adder.add(np.array([21.0]), *args)
    np.testing.assert_array_equal(items["observation"], [[20.0, 21.0]])
