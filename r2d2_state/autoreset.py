"""Episode boundaries of N environments under Gymnasium's NEXT_STEP autoreset.

Gymnasium 1.x vector envs default to ``AutoresetMode.NEXT_STEP``: after a step that
terminates or truncates env i, the next ``env.step`` ignores env i's action, returns
reward 0 and the new episode's first observation. That step is not a transition::

    call          k-1                 k                     k+1
    flags         done                (False, False)        ...
    transition    True                False (a reset step)  True
    finished      True                False                 ...

:class:`NextStepAutoreset` is the one place that keeps this bookkeeping (the actor, the
adder, the training loop's episode statistics and evaluation all use it);
:class:`EpisodeStatistics` adds each episode's return and length on top
(``returns, lengths = episodes.step(reward, terminated, truncated)`` after every ``env.step``).

numpy only: the replay package imports this module.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["NextStepAutoreset", "EpisodeStatistics"]


class NextStepAutoreset:
    """Which of N envs' steps are transitions, and which finish an episode.

    Args:
      num_envs: N >= 1.
    """

    def __init__(self, num_envs: int) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        self.num_envs = int(num_envs)
        self.ended = np.zeros(self.num_envs, bool)
        """bool [N]: the previous step finished env i's episode (this step is a reset step)."""

    def __repr__(self) -> str:
        return f"NextStepAutoreset(num_envs={self.num_envs}, ended={self.ended.tolist()!r})"

    def step(self, terminated: Any, truncated: Any) -> tuple[np.ndarray, np.ndarray]:
        """Advance by one ``env.step``; returns ``(transition, finished)``, bool [N] each.

        ``transition[i]``: step i is a transition (not the reset step after an episode end).
        ``finished[i]``: a transition that ends the episode (terminated or truncated).
        """
        terminated = np.asarray(terminated, bool).reshape(-1)
        truncated = np.asarray(truncated, bool).reshape(-1)
        if terminated.shape != (self.num_envs,) or truncated.shape != (self.num_envs,):
            raise ValueError(f"terminated and truncated must have shape ({self.num_envs},), got "
                             f"{np.shape(terminated)!r} and {np.shape(truncated)!r}")
        transition = ~self.ended
        finished = transition & (terminated | truncated)
        self.ended = finished
        return transition, finished

    def reset(self, env_ids: Sequence[int] | np.ndarray | None = None) -> None:
        """The envs ``env_ids`` (all if None) were reset: their next step is a transition."""
        if env_ids is None:
            self.ended[:] = False
        else:
            self.ended[np.asarray(env_ids, np.int64)] = False


class EpisodeStatistics:
    """Return and length of every finished episode of N envs (NEXT_STEP autoreset).

    Reset steps (the step after an episode end) add neither reward nor length.
    """

    def __init__(self, num_envs: int) -> None:
        self.autoreset = NextStepAutoreset(num_envs)
        self.num_envs = self.autoreset.num_envs
        self._return = np.zeros(self.num_envs, np.float64)
        self._length = np.zeros(self.num_envs, np.int64)

    def step(self, reward: Any, terminated: Any, truncated: Any) -> tuple[list[float], list[int]]:
        """Advance by one ``env.step``; returns the finished episodes' returns and lengths,
        in env order."""
        return self.step_with_envs(reward, terminated, truncated)[:2]

    def step_with_envs(self, reward: Any, terminated: Any,
                       truncated: Any) -> tuple[list[float], list[int], np.ndarray]:
        """As :meth:`step`, plus the indices (int [K]) of the envs that finished."""
        transition, finished = self.autoreset.step(terminated, truncated)
        self._return += np.where(transition, np.asarray(reward, np.float64).reshape(-1), 0.0)
        self._length += transition
        envs = np.flatnonzero(finished)
        returns = [float(self._return[i]) for i in envs]
        lengths = [int(self._length[i]) for i in envs]
        self._return[finished] = 0.0
        self._length[finished] = 0
        return returns, lengths, envs
