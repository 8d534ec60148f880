"""Distributed acting on Ray: many actor processes, one learner and one replay in the driver.

Layout::

    driver (this process)                       Ray actor processes (ActorWorker x num_actors)
    ---------------------                       ----------------------------------------------
    TrainingLoop with RayExperience as its      vector env (r2d2.num_envs envs), R2D2Actor,
    experience source: R2D2Learner, replay,     SequenceAdder(replay=None), a stateless twin of
    logger, checkpoints, evaluation             the Q-network for initial priorities
          |  collect.remote(K, weights_ref) ------------->  K vector steps
          |  <------ {steps (each once) + sequence references, priorities, env_steps, episodes}
          v
    replay.add_chunk(steps, priorities); learner steps under the samples-per-insert limiter

Rate limiting: :mod:`agents.r2d2.limiter` with the error buffer
``E = max(batch_size, samples_per_insert_tolerance * R * min_replay_size)``; a worker gets its
next ``collect`` (at most one in flight) only while inserts are allowed, so while the learner
steps, every allowed worker steps its environments in parallel.

Weights. ``collect`` runs ``r2d2.actor_update_period`` (K) vector steps; a worker whose
weights are older than the learner's gets ``ray.put(learner.get_weights())`` (one object,
shared by all workers, re-put only after learner steps) with its next call.

Fault tolerance. Ray restarts a dead worker (``max_restarts=config.max_actor_restarts``:
fresh envs, network, adder); the driver counts the failed ``collect`` in ``actor_restarts``
and resubmits it. One failure more than ``max_actor_restarts`` for a worker, or one outage
longer than five minutes, writes a checkpoint and ends the run with
:class:`~agents.r2d2.loop.RunFailedError` carrying that worker's last error. A dead worker
loses at most its unsent chunk; the driver's replay is never touched (docs/ray.md).

Ray is imported only here (and only when this module is used), so the single-process
default never imports it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any, Callable

import numpy as np

from agents.r2d2 import limiter
from agents.r2d2.experience import Chunk, SourceFailedError
from agents.r2d2.train_config import ConfigurationError, TrainConfig
from r2d2_state.replay import StepChunk

__all__ = ["ActorWorker", "RayExperience", "worker_epsilons", "error_buffer"]

# A worker unavailable (restarting) for longer than this ends the run like a failed one.
_MAX_OUTAGE_S = 300.0
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def worker_epsilons(actor_index: int, num_actors: int, num_envs: int, base: float, alpha: float) -> list[float]:
    """Actor ``actor_index``'s slice of the epsilon spread over all ``num_actors * num_envs`` envs."""
    from agents.r2d2.config import actor_epsilons

    if not 0 <= actor_index < num_actors:
        raise ValueError(f"actor_index must be in [0, num_actors={num_actors}), got {actor_index!r}")
    spread = actor_epsilons(num_actors * num_envs, base, alpha)
    return spread[actor_index * num_envs:(actor_index + 1) * num_envs]


def error_buffer(config: TrainConfig) -> float:
    """The limiter's allowed |sampled - replay_ratio * inserted| in sequences (>= one batch)."""
    return limiter.error_buffer(config.r2d2.batch_size, config.replay_ratio, config.min_replay_size,
                                config.samples_per_insert_tolerance)


