"""``ALE/...`` ids: every Atari special case lives here. Observations are uint8 4x84x84
(AtariPreprocessing + 4-frame stack, channels first: ``describe_env(...).channels_first``);
ALE's own vector env is never used (its preprocessing differs from this one)."""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Any, Sequence

import gymnasium as gym
from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

from envs.actions import check_discrete_actions, restrict_actions
from envs.observations import space_text
from envs.record import CONVERSION_ATTR, Conversion


def is_atari(env_id: str) -> bool:
    """An ALE id: made by :func:`make_atari`, registered only once ale-py is imported."""
    return env_id.startswith("ALE/")


def make_atari(env_id: str, env_actions: Sequence[int] = (), frame_stack: int = 4, **kwargs: Any) -> gym.Env:
    """``make_env`` for an ALE id: the standard Atari preprocessing, ``frame_stack`` frames
    stacked channels first, then ``env_actions`` kept (already checked by ``check_env_actions``).

    Raises:
      ImportError: ale-py or opencv not installed (``pip install -e .[atari]``).
      ValueError: ``env_actions`` not actions of the game.
    """
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
    conversion = Conversion(
        observation=f"{space_text(original)} -> uint8 {frame_stack}x84x84 (AtariPreprocessing, "
                    "frame stack, channels first)",
        channels_first=True)
    if env_actions:
        # Outside the preprocessing: its no-op starts step the game's action 0.
        before = env.action_space
        try:
            env = restrict_actions(env, env_actions, env_id)
        except ValueError:
            env.close()
            raise
        action = f"{space_text(before)} -> {space_text(env.action_space)} (env actions {list(env_actions)})"
        conversion = dataclasses.replace(conversion, action=action)
    setattr(env, CONVERSION_ATTR, conversion)
    return env
