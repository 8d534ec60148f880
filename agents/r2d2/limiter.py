"""The samples-per-insert limiter: how many learner steps are due, and whether actors may insert.

Pure functions of the counters (Acme's ``_calculate_num_learner_steps`` is the model,
Reverb's ``SampleToInsertRatio`` the idea). With ``I`` sequences inserted since learning
started, ``S`` sequences sampled since then, ``R = samples_per_insert`` and an error buffer
``E >= 0`` (in sequences)::

    a learner step (batch_size sequences) may start while   S <= R * I + E - E_0
    actors may insert while                                 S >= R * I - E

with ``E_0 = 0`` when ``E = 0`` (the single-process loop: after each env step it catches
up to ``S ~= R * I`` within one batch) and ``E_0 = batch_size`` otherwise (the Ray
backend: the step must keep ``S`` inside the buffer). Before learning starts
(``inserted_at_learning_start`` is None) no learner step is due and inserting is free.
"""

from __future__ import annotations

import math

__all__ = ["learner_steps_due", "inserts_allowed", "error_buffer"]


def _check(inserted: int | None, sampled: int, samples_per_insert: float, buffer: float) -> None:
    if inserted is not None and inserted < 0:
        raise ValueError(f"inserted must be >= 0 (sequences since learning started), got {inserted!r}")
    if sampled < 0:
        raise ValueError(f"sampled must be >= 0, got {sampled!r}")
    if not (math.isfinite(samples_per_insert) and samples_per_insert > 0):
        raise ValueError(f"samples_per_insert must be a finite number > 0, got {samples_per_insert!r}")
    if not (math.isfinite(buffer) and buffer >= 0):
        raise ValueError(f"error_buffer must be a finite number >= 0, got {buffer!r}")


def learner_steps_due(inserted: int | None, sampled: int, samples_per_insert: float, batch_size: int, *,
                      error_buffer: float = 0.0, max_steps: int | None = None) -> int:
    """How many learner steps of ``batch_size`` sequences may run now.

    Args:
      inserted: sequences inserted since learning started (None: not started, 0 steps due).
      sampled: sequences sampled since learning started.
      samples_per_insert: R, the target sampled / inserted ratio (> 0).
      batch_size: sequences per learner step (>= 1).
      error_buffer: E >= 0; 0 for the single-process loop (see the module docstring).
      max_steps: cap on the answer (None: no cap).

    Returns:
      The number k >= 0 of steps such that each starts with ``S + i * batch_size <= R * I + E - E_0``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    _check(inserted, sampled, samples_per_insert, error_buffer)
    if inserted is None:
        return 0
    slack = error_buffer - batch_size if error_buffer else 0.0
    allowed = samples_per_insert * inserted + slack
    if sampled > allowed:
        return 0
    due = 1 + int((allowed - sampled) // batch_size)
    return due if max_steps is None else min(due, int(max_steps))


def inserts_allowed(inserted: int | None, sampled: int, samples_per_insert: float, *,
                    error_buffer: float = 0.0) -> bool:
    """Whether actors may insert more: ``S >= R * I - E`` (always before learning starts).

    Args: as :func:`learner_steps_due`.
    """
    _check(inserted, sampled, samples_per_insert, error_buffer)
    if inserted is None:
        return True
    return sampled >= samples_per_insert * inserted - error_buffer


def error_buffer(batch_size: int, samples_per_insert: float, min_replay_size: int, tolerance: float) -> float:
    """The Ray backend's E in sequences: ``max(batch_size, tolerance * R * min_replay_size)``."""
    return max(float(batch_size), tolerance * samples_per_insert * min_replay_size)
