"""The learning benchmark: its outcome of a run, its statistics, its checks, a tiny run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import bench_learning  # noqa: E402

def _evals(means, every=5_000):
    return [{"env_steps": every * (i + 1), "mean": m, "train_time_s": 2.0 * (i + 1)} for i, m in enumerate(means)]


def _row(means, task="tmaze10", agent="ours", seed=100, every=5_000, budget=None):
    evals = _evals(means, every)
    return {"task": task, "agent": agent, "seed": seed, "evals": evals, "eval_every": every,
            "budget": budget if budget is not None else every * len(means),
            "machine": {"cpu": "test cpu", "cores": 2, "python_loop_1e6_s": 0.05}, "date": "2026-12-05T16:00:00+00:00"}


def test_sustained_means_held_from_some_evaluation_to_the_end_of_the_budget():
    evals = _evals([0.0, 0.95, 0.5, 0.9, 1.0, 0.92])
    assert bench_learning.first_point(evals, 0.9)["env_steps"] == 10_000
    # The dip at 15k resets the streak: sustained from 20k, held to the 30k budget.
    point = bench_learning.sustained_point(evals, 0.9, 30_000)
    assert point["env_steps"] == 20_000 and point["train_time_s"] == 8.0
    assert bench_learning.sustained_point(_evals([0.95, 0.95, 0.1]), 0.9, 15_000) is None  # fell at the end
    assert bench_learning.sustained_point(evals, 0.9, 40_000) is None  # stopped before its budget


def test_a_run_that_never_sustains_counts_with_its_budget_and_whole_training_time():
    held = bench_learning.outcome(_row([0.0, 0.95, 0.95, 0.95]))
    assert held == {"sustained": True, "steps": 10_000, "wall_s": 4.0, "first_steps": 10_000,
                    "auc": pytest.approx((1 / 1.9 + 3) / 4)}  # T-maze: floor -1, threshold 0.9
    never = bench_learning.outcome(_row([0.0, 0.95, 0.0, 0.5]))
    assert never["sustained"] is False and never["steps"] == 20_000 and never["wall_s"] == 8.0
    assert never["first_steps"] == 10_000


def test_normalised_area_runs_from_the_floor_to_the_threshold_and_is_clipped():
    cartpole = bench_learning.TASKS["cartpole_novel"]  # floor 0, threshold 475
    evals = _evals([0.0, 237.5, 500.0, 475.0])
    assert bench_learning.normalised_auc(evals, cartpole, 20_000, 5_000) == pytest.approx((0 + 0.5 + 1 + 1) / 4)
    # A grid point without an evaluation (a run cut short) counts as the floor.
    assert bench_learning.normalised_auc(evals[:2], cartpole, 20_000, 5_000) == pytest.approx(0.5 / 4)


def test_the_grid_takes_the_evaluation_at_or_just_after_each_point():
    # The peer evaluates on its 8-env step: at 1,000 -> 1,000, 2,000 -> 2,008; 3,000 missing.
    evals = [{"env_steps": 1_000, "mean": 0.1}, {"env_steps": 2_008, "mean": 0.2}, {"env_steps": 4_000, "mean": 0.4}]
    assert bench_learning.on_grid(evals, 4_000, 1_000, fill=-1.0).tolist() == [0.1, 0.2, -1.0, 0.4]


def test_iqm_and_its_interval_are_rliables():
    pytest.importorskip("rliable")
    iqm, low, high = bench_learning.iqm_interval([1.0, 2.0, 3.0, 4.0, 50.0])
    assert iqm == 3.0  # the 25% trimmed mean drops 1 and 50
    assert low < iqm < high and high < 50.0
    assert bench_learning.iqm_interval([7.0] * 5) == (7.0, 7.0, 7.0)
    assert bench_learning.iqm_interval([1.0, 9.0]) == bench_learning.iqm_interval([1.0, 9.0])  # reproducible
    p, low, high = bench_learning.probability_of_improvement([3.0, 4.0, 5.0], [1.0, 2.0, 3.0])
    assert p == pytest.approx(8.5 / 9) and 0.0 <= low <= p <= high <= 1.0  # one tie counts half
    curve, band_low, band_high = bench_learning.iqm_curve(np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 0.0]]))
    assert curve.tolist() == [0.0, 1.0] and band_low.shape == band_high.shape == (2,)


def test_the_vectorized_statistics_are_rliables():
    metrics = pytest.importorskip("rliable.metrics")
    rng = np.random.default_rng(0)
    for n, m in ((5, 5), (10, 7), (4, 3)):
        x, y = rng.integers(0, 4, n).astype(float), rng.integers(0, 4, m).astype(float)  # with ties
        assert bench_learning._iqm(x, 0) == pytest.approx(metrics.aggregate_iqm(x.reshape(-1, 1)))
        assert bench_learning._poi(x, y, 0) == pytest.approx(
            metrics.probability_of_improvement(x.reshape(-1, 1), y.reshape(-1, 1)))
    xs = rng.normal(size=(3, 6))  # resamples along axis 1, as the bootstrap passes them
    assert bench_learning._poi(xs, xs[:, :4], 1).shape == (3,)


def _stats(iqm, censored):
    return {"steps_iqm": iqm, "wall_s_iqm": iqm, "censored": censored}


def test_ratios_say_which_bound_a_censored_iqm_gives():
    assert bench_learning.compare(_stats(10.0, 0), _stats(40.0, 0), "steps") == (0.25, "exact")
    # The peer's IQM counts a run at its budget: its true IQM is at least that, the ratio at most.
    assert bench_learning.compare(_stats(10.0, 0), _stats(40.0, 2), "steps") == (0.25, "upper_bound")
    assert bench_learning.compare(_stats(10.0, 1), _stats(40.0, 0), "wall_s") == (0.25, "lower_bound")
    assert bench_learning.compare(_stats(10.0, 1), _stats(40.0, 1), "steps") == (0.25, "unbounded")
    assert bench_learning.compare(_stats(10.0, 0), None, "steps") == (None, None)  # --agents ours


def test_summary_keys_of_the_json_line():
    pytest.importorskip("rliable")
    rows = [_row([0.0, 0.95, 0.95, 0.95], seed=s) for s in (100, 101, 102)]
    rows += [_row([0.0, 0.0, 0.0, 0.95 if s == 100 else 0.0], agent="peer", seed=s) for s in (100, 101, 102)]
    summary = bench_learning.summarise(rows, reps=200)
    assert summary["sustained_fraction_ours_tmaze10"] == 1.0
    assert summary["sustained_fraction_peer_tmaze10"] == pytest.approx(0.333)
    assert summary["steps_vs_peer_tmaze10"] == 0.5 and summary["steps_vs_peer_tmaze10_is"] == "upper_bound"
    assert summary["wall_vs_peer_tmaze10"] == 0.5
    assert summary["prob_improvement_tmaze10"] == 1.0
    assert summary["tmaze10"]["peer"]["censored"] == 2 and summary["tmaze10"]["ours"]["steps_ci"] == [10_000, 10_000]
    assert summary["seeds"] == [100, 101, 102] and summary["tuning_seeds"] == []
    assert summary["machines"] == ["test cpu, 2 cores"] and summary["dates"] == ["2026-12-05"]


def test_budgets_and_evaluation_periods_are_per_task_and_overridable():
    assert bench_learning._task("tmaze5").eval_every == 1_000 and bench_learning._task("tmaze5").budget == 30_000
    assert bench_learning._task("cartpole_novel").budget == bench_learning._task("tmaze10").budget == 150_000
    assert bench_learning._task("cartpole_novel", 2_500).eval_every == 2_500
    assert bench_learning._task("cartpole_novel", None, 20_000).budget == 20_000


@pytest.mark.parametrize("name", sorted(bench_learning.TASKS))
def test_every_task_makes_its_env_and_names_a_preset(name):
    import envs
    from agents.r2d2.presets import PRESETS

    task = bench_learning.TASKS[name]
    if task.env_id.startswith("popgym:"):
        pytest.importorskip("popgym")
    assert task.preset in PRESETS and task.floor < task.threshold
    env = envs.make_env(task.env_id, **task.env_kwargs)
    try:
        observation, _ = env.reset(seed=0)
        assert env.observation_space.contains(observation)
        assert env.observation_space.contains(env.step(env.action_space.sample())[0])
    finally:
        env.close()


def test_cap_below_an_evaluation_period_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_learning.main(["--tasks", "cartpole_novel", "--max-env-steps", "2000", "--out", "/nonexistent/x"])
    assert exit_info.value.code == 2
    assert "--max-env-steps must be >= the evaluation period of the tasks (5000), got 2000" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # tmaze5 alone: its own period (1k) is the bound
        bench_learning.main(["--tasks", "tmaze5", "--agents", "ours", "--max-env-steps", "500", "--out", "/nonexistent/x"])
    assert "evaluation period of the tasks (1000), got 500" in capsys.readouterr().err


def test_tuning_seeds_are_refused_for_reported_figures_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        # --max-env-steps 500 would be refused next: no run starts even if the seed check were missing.
        bench_learning.main(["--tasks", "tmaze5", "--agents", "ours", "--seeds", "100", "3", "0",
                             "--max-env-steps", "500", "--out", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--seeds 0 3: seeds 0-9 are the presets' tuning seeds" in err and "--tuning-seeds-ok" in err
    assert not out.exists()
    assert bench_learning.REPORTING_SEEDS == (100, 101, 102, 103, 104)
    assert not set(bench_learning.REPORTING_SEEDS) & set(bench_learning.TUNING_SEEDS)


def test_peer_results_from_another_machine_are_refused_and_left_as_they_were(tmp_path, capsys):
    pytest.importorskip("rliable")
    if bench_learning.importlib.util.find_spec("sb3_contrib") is None:
        pytest.skip('the peer needs sb3-contrib (pip install -e ".[peer]")')
    peer_file = tmp_path / "peer.jsonl"
    row = dict(_row([0.95, 0.95], task="tmaze5", agent="peer", every=1_000), peer_spec=bench_learning.PEER_SPEC)
    peer_file.write_text(json.dumps(row) + "\n")
    before = peer_file.read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        bench_learning.main(["--tasks", "tmaze5", "--agents", "peer", "--seeds", "100", "--max-env-steps", "2000",
                             "--peer-results", str(peer_file), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "row 1 is 'peer' on 'test cpu, 2 cores'; expected the peer's rows from this machine" in capsys.readouterr().err
    assert peer_file.read_bytes() == before and not (tmp_path / "out").exists()


def test_peer_results_of_this_machine_are_reused_not_rerun(tmp_path, capsys):
    pytest.importorskip("rliable")
    if bench_learning.importlib.util.find_spec("sb3_contrib") is None:
        pytest.skip('the peer needs sb3-contrib (pip install -e ".[peer]")')
    here = bench_learning.machine()
    peer_file = tmp_path / "peer.jsonl"
    row = dict(_row([0.5, 0.95], task="tmaze5", agent="peer", every=1_000), peer_spec=bench_learning.PEER_SPEC,
               machine=here)
    peer_file.write_text(json.dumps(row) + "\n")
    out = tmp_path / "out"
    # No worker can start here (a subprocess would take seconds and print its progress).
    assert bench_learning.main(["--tasks", "tmaze5", "--agents", "peer", "--seeds", "100", "--max-env-steps", "2000",
                                "--peer-results", str(peer_file), "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["sustained_fraction_peer_tmaze5"] == 1.0 and summary["reused_peer_rows"] == 1
    (stored,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert stored["reused_from"] == str(peer_file) and stored["evals"] == row["evals"]
    assert json.loads((out / "summary.json").read_text()) == summary
    assert (out / "learning_tmaze5.png").stat().st_size > 1000


def test_a_malformed_results_row_is_named(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"task": "tmaze5"}) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"r.jsonl, line 1: a results row needs \['agent', 'budget'"):
        bench_learning.read_rows(str(path))


def _agents():
    try:
        import sb3_contrib  # noqa: F401
    except ImportError:
        return ["ours"]
    return ["ours", "peer"]


@pytest.mark.slow
def test_tiny_benchmark_run_writes_results_plot_and_json(tmp_path):
    pytest.importorskip("rliable")
    agents = _agents()
    out = tmp_path / "bench"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "bench_learning.py"), "--tasks", "tmaze5", "--seeds", "100",
         "--agents", *agents, "--max-env-steps", "2000", "--peer-threads", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"tmaze5", "steps_vs_peer_tmaze5", "wall_vs_peer_tmaze5", "sustained_fraction_ours_tmaze5"} <= set(summary)
    assert summary["tmaze5"]["ours"]["eval_every"] == 1000 and summary["tmaze5"]["ours"]["budget"] == 2000
    assert summary["seeds"] == [100] and len(summary["machines"]) == 1  # what it ran on
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["agent"] for r in rows) == sorted(agents)
    for row in rows:
        # No early stop: every run evaluates at every 1k up to its budget.
        assert [e["env_steps"] // 1000 for e in row["evals"]] == [1, 2]
        assert all(e["train_time_s"] > 0 for e in row["evals"])
        assert row["machine"]["cores"] >= 1 and row["budget"] == 2000 and row["tuning_seed"] is False
        if row["agent"] == "ours":  # the recipe it ran, and from which checkout
            assert row["preset_config"] == bench_learning.preset_config(bench_learning.TASKS["tmaze5"])
            assert row["commit"] is None or len(row["commit"].split("+")[0]) == 40
    assert bench_learning.stale_rows(rows) == []
    assert (out / "learning_tmaze5.png").stat().st_size > 1000


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


# ----------------------------------------------------------------------------- the README's table

import results_table  # noqa: E402

README_FIXTURE = """# Project

