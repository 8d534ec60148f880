"""Learning benchmark: this project's presets against RecurrentPPO on memory tasks.

Each (task, agent, seed) trains to the task's env-step budget in its own subprocess, with a
greedy evaluation every ``eval_every`` env steps; the statistics (rliable's IQM and
probability of improvement over seeds, 95% bootstrap intervals), the seeds, the peer's
recipe and the reuse of its stored runs are described in ``docs/benchmarks.md``. Each
result is appended to ``OUT/results.jsonl`` as it finishes (``--resume`` skips those).

Usage:
    python scripts/bench_learning.py                  # 5 tasks x 5 reporting seeds x 2 agents
    python scripts/bench_learning.py --quick          # T-maze corridor 5, seed 100
    python scripts/bench_learning.py --tasks tmaze5 --seeds 100 101 102 103 104 --peer-results runs/peer.jsonl
    python scripts/results_table.py runs/bench_learning/results.jsonl --write-readme

Prints a table, writes ``OUT/learning_<task>.png`` and ``OUT/summary.json`` and prints the
same JSON last: per task and agent the statistics, ``sustained_fraction_<agent>_<task>``,
and ``steps_vs_peer_<task>`` / ``wall_vs_peer_<task>`` (IQM of ours / the peer's, lower is
better; ``..._is``: ``upper_bound``, ``lower_bound`` or ``unbounded`` when runs that never
sustained the threshold stand in with their budget).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Task:
    env_id: str
    env_kwargs: dict[str, Any]
    preset: str
    """This project's preset for the task."""
    threshold: float
    eval_episodes: int
    budget: int
    """Env steps of every run (both agents); also the horizon of the peer's linear schedules."""
    floor: float
    """The task's lowest episode return: 0 of the normalised area under the curve."""
    eval_every: int = 5_000
    """Env steps between evaluations (both agents)."""


TASKS = {
    # The T-maze 5 budget leaves the peer's slowest seeds room to reach the threshold and a few
    # evaluations to show they hold it (docs/benchmarks.md); ours is there long before.
    "tmaze5": Task("r2d2_state/TMaze-v0", {"corridor_length": 5, "max_steps": 14}, "tmaze", 0.9, 100, 30_000,
                   floor=-1.0, eval_every=1_000),
    "tmaze10": Task("r2d2_state/TMaze-v0", {"corridor_length": 10}, "memory", 0.9, 100, 150_000, floor=-1.0),
    "cartpole_novel": Task("r2d2_state/CartPoleNoVelocity-v1", {}, "cartpole_novel", 475.0, 20, 150_000,
                           floor=0.0),
    # POPGym's RepeatFirst: say the suit of the episode's first card at each of its 51 steps,
    # a memory longer than the generic default's trace, whose Adam epsilon (and, with
    # VelocityOnlyCartPole, its discount) was tuned on this task's tuning seeds.
    "repeat_first": Task("popgym:popgym-RepeatFirstEasy-v0", {}, "memory", 0.9, 50, 150_000, floor=-1.0),
    # POPGym's RepeatPrevious: name the suit of the card dealt 4 steps ago, a memory rewritten
    # at every step; its own preset was tuned on this task's tuning seeds (as was the generic
    # default's constant learning rate).
    "repeat_previous": Task("popgym:popgym-RepeatPreviousEasy-v0", {}, "repeat_previous", 0.9, 50, 150_000,
                            floor=-1.0),
    # POPGym's PositionOnlyCartPole: balance for 200 steps seeing only the cart's position and
    # the pole's angle, so velocities must be inferred from the steps before; threshold 0.95
    # as CartPole's 475 of 500. Its own preset was tuned on its tuning seeds (as was the
    # generic default's averaged policy).
    "position_cartpole": Task("popgym:popgym-PositionOnlyCartPoleEasy-v0", {}, "position_cartpole", 0.95, 20,
                              150_000, floor=0.0),
    # POPGym's VelocityOnlyCartPole: balance for 200 steps seeing only the velocities, so the
    # cart's position and the pole's angle must be integrated over the episode; chosen, with
    # its threshold and budget, before any run on it, as the untuned memory task once the
    # generic default's averaged policy was chosen on PositionOnlyCartPole's tuning seeds;
    # the generic default's horizon and target period were then tuned on its tuning seeds.
    "velocity_cartpole": Task("popgym:popgym-VelocityOnlyCartpoleEasy-v0", {}, "memory", 0.95, 20, 150_000,
                              floor=0.0),
    # POPGym's NoisyPositionOnlyCartPole: PositionOnlyCartPole with Gaussian noise (sigma 0.1)
    # on both observations, so position and angle must be filtered as well as differenced;
    # chosen, with its threshold and budget, before any run on it, as the untuned memory task
    # once the generic default is tuned on VelocityOnlyCartPole. Threshold 0.9, not 0.95:
    # noise of half the angle's 0.21 rad limit may make a fall unavoidable now and then.
    "noisy_cartpole": Task("popgym:popgym-NoisyPositionOnlyCartPoleEasy-v0", {}, "memory", 0.9, 20, 150_000,
                           floor=0.0),
}
AGENTS = ("ours", "peer")
TUNING_SEEDS = range(0, 10)
"""Seeds the presets may be tuned on; no reported figure comes from them."""
REPORTING_SEEDS = (100, 101, 102, 103, 104)
BOOTSTRAP_REPS = 10_000
"""Bootstrap replications of every interval (a fixed random state: the same runs give the
same intervals, so a regenerated results table does not change)."""
PEER_SPEC = "RecurrentPPO rl-zoo ppo_lstm CartPoleNoVel-v1, 8 envs"
"""Written into every peer row: a stored peer result is reused only for the same recipe."""
PEER_THREADS = 2
"""The peer's torch threads: its fastest on 2 idle cores (docs/benchmarks.md), as this
project's learner gets its pools from ``TrainConfig.tf_threads``. On cores shared with
another job use 1: a pool of 2 then waits for a core that is busy elsewhere."""


