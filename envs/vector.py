"""``make_vector_env``: ``num_envs`` agent-ready envs stepped in one process.

Vectorization keeps what the adder sees independent of the env's vector implementation: a
native vector env (its spec's ``vector_entry_point``) is used only if it takes the given
kwargs, runs the requested autoreset mode, and has the same spaces as ``make_env``; otherwise
``SyncVectorEnv`` over ``make_env``.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Literal, Sequence

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator
from gymnasium.vector import AutoresetMode, VectorEnv

from envs.actions import check_env_actions
from envs.atari import is_atari
from envs.ids import resolve_env_id
from envs.make import make_env
from envs.record import CONVERSION_ATTR

Vectorization = Literal["auto", "sync", "native"]


def _native_vector_env(
    name: str, num_envs: int, autoreset_mode: AutoresetMode, kwargs: dict[str, Any],
    reference: gym.Env,
) -> tuple[VectorEnv | None, str]:
    """The env's own vector env if it gives the adder what SyncVectorEnv over ``make_env``
    would, else (None, why not)."""
    spec = gym.spec(name)  # the caller checked it has a vector_entry_point
    try:
        creator = (load_env_creator(spec.vector_entry_point)
                   if isinstance(spec.vector_entry_point, str) else spec.vector_entry_point)
    except Exception as error:  # noqa: BLE001 - e.g. a JAX env without jax: use sync
        return None, f"its vector entry point does not load ({type(error).__name__}: {error})"
    try:
        params = inspect.signature(creator).parameters
    except (TypeError, ValueError):
        return None, "its vector entry point's signature cannot be inspected"
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    passed = {**spec.kwargs, **kwargs}
    if spec.max_episode_steps is not None:
        passed.setdefault("max_episode_steps", spec.max_episode_steps)
    not_taken = sorted(k for k in passed if k not in params) if not var_kw else []
    if not_taken:
        return None, f"its vector env does not take {not_taken}"
    extra: dict[str, Any] = {}
    declared = getattr(creator, "metadata", {}).get("autoreset_mode")
    if "autoreset_mode" in params:  # not through **kwargs: they may end in a constructor without it
        extra["autoreset_mode"] = autoreset_mode
    elif declared is None or AutoresetMode(declared) != autoreset_mode:
        return None, f"its vector env runs autoreset mode {declared!r}, not {autoreset_mode.value!r}"
    vec = gym.make_vec(name, num_envs=num_envs, vectorization_mode="vector_entry_point",
                       **kwargs, **extra)
    mode = vec.metadata.get("autoreset_mode", declared)
    why = ""
    if mode is None or AutoresetMode(mode) != autoreset_mode:
        why = f"its vector env runs autoreset mode {mode!r}, not {autoreset_mode.value!r}"
    elif (vec.single_observation_space != reference.observation_space
          or vec.single_action_space != reference.action_space):
        why = (f"its vector env's spaces ({vec.single_observation_space}, {vec.single_action_space}) "
               f"differ from make_env's ({reference.observation_space}, {reference.action_space})")
    if why:
        vec.close()
        return None, why
    return vec, ""


def make_vector_env(
    env_id: str,
    num_envs: int,
    seed: int | None = None,
    *,
    autoreset_mode: AutoresetMode = AutoresetMode.NEXT_STEP,
    vectorization: Vectorization = "auto",
    env_packages: Sequence[str] = (),
    env_actions: Sequence[int] = (),
    **kwargs: Any,
) -> VectorEnv:
    """``num_envs`` copies of ``make_env(env_id, **kwargs)`` stepped in one process.

    Args:
      env_id: registered Gymnasium id, or ``module:EnvId``.
      num_envs: number of sub-environments (the actor's batch size).
      seed: if given, seeds the action space and the sub-environments as
        ``reset(seed=seed)`` does (sub-env i gets ``seed + i``); a later ``reset()``
        without a seed continues deterministically from there.
      autoreset_mode: Gymnasium's autoreset mode; the agents assume NEXT_STEP.
      vectorization: ``"sync"`` = ``gymnasium.vector.SyncVectorEnv``; ``"native"`` = the
        env's own batched implementation (its spec's ``vector_entry_point``, e.g. the
        numpy T-maze or Gymnasium's CartPole), same stream as sync; ``"auto"`` = native when
        it gives the same spaces and autoreset mode as sync, else sync.
      env_packages: packages to import first (they register ids on import).
      env_actions: as :func:`make_env` (then sync vectorization: a native vector env steps
        the env's own actions).
      **kwargs: passed to every sub-environment.

    Raises:
      ValueError: as :func:`make_env` (raised while building the first sub-env, before any
        training starts), or ``vectorization="native"`` where the native vector env cannot
        stand in for sync (the message says why).
    """
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
    autoreset_mode = AutoresetMode(autoreset_mode)
    if vectorization not in ("auto", "sync", "native"):
        raise ValueError(f"vectorization must be 'auto', 'sync' or 'native', got {vectorization!r}")
    env_packages = tuple(env_packages)
    env_actions = check_env_actions(env_actions, env_id=env_id)
    name = resolve_env_id(env_id, env_packages)
    make_one = functools.partial(make_env, name, env_actions=env_actions, **kwargs)
    vec = None
    has_native = not is_atari(name) and gym.spec(name).vector_entry_point is not None
    if vectorization == "native" and not has_native:
        raise ValueError(f"{env_id!r} has no native vector env (no vector_entry_point in its spec)")
    if vectorization == "native" and env_actions:
        raise ValueError(f"{env_id!r}: env_actions {list(env_actions)} need sync vectorization (a native "
                         "vector env steps the env's own actions)")
    has_native = has_native and not env_actions
    # auto: the agents assume NEXT_STEP; other modes are for tests and tools, via sync.
    if has_native and (vectorization == "native" or (vectorization == "auto" and autoreset_mode == AutoresetMode.NEXT_STEP)):
        reference = make_one()  # also checks the spaces before anything is built
        try:
            vec, why = _native_vector_env(name, num_envs, autoreset_mode, kwargs, reference)
            conversion = getattr(reference, CONVERSION_ATTR)
        finally:
            reference.close()
        if vec is None and vectorization == "native":
            raise ValueError(f"{env_id!r} has no usable native vector env: {why}")
    if vec is not None:
        setattr(vec, CONVERSION_ATTR, conversion)
    else:
        vec = gym.vector.SyncVectorEnv([make_one for _ in range(num_envs)], autoreset_mode=autoreset_mode)
        vec.spec = vec.envs[0].spec  # describe_env reads reward_threshold from here
        setattr(vec, CONVERSION_ATTR, vec.envs[0].get_wrapper_attr(CONVERSION_ATTR))
    if seed is not None:
        vec.reset(seed=seed)
        vec.action_space.seed(seed)
        vec.single_action_space.seed(seed)
    return vec