Text before.

<!-- results: begin -->
Prose about the results.

<!-- results-table: begin (generated: scripts/results_table.py) -->
| an old | table |
|---|---|
| 10k | 30 s |
<!-- results-table: end -->

Prose after the table.
<!-- results: end -->

## Next section
"""


def _fixture_rows(tmp_path, preset=None):
    preset = preset or bench_learning.preset_config(bench_learning.TASKS["tmaze5"])
    rows = [dict(_row([0.0, 0.95, 0.95, 0.95], task="tmaze5", seed=s, every=1_000), shared_machine=True,
                 preset_config=preset) for s in (100, 101, 102, 103, 104)]
    rows += [_row([0.0, 0.0, 0.5, 0.95 if s < 102 else 0.0], task="tmaze5", agent="peer", seed=s, every=1_000)
             for s in (100, 101, 102, 103, 104)]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_the_results_table_is_written_from_the_results_and_nothing_else_changes(tmp_path):
    pytest.importorskip("rliable")
    results = _fixture_rows(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(README_FIXTURE)
    assert results_table.main([str(results), "--write-readme", str(readme)]) == 0
    text = readme.read_text()
    before, after = README_FIXTURE.split("| an old | table |\n|---|---|\n| 10k | 30 s |\n")
    assert text.startswith(before) and text.endswith(after)  # every byte outside the block kept
    table = text[len(before):len(text) - len(after)]
    assert "| T-maze corridor 5 (0.9; 4k, every 1k) | r2d2_state | 5 of 5 | 2k [2k, 2k] |" in table
    assert "| | RecurrentPPO | 2 of 5 | >= 4k [" in table  # censored runs: a lower bound
    assert "| | ours / peer | | env steps 0.5 (upper bound) | wall time 0.5 (upper bound) | P(ours > peer) " in table
    assert "Seeds 100-104 (reporting seeds: no preset was tuned on them), measured 2026-12-05 on test cpu, 2 cores" in table
    assert "beside other jobs" in table and "10k | 30 s" not in table
    # Regenerating gives the same bytes (fixed bootstrap state): no drift from re-running it.
    assert results_table.main([str(results), "--write-readme", str(readme)]) == 0
    assert readme.read_text() == text


def test_the_results_table_refuses_a_readme_without_its_markers_and_leaves_it(tmp_path, capsys):
    pytest.importorskip("rliable")
    results = _fixture_rows(tmp_path)
    readme = tmp_path / "README.md"
    broken = README_FIXTURE.replace("<!-- results-table: end -->\n", "")
    readme.write_text(broken)
    with pytest.raises(SystemExit) as exit_info:
        results_table.main([str(results), "--write-readme", str(readme)])
    assert exit_info.value.code == 2
    assert "expected one line starting '<!-- results-table: begin' and one '<!-- results-table: end -->', " \
           "found 1 and 0" in capsys.readouterr().err
    assert readme.read_text() == broken


def test_a_row_is_stale_when_its_task_preset_has_changed_since_it_ran():
    task = bench_learning.TASKS["tmaze10"]
    now = bench_learning.preset_config(task)
    row = dict(_row([0.95]), preset_config=now)
    assert bench_learning.stale_rows([row]) == []
    before = json.loads(json.dumps(now))
    before["r2d2"]["adam_epsilon"] = 0.001
    before["r2d2"]["network"]["lstm_units"] = [32]
    before["a_field_removed_since"] = 1  # only in the row: not a change
    assert bench_learning.stale_rows([dict(row, preset_config=before)]) == [
        f"tmaze10 seed 100: r2d2.adam_epsilon: 0.001 -> {json.dumps(now['r2d2']['adam_epsilon'])}; "
        f"r2d2.network.lstm_units: [32] -> {json.dumps(now['r2d2']['network']['lstm_units'])}"]
    assert bench_learning.stale_rows([_row([0.95])]) == ["tmaze10 seed 100: no preset_config recorded"]
    # A field added since the row ran: the row ran at its default, a change only where the preset departs.
    added = json.loads(json.dumps(now))
    del added["r2d2"]["eval_epsilon"]  # the preset keeps the default: the same agent
    assert bench_learning.stale_rows([dict(row, preset_config=added)]) == []
    departs = bench_learning.preset_config(task, {"r2d2": {"policy_average_rate": 0.01}})
    recorded = json.loads(json.dumps(departs))
    del recorded["r2d2"]["policy_average_rate"]
    assert bench_learning.stale_rows([dict(row, overrides={"r2d2": {"policy_average_rate": 0.01}},
                                           preset_config=recorded)]) == [
        "tmaze10 seed 100: r2d2.policy_average_rate: (not recorded, the default) 0.0 -> 0.01"]
    # Rows run with overrides compare with the preset and those overrides.
    overrides = {"r2d2": {"learning_rate": 3e-4}}
    tried = dict(row, overrides=overrides, preset_config=bench_learning.preset_config(task, overrides))
    assert bench_learning.stale_rows([tried]) == []
    assert bench_learning.stale_rows([dict(tried, overrides=None)]) == [
        f"tmaze10 seed 100: r2d2.learning_rate: 0.0003 -> {json.dumps(now['r2d2']['learning_rate'])}"]
    assert bench_learning.stale_rows([_row([0.95], agent="peer")]) == []  # the peer has no preset


def test_the_results_table_refuses_stale_rows_and_leaves_the_readme(tmp_path, capsys):
    pytest.importorskip("rliable")
    changed = bench_learning.preset_config(bench_learning.TASKS["tmaze5"])
    changed["r2d2"]["discount"] = 0.9
    results = _fixture_rows(tmp_path, preset=changed)
    readme = tmp_path / "README.md"
    readme.write_text(README_FIXTURE)
    with pytest.raises(SystemExit) as exit_info:
        results_table.main([str(results), "--write-readme", str(readme)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "5 of this project's rows were measured with a preset that has changed since" in err
    assert "tmaze5 seed 100: r2d2.discount: 0.9 -> 0.7" in err
    assert readme.read_text() == README_FIXTURE
    assert results_table.main([str(results)]) == 0  # printed, with a warning per row
    assert "warning: stale row, tmaze5 seed 104: r2d2.discount: 0.9 -> 0.7" in capsys.readouterr().err


def test_the_committed_results_come_from_the_presets_of_now():
    """A preset changed without re-running its reporting seeds fails here, not in a reader's hands."""
    rows = bench_learning.read_rows(os.path.join(ROOT, "docs", "learning_results.jsonl"))
    assert any(r["agent"] == "ours" for r in rows)
    assert bench_learning.stale_rows(rows) == []


