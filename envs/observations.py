"""Observations converted once, at the env, so the network sees a float32 vector, a uint8
HxWxC image, or one flat vector whose first part is an image (a Dict / Tuple with one image
part: ``describe_env(...).image_shape``); constant Text parts are dropped. The table of what
each space becomes is in docs/environments.md. ``ALE/...`` ids are converted by ``envs.atari``.
"""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import DtypeObservation, FlattenObservation, ReshapeObservation

from envs.actions import env_name


def space_text(space: spaces.Space) -> str:
    """``str(space)`` without memory addresses (MiniGrid's MissionSpace repr shows a function):
    run dirs compare it."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", str(space))


def is_image_space(space: spaces.Space) -> bool:
    """A uint8 HxW or HxWxC (C <= 16) Box: an image the agent takes as it is."""
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


def convert_observations(env: gym.Env, env_id: str | None = None) -> gym.Env:
    """Wrap ``env`` so observations are a float32 vector, a uint8 HxWxC image, or a flat
    vector whose first part is an image (docs/environments.md has the table).

    Raises:
      ValueError: for spaces without a fixed-size conversion (Text at the top level, Graph,
        Sequence, ...), and Dict / Tuple spaces with more than one image part.
    """
    name = env_id or env_name(env)
    space = env.observation_space
    if is_image_space(space):
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
        and not (is_nested and (_is_text_space(leaf) or is_image_space(leaf)))
    ]
    if unsupported:
        path, leaf = unsupported[0]
        where = f"part {_path_name(path)} = {leaf!r}" if is_nested else f"{leaf!r}"
        raise ValueError(
            f"{name!r} has observation space {space!r}, whose {where} has no fixed-size vector "
            "form; supported: Box, Discrete, MultiDiscrete, MultiBinary, and Dict / Tuple of "
            "these with at most one uint8 image part (Text parts constant in an episode are dropped)"
        )
    if is_nested and any(_is_text_space(leaf) or is_image_space(leaf) for _, leaf in leaves):
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
        images = [(p, leaf) for p, leaf in leaves if is_image_space(leaf)]
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
                         and not is_image_space(leaf)]
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
        # What make_env records of this conversion (its Conversion's observation, image_shape, notes).
        self.description = (f"{space_text(space)} -> {self._dtype.name} [{self.observation_space.shape[0]}] = "
                            + " + ".join(described))
        self.image_shape = image_shape
        self.notes = tuple(f"dropped Text part {_path_name(p)} (must stay constant within an episode; "
                           "checked at every step)" for p in self._texts)
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

