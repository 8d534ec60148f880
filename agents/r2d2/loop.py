"""The R2D2 training loop: one run loop over an experience source, the replay and the learner.

One iteration (the same for both backends)::

    chunks = source.collect(may_insert, learner_due)     # local: one vector step of the actor
    replay.add_chunk(chunk.steps, chunk.priorities)      #   (actor, vector env, adder); Ray:
                                                         #   the chunks the workers delivered
    for _ in range(learner_steps_due(inserted since start, sampled, replay_ratio, ...)):
        learner step on replay.sample(batch_size); replay.update_priorities(...)
    source.learner_stepped(steps)                        # local: weights every actor_update_period
    every log_every env steps: metrics.csv, TensorBoard, progress
    every eval_every env steps: greedy evaluation (stop when solved)
    every checkpoint_every env steps, at the end, on SIGINT / SIGTERM: checkpoint

``env_steps`` counts every sub-env step (``num_envs`` per vector step), including the
NEXT_STEP autoreset steps, which are not transitions; ``replay_ratio`` counts sequences
(:mod:`agents.r2d2.train_config`). Resuming restores everything a checkpoint holds; the
environments restart with a fresh reset, so episodes in progress at the checkpoint are lost
(docs/training.md, "Resume").
"""

from __future__ import annotations

import collections
import dataclasses
import os
import signal
import threading
import time
from typing import Any, Callable

import keras
import numpy as np

from agents.r2d2.checkpoint import CheckpointError, CheckpointManager, check_config_matches_checkpoint
from agents.r2d2.counters import Counters
from agents.r2d2.evaluation import Evaluator, network_config_for
from agents.r2d2.experience import Chunk, ExperienceSource, SourceFailedError, make_source, open_environment
from agents.r2d2.learner import R2D2Learner
from agents.r2d2.limiter import inserts_allowed, learner_steps_due
from agents.r2d2.run_dir import check_fresh, check_metrics_readable, check_writable, default_run_dir, write_run_files
from agents.r2d2.run_logger import RunLogger
from agents.r2d2.schedule import Schedule
from agents.r2d2.tf_runtime import configure_tf_threads
from agents.r2d2.train_config import ConfigurationError, TrainConfig
from r2d2_state.network_config import QNetworkConfig
from r2d2_state.replay import SequenceReplay, per_batch_weights

__all__ = ["LoopResult", "RunFailedError", "TrainingLoop", "build_parts"]


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
    """Path of the checkpoint written at the end (the resumed one if nothing was trained)."""
    stop_signal: int | None = None
    """The signal number that stopped the run (``stopped_by == "signal"``), else None."""
    nothing_to_do: str | None = None
    """Why a resumed run trained nothing and wrote nothing (its budget was met already), else None."""


def replay_steps(config: TrainConfig) -> int | None:
    """The replay's step capacity: ``r2d2.replay_capacity_steps``, or with several actor
    processes enough steps for the last ``replay_capacity`` sequences of all of them (one
    process: the replay sizes it from the first chunk)."""
    r = config.r2d2
    if r.replay_capacity_steps is not None or config.backend != "ray":
        return r.replay_capacity_steps
    envs = config.num_actors * r.num_envs
    width = r.sequence_length + 8  # a sequence's lookback: the previous step, older frames of a stack
    steps = ((r.replay_capacity + envs) * (r.trace_length + r.n_step + 1)
             + envs * (width + 2 * r.actor_update_period))
    return steps + steps // 8  # each env's partly filled block of the store (r2d2_state.replay.steps)