def test_the_results_table_marks_tuning_seeds(tmp_path, capsys):
    pytest.importorskip("rliable")
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(_row([0.95, 0.95], task="tmaze5", seed=3, every=1_000)) + "\n")
    assert results_table.main([str(path)]) == 0
    assert "Seeds 3 (tuning seeds 3 among them: not reported figures)" in capsys.readouterr().out


@pytest.mark.parametrize("document", ["README.md", "docs/benchmarks.md"])
def test_the_committed_results_tables_are_the_committed_results(document):
    """No hand edit and no stale table: each block is what the generator makes of the rows
    kept in docs/learning_results.jsonl (regenerate with scripts/results_table.py when not)."""
    pytest.importorskip("rliable")
    rows = bench_learning.read_rows(os.path.join(ROOT, "docs", "learning_results.jsonl"))
    with open(os.path.join(ROOT, document), encoding="utf-8") as file:
        text = file.read()
    expected = results_table.replace_block(text, results_table.render(rows, "docs/learning_results.jsonl"), document)
    assert text == expected, f"{document}: run python scripts/results_table.py docs/learning_results.jsonl " \
                             f"--write-readme {document}"


def test_our_runs_do_not_stop_early_once_they_hold_the_threshold(monkeypatch):
    """Sustained means held to the end of the budget: the evaluation callback never stops a run
    (the earlier rule stopped it at twice its sustained point)."""
    import agents.r2d2.loop

    answers = []

    class FakeLoop:
        def __init__(self, config, run_dir, on_eval, on_learner_step=None):
            self.config, self.on_eval = config, on_eval

        def run(self):
            for record in _evals([0.95] * 6, every=1_000):
                answers.append(self.on_eval(dict(record, std=0.0)))

    monkeypatch.setattr(agents.r2d2.loop, "TrainingLoop", FakeLoop)
    evals = bench_learning.run_ours(bench_learning.TASKS["tmaze5"], 100, 1_000, "/nonexistent/run")
    assert answers == [False] * 6 and len(evals) == 6


