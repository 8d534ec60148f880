"""When the loop logs, evaluates and checkpoints: intervals in env steps.

A :class:`Periodic` fires the first time the env-step count reaches ``next`` and then
moves ``next`` past the count by whole intervals (the loop advances several env steps at a
time, ``num_envs`` per vector step, so it may jump over a boundary)::

    every 100, next 100:   count 96 -> no;  count 104 -> yes, next 200;  count 412 -> yes, next 500

The learner's target-network update (every ``target_update_period`` learner steps) runs
inside its compiled step, and the actors' weight refresh (every ``actor_update_period``
vector steps) belongs to the experience source: both count other things than env steps.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

__all__ = ["Periodic", "Schedule"]


@dataclasses.dataclass
class Periodic:
    """Fires every ``every`` env steps; ``every = 0`` (and ``next = None``) never fires."""

    every: int
    next: int | None

    @classmethod
    def starting(cls, every: int, now: int = 0) -> Periodic:
        """First firing at ``now + every`` (never if ``every`` is 0)."""
        if every < 0:
            raise ValueError(f"an interval must be >= 0 env steps (0: never), got {every!r}")
        return cls(every, now + every if every else None)

    def due(self, count: int) -> bool:
        """Whether it fires at ``count``; if so, ``next`` moves past ``count``."""
        if self.next is None or count < self.next:
            return False
        self.next += self.every * max(1, math.ceil((count - self.next + 1) / self.every))
        return True


@dataclasses.dataclass
class Schedule:
    """The loop's periodic work. ``next_*`` are saved in checkpoints (None: never)."""

    log: Periodic
    eval: Periodic
    checkpoint: Periodic

    @classmethod
    def from_config(cls, log_every: int, eval_every: int, checkpoint_every: int) -> Schedule:
        return cls(Periodic.starting(log_every), Periodic.starting(eval_every), Periodic.starting(checkpoint_every))

    def to_state(self) -> dict[str, Any]:
        return {"next_log": self.log.next, "next_eval": self.eval.next, "next_checkpoint": self.checkpoint.next}

    def restore(self, state: dict[str, Any], env_steps: int) -> None:
        """Continue a checkpoint's schedule at ``env_steps`` under today's intervals.

        Logging continues where it was; checkpoints are due ``checkpoint_every`` after the
        resume; evaluation continues where it was, or starts ``eval_every`` after the resume
        if the checkpoint had none scheduled. An interval set to 0 now never fires.
        """
        if self.log.every and state.get("next_log") is not None:
            self.log.next = int(state["next_log"])
        self.checkpoint = Periodic.starting(self.checkpoint.every, env_steps)
        if not self.eval.every:
            self.eval.next = None
        elif state.get("next_eval") is not None:
            self.eval.next = int(state["next_eval"])
        else:
            self.eval.next = env_steps + self.eval.every
