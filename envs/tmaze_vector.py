"""N T-mazes stepped together in numpy, a drop-in for ``SyncVectorEnv`` over ``TMazeEnv``.

One step of all N mazes is a handful of numpy operations instead of a Python call chain per
sub-env. The stream of (obs, reward, terminated, truncated) is identical to
``SyncVectorEnv([TMazeEnv] * N)`` in ``AutoresetMode.NEXT_STEP`` for the same seeds and
actions (tested): each maze keeps its own generator, seeded like Gymnasium seeds sub-env i
(``seed + i``) and drawn from in the same order (one cue per reset).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.tmaze import FORWARD, NUM_ACTIONS, check_tmaze_args, observation_space, observation_table


class TMazeVectorEnv(VectorEnv):
    """``num_envs`` independent T-mazes (arguments as :class:`envs.tmaze.TMazeEnv`).

    Example:
      >>> import gymnasium as gym, envs
      >>> vec = gym.make_vec("r2d2_state/TMaze-v0", num_envs=4,
      ...                    vectorization_mode="vector_entry_point")
      >>> obs, _ = vec.reset(seed=0)
      >>> obs.shape
      (4, 4)
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int,
        corridor_length: int = 10,
        max_steps: int | None = None,
        correct_reward: float = 1.0,
        wrong_reward: float = -1.0,
        step_penalty: float = 0.0,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)):
            raise TypeError(f"num_envs must be an int >= 1, got {num_envs!r}")
        if num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        if AutoresetMode(autoreset_mode) != AutoresetMode.NEXT_STEP:
            raise ValueError(
                f"TMazeVectorEnv implements AutoresetMode.NEXT_STEP only, got {autoreset_mode!r}"
            )
        self.max_steps = check_tmaze_args(corridor_length, max_steps, correct_reward, wrong_reward)
        self.num_envs = int(num_envs)
        self.corridor_length = int(corridor_length)
        self.correct_reward = float(correct_reward)
        self.wrong_reward = float(wrong_reward)
        self.step_penalty = float(step_penalty)

        self.single_observation_space = observation_space()
        self.single_action_space = spaces.Discrete(NUM_ACTIONS)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

        self._table = observation_table(self.corridor_length)
        self._rngs: list[np.random.Generator | None] = [None] * self.num_envs
        self._pos = np.zeros(self.num_envs, dtype=np.int64)
        self._t = np.zeros(self.num_envs, dtype=np.int64)
        self._cue = np.zeros(self.num_envs, dtype=np.int64)
        self._autoreset = np.zeros(self.num_envs, dtype=np.bool_)
        self._rows = np.arange(self.num_envs)

    def _reset_one(self, i: int, seed: int | None) -> None:
        # Mirrors gymnasium.Env.reset: reseed only when given a seed, else keep the stream.
        if seed is not None or self._rngs[i] is None:
            self._rngs[i] = seeding.np_random(seed)[0]
        self._cue[i] = int(self._rngs[i].integers(2))
        self._pos[i] = 0
        self._t[i] = 0

    def _observations(self) -> np.ndarray:
        obs = self._table[self._pos]  # fancy indexing copies
        first = self._t == 0
        obs[self._rows[first], self._cue[first]] = 1.0  # the cue, on reset observations only
        return obs

    def reset(
        self,
        *,
        seed: int | list[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all mazes, or those in ``options["reset_mask"]`` (bool [N]).

        ``seed``: None, an int (maze i gets ``seed + i``) or a list of N ints / None.
        """
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(
                    f"seed list must have num_envs={self.num_envs} entries, got {len(seeds)}"
                )
        reset_mask = np.ones(self.num_envs, dtype=np.bool_)
        if options is not None and "reset_mask" in options:
            reset_mask = np.asarray(options["reset_mask"], dtype=np.bool_)
            if reset_mask.shape != (self.num_envs,):
                raise ValueError(
                    f"options['reset_mask'] must have shape ({self.num_envs},), "
                    f"got {reset_mask.shape}"
                )
        for i in np.flatnonzero(reset_mask):
            self._reset_one(int(i), seeds[i])
        self._autoreset[reset_mask] = False
        return self._observations(), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), got {actions.shape}")
        if actions.min() < 0 or actions.max() >= NUM_ACTIONS:
            raise ValueError(f"actions must be in [0, {NUM_ACTIONS}), got {actions!r}")

        resetting = self._autoreset
        stepping = ~resetting
        forward = actions == FORWARD
        in_corridor = self._pos < self.corridor_length
        self._pos += stepping & in_corridor & forward
        terminated = stepping & ~in_corridor & ~forward
        self._t += stepping

        reward = np.where(stepping, 0.0 - self.step_penalty, 0.0)
        side_reward = np.where(actions - 1 == self._cue, self.correct_reward, self.wrong_reward)
        reward = np.where(terminated, reward + side_reward, reward)
        truncated = stepping & ~terminated & (self._t >= self.max_steps)

        for i in np.flatnonzero(resetting):
            self._reset_one(int(i), None)
        self._autoreset = terminated | truncated
        return self._observations(), reward, terminated, truncated, {}
