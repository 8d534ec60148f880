"""The single-process R2D2 loop: actor and learner interleaved, no server needed.

One iteration::

    actions, state = actor.select_actions(obs)           # state BEFORE the step
    next_obs, r, term, trunc, _ = envs.step(actions)
    adder.add(obs, actions, r, term, trunc, state)       # full sequences -> replay
    actor.observe(actions, r, term, trunc)               # NEXT_STEP row resets
    while replay ready and sampled <= replay_ratio * (inserted - inserted at start):
        learner step on replay.sample(batch_size); replay.update_priorities(...)
    every actor_update_period vector steps: actor.set_weights(learner.get_weights())
    every log_every env steps: metrics.csv, TensorBoard, progress
    every eval_every env steps: greedy evaluation (stop when solved)
    every checkpoint_every env steps, at the end, on SIGINT / SIGTERM: checkpoint

Counting. ``env_steps`` counts every sub-env step (``num_envs`` per vector step),
including the NEXT_STEP autoreset steps, which are not transitions. ``replay_ratio`` is
sampled sequences per inserted sequence (see :mod:`agents.r2d2.train_config`); learning
starts when the replay holds ``min_replay_size`` sequences, and from then on
``sampled ~= replay_ratio * (inserted - inserted_at_start)`` within one batch.

Resuming (``resume=True``) restores from the run's latest verified checkpoint: learner
networks, optimizer slots and step counter, the replay (contents, priorities, RNG), loop
counters, the actor's exploration RNG and weights, metric history. The environments
restart with a fresh reset: episodes in progress at the checkpoint are lost (their
completed sequences are in the replay; the partial one is not).

Usage::

    loop = TrainingLoop(get_preset("tmaze"), "runs/tmaze-0")
    result = loop.run()      # returns on budget, solve, SIGINT or SIGTERM (after checkpointing)
    TrainingLoop(TrainConfig.from_json_file("runs/tmaze-0/config.json"), "runs/tmaze-0", resume=True).run()
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import signal
import threading
import time
from typing import Any, Callable

import numpy as np

from agents.r2d2.checkpoint import CheckpointError, CheckpointManager
from agents.r2d2.train_config import RESUME_OVERRIDABLE, ConfigurationError, TrainConfig, config_differences
from r2d2_state.files import atomic_write_text

__all__ = ["LoopResult", "RunFailedError", "TrainingLoop", "default_run_dir"]

STOP_REASONS = ("env_steps", "time_budget", "solved", "signal", "on_eval")


class RunFailedError(RuntimeError):
    """Training cannot go on (e.g. a Ray actor failed more than max_actor_restarts times).

    Raised after a checkpoint of everything the driver holds was written.
    """


@dataclasses.dataclass(frozen=True)
class LoopResult:
    run_dir: str
    """The run directory."""
    stopped_by: str
    """One of env_steps, time_budget, solved, signal."""
    env_steps: int
    """Environment steps done (all envs, all resumes)."""
    learner_steps: int
    """Learner steps done."""
    episodes: int
    """Completed training episodes."""
    wall_time_s: float
    """Training wall-clock summed over resumes."""
    last_eval: dict[str, Any] | None
    """The last periodic evaluation (mean, std, env_steps), if any."""
    solved_at: dict[str, Any] | None
    """env_steps / learner_steps / wall_time_s / process_time_s when solve_threshold was reached."""
    checkpoint: str | None
    """Path of the checkpoint written at the end."""


def default_run_dir(config: TrainConfig, root: str = "runs") -> str:
    name = config.env_id.split(":")[-1].split("/")[-1].lower()  # PACKAGE:NS/Name-v0 -> name-v0
    return os.path.join(root, f"{name}-seed{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}")


def _dotted(values: dict[str, Any], name: str) -> Any:
    for part in name.split("."):
        values = values.get(part, "<missing>") if isinstance(values, dict) else "<missing>"
    return values


class TrainingLoop:
    """Owns envs, actor, adder, replay, learner, logger and checkpoints of one run.

    Args:
      config: the resolved training config (written to ``RUN_DIR/config.json``).
      run_dir: output directory; default ``config.run_dir`` or :func:`default_run_dir`.
      resume: restore the run's latest checkpoint (or ``checkpoint``) first; raises
        :class:`CheckpointError` if it is missing or corrupt (never trains from scratch),
        :class:`ConfigurationError` if ``config`` differs from the checkpoint's in a field
        outside ``RESUME_OVERRIDABLE``. Newer checkpoints than the one resumed from are
        moved aside into ``checkpoints/superseded-<time>/`` (and said so when the run starts).
      checkpoint: name of the checkpoint to resume from (default: ``latest``).
      process_start: ``time.perf_counter()`` at process start, so solve times can
        include TensorFlow's start-up.
      on_eval: called after every periodic evaluation with its record (``env_steps``,
        ``mean``, ``std``, ``episodes``, ``train_time_s``: training wall time so far without
        the time spent evaluating); returning True stops the run (``stopped_by="on_eval"``).
        The learning benchmark uses it for its stopping rule.

    Start-up checks everything before it writes anything: the run directory (a new run
    refuses one holding another run's config.json or checkpoints: FileExistsError), the
    checkpoint and its config, the environment and the networks (ConfigurationError).
    Only then are ``config.json`` written, newer checkpoints moved aside and
    ``metrics.csv`` cut back to the checkpoint's step.
    """

    def __init__(self, config: TrainConfig, run_dir: str | None = None, *, resume: bool = False,
                 checkpoint: str | None = None, process_start: float | None = None,
                 on_eval: Callable[[dict[str, Any]], bool] | None = None) -> None:
        import keras

        import envs
        from agents.r2d2.actor import R2D2Actor
        from agents.r2d2.config import actor_epsilons
        from agents.r2d2.evaluation import network_config_for
        from agents.r2d2.learner import R2D2Learner
        from agents.r2d2.run_logger import RunLogger
        from r2d2_state.replay import SequenceAdder, SequenceReplay

        self.config = config
        self.run_dir = os.path.abspath(run_dir or config.run_dir or default_run_dir(config))
        self.process_start = process_start if process_start is not None else time.perf_counter()
        self.on_eval = on_eval
        self.checkpoints = CheckpointManager(self.run_dir, keep=config.keep_checkpoints)
        self.envs = None
        self._eval_actor = None
        self._eval_envs = None
        self.notes: list[str] = []  # what the start-up changed on disk, printed when the run starts

        # 1. Check the run directory and the checkpoint (reading only).
        if resume:
            checkpoint_path, _ = self.checkpoints.verify(checkpoint)  # never trains from scratch instead
            self._check_resume_config(self.checkpoints.read_state(checkpoint_path), checkpoint_path)
            self._check_metrics_readable()
        else:
            self._check_fresh_run_dir()

        # 2. Build and check environments, networks, replay (nothing written yet).
        r = config.r2d2
        keras.utils.set_random_seed(config.seed)
        try:
            self.envs = envs.make_vector_env(config.env_id, r.num_envs, seed=config.seed,
                                               env_packages=config.env_packages, **config.env_kwargs)
            self.description = envs.describe_env(self.envs)
        except Exception as error:  # noqa: BLE001 - unknown id, bad kwargs, missing package, ...
            self.close()
            raise ConfigurationError(
                f"cannot make environment {config.env_id!r} with env_kwargs {config.env_kwargs!r} "
                f"({type(error).__name__}: {error})") from error
        try:
            self.network_config = network_config_for(config, self.description)
            self.learner = R2D2Learner(r, self.network_config)
            self.actor = R2D2Actor(self.network_config, r.num_envs,
                                   actor_epsilons(r.num_envs, r.epsilon_base, r.epsilon_alpha), seed=config.seed)
        except (ValueError, TypeError) as error:
            self.close()
            raise ConfigurationError(f"cannot build the networks for {config.env_id!r} "
                                     f"({type(error).__name__}: {error})") from error
        self.threshold = (config.solve_threshold if config.solve_threshold is not None
                          else self.description.reward_threshold)
        self.replay = SequenceReplay(r.replay_capacity, r.priority_exponent, r.importance_exponent,
                                     seed=config.seed)
        # Per-step states are kept only for the staleness diagnostic (they cost L x state bytes).
        self.adder = SequenceAdder(self.replay, r.num_envs, r.burn_in, r.trace_length,
                                   r.sequence_period, r.n_step, store_states=r.staleness_period > 0)
        self.logger = RunLogger(self.run_dir, mode=config.progress, total_env_steps=config.total_env_steps,
                                title=f"R2D2 {config.env_id}")

        self.counters = {
            "env_steps": 0, "vector_steps": 0, "episodes": 0, "inserted_sequences": 0,
            "sampled_sequences": 0, "inserted_at_learning_start": None, "wall_time_s": 0.0,
            "next_log": config.log_every, "next_checkpoint": config.checkpoint_every or math.inf,
            "next_eval": config.eval_every or math.inf, "resumes": 0, "eval_time_s": 0.0,
        }
        self.recent_returns: collections.deque[float] = collections.deque(maxlen=100)
        self.recent_lengths: collections.deque[int] = collections.deque(maxlen=100)
        self.last_eval: dict[str, Any] | None = None
        self.solved_at: dict[str, Any] | None = None
        self.resumed_from: str | None = None
        self._reset_seed = config.seed
        try:
            if resume:
                self._restore(checkpoint)
            self.actor.set_weights(self.learner.get_weights())
        except BaseException:
            self.close()
            raise

        # 3. Everything checked: only now write to disk.
        self._write_run_dir()

    # ------------------------------------------------------------------ start-up checks

    def _check_fresh_run_dir(self) -> None:
        """A new run needs a directory without another run's config or checkpoints."""
        config_path = os.path.join(self.run_dir, "config.json")
        if os.path.exists(config_path):
            raise FileExistsError(f"{self.run_dir!r} already holds a run (config.json exists): "
                                  "resume it with --resume, or pick another --run_dir")
        names = self.checkpoints.names()
        if names or os.path.lexists(os.path.join(self.checkpoints.directory, "latest")):
            raise FileExistsError(
                f"{self.run_dir!r} holds checkpoints of another run ({names or 'a latest pointer'}) but no "
                "config.json: a new run there would mix with them. Pick another --run_dir, or move "
                f"{self.checkpoints.directory!r} away")

    def _check_resume_config(self, state: dict[str, Any], checkpoint_path: str) -> None:
        """The run's config.json (plus budget overrides) must match what the checkpoint trained."""
        saved = state.get("config")
        if saved is None:
            return  # checkpoints written before the config was stored in them
        try:
            trained = TrainConfig.from_dict(saved).to_dict()
        except (ValueError, TypeError, AttributeError, KeyError) as error:
            raise CheckpointError(f"{checkpoint_path!r}: state.json holds an invalid config ({error})") from None
        differing = [f for f in config_differences(self.config.to_dict(), trained)
                     if f not in RESUME_OVERRIDABLE]
        if differing:
            now, then = self.config.to_dict(), trained
            details = "; ".join(f"{f}: config {_dotted(now, f)!r}, checkpoint {_dotted(then, f)!r}"
                                for f in differing[:5])
            raise ConfigurationError(
                f"{os.path.join(self.run_dir, 'config.json')!r} no longer matches checkpoint "
                f"{os.path.basename(checkpoint_path)!r} ({details}): only {sorted(RESUME_OVERRIDABLE)} may "
                "change on resume. Restore config.json, or start a new run")

    def _check_metrics_readable(self) -> None:
        from agents.r2d2.run_logger import read_metrics

        try:
            read_metrics(os.path.join(self.run_dir, "metrics.csv"))
        except ValueError as error:
            raise ConfigurationError(f"{error}; move it away to resume (it is rewritten from the checkpoint's "
                                     "step on)") from None

    def _write_run_dir(self) -> None:
        """config.json and env.json; on resume, newer checkpoints moved aside and metrics.csv cut back."""
        import envs

        cfg = self.config
        os.makedirs(self.run_dir, exist_ok=True)
        atomic_write_text(os.path.join(self.run_dir, "config.json"),
                          json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
        # What evaluate.py checks when it rebuilds the env: id, packages, conversion.
        atomic_write_text(os.path.join(self.run_dir, "env.json"), json.dumps(
            envs.env_record(self.envs, cfg.env_id, cfg.env_packages, cfg.env_kwargs), indent=2))
        if self.resumed_from is None:
            return
        target, moved = self.checkpoints.supersede_newer_than(self.resumed_from)
        if moved:
            self.notes.append(f"resuming from {self.resumed_from} supersedes the newer checkpoints {moved}: "
                              f"moved aside into {target}")
        self.logger.truncate_after(self.counters["env_steps"])

    # ------------------------------------------------------------------ checkpoints

    def _state(self) -> dict[str, Any]:
        counters = {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in self.counters.items()}
        return {
            **counters,
            "learner_steps": int(self.learner.num_steps.numpy()),
            "recent_returns": list(self.recent_returns),
            "recent_lengths": list(self.recent_lengths),
            "last_eval": self.last_eval,
            "solved_at": self.solved_at,
            "actor_rng": self.actor.rng_state,
            "replay_size": len(self.replay),
            "config": self.config.to_dict(),
        }

    def save_checkpoint(self) -> str:
        """Write a checkpoint of everything now (atomic; see :mod:`agents.r2d2.checkpoint`)."""
        before = len(self.checkpoints.superseded)
        path = self.checkpoints.save(self.counters["env_steps"], self.learner.checkpoint_objects(),
                                     self.replay, self._state(), self.learner.get_weights())
        for name, target in self.checkpoints.superseded[before:]:
            self.logger.message(f"checkpoint {name} existed (not written by this run): moved aside into {target}")
        return path

    def _announce_start(self) -> None:
        """The resume line and what the start-up moved aside (both backends)."""
        c = self.counters
        if self.resumed_from:
            self.logger.message(f"resumed {self.run_dir} from {self.resumed_from}: {c['env_steps']:,d} env steps, "
                                f"{int(self.learner.num_steps.numpy()):,d} learner steps, replay {len(self.replay):,d}")
        for note in self.notes:
            self.logger.message(note)

    def _restore(self, name: str | None) -> None:
        loaded = self.checkpoints.load(self.learner.checkpoint_objects(), self.replay, name)
        state = loaded.state
        for key in self.counters:
            if key in state:
                value = state[key]
                self.counters[key] = math.inf if value is None and key.startswith("next_") else value
        self.counters["resumes"] = int(state.get("resumes", 0)) + 1
        # Budgets may have been changed on resume: recompute what is due next.
        cfg = self.config
        steps = self.counters["env_steps"]
        self.counters["next_checkpoint"] = (steps + cfg.checkpoint_every) if cfg.checkpoint_every else math.inf
        if cfg.eval_every and not math.isfinite(self.counters["next_eval"]):
            self.counters["next_eval"] = steps + cfg.eval_every
        self.recent_returns.extend(state.get("recent_returns", []))
        self.recent_lengths.extend(state.get("recent_lengths", []))
        self.last_eval = state.get("last_eval")
        self.solved_at = state.get("solved_at")
        if state.get("actor_rng") is not None:
            self.actor.rng_state = state["actor_rng"]
        # Fresh episodes after a resume, from a seed that differs from the first run's.
        self._reset_seed = int(np.random.SeedSequence([self.config.seed, steps]).generate_state(1)[0] % 2**31)
        self.resumed_from = loaded.name

    # ------------------------------------------------------------------ running

    def run(self) -> LoopResult:
        """Train until a budget, the solve threshold or a signal stops it; checkpoint; return."""
        stop_signal: list[int] = []
        restore = self._install_signal_handlers(stop_signal)
        try:
            stopped_by = self._run(stop_signal)
            path = self.save_checkpoint()
            self.logger.message(f"checkpoint: {path} (stopped by {stopped_by})")
        finally:
            for signum, handler in restore.items():
                signal.signal(signum, handler)
            self.logger.close()
            self.close()
        c = self.counters
        return LoopResult(self.run_dir, stopped_by, int(c["env_steps"]), int(self.learner.num_steps.numpy()),
                          int(c["episodes"]), float(c["wall_time_s"]), self.last_eval, self.solved_at, path)

    def close(self) -> None:
        for env in (getattr(self, "envs", None), getattr(self, "_eval_envs", None)):
            if env is not None:
                env.close()

    def _install_signal_handlers(self, stop_signal: list[int]) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        originals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum, frame):  # noqa: ARG001
            stop_signal.append(signum)
            # A second Ctrl-C gets the default behaviour (abort without checkpoint).
            signal.signal(signum, originals[signum])

        for s in originals:
            signal.signal(s, handler)
        return originals

    def _run(self, stop_signal: list[int]) -> str:
        cfg, r, c = self.config, self.config.r2d2, self.counters
        n = r.num_envs
        self._announce_start()
        obs, _ = self.envs.reset(seed=self._reset_seed)
        self.actor.reset()
        ep_return = np.zeros(n, np.float64)
        ep_length = np.zeros(n, np.int64)
        ended = np.zeros(n, bool)
        session_start = time.perf_counter()
        wall_at_start = float(c["wall_time_s"])
        interval = {"time": session_start, "env_steps": c["env_steps"], "learner_steps": int(self.learner.num_steps.numpy())}
        # Per-key counts: the staleness diagnostic reports only every staleness_period steps.
        metric_sums: dict[str, float] = collections.defaultdict(float)
        metric_counts: dict[str, int] = collections.defaultdict(int)
        learner_steps_since_sync = 0

        while True:
            stop = self._stop_reason(stop_signal)
            if stop:
                return stop

            actions, state = self.actor.select_actions(obs)
            next_obs, reward, terminated, truncated, _ = self.envs.step(actions)
            items = self.adder.add(obs, actions, reward, terminated, truncated, state)
            self.actor.observe(actions, reward, terminated, truncated)
            obs = next_obs
            c["vector_steps"] += 1
            c["env_steps"] += n
            if items is not None:
                c["inserted_sequences"] += int(np.shape(items["valid"])[0])

            # Episode bookkeeping: the step after an episode end is not a transition.
            transition = ~ended
            ep_return += np.where(transition, reward, 0.0)
            ep_length += transition
            finished = transition & (np.asarray(terminated) | np.asarray(truncated))
            for i in np.flatnonzero(finished):
                self.recent_returns.append(float(ep_return[i]))
                self.recent_lengths.append(int(ep_length[i]))
            c["episodes"] += int(finished.sum())
            ep_return[finished] = 0.0
            ep_length[finished] = 0
            ended = finished

            # Learner: keep sampled ~= replay_ratio * inserted since learning started.
            if c["inserted_at_learning_start"] is None and len(self.replay) >= cfg.min_replay_size:
                c["inserted_at_learning_start"] = c["inserted_sequences"]
            if c["inserted_at_learning_start"] is not None:
                allowed = cfg.replay_ratio * (c["inserted_sequences"] - c["inserted_at_learning_start"])
                for _ in range(cfg.max_learner_steps_per_env_step):
                    if c["sampled_sequences"] > allowed:
                        break
                    metrics = self._learner_step()
                    c["sampled_sequences"] += r.batch_size
                    learner_steps_since_sync += 1
                    for key, value in metrics.items():
                        metric_sums[key] += value
                        metric_counts[key] += 1

            if learner_steps_since_sync and c["vector_steps"] % r.actor_update_period == 0:
                self.actor.set_weights(self.learner.get_weights())
                learner_steps_since_sync = 0

            c["wall_time_s"] = wall_at_start + (time.perf_counter() - session_start)
            interval, stop = self._periodic(interval, metric_sums, metric_counts)
            if stop:
                return stop

    def _stop_reason(self, stop_signal: list[int]) -> str | None:
        """Why the loop must stop now (a signal, the env-step or the time budget), or None."""
        c, cfg = self.counters, self.config
        if stop_signal:
            return "signal"
        if c["env_steps"] >= cfg.total_env_steps:
            return "env_steps"
        if cfg.time_budget_s and c["wall_time_s"] >= cfg.time_budget_s:
            return "time_budget"
        return None

    def _periodic(self, interval: dict[str, Any], metric_sums: dict[str, float],
                  metric_counts: dict[str, int]) -> tuple[dict[str, Any], str | None]:
        """Evaluation, logging and checkpoints when due; returns the new log interval and
        ``"solved"`` when an evaluation reached the threshold (and stopping is on)."""
        c, cfg = self.counters, self.config
        eval_row = None
        if c["env_steps"] >= c["next_eval"]:
            c["next_eval"] += cfg.eval_every * max(1, math.ceil((c["env_steps"] - c["next_eval"] + 1) / cfg.eval_every))
            eval_row = self._evaluate()
        if c["env_steps"] >= c["next_log"] or eval_row is not None:
            if c["env_steps"] >= c["next_log"]:
                c["next_log"] += cfg.log_every * max(1, math.ceil((c["env_steps"] - c["next_log"] + 1) / cfg.log_every))
            interval = self._log(interval, metric_sums, metric_counts, eval_row)
        if eval_row is not None and self.solved_at is not None and cfg.stop_at_threshold:
            return interval, "solved"
        if eval_row is not None and self.on_eval is not None and self.on_eval(dict(self.last_eval)):
            return interval, "on_eval"
        if c["env_steps"] >= c["next_checkpoint"]:
            c["next_checkpoint"] += cfg.checkpoint_every * max(
                1, math.ceil((c["env_steps"] - c["next_checkpoint"] + 1) / cfg.checkpoint_every))
            self.save_checkpoint()
        return interval, None

    def samples_per_insert(self) -> float | None:
        """Sampled / inserted sequences since learning started (None before)."""
        c = self.counters
        if c["inserted_at_learning_start"] is None:
            return None
        inserted = c["inserted_sequences"] - c["inserted_at_learning_start"]
        return c["sampled_sequences"] / inserted if inserted else None

    def _log(self, interval: dict[str, Any], metric_sums: dict[str, float], metric_counts: dict[str, int],
             eval_row: dict[str, Any] | None) -> dict[str, Any]:
        """Write one metrics row (averages since the last row); returns the new interval."""
        c = self.counters
        now = time.perf_counter()
        elapsed = max(now - interval["time"], 1e-9)
        learner_steps = int(self.learner.num_steps.numpy())
        row: dict[str, Any] = {
            "env_steps": c["env_steps"], "wall_time_s": c["wall_time_s"], "episodes": c["episodes"],
            "learner_steps": learner_steps, "replay_size": len(self.replay),
            "recent_return": float(np.mean(self.recent_returns)) if self.recent_returns else None,
            "recent_length": float(np.mean(self.recent_lengths)) if self.recent_lengths else None,
            "env_steps_per_s": (c["env_steps"] - interval["env_steps"]) / elapsed,
            "learner_steps_per_s": (learner_steps - interval["learner_steps"]) / elapsed,
            "samples_per_insert": self.samples_per_insert(),
            "actor_restarts": c.get("actor_restarts"),  # Ray backend only
        }
        row.update({k: v / metric_counts[k] for k, v in metric_sums.items()})
        if eval_row is not None:
            row.update(eval_row)
        self.logger.log(row)
        metric_sums.clear()
        metric_counts.clear()
        return {"time": now, "env_steps": c["env_steps"], "learner_steps": learner_steps}

    def _learner_step(self) -> dict[str, float]:
        sample = self.replay.sample(self.config.r2d2.batch_size)
        result = self.learner.step(sample.data, sample.weights)
        self.replay.update_priorities(sample.keys, result.priorities)
        return {k: v for k, v in result.metrics.items()
                if k in ("loss", "mean_abs_td", "mean_q", "grad_norm") or k.startswith("staleness/")}

    def _evaluate(self) -> dict[str, Any]:
        """Greedy (eval_epsilon) episodes with the learner's current weights."""
        import envs
        from agents.r2d2.actor import R2D2Actor
        from agents.r2d2.evaluation import run_episodes

        cfg = self.config
        if self._eval_actor is None:
            self._eval_envs = envs.make_vector_env(cfg.env_id, cfg.eval_num_envs, env_packages=cfg.env_packages,
                                                   **cfg.env_kwargs)
            self._eval_actor = R2D2Actor(self.network_config, cfg.eval_num_envs, cfg.r2d2.eval_epsilon,
                                         seed=cfg.seed + 1)
        self._eval_actor.set_weights(self.learner.get_weights())
        c = self.counters
        seed = int(np.random.SeedSequence([cfg.seed, 7, c["env_steps"]]).generate_state(1)[0] % 2**31)
        # wall_time_s was updated just before this evaluation; earlier ones are subtracted.
        train_time_s = c["wall_time_s"] - c["eval_time_s"]
        started = time.perf_counter()
        returns, _ = run_episodes(self._eval_actor, self._eval_envs, cfg.eval_episodes, seed=seed)
        c["eval_time_s"] += time.perf_counter() - started
        mean, std = float(np.mean(returns)), float(np.std(returns))
        self.last_eval = {"env_steps": c["env_steps"], "mean": mean, "std": std, "episodes": len(returns),
                          "train_time_s": train_time_s}
        if self.solved_at is None and self.threshold is not None and mean >= self.threshold:
            self.solved_at = {"env_steps": c["env_steps"], "learner_steps": int(self.learner.num_steps.numpy()),
                              "wall_time_s": c["wall_time_s"],
                              "process_time_s": time.perf_counter() - self.process_start,
                              "eval_return": mean}
            self.logger.message(
                f"solved: eval return {mean:.3f} >= {self.threshold:g} at {c['env_steps']:,d} env steps, "
                f"{c['wall_time_s']:.0f} s of training ({self.solved_at['process_time_s']:.0f} s since start-up)")
        return {"eval_return": mean, "eval_return_std": std}
