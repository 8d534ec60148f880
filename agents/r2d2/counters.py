"""What a training run has done so far: the loop's counters, saved in every checkpoint.

Sequences inserted and sampled are the replay's own counts (``SequenceReplay.stats()``,
saved with the replay), so they are not kept here a second time.

``Counters.to_state()`` writes the same keys (and values) as the string-keyed dict the
loop kept before, so ``state.json`` keeps its format and older checkpoints resume.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["Counters"]


@dataclasses.dataclass
class Counters:
    """Totals over the whole run (all resumes)."""

    env_steps: int = 0
    """Sub-env steps, ``num_envs`` per vector step, NEXT_STEP reset steps included."""
    vector_steps: int = 0
    """Vector-env steps (the Ray backend: summed over its workers)."""
    episodes: int = 0
    """Completed training episodes."""
    inserted_at_learning_start: int | None = None
    """The replay's ``stats()["inserted"]`` when it first held ``min_replay_size``; None before."""
    wall_time_s: float = 0.0
    """Training wall-clock time, summed over resumes (evaluation included)."""
    eval_time_s: float = 0.0
    """Of which evaluating."""
    resumes: int = 0
    """How often the run was resumed."""
    actor_restarts: int | None = None
    """Ray backend: failures of actor processes (None in the single-process loop)."""

    def to_state(self) -> dict[str, Any]:
        """JSON-ready; ``actor_restarts`` only when counted (as before)."""
        state = dataclasses.asdict(self)
        if state["actor_restarts"] is None:
            del state["actor_restarts"]
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Counters:
        """Counters from a checkpoint's ``state.json`` (other keys ignored, missing ones 0)."""
        values = {}
        for field in dataclasses.fields(cls):
            if state.get(field.name) is not None:
                kind = float if field.name.endswith("_s") else int
                values[field.name] = kind(state[field.name])
        return cls(**values)
