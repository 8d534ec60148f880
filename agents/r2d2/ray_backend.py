"""Distributed acting on Ray: many actor processes, one learner and one replay in the driver.

Layout::

    driver (this process)                       Ray actor processes (ActorWorker x num_actors)
    ---------------------                       ----------------------------------------------
    R2D2Learner, SequenceReplay, RunLogger,     vector env (r2d2.num_envs envs), R2D2Actor,
    checkpoints, evaluation (all reused from    SequenceAdder(replay=None), a stateless twin of
    TrainingLoop)                               the Q-network for initial priorities
          |  collect.remote(K, weights_ref) ------------->  K vector steps
          |  <------ {items, priorities, env_steps, episodes}
          v
    replay.add_batch(items, priorities); learner steps under the samples-per-insert limiter

Rate limiting (like Reverb's ``SampleToInsertRatio``). With ``I`` sequences inserted since
learning started and ``S`` sampled, ``R = replay_ratio`` and an error buffer
``E = max(batch_size, samples_per_insert_tolerance * R * min_replay_size)``:

- the learner steps only while ``S < R * I + E`` (it waits for data beyond that);
- a worker gets its next ``collect`` only while ``S >= R * I - E`` (actors wait for the
  learner beyond that). Before learning starts (replay < min_replay_size) actors never wait.

Each worker has at most one ``collect`` in flight, so while the learner steps, every worker
whose next chunk is allowed is stepping its environments in parallel.

Weights. ``collect`` runs ``r2d2.actor_update_period`` (K) vector steps; a worker whose
weights are older than the learner's gets ``ray.put(learner.get_weights())`` (one object,
shared by all workers, re-put only after learner steps) with its next call, so actors
refresh every K steps as in the single-process loop.

Fault tolerance. Workers are created with ``max_restarts=config.max_actor_restarts``: when
a worker process dies, Ray starts a new one (re-running ``__init__``: fresh envs, network,
adder). The pending ``collect`` fails with a ``RayActorError``; the driver counts it in
``actor_restarts``, logs it and resubmits to the same handle with the current weights.
Restarts are bounded per worker: the failure after ``max_actor_restarts`` restarts of one
worker (e.g. a constructor that always raises), or one outage longer than five minutes
("unavailable" errors while Ray restarts it count once per outage), writes a checkpoint and
ends the run with :class:`~agents.r2d2.loop.RunFailedError` carrying that worker's last
error, instead of restarting it forever. Sequences the dead worker had not returned yet
(at most one chunk) are lost; everything already inserted lives in the driver's replay and
is never touched by a worker failure. The driver itself is a
single point of failure: checkpoints and ``--resume`` cover it as in the single-process loop.

Ray is imported only here (and only when this module is used), so the single-process
default never imports it.
"""

from __future__ import annotations

import collections
import os
import time
from typing import Any

import numpy as np

from agents.r2d2.loop import RunFailedError, TrainingLoop
from agents.r2d2.train_config import ConfigurationError, TrainConfig

