"""CartPole with the velocities hidden: observation ``[x, theta]`` only.

The agent must infer the cart and pole velocities from consecutive observations, so a
recurrent agent has an edge over a memoryless one. Dynamics, rewards, termination and the
500-step limit are those of ``CartPole-v1`` (``max_episode_steps`` is set at registration).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.wrappers import TransformObservation

# Indices of cart position and pole angle in CartPole's [x, x_dot, theta, theta_dot].
VISIBLE_INDICES = (0, 2)
_INDEX = np.asarray(VISIBLE_INDICES)


def _visible(obs: np.ndarray) -> np.ndarray:
    # Module level, not a lambda: Gymnasium compares the wrapper's kwargs when it re-makes
    # the env from its spec (env checker, make_vec), and two lambdas never compare equal.
    return np.asarray(obs[_INDEX], dtype=np.float32)


def hide_velocities(env: gym.Env) -> gym.Env:
    """Keep only ``[x, theta]`` of a CartPole observation: <float32>[4] -> <float32>[2]."""
    space = env.observation_space
    if not isinstance(space, spaces.Box) or space.shape != (4,):
        raise ValueError(f"expected CartPole's Box(4,) observation space, got {space!r}")
    visible = spaces.Box(low=space.low[_INDEX], high=space.high[_INDEX], dtype=np.float32)
    return TransformObservation(env, _visible, observation_space=visible)


def make_cartpole_no_velocity(**kwargs: Any) -> gym.Env:
    """Entry point of ``r2d2_state/CartPoleNoVelocity-v1`` (kwargs go to ``CartPoleEnv``)."""
    return hide_velocities(CartPoleEnv(**kwargs))
