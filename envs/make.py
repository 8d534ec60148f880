"""``make_env`` / ``make_vector_env``: any Gymnasium id with Discrete actions, made agent-ready.

Observations are converted once, at the env, so the network sees one of two things:

=================================  ==========================================================
observation space                  what the agent gets
=================================  ==========================================================
Box uint8, HxWxC or HxW            uint8 image HxWxC (HxW gets a channel axis of 1)
Box (anything else)                float32 vector (flattened)
Discrete                           float32 one-hot
MultiDiscrete / MultiBinary        float32 concatenated one-hots / bits
Dict / Tuple of the above vectors  float32 vector: each part converted, then concatenated
``ALE/...`` ids                    uint8 84x84x4 (AtariPreprocessing + 4-frame stack)
=================================  ==========================================================

Everything is done with Gymnasium's own wrappers (``FlattenObservation``,
``DtypeObservation``, ``ReshapeObservation``, ``AtariPreprocessing``,
``FrameStackObservation``, ``TransformObservation``).

Example:
  >>> import envs
  >>> vec = envs.make_vector_env("r2d2_state/TMaze-v0", num_envs=8, seed=0)
  >>> description = envs.describe_env(vec)
  >>> description.obs_shape, description.num_actions, description.reward_threshold
  ((4,), 3, 0.9)
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.wrappers import (
    AtariPreprocessing,
    DtypeObservation,
    FlattenObservation,
    FrameStackObservation,
    ReshapeObservation,
    TransformAction,
    TransformObservation,
)

Vectorization = Literal["auto", "sync", "native"]


@dataclasses.dataclass(frozen=True)
class EnvDescription:
    """What a network builder needs to know about an (agent-ready) environment."""

    obs_shape: tuple[int, ...]
    """Shape of one observation: (F,) for vectors, (H, W, C) for images."""
    obs_dtype: np.dtype
    """float32 for vectors, uint8 for images."""
    is_image: bool
    """True for uint8 HxWxC observations (use a conv torso)."""
    num_actions: int
    """Size of the Discrete action space (actions are 0 .. num_actions - 1)."""
    reward_threshold: float | None
    """Mean episode return at which the task counts as solved (from the env spec), if any."""
    max_episode_steps: int | None
    """Time limit from the env spec (None if the env truncates by itself or never)."""
    env_id: str | None
    """Registered id, if the env was made from one."""


def _is_image_space(space: spaces.Space) -> bool:
    return (
        isinstance(space, spaces.Box)
        and space.dtype == np.uint8
        and (len(space.shape) == 2 or (len(space.shape) == 3 and 1 <= space.shape[-1] <= 16))
    )


def _env_name(env: gym.Env) -> str:
    return env.spec.id if env.spec is not None else type(env.unwrapped).__name__


def check_discrete_actions(env: gym.Env, env_id: str | None = None) -> gym.Env:
    """Refuse non-Discrete action spaces; shift ``Discrete(n, start=s)`` to start at 0.

    Raises:
      ValueError: naming the env and its action space, e.g. for ``Pendulum-v1``'s Box.
    """
    name = env_id or _env_name(env)
    space = env.action_space
    if not isinstance(space, spaces.Discrete):
        raise ValueError(
            f"{name!r} has action space {space!r}; r2d2_state agents need a Discrete action "
            "space (Q-learning picks argmax over a finite set of actions)"
        )
    start = int(space.start)
    if start != 0:
        # The Q-network indexes actions 0 .. n-1; translate back to the env's range.
        env = TransformAction(
            env, lambda action: start + int(action), action_space=spaces.Discrete(int(space.n))
        )
    return env


def convert_observations(env: gym.Env, env_id: str | None = None) -> gym.Env:
    """Wrap ``env`` so observations are a float32 vector or a uint8 HxWxC image (table above).

    Raises:
      ValueError: for spaces without a fixed-size conversion (Text, Graph, Sequence, ...)
        and for Dict / Tuple spaces that contain an image part.
    """
    name = env_id or _env_name(env)
    space = env.observation_space
    if _is_image_space(space):
        if len(space.shape) == 2:
            env = ReshapeObservation(env, (*space.shape, 1))
        return env
    if isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) >= 3:
        # Flattening a frame stack into a float vector is never what was meant.
        raise ValueError(
            f"{name!r} has uint8 observations of shape {space.shape}, expected an HxWxC image "
            "with at most 16 channels last (channels-first stacks need a transpose)"
        )
    leaves = _leaf_spaces(space)
    unsupported = [leaf for leaf in leaves if not isinstance(leaf, _VECTOR_LEAF_SPACES)]
    if unsupported:
        raise ValueError(
            f"{name!r} has observation space {space!r}, whose part {unsupported[0]!r} has no "
            "fixed-size vector form; supported: Box, Discrete, MultiDiscrete, MultiBinary, "
            "and Dict / Tuple of these"
        )
    if isinstance(space, (spaces.Dict, spaces.Tuple)) and any(map(_is_image_space, leaves)):
        raise ValueError(
            f"{name!r} has an observation space mixing image and vector parts ({space!r}); "
            "only all-vector Dict/Tuple spaces are supported (the network takes one input): "
            "pick the parts with gymnasium.wrappers.FilterObservation"
        )
    if isinstance(space, spaces.Box) and space.dtype == np.float32 and len(space.shape) == 1:
        return env  # already what the agent wants; spare a wrapper per step
    flat = spaces.flatten_space(space)
    if space != flat:
        env = FlattenObservation(env)
    return DtypeObservation(env, np.float32)


_VECTOR_LEAF_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


def _leaf_spaces(space: spaces.Space) -> list[spaces.Space]:
    if isinstance(space, spaces.Dict):
        return [leaf for sub in space.spaces.values() for leaf in _leaf_spaces(sub)]
    if isinstance(space, spaces.Tuple):
        return [leaf for sub in space.spaces for leaf in _leaf_spaces(sub)]
    return [space]


def _channels_last(obs: np.ndarray) -> np.ndarray:
    # Contiguous, so batching and replay copies read memory in order.
    return np.ascontiguousarray(np.moveaxis(obs, 0, -1))


def _make_atari(env_id: str, frame_stack: int = 4, **kwargs: Any) -> gym.Env:
    missing = [m for m in ("ale_py", "cv2") if importlib.util.find_spec(m) is None]
    if missing:
        # cv2 (opencv) is what AtariPreprocessing resizes frames with.
        raise ImportError(
            f"{env_id!r} is an Atari (ALE) environment and needs {' and '.join(missing)}, "
            "not installed: pip install -e .[atari]"
        )
    import ale_py

    gym.register_envs(ale_py)
    # AtariPreprocessing does the frame skipping (with max-pooling), so ALE must not.
    kwargs.setdefault("frameskip", 1)
    env = gym.make(env_id, **kwargs)
    env = check_discrete_actions(env, env_id)
    env = AtariPreprocessing(
        env, noop_max=30, frame_skip=4, screen_size=84, grayscale_obs=True, scale_obs=False
    )
    env = FrameStackObservation(env, stack_size=frame_stack)
    # FrameStackObservation stacks on axis 0; Keras convolutions want channels last.
    stacked = env.observation_space
    hwc = spaces.Box(
        low=np.moveaxis(stacked.low, 0, -1), high=np.moveaxis(stacked.high, 0, -1), dtype=np.uint8
    )
    return TransformObservation(env, _channels_last, observation_space=hwc)


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gymnasium.make(env_id, **kwargs)`` with Discrete actions checked and observations
    converted (module docstring). ``ALE/...`` ids get the standard Atari preprocessing
    (``frame_stack`` kwarg, default 4).

    Raises:
      ValueError: the action space is not Discrete, or the observation space is unsupported.
      ImportError: an ``ALE/...`` id without ale-py installed (``pip install -e .[atari]``).
    """
    if env_id.startswith("ALE/"):
        return _make_atari(env_id, **kwargs)
    env = gym.make(env_id, **kwargs)
    try:
        env = check_discrete_actions(env, env_id)
        return convert_observations(env, env_id)
    except ValueError:
        env.close()
        raise


