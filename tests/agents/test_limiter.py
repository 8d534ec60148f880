"""The samples-per-insert limiter on hand numbers, and against the loop it replaced."""

from __future__ import annotations

import numpy as np
import pytest

from agents.r2d2.limiter import error_buffer, inserts_allowed, learner_steps_due


def test_nothing_is_due_before_learning_starts_and_inserting_is_free():
    assert learner_steps_due(None, 0, 2.0, 8) == 0
    assert inserts_allowed(None, 10_000, 2.0, error_buffer=32.0)


def test_single_process_catches_up_to_the_ratio_within_one_batch():
    # R = 2, I = 10: up to S = 20 sampled. From S = 0 steps start at 0, 8, 16 (24 > 20).
    assert learner_steps_due(10, 0, 2.0, 8) == 3
    assert learner_steps_due(10, 20, 2.0, 8) == 1  # S = R * I: one more step may start
    assert learner_steps_due(10, 21, 2.0, 8) == 0
    assert learner_steps_due(10, 0, 2.0, 8, max_steps=2) == 2
    assert learner_steps_due(0, 0, 2.0, 8) == 1  # learning just started: one step


def test_with_an_error_buffer_steps_stay_inside_it():
    # R = 2, I = 10, E = 32, B = 8: a step may start while S + 8 <= 20 + 32, i.e. S <= 44.
    assert learner_steps_due(10, 40, 2.0, 8, error_buffer=32.0) == 1
    assert learner_steps_due(10, 44, 2.0, 8, error_buffer=32.0) == 1
    assert learner_steps_due(10, 45, 2.0, 8, error_buffer=32.0) == 0
    assert learner_steps_due(10, 0, 2.0, 8, error_buffer=32.0) == 6  # 0, 8, ..., 40
    # Actors may insert while S >= R * I - E: with I = 30, S >= 28.
    assert inserts_allowed(30, 28, 2.0, error_buffer=32.0)
    assert not inserts_allowed(30, 27, 2.0, error_buffer=32.0)


@pytest.mark.parametrize("seed", range(3))
def test_matches_the_step_by_step_rule(seed):
    """The count equals running steps one by one while ``sampled <= R * inserted + slack``."""
    rng = np.random.default_rng(seed)
    for _ in range(300):
        inserted, batch = int(rng.integers(0, 200)), int(rng.integers(1, 40))
        ratio = float(rng.choice([0.25, 0.5, 1.0, 2.0, 3.0, 12.0, 0.3]))
        buffer = float(rng.choice([0.0, batch, 3.5 * batch]))
        sampled = int(rng.integers(0, 3 * ratio * inserted + 3 * batch + 1))
        allowed = ratio * inserted + (buffer - batch if buffer else 0.0)
        steps, s = 0, sampled
        while s <= allowed and steps < 16:
            steps, s = steps + 1, s + batch
        assert learner_steps_due(inserted, sampled, ratio, batch, error_buffer=buffer, max_steps=16) == steps


def test_error_buffer_is_at_least_one_batch():
    assert error_buffer(32, 12.0, 64, 0.1) == pytest.approx(76.8)
    assert error_buffer(32, 1.0, 64, 0.1) == 32.0


@pytest.mark.parametrize("kwargs,match", [
    (dict(inserted=-1, sampled=0, samples_per_insert=1.0, batch_size=8), "inserted must be >= 0.*got -1"),
    (dict(inserted=1, sampled=0, samples_per_insert=0.0, batch_size=8), "samples_per_insert must be .* > 0, got 0.0"),
    (dict(inserted=1, sampled=0, samples_per_insert=1.0, batch_size=0), "batch_size must be an int >= 1, got 0"),
    (dict(inserted=1, sampled=0, samples_per_insert=1.0, batch_size=8, error_buffer=-1.0),
     "error_buffer must be .* >= 0, got -1.0"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        learner_steps_due(**kwargs)
