"""R2D2 hyperparameters: one frozen dataclass, the paper's values by default.

The defaults are the hyperparameters of the paper's appendix (Kapturowski et al. 2019,
*Recurrent Experience Replay in Distributed Reinforcement Learning*). Every field has a
one-line docstring (the command line's help: ``agents/r2d2/cli.py`` builds the flags from
these dataclasses with tyro). No framework is imported here.
"""

from __future__ import annotations

import dataclasses
import typing
import json
from typing import Any, Literal, get_args

from r2d2_state.network_config import QNetworkConfig

StartState = Literal["stored", "zero"]
"""How a replayed sequence's start state is chosen (``r2d2_state.burn_in.START_STATES``)."""
START_STATES = get_args(StartState)
ActorBackend = Literal["auto", "numpy", "tf"]
ACTOR_BACKENDS = get_args(ActorBackend)

XLA_MIN_LSTM_UNITS = 512
"""``jit_compile=None`` (auto) compiles the learner step with XLA from this LSTM width on: on a
CPU XLA shortens the step of wide LSTMs and lengthens that of narrow ones (docs/learner.md, XLA)."""


class ConfigMixin:
    """What the frozen config dataclasses share: checked ``replace``, dict/JSON round trip."""

    _TYPE_CHECKED_BY_RANGE: tuple[str, ...] = ()
    """Fields whose own range check already names a wrong type (and says more)."""

    def _check_types(self) -> None:
        """Fields annotated int, float, bool or str (or Optional of one) hold that type: a
        ValueError naming the field, before any range check compares a wrong type."""
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            if field.name in self._TYPE_CHECKED_BY_RANGE:
                continue
            hint, value = hints[field.name], getattr(self, field.name)
            args = typing.get_args(hint)
            optional = type(None) in args
            kinds = [a for a in args if a is not type(None)] if optional else [hint]
            if len(kinds) != 1 or kinds[0] not in (int, float, bool, str) or (optional and value is None):
                continue
            kind = kinds[0]
            ok = (isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))) or (
                kind is float and isinstance(value, int) and not isinstance(value, bool))
            if not ok:
                expected = {int: "an int", float: "a number", bool: "true or false", str: "a string"}[kind]
                raise ValueError(f"{type(self).__name__}.{field.name} must be {expected}"
                                 f"{' or None' if optional else ''}, got {value!r}")

    def _check(self, checks: list[tuple[bool, str, str]]) -> None:
        for ok, name, expected in checks:
            if not ok:
                raise ValueError(f"{type(self).__name__}.{name} must be {expected}, got {getattr(self, name)!r}")

    @classmethod
    def _reject_unknown(cls, names: Any) -> None:
        unknown = set(names) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")

    def replace(self, **changes: Any):
        self._reject_unknown(changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        cls._reject_unknown(values)
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class R2D2Config(ConfigMixin):
    _TYPE_CHECKED_BY_RANGE = ("jit_compile",)

    # --- sequences
    burn_in: int = 40
    """Steps replayed without gradient to refresh the stored start state."""
    trace_length: int = 80
    """Trained steps per sequence."""
    sequence_period: int = 40
    """Steps between the starts of adjacent sequences (overlap = length - period)."""
    n_step: int = 5
    """n of the n-step double-Q targets; also the length of the sequence's tail."""
    discount: float = 0.997
    """gamma."""

    # --- replay
    replay_capacity: int = 100_000
    """Sequences held by the replay (FIFO eviction)."""
    replay_capacity_steps: int | None = None
    """Env steps held by the replay, each stored once (the paper's unit: 4M); a sequence is retired when one of its steps is overwritten. None: enough steps for the last replay_capacity sequences."""
    replay_compression: str | None = None
    """"lz4": the replay keeps large observations (frames) as one LZ4 block per step, decompressed when sampled (needs cramjam: the [atari] extra); None: stored raw."""
    priority_exponent: float = 0.9
    """alpha: sampling probability proportional to priority ** alpha."""
    importance_exponent: float = 0.6
    """beta: importance weights (N p) ** -beta, normalised by their max."""
    priority_eta: float = 0.9
    """Sequence priority = eta * max |td| + (1 - eta) * mean |td|."""

    # --- learner
    batch_size: int = 64
    """Sequences per learner step."""
    learning_rate: float = 1e-4
    """Adam learning rate."""
    learning_rate_decay_steps: int = 0
    """Learner steps over which the learning rate falls linearly to learning_rate_end_fraction x learning_rate, then stays (0: constant, as in the paper)."""
    learning_rate_end_fraction: float = 0.1
    """Final learning rate as a fraction of learning_rate when learning_rate_decay_steps > 0."""
    adam_epsilon: float = 1e-3
    """Adam epsilon."""
    max_gradient_norm: float = 40.0
    """Global gradient-norm clip."""
    target_update_period: int = 2500
    """Learner steps between copies of the online weights into the target network."""
    policy_average_rate: float = 0.0
    """Polyak rate of the policy's weights: after each learner step averaged += rate * (online - averaged) (a plain mean over the first 1 / rate steps). Evaluations and the weights a checkpoint gives evaluate, predict and export are the averaged ones; actors act with the online ones. 0: the online weights (the paper)."""
    value_rescaling: bool = True
    """Use h(x) = sign(x)(sqrt(|x| + 1) - 1) + eps x on targets (and h^-1 on bootstraps)."""
    rescale_epsilon: float = 1e-3
    """eps of the value rescaling."""
    start_state: StartState = "stored"
    """Start state of replayed sequences: 'stored' (the actor's) or 'zero'."""
    staleness_period: int = 0
    """Learner steps between staleness diagnostics (0: off). Needs per-step states in the replay."""
    jit_compile: bool | None = None
    """Compile the learner step with XLA: true, false, or auto (None, the default): on when the widest LSTM layer has >= XLA_MIN_LSTM_UNITS (512) units, where XLA shortens the step on a CPU (below, it lengthens it; docs/learner.md)."""

    # --- network
    network: QNetworkConfig = dataclasses.field(default_factory=QNetworkConfig)
    """Architecture of the recurrent Q-network (torso, LSTMs, dueling head); its observation and action fields come from the environment."""

    # --- actors
    num_envs: int = 32
    """Parallel environments of the actor (the actor network's batch size)."""
    epsilon_base: float = 0.4
    """Per-env epsilon = epsilon_base ** (1 + epsilon_alpha * i / (N - 1))."""
    epsilon_alpha: float = 7.0
    """Spread exponent of the per-env epsilons."""
    eval_epsilon: float = 0.0
    """Epsilon of evaluation episodes."""
    actor_update_period: int = 400
    """Env steps (per env) between weight refreshes of the actor."""
    actor_backend: ActorBackend = "auto"
    """How actors compute a step: 'numpy' (vector torsos only; the same numbers to float32 rounding, and faster where a graph call's fixed cost dominates the step, docs/learner.md), 'tf' (a TensorFlow graph call), or 'auto' (numpy where it applies)."""

    def __post_init__(self) -> None:
        if isinstance(self.network, dict):
            object.__setattr__(self, "network", QNetworkConfig(**self.network))
        self._check_types()
        checks = [
            (self.jit_compile in (None, True, False), "jit_compile", "True, False or None (auto)"),
            (self.burn_in >= 0, "burn_in", ">= 0"),
            (self.trace_length >= 1, "trace_length", ">= 1"),
            (1 <= self.sequence_period <= self.trace_length, "sequence_period", "in [1, trace_length]"),
            (self.n_step >= 1, "n_step", ">= 1"),
            (0.0 <= self.discount <= 1.0, "discount", "in [0, 1]"),
            (self.replay_capacity >= 1, "replay_capacity", ">= 1"),
            (self.replay_capacity_steps is None or self.replay_capacity_steps >= 1, "replay_capacity_steps",
             ">= 1 or None"),
            (self.replay_compression in (None, "lz4"), "replay_compression", "'lz4' or None"),
            (self.priority_exponent >= 0.0, "priority_exponent", ">= 0"),
            (self.importance_exponent >= 0.0, "importance_exponent", ">= 0"),
            (0.0 <= self.priority_eta <= 1.0, "priority_eta", "in [0, 1]"),
            (self.batch_size >= 1, "batch_size", ">= 1"),
            (self.learning_rate > 0.0, "learning_rate", "> 0"),
            (self.learning_rate_decay_steps >= 0, "learning_rate_decay_steps", ">= 0"),
            (0.0 <= self.learning_rate_end_fraction <= 1.0, "learning_rate_end_fraction", "in [0, 1]"),
            (self.max_gradient_norm > 0.0, "max_gradient_norm", "> 0"),
            (self.target_update_period >= 1, "target_update_period", ">= 1"),
            (0.0 <= self.policy_average_rate <= 1.0, "policy_average_rate", "in [0, 1]"),
            (self.rescale_epsilon > 0.0, "rescale_epsilon", "> 0"),
            (self.start_state in START_STATES, "start_state", f"one of {START_STATES}"),
            (self.staleness_period >= 0, "staleness_period", ">= 0"),
            (self.num_envs >= 1, "num_envs", ">= 1"),
            (0.0 <= self.epsilon_base <= 1.0, "epsilon_base", "in [0, 1]"),
            (0.0 <= self.eval_epsilon <= 1.0, "eval_epsilon", "in [0, 1]"),
            (self.actor_update_period >= 1, "actor_update_period", ">= 1"),
            (self.actor_backend in ACTOR_BACKENDS, "actor_backend", f"one of {ACTOR_BACKENDS}"),
            (isinstance(self.network, QNetworkConfig), "network", "a QNetworkConfig"),
            (not self.network.env_fields_set, "network",
             "an architecture whose observation and action fields are None (the environment sets them)"),
        ]
        self._check(checks)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "R2D2Config":
        """From ``to_dict()`` (JSON lists for tuples)."""
        network_fields = {f.name for f in dataclasses.fields(QNetworkConfig)}
        misplaced = sorted(set(values) & network_fields)
        if misplaced:  # a network field one level too high: say where it belongs
            raise ValueError(f"r2d2.{misplaced[0]} is a network field: it belongs in r2d2.network "
                             f"(r2d2.network.{misplaced[0]})")
        values = dict(values)
        network = values.get("network", {})
        if isinstance(network, QNetworkConfig):
            network = dataclasses.asdict(network)
        if not isinstance(network, dict):
            raise ValueError(f"R2D2Config.network must be a JSON object, got {network!r}")
        unknown = set(network) - network_fields
        if unknown:
            raise ValueError(f"unknown QNetworkConfig fields: {sorted(unknown)}")
        values["network"] = QNetworkConfig(**network)  # it turns JSON lists into tuples
        cls._reject_unknown(values)
        return cls(**values)

    @property
    def xla(self) -> bool:
        """Whether the learner step is compiled with XLA (``jit_compile``, auto resolved)."""
        if self.jit_compile is not None:
            return bool(self.jit_compile)
        return max(self.network.lstm_units) >= XLA_MIN_LSTM_UNITS

    @property
    def sequence_length(self) -> int:
        """burn_in + trace_length + n_step: every replayed sequence has this length."""
        return self.burn_in + self.trace_length + self.n_step


def actor_epsilons(num_envs: int, base: float = 0.4, alpha: float = 7.0) -> list[float]:
    """The paper's per-env exploration rates ``base ** (1 + alpha * i / (N - 1))``."""
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs!r}")
    if num_envs == 1:
        return [base]
    return [base ** (1.0 + alpha * i / (num_envs - 1)) for i in range(num_envs)]