class ActorWorker:
    """One actor process: a vector env, a stateful R2D2Actor and an adder without replay.

    Args:
      config: ``TrainConfig.to_dict()`` (plain data: cheap to ship to the process).
      actor_index: this worker's index in ``[0, num_actors)``; picks the epsilon slice and
        the env seed ``config.seed + 1000 * actor_index``.
      num_actors: number of workers (for the epsilon spread).
      seed: base seed (default ``config.seed``; a resumed run passes a fresh one).
    """

    def __init__(self, config: dict[str, Any], actor_index: int, num_actors: int, seed: int | None = None) -> None:
        import tensorflow as tf

        # One core per worker: TensorFlow's default thread pools would fight the other
        # workers and the learner for the machine's cores.
        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # already initialised (a worker reused in-process); harmless
            pass
        import keras

        import envs
        from agents.r2d2.actor import R2D2Actor
        from agents.r2d2.evaluation import network_config_for
        from agents.r2d2.acting import Acting

        cfg = TrainConfig.from_dict(config)
        r = cfg.r2d2
        self.config = cfg
        self.actor_index = int(actor_index)
        seed = cfg.seed if seed is None else int(seed)
        self._env_seed = seed + 1000 * self.actor_index
        keras.utils.set_random_seed(self._env_seed)
        self.envs = envs.make_vector_env(cfg.env_id, r.num_envs, seed=self._env_seed, **cfg.env_make_kwargs)
        self.network_config = network_config_for(cfg, envs.describe_env(self.envs))
        epsilons = worker_epsilons(self.actor_index, num_actors, r.num_envs, r.epsilon_base, r.epsilon_alpha)
        self.actor = R2D2Actor(self.network_config, r.num_envs, epsilons, seed=self._env_seed,
                               backend=r.actor_backend)
        from agents.r2d2.experience import chunk_adder
        from agents.r2d2.priorities import ActorPriorities

        self.adder = chunk_adder(cfg, envs.describe_env(self.envs), r.num_envs)
        self._chunk_steps = r.actor_update_period
        self.priorities = ActorPriorities(self.network_config, r, self.adder.history,
                                          r.num_envs * r.actor_update_period)
        self.acting = Acting(self.envs, self.actor, self.adder, seed=self._env_seed)

    def pid(self) -> int:
        """The worker's process id (tests kill it)."""
        return os.getpid()

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.actor.set_weights(weights)
        self.priorities.set_weights(weights)

    def collect(self, num_vector_steps: int, weights: list[np.ndarray] | None = None) -> dict[str, Any]:
        """Step the envs ``num_vector_steps`` times (after ``set_weights(weights)`` if given).

        Returns ``steps`` (the :class:`~r2d2_state.replay.StepChunk` of these steps, each once,
        and of the sequences they completed), ``priorities`` float32 [k] of those sequences
        computed with the actor's weights, ``env_steps`` (``num_envs * num_vector_steps``),
        the finished episodes' returns and lengths, and ``bytes`` (the chunk's array bytes).
        """
        if weights is not None:
            self.set_weights(weights)
        returns: list[float] = []
        lengths: list[int] = []
        chunks, priorities = [], []
        done = 0
        while done < int(num_vector_steps):
            # In pieces the scratch replay holds, each read back for its priorities.
            steps = min(self._chunk_steps, int(num_vector_steps) - done)
            finished_returns, finished_lengths = self.acting.run(steps)
            returns.extend(finished_returns)
            lengths.extend(finished_lengths)
            done += steps
            chunks.append(self.adder.take_chunk())
            priorities.append(self.priorities(chunks[-1]))
        chunk = StepChunk.concatenate(chunks) if chunks else None
        priorities = np.concatenate(priorities) if priorities else np.zeros(0, np.float32)
        return {"steps": chunk, "priorities": priorities,
                "env_steps": int(num_vector_steps) * self.actor.num_envs,
                "episode_returns": returns, "episode_lengths": lengths,
                "bytes": 0 if chunk is None else chunk.nbytes() + priorities.nbytes}


