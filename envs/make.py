"""``make_env`` / ``make_vector_env``: any Gymnasium id with Discrete or MultiDiscrete actions,
made agent-ready.

Observations are converted once, at the env, so the network sees one of three things:

=================================  ==========================================================
observation space                  what the agent gets
=================================  ==========================================================
Box uint8, HxWxC or HxW            uint8 image HxWxC (HxW gets a channel axis of 1)
Box (anything else)                float32 vector (flattened)
Discrete                           float32 one-hot
MultiDiscrete / MultiBinary        float32 concatenated one-hots / bits
Dict / Tuple of the above vectors  float32 vector: each part converted, then concatenated
Dict / Tuple with one image part   one flat vector ``[image.ravel(), other parts]``: uint8
                                   if the other parts are one-hots / bits / uint8, else
                                   float32; ``describe_env(...).image_shape`` tells the
                                   network to take the image part with a conv torso
Text parts of a Dict / Tuple       dropped (MiniGrid's ``mission``); a Text part that changes
                                   within an episode raises at that step
``ALE/...`` ids                    uint8 4x84x84 (AtariPreprocessing + 4-frame stack, channels
                                   first: ``describe_env(...).channels_first``)
=================================  ==========================================================

Actions: ``Discrete(n, start=s)`` is shifted to start at 0; ``MultiDiscrete(nvec)`` becomes
one ``Discrete(prod(nvec))`` (the agent, the adder and the replay see the flat index; the env
receives the tuple, ``np.unravel_index(a, nvec)``). ``env_actions=(a_0, ..., a_k)`` keeps only
those actions of that space, in that order (the agent's action i is the env's ``a_i``; e.g.
MiniGrid's navigation actions ``(0, 1, 2)`` of its 7); the conversion records it.

Ids: any registered id, ``module:EnvId`` (Gymnasium's syntax: ``module`` is imported first,
e.g. ``minigrid:MiniGrid-MemoryS7-v0``), or ids registered by the ``env_packages`` imported
first (``--env-package NAME``). Unknown ids and missing packages raise :class:`EnvIdError`, a
``ValueError`` with a one-line message and Gymnasium's close-match suggestion.

Vectorization keeps what the adder sees independent of the env's vector implementation: a
native vector env (its spec's ``vector_entry_point``) is used only if it takes the given
kwargs, runs the requested autoreset mode, and has the same spaces as ``make_env``; otherwise
``SyncVectorEnv`` over ``make_env``.

Example:
  >>> import envs
  >>> vec = envs.make_vector_env("r2d2_state/TMaze-v0", num_envs=8, seed=0)
  >>> description = envs.describe_env(vec)
  >>> description.obs_shape, description.num_actions, description.reward_threshold
  ((4,), 3, 0.9)
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import math
import re
from typing import Any, Literal, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import load_env_creator
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.wrappers import (
    AtariPreprocessing,
    DtypeObservation,
    FlattenObservation,
    FrameStackObservation,
    ReshapeObservation,
    TransformAction,
)

Vectorization = Literal["auto", "sync", "native"]

MAX_FLAT_ACTIONS = 4096
"""Largest product of a MultiDiscrete action space's sizes (one Q-value per flat action)."""

_CONVERSION_ATTR = "r2d2_conversion"


def _space_str(space: spaces.Space) -> str:
    # Without memory addresses (MiniGrid's MissionSpace repr shows a function): run dirs compare it.
    return re.sub(r" at 0x[0-9a-fA-F]+", "", str(space))


class EnvIdError(ValueError):
    """An id that cannot be made: unknown id, or its environment package is not installed."""


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


# ---------------------------------------------------------------------------- ids and packages
def import_env_packages(packages: Sequence[str]) -> None:
    """Import each package (it registers its ids on import), e.g. ``("minigrid",)``.

    Raises:
      EnvIdError: a package that is not installed.
    """
    for package in packages:
        _import_package(package, context=f"--env-package {package}")


def _import_package(package: str, context: str) -> None:
    try:
        importlib.import_module(package)
    except ModuleNotFoundError as error:
        if error.name is not None and (package == error.name or package.startswith(error.name + ".")):
            extra = " (pip install -e .[minigrid])" if package.split(".")[0] == "minigrid" else ""
            raise EnvIdError(
                f"{context}: environment package {package!r} is not installed{extra}"
            ) from None
        raise