def test_overrides_change_only_the_named_fields_of_our_preset():
    task = bench_learning.TASKS["cartpole_novel"]
    preset = bench_learning.ours_config(task)
    config = bench_learning.ours_config(task, {"r2d2": {"learning_rate": 3e-4, "network": {"head_units": 16}},
                                               "replay_ratio": 32.0})
    assert (config.r2d2.learning_rate, config.r2d2.network.head_units, config.replay_ratio) == (3e-4, 16, 32.0)
    assert config.replace(replay_ratio=preset.replay_ratio, r2d2=preset.r2d2) == preset
    assert config.r2d2.replace(learning_rate=5e-4, network=preset.r2d2.network) == preset.r2d2


@pytest.mark.parametrize("overrides, message", [
    ('{"r2d2": {"no_such_field": 1}}', "unknown R2D2Config fields: ['no_such_field']"),
    ('{"r2d2": {"learning_rate": -1}}', "learning_rate must be > 0, got -1"),
    ('[1]', "--overrides must be a JSON object, got [1]"),
])
def test_bad_overrides_are_refused_before_anything_is_written(tmp_path, capsys, overrides, message):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        bench_learning.main(["--tasks", "cartpole_novel", "--agents", "ours", "--overrides", overrides,
                             "--out", str(out)])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_diagnostics_compare_the_greedy_q_with_the_realised_return():
    """On a fresh network: finite figures, the realised return of the run's discount, the rate now."""
    from agents.r2d2.loop import TrainingLoop
    from agents.r2d2.presets import get_preset

    config = get_preset("smoke")
    loop = TrainingLoop(config, "/nonexistent/run")
    out = bench_learning.diagnose(loop, config)
    assert {"q_greedy", "return_realised", "gap_median", "gap_small", "learning_rate", "terminated"} <= set(out)
    assert all(np.isfinite(v) for v in out.values())
    assert out["gap_median"] >= 0.0 and 0.0 <= out["gap_small"] <= 1.0
    assert out["learning_rate"] == pytest.approx(config.r2d2.learning_rate)
    # T-maze rewards are in [-1, 1] and each step's discounted return from there lies within them.
    assert -1.0 <= out["return_realised"] <= 1.0


