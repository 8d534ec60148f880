"""NEXT_STEP autoreset bookkeeping: reset steps are not transitions; episode returns."""

from __future__ import annotations

import numpy as np
import pytest

from r2d2_state.autoreset import EpisodeStatistics, NextStepAutoreset


def test_the_step_after_an_episode_end_is_a_reset_step():
    steps = NextStepAutoreset(2)
    # env 0 terminates at call 1, env 1 truncates at call 2; the reset step's flags are False.
    calls = [([False, False], [False, False]), ([True, False], [False, False]),
             ([False, False], [False, True]), ([False, False], [False, False])]
    got = [steps.step(term, trunc) for term, trunc in calls]
    np.testing.assert_array_equal([t for t, _ in got], [[1, 1], [1, 1], [0, 1], [1, 0]])
    np.testing.assert_array_equal([f for _, f in got], [[0, 0], [1, 0], [0, 1], [0, 0]])
    steps.step([True, True], [False, False])
    steps.reset([1])
    transition, _ = steps.step([False, False], [False, False])
    np.testing.assert_array_equal(transition, [False, True])
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        steps.step([True], [False])


def test_episode_statistics_skip_reset_steps():
    stats = EpisodeStatistics(2)
    rewards = [[1.0, 10.0], [2.0, 20.0], [99.0, 30.0], [3.0, 99.0]]
    terminated = [[False, False], [True, False], [False, False], [True, False]]
    truncated = [[False, False], [False, False], [False, True], [False, False]]
    finished = [stats.step_with_envs(r, te, tr) for r, te, tr in zip(rewards, terminated, truncated)]
    # env 0: 1 + 2 (ends at call 1); call 2 is its reset step (99 ignored); 3 ends at call 3.
    # env 1: 10 + 20 + 30 (truncated at call 2); call 3 is its reset step.
    assert [(r, l, e.tolist()) for r, l, e in finished] == [
        ([], [], []), ([3.0], [2], [0]), ([60.0], [3], [1]), ([3.0], [1], [0])]