def resolve_env_id(env_id: str, env_packages: Sequence[str] = ()) -> str:
    """Import ``env_packages`` and the ``module`` of ``module:EnvId``; return the registered id.

    Raises:
      EnvIdError: a missing package, or an id that is not registered (one line, with
        Gymnasium's close-match suggestion and a hint at ``--env-package``).
    """
    if not isinstance(env_id, str) or not env_id:
        raise EnvIdError(f"environment id must be a non-empty string, got {env_id!r}")
    import_env_packages(env_packages)
    module, _, name = env_id.rpartition(":")
    if module:
        _import_package(module, context=f"environment {env_id!r}")
    if name.startswith("ALE/"):
        return name  # _make_atari imports ale_py (with its own install hint)
    try:
        gym.spec(name)
    except gym.error.Error as error:
        parts = [" ".join(str(error).split()).rstrip(".")]
        close = difflib.get_close_matches(name, list(gym.registry), n=3, cutoff=0.75)
        if close and "Did you mean" not in parts[0]:
            parts.append(f"close registered ids: {', '.join(close)}")
        missing_name = isinstance(error, (gym.error.NameNotFound, gym.error.NamespaceNotFound))
        if missing_name and not module and not env_packages:
            parts.append("an id from a third-party package needs the package imported: --env-package "
                         "PACKAGE or PACKAGE:ID (e.g. minigrid:MiniGrid-MemoryS7-v0)")
        raise EnvIdError(f"unknown environment id {env_id!r}: {'; '.join(parts)}") from None
    return name


# ---------------------------------------------------------------------------- spaces
def _is_image_space(space: spaces.Space) -> bool:
    return (
        isinstance(space, spaces.Box)
        and space.dtype == np.uint8
        and (len(space.shape) == 2 or (len(space.shape) == 3 and 1 <= space.shape[-1] <= 16))
    )


def _is_text_space(space: spaces.Space) -> bool:
    # MiniGrid's MissionSpace is a Space[str], not a Text subclass.
    if isinstance(space, spaces.Text):
        return True
    if isinstance(space, (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary,
                          spaces.Dict, spaces.Tuple, spaces.Sequence, spaces.Graph, spaces.OneOf)):
        return False
    try:
        return isinstance(space.sample(), str)
    except Exception:  # noqa: BLE001 - a space that cannot sample is not text we can drop
        return False


def _env_name(env: gym.Env) -> str:
    return env.spec.id if env.spec is not None else type(env.unwrapped).__name__


def check_discrete_actions(env: gym.Env, env_id: str | None = None) -> gym.Env:
    """Make the action space ``Discrete(n)`` from 0: shift ``Discrete(n, start=s)``, flatten
    ``MultiDiscrete(nvec)`` to ``Discrete(prod(nvec))`` (the env receives the tuple).

    Raises:
      ValueError: naming the env and its action space, e.g. for ``Pendulum-v1``'s Box, or a
        MultiDiscrete with more than ``MAX_FLAT_ACTIONS`` combinations.
    """
    name = env_id or _env_name(env)
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
    chosen = check_env_actions(env_actions, int(env.action_space.n), env_id or _env_name(env))
    table = np.asarray(chosen, dtype=np.int64)
    return TransformAction(env, lambda action: int(table[int(action)]), action_space=spaces.Discrete(len(chosen)))