def test_the_results_table_names_the_tasks_measured_beside_other_jobs(tmp_path):
    pytest.importorskip("rliable")
    rows = [dict(_row([0.0, 0.95], task="tmaze5", seed=s, every=1_000), shared_machine=True) for s in (100, 101)]
    rows += [_row([0.0, 500.0], task="cartpole_novel", seed=s) for s in (100, 101)]
    table = results_table.render(rows, "results.jsonl", reps=50)
    assert "a wall-time ratio between a run alone and one beside other jobs favours the first): " \
           "T-maze corridor 5 (r2d2_state)" in table
    rows = [dict(row, shared_machine=True) for row in rows]
    assert ", beside other jobs: the wall times are inflated" in results_table.render(rows, "results.jsonl", reps=50)


def test_wall_times_of_one_task_from_two_machines_are_not_compared(tmp_path):
    """A task's wall-time ratio comes from one machine's runs: with this project's rows
    from one machine and the peer's from another, the ratio is withheld and the table says
    where each task ran; env steps do not depend on the machine and are still compared."""
    pytest.importorskip("rliable")
    elsewhere = {"cpu": "other cpu", "cores": 2, "python_loop_1e6_s": 0.03}
    rows = [_row([0.0, 0.95, 0.95], seed=s) for s in (100, 101)]
    rows += [dict(_row([0.0, 0.0, 0.95], agent="peer", seed=s), machine=elsewhere) for s in (100, 101)]
    rows += [_row([0.0, 0.95], task="tmaze5", agent=a, seed=100, every=1_000) for a in ("ours", "peer")]
    summary = bench_learning.summarise(rows, reps=50)
    assert summary["wall_vs_peer_tmaze10"] is None
    assert summary["wall_vs_peer_tmaze10_is"] == "not_compared_machines_differ"
    assert summary["steps_vs_peer_tmaze10"] == pytest.approx(10_000 / 15_000, abs=1e-3)
    assert summary["wall_vs_peer_tmaze5"] == 1.0  # one machine: compared
    table = results_table.render(rows, "results.jsonl", reps=50)
    assert "| wall time not compared (other cpu, 2 cores, test cpu, 2 cores) |" in table
    assert "on other cpu, 2 cores (T-maze corridor 10); test cpu, 2 cores (T-maze corridor 5, " \
           "T-maze corridor 10)" in table