def _has_native_vector_env(env_id: str) -> bool:
    if env_id.startswith("ALE/"):
        return False
    return gym.spec(env_id).vector_entry_point is not None


def _check_discrete_actions_vector(vec: VectorEnv, env_id: str) -> None:
    space = vec.single_action_space
    if not isinstance(space, spaces.Discrete) or int(space.start) != 0:
        raise ValueError(
            f"{env_id!r} native vector env has action space {space!r}; need Discrete(n) from 0"
        )


def make_vector_env(
    env_id: str,
    num_envs: int,
    seed: int | None = None,
    *,
    autoreset_mode: AutoresetMode = AutoresetMode.NEXT_STEP,
    vectorization: Vectorization = "auto",
    **kwargs: Any,
) -> VectorEnv:
    """``num_envs`` copies of ``make_env(env_id, **kwargs)`` stepped in one process.

    Args:
      env_id: registered Gymnasium id.
      num_envs: number of sub-environments (the actor's batch size).
      seed: if given, seeds the action space and the sub-environments as
        ``reset(seed=seed)`` does (sub-env i gets ``seed + i``); a later ``reset()``
        without a seed continues deterministically from there.
      autoreset_mode: Gymnasium's autoreset mode; the agents assume NEXT_STEP.
      vectorization: ``"sync"`` = ``gymnasium.vector.SyncVectorEnv``; ``"native"`` = the
        env's own batched implementation (its spec's ``vector_entry_point``, e.g. the
        numpy T-maze), same stream as sync; ``"auto"`` = native when available and the
        autoreset mode is NEXT_STEP, else sync.
      **kwargs: passed to every sub-environment.

    Raises:
      ValueError: as :func:`make_env` (raised while building the first sub-env, before any
        training starts), or ``vectorization="native"`` for an env without one.
    """
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
    autoreset_mode = AutoresetMode(autoreset_mode)
    if vectorization not in ("auto", "sync", "native"):
        raise ValueError(f"vectorization must be 'auto', 'sync' or 'native', got {vectorization!r}")
    native_ok = _has_native_vector_env(env_id)
    if vectorization == "native" and not native_ok:
        raise ValueError(f"{env_id!r} has no native vector env (no vector_entry_point in its spec)")
    use_native = native_ok and (
        vectorization == "native"
        or (vectorization == "auto" and autoreset_mode == AutoresetMode.NEXT_STEP)
    )

    if use_native:
        vec = gym.make_vec(
            env_id,
            num_envs=num_envs,
            vectorization_mode="vector_entry_point",
            autoreset_mode=autoreset_mode,
            **kwargs,
        )
        _check_discrete_actions_vector(vec, env_id)
    else:
        vec = gym.vector.SyncVectorEnv(
            [functools.partial(make_env, env_id, **kwargs) for _ in range(num_envs)],
            autoreset_mode=autoreset_mode,
        )
        vec.spec = vec.envs[0].spec  # describe_env reads reward_threshold from here
    if seed is not None:
        vec.reset(seed=seed)
        vec.action_space.seed(seed)
        vec.single_action_space.seed(seed)
    return vec