def convert_observations(env: gym.Env, env_id: str | None = None) -> gym.Env:
    """Wrap ``env`` so observations are a float32 vector, a uint8 HxWxC image, or a flat
    vector whose first part is an image (table above).

    Raises:
      ValueError: for spaces without a fixed-size conversion (Text at the top level, Graph,
        Sequence, ...), and Dict / Tuple spaces with more than one image part.
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
    leaves = _leaf_paths(space)
    is_nested = isinstance(space, (spaces.Dict, spaces.Tuple))
    unsupported = [
        (path, leaf) for path, leaf in leaves
        if not isinstance(leaf, _VECTOR_LEAF_SPACES)
        and not (is_nested and (_is_text_space(leaf) or _is_image_space(leaf)))
    ]
    if unsupported:
        path, leaf = unsupported[0]
        where = f"part {_path_name(path)} = {leaf!r}" if is_nested else f"{leaf!r}"
        raise ValueError(
            f"{name!r} has observation space {space!r}, whose {where} has no fixed-size vector "
            "form; supported: Box, Discrete, MultiDiscrete, MultiBinary, and Dict / Tuple of "
            "these with at most one uint8 image part (Text parts constant in an episode are dropped)"
        )
    if is_nested and any(_is_text_space(leaf) or _is_image_space(leaf) for _, leaf in leaves):
        return PackedObservation(env, name)
    if isinstance(space, spaces.Box) and space.dtype == np.float32 and len(space.shape) == 1:
        return env  # already what the agent wants; spare a wrapper per step
    flat = spaces.flatten_space(space)
    if space != flat:
        env = FlattenObservation(env)
    return DtypeObservation(env, np.float32)


_VECTOR_LEAF_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
_UINT8_SAFE = (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)  # one-hots and bits


def _leaf_paths(space: spaces.Space, path: tuple = ()) -> list[tuple[tuple, spaces.Space]]:
    if isinstance(space, spaces.Dict):
        return [leaf for key, sub in space.spaces.items() for leaf in _leaf_paths(sub, path + (key,))]
    if isinstance(space, spaces.Tuple):
        return [leaf for i, sub in enumerate(space.spaces) for leaf in _leaf_paths(sub, path + (i,))]
    return [(path, space)]


def _path_name(path: tuple) -> str:
    return "".join(f"[{key!r}]" for key in path) or "(top level)"


def _get(obs: Any, path: tuple) -> Any:
    for key in path:
        obs = obs[key]
    return obs


class PackedObservation(gym.ObservationWrapper):
    """Dict / Tuple observation -> one flat array: the image part (if any) raveled first,
    then the other parts flattened (one-hots, bits, values) in the space's order; Text parts
    dropped after checking they do not change within an episode.

    The array is uint8 if every non-image part is a one-hot, bits or uint8, else float32.
    """

    def __init__(self, env: gym.Env, name: str):
        super().__init__(env)
        space = env.observation_space
        leaves = _leaf_paths(space)
        images = [(p, leaf) for p, leaf in leaves if _is_image_space(leaf)]
        if len(images) > 1:
            raise ValueError(
                f"{name!r} has observation space {space!r} with {len(images)} image parts "
                f"({', '.join(_path_name(p) for p, _ in images)}); at most one is supported: "
                "pick one with gymnasium.wrappers.FilterObservation"
            )
        self._name = name
        self._image = images[0] if images else None
        self._texts = [p for p, leaf in leaves if _is_text_space(leaf)]
        self._vectors = [(p, leaf) for p, leaf in leaves if isinstance(leaf, _VECTOR_LEAF_SPACES)
                         and not _is_image_space(leaf)]
        uint8 = self._image is not None and all(
            isinstance(leaf, _UINT8_SAFE) or (isinstance(leaf, spaces.Box) and leaf.dtype == np.uint8)
            for _, leaf in self._vectors)
        self._dtype = np.dtype(np.uint8 if uint8 else np.float32)
        image_shape = None
        parts_low, parts_high, described = [], [], []
        if self._image is not None:
            path, leaf = self._image
            image_shape = tuple(int(d) for d in leaf.shape) + ((1,) if len(leaf.shape) == 2 else ())
            parts_low.append(np.asarray(leaf.low).reshape(-1))
            parts_high.append(np.asarray(leaf.high).reshape(-1))
            described.append(f"image {_path_name(path)} {'x'.join(map(str, image_shape))}")
        for path, leaf in self._vectors:
            flat = spaces.flatten_space(leaf)
            parts_low.append(np.asarray(flat.low, np.float64).reshape(-1))
            parts_high.append(np.asarray(flat.high, np.float64).reshape(-1))
            kind = "one-hot" if isinstance(leaf, (spaces.Discrete, spaces.MultiDiscrete)) else "values"
            described.append(f"{_path_name(path)} {kind} {flat.shape[0]}")
        low, high = np.concatenate(parts_low), np.concatenate(parts_high)
        if self._dtype == np.float32:
            low, high = np.maximum(low, np.finfo(np.float32).min), np.minimum(high, np.finfo(np.float32).max)
        self.observation_space = spaces.Box(low.astype(self._dtype), high.astype(self._dtype),
                                            dtype=self._dtype)
        self._image_shape = image_shape
        notes = tuple(f"dropped Text part {_path_name(p)} (must stay constant within an episode; "
                      "checked at every step)" for p in self._texts)
        self.conversion = Conversion(
            observation=f"{_space_str(space)} -> {self._dtype.name} [{self.observation_space.shape[0]}] = "
                        + " + ".join(described),
            image_shape=image_shape, notes=notes)
        self._text_values: list[Any] = []

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._text_values = [_get(obs, p) for p in self._texts]
        return self.observation(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        for path, value in zip(self._texts, self._text_values):
            if _get(obs, path) != value:
                raise ValueError(
                    f"{self._name!r}: Text part {_path_name(path)} changed within an episode "
                    f"({value!r} -> {_get(obs, path)!r}); only constant Text parts can be dropped"
                )
        return self.observation(obs), reward, terminated, truncated, info

    def observation(self, observation: Any) -> np.ndarray:
        parts = []
        if self._image is not None:
            parts.append(np.asarray(_get(observation, self._image[0])).reshape(-1))
        for path, leaf in self._vectors:
            parts.append(np.asarray(spaces.flatten(leaf, _get(observation, path))).reshape(-1))
        return np.concatenate(parts).astype(self._dtype, copy=False)


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
    original = env.observation_space
    env = check_discrete_actions(env, env_id)
    env = AtariPreprocessing(
        env, noop_max=30, frame_skip=4, screen_size=84, grayscale_obs=True, scale_obs=False
    )
    # Stack axis first, as FrameStackObservation gives it: each frame of a stack is one
    # contiguous 84x84 block (a replay can store single frames and rebuild stacks by copying
    # blocks); the Q-network transposes to channels last inside its graph.
    env = FrameStackObservation(env, stack_size=frame_stack)
    setattr(env, _CONVERSION_ATTR, Conversion(
        observation=f"{_space_str(original)} -> uint8 {frame_stack}x84x84 (AtariPreprocessing, "
                    "frame stack, channels first)",
        channels_first=True))
    return env


def _conversion(original: gym.Env, env: gym.Env, env_actions: Sequence[int] = ()) -> Conversion:
    packed = env if isinstance(env, PackedObservation) else None
    obs_before, obs_after = original.observation_space, env.observation_space
    act_before, act_after = original.action_space, env.action_space
    action = _space_str(act_before) + ("" if act_before == act_after else f" -> {_space_str(act_after)}")
    if env_actions:
        action += f" (env actions {list(env_actions)})"
    if packed is not None:
        return dataclasses.replace(packed.conversion, action=action)
    observation = _space_str(obs_before) + ("" if obs_before == obs_after else f" -> {_space_str(obs_after)}")
    return Conversion(observation=observation, action=action)


def make_env(env_id: str, *, env_packages: Sequence[str] = (), env_actions: Sequence[int] = (),
             **kwargs: Any) -> gym.Env:
    """``gymnasium.make(env_id, **kwargs)`` with actions made ``Discrete`` from 0 and
    observations converted (module docstring). ``ALE/...`` ids get the standard Atari
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
    if name.startswith("ALE/"):
        env = _make_atari(name, **kwargs)
        if env_actions:
            conversion = getattr(env, _CONVERSION_ATTR)
            before = env.action_space
            try:
                env = restrict_actions(env, env_actions, name)
            except ValueError:
                env.close()
                raise
            action = f"{_space_str(before)} -> {_space_str(env.action_space)} (env actions {list(env_actions)})"
            setattr(env, _CONVERSION_ATTR, dataclasses.replace(conversion, action=action))
        return env
    original = gym.make(name, **kwargs)
    try:
        env = check_discrete_actions(original, name)
        env = restrict_actions(env, env_actions, name)
        env = convert_observations(env, name)
    except ValueError:
        original.close()
        raise
    setattr(env, _CONVERSION_ATTR, _conversion(original, env, env_actions))
    return env


