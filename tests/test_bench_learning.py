"""The learning benchmark's stopping rule and a tiny end-to-end run of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import bench_learning  # noqa: E402


def _evals(means, every=5_000):
    return [{"env_steps": every * (i + 1), "mean": m, "train_time_s": 2.0 * (i + 1)} for i, m in enumerate(means)]


def test_first_and_sustained_points():
    points = bench_learning.solve_points(_evals([0.0, 0.95, 0.5, 0.9, 1.0, 0.92]), 0.9)
    assert points["first"]["env_steps"] == 10_000
    # The dip at 15k resets the streak: sustained from 20k; the run reached 30k < 2 x 20k.
    assert points["sustained"]["env_steps"] == 20_000 and points["sustained"]["train_time_s"] == 8.0
    assert not points["stop"]


def test_the_run_stops_at_twice_the_sustained_point():
    assert bench_learning.solve_points(_evals([0.0, 0.95, 0.95, 0.95]), 0.9)["stop"]  # 10k .. 20k
    assert not bench_learning.solve_points(_evals([0.0, 0.95, 0.95]), 0.9)["stop"]
    unsolved = bench_learning.solve_points(_evals([0.95, 0.1]), 0.9)
    assert unsolved["sustained"] is None and unsolved["first"]["env_steps"] == 5_000 and not unsolved["stop"]


def test_a_sustained_point_counts_only_when_held_to_twice_its_steps():
    held = bench_learning._summary(_evals([0.0, 0.95, 0.95, 0.95]), 0.9)
    assert held["sustained_steps"] == 10_000 and held["sustained_wall_s"] == 4.0 and held["first_steps"] == 10_000
    cut = bench_learning._summary(_evals([0.0, 0.0, 0.0, 0.95]), 0.9)  # cap at 20k, last eval at threshold
    assert cut["sustained_steps"] is None and cut["first_steps"] == 20_000


def test_medians_count_unsolved_runs_as_never():
    assert bench_learning._median([10.0, None, 30.0]) == 30.0
    assert bench_learning._median([10.0, None, None]) is None
    assert bench_learning._ratio(5.0, 10.0) == 0.5 and bench_learning._ratio(None, 10.0) is None


def test_evaluation_period_is_per_task_and_overridable():
    assert bench_learning._task("tmaze5", None).eval_every == 1_000
    assert bench_learning._task("cartpole_novel", None).eval_every == 5_000
    assert bench_learning._task("cartpole_novel", 2_500).eval_every == 2_500
    assert bench_learning.TASKS["tmaze10"].eval_every == 5_000


def test_cap_below_an_evaluation_period_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_learning.main(["--tasks", "cartpole_novel", "--max-env-steps", "2000", "--out", "/nonexistent/x"])
    assert exit_info.value.code == 2
    assert "--max-env-steps must be >= the evaluation period of the tasks (5000), got 2000" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # tmaze5 alone: its own period (1k) is the bound
        bench_learning.main(["--tasks", "tmaze5", "--agents", "ours", "--max-env-steps", "500", "--out", "/nonexistent/x"])
    assert "evaluation period of the tasks (1000), got 500" in capsys.readouterr().err


def _agents():
    try:
        import sb3_contrib  # noqa: F401
    except ImportError:
        return ["ours"]
    return ["ours", "peer"]


@pytest.mark.slow
def test_tiny_benchmark_run_writes_results_plot_and_json(tmp_path):
    agents = _agents()
    out = tmp_path / "bench"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "bench_learning.py"), "--tasks", "tmaze5", "--seeds", "0",
         "--agents", *agents, "--max-env-steps", "2000", "--out", str(out)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary) >= {"tmaze5", "steps_vs_peer_tmaze5", "wall_vs_peer_tmaze5"}
    assert summary["eval_every"] == {"tmaze5": 1000}  # the task's own evaluation period
    assert summary["machine"]["cores"] >= 1 and summary["machine"]["python_loop_1e6_s"] > 0  # what it ran on
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["agent"] for r in rows) == sorted(agents)
    for row in rows:
        assert [e["env_steps"] for e in row["evals"]][:1] and all(
            e["env_steps"] >= 1000 * (i + 1) for i, e in enumerate(row["evals"]))
        assert all(e["train_time_s"] > 0 for e in row["evals"])
    assert (out / "learning_tmaze5.png").stat().st_size > 1000


def _run(sustained_steps, last_steps, sustained_wall=None, last_wall=100.0):
    return {"sustained_steps": sustained_steps, "sustained_wall_s": sustained_wall,
            "evals": [{"env_steps": last_steps, "mean": 0.0, "train_time_s": last_wall}]}


def test_ratios_against_a_peer_that_never_reached_the_threshold_are_upper_bounds():
    ours = [_run(10_000, 20_000, 5.0), _run(20_000, 40_000, 9.0), _run(None, 100_000)]
    peer_solved = [_run(40_000, 80_000, 20.0), _run(50_000, 100_000, 30.0), _run(80_000, 100_000, 40.0)]
    assert bench_learning.compare(ours, peer_solved, "steps") == (0.4, "exact")
    assert bench_learning.compare(ours, peer_solved, "wall_s") == (0.3, "exact")
    peer_unsolved = [_run(None, 100_000, last_wall=90.0), _run(None, 100_000, last_wall=80.0),
                     _run(60_000, 100_000, 50.0)]
    # The peer's median is "never": at least its stopping points' median (100k, 80 s).
    assert bench_learning.compare(ours, peer_unsolved, "steps") == (0.2, "upper_bound")
    assert bench_learning.compare(ours, peer_unsolved, "wall_s") == (0.113, "upper_bound")
    assert bench_learning.compare(peer_unsolved, ours, "steps") == (5.0, "lower_bound")
    assert bench_learning.compare(peer_unsolved, peer_unsolved, "steps") == (None, None)


def test_compare_with_one_agent_only_is_null_not_nan():
    """--agents ours: no peer runs, so no ratio (it was NaN from the median of nothing)."""
    ours = [{"sustained_steps": 2000, "sustained_wall_s": 9.0, "evals": [{"env_steps": 4000, "train_time_s": 18.0}]}]
    assert bench_learning.compare(ours, [], "steps") == (None, None)
    assert bench_learning.compare([], ours, "wall_s") == (None, None)


def _needs_peer():
    try:
        import sb3_contrib  # noqa: F401
    except ImportError:
        pytest.skip('the peer needs sb3-contrib (pip install -e ".[peer]")')


def test_the_peer_worker_imports_no_tensorflow():
    """The peer's worker imports, in a fresh process: TensorFlow must stay out (a CUDA torch
    with triton beside TensorFlow crashes), even though tensorboard would import it."""
    _needs_peer()
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import bench_learning; bench_learning.import_peer(); "
            "loaded = sorted(n for n, m in sys.modules.items() if m is not None and n.split('.')[0] in "
            "('tensorflow', 'keras')); print(loaded[:5]); sys.exit(1 if loaded else 0)")
    result = subprocess.run([sys.executable, "-c", code, os.path.join(ROOT, "scripts")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout, result.stderr[-2000:])


def test_the_peer_refuses_a_process_that_holds_tensorflow(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", sys)  # any module object: "imported already"
    with pytest.raises(RuntimeError, match="must not hold TensorFlow"):
        bench_learning.keep_tensorflow_out()


@pytest.mark.slow
def test_the_peer_worker_starts_and_returns_evals(tmp_path):
    _needs_peer()
    out = tmp_path / "peer.json"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "bench_learning.py"), "--max-env-steps", "1000",
         "--peer-threads", "1", "--_worker", "tmaze5", "peer", "100", str(out)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    row = json.loads(out.read_text())
    assert row["agent"] == "peer" and row["seed"] == 100
    assert [e["env_steps"] >= 1000 for e in row["evals"]] == [True]
    assert -1.0 <= row["evals"][0]["mean"] <= 1.0 and row["evals"][0]["train_time_s"] > 0
