"""Memory environments and ``make_env`` for r2d2_state.

Importing this package registers (namespace ``r2d2_state``):

- ``r2d2_state/TMaze-v0``: cue-recall T-maze (``envs.tmaze``), reward_threshold 0.9;
  a memoryless agent's mean return is at most 0.0. Batched numpy ``vector_entry_point``.
- ``r2d2_state/CartPoleNoVelocity-v1``: CartPole-v1 observing ``[x, theta]`` only
  (``envs.cartpole``), reward_threshold 475, 500-step limit.
"""

from __future__ import annotations

import gymnasium as gym

from envs.cartpole import hide_velocities, make_cartpole_no_velocity
from envs.actions import check_discrete_actions, check_env_actions, restrict_actions
from envs.ids import EnvIdError, import_env_packages, resolve_env_id
from envs.make import make_env
from envs.observations import PackedObservation, convert_observations
from envs.record import Conversion, EnvDescription, check_env_record, describe_env, env_record
from envs.tmaze import TMazeEnv
from envs.tmaze_vector import TMazeVectorEnv
from envs.vector import make_vector_env

NAMESPACE = "r2d2_state"
TMAZE_ID = f"{NAMESPACE}/TMaze-v0"
CARTPOLE_NO_VELOCITY_ID = f"{NAMESPACE}/CartPoleNoVelocity-v1"

__all__ = [
    "CARTPOLE_NO_VELOCITY_ID",
    "Conversion",
    "EnvIdError",
    "PackedObservation",
    "check_env_record",
    "env_record",
    "import_env_packages",
    "resolve_env_id",
    "TMAZE_ID",
    "EnvDescription",
    "TMazeEnv",
    "TMazeVectorEnv",
    "check_discrete_actions",
    "check_env_actions",
    "convert_observations",
    "describe_env",
    "hide_velocities",
    "make_cartpole_no_velocity",
    "make_env",
    "make_vector_env",
    "restrict_actions",
]


def _register() -> None:
    # Idempotent: importlib.reload(envs) or a second import path must not warn about
    # re-registration.
    if TMAZE_ID not in gym.registry:
        gym.register(
            id=TMAZE_ID,
            entry_point="envs.tmaze:TMazeEnv",
            vector_entry_point="envs.tmaze_vector:TMazeVectorEnv",
            # Correct 95% of the time with the default +1/-1 rewards and no step penalty,
            # whatever corridor_length; chance (memoryless) is 0.0.
            reward_threshold=0.9,
            # The env truncates itself: its limit scales with corridor_length.
            max_episode_steps=None,
        )
    if CARTPOLE_NO_VELOCITY_ID not in gym.registry:
        gym.register(
            id=CARTPOLE_NO_VELOCITY_ID,
            entry_point="envs.cartpole:make_cartpole_no_velocity",
            reward_threshold=475.0,  # as CartPole-v1
            max_episode_steps=500,
        )


_register()