def build_parts(config: TrainConfig, notes: list[str], log: Callable[[str], None], ray_address: str | None = None
                ) -> tuple[Any, QNetworkConfig, int, R2D2Learner, ExperienceSource, SequenceReplay]:
    """Build and check what a run is made of (seeded by ``config.seed``; writes nothing):
    ``(description, network_config, tf_threads, learner, source, replay)``: the env's
    ``envs.describe_env``, the network on it, TensorFlow's intra-op threads, the experience
    source on the env. Start-up notes go to ``notes``; ``log`` prints the source's messages.

    Raises:
      ConfigurationError: the environment or the networks cannot be made (the env is closed).
    """
    r = config.r2d2
    keras.utils.set_random_seed(config.seed)
    try:
        env, description, env_info = open_environment(config)
    except Exception as error:  # noqa: BLE001 - unknown id, bad kwargs, missing package, ...
        raise ConfigurationError(
            f"cannot make environment {config.env_id!r} with env_kwargs {config.env_kwargs!r} "
            f"({type(error).__name__}: {error})") from error
    try:
        network_config = network_config_for(config, description)
        tf_threads = configure_tf_threads(config.tf_threads, network_config, notes, xla=r.xla)[0]
        learner = R2D2Learner(r, network_config)
        source = make_source(config, env, description, env_info, network_config, learner, log=log,
                             ray_address=ray_address)
    except BaseException as error:
        if env is not None:
            env.close()
        if isinstance(error, (ValueError, TypeError)):
            raise ConfigurationError(f"cannot build the networks for {config.env_id!r} "
                                     f"({type(error).__name__}: {error})") from error
        raise
    note = sequence_longer_than_episodes(r.burn_in, r.trace_length, description.max_episode_steps, config.env_id)
    if note:
        notes.append(note)
    replay = SequenceReplay(r.replay_capacity, r.priority_exponent, r.importance_exponent, seed=config.seed,
                            capacity_steps=replay_steps(config), compression=r.replay_compression)
    return description, network_config, tf_threads, learner, source, replay