__all__ = ["ActorWorker", "RayTrainingLoop", "worker_epsilons", "error_buffer"]

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
    return max(float(config.r2d2.batch_size),
               config.samples_per_insert_tolerance * config.replay_ratio * config.min_replay_size)


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
        from r2d2_state.networks import build_q_network
        from r2d2_state.replay import SequenceAdder

        cfg = TrainConfig.from_dict(config)
        r = cfg.r2d2
        self.config = cfg
        self.actor_index = int(actor_index)
        seed = cfg.seed if seed is None else int(seed)
        self._env_seed = seed + 1000 * self.actor_index
        keras.utils.set_random_seed(self._env_seed)
        self.envs = envs.make_vector_env(cfg.env_id, r.num_envs, seed=self._env_seed,
                                           env_packages=cfg.env_packages, **cfg.env_kwargs)
        self.network_config = network_config_for(cfg, envs.describe_env(self.envs))
        epsilons = worker_epsilons(self.actor_index, num_actors, r.num_envs, r.epsilon_base, r.epsilon_alpha)
        self.actor = R2D2Actor(self.network_config, r.num_envs, epsilons, seed=self._env_seed)
        # The stateless twin unrolls whole emitted sequences from their start states.
        self.twin = build_q_network(self.network_config, stateful=False, name="priority_twin")
        self.adder = SequenceAdder(None, r.num_envs, r.burn_in, r.trace_length, r.sequence_period, r.n_step,
                                   store_states=r.staleness_period > 0)
        # k (emitted sequences per chunk) varies: let tf.function generalise the batch axis.
        # A closure, not a bound method: Ray rewrites actor methods' signatures (tracing kwargs).
        self._priority_fn = tf.function(_priority_function(self.twin, r), reduce_retracing=True)
        self._obs = None
        self._ep_return = np.zeros(r.num_envs, np.float64)
        self._ep_length = np.zeros(r.num_envs, np.int64)
        self._ended = np.zeros(r.num_envs, bool)

    def pid(self) -> int:
        """The worker's process id (tests kill it)."""
        return os.getpid()

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.actor.set_weights(weights)
        self.twin.set_weights(weights)

    def collect(self, num_vector_steps: int, weights: list[np.ndarray] | None = None) -> dict[str, Any]:
        """Step the envs ``num_vector_steps`` times (after ``set_weights(weights)`` if given).

        Returns ``items`` (emitted sequences stacked, leaves [k, ...], or None),
        ``priorities`` float32 [k] computed with the actor's weights, ``env_steps``
        (``num_envs * num_vector_steps``) and the finished episodes' returns and lengths.
        """
        import tree

        if weights is not None:
            self.set_weights(weights)
        if self._obs is None:
            self._obs, _ = self.envs.reset(seed=self._env_seed)
            self.actor.reset()
        emitted = []
        returns: list[float] = []
        lengths: list[int] = []
        for _ in range(int(num_vector_steps)):
            actions, state = self.actor.select_actions(self._obs)
            next_obs, reward, terminated, truncated, _ = self.envs.step(actions)
            items = self.adder.add(self._obs, actions, reward, terminated, truncated, state)
            self.actor.observe(actions, reward, terminated, truncated)
            self._obs = next_obs
            if items is not None:
                emitted.append(items)
            # Episode bookkeeping as in TrainingLoop: the step after an episode end is a reset.
            transition = ~self._ended
            self._ep_return += np.where(transition, reward, 0.0)
            self._ep_length += transition
            finished = transition & (np.asarray(terminated) | np.asarray(truncated))
            returns.extend(float(x) for x in self._ep_return[finished])
            lengths.extend(int(x) for x in self._ep_length[finished])
            self._ep_return[finished] = 0.0
            self._ep_length[finished] = 0
            self._ended = finished
        items = None
        priorities = np.zeros(0, np.float32)
        if emitted:
            items = emitted[0] if len(emitted) == 1 else tree.map_structure(
                lambda *xs: np.concatenate(xs, axis=0), *emitted)
            priorities = self.priorities(items)
        return {"items": items, "priorities": priorities,
                "env_steps": int(num_vector_steps) * self.actor.num_envs,
                "episode_returns": returns, "episode_lengths": lengths}

    def priorities(self, items: dict[str, Any]) -> np.ndarray:
        """Initial priorities of stacked items: the learner's TD priority with the actor's
        own Q-network as both online and target network."""
        import tensorflow as tf

        from r2d2_state.burn_in import NETWORK_INPUTS

        batch = {k: tf.nest.map_structure(tf.convert_to_tensor, items[k]) for k in NETWORK_INPUTS + (
            "action", "reward", "discount", "mask")}
        start = items["start_state"] if self.config.r2d2.start_state == "stored" else None
        if start is not None:
            start = [[tf.convert_to_tensor(h, tf.float32), tf.convert_to_tensor(c, tf.float32)] for h, c in start]
        out = self._priority_fn(batch, start) if start is not None else self._priority_fn(batch)
        return np.asarray(out, np.float32)


def _priority_function(twin: Any, r: Any) -> Any:
    """``fn(batch, start=None) -> priorities [k]`` unrolling the stateless ``twin`` network."""
    import tensorflow as tf

    from r2d2_state import losses
    from r2d2_state.burn_in import NETWORK_INPUTS, StatelessCore, time_slice

    burn, trace = r.burn_in, r.trace_length
    core = StatelessCore(twin)

    def priorities(batch: dict[str, Any], start: Any = None) -> Any:
        inputs = {k: batch[k] for k in NETWORK_INPUTS}
        # As in the learner: after the burn-in everything may run as all-valid.
        plain = dict(inputs, valid=tf.ones_like(inputs["valid"]))
        core.begin(start)
        q_burn = core.unroll(time_slice(inputs, 0, burn)) if burn else None
        q_rest = core.unroll(time_slice(plain, burn, None))
        q = q_rest if q_burn is None else tf.concat([q_burn, q_rest], axis=1)  # [k, L, A]
        # The learner's function with this one network as online and target network.
        return losses.loss_and_priorities(
            q, q, batch["action"], batch["reward"], batch["discount"], batch["mask"],
            burn_in=burn, trace_length=trace, n_step=r.n_step, gamma=r.discount, priority_eta=r.priority_eta,
            rescale=r.value_rescaling, eps=r.rescale_epsilon).priorities

    return priorities


