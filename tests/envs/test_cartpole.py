"""CartPole with hidden velocities."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs


# The checker prefers env.unwrapped, but here the wrapper *is* the environment under test.
@pytest.mark.filterwarnings("ignore:.*is different from the unwrapped version")
def test_registered_and_passes_env_checker():
    env = gym.make(envs.CARTPOLE_NO_VELOCITY_ID)
    assert env.spec.reward_threshold == 475.0 and env.spec.max_episode_steps == 500
    # CartPole's own rendering needs pygame, which the project does not depend on.
    check_env(env, skip_render_check=True)


def test_observation_is_position_and_angle_of_cartpole_v1():
    hidden = gym.make(envs.CARTPOLE_NO_VELOCITY_ID)
    full = gym.make("CartPole-v1")
    obs, _ = hidden.reset(seed=4)
    full_obs, _ = full.reset(seed=4)
    for _ in range(20):
        assert obs.shape == (2,) and obs.dtype == np.float32
        np.testing.assert_array_equal(obs, full_obs[[0, 2]])
        obs, reward, terminated, _, _ = hidden.step(1)
        full_obs, full_reward, full_terminated, _, _ = full.step(1)
        assert (reward, terminated) == (full_reward, full_terminated)
        if terminated:
            break
    assert hidden.observation_space.shape == (2,)
