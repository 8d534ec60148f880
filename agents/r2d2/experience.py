"""Where the training loop's sequences come from: an experience source.

An experience source steps environments with actors and hands back chunks of emitted
sequences (its calls in order: the module docstring of :mod:`agents.r2d2.loop`). Two
implementations:

- :class:`LocalExperience`: one actor, one vector env and one adder in this process; each
  :meth:`~LocalExperience.collect` is one vector step.
- :class:`agents.r2d2.ray_backend.RayExperience`: actor processes on Ray; ``collect``
  returns the chunks the workers delivered since the last call.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol

import numpy as np

from agents.r2d2.acting import Acting
from r2d2_state.replay import StepChunk

__all__ = ["Chunk", "ExperienceSource", "LocalExperience", "SourceFailedError", "frame_stacks", "make_source",
           "open_environment"]


class SourceFailedError(RuntimeError):
    """The actors cannot go on (e.g. a Ray worker failed more than max_actor_restarts times).

    The loop writes a checkpoint and ends the run with ``RunFailedError`` carrying this message.
    """


@dataclasses.dataclass
class Chunk:
    """Sequences and episodes from ``vector_steps`` steps of one actor's vector env."""

    steps: StepChunk | None
    """The steps taken (each once) and the sequences completed, as step references; None if no step."""
    priorities: np.ndarray
    """float32 [K] initial priorities: the learner's TD priority with the actor's weights
    (:class:`~agents.r2d2.priorities.ActorPriorities`, on both backends)."""
    env_steps: int
    """Sub-env steps taken (``num_envs * vector_steps``)."""
    vector_steps: int
    """Vector-env steps taken."""
    episode_returns: list[float]
    """Returns of the episodes that finished, in order."""
    episode_lengths: list[int]
    """Their lengths (transitions)."""

    @property
    def num_sequences(self) -> int:
        return 0 if self.steps is None else self.steps.num_sequences


class ExperienceSource(Protocol):
    """Actors that step environments and emit R2D2 sequences for the driver's replay."""

    description: Any
    """``envs.EnvDescription`` of the environment (spaces, reward threshold)."""
    env_info: dict[str, Any]
    """``envs.env_record`` of the environment, written to ``RUN_DIR/env.json``."""
    error_buffer: float
    """The limiter's error buffer in sequences (0: the learner catches up after every collect)."""
    summary: str | None
    """A line for the log when the run starts, or None."""

    def check(self) -> None:
        """Last start-up check before the run directory is written (e.g. join the cluster)."""

    def launch(self, seed: int, vector_steps: int) -> None:
        """Start the actors (after the start-up checks); envs reset from ``seed``;
        ``vector_steps`` were done before (a resumed run)."""

    def collect(self, *, may_insert: bool, learner_due: bool) -> list[Chunk]:
        """The chunks ready now. ``may_insert``: the limiter lets actors produce more;
        ``learner_due``: the learner has work, so do not wait for data.

        Raises:
          SourceFailedError: the actors cannot go on.
        """

    def learner_stepped(self, steps: int) -> None:
        """``steps`` learner steps ran after the last :meth:`collect`."""

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the actors (JSON-ready)."""

    def restore(self, state: dict[str, Any]) -> None:
        """Take back :meth:`state` from a checkpoint's ``state.json``."""

    def stop(self) -> None:
        """The run ends: drop work in flight."""

    def close(self) -> None:
        """Release envs and processes (idempotent)."""


class LocalExperience:
    """An :class:`~agents.r2d2.actor.R2D2Actor` on a vector env with a ``SequenceAdder``.

    One :meth:`collect` is one vector step (:class:`~agents.r2d2.acting.Acting`, the acting
    step every caller shares) and the adder's chunk of it (the step of every env, once, and
    the sequences it completed).

    The actor takes the learner's weights every ``actor_update_period`` vector steps if
    the learner stepped since the last refresh.

    Args:
      envs: the vector env (NEXT_STEP autoreset), owned (closed) by this source.
      description: ``envs.describe_env(envs)``.
      env_info: ``envs.env_record(envs, ...)``.
      actor: the acting network, batch ``envs.num_envs``.
      adder: ``SequenceAdder(None, ...)`` (its chunks come back to the loop, which inserts them).
      get_weights: the learner's current weights.
      actor_update_period: vector steps between weight refreshes.
      priorities: the :class:`~agents.r2d2.priorities.ActorPriorities` of the chunks.
    """

    error_buffer = 0.0
    summary = None

    def __init__(self, envs: Any, description: Any, env_info: dict[str, Any], actor: Any, adder: Any,
                 get_weights: Callable[[], list[np.ndarray]], actor_update_period: int, priorities: Any) -> None:
        self.envs = envs
        self.description = description
        self.env_info = env_info
        self.actor = actor
        self.adder = adder
        self.num_envs = int(envs.num_envs)
        self._get_weights = get_weights
        self._actor_update_period = int(actor_update_period)
        self.priorities = priorities
        self.acting = Acting(envs, actor, adder)
        self._vector_steps = 0
        self._learner_steps_since_sync = 0

    def check(self) -> None:
        pass

    def launch(self, seed: int, vector_steps: int = 0) -> None:
        self.acting.seed = int(seed)
        self._vector_steps = int(vector_steps)  # the refresh period counts over resumes
        self._set_weights()

    def _set_weights(self) -> None:
        weights = self._get_weights()
        self.actor.set_weights(weights)
        self.priorities.set_weights(weights)

    def collect(self, *, may_insert: bool = True, learner_due: bool = False) -> list[Chunk]:  # noqa: ARG002
        returns, lengths = self.acting.run(1)
        self._vector_steps += 1
        steps = self.adder.take_chunk()
        return [Chunk(steps, self.priorities(steps), self.num_envs, 1, returns, lengths)]

    def learner_stepped(self, steps: int) -> None:
        self._learner_steps_since_sync += steps
        if self._learner_steps_since_sync and self._vector_steps % self._actor_update_period == 0:
            self._set_weights()
            self._learner_steps_since_sync = 0

    def state(self) -> dict[str, Any]:
        return {"actor_rng": self.actor.rng_state}

    def restore(self, state: dict[str, Any]) -> None:
        if state.get("actor_rng") is not None:
            self.actor.rng_state = state["actor_rng"]

    def stop(self) -> None:
        pass

    def close(self) -> None:
        if self.envs is not None:
            self.envs.close()
            self.envs = None


