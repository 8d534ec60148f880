"""What a training run has done so far: the loop's counters, saved in every checkpoint.

Each count has one owner: sequences inserted and sampled are the replay's
(``SequenceReplay.stats()``, saved with the replay), actor restarts the Ray source's.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

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

    def to_state(self) -> dict[str, Any]:
        """JSON-ready: one key per field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Counters:
        """Counters from a checkpoint's ``state.json``, which holds every field (other keys ignored)."""
        return cls(**{field.name: state[field.name] for field in dataclasses.fields(cls)})
