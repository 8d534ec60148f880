"""T-maze: checker, hand-played episodes, optimal vs memoryless returns."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.tmaze import FORWARD, LEFT, RIGHT, TMazeEnv


def test_registered_and_passes_env_checker():
    env = gym.make(envs.TMAZE_ID, corridor_length=3)
    assert env.spec.reward_threshold == 0.9
    check_env(env.unwrapped)


def test_hand_played_episode():
    env = TMazeEnv(corridor_length=2)
    obs, info = env.reset(seed=3)
    cue = env.cue
    expected_first = [1.0, 0.0, 0.0, 0.0] if cue == 0 else [0.0, 1.0, 0.0, 0.0]
    np.testing.assert_array_equal(obs, expected_first)
    assert obs.dtype == np.float32 and info == {}

    # A wall bump in the corridor: no move, and the cue is gone for good.
    obs, reward, terminated, truncated, _ = env.step(LEFT)
    np.testing.assert_array_equal(obs, [0.0, 0.0, 0.0, 0.0])
    assert (reward, terminated, truncated) == (0.0, False, False)
    obs, *_ = env.step(FORWARD)
    np.testing.assert_array_equal(obs, [0.0, 0.0, 0.0, 0.5])
    obs, *_ = env.step(FORWARD)
    np.testing.assert_array_equal(obs, [0.0, 0.0, 1.0, 1.0])
    obs, reward, terminated, truncated, _ = env.step(FORWARD)  # no-op at the junction
    np.testing.assert_array_equal(obs, [0.0, 0.0, 1.0, 1.0])
    assert (reward, terminated) == (0.0, False)

    wrong = RIGHT if cue == 0 else LEFT
    _, reward, terminated, truncated, _ = env.step(wrong)
    assert (reward, terminated, truncated) == (-1.0, True, False)


def test_truncation_after_max_steps():
    env = TMazeEnv(corridor_length=2, max_steps=5, step_penalty=0.1)
    env.reset(seed=0)
    results = [env.step(LEFT)[1:4] for _ in range(5)]
    assert [r[2] for r in results] == [False] * 4 + [True]  # truncated only at step 5
    assert all(r[1] is False for r in results)
    assert results[0][0] == pytest.approx(-0.1)


def test_default_time_limit_and_argument_checks():
    assert TMazeEnv(corridor_length=10).max_steps == 44
    with pytest.raises(ValueError, match="corridor_length must be >= 1, got 0"):
        TMazeEnv(corridor_length=0)
    with pytest.raises(ValueError, match="max_steps"):
        TMazeEnv(corridor_length=5, max_steps=5)
    with pytest.raises(ValueError, match="correct_reward"):
        TMazeEnv(wrong_reward=1.0)
    with pytest.raises(ValueError, match="action must be in"):
        env = TMazeEnv()
        env.reset(seed=0)
        env.step(3)


@pytest.mark.parametrize("corridor_length", [1, 7])
def test_optimal_policy_gets_max_return(corridor_length):
    env = TMazeEnv(corridor_length=corridor_length)
    for episode in range(50):
        obs, _ = env.reset(seed=episode)
        remembered_cue = int(np.argmax(obs[:2]))  # what a recurrent agent would keep
        ret, steps, done = 0.0, 0, False
        while not done:
            action = FORWARD if obs[2] == 0.0 else LEFT + remembered_cue
            obs, reward, terminated, truncated, _ = env.step(action)
            ret, steps, done = ret + reward, steps + 1, terminated or truncated
        assert (ret, steps, terminated) == (1.0, corridor_length + 1, True)


def _memoryless_returns(policy, episodes: int, seed: int) -> np.ndarray:
    """Mean-return sample of a policy that sees only the current observation."""
    vec = envs.TMazeVectorEnv(num_envs=64, corridor_length=5)
    rng = np.random.default_rng(seed)
    obs, _ = vec.reset(seed=seed)
    returns, running = [], np.zeros(64)
    while len(returns) < episodes:
        obs, reward, terminated, truncated, _ = vec.step(policy(obs, rng))
        running += reward
        for i in np.flatnonzero(terminated | truncated):
            returns.append(running[i])
            running[i] = 0.0
    return np.asarray(returns[:episodes])


def _reactive(obs, rng):
    # Best a memoryless agent can do: walk, and at the junction pick a side. Even using the
    # cue when visible (step 0) is useless: at step 0 the agent is not at the junction.
    at_junction = obs[:, 2] == 1.0
    side = np.where(obs[:, 1] == 1.0, RIGHT, LEFT)
    return np.where(at_junction, side, FORWARD)


def _random_at_junction(obs, rng):
    return np.where(obs[:, 2] == 1.0, rng.integers(LEFT, RIGHT + 1, len(obs)), FORWARD)


@pytest.mark.parametrize("policy", [_reactive, _random_at_junction])
def test_memoryless_policy_is_at_chance(policy):
    returns = _memoryless_returns(policy, episodes=4000, seed=1)
    # Chance: mean 0.0, std 1 per episode -> standard error 0.016; 0.06 is ~4 sigma.
    assert abs(returns.mean()) < 0.06
    assert set(np.unique(returns)) == {-1.0, 1.0}
    assert returns.mean() < 0.9  # far from the solve threshold


def test_rgb_array_render_shows_cue_agent_and_turn():
    import gymnasium as gym

    import envs  # noqa: F401  (registers the ids)

    env = gym.make("r2d2_state/TMaze-v0", corridor_length=3, render_mode="rgb_array")
    env.reset(seed=0)
    cue = env.unwrapped.cue
    frame = env.render()
    cell = 12
    assert frame.shape == (3 * cell, 4 * cell, 3) and frame.dtype == np.uint8
    agent = np.array([0, 110, 220], np.uint8)
    assert (frame[cell + cell // 2, cell // 2] == agent).all()  # the agent at the start cell
    for _ in range(3):
        env.step(0)
    assert (env.render()[cell + cell // 2, 3 * cell + cell // 2] == agent).all()  # at the junction
    env.step(1 + cue)  # turn to the cued side: the agent is drawn in that arm
    arm_row = 0 if cue == 0 else 2
    assert (env.render()[arm_row * cell + cell // 2, 3 * cell + cell // 2] == agent).all()
    from envs.tmaze import TMazeEnv

    with pytest.raises(ValueError, match="render_mode must be None or one of"):
        TMazeEnv(render_mode="human")
