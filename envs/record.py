"""What an agent-ready env is: the :class:`Conversion` ``make_env`` applied, the
:class:`EnvDescription` a network builder reads (``describe_env``), and the record a run
directory keeps of both (``RUN_DIR/env.json``: ``env_record`` / ``check_env_record``)."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import math
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import VectorEnv
from gymnasium.wrappers import FrameStackObservation

from envs.observations import is_image_space

CONVERSION_ATTR = "r2d2_conversion"
"""The attribute of a made env (its outermost wrapper, or the vector env) holding its Conversion."""


@dataclasses.dataclass(frozen=True)
class Conversion:
    """How :func:`make_env` turned the env's spaces into what the agent sees (run dirs record it)."""

    observation: str
    """The original observation space and what it became, in words."""
    image_shape: tuple[int, ...] | None = None
    """HxWxC of the image part of a flat Dict/Tuple observation (it comes first), else None."""
    action: str = "Discrete"
    """The original action space and what it became."""
    notes: tuple[str, ...] = ()
    """What was dropped or changed (e.g. a constant Text part)."""
    channels_first: bool = False
    """The observation is a CxHxW uint8 image (a frame stack, stack axis first: ``ALE/...`` ids)."""

    def to_dict(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        if not self.channels_first:
            # Keeps the env.json of other envs as it was, so their older run dirs still resume.
            del record["channels_first"]
        return record


@dataclasses.dataclass(frozen=True)
class EnvDescription:
    """What a network builder needs to know about an (agent-ready) environment."""

    obs_shape: tuple[int, ...]
    """Shape of one observation: (F,) for vectors, (H, W, C) for images, (C, H, W) for
    channels-first frame stacks (``channels_first``)."""
    obs_dtype: np.dtype
    """float32 for vectors, uint8 for images (and uint8 flat Dict observations with an image)."""
    is_image: bool
    """True for uint8 HxWxC (or, ``channels_first``, CxHxW) observations (use a conv torso)."""
    num_actions: int
    """Size of the Discrete action space (actions are 0 .. num_actions - 1)."""
    reward_threshold: float | None
    """Mean episode return at which the task counts as solved (from the env spec), if any."""
    max_episode_steps: int | None
    """Time limit from the env spec (None if the env truncates by itself or never)."""
    env_id: str | None
    """Registered id, if the env was made from one."""
    image_shape: tuple[int, ...] | None = None
    """Flat observations with an image part (Dict/Tuple): HxWxC of the first prod(HxWxC) entries."""
    conversion: Conversion | None = None
    """What :func:`make_env` did to the spaces (None for an env it did not make)."""
    frame_stack: tuple[int, str] | None = None
    """(k, padding): each observation stacks the last k frames along its first axis with
    Gymnasium's ``FrameStackObservation`` (``"reset"`` or ``"zero"`` padding at an episode's
    start); the replay then stores each frame once. None otherwise."""
    channels_first: bool = False
    """The image is CxHxW, stack axis first (Gymnasium's ``FrameStackObservation`` layout, kept
    for ``ALE/...`` ids so that a frame stack is C contiguous frames); the Q-network transposes
    it (``QNetworkConfig.image_channels_first``)."""


def describe_env(env: gym.Env | VectorEnv) -> EnvDescription:
    """Observation / action facts of an env made by :func:`make_env` or :func:`make_vector_env`.

    Raises:
      ValueError: the env has not been made agent-ready (non-Discrete actions, or an
        observation that is neither a float32 vector nor a uint8 HxWxC image).
    """
    if isinstance(env, VectorEnv):
        obs_space, act_space = env.single_observation_space, env.single_action_space
        conversion = getattr(env, CONVERSION_ATTR, None)
    else:
        obs_space, act_space = env.observation_space, env.action_space
        try:
            conversion = env.get_wrapper_attr(CONVERSION_ATTR)
        except AttributeError:
            conversion = None
    spec = env.spec
    name = spec.id if spec is not None else type(env).__name__
    if not isinstance(act_space, spaces.Discrete):
        raise ValueError(f"{name!r} has action space {act_space!r}, expected Discrete")
    channels_first = bool(conversion is not None and conversion.channels_first
                          and isinstance(obs_space, spaces.Box) and obs_space.dtype == np.uint8
                          and len(obs_space.shape) == 3)
    is_image = channels_first or (is_image_space(obs_space) and len(obs_space.shape) == 3)
    is_flat = isinstance(obs_space, spaces.Box) and len(obs_space.shape) == 1
    is_vector = is_flat and obs_space.dtype == np.float32
    image_shape = conversion.image_shape if conversion is not None else None
    if image_shape is not None and not (is_flat and obs_space.dtype in (np.float32, np.uint8)
                                        and obs_space.shape[0] >= math.prod(image_shape)):
        image_shape = None
    if not (is_image or is_vector or image_shape is not None):
        raise ValueError(
            f"{name!r} has observation space {obs_space!r}, expected a float32 vector or a "
            "uint8 HxWxC image: create it with envs.make_env / envs.make_vector_env"
        )
    return EnvDescription(
        frame_stack=_frame_stack(env, obs_space),
        obs_shape=tuple(int(d) for d in obs_space.shape),
        obs_dtype=np.dtype(obs_space.dtype),
        is_image=is_image,
        num_actions=int(act_space.n),
        reward_threshold=None if spec is None else spec.reward_threshold,
        max_episode_steps=None if spec is None else spec.max_episode_steps,
        env_id=None if spec is None else spec.id,
        image_shape=image_shape,
        conversion=conversion,
        channels_first=channels_first,
    )


def _frame_stack(env: gym.Env | VectorEnv, obs_space: spaces.Space) -> tuple[int, str] | None:
    """(k, padding) when the observation is exactly what a ``FrameStackObservation`` returns
    (no observation wrapper after it); None otherwise (or when the sub-envs cannot be seen)."""
    inner = env.envs[0] if isinstance(env, VectorEnv) and hasattr(env, "envs") else env
    while isinstance(inner, gym.Wrapper):
        if isinstance(inner, FrameStackObservation):
            padding = getattr(inner, "padding_type", None)
            if inner.observation_space == obs_space and padding in ("reset", "zero"):
                return int(inner.stack_size), padding
            return None
        inner = inner.env
    return None


# What a run directory records (``RUN_DIR/env.json``) and checks when it rebuilds the env.
_RECORD_CHECKED = ("env_id", "env_packages", "env_kwargs", "env_actions", "spec_id", "observation_shape",
                   "observation_dtype", "image_shape", "num_actions", "conversion")


def env_record(env: gym.Env | VectorEnv, env_id: str, env_packages: Sequence[str] = (),
               env_kwargs: dict[str, Any] | None = None, env_actions: Sequence[int] = ()) -> dict[str, Any]:
    """JSON-ready record of an env made by :func:`make_vector_env`: the id as given, the
    packages imported (with versions), the kwargs, the action subset and the observation /
    action conversion."""
    description = describe_env(env)
    packages = [*env_packages, *([env_id.rpartition(":")[0]] if ":" in env_id else [])]
    versions = {}
    for package in ["gymnasium", *packages]:
        root = package.split(".")[0]
        try:
            versions[root] = importlib.metadata.version(root)
        except importlib.metadata.PackageNotFoundError:
            versions[root] = None
    return {
        "env_id": env_id,
        "env_packages": list(env_packages),
        "env_kwargs": dict(env_kwargs or {}),
        "env_actions": [int(a) for a in env_actions],
        "spec_id": description.env_id,
        "observation_shape": list(description.obs_shape),
        "observation_dtype": np.dtype(description.obs_dtype).name,
        "image_shape": None if description.image_shape is None else list(description.image_shape),
        "num_actions": description.num_actions,
        "conversion": None if description.conversion is None else description.conversion.to_dict(),
        "package_versions": versions,
    }


def check_env_record(recorded: dict[str, Any], rebuilt: dict[str, Any]) -> None:
    """Raise if ``rebuilt`` (:func:`env_record` of a rebuilt env) differs from ``recorded``.

    Raises:
      ValueError: naming each field that differs, old and new values.
    """
    rebuilt = json.loads(json.dumps(rebuilt))  # lists, as read back from JSON
    diffs = [f"{k}: recorded {recorded.get(k)!r}, now {rebuilt.get(k)!r}"
             for k in _RECORD_CHECKED if k in recorded and recorded.get(k) != rebuilt.get(k)]
    if diffs:
        raise ValueError("the rebuilt environment differs from the run's env.json: " + "; ".join(diffs))