def _native_vector_env(
    name: str, num_envs: int, autoreset_mode: AutoresetMode, kwargs: dict[str, Any],
    reference: gym.Env,
) -> tuple[VectorEnv | None, str]:
    """The env's own vector env if it gives the adder what SyncVectorEnv over ``make_env``
    would, else (None, why not)."""
    spec = gym.spec(name)
    if spec.vector_entry_point is None:
        return None, "no vector_entry_point in its spec"
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
    has_native = not name.startswith("ALE/") and gym.spec(name).vector_entry_point is not None
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
            conversion = getattr(reference, _CONVERSION_ATTR)
        finally:
            reference.close()
        if vec is None and vectorization == "native":
            raise ValueError(f"{env_id!r} has no usable native vector env: {why}")
    if vec is not None:
        setattr(vec, _CONVERSION_ATTR, conversion)
    else:
        vec = gym.vector.SyncVectorEnv([make_one for _ in range(num_envs)], autoreset_mode=autoreset_mode)
        vec.spec = vec.envs[0].spec  # describe_env reads reward_threshold from here
        setattr(vec, _CONVERSION_ATTR, vec.envs[0].get_wrapper_attr(_CONVERSION_ATTR))
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
        conversion = getattr(env, _CONVERSION_ATTR, None)
    else:
        obs_space, act_space = env.observation_space, env.action_space
        try:
            conversion = env.get_wrapper_attr(_CONVERSION_ATTR)
        except AttributeError:
            conversion = None
    spec = env.spec
    name = spec.id if spec is not None else type(env).__name__
    if not isinstance(act_space, spaces.Discrete):
        raise ValueError(f"{name!r} has action space {act_space!r}, expected Discrete")
    channels_first = bool(conversion is not None and conversion.channels_first
                          and isinstance(obs_space, spaces.Box) and obs_space.dtype == np.uint8
                          and len(obs_space.shape) == 3)
    is_image = channels_first or (_is_image_space(obs_space) and len(obs_space.shape) == 3)
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
