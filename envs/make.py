"""``make_env``: any Gymnasium id with Discrete or MultiDiscrete actions, made agent-ready.

One env is composed from the family modules: its id resolved (``envs.ids``), its actions made
``Discrete`` from 0 (``envs.actions``), its observations converted (``envs.observations``),
``ALE/...`` ids preprocessed (``envs.atari``); what was done is recorded as a ``Conversion``
(``envs.record``). Many copies: ``envs.vector.make_vector_env``.

Example:
  >>> import envs
  >>> vec = envs.make_vector_env("r2d2_state/TMaze-v0", num_envs=8, seed=0)
  >>> description = envs.describe_env(vec)
  >>> description.obs_shape, description.num_actions, description.reward_threshold
  ((4,), 3, 0.9)
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym

from envs.actions import check_discrete_actions, check_env_actions, restrict_actions
from envs.atari import is_atari, make_atari
from envs.ids import resolve_env_id
from envs.observations import PackedObservation, convert_observations, space_text
from envs.record import CONVERSION_ATTR, Conversion


def _conversion(original: gym.Env, env: gym.Env, env_actions: Sequence[int] = ()) -> Conversion:
    obs_before, obs_after = original.observation_space, env.observation_space
    act_before, act_after = original.action_space, env.action_space
    action = space_text(act_before) + ("" if act_before == act_after else f" -> {space_text(act_after)}")
    if env_actions:
        action += f" (env actions {list(env_actions)})"
    if isinstance(env, PackedObservation):
        return Conversion(observation=env.description, image_shape=env.image_shape, action=action, notes=env.notes)
    observation = space_text(obs_before) + ("" if obs_before == obs_after else f" -> {space_text(obs_after)}")
    return Conversion(observation=observation, action=action)


def make_env(env_id: str, *, env_packages: Sequence[str] = (), env_actions: Sequence[int] = (),
             **kwargs: Any) -> gym.Env:
    """``gymnasium.make(env_id, **kwargs)`` with actions made ``Discrete`` from 0 and
    observations converted (``envs.observations``). ``ALE/...`` ids get the standard Atari
    preprocessing (``frame_stack`` kwarg, default 4), observations uint8
    ``[frame_stack, 84, 84]`` (channels first).

    Args:
      env_id: a registered id, or ``module:EnvId`` (``module`` is imported first).
      env_packages: packages to import first (they register ids on import).
      env_actions: keep only these actions (indices into the Discrete or flattened
        MultiDiscrete space), in this order; ``()``: all.
      **kwargs: passed to ``gymnasium.make``.

    Raises:
      EnvIdError: unknown id or missing package (a ``ValueError``).
      ValueError: the action space is not Discrete / MultiDiscrete, the observation space
        is unsupported, or ``env_actions`` are not distinct actions of that space.
      ImportError: an ``ALE/...`` id without ale-py installed (``pip install -e .[atari]``).
    """
    env_actions = check_env_actions(env_actions, env_id=env_id)
    name = resolve_env_id(env_id, env_packages)
    if is_atari(name):
        return make_atari(name, env_actions, **kwargs)
    original = gym.make(name, **kwargs)
    try:
        env = check_discrete_actions(original, name)
        env = restrict_actions(env, env_actions, name)
        env = convert_observations(env, name)
    except ValueError:
        original.close()
        raise
    setattr(env, CONVERSION_ATTR, _conversion(original, env, env_actions))
    return env

