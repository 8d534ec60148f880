"""The loop's periodic schedule and counters; the checkpoint state keeps its format."""

from __future__ import annotations

import pytest

from agents.r2d2.counters import Counters
from agents.r2d2.schedule import Periodic, Schedule

# state.json keys the loop has always written for its counters and schedule.
STATE_KEYS = {"env_steps", "vector_steps", "episodes", "inserted_at_learning_start", "wall_time_s", "eval_time_s", "resumes", "next_log",
              "next_eval", "next_checkpoint"}


def test_periodic_fires_once_per_crossing_and_skips_whole_intervals():
    every = Periodic.starting(100)
    assert every.next == 100
    assert not every.due(96)
    assert every.due(104) and every.next == 200
    assert not every.due(104)
    assert every.due(412) and every.next == 500  # jumped over 200..400: one firing
    never = Periodic.starting(0)
    assert never.next is None and not never.due(10**9)
    with pytest.raises(ValueError, match="interval must be >= 0 env steps.*got -5"):
        Periodic.starting(-5)


def test_schedule_state_round_trip_and_resume_rules():
    schedule = Schedule.from_config(log_every=100, eval_every=0, checkpoint_every=500)
    assert schedule.to_state() == {"next_log": 100, "next_eval": None, "next_checkpoint": 500}
    # A checkpoint at 1234 steps, written with eval off; resumed with eval every 300.
    resumed = Schedule.from_config(log_every=100, eval_every=300, checkpoint_every=500)
    resumed.restore({"next_log": 1300, "next_eval": None, "next_checkpoint": 1500}, env_steps=1234)
    assert resumed.to_state() == {"next_log": 1300, "next_eval": 1534, "next_checkpoint": 1734}
    # Evaluation that was scheduled continues where it was; turned off now, it never fires.
    kept = Schedule.from_config(100, 300, 0)
    kept.restore({"next_log": 1300, "next_eval": 1400, "next_checkpoint": None}, env_steps=1234)
    assert kept.to_state() == {"next_log": 1300, "next_eval": 1400, "next_checkpoint": None}
    off = Schedule.from_config(100, 0, 0)
    off.restore({"next_log": 1300, "next_eval": 1400, "next_checkpoint": None}, env_steps=1234)
    assert off.eval.next is None and not off.eval.due(10**6)


def test_counters_round_trip_through_state():
    counters = Counters(env_steps=1200, vector_steps=300, episodes=108, inserted_at_learning_start=18,
                        wall_time_s=7.66, eval_time_s=0.12, resumes=2)
    written = {**counters.to_state(), **Schedule.from_config(200, 400, 0).to_state()}
    assert set(written) == STATE_KEYS
    assert Counters.from_state({**written, "learner_steps": 67}) == counters
    fresh = Counters()  # learning not started yet
    assert Counters.from_state(fresh.to_state()).inserted_at_learning_start is None