# ---------------------------------------------------------------------- the source for a config


def open_environment(config: Any) -> tuple[Any, Any, dict[str, Any]]:
    """The vector env a local actor steps (None for the Ray backend, whose actor processes
    make their own: a one-env probe describes the environment and is closed at once), its
    description and its record (``RUN_DIR/env.json``)."""
    import envs

    cfg = config
    num_envs = 1 if cfg.backend == "ray" else cfg.r2d2.num_envs
    vec = envs.make_vector_env(cfg.env_id, num_envs, seed=cfg.seed, **cfg.env_make_kwargs)
    try:
        description = envs.describe_env(vec)
        record = envs.env_record(vec, cfg.env_id, cfg.env_packages, cfg.env_kwargs, cfg.env_actions)
    except BaseException:
        vec.close()
        raise
    if cfg.backend == "ray":
        vec.close()
        vec = None
    return vec, description, record


def frame_stacks(description: Any) -> tuple:
    """The adder's frame stacks for an env description: each frame of a stacked observation
    is stored once (``envs.EnvDescription.frame_stack``)."""
    from r2d2_state.replay import FrameStack

    if description.frame_stack is None:
        return ()
    size, padding = description.frame_stack
    return (FrameStack("observation", size, axis=0, padding=padding),)


def chunk_adder(config: Any, description: Any, num_envs: int) -> Any:
    """The adder of an actor's chunks (no replay: the chunks go to the learner's)."""
    from r2d2_state.replay import SequenceAdder

    r = config.r2d2
    # Per-step states are kept only for the staleness diagnostic (they cost L x state bytes).
    return SequenceAdder(None, num_envs, r.burn_in, r.trace_length, r.sequence_period, r.n_step,
                         store_states=r.staleness_period > 0, frame_stacks=frame_stacks(description))


def make_source(config: Any, envs: Any, description: Any, env_info: dict[str, Any], network_config: Any,
                learner: Any, *, log: Callable[[str], None] = print, ray_address: str | None = None) -> ExperienceSource:
    """The experience source ``config.backend`` names: one actor on ``envs`` in this process
    (:class:`LocalExperience`), or actor processes on Ray
    (:class:`agents.r2d2.ray_backend.RayExperience`; ``ray_address`` as there)."""
    r = config.r2d2
    if config.backend == "ray":
        from agents.r2d2.train_config import ConfigurationError

        try:
            from agents.r2d2.ray_backend import RayExperience
        except ImportError as error:
            raise ConfigurationError(f"--backend ray needs Ray ({error}); pip install -e '.[ray]'") from None
        return RayExperience(config, description, env_info, learner.get_weights,
                             lambda: int(learner.num_steps.numpy()), ray_address=ray_address, log=log)
    from agents.r2d2.actor import R2D2Actor
    from agents.r2d2.config import actor_epsilons

    actor = R2D2Actor(network_config, r.num_envs, actor_epsilons(r.num_envs, r.epsilon_base, r.epsilon_alpha),
                      seed=config.seed, backend=r.actor_backend)
    from agents.r2d2.priorities import ActorPriorities

    adder = chunk_adder(config, description, r.num_envs)
    # Initial priorities measured against the replay's max priority: docs/presets.md (cartpole_novel).
    priorities = ActorPriorities(network_config, r, adder.history, r.num_envs)
    return LocalExperience(envs, description, env_info, actor, adder, learner.get_weights, r.actor_update_period,
                           priorities)