def test_diagnostics_name_the_state_an_episode_ended_in_where_the_observation_omits_it():
    """VelocityOnlyCartPole hides the cart's position and the pole's angle; the diagnostics read
    them from the env's full state at each early end, where one of them is past its limit."""
    pytest.importorskip("popgym")
    from agents.r2d2.loop import TrainingLoop
    from agents.r2d2.presets import get_preset

    config = get_preset("smoke").replace(env_id="popgym:popgym-VelocityOnlyCartpoleEasy-v0", env_kwargs={})
    out = bench_learning.diagnose(TrainingLoop(config, "/nonexistent/run"), config)
    assert out["terminated"] > 0.0  # a fresh network lets the pole fall
    assert sorted(k for k in out if k.startswith("final_state_abs_")) == [f"final_state_abs_{i}" for i in range(4)]
    # Every early end has |x| > 2.4 or |theta| > 12 degrees, so their means' ratios sum above 1;
    # states read after the autoreset (|x|, |theta| <= 0.05) would not.
    assert out["final_state_abs_0"] / 2.4 + out["final_state_abs_2"] / (12 * 2 * np.pi / 360) > 1.0
    assert "final_state_abs_0" not in bench_learning.diagnose(TrainingLoop(get_preset("smoke"), "/nonexistent/run"),
                                                              get_preset("smoke"))  # T-maze: no get_state()