# ----------------------------------------------------------------------------- one run's outcome


def first_point(evals: list[dict[str, Any]], threshold: float) -> dict[str, Any] | None:
    """The first eval at or above ``threshold`` (None if none)."""
    return next((e for e in evals if e["mean"] >= threshold), None)


def sustained_point(evals: list[dict[str, Any]], threshold: float, budget: int) -> dict[str, Any] | None:
    """The first eval of the final streak at or above ``threshold``, if that streak reaches
    the end of the budget (None when the last eval is below it or the run ended early)."""
    if not evals or evals[-1]["env_steps"] < budget:
        return None
    point = None
    for e in reversed(evals):
        if e["mean"] < threshold:
            break
        point = e
    return point


def normalised_auc(evals: list[dict[str, Any]], task: Task, budget: int, eval_every: int) -> float:
    """Mean over the evaluation grid (``eval_every`` .. ``budget``) of the return, 0 at the
    task's floor and 1 at the threshold, clipped to [0, 1]; a grid point without an eval
    (a run cut short) counts as 0."""
    curve = on_grid(evals, budget, eval_every, fill=task.floor)
    return float(np.mean(np.clip((curve - task.floor) / (task.threshold - task.floor), 0.0, 1.0)))


def on_grid(evals: list[dict[str, Any]], budget: int, eval_every: int, fill: float) -> np.ndarray:
    """float[budget // eval_every]: the eval return at each grid point ``k * eval_every``
    (the first eval at or after it: the peer evaluates on its 8-env step, slightly past),
    ``fill`` where the run has none."""
    grid = np.arange(1, budget // eval_every + 1) * eval_every
    steps = np.array([e["env_steps"] for e in evals], dtype=np.int64)
    means = np.array([e["mean"] for e in evals], dtype=np.float64)
    idx = np.searchsorted(steps, grid)
    out = np.full(len(grid), fill, dtype=np.float64)
    ok = idx < len(steps)
    ok[ok] &= steps[idx[ok]] < grid[ok] + eval_every  # not a later grid point's eval
    out[ok] = means[idx[ok]]
    return out


def outcome(row: dict[str, Any]) -> dict[str, Any]:
    """One run's figures: ``sustained`` (bool), ``steps`` / ``wall_s`` to the sustained
    threshold (the budget / the whole training time when not sustained: a lower bound),
    ``first_steps`` (None if never reached), ``auc``."""
    task = TASKS[row["task"]]
    evals = row["evals"]
    point = sustained_point(evals, task.threshold, row["budget"])
    first = first_point(evals, task.threshold)
    return {"sustained": point is not None,
            "steps": point["env_steps"] if point else row["budget"],
            "wall_s": point["train_time_s"] if point else (evals[-1]["train_time_s"] if evals else 0.0),
            "first_steps": first["env_steps"] if first else None,
            "auc": normalised_auc(evals, task, row["budget"], row["eval_every"])}


# ----------------------------------------------------------------------------- statistics (rliable)


def _metrics() -> Any:
    try:
        from rliable import metrics
    except ImportError as error:
        raise SystemExit(f'the benchmark\'s statistics need rliable: pip install -e ".[bench]" ({error})') from None
    return metrics


def _bootstrap(data: tuple[np.ndarray, ...], statistic: Any, reps: int, vectorized: bool = False
               ) -> tuple[float | np.ndarray, float | np.ndarray]:
    """95% percentile-bootstrap interval of ``statistic`` over ``data`` (one array of runs
    per agent, each resampled on its own), from a fixed random state.

    rliable's ``StratifiedBootstrap`` resamples runs within each task; the benchmark reports
    one task at a time, so that is the plain bootstrap over the task's runs, which scipy
    does (rliable's own bootstrap needs ``arch`` < 8, which does not import beside pandas 3).
    """
    import scipy.stats

    if min(len(d) for d in data) < 2:  # one run: no spread to resample
        value = statistic(*data, axis=0) if vectorized else statistic(*data)
        return value, value
    result = scipy.stats.bootstrap(data, statistic, n_resamples=reps, confidence_level=0.95, method="percentile",
                                   vectorized=vectorized, paired=False, axis=0,
                                   random_state=np.random.RandomState(0))
    return result.confidence_interval.low, result.confidence_interval.high


def _iqm(x: np.ndarray, axis: int) -> np.ndarray:
    """rliable's IQM (``metrics.aggregate_iqm``: the 25% trimmed mean) along ``axis``, so the
    bootstrap evaluates all its resamples in one call."""
    import scipy.stats

    return scipy.stats.trim_mean(x, proportiontocut=0.25, axis=axis)


def _poi(x: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
    """rliable's probability of improvement (``metrics.probability_of_improvement`` for one
    task: the Mann-Whitney U of X over Y / (n m), ties half) along ``axis``, vectorized."""
    x, y = np.moveaxis(x, axis, -1), np.moveaxis(y, axis, -1)
    diff = x[..., :, None] - y[..., None, :]
    return np.mean((diff > 0) + 0.5 * (diff == 0), axis=(-2, -1))


def iqm_interval(values: list[float], reps: int = BOOTSTRAP_REPS) -> tuple[float, float, float]:
    """(IQM, lower, upper) of ``values`` (one per seed) with its 95% bootstrap interval."""
    metrics = _metrics()
    scores = np.asarray(values, dtype=np.float64)
    low, high = _bootstrap((scores,), _iqm, reps, vectorized=True)
    return float(metrics.aggregate_iqm(scores.reshape(-1, 1))), float(low), float(high)


def probability_of_improvement(x: list[float], y: list[float], reps: int = BOOTSTRAP_REPS
                               ) -> tuple[float, float, float]:
    """(P(X > Y), lower, upper): rliable's probability of improvement (ties count half)
    with its 95% bootstrap interval, X's and Y's runs resampled independently."""
    metrics = _metrics()
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    low, high = _bootstrap((xs, ys), _poi, reps, vectorized=True)
    return float(metrics.probability_of_improvement(xs.reshape(-1, 1), ys.reshape(-1, 1))), float(low), float(high)


def iqm_curve(curves: np.ndarray, reps: int = 2_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IQM over runs of ``curves`` (float[runs, points]) at every point, with the 95%
    bootstrap band (float[points] each)."""
    low, high = _bootstrap((curves,), _iqm, reps, vectorized=True)
    return _iqm(curves, 0), np.asarray(low), np.asarray(high)


def _round(value: float, digits: int = 3) -> float:
    return float(round(value, digits))


def summarise(rows: list[dict[str, Any]], reps: int = BOOTSTRAP_REPS) -> dict[str, Any]:
    """The benchmark's summary of ``rows`` (results.jsonl rows): per task and agent the
    statistics of docs/benchmarks.md, the ratios against the peer, and where and when it ran."""
    summary: dict[str, Any] = {}
    tasks = [t for t in TASKS if any(r["task"] == t for r in rows)]
    for task_name in tasks:
        per_agent: dict[str, Any] = {}
        outcomes: dict[str, list[dict[str, Any]]] = {}
        for agent in AGENTS:
            runs = sorted((r for r in rows if r["task"] == task_name and r["agent"] == agent), key=lambda r: r["seed"])
            if not runs:
                continue
            outs = outcomes[agent] = [outcome(r) for r in runs]
            stats: dict[str, Any] = {
                "seeds": [r["seed"] for r in runs],
                "sustained_fraction": _round(float(np.mean([o["sustained"] for o in outs]))),
                "censored": sum(not o["sustained"] for o in outs),
                "budget": runs[0]["budget"], "eval_every": runs[0]["eval_every"],
                "per_seed": [{"seed": r["seed"], **{k: (_round(v) if isinstance(v, float) else v)
                                                     for k, v in o.items()}} for r, o in zip(runs, outs)],
            }
            for key in ("steps", "wall_s", "auc"):
                iqm, low, high = iqm_interval([o[key] for o in outs], reps)
                stats[f"{key}_iqm"], stats[f"{key}_ci"] = _round(iqm), [_round(low), _round(high)]
            per_agent[agent] = stats
            summary[f"sustained_fraction_{agent}_{task_name}"] = stats["sustained_fraction"]
        if "ours" in outcomes and "peer" in outcomes:
            p, low, high = probability_of_improvement([o["auc"] for o in outcomes["ours"]],
                                                      [o["auc"] for o in outcomes["peer"]], reps)
            per_agent["prob_improvement_auc"], per_agent["prob_improvement_auc_ci"] = _round(p), [_round(low), _round(high)]
            summary[f"prob_improvement_{task_name}"] = _round(p)
        task_machines = sorted({machine_name(r["machine"]) for r in rows if r["task"] == task_name and r.get("machine")})
        for name, key in (("steps", "steps"), ("wall", "wall_s")):
            ratio, kind = compare(per_agent.get("ours"), per_agent.get("peer"), key)
            if key == "wall_s" and ratio is not None and len(task_machines) > 1:
                # machines of one kind differ several-fold in both agents' wall times
                ratio, kind = None, "not_compared_machines_differ"
            summary[f"{name}_vs_peer_{task_name}"] = ratio
            if kind not in (None, "exact"):
                summary[f"{name}_vs_peer_{task_name}_is"] = kind
        per_agent["machines"] = task_machines
        summary[task_name] = per_agent
    summary["seeds"] = sorted({r["seed"] for r in rows})
    summary["tuning_seeds"] = sorted({r["seed"] for r in rows if r["seed"] in TUNING_SEEDS})
    summary["dates"] = sorted({r["date"][:10] for r in rows if r.get("date")})
    summary["machines"] = sorted({machine_name(r["machine"]) for r in rows if r.get("machine")})
    summary["shared_machine"] = any(r.get("shared_machine") for r in rows)
    summary["reused_peer_rows"] = sum(1 for r in rows if r.get("reused_from"))
    return summary


def compare(ours: dict[str, Any] | None, peer: dict[str, Any] | None, key: str) -> tuple[float | None, str | None]:
    """IQM of ours / IQM of the peer's to the sustained threshold (``key``: "steps" or "wall_s").

    Returns (ratio, kind): "exact" when no run of either agent was censored (never
    sustained: its budget stands in, a lower bound); "upper_bound" when only the peer's
    were (the peer's true IQM is at least the one used); "lower_bound" when only ours;
    "unbounded" when both (neither direction holds); (None, None) without both agents.
    """
    if not ours or not peer or peer[f"{key}_iqm"] == 0:
        return None, None
    ratio = _round(ours[f"{key}_iqm"] / peer[f"{key}_iqm"])
    kind = {(False, False): "exact", (False, True): "upper_bound", (True, False): "lower_bound",
            (True, True): "unbounded"}[(ours["censored"] > 0, peer["censored"] > 0)]
    return ratio, kind


# ----------------------------------------------------------------------------- one run per process


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied, nested dicts merged key by key."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def ours_config(task: Task, overrides: dict[str, Any] | None = None) -> Any:
    """The task's preset with ``overrides`` (nested as ``TrainConfig.to_dict()``) applied.

    Raises:
      ValueError (or ConfigurationError): an unknown field or a bad value, named.
    """
    from agents.r2d2.presets import get_preset
    from agents.r2d2.train_config import TrainConfig

    config = get_preset(task.preset)
    return TrainConfig.from_dict(merged(config.to_dict(), overrides)) if overrides else config


def preset_config(task: Task, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole recipe a row of this project is measured with (``ours_config`` as JSON):
    kept in the row, so that a table is never made from runs of a preset that has changed."""
    return json.loads(ours_config(task, overrides).to_json())


def config_changes(recorded: dict[str, Any], current: dict[str, Any], defaults: dict[str, Any] | None = None,
                   prefix: str = "") -> list[str]:
    """Fields whose value differs between two ``preset_config`` dicts, as "r2d2.adam_epsilon:
    0.001 -> 1e-05". A field added since the row ran (only in ``current``) is a change where
    its value now departs from its default in ``defaults`` (``TrainConfig()`` as JSON): the
    row ran with the behaviour of before, the default's. A field removed since is not."""
    changes = []
    defaults = defaults or {}
    for key in sorted(set(current)):
        new = current[key]
        if key not in recorded:
            if key in defaults and new != defaults[key]:
                old = defaults[key]
                changes.append(f"{prefix}{key}: (not recorded, the default) {json.dumps(old)} -> {json.dumps(new)}")
            continue
        old = recorded[key]
        if isinstance(old, dict) and isinstance(new, dict):
            nested = defaults.get(key) if isinstance(defaults.get(key), dict) else None
            changes += config_changes(old, new, nested, f"{prefix}{key}.")
        elif old != new:
            changes.append(f"{prefix}{key}: {json.dumps(old)} -> {json.dumps(new)}")
    return changes


def stale_rows(rows: list[dict[str, Any]]) -> list[str]:
    """One line per row of this project whose recorded preset is not the task's preset now
    (or that recorded none): its figures describe an agent that no longer exists."""
    from agents.r2d2.train_config import TrainConfig

    lines, defaults = [], json.loads(TrainConfig().to_json())
    for row in rows:
        if row["agent"] != "ours" or row["task"] not in TASKS:
            continue
        where = f"{row['task']} seed {row['seed']}"
        if "preset_config" not in row:
            lines.append(f"{where}: no preset_config recorded")
            continue
        changes = config_changes(row["preset_config"], preset_config(TASKS[row["task"]], row.get("overrides")),
                                 defaults)
        if changes:
            lines.append(f"{where}: {'; '.join(changes)}")
    return lines


def git_commit() -> str | None:
    """The checkout's commit (with "+dirty" when files differ from it), None outside git."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=30, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def run_ours(task: Task, seed: int, eval_every: int, run_dir: str, overrides: dict[str, Any] | None = None,
             diagnostics: bool = False) -> list[dict[str, Any]]:
    from agents.r2d2.loop import TrainingLoop

    config = ours_config(task, overrides).replace(
        env_id=task.env_id, env_kwargs=dict(task.env_kwargs), seed=seed, total_env_steps=task.budget,
        time_budget_s=0.0, stop_at_threshold=False, solve_threshold=task.threshold, eval_every=eval_every,
        eval_episodes=task.eval_episodes, checkpoint_every=0, progress="none", run_dir=run_dir)
    evals: list[dict[str, Any]] = []
    sums: dict[str, list[float]] = {}

    def on_learner_step(metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            sums.setdefault(key, []).append(value)

    def on_eval(record: dict[str, Any]) -> bool:
        evals.append({k: record[k] for k in ("env_steps", "mean", "train_time_s")})
        if diagnostics:
            evals[-1].update(diagnose(loop, config))
            evals[-1].update({f"learner_{k}": float(np.mean(v)) for k, v in sums.items()})
            sums.clear()
        _progress("ours", evals[-1])
        return False  # every run goes to the end of its budget

    loop = TrainingLoop(config, run_dir, on_eval=on_eval, on_learner_step=on_learner_step if diagnostics else None)
    loop.run()
    return evals


DIAGNOSTIC_EPISODES = 10


def diagnose(loop: Any, config: Any) -> dict[str, float]:
    """What the greedy policy of ``loop``'s learner believes and gets, on episodes of its own.

    ``q_greedy``: mean max_a Q (the network's value, rescaling undone) over the first 100 steps
    of every episode; ``return_realised``: the mean discounted return from those steps to the
    episode's end (with the run's discount; an episode cut by the time limit continues in
    the bootstrap, so a held episode's true value is above it); ``gap_median`` /
    ``gap_small``: the median |Q(a0) - Q(a1)| (the top two actions) over all visited steps
    and the fraction of them below 1 % of |max Q|; ``learning_rate``: the learner's now;
    ``terminated``: the fraction of episodes that ended by termination (not the time limit),
    and for a vector observation ``final_abs_<i>``: the mean |feature i| of their final
    observations (which limit ended them); where the env exposes its full state (POPGym's
    ``get_state()``), ``final_state_abs_<i>`` likewise of the state it ended in (the limit that
    ended an episode whose observation omits it, e.g. the cart's position on
    VelocityOnlyCartPole); ``replay_size``: sequences in the replay.
    """
    import gymnasium as gym

    import envs
    from agents.r2d2.actor import R2D2Actor
    from agents.r2d2.evaluation import run_episodes
    from r2d2_state.losses import inverse_value_rescale

    r = config.r2d2
    vec = envs.make_vector_env(config.env_id, DIAGNOSTIC_EPISODES, **config.env_make_kwargs)
    try:
        actor = R2D2Actor(loop.network_config, DIAGNOSTIC_EPISODES, 0.0, seed=config.seed + 2)
        actor.set_weights(loop.learner.get_policy_weights())
        qs, rewards, steps, terminals, observations, states = [], [], [], [], [], []
        has_state = isinstance(vec, gym.vector.SyncVectorEnv) and all(
            callable(getattr(env.unwrapped, "get_state", None)) for env in vec.envs)
        select, observe = actor.select_actions, actor.observe

        def select_actions(obs: Any) -> Any:
            observations.append(np.asarray(obs, np.float64))
            out = select(obs)
            qs.append(actor.last_q.copy())  # [N, A], the step's greedy Q
            return out

        def observe_step(action: Any, reward: Any, terminated: Any, truncated: Any) -> None:
            rewards.append(np.asarray(reward, np.float64))
            steps.append(np.asarray(terminated) | np.asarray(truncated))
            terminals.append(np.asarray(terminated, bool))
            if has_state:  # NEXT_STEP autoreset: a finished env still holds its final state
                states.append(np.stack([np.asarray(env.unwrapped.get_state(), np.float64) for env in vec.envs]))
            observe(action, reward, terminated, truncated)

        actor.select_actions, actor.observe = select_actions, observe_step
        run_episodes(actor, vec, DIAGNOSTIC_EPISODES, seed=config.seed + 12_345)
    finally:
        vec.close()
    q = np.stack(qs)  # [time, N, A]
    if r.value_rescaling:
        q = inverse_value_rescale(q, r.rescale_epsilon).numpy()
    reward, ended = np.stack(rewards), np.stack(steps)  # [time, N]
    top = -np.sort(-q, axis=-1)
    terminal, obs = np.stack(terminals), np.stack(observations)  # obs [time, N, ...]
    q_values, realised, gaps, best, finals, ended_by_termination = [], [], [], [], [], []
    final_states = []
    for env in range(q.shape[1]):
        ends = np.flatnonzero(ended[:, env])
        if not ends.size:
            continue
        end = ends[0]  # the env's first episode: steps 0 .. end (NEXT_STEP autoreset after it)
        g, discounted = 0.0, np.zeros(end + 1)
        for t in range(end, -1, -1):
            g = reward[t, env] + r.discount * g
            discounted[t] = g
        first = slice(0, min(100, end + 1))
        q_values.append(top[first, env, 0])
        realised.append(discounted[first])
        gaps.append(top[: end + 1, env, 0] - top[: end + 1, env, 1])
        best.append(np.abs(top[: end + 1, env, 0]))
        ended_by_termination.append(bool(terminal[end, env]))
        if terminal[end, env] and end + 1 < len(obs):
            finals.append(np.abs(obs[end + 1, env]))  # NEXT_STEP autoreset: the final observation comes next
        if terminal[end, env] and states:
            final_states.append(np.abs(states[end][env]))
    gap, best = np.concatenate(gaps), np.concatenate(best)
    lr = loop.learner.optimizer.learning_rate
    extra = {"terminated": float(np.mean(ended_by_termination)), "replay_size": len(loop.replay)}
    if finals and finals[0].ndim == 1:
        extra.update({f"final_abs_{i}": float(v) for i, v in enumerate(np.mean(finals, axis=0))})
    if final_states and final_states[0].ndim == 1:
        extra.update({f"final_state_abs_{i}": float(v) for i, v in enumerate(np.mean(final_states, axis=0))})
    return {**extra, "q_greedy": float(np.mean(np.concatenate(q_values))),
            "return_realised": float(np.mean(np.concatenate(realised))),
            "gap_median": float(np.median(gap)), "gap_small": float(np.mean(gap < 0.01 * np.maximum(best, 1e-6))),
            "learning_rate": float(np.asarray(lr))}


class PeerActor:
    """RecurrentPPO behind the actor interface :func:`run_episodes` drives (NEXT_STEP envs)."""

    def __init__(self, model: Any, normalizer: Any, num_envs: int) -> None:
        self.model, self.normalizer, self.num_envs = model, normalizer, num_envs
        self.reset()

    def reset(self) -> None:
        self.state = None
        self.starts = np.ones(self.num_envs, bool)
        self.ended = np.zeros(self.num_envs, bool)

    def select_actions(self, obs: np.ndarray) -> tuple[np.ndarray, None]:
        actions, self.state = self.model.predict(self.normalizer.normalize_obs(obs), state=self.state,
                                                 episode_start=self.starts, deterministic=True)
        return actions, None

    def observe(self, actions: Any, reward: Any, terminated: Any, truncated: Any) -> None:
        # NEXT_STEP: where the previous step ended an episode, this step returned the next
        # episode's first observation.
        self.starts = self.ended
        self.ended = np.asarray(terminated) | np.asarray(truncated)


def keep_tensorflow_out() -> None:
    """Make ``import tensorflow`` fail in this process (the peer's worker).

    stable-baselines3's logger imports ``torch.utils.tensorboard``, and tensorboard imports
    TensorFlow whenever it is installed (it is, for this project). A CUDA build of torch
    loading triton beside TensorFlow crashes the process (SIGSEGV); the peer needs neither
    TensorFlow nor tensorboard's use of it, and tensorboard falls back to its own stub
    when the import fails. A ``None`` entry in ``sys.modules`` is Python's way to refuse
    an import.
    """
    loaded = sorted(name for name in sys.modules if name == "tensorflow" or name.startswith("tensorflow."))
    if loaded and sys.modules.get("tensorflow") is not None:
        raise RuntimeError(f"the peer's process must not hold TensorFlow, but it is imported already ({loaded[0]})")
    sys.modules["tensorflow"] = None  # type: ignore[assignment]


def import_peer() -> dict[str, Any]:
    """Everything the peer's worker imports, TensorFlow kept out: name -> module or class."""
    keep_tensorflow_out()
    import torch
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.utils import get_linear_fn
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    import envs
    from agents.r2d2.evaluation import run_episodes

    return {"torch": torch, "RecurrentPPO": RecurrentPPO, "BaseCallback": BaseCallback,
            "get_linear_fn": get_linear_fn, "DummyVecEnv": DummyVecEnv, "VecNormalize": VecNormalize,
            "envs": envs, "run_episodes": run_episodes}


def run_peer(task: Task, seed: int, eval_every: int, threads: int = 1) -> list[dict[str, Any]]:
    m = import_peer()
    torch, RecurrentPPO, BaseCallback, envs = m["torch"], m["RecurrentPPO"], m["BaseCallback"], m["envs"]
    get_linear_fn, DummyVecEnv, VecNormalize = m["get_linear_fn"], m["DummyVecEnv"], m["VecNormalize"]
    run_episodes = m["run_episodes"]

    torch.set_num_threads(threads)
    train_env = VecNormalize(
        DummyVecEnv([lambda: envs.make_env(task.env_id, **task.env_kwargs) for _ in range(8)]),
        norm_obs=True, norm_reward=True, gamma=0.98)
    train_env.seed(seed)
    model = RecurrentPPO(
        "MlpLstmPolicy", train_env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
        ent_coef=0.0, learning_rate=get_linear_fn(1e-3, 0.0, 1.0), clip_range=get_linear_fn(0.2, 0.0, 1.0),
        policy_kwargs=dict(ortho_init=False, activation_fn=torch.nn.ReLU, lstm_hidden_size=64,
                           enable_critic_lstm=True, net_arch=dict(pi=[64], vf=[64])),
        seed=seed, device="cpu", verbose=0)
    eval_env = envs.make_vector_env(task.env_id, 20, **task.env_kwargs)
    evals: list[dict[str, Any]] = []

    class Evaluate(BaseCallback):
        def _on_training_start(self) -> None:
            self.started, self.eval_time, self.next_eval = time.perf_counter(), 0.0, eval_every

        def _on_step(self) -> bool:
            if self.num_timesteps < self.next_eval:
                return True
            self.next_eval += eval_every
            now = time.perf_counter()
            eval_seed = int(np.random.SeedSequence([seed, 7, self.num_timesteps]).generate_state(1)[0] % 2**31)
            returns, _ = run_episodes(PeerActor(self.model, train_env, eval_env.num_envs), eval_env,
                                      task.eval_episodes, seed=eval_seed)
            evals.append({"env_steps": int(self.num_timesteps), "mean": float(np.mean(returns)),
                          "train_time_s": now - self.started - self.eval_time})
            self.eval_time += time.perf_counter() - now
            _progress("peer", evals[-1])
            return True  # every run goes to the end of its budget

    model.learn(total_timesteps=task.budget, callback=Evaluate())
    return evals


def _progress(agent: str, record: dict[str, Any]) -> None:
    extra = "".join(f"  {k} {v:.4g}" for k, v in record.items() if k not in ("env_steps", "mean", "train_time_s"))
    print(f"  {agent} {record['env_steps']:>8,d} env steps  eval {record['mean']:8.3f}  "
          f"train {record['train_time_s']:6.1f} s{extra}", file=sys.stderr, flush=True)


def _worker(args: argparse.Namespace) -> int:
    if args.agent == "ours":
        from agents.r2d2.tf_runtime import import_tensorflow_quietly

        import_tensorflow_quietly()  # no CUDA-probe noise on a CPU-only machine
    task = _task(args.task, args.eval_every, args.max_env_steps)
    start = time.perf_counter()
    if args.agent == "ours":
        with tempfile.TemporaryDirectory() as run_dir:
            evals = run_ours(task, args.seed, task.eval_every, os.path.join(run_dir, "run"), args.overrides,
                             args.diagnostics)
    else:
        evals = run_peer(task, args.seed, task.eval_every, threads=args.peer_threads)
    # The outcome is derived from the evals by the driver (one rule, one place).
    result = {"task": args.task, "agent": args.agent, "seed": args.seed, "evals": evals,
              "process_time_s": time.perf_counter() - start}
    with open(args.worker_out, "w", encoding="utf-8") as file:
        json.dump(result, file)
    return 0


def _task(name: str, eval_every: int | None = None, budget: int | None = None) -> Task:
    """TASKS[name], with ``eval_every`` and ``budget`` replaced when given."""
    given = {"eval_every": eval_every, "budget": budget}
    return dataclasses.replace(TASKS[name], **{k: v for k, v in given.items() if v is not None})


# ----------------------------------------------------------------------------- driver


def machine() -> dict[str, Any]:
    """What the wall times were measured on: the CPU model, the cores, and the seconds a
    fixed pure-Python loop takes here (machines of one kind differ several-fold in both
    agents' wall times: compare only figures from the same machine and day)."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            model = next((line.split(":", 1)[1].strip() for line in file if line.startswith("model name")), model)
    except OSError:
        pass
    started = time.perf_counter()
    total = 0
    for i in range(1_000_000):
        total += i
    return {"cpu": model, "cores": os.cpu_count(), "python_loop_1e6_s": round(time.perf_counter() - started, 3)}


def machine_name(description: dict[str, Any]) -> str:
    """"CPU model, N cores": what two rows must share for their wall times to compare."""
    return f"{description['cpu']}, {description['cores']} cores"


def _row_key(row: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two rows the same measurement (the peer's recipe included)."""
    return (row["task"], row["agent"], row["seed"], row["budget"], row["eval_every"], row.get("peer_spec"))


def read_rows(path: str) -> list[dict[str, Any]]:
    """The rows of a results file (JSON lines), with a clear error for a malformed one."""
    rows = []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {number}: not JSON ({error})") from None
            missing = {"task", "agent", "seed", "evals", "budget", "eval_every", "machine"} - set(row)
            if missing:
                raise ValueError(f"{path}, line {number}: a results row needs {sorted(missing)} "
                                 f"(rows of this benchmark's version), got keys {sorted(row)}")
            rows.append(row)
    return rows


def _append_row(path: str, row: dict[str, Any]) -> None:
    """Add ``row`` to the JSON-lines file ``path`` (rewritten atomically: a crash leaves the
    old file or the new one)."""
    from r2d2_state.files import atomic_write_text

    old = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as file:
            old = file.read()
        if old and not old.endswith("\n"):
            old += "\n"
    atomic_write_text(path, old + json.dumps(row) + "\n")


def _plot(task_name: str, task: Task, results: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from r2d2_state.files import atomic_write

    fig, ax = plt.subplots(figsize=(7, 4))
    for agent, color in (("ours", "tab:blue"), ("peer", "tab:orange")):
        runs = [r for r in results if r["agent"] == agent and r["evals"]]
        if not runs:
            continue
        budget, every = runs[0]["budget"], runs[0]["eval_every"]
        curves = np.array([on_grid(r["evals"], budget, every, fill=np.nan) for r in runs])
        keep = ~np.isnan(curves).any(axis=0)  # grid points every run evaluated
        grid = (np.arange(1, curves.shape[1] + 1) * every)[keep]
        iqm, low, high = iqm_curve(curves[:, keep])
        label = "r2d2_state" if agent == "ours" else "RecurrentPPO (sb3-contrib)"
        seeds = ", ".join(str(r["seed"]) for r in sorted(runs, key=lambda r: r["seed"]))
        ax.plot(grid, iqm, color=color, label=f"{label}: IQM, 95% CI (seeds {seeds})")
        ax.fill_between(grid, low, high, color=color, alpha=0.2)
    ax.axhline(task.threshold, color="gray", linestyle="--", linewidth=1, label=f"threshold {task.threshold:g}")
    ax.set_xlabel("env steps")
    ax.set_ylabel("greedy eval return")
    ax.set_title(f"{task_name}: {task.env_id} {task.env_kwargs or ''}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    try:
        atomic_write(path, lambda file: fig.savefig(file, format="png", dpi=100), binary=True)
    finally:
        plt.close(fig)


def _print_table(summary: dict[str, Any], tasks: list[str]) -> None:
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    print(f"{'task':<15} {'agent':<5} {'seed':>5} {'sustained':>9} {'steps':>9} {'wall s':>8} {'first':>9} {'auc':>6}")
    for task_name in tasks:
        for agent in AGENTS:
            stats = summary.get(task_name, {}).get(agent)
            if not stats:
                continue
            for o in stats["per_seed"]:
                print(f"{task_name:<15} {agent:<5} {o['seed']:>5} {'yes' if o['sustained'] else 'no':>9} "
                      f"{o['steps']:>9,d} {o['wall_s']:>8.1f} {fmt(o['first_steps'], ',d'):>9} {o['auc']:>6.3f}")
            print(f"{task_name:<15} {agent:<5} {'IQM':>5} {stats['sustained_fraction']:>9.2f} "
                  f"{stats['steps_iqm']:>9,.0f} {stats['wall_s_iqm']:>8.1f} {'':>9} {stats['auc_iqm']:>6.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=list(TASKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(REPORTING_SEEDS),
                        help=f"reporting seeds (default {' '.join(map(str, REPORTING_SEEDS))}; "
                             f"the presets' tuning seeds {TUNING_SEEDS.start}-{TUNING_SEEDS.stop - 1} "
                             "need --tuning-seeds-ok)")
    parser.add_argument("--tuning-seeds-ok", action="store_true",
                        help="allow the presets' tuning seeds (their figures are not reported ones)")
    parser.add_argument("--agents", nargs="+", choices=AGENTS, default=list(AGENTS))
    parser.add_argument("--eval-every", type=int, default=None,
                        help="env steps between evaluations, for every task (default: the task's, 5k; 1k on tmaze5)")
    parser.add_argument("--max-env-steps", type=int, default=None,
                        help="every run's budget, instead of the task's (30k on tmaze5, 150k otherwise)")
    parser.add_argument("--quick", action="store_true", help="T-maze corridor 5, seed 100 only")
    parser.add_argument("--out", default="runs/bench_learning", help="results.jsonl, summary.json and the PNGs go here")
    parser.add_argument("--resume", action="store_true", help="skip runs already in OUT/results.jsonl")
    parser.add_argument("--peer-results", default=None, metavar="PATH",
                        help="the peer's results on this machine (JSON lines): runs found there are reused, "
                             "others run and added")
    parser.add_argument("--shared-machine", action="store_true",
                        help="mark this run's wall times as measured beside other jobs")
    parser.add_argument("--peer-threads", type=int, default=PEER_THREADS,
                        help=f"torch threads of the peer (default {PEER_THREADS}: its fastest here, see docs/benchmarks.md)")
    parser.add_argument("--overrides", type=json.loads, default=None, metavar="JSON",
                        help="config fields changed in this project's preset of every task, nested as in "
                             'config.json (e.g. \'{"r2d2": {"learning_rate": 3e-4}}\'); written into each row')
    parser.add_argument("--diagnostics", action="store_true",
                        help="at every evaluation of this project's runs, also record the greedy Q against the "
                             "realised discounted return, the action gap, the learning rate and the learner's "
                             "metrics since the last evaluation (run_ours's diagnose)")
    parser.add_argument("--_worker", nargs=4, metavar=("TASK", "AGENT", "SEED", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer_threads < 1:
        parser.error(f"--peer-threads must be >= 1, got {args.peer_threads}")
    if args.eval_every is not None and args.eval_every < 1:
        parser.error(f"--eval-every must be >= 1, got {args.eval_every}")
    if args._worker:
        task, agent, seed, out = args._worker
        return _worker(argparse.Namespace(task=task, agent=agent, seed=int(seed), worker_out=out,
                                          eval_every=args.eval_every, max_env_steps=args.max_env_steps,
                                          peer_threads=args.peer_threads, overrides=args.overrides,
                                          diagnostics=args.diagnostics))
    if args.quick:
        args.tasks, args.seeds = ["tmaze5"], [REPORTING_SEEDS[0]]
    tuning = sorted(s for s in set(args.seeds) if s in TUNING_SEEDS)
    if tuning and not args.tuning_seeds_ok:
        parser.error(f"--seeds {' '.join(map(str, tuning))}: seeds {TUNING_SEEDS.start}-{TUNING_SEEDS.stop - 1} "
                     "are the presets' tuning seeds, not reporting ones (use e.g. 100-104, or --tuning-seeds-ok "
                     "for a figure that will not be reported)")
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds must not repeat a seed, got {' '.join(map(str, args.seeds))}")
    if args.overrides is not None:
        if not isinstance(args.overrides, dict):
            parser.error(f"--overrides must be a JSON object, got {args.overrides!r}")
        for name in args.tasks:
            try:
                ours_config(TASKS[name], args.overrides)
            except (TypeError, ValueError) as error:
                parser.error(f"--overrides {json.dumps(args.overrides)} on task {name}: {error}")
    largest_every = max(_task(t, args.eval_every).eval_every for t in args.tasks)
    if args.max_env_steps is not None and args.max_env_steps < largest_every:
        parser.error(f"--max-env-steps must be >= the evaluation period of the tasks ({largest_every}), "
                     f"got {args.max_env_steps}")
    # find_spec, not import: importing sb3_contrib here would import TensorFlow (through
    # tensorboard) into the driver for nothing.
    if "peer" in args.agents and importlib.util.find_spec("sb3_contrib") is None:
        parser.error('the peer needs sb3-contrib: pip install -e ".[peer]" (or --agents ours)')
    if importlib.util.find_spec("rliable") is None:
        parser.error('the statistics need rliable: pip install -e ".[bench]"')
    if args.peer_results is not None and not os.path.isdir(os.path.dirname(os.path.abspath(args.peer_results))):
        parser.error(f"--peer-results {args.peer_results}: its directory does not exist")
    here = machine()
    stored_peer: dict[tuple[Any, ...], dict[str, Any]] = {}
    if args.peer_results is not None and os.path.exists(args.peer_results):
        try:
            peer_rows = read_rows(args.peer_results)
        except (OSError, ValueError) as error:
            parser.error(f"--peer-results: {error}")
        for number, row in enumerate(peer_rows, 1):
            if row["agent"] != "peer" or machine_name(row["machine"]) != machine_name(here):
                parser.error(f"--peer-results {args.peer_results}: row {number} is {row['agent']!r} on "
                             f"{machine_name(row['machine'])!r}; expected the peer's rows from this machine "
                             f"({machine_name(here)!r}), so that wall-time ratios compare one machine's runs")
            stored_peer[_row_key(row)] = row

    os.makedirs(args.out, exist_ok=True)
    results_path = os.path.join(args.out, "results.jsonl")
    done: list[dict[str, Any]] = []
    if args.resume and os.path.exists(results_path):
        done = read_rows(results_path)
    elif os.path.exists(results_path):
        os.replace(results_path, results_path + ".previous")
    wanted = {(t, a, s): _task(t, args.eval_every, args.max_env_steps)
              for t in args.tasks for s in args.seeds for a in args.agents}

    def key_of(task_name: str, agent: str, seed: int) -> tuple[Any, ...]:
        task = wanted[(task_name, agent, seed)]
        return (task_name, agent, seed, task.budget, task.eval_every, PEER_SPEC if agent == "peer" else None)

    have = {_row_key(r): r for r in done}
    commit = git_commit()
    results = [have[key_of(*k)] for k in wanted if key_of(*k) in have]

    for task_name in args.tasks:
        for seed in args.seeds:
            for agent in args.agents:
                key = key_of(task_name, agent, seed)
                if key in have:
                    continue
                if key in stored_peer:
                    row = dict(stored_peer[key], reused_from=os.path.abspath(args.peer_results))
                    _append_row(results_path, row)
                    results.append(row)
                    continue
                task = wanted[(task_name, agent, seed)]
                print(f"{task_name} seed {seed}: {agent}", file=sys.stderr, flush=True)
                with tempfile.TemporaryDirectory() as tmp:
                    out = os.path.join(tmp, "result.json")
                    subprocess.run([sys.executable, os.path.abspath(__file__), "--eval-every", str(task.eval_every),
                                    "--max-env-steps", str(task.budget), "--peer-threads", str(args.peer_threads),
                                    *(["--overrides", json.dumps(args.overrides)] if args.overrides else []),
                                    *(["--diagnostics"] if args.diagnostics else []),
                                    "--_worker", task_name, agent, str(seed), out], check=True)
                    with open(out, encoding="utf-8") as file:
                        row = json.load(file)
                row.update(budget=task.budget, eval_every=task.eval_every, machine=machine(),
                           date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                           shared_machine=args.shared_machine, tuning_seed=seed in TUNING_SEEDS)
                if agent == "ours":
                    row.update(preset_config=preset_config(TASKS[task_name], args.overrides), commit=commit)
                    if args.overrides:
                        row.update(overrides=args.overrides)
                if agent == "peer":
                    row.update(peer_spec=PEER_SPEC, peer_threads=args.peer_threads)
                    if args.peer_results is not None:
                        _append_row(args.peer_results, row)
                _append_row(results_path, row)  # as each run ends
                results.append(row)

    summary = summarise(results)
    _print_table(summary, args.tasks)
    for task_name in args.tasks:
        _plot(task_name, _task(task_name, args.eval_every, args.max_env_steps),
              [r for r in results if r["task"] == task_name], os.path.join(args.out, f"learning_{task_name}.png"))
    from r2d2_state.files import atomic_write_text

    atomic_write_text(os.path.join(args.out, "summary.json"), json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