class RayTrainingLoop(TrainingLoop):
    """:class:`TrainingLoop` with the acting done by ``config.num_actors`` Ray processes.

    Learner, replay, checkpoints, logging and evaluation are the parent's; only
    :meth:`_run` differs. ``ray_address``: None starts a local Ray cluster (shut down at
    the end); ``"auto"``, ``"HOST:6379"`` or ``"ray://HOST:10001"`` joins an existing one.
    If Ray is already initialised in this process (tests), that cluster is used as is.
    """

    worker_class: type | None = None
    """The actor process class (None: :class:`ActorWorker`, looked up when the loop is built)."""

    def __init__(self, config: TrainConfig, run_dir: str | None = None, *, ray_address: str | None = None,
                 **kwargs: Any) -> None:
        import ray

        self._ray_address = ray_address
        self._started_ray = False
        # Ray is started (or joined) by _write_run_dir: the last check, before anything is written.
        super().__init__(config, run_dir, **kwargs)
        remote_cls = ray.remote(max_restarts=config.max_actor_restarts, max_task_retries=0,
                                num_cpus=1)(self.worker_class or ActorWorker)
        # A resumed run's workers explore fresh episodes (as the single-process loop does).
        worker_seed = self._reset_seed
        config_dict = config.to_dict()
        self.workers = [remote_cls.remote(config_dict, i, config.num_actors, worker_seed)
                        for i in range(config.num_actors)]
        self.chunks_per_worker = [0] * config.num_actors  # collect results inserted, per worker
        self.restarts_per_worker = [0] * config.num_actors  # failures seen, per worker

    def _write_run_dir(self) -> None:
        self._connect_ray()
        super()._write_run_dir()

    def _connect_ray(self) -> None:
        import ray

        if ray.is_initialized():
            return
        # Workers import this repository's packages: give them its root on the path.
        runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(
            p for p in (_ROOT, os.environ.get("PYTHONPATH", "")) if p),
            "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}}
        try:
            if self._ray_address is None:
                # A local cluster with at least one CPU slot per actor, so none waits for a slot.
                ray.init(num_cpus=max(os.cpu_count() or 1, self.config.num_actors), include_dashboard=False,
                         runtime_env=runtime_env, log_to_driver=True)
            else:
                ray.init(address=self._ray_address, runtime_env=runtime_env)
        except Exception as error:  # noqa: BLE001 - no cluster at the address, Ray failed to start, ...
            self.close()
            where = "start a local Ray cluster" if self._ray_address is None else f"join Ray at {self._ray_address!r}"
            raise ConfigurationError(f"cannot {where} ({type(error).__name__}: {error})") from error
        self._started_ray = True

    def _restore(self, name: str | None) -> None:
        self.counters["actor_restarts"] = 0  # restored from the checkpoint if it has one
        super()._restore(name)

    def close(self) -> None:
        import ray

        super().close()
        for worker in getattr(self, "workers", []):
            try:
                ray.kill(worker, no_restart=True)
            except Exception:  # noqa: BLE001 - already dead or Ray gone: nothing to release
                pass
        self.workers = []
        if getattr(self, "_started_ray", False):
            ray.shutdown()
            self._started_ray = False

    def _run(self, stop_signal: list[int]) -> str:
        import ray
        from ray.exceptions import RayActorError

        try:
            from ray.exceptions import ActorUnavailableError
        except ImportError:  # older Ray
            ActorUnavailableError = RayActorError  # noqa: N806
        cfg, r, c = self.config, self.config.r2d2, self.counters
        c.setdefault("actor_restarts", 0)
        self._announce_start()
        self.logger.message(f"ray backend: {len(self.workers)} actor processes x {r.num_envs} envs, "
                            f"samples per insert {cfg.replay_ratio:g} +- {error_buffer(cfg):g} sequences")
        buffer = error_buffer(cfg)
        chunk = r.actor_update_period
        pending: dict[Any, int] = {}  # ObjectRef -> worker index
        worker_weights_step = [-1] * len(self.workers)  # learner step of each worker's weights
        weights_ref, weights_step = None, -1

        def submit(index: int) -> None:
            nonlocal weights_ref, weights_step
            step = int(self.learner.num_steps.numpy())
            ref = None
            if worker_weights_step[index] != step:
                if weights_step != step:
                    weights_ref, weights_step = ray.put(self.learner.get_weights()), step
                ref, worker_weights_step[index] = weights_ref, step
            pending[self.workers[index].collect.remote(chunk, ref)] = index

        session_start = time.perf_counter()
        wall_at_start = float(c["wall_time_s"])
        interval = {"time": session_start, "env_steps": c["env_steps"],
                    "learner_steps": int(self.learner.num_steps.numpy())}
        metric_sums: dict[str, float] = collections.defaultdict(float)
        metric_counts: dict[str, int] = collections.defaultdict(int)
        idle = list(range(len(self.workers)))
        down_since: dict[int, float] = {}  # worker index -> when its current outage began

        def allowed_inserts() -> bool:
            if c["inserted_at_learning_start"] is None:
                return True
            return c["sampled_sequences"] >= cfg.replay_ratio * (
                c["inserted_sequences"] - c["inserted_at_learning_start"]) - buffer

        try:
            while True:
                stop = self._stop_reason(stop_signal)
                if stop:
                    return stop

                if allowed_inserts():
                    for index in idle:
                        submit(index)
                    idle = []
                learner_due = (c["inserted_at_learning_start"] is not None and c["sampled_sequences"]
                               < cfg.replay_ratio * (c["inserted_sequences"] - c["inserted_at_learning_start"]) + buffer)
                # Poll without blocking when the learner has work; otherwise wait for data.
                ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0 if learner_due else 0.05) \
                    if pending else ([], [])
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
                        if not (unavailable and index in down_since):
                            c["actor_restarts"] += 1
                            self.restarts_per_worker[index] += 1
                        down_since.setdefault(index, now)
                        if (self.restarts_per_worker[index] > cfg.max_actor_restarts
                                or now - down_since[index] > _MAX_OUTAGE_S):
                            self._fail_worker(index, error)
                        worker_weights_step[index] = -1  # the new process has fresh weights
                        self.logger.message(f"actor {index} died ({type(error).__name__}); Ray restarts it "
                                            f"(restart {c['actor_restarts']}), its unsent chunk is lost")
                        submit(index)  # queued by Ray until the restarted process is up
                        continue
                    down_since.pop(index, None)
                    self._insert(out, index)
                    idle.append(index)

                if c["inserted_at_learning_start"] is None and len(self.replay) >= cfg.min_replay_size:
                    c["inserted_at_learning_start"] = c["inserted_sequences"]
                if c["inserted_at_learning_start"] is not None:
                    for _ in range(cfg.max_learner_steps_per_env_step):
                        inserted = c["inserted_sequences"] - c["inserted_at_learning_start"]
                        if c["sampled_sequences"] >= cfg.replay_ratio * inserted + buffer - r.batch_size:
                            break
                        metrics = self._learner_step()
                        c["sampled_sequences"] += r.batch_size
                        for key, value in metrics.items():
                            metric_sums[key] += value
                            metric_counts[key] += 1

                c["wall_time_s"] = wall_at_start + (time.perf_counter() - session_start)
                interval, stop = self._periodic(interval, metric_sums, metric_counts)
                if stop:
                    return stop
        finally:
            # Chunks still in flight are dropped (their envs' episodes restart on resume anyway).
            for ref in pending:
                ray.cancel(ref, force=False)

    def _fail_worker(self, index: int, error: BaseException) -> None:
        """Checkpoint what the driver holds, then end the run with the worker's last error."""
        failures = self.restarts_per_worker[index]
        path = self.save_checkpoint()
        raise RunFailedError(
            f"actor {index} failed {failures} times (max_actor_restarts={self.config.max_actor_restarts}, "
            f"or unavailable for over {_MAX_OUTAGE_S:.0f} s); "
            f"its last error: {_error_summary(error)}. Everything inserted so far is in checkpoint {path}"
        ) from error

    def _insert(self, out: dict[str, Any], index: int) -> None:
        """Insert one worker's chunk into the replay and count it."""
        c = self.counters
        self.chunks_per_worker[index] += 1
        if out["items"] is not None:
            self.replay.add_batch(out["items"], out["priorities"])
            c["inserted_sequences"] += int(np.shape(out["items"]["valid"])[0])
        c["env_steps"] += int(out["env_steps"])
        c["vector_steps"] += int(out["env_steps"]) // self.config.r2d2.num_envs
        self.recent_returns.extend(out["episode_returns"])
        self.recent_lengths.extend(out["episode_lengths"])
        c["episodes"] += len(out["episode_returns"])


def _error_summary(error: BaseException) -> str:
    """The line of a Ray actor error that names the original exception (``ValueError: ...``)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    named = [line for line in lines if ("Error: " in line or "Exception: " in line) and not line.startswith("File ")]
    text = named[-1] if named else (lines[0] if lines else type(error).__name__)
    return text if len(text) <= 300 else text[:297] + "..."