def describe_env(env: gym.Env | VectorEnv) -> EnvDescription:
    """Observation / action facts of an env made by :func:`make_env` or :func:`make_vector_env`.

    Raises:
      ValueError: the env has not been made agent-ready (non-Discrete actions, or an
        observation that is neither a float32 vector nor a uint8 HxWxC image).
    """
    if isinstance(env, VectorEnv):
        obs_space, act_space = env.single_observation_space, env.single_action_space
    else:
        obs_space, act_space = env.observation_space, env.action_space
    spec = env.spec
    name = spec.id if spec is not None else type(env).__name__
    if not isinstance(act_space, spaces.Discrete):
        raise ValueError(f"{name!r} has action space {act_space!r}, expected Discrete")
    is_image = _is_image_space(obs_space) and len(obs_space.shape) == 3
    is_vector = (
        isinstance(obs_space, spaces.Box)
        and obs_space.dtype == np.float32
        and len(obs_space.shape) == 1
    )
    if not (is_image or is_vector):
        raise ValueError(
            f"{name!r} has observation space {obs_space!r}, expected a float32 vector or a "
            "uint8 HxWxC image: create it with envs.make_env / envs.make_vector_env"
        )
    return EnvDescription(
        obs_shape=tuple(int(d) for d in obs_space.shape),
        obs_dtype=np.dtype(obs_space.dtype),
        is_image=is_image,
        num_actions=int(act_space.n),
        reward_threshold=None if spec is None else spec.reward_threshold,
        max_episode_steps=None if spec is None else spec.max_episode_steps,
        env_id=None if spec is None else spec.id,
    )