class TrainingLoop:
    """One training run: an experience source, the replay, the learner, logging, checkpoints.

    The parts, each in its own module (source, learner and replay built by :func:`build_parts`):
    ``agents.r2d2.experience`` (actors and envs), ``agents.r2d2.limiter`` (learner steps due,
    inserts allowed), ``agents.r2d2.counters`` (saved in checkpoints), ``agents.r2d2.schedule``
    (when to log, evaluate, checkpoint), ``r2d2_state.autoreset`` (episode returns and lengths).

    Args:
      config: the resolved training config (written to ``RUN_DIR/config.json``).
      run_dir: output directory; default ``config.run_dir`` or :func:`agents.r2d2.run_dir.default_run_dir`.
      resume: restore the run's latest checkpoint (or ``checkpoint``) first; raises
        :class:`CheckpointError` if it is missing or corrupt (never trains from scratch),
        :class:`ConfigurationError` if ``config`` differs from the checkpoint's in a field
        outside ``RESUME_OVERRIDABLE``. Newer checkpoints than the one resumed from are
        moved aside (:meth:`CheckpointManager.supersede_newer_than`).
      checkpoint: name of the checkpoint to resume from (default: ``latest``).
      process_start: ``time.perf_counter()`` at process start, so solve times can
        include TensorFlow's start-up.
      on_eval: called after every periodic evaluation with its record (``env_steps``,
        ``mean``, ``std``, ``episodes``, ``train_time_s``: training wall time so far without
        the time spent evaluating); returning True stops the run (``stopped_by="on_eval"``).
      on_insert: called with every :class:`~agents.r2d2.experience.Chunk` after it was
        inserted and counted.
      on_learner_step: called after every learner step with its metrics (``loss``,
        ``mean_abs_td``, ``mean_q``, ``grad_norm``, ``staleness/...`` when measured).
      ray_address: with ``config.backend == "ray"``: the Ray cluster to join (None: start a
        local one).

    The constructor checks and builds (run directory, checkpoint and its config, environment,
    networks, the source's own check) and writes nothing: a bad one raises FileExistsError
    or :class:`ConfigurationError`. :meth:`run` writes the run directory and launches the actors.
    """

    def __init__(self, config: TrainConfig, run_dir: str | None = None, *, resume: bool = False,
                 checkpoint: str | None = None, process_start: float | None = None,
                 on_eval: Callable[[dict[str, Any]], bool] | None = None,
                 on_insert: Callable[[Chunk], None] | None = None,
                 on_learner_step: Callable[[dict[str, float]], None] | None = None,
                 ray_address: str | None = None) -> None:
        self.config = config
        self.run_dir = os.path.abspath(run_dir or config.run_dir or default_run_dir(config))
        self.process_start = process_start if process_start is not None else time.perf_counter()
        self.on_eval = on_eval
        self.on_insert = on_insert
        self.on_learner_step = on_learner_step
        self.checkpoints = CheckpointManager(self.run_dir, keep=config.keep_checkpoints)
        self._evaluator: Evaluator | None = None  # made at the first evaluation
        self.notes: list[str] = []  # what the start-up found or changed on disk, printed when the run starts
        self._check_run_dir(resume, checkpoint)
        self.logger = RunLogger(self.run_dir, mode=config.progress, total_env_steps=config.total_env_steps,
                                title=f"R2D2 {config.env_id}")
        (self.description, self.network_config, self.tf_threads, self.learner, self.source,
         self.replay) = build_parts(config, self.notes, self.logger.message, ray_address)
        self.threshold = (config.solve_threshold if config.solve_threshold is not None
                          else self.description.reward_threshold)
        self.counters = Counters()
        self.schedule = Schedule.from_config(config.log_every, config.eval_every, config.checkpoint_every)
        self.recent_returns: collections.deque[float] = collections.deque(maxlen=100)
        self.recent_lengths: collections.deque[int] = collections.deque(maxlen=100)
        self.last_eval: dict[str, Any] | None = None
        self.solved_at: dict[str, Any] | None = None
        self.resumed_from: str | None = None
        self._saved: tuple[tuple[int, int], str] | None = None  # (env, learner steps) of the newest checkpoint
        self._reset_seed = config.seed
        try:
            if resume:
                self._restore(checkpoint)
            self.source.check()
        except BaseException:
            self.close()
            raise
        # Everything checked; run() writes to disk and launches the actors.

    # ------------------------------------------------------------------ start-up checks

    def _check_run_dir(self, resume: bool, checkpoint: str | None) -> None:
        """The run directory, and on resume the checkpoint and its config (reading only)."""
        check_writable(self.run_dir)
        if not resume:
            check_fresh(self.run_dir, self.checkpoints)
            return
        path, _ = self.checkpoints.verify(checkpoint)  # never trains from scratch instead
        # The run's config.json (plus budget overrides) must match what the checkpoint trained.
        check_config_matches_checkpoint(self.config, self.checkpoints.read_state(path), path,
                                        os.path.join(self.run_dir, "config.json"))
        check_metrics_readable(self.run_dir)

    def _write_run_dir(self) -> None:
        """config.json and env.json; on resume, newer checkpoints moved aside and metrics.csv cut back.

        Raises:
          ConfigurationError: the run directory cannot be written (e.g. no permission).
        """
        write_run_files(self.run_dir, self.config, self.source.env_info)
        if self.resumed_from is None:
            return
        target, moved = self.checkpoints.supersede_newer_than(self.resumed_from)
        if moved:
            self.notes.append(f"resuming from {self.resumed_from} supersedes the newer checkpoints {moved}: "
                              f"moved aside into {target}")
        self.logger.truncate_after(self.counters.env_steps)

    # ------------------------------------------------------------------ checkpoints

    def _state(self) -> dict[str, Any]:
        """``state.json``: counters, schedule, the source's RNG / restarts, metric history, config."""
        return {
            **self.counters.to_state(),
            **self.schedule.to_state(),
            **self.source.state(),
            "learner_steps": int(self.learner.num_steps.numpy()),
            "recent_returns": list(self.recent_returns),
            "recent_lengths": list(self.recent_lengths),
            "last_eval": self.last_eval,
            "solved_at": self.solved_at,
            "replay_size": len(self.replay),
            "config": self.config.to_dict(),
        }

    def save_checkpoint(self) -> str:
        """Write a checkpoint of everything now (atomic; see :mod:`agents.r2d2.checkpoint`).

        Nothing is written when nothing was done since the newest checkpoint (its path is returned):
        a checkpoint at the same step would replace it for nothing.
        """
        steps = (self.counters.env_steps, int(self.learner.num_steps.numpy()))
        if self._saved is not None and self._saved[0] == steps and os.path.isdir(self._saved[1]):
            return self._saved[1]
        before = len(self.checkpoints.superseded)
        path = self.checkpoints.save(self.counters.env_steps, self.learner.checkpoint_objects(),
                                     self.replay, self._state(), self.learner.get_policy_weights())
        self._saved = (steps, path)
        for name, target in self.checkpoints.superseded[before:]:
            self.logger.message(f"checkpoint {name} existed (not written by this run): moved aside into {target}")
        return path

    def _announce_start(self) -> None:
        """The resume line, what the start-up moved aside and the source's summary."""
        c = self.counters
        if self.resumed_from:
            self.logger.message(f"resumed {self.run_dir} from {self.resumed_from}: {c.env_steps:,d} env steps, "
                                f"{int(self.learner.num_steps.numpy()):,d} learner steps, replay {len(self.replay):,d}")
        for note in self.notes:
            self.logger.message(note)
        if self.source.summary:
            self.logger.message(self.source.summary)

    def _restore(self, name: str | None) -> None:
        loaded = self.checkpoints.load(self.learner.checkpoint_objects(), self.replay, name)
        state = loaded.state
        missing = sorted(set(self._state()) - set(state))
        if missing:
            raise CheckpointError(f"{os.path.join(loaded.path, 'state.json')!r} lacks the keys {missing} "
                                  "that this loop writes and resumes from")
        self.counters = Counters.from_state(state)
        self.counters.resumes += 1
        steps = self.counters.env_steps
        # Budgets may have been changed on resume: recompute what is due next.
        self.schedule.restore(state, steps)
        self.recent_returns.extend(state["recent_returns"])
        self.recent_lengths.extend(state["recent_lengths"])
        self.last_eval = state["last_eval"]
        self.solved_at = state["solved_at"]
        self.source.restore(state)
        # Fresh episodes after a resume, from a seed that differs from the first run's.
        self._reset_seed = int(np.random.SeedSequence([self.config.seed, steps]).generate_state(1)[0] % 2**31)
        self.resumed_from = loaded.name
        self._saved = ((steps, int(self.learner.num_steps.numpy())), loaded.path)

    # ------------------------------------------------------------------ running

    def nothing_to_do(self) -> str | None:
        """Why this (resumed) run has nothing to train: its env-step or time budget is met
        already (None if it has work)."""
        c, cfg = self.counters, self.config
        reason = self._stop_reason([])
        if reason == "env_steps":
            return (f"nothing to do: the run is at {c.env_steps:,d} env steps, which meets --total_env_steps "
                    f"{cfg.total_env_steps:,d}; nothing was written (raise --total_env_steps to train on)")
        if reason == "time_budget":
            return (f"nothing to do: the run has {c.wall_time_s:,.0f} s of training, which meets --time_budget_s "
                    f"{cfg.time_budget_s:g}; nothing was written (raise --time_budget_s, or set 0 for none, "
                    "to train on)")
        return None

    def run(self) -> LoopResult:
        """Write the run directory, launch the actors, train until a budget, the solve
        threshold or a signal stops it; checkpoint; return.

        A resumed run whose budget is met already writes nothing and returns at once
        (:attr:`LoopResult.nothing_to_do`).

        Raises:
          RunFailedError: the experience source cannot go on (after a checkpoint was written).
          ConfigurationError: the run directory cannot be written (nothing was trained).
        """
        c = self.counters
        idle = self.nothing_to_do()
        if idle is not None:
            self.logger.message(idle)
            self.close()
            return LoopResult(self.run_dir, self._stop_reason([]), c.env_steps, int(self.learner.num_steps.numpy()),
                              c.episodes, float(c.wall_time_s), self.last_eval, self.solved_at,
                              self._saved[1] if self._saved else None, nothing_to_do=idle)
        stop_signal: list[int] = []
        restore = self._install_signal_handlers(stop_signal)
        try:
            try:
                # A signal during the start is handled like one during training (it stops at once).
                self._write_run_dir()
                self.source.launch(self._reset_seed, self.counters.vector_steps)
                stopped_by = self._run(stop_signal)
            except SourceFailedError as error:
                path = self.save_checkpoint()
                raise RunFailedError(f"{error}. Everything inserted so far is in checkpoint {path}") \
                    from (error.__cause__ or error)
            path = self.save_checkpoint()
            self.logger.message(f"checkpoint: {path} (stopped by {stopped_by})")
        finally:
            for signum, handler in restore.items():
                signal.signal(signum, handler)
            self.logger.close()
            self.close()
        return LoopResult(self.run_dir, stopped_by, c.env_steps, int(self.learner.num_steps.numpy()),
                          c.episodes, float(c.wall_time_s), self.last_eval, self.solved_at, path,
                          stop_signal=stop_signal[0] if stop_signal else None)

    def close(self) -> None:
        """Release the envs and the actors (idempotent)."""
        for part in (self.source, self._evaluator):
            if part is not None:
                part.close()

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
        """The run loop: collect, insert, learn under the limiter, periodic work."""
        cfg, r, c, source = self.config, self.config.r2d2, self.counters, self.source
        self._announce_start()
        session_start = time.perf_counter()
        wall_at_start = float(c.wall_time_s)
        interval = {"time": session_start, "env_steps": c.env_steps,
                    "learner_steps": int(self.learner.num_steps.numpy())}
        # Per-key counts: the staleness diagnostic reports only every staleness_period steps.
        metric_sums: dict[str, float] = collections.defaultdict(float)
        metric_counts: dict[str, int] = collections.defaultdict(int)

        def steps_due(inserted: int | None, sampled: int) -> int:
            return learner_steps_due(inserted, sampled, cfg.replay_ratio, r.batch_size,
                                     error_buffer=source.error_buffer, max_steps=cfg.max_learner_steps_per_env_step)

        self._logged_at = c.env_steps  # a resumed run's metrics.csv ends at its checkpoint

        def finish(stop: str) -> str:
            # The last step is always a row: a short run or a resume gets its final point.
            if c.env_steps != self._logged_at:
                self._log(interval, metric_sums, metric_counts, None)
            return stop

        try:
            while True:
                stop = self._stop_reason(stop_signal)
                if stop:
                    return finish(stop)

                counts = self._counts_since_learning_start()
                may_insert = inserts_allowed(*counts, cfg.replay_ratio, error_buffer=source.error_buffer)
                for chunk in source.collect(may_insert=may_insert, learner_due=steps_due(*counts) > 0):
                    self._insert(chunk)

                # Learner: keep sampled ~= replay_ratio * inserted since learning started.
                if c.inserted_at_learning_start is None and len(self.replay) >= cfg.min_replay_size:
                    c.inserted_at_learning_start = self.replay.counts()[0]
                    # Said once: env steps/s drop from here, which the first progress line does not explain.
                    self.logger.message(
                        f"learning starts at {c.env_steps:,d} env steps: the replay holds {len(self.replay):,d} "
                        f"sequences (min_replay_size {cfg.min_replay_size:,d}); the actors only filled it until "
                        "now, so env steps/s drop from here")
                steps = steps_due(*self._counts_since_learning_start())
                for metrics in self._learner_steps(steps):
                    for key, value in metrics.items():
                        metric_sums[key] += value
                        metric_counts[key] += 1
                source.learner_stepped(steps)

                c.wall_time_s = wall_at_start + (time.perf_counter() - session_start)
                interval, stop = self._periodic(interval, metric_sums, metric_counts)
                if stop:
                    return finish(stop)
        finally:
            source.stop()

    def _insert(self, chunk: Chunk) -> None:
        """Insert one chunk's sequences into the replay and count its steps and episodes."""
        c = self.counters
        if chunk.steps is not None:
            self.replay.add_chunk(chunk.steps, chunk.priorities)
        c.env_steps += chunk.env_steps
        c.vector_steps += chunk.vector_steps
        self.recent_returns.extend(chunk.episode_returns)
        self.recent_lengths.extend(chunk.episode_lengths)
        c.episodes += len(chunk.episode_returns)
        if self.on_insert is not None:
            self.on_insert(chunk)

    def _stop_reason(self, stop_signal: list[int]) -> str | None:
        """Why the loop must stop now (a signal, the env-step or the time budget), or None."""
        c, cfg = self.counters, self.config
        if stop_signal:
            return "signal"
        if c.env_steps >= cfg.total_env_steps:
            return "env_steps"
        if cfg.time_budget_s and c.wall_time_s >= cfg.time_budget_s:
            return "time_budget"
        return None

    def _periodic(self, interval: dict[str, Any], metric_sums: dict[str, float],
                  metric_counts: dict[str, int]) -> tuple[dict[str, Any], str | None]:
        """Evaluation, logging and checkpoints when due; returns the new log interval and
        ``"solved"`` when an evaluation reached the threshold (and stopping is on)."""
        steps, cfg = self.counters.env_steps, self.config
        eval_row = self._evaluate() if self.schedule.eval.due(steps) else None
        if self.schedule.log.due(steps) or eval_row is not None:
            interval = self._log(interval, metric_sums, metric_counts, eval_row)
        if eval_row is not None and self.solved_at is not None and cfg.stop_at_threshold:
            return interval, "solved"
        if eval_row is not None and self.on_eval is not None and self.on_eval(dict(self.last_eval)):
            return interval, "on_eval"
        if self.schedule.checkpoint.due(steps):
            self.save_checkpoint()
        return interval, None

    def _counts_since_learning_start(self) -> tuple[int | None, int]:
        """(sequences inserted since learning started, None before; sequences sampled): the
        replay's own counts (nothing is sampled before learning starts)."""
        start = self.counters.inserted_at_learning_start
        if start is None:
            return None, 0  # the limiter needs no counts yet
        inserted, sampled = self.replay.counts()
        return inserted - start, sampled

    def samples_per_insert(self) -> float | None:
        """Sampled / inserted sequences since learning started (None before, or with none inserted)."""
        inserted, sampled = self._counts_since_learning_start()
        return sampled / inserted if inserted else None

    def _log(self, interval: dict[str, Any], metric_sums: dict[str, float], metric_counts: dict[str, int],
             eval_row: dict[str, Any] | None) -> dict[str, Any]:
        """Write one metrics row (averages since the last row); returns the new interval."""
        c = self.counters
        now = time.perf_counter()
        elapsed = max(now - interval["time"], 1e-9)
        learner_steps = int(self.learner.num_steps.numpy())
        row: dict[str, Any] = {
            "env_steps": c.env_steps, "wall_time_s": c.wall_time_s, "episodes": c.episodes,
            "learner_steps": learner_steps, "replay_size": len(self.replay),
            "recent_return": float(np.mean(self.recent_returns)) if self.recent_returns else None,
            "recent_length": float(np.mean(self.recent_lengths)) if self.recent_lengths else None,
            "env_steps_per_s": (c.env_steps - interval["env_steps"]) / elapsed,
            "learner_steps_per_s": (learner_steps - interval["learner_steps"]) / elapsed,
            "samples_per_insert": self.samples_per_insert(),
            "actor_restarts": self.source.state().get("actor_restarts"),  # Ray backend only
        }
        row.update({k: v / metric_counts[k] for k, v in metric_sums.items()})
        if eval_row is not None:
            row.update(eval_row)
        self.logger.log(row)
        self._logged_at = c.env_steps
        metric_sums.clear()
        metric_counts.clear()
        return {"time": now, "env_steps": c.env_steps, "learner_steps": learner_steps}

    def _learner_steps(self, count: int) -> list[dict[str, float]]:
        """``count`` learner steps and their priority updates; their metrics, in order.

        With ``learner_steps_per_call`` > 1 the steps run in one graph call on ``count``
        batches sampled together (:meth:`R2D2Learner.steps`), else one sample and one call
        each."""
        batch_size, per_call = self.config.r2d2.batch_size, self.config.learner_steps_per_call
        results = []
        while len(results) < count:
            if per_call > 1:
                # A sample holds at most len(replay) items (min_replay_size >= batch_size).
                k = min(count - len(results), per_call, len(self.replay) // batch_size)
                sample = self.replay.sample(k * batch_size)
                done = self.learner.steps(sample.data, per_batch_weights(sample.weights, batch_size))
                self.replay.update_priorities(sample.keys, np.concatenate([r.priorities for r in done]))
                results += done
            else:
                sample = self.replay.sample(batch_size)
                results.append(self.learner.step(sample.data, sample.weights))
                self.replay.update_priorities(sample.keys, results[-1].priorities)
        out = []
        for result in results:
            metrics = {k: v for k, v in result.metrics.items()
                       if k in ("loss", "mean_abs_td", "mean_q", "grad_norm") or k.startswith("staleness/")}
            if self.on_learner_step is not None:
                self.on_learner_step(metrics)
            out.append(metrics)
        return out

    def _evaluate(self) -> dict[str, Any]:
        """Greedy (eval_epsilon) episodes with the learner's current policy weights."""
        if self._evaluator is None:
            self._evaluator = Evaluator(self.config, self.network_config)
        c = self.counters
        # wall_time_s was updated just before this evaluation; earlier ones are subtracted.
        train_time_s = c.wall_time_s - c.eval_time_s
        started = time.perf_counter()
        returns = self._evaluator(self.learner.get_policy_weights(), c.env_steps)
        c.eval_time_s += time.perf_counter() - started
        mean, std = float(np.mean(returns)), float(np.std(returns))
        self.last_eval = {"env_steps": c.env_steps, "mean": mean, "std": std, "episodes": len(returns),
                          "train_time_s": train_time_s}
        if self.solved_at is None and self.threshold is not None and mean >= self.threshold:
            self.solved_at = {"env_steps": c.env_steps, "learner_steps": int(self.learner.num_steps.numpy()),
                              "wall_time_s": c.wall_time_s,
                              "process_time_s": time.perf_counter() - self.process_start,
                              "eval_return": mean}
            self.logger.message(
                f"solved: eval return {mean:.3f} >= {self.threshold:g} at {c.env_steps:,d} env steps, "
                f"{c.wall_time_s:.0f} s of training ({self.solved_at['process_time_s']:.0f} s since start-up)")
        return {"eval_return": mean, "eval_return_std": std}


def sequence_longer_than_episodes(burn_in: int, trace_length: int, max_episode_steps: int | None,
                                  env_id: str = "the env") -> str | None:
    """A warning when a replayed sequence (``burn_in + trace_length`` steps) is longer than
    the env's episodes can be (its ``max_episode_steps``), else None.

    Such sequences are mostly padding, yet every learner step unrolls all of their steps.
    """
    length = burn_in + trace_length
    if max_episode_steps is None or length <= max_episode_steps:
        return None
    return (f"warning: burn_in {burn_in:,d} + trace_length {trace_length:,d} = {length:,d} steps per replayed "
            f"sequence, but {env_id}'s episodes end by {max_episode_steps:,d} steps (max_episode_steps): every "
            f"sequence is mostly padding, and the learner unrolls all {length:,d} steps of each; keep burn_in + "
            f"trace_length <= {max_episode_steps:,d}")
