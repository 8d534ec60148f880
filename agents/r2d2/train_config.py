"""TrainConfig: everything a training run needs, one frozen dataclass around R2D2Config.

Every field has a one-line docstring: ``scripts/train.py --help`` shows them
(:mod:`agents.r2d2.cli` builds the command line from these dataclasses with tyro), and
a JSON file (``to_json`` / ``from_dict``), a test or the command line all build the same
config. This module imports no framework: ``--help`` stays fast.

Replay ratio. ``replay_ratio`` counts *sequences*: learner samples per sequence inserted
(Acme's ``samples_per_insert``). Once the replay holds ``min_replay_size`` sequences the
loop runs learner steps so that ``sampled = replay_ratio * (inserted - min_replay_size)``
(within one batch). Each transition lies in the trained window of about
``trace_length / sequence_period`` sequences, so it is trained on about
``replay_ratio * trace_length / sequence_period`` times.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal, get_args

from agents.r2d2.config import ConfigMixin, R2D2Config
from r2d2_state.files import read_json_object

__all__ = ["TrainConfig", "ConfigurationError", "config_differences", "Backend", "BACKENDS", "ProgressMode",
           "PROGRESS_MODES", "RESUME_OVERRIDABLE"]

ProgressMode = Literal["auto", "rich", "plain", "none"]
PROGRESS_MODES = get_args(ProgressMode)
Backend = Literal["single", "ray"]
BACKENDS = get_args(Backend)

# Fields a resumed run may change (budgets and outputs); the rest must stay as trained.
RESUME_OVERRIDABLE = frozenset({
    "total_env_steps", "time_budget_s", "stop_at_threshold", "log_every", "checkpoint_every",
    "keep_checkpoints", "progress", "eval_every", "eval_episodes",
    # Where the actors run does not change what is checkpointed.
    "backend", "num_actors", "samples_per_insert_tolerance", "max_actor_restarts",
    # How many threads compute the same numbers; how many learner steps share a graph call;
    # numpy or TensorFlow for the actors' step (the same numbers to float32 rounding).
    "tf_threads", "learner_steps_per_call", "r2d2.actor_backend",
    # Where the metrics also go.
    "track", "wandb_project", "wandb_entity",
})


class ConfigurationError(ValueError):
    """The configuration, the environment or the run directory cannot be used as given.

    Raised before anything is written to disk; the scripts print it as one ``error:``
    line and exit with status 2.
    """


@dataclasses.dataclass(frozen=True)
class TrainConfig(ConfigMixin):
    _TYPE_CHECKED_BY_RANGE = ("seed", "learner_steps_per_call", "tf_threads")
    # --- environment
    env_id: str = "r2d2_state/TMaze-v0"
    """Gymnasium id of any environment with a Discrete (or MultiDiscrete) action space; PACKAGE:ID imports PACKAGE first."""
    env_packages: tuple[str, ...] = ()
    """Packages imported before the env is made (they register ids, e.g. minigrid); --env-package NAME adds one."""
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Keyword arguments for gymnasium.make (JSON on the command line)."""
    env_actions: tuple[int, ...] = ()
    """Use only these of the env's actions (indices into its Discrete, or flattened MultiDiscrete, space), in this order: the agent's action i is the env's env_actions[i]; () all. E.g. MiniGrid's navigation actions 0 1 2 (left, right, forward) of its 7."""
    seed: int = 0
    """Seeds the environments, the actor's exploration, the replay sampling and TensorFlow."""

    # --- budget
    total_env_steps: int = 1_000_000
    """Stop after this many environment steps (all envs together, autoreset steps included)."""
    time_budget_s: float = 0.0
    """Stop after this many seconds of training wall-clock, summed over resumes (0: no limit)."""
    stop_at_threshold: bool = True
    """Stop as soon as a periodic evaluation reaches solve_threshold."""
    solve_threshold: float | None = None
    """Mean evaluation return that counts as solved (None: the env spec's reward_threshold)."""

    # --- actor / learner interleaving
    replay_ratio: float = 1.0
    """Learner sequence samples per sequence inserted into the replay (see module docstring)."""
    min_replay_size: int = 1_000
    """Sequences the replay must hold before the first learner step (at least r2d2.batch_size)."""
    max_learner_steps_per_env_step: int = 16
    """Cap on learner steps between two vector-env steps (keeps acting and logging alive)."""
    learner_steps_per_call: int = 1
    """Learner steps due at once that run in one graph call, on batches sampled together (1: one step per call; more saves per-call Python time, and each batch's sampling then misses the priorities of the steps before it in the call)."""
    tf_threads: int = 0
    """TensorFlow's intra- and inter-op threads in this process (0: auto: 1 thread per op and 2 ops at once for LSTMs of <= 128 units without the Nature-DQN conv stack or XLA, where the step's two small recurrences each keep a core busy; TensorFlow's default otherwise; docs/learner.md, Threads)."""

    # --- backend (where the actors run; the learner and replay always run in this process)
    backend: Backend = "single"
    """single: one process, actors and learner interleaved; ray: num_actors Ray actor processes."""
    num_actors: int = 2
    """Ray backend: actor processes, each with r2d2.num_envs envs (epsilons spread over all of them)."""
    samples_per_insert_tolerance: float = 0.1
    """Ray backend: sampled sequences stay within replay_ratio * inserted +- this * replay_ratio * min_replay_size (at least one batch)."""
    max_actor_restarts: int = 3
    """Ray backend: restarts allowed per actor process; one more failure ends the run with the actor's last error."""

    # --- evaluation during training
    eval_every: int = 0
    """Env steps between greedy evaluations during training (0: never)."""
    eval_episodes: int = 100
    """Episodes per evaluation (during training and the --evaluate at the end)."""
    eval_num_envs: int = 20
    """Parallel environments of the evaluation during training (greedy, eval_epsilon)."""

    # --- output
    run_dir: str = ""
    """Where logs, config and checkpoints go ('' : runs/<env>-<seed>-<time>)."""
    log_every: int = 1_000
    """Env steps between metric rows (CSV, TensorBoard, plain progress lines)."""
    checkpoint_every: int = 50_000
    """Env steps between checkpoints (0: only at the end and on Ctrl-C / SIGTERM)."""
    keep_checkpoints: int = 2
    """Most recent checkpoints kept on disk (older ones are deleted after a good write)."""
    progress: ProgressMode = "auto"
    """Progress display: auto (rich on a TTY, plain lines otherwise), rich, plain or none."""
    track: bool = False
    """Also log the metrics to Weights & Biases (pip install -e .[wandb]; WANDB_MODE=offline works without an account)."""
    wandb_project: str = "r2d2_state"
    """Weights & Biases project of a tracked run."""
    wandb_entity: str | None = None
    """Weights & Biases entity (user or team) of a tracked run (None: your default entity)."""

    # --- the agent
    r2d2: R2D2Config = dataclasses.field(default_factory=R2D2Config)
    """R2D2 hyperparameters: sequences, replay, learner, network, actors."""

    def __post_init__(self) -> None:
        if isinstance(self.r2d2, dict):
            object.__setattr__(self, "r2d2", R2D2Config.from_dict(self.r2d2))
        self._check_types()
        object.__setattr__(self, "env_kwargs", dict(self.env_kwargs))
        packages = (self.env_packages,) if isinstance(self.env_packages, str) else self.env_packages
        object.__setattr__(self, "env_packages", tuple(str(p) for p in packages))
        actions = self.env_actions
        if not (isinstance(actions, (list, tuple)) and all(isinstance(a, int) and not isinstance(a, bool) and a >= 0
                                                           for a in actions) and len(set(actions)) == len(actions)):
            raise ValueError(f"TrainConfig.env_actions must be distinct ints >= 0 (actions of the env), "
                             f"got {actions!r}")
        object.__setattr__(self, "env_actions", tuple(actions))
        checks = [
            (isinstance(self.env_id, str) and bool(self.env_id), "env_id", "a non-empty string"),
            (isinstance(self.seed, int) and not isinstance(self.seed, bool) and 0 <= self.seed < 2**31,
             "seed", "an int in [0, 2**31)"),
            (self.total_env_steps >= 1, "total_env_steps", ">= 1"),
            (self.time_budget_s >= 0, "time_budget_s", ">= 0"),
            (self.replay_ratio > 0, "replay_ratio", "> 0"),
            (self.min_replay_size >= self.r2d2.batch_size, "min_replay_size",
             f">= r2d2.batch_size ({self.r2d2.batch_size})"),
            (self.min_replay_size <= self.r2d2.replay_capacity, "min_replay_size",
             f"<= r2d2.replay_capacity ({self.r2d2.replay_capacity})"),
            (self.max_learner_steps_per_env_step >= 1, "max_learner_steps_per_env_step", ">= 1"),
            (isinstance(self.learner_steps_per_call, int) and not isinstance(self.learner_steps_per_call, bool)
             and self.learner_steps_per_call >= 1, "learner_steps_per_call", "an int >= 1"),
            (isinstance(self.tf_threads, int) and not isinstance(self.tf_threads, bool) and self.tf_threads >= 0,
             "tf_threads", "an int >= 0 (0: auto)"),
            (self.backend in BACKENDS, "backend", f"one of {BACKENDS}"),
            (self.num_actors >= 1, "num_actors", ">= 1"),
            (self.samples_per_insert_tolerance >= 0, "samples_per_insert_tolerance", ">= 0"),
            (self.max_actor_restarts >= 0, "max_actor_restarts", ">= 0"),
            (self.eval_every >= 0, "eval_every", ">= 0"),
            (self.eval_episodes >= 1, "eval_episodes", ">= 1"),
            (self.eval_num_envs >= 1, "eval_num_envs", ">= 1"),
            (self.log_every >= 1, "log_every", ">= 1"),
            (self.checkpoint_every >= 0, "checkpoint_every", ">= 0"),
            (self.keep_checkpoints >= 1, "keep_checkpoints", ">= 1"),
            (self.progress in PROGRESS_MODES, "progress", f"one of {PROGRESS_MODES}"),
            (isinstance(self.track, bool), "track", "true or false"),
            (isinstance(self.wandb_project, str) and bool(self.wandb_project), "wandb_project", "a non-empty string"),
            (self.wandb_entity is None or (isinstance(self.wandb_entity, str) and bool(self.wandb_entity)),
             "wandb_entity", "None or a non-empty string"),
        ]
        self._check(checks)
        try:
            json.dumps(self.env_kwargs)
        except TypeError as error:
            raise ValueError(f"TrainConfig.env_kwargs must be JSON-serialisable, got {self.env_kwargs!r}") from error

    # Frozen with a dict field: hashing is meaningless, equality is what matters.
    __hash__ = None  # type: ignore[assignment]

    @property
    def env_make_kwargs(self) -> dict[str, Any]:
        """What ``envs.make_vector_env(env_id, n, **this)`` needs besides the id: the packages,
        the action subset and ``env_kwargs``."""
        return {"env_packages": self.env_packages, "env_actions": self.env_actions, **self.env_kwargs}

    @classmethod
    def from_json_file(cls, path: str) -> "TrainConfig":
        """The config saved in ``path``.

        Raises:
          ConfigurationError: naming the file, for unreadable or invalid JSON, unknown
            fields or values of the wrong type or range.
        """
        values = read_json_object(path, ConfigurationError, "TrainConfig")
        if not isinstance(values.get("r2d2", {}), dict):
            raise ConfigurationError(f"{path!r} is not a TrainConfig: expected a JSON object with an 'r2d2' object")
        try:
            return cls.from_dict(values)
        except (ValueError, TypeError, AttributeError, KeyError) as error:
            raise ConfigurationError(f"{path!r} is not a valid TrainConfig: {error}") from None


def config_differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the fields whose values differ between two ``to_dict()`` configs."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, "<missing>"), b.get(key, "<missing>")
        if isinstance(va, dict) and isinstance(vb, dict) and f"{prefix}{key}" in ("r2d2", "r2d2.network"):
            out += config_differences(va, vb, prefix=f"{prefix}{key}.")
        elif json.dumps(va, sort_keys=True) != json.dumps(vb, sort_keys=True):
            out.append(f"{prefix}{key}")
    return out
