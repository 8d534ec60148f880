"""Actions made ``Discrete(n)`` from 0: ``Discrete(n, start=s)`` is shifted to start at 0;
``MultiDiscrete(nvec)`` becomes one ``Discrete(prod(nvec))`` (the agent, the adder and the replay
see the flat index; the env receives the tuple, ``np.unravel_index(a, nvec)``).
``env_actions=(a_0, ..., a_k)`` keeps only those actions of that space, in that order (the
agent's action i is the env's ``a_i``; e.g. MiniGrid's navigation actions ``(0, 1, 2)`` of its 7)."""

from __future__ import annotations

import math
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import TransformAction

MAX_FLAT_ACTIONS = 4096
"""Largest product of a MultiDiscrete action space's sizes (one Q-value per flat action)."""


def env_name(env: gym.Env) -> str:
    """The env's id for messages (its class name if it has no spec)."""
    return env.spec.id if env.spec is not None else type(env.unwrapped).__name__


def check_discrete_actions(env: gym.Env, env_id: str | None = None) -> gym.Env:
    """Make the action space ``Discrete(n)`` from 0: shift ``Discrete(n, start=s)``, flatten
    ``MultiDiscrete(nvec)`` to ``Discrete(prod(nvec))`` (the env receives the tuple).

    Raises:
      ValueError: naming the env and its action space, e.g. for ``Pendulum-v1``'s Box, or a
        MultiDiscrete with more than ``MAX_FLAT_ACTIONS`` combinations.
    """
    name = env_id or env_name(env)
    space = env.action_space
    if isinstance(space, spaces.MultiDiscrete):
        nvec = tuple(int(n) for n in np.asarray(space.nvec).reshape(-1))
        total = math.prod(nvec)
        if total > MAX_FLAT_ACTIONS:
            raise ValueError(
                f"{name!r} has action space {space!r}: {total} combined actions, more than "
                f"{MAX_FLAT_ACTIONS} (one Q-value per combination); r2d2_state agents need a "
                "Discrete action space or a small MultiDiscrete one"
            )
        shape = np.asarray(space.nvec).shape
        start = np.asarray(space.start, dtype=space.dtype).reshape(shape)

        def unflatten(action: Any) -> np.ndarray:
            index = np.unravel_index(int(action), nvec)
            return (np.asarray(index, dtype=space.dtype).reshape(shape) + start).astype(space.dtype)

        return TransformAction(env, unflatten, action_space=spaces.Discrete(total))
    if not isinstance(space, spaces.Discrete):
        raise ValueError(
            f"{name!r} has action space {space!r}; r2d2_state agents need a Discrete (or "
            "MultiDiscrete) action space (Q-learning picks argmax over a finite set of actions)"
        )
    start = int(space.start)
    if start != 0:
        # The Q-network indexes actions 0 .. n-1; translate back to the env's range.
        env = TransformAction(
            env, lambda action: start + int(action), action_space=spaces.Discrete(int(space.n))
        )
    return env


def check_env_actions(env_actions: Any, num_actions: int | None = None, env_id: str | None = None) -> tuple[int, ...]:
    """``env_actions`` as a tuple of ints: distinct, >= 0 and (given ``num_actions``) below it.

    Raises:
      ValueError: naming the value and what was expected.
    """
    values = tuple(env_actions) if isinstance(env_actions, (list, tuple)) else None
    where = f" for {env_id!r}" if env_id else ""
    limit = f" 0 .. {num_actions - 1}" if num_actions is not None else " >= 0"
    if (values is None or not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in values)
            or len(set(int(a) for a in values)) != len(values)
            or any(int(a) < 0 or (num_actions is not None and int(a) >= num_actions) for a in values)):
        space = f" (its action space has {num_actions} actions)" if num_actions is not None else ""
        raise ValueError(f"env_actions{where} must be distinct ints in{limit}{space}, got {env_actions!r}")
    return tuple(int(a) for a in values)


def restrict_actions(env: gym.Env, env_actions: Sequence[int], env_id: str | None = None) -> gym.Env:
    """Keep only ``env_actions`` of a ``Discrete(n)`` env (from 0): the agent's action i is the
    env's ``env_actions[i]``. ``()`` returns ``env`` as it is.

    Raises:
      ValueError: ``env_actions`` not distinct ints in ``0 .. n - 1``.
    """
    if not env_actions:
        return env
    chosen = check_env_actions(env_actions, int(env.action_space.n), env_id or env_name(env))
    table = np.asarray(chosen, dtype=np.int64)
    return TransformAction(env, lambda action: int(table[int(action)]), action_space=spaces.Discrete(len(chosen)))