class RayExperience:
    """The experience source of the Ray backend: ``num_actors`` :class:`ActorWorker` processes.

    Implements :class:`agents.r2d2.experience.ExperienceSource`. The driver builds no
    env, actor or adder of its own: only a one-env probe, closed at once, describes the
    environment for the networks and ``env.json``.

    Args:
      config: the run's config.
      description, env_info: of the probe env.
      get_weights, learner_steps: the learner's current weights and step count.
      ray_address: None starts a local Ray cluster (shut down at :meth:`close`); ``"auto"``,
        ``"HOST:6379"`` or ``"ray://HOST:10001"`` joins one. A Ray already initialised in this
        process (tests) is used as is.
      worker_class: the actor process class (default :class:`ActorWorker`, looked up at launch).
      log: where a line about a restarted worker goes.
    """

    def __init__(self, config: TrainConfig, description: Any, env_info: dict[str, Any],
                 get_weights: Callable[[], list[np.ndarray]], learner_steps: Callable[[], int], *,
                 ray_address: str | None = None, worker_class: type | None = None,
                 log: Callable[[str], None] = print) -> None:
        self.config = config
        self.description = description
        self.env_info = env_info
        self.error_buffer = error_buffer(config)
        self.summary = (f"ray backend: {config.num_actors} actor processes x {config.r2d2.num_envs} envs; "
                        f"replay_ratio {config.replay_ratio:g} sampled per inserted sequence, the sampled total kept "
                        f"within {self.error_buffer:g} sequences of replay_ratio x inserted "
                        f"({self.error_buffer / config.replay_ratio:.3g} inserted sequences' worth)")
        self._get_weights = get_weights
        self._learner_steps = learner_steps
        self._ray_address = ray_address
        self._worker_class = worker_class
        self._log = log
        self._started_ray = False
        self.workers: list[Any] = []
        self.chunks_per_worker = [0] * config.num_actors  # collect results delivered, per worker
        self.restarts_per_worker = [0] * config.num_actors  # failures seen, per worker
        self.restarts = 0  # failures of all workers over the run (restored from checkpoints)
        self.shipped_bytes = 0  # array bytes of the chunks workers delivered (steps, references, priorities)
        self._pending: dict[Any, int] = {}  # ObjectRef -> worker index
        self._idle: list[int] = []
        self._down_since: dict[int, float] = {}  # worker index -> when its current outage began
        self._worker_weights_step: list[int] = []  # learner step of each worker's weights
        self._weights_ref: Any = None
        self._weights_step = -1

    # ------------------------------------------------------------------ start-up

    def check(self) -> None:
        """Start or join Ray (the last start-up check: ConfigurationError if it fails)."""
        import ray

        if ray.is_initialized():
            return
        # Workers import this repository's packages: give them its root on the path.
        runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(
            p for p in (_ROOT, os.environ.get("PYTHONPATH", "")) if p),
            "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
            # One core per worker for numpy too (the actors' numpy step): OpenBLAS threads of
            # several workers would fight each other and the learner.
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}}
        if not sys.stderr.isatty():  # the workers' lines reach a file or a pipe: no colour codes in them
            os.environ.setdefault("RAY_COLOR_PREFIX", "0")
        try:
            if self._ray_address is None:
                # A local cluster with at least one CPU slot per actor, so none waits for a slot; Ray's errors
                # only, not its start-up notices (the instance started, token auth on as by default).
                ray.init(num_cpus=max(os.cpu_count() or 1, self.config.num_actors), include_dashboard=False,
                         runtime_env=runtime_env, log_to_driver=True, logging_level=logging.ERROR)
            else:
                ray.init(address=self._ray_address, runtime_env=runtime_env)
        except Exception as error:  # noqa: BLE001 - no cluster at the address, Ray failed to start, ...
            where = "start a local Ray cluster" if self._ray_address is None else f"join Ray at {self._ray_address!r}"
            raise ConfigurationError(f"cannot {where} ({type(error).__name__}: {error})") from error
        self._started_ray = True

    def launch(self, seed: int, vector_steps: int = 0) -> None:  # noqa: ARG002
        """Create the worker processes; a resumed run's workers explore fresh episodes from ``seed``."""
        import ray

        cfg = self.config
        remote_cls = ray.remote(max_restarts=cfg.max_actor_restarts, max_task_retries=0,
                                num_cpus=1)(self._worker_class or ActorWorker)
        config_dict = cfg.to_dict()
        self.workers = [remote_cls.remote(config_dict, i, cfg.num_actors, seed) for i in range(cfg.num_actors)]
        self._idle = list(range(cfg.num_actors))
        self._worker_weights_step = [-1] * cfg.num_actors

    # ------------------------------------------------------------------ running

    def _submit(self, index: int) -> None:
        """Ask worker ``index`` for its next chunk, with the learner's weights if its are older."""
        import ray

        step = self._learner_steps()
        ref = None
        if self._worker_weights_step[index] != step:
            if self._weights_step != step:
                self._weights_ref, self._weights_step = ray.put(self._get_weights()), step
            ref, self._worker_weights_step[index] = self._weights_ref, step
        self._pending[self.workers[index].collect.remote(self.config.r2d2.actor_update_period, ref)] = index

    def collect(self, *, may_insert: bool, learner_due: bool) -> list[Chunk]:
        """Submit to idle workers if inserting is allowed; return the chunks delivered.

        Waits up to 50 ms for a chunk unless the learner has work. A failed worker is
        counted and resubmitted (Ray restarts its process); beyond ``max_actor_restarts``
        failures of one worker, or an outage over five minutes, raises SourceFailedError.
        """
        import ray
        from ray.exceptions import RayActorError

        try:
            from ray.exceptions import ActorUnavailableError
        except ImportError:  # older Ray
            ActorUnavailableError = RayActorError  # noqa: N806
        if may_insert:
            for index in self._idle:
                self._submit(index)
            self._idle = []
        pending = self._pending
        # Poll without blocking when the learner has work; otherwise wait for data.
        ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0 if learner_due else 0.05) \
            if pending else ([], [])
        chunks = []
        for ref in ready:
            index = pending.pop(ref)
            try:
                out = ray.get(ref)
            except RayActorError as error:  # ActorUnavailableError is one too
                # "Unavailable" repeats while one death is being restarted: count an
                # outage once; every "died" error is a failure of its own.
                unavailable = (ActorUnavailableError is not RayActorError
                               and isinstance(error, ActorUnavailableError))
                now = time.monotonic()
                if not (unavailable and index in self._down_since):
                    self.restarts += 1
                    self.restarts_per_worker[index] += 1
                self._down_since.setdefault(index, now)
                if (self.restarts_per_worker[index] > self.config.max_actor_restarts
                        or now - self._down_since[index] > _MAX_OUTAGE_S):
                    raise SourceFailedError(
                        f"actor {index} failed {self.restarts_per_worker[index]} times "
                        f"(max_actor_restarts={self.config.max_actor_restarts}, or unavailable for over "
                        f"{_MAX_OUTAGE_S:.0f} s); its last error: {_error_summary(error)}") from error
                self._worker_weights_step[index] = -1  # the new process has fresh weights
                self._log(f"actor {index} died ({type(error).__name__}); Ray restarts it "
                          f"(restart {self.restarts}), its unsent chunk is lost")
                self._submit(index)  # queued by Ray until the restarted process is up
                continue
            self._down_since.pop(index, None)
            self.chunks_per_worker[index] += 1
            self._idle.append(index)
            self.shipped_bytes += int(out.get("bytes", 0))
            chunks.append(Chunk(out["steps"], out["priorities"], int(out["env_steps"]),
                                int(out["env_steps"]) // self.config.r2d2.num_envs,
                                list(out["episode_returns"]), list(out["episode_lengths"])))
        return chunks

    def learner_stepped(self, steps: int) -> None:
        pass  # weights travel with the next collect of each worker

    def state(self) -> dict[str, Any]:
        return {"actor_restarts": self.restarts}

    def restore(self, state: dict[str, Any]) -> None:
        self.restarts = int(state.get("actor_restarts") or 0)

    def stop(self) -> None:
        """Chunks still in flight are dropped (their envs' episodes restart on resume anyway)."""
        import ray

        for ref in self._pending:
            ray.cancel(ref, force=False)
        self._pending.clear()

    def close(self) -> None:
        import ray

        for worker in self.workers:
            try:
                ray.kill(worker, no_restart=True)
            except Exception:  # noqa: BLE001 - already dead or Ray gone: nothing to release
                pass
        self.workers = []
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False


def _error_summary(error: BaseException) -> str:
    """The line of a Ray actor error that names the original exception (``ValueError: ...``)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    named = [line for line in lines if ("Error: " in line or "Exception: " in line) and not line.startswith("File ")]
    text = named[-1] if named else (lines[0] if lines else type(error).__name__)
    return text if len(text) <= 300 else text[:297] + "..."
