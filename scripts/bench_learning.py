"""Learning benchmark: this project's presets against RecurrentPPO on memory tasks.

For every task and seed, each agent trains with a greedy evaluation every ``eval_every``
env steps (5k; 1k on T-maze corridor 5, where the peer already holds the threshold at its
first 5k evaluation, so a 5k grid could not tell a faster agent from a tie; ``--eval-every``
overrides it for every task) (100 episodes on the T-mazes, 20 on CartPole; every env runs a fixed quota of
episodes, so short episodes are not over-represented), and the run stops once it has
*sustained* the threshold for as long again as it took to get there (the first eval of
the final streak of evals at or above the threshold is ``S``; the run goes on to ``2 S``),
or at the task's env-step cap. Reported per task and seed:

- ``first``: env steps and training wall time (evaluation time excluded) at the first eval
  at or above the threshold;
- ``sustained``: the same at ``S``, from which every later eval of the run stayed there.

The peer is sb3-contrib's RecurrentPPO with the RL Zoo ``ppo_lstm.yml`` CartPoleNoVel-v1
hyperparameters, untuned, on every task (8 envs, n_steps 32, batch 256, gae_lambda 0.8,
gamma 0.98, 20 epochs, ent_coef 0, lr linear from 1e-3, clip linear from 0.2, LSTM 64 for
actor and critic, net_arch pi=[64] vf=[64], ReLU, no ortho init, VecNormalize on obs and
reward); its linear schedules run over the task's cap. Its evaluation is the same code
(:func:`agents.r2d2.evaluation.run_episodes` on the same vector env): deterministic
actions, the LSTM state carried and reset at episode starts, observations normalised with
the training statistics, raw rewards. Needs ``pip install -e ".[peer]"``.

Every (task, agent, seed) runs in its own subprocess, one after the other (timings need
the machine to themselves); each result is written to ``OUT/results.jsonl`` as it
finishes, so an interrupted benchmark keeps what it measured (``--resume`` skips those).

Usage:
    python scripts/bench_learning.py                  # 3 tasks x 3 seeds x 2 agents
    python scripts/bench_learning.py --quick          # T-maze corridor 5, seed 0
    python scripts/bench_learning.py --tasks tmaze10 --seeds 0 1 --agents ours

Prints a table, writes ``OUT/learning_<task>.png`` (median curves of both agents, min-max
band over seeds), and prints one JSON line last: per-task medians and the ratios
``steps_vs_peer_<task>`` and ``wall_vs_peer_<task>`` (ours / peer's, to the sustained
threshold; lower is better). Where one agent's median did not reach it by the cap, the
ratio uses that agent's stopping points instead and ``..._is`` says it is an
``upper_bound`` (the peer did not get there) or a ``lower_bound`` (we did not); null when
neither did.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
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
    max_env_steps: int
    """Cap per run (both agents); also the horizon of the peer's linear schedules."""
    eval_every: int = 5_000
    """Env steps between evaluations (both agents)."""


TASKS = {
    "tmaze5": Task("r2d2_state/TMaze-v0", {"corridor_length": 5, "max_steps": 14}, "tmaze", 0.9, 100, 100_000,
                   eval_every=1_000),
    "tmaze10": Task("r2d2_state/TMaze-v0", {"corridor_length": 10}, "memory", 0.9, 100, 150_000),
    "cartpole_novel": Task("r2d2_state/CartPoleNoVelocity-v1", {}, "cartpole_novel", 475.0, 20, 150_000),
}
AGENTS = ("ours", "peer")
PEER_THREADS = 2
"""The peer's torch threads: its fastest on this machine's 2 idle cores (T-maze 5, seeds 1
and 2, to 3k env steps: 2.5 / 2.4 s with 2 threads, 2.6 / 2.5 s with 1), as this project's
learner gets its pools from ``TrainConfig.tf_threads``. On cores shared with another job
use 1: there torch's pool of 2 took 128 / 271 s for the same runs."""


# ----------------------------------------------------------------------------- the stopping rule


