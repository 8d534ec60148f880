"""T-maze cue recall: a memory task a memoryless agent solves only at chance.

::

    cue shown at t = 0 only
    |
    [0]-[1]-[2]- ... -[corridor_length]  <- junction: LEFT or RIGHT ends the episode
                                          +1 if the side matches the cue, -1 otherwise

Observation ``float32[4]``: ``[cue_left, cue_right, at_junction, position / corridor_length]``;
the cue is non-zero only in the reset observation, so any memoryless policy picks the cued
side with probability exactly 1/2 (docs/environments.md). Actions ``Discrete(3)``: 0 =
forward, 1 = left, 2 = right; in the corridor left/right bump into the wall, at the junction
forward is a no-op. The env truncates itself after ``max_steps`` (its limit scales with
``corridor_length``, so it is not a ``TimeLimit`` wrapper).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

FORWARD, LEFT, RIGHT = 0, 1, 2
NUM_ACTIONS = 3
OBS_SIZE = 4


def check_tmaze_args(
    corridor_length: int, max_steps: int | None, correct_reward: float, wrong_reward: float
) -> int:
    """Validate the T-maze arguments and return the effective ``max_steps``."""
    if isinstance(corridor_length, bool) or not isinstance(corridor_length, (int, np.integer)):
        raise TypeError(f"corridor_length must be an int >= 1, got {corridor_length!r}")
    # corridor_length = 0 would put the junction at t = 0, where the cue is visible.
    if corridor_length < 1:
        raise ValueError(f"corridor_length must be >= 1, got {corridor_length!r}")
    if max_steps is None:
        max_steps = 4 * (int(corridor_length) + 1)
    if max_steps < corridor_length + 1:
        raise ValueError(
            f"max_steps must be >= corridor_length + 1 = {corridor_length + 1} so the junction "
            f"can be reached, got {max_steps!r}"
        )
    if not correct_reward > wrong_reward:
        raise ValueError(
            f"correct_reward must exceed wrong_reward, got {correct_reward!r} <= {wrong_reward!r}"
        )
    return int(max_steps)


def observation_table(corridor_length: int) -> np.ndarray:
    """Cue-free observations by position: <float32>[corridor_length + 1, 4]."""
    table = np.zeros((corridor_length + 1, OBS_SIZE), dtype=np.float32)
    table[:, 3] = np.arange(corridor_length + 1) / corridor_length
    table[corridor_length, 2] = 1.0
    return table


def observation_space() -> spaces.Box:
    return spaces.Box(low=0.0, high=1.0, shape=(OBS_SIZE,), dtype=np.float32)


class TMazeEnv(gym.Env[np.ndarray, int]):
    """Cue-recall T-maze (see the module docstring).

    Args:
      corridor_length: steps from the start to the junction, >= 1; the cue must be held
        in memory for ``corridor_length`` steps.
      max_steps: truncation limit; default ``4 * (corridor_length + 1)``.
      correct_reward: reward for turning to the cued side.
      wrong_reward: reward for turning to the other side.
      step_penalty: subtracted from every step's reward (0 by default, which keeps the
        registered ``reward_threshold`` valid for every corridor length).

    Example:
      >>> import gymnasium as gym, envs
      >>> env = gym.make("r2d2_state/TMaze-v0", corridor_length=3)
      >>> obs, _ = env.reset(seed=0)
      >>> obs.shape, obs.dtype
      ((4,), dtype('float32'))
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(
        self,
        corridor_length: int = 10,
        max_steps: int | None = None,
        correct_reward: float = 1.0,
        wrong_reward: float = -1.0,
        step_penalty: float = 0.0,
        render_mode: str | None = None,
    ) -> None:
        self.max_steps = check_tmaze_args(corridor_length, max_steps, correct_reward, wrong_reward)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, "
                             f"got {render_mode!r}")
        self.render_mode = render_mode
        self.corridor_length = int(corridor_length)
        self.correct_reward = float(correct_reward)
        self.wrong_reward = float(wrong_reward)
        self.step_penalty = float(step_penalty)
        self.observation_space = observation_space()
        self.action_space = spaces.Discrete(NUM_ACTIONS)
        self._table = observation_table(self.corridor_length)
        self._pos = 0
        self._t = 0
        self._cue = 0  # 0 = left, 1 = right
        self._turn: int | None = None  # the final LEFT/RIGHT, for rendering

    @property
    def cue(self) -> int:
        """The current episode's cue (0 = left, 1 = right); for tests and scripted policies."""
        return self._cue

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._cue = int(self.np_random.integers(2))
        self._pos = 0
        self._t = 0
        self._turn = None
        obs = self._table[0].copy()
        obs[self._cue] = 1.0
        return obs, {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        # Plain Python on ints: this is the hot path of every acting benchmark.
        action = int(action)
        if not 0 <= action < NUM_ACTIONS:
            raise ValueError(f"action must be in [0, {NUM_ACTIONS}), got {action!r}")
        self._t += 1
        reward = 0.0 - self.step_penalty  # 0.0, not -0.0, when there is no penalty
        terminated = False
        if self._pos < self.corridor_length:
            if action == FORWARD:
                self._pos += 1
        elif action != FORWARD:
            terminated = True
            reward += self.correct_reward if action - 1 == self._cue else self.wrong_reward
        # A decision on the last allowed step is a termination, not a truncation.
        truncated = not terminated and self._t >= self.max_steps
        self._turn = action if terminated else None
        return self._table[self._pos].copy(), reward, terminated, truncated, {}

    _CELL = 12
    _COLORS = {"wall": (30, 30, 30), "floor": (200, 200, 200), "agent": (0, 110, 220),
               "cue": ((60, 180, 75), (230, 120, 25))}  # left cue green, right cue orange

    def render(self) -> np.ndarray | None:
        """``rgb_array``: the corridor (middle row) and the junction's two arms (top = left,
        bottom = right); the start cell and the cued arm show the cue's colour (to the viewer
        always, to the agent only at step 0), the agent is the blue square."""
        if self.render_mode != "rgb_array":
            return None
        cell, width = self._CELL, self.corridor_length + 1
        image = np.empty((3 * cell, width * cell, 3), np.uint8)
        image[:] = self._COLORS["wall"]
        cue_color = self._COLORS["cue"][self._cue]

        def paint(row: int, col: int, color, inset: int = 1) -> None:
            image[row * cell + inset:(row + 1) * cell - inset, col * cell + inset:(col + 1) * cell - inset] = color

        for col in range(width):
            paint(1, col, self._COLORS["floor"])
        paint(1, 0, cue_color)
        paint(0, width - 1, cue_color if self._cue == 0 else self._COLORS["floor"])
        paint(2, width - 1, cue_color if self._cue == 1 else self._COLORS["floor"])
        row = 1 if self._turn is None else (0 if self._turn == LEFT else 2)
        paint(row, self._pos, self._COLORS["agent"], inset=3)
        return image