def solve_points(evals: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """First and sustained points of a run's evals (``env_steps``, ``mean``, ``train_time_s``).

    ``sustained`` is the first eval of the final streak of evals at or above ``threshold``
    (None if the last eval is below it); ``stop`` is True once the run has gone on to
    twice the sustained point's env steps.
    """
    first = next((e for e in evals if e["mean"] >= threshold), None)
    sustained = None
    for e in reversed(evals):
        if e["mean"] < threshold:
            break
        sustained = e
    stop = sustained is not None and evals[-1]["env_steps"] >= 2 * sustained["env_steps"]
    return {"first": first, "sustained": sustained, "stop": stop}


# ----------------------------------------------------------------------------- one run per process


def run_ours(task: Task, seed: int, eval_every: int, run_dir: str) -> list[dict[str, Any]]:
    from agents.r2d2.loop import TrainingLoop
    from agents.r2d2.presets import get_preset

    config = get_preset(task.preset).replace(
        env_id=task.env_id, env_kwargs=dict(task.env_kwargs), seed=seed, total_env_steps=task.max_env_steps,
        time_budget_s=0.0, stop_at_threshold=False, solve_threshold=task.threshold, eval_every=eval_every,
        eval_episodes=task.eval_episodes, checkpoint_every=0, progress="none", run_dir=run_dir)
    evals: list[dict[str, Any]] = []

    def on_eval(record: dict[str, Any]) -> bool:
        evals.append({k: record[k] for k in ("env_steps", "mean", "train_time_s")})
        _progress("ours", evals[-1])
        return solve_points(evals, task.threshold)["stop"]

    TrainingLoop(config, run_dir, on_eval=on_eval).run()
    return evals


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
            return not solve_points(evals, task.threshold)["stop"]

    model.learn(total_timesteps=task.max_env_steps, callback=Evaluate())
    return evals


def _progress(agent: str, record: dict[str, Any]) -> None:
    print(f"  {agent} {record['env_steps']:>8,d} env steps  eval {record['mean']:8.3f}  "
          f"train {record['train_time_s']:6.1f} s", file=sys.stderr, flush=True)


def _worker(args: argparse.Namespace) -> int:
    if args.agent == "ours":
        from agents.r2d2.quiet import import_tensorflow_quietly

        import_tensorflow_quietly()  # no CUDA-probe noise on a CPU-only machine
    task = _task(args.task, args.eval_every)
    if args.max_env_steps is not None:
        task = dataclasses.replace(task, max_env_steps=args.max_env_steps)
    start = time.perf_counter()
    if args.agent == "ours":
        with tempfile.TemporaryDirectory() as run_dir:
            evals = run_ours(task, args.seed, task.eval_every, os.path.join(run_dir, "run"))
    else:
        evals = run_peer(task, args.seed, task.eval_every, threads=args.peer_threads)
    # First and sustained points are derived from the evals by the driver (one rule, one place).
    result = {"task": args.task, "agent": args.agent, "seed": args.seed, "evals": evals,
              "process_time_s": time.perf_counter() - start}
    with open(args.worker_out, "w", encoding="utf-8") as file:
        json.dump(result, file)
    return 0


def _task(name: str, eval_every: int | None) -> Task:
    """TASKS[name], with ``eval_every`` replaced when given."""
    task = TASKS[name]
    return task if eval_every is None else dataclasses.replace(task, eval_every=eval_every)


def _summary(evals: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """First and sustained points of a finished run. A sustained point counts only once the
    run held the threshold up to twice its env steps (a run cut by the cap before that has
    not shown it does not collapse)."""
    points = solve_points(evals, threshold) if evals else {"first": None, "sustained": None, "stop": False}
    if not points["stop"]:
        points["sustained"] = None
    out = {}
    for name in ("first", "sustained"):
        point = points[name]
        out[f"{name}_steps"] = point["env_steps"] if point else None
        out[f"{name}_wall_s"] = point["train_time_s"] if point else None
    return out


# ----------------------------------------------------------------------------- driver


def machine() -> dict[str, Any]:
    """What the wall times were measured on: the CPU model, the cores, and the seconds a
    fixed pure-Python loop takes here (machines of one kind differ several-fold in both
    agents' wall times: compare only figures from the same run)."""
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


def _median(values: list[float | None]) -> float | None:
    """Median with unsolved runs counted as infinitely late; None when that median is."""
    med = float(np.median([math.inf if v is None else v for v in values]))
    return None if math.isinf(med) else med


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else round(a / b, 3)


def _reached_or_cap(run: dict[str, Any], key: str) -> float | None:
    """The sustained point, or for a run that never sustained the threshold the point where
    it stopped (its last eval): a lower bound of when it would have."""
    if run[f"sustained_{key}"] is not None:
        return run[f"sustained_{key}"]
    if not run["evals"]:
        return None
    return run["evals"][-1]["env_steps" if key == "steps" else "train_time_s"]


def compare(ours: list[dict[str, Any]], peer: list[dict[str, Any]], key: str) -> tuple[float | None, str | None]:
    """Ours / peer's median to the sustained threshold (``key``: "steps" or "wall_s").

    Returns (ratio, kind): kind "exact" when both medians reached it; "upper_bound" when
    ours did and the peer's did not by its cap (the peer's median is then at least the median
    of its stopping points, so the ratio is at most the one returned); "lower_bound" the
    other way round; (None, None) when neither did.
    """
    if not ours or not peer:  # one agent only (--agents ours): nothing to compare
        return None, None
    ours_median = _median([r[f"sustained_{key}"] for r in ours])
    peer_median = _median([r[f"sustained_{key}"] for r in peer])
    if ours_median is not None and peer_median is not None:
        return _ratio(ours_median, peer_median), "exact"
    if ours_median is not None:
        return _ratio(ours_median, _median([_reached_or_cap(r, key) for r in peer])), "upper_bound"
    if peer_median is not None:
        return _ratio(_median([_reached_or_cap(r, key) for r in ours]), peer_median), "lower_bound"
    return None, None


def _plot(task_name: str, task: Task, results: list[dict[str, Any]], eval_every: int, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from r2d2_state.files import atomic_write

    fig, ax = plt.subplots(figsize=(7, 4))
    for agent, color in (("ours", "tab:blue"), ("peer", "tab:orange")):
        runs = [r for r in results if r["agent"] == agent and r["evals"]]
        if not runs:
            continue
        grid = np.arange(1, max(max(e["env_steps"] for e in r["evals"]) for r in runs) // eval_every + 1)
        curves = []
        for r in runs:
            steps = np.array([e["env_steps"] for e in r["evals"]])
            means = np.array([e["mean"] for e in r["evals"]])
            # A run that stopped after sustaining the threshold keeps its last value.
            idx = np.clip(np.searchsorted(steps, grid * eval_every - eval_every // 2), 0, len(steps) - 1)
            curves.append(means[idx])
        curves = np.array(curves)
        label = "r2d2_state" if agent == "ours" else "RecurrentPPO (sb3-contrib)"
        ax.plot(grid * eval_every, np.median(curves, axis=0), color=color, label=f"{label}, median of {len(runs)}")
        ax.fill_between(grid * eval_every, curves.min(axis=0), curves.max(axis=0), color=color, alpha=0.2)
    ax.axhline(task.threshold, color="gray", linestyle="--", linewidth=1, label=f"threshold {task.threshold:g}")
    ax.set_xlabel("env steps")
    ax.set_ylabel("greedy eval return")
    ax.set_title(f"{task_name}: {task.env_id} {task.env_kwargs or ''}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    try:
        atomic_write(path, lambda file: fig.savefig(file, format="png", dpi=100), binary=True)
    finally:
        plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=list(TASKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--agents", nargs="+", choices=AGENTS, default=list(AGENTS))
    parser.add_argument("--eval-every", type=int, default=None,
                        help="env steps between evaluations, for every task (default: the task's, 5k; 1k on tmaze5)")
    parser.add_argument("--max-env-steps", type=int, default=None,
                        help="cap every run at this many env steps instead of the task's cap")
    parser.add_argument("--quick", action="store_true", help="T-maze corridor 5, seed 0 only")
    parser.add_argument("--out", default="runs/bench_learning", help="results.jsonl and the PNGs go here")
    parser.add_argument("--resume", action="store_true", help="skip runs already in OUT/results.jsonl")
    parser.add_argument("--peer-threads", type=int, default=PEER_THREADS,
                        help=f"torch threads of the peer (default {PEER_THREADS}: its fastest here, see the module doc)")
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
                                          peer_threads=args.peer_threads))
    if args.quick:
        args.tasks, args.seeds = ["tmaze5"], [0]
    largest_every = max(_task(t, args.eval_every).eval_every for t in args.tasks)
    if args.max_env_steps is not None and args.max_env_steps < largest_every:
        parser.error(f"--max-env-steps must be >= the evaluation period of the tasks ({largest_every}), "
                     f"got {args.max_env_steps}")
    if "peer" in args.agents:
        try:
            import sb3_contrib  # noqa: F401
        except ImportError:
            parser.error('the peer needs sb3-contrib: pip install -e ".[peer]" (or --agents ours)')

    os.makedirs(args.out, exist_ok=True)
    results_path = os.path.join(args.out, "results.jsonl")
    done: list[dict[str, Any]] = []
    if args.resume and os.path.exists(results_path):
        with open(results_path, encoding="utf-8") as file:
            done = [json.loads(line) for line in file if line.strip()]
    elif os.path.exists(results_path):
        os.replace(results_path, results_path + ".previous")
    results = [r for r in done if r["task"] in args.tasks and r["agent"] in args.agents and r["seed"] in args.seeds]
    have = {(r["task"], r["agent"], r["seed"]) for r in results}

    for task_name in args.tasks:
        for seed in args.seeds:
            for agent in args.agents:
                if (task_name, agent, seed) in have:
                    continue
                print(f"{task_name} seed {seed}: {agent}", file=sys.stderr, flush=True)
                with tempfile.TemporaryDirectory() as tmp:
                    out = os.path.join(tmp, "result.json")
                    cap = [] if args.max_env_steps is None else ["--max-env-steps", str(args.max_env_steps)]
                    every = [] if args.eval_every is None else ["--eval-every", str(args.eval_every)]
                    subprocess.run([sys.executable, os.path.abspath(__file__), *every, *cap,
                                    "--peer-threads", str(args.peer_threads),
                                    "--_worker", task_name, agent, str(seed), out], check=True)
                    with open(out, encoding="utf-8") as file:
                        result = json.load(file)
                with open(results_path, "a", encoding="utf-8") as file:  # appended as each run ends
                    file.write(json.dumps(result) + "\n")
                    file.flush()
                    os.fsync(file.fileno())
                results.append(result)

    summary: dict[str, Any] = {"eval_every": {t: _task(t, args.eval_every).eval_every for t in args.tasks},
                               "seeds": args.seeds, "machine": machine()}
    header = f"{'task':<15} {'agent':<5} {'seed':>4} {'first steps':>12} {'first s':>8} {'sustained steps':>16} {'sustained s':>12}"
    print(header)
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    for result in results:
        result.update(_summary(result["evals"], TASKS[result["task"]].threshold))
    for task_name in args.tasks:
        task = _task(task_name, args.eval_every)
        medians = {}
        for agent in args.agents:
            rows = sorted((r for r in results if r["task"] == task_name and r["agent"] == agent), key=lambda r: r["seed"])
            for r in rows:
                print(f"{task_name:<15} {agent:<5} {r['seed']:>4} {fmt(r['first_steps'], ',d'):>12} "
                      f"{fmt(r['first_wall_s'], '.1f'):>8} {fmt(r['sustained_steps'], ',d'):>16} "
                      f"{fmt(r['sustained_wall_s'], '.1f'):>12}")
            for key in ("first_steps", "first_wall_s", "sustained_steps", "sustained_wall_s"):
                medians[f"{agent}_{key}"] = _median([r[key] for r in rows])
        summary[task_name] = medians
        by_agent = {a: [r for r in results if r["task"] == task_name and r["agent"] == a] for a in AGENTS}
        for name, key in (("steps", "steps"), ("wall", "wall_s")):
            ratio, kind = compare(by_agent["ours"], by_agent["peer"], key)
            summary[f"{name}_vs_peer_{task_name}"] = ratio
            if kind not in (None, "exact"):
                summary[f"{name}_vs_peer_{task_name}_is"] = kind
        _plot(task_name, task, [r for r in results if r["task"] == task_name], task.eval_every,
              os.path.join(args.out, f"learning_{task_name}.png"))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
