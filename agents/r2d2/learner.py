"""The R2D2 learner: burn-in from stored states, n-step double Q on rescaled values.

One learner step, all inside a single ``tf.function`` that traces once::

    sample [B, L] from the replay         L = burn_in + trace + n_step
    online:  reset_states(start) -> burn-in (no gradient) -> trace (gradient) -> tail (no gradient)
    target:  reset_states(start) -> whole sequence (no gradient)
    loss, priorities: r2d2_state.losses.loss_and_priorities (as the actors' initial priorities)
    update:  clip global norm, Adam; every target_update_period steps target <- online;
             with policy_average_rate > 0, averaged <- Polyak average of online (the evaluated policy)

:meth:`R2D2Learner.step` takes one batch (``replay.sample(batch_size)``), :meth:`R2D2Learner.steps`
K batches sampled together in one graph call; both return the priorities for
``replay.update_priorities``.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import keras
import numpy as np
import tensorflow as tf

from agents.r2d2.config import R2D2Config
from agents.r2d2.tf_runtime import flat_caller
from agents.r2d2.optimizer import FusedAdam
from r2d2_state import losses
from r2d2_state.burn_in import NETWORK_INPUTS, StatefulCore, StatelessCore, burn_in_and_unroll, time_slice
from r2d2_state.networks import QNetworkConfig, build_q_network

__all__ = ["R2D2Learner", "StepResult", "LEARNER_FIELDS", "STALENESS_STRATEGIES"]

LEARNER_FIELDS = NETWORK_INPUTS + ("action", "reward", "discount", "mask", "start_state")
"""The replayed fields a learner step reads (others, e.g. per-step ``states``, are dropped)."""

METRIC_NAMES = ("loss", "mean_abs_td", "mean_q", "mean_target", "grad_norm", "trained_steps")
"""The metrics of every learner step, in the order the packed step returns them."""

STALENESS_STRATEGIES = ("zero", "zero_burn_in", "stored", "stored_burn_in")


class StepResult(NamedTuple):
    """What :meth:`R2D2Learner.step` returns."""

    priorities: np.ndarray
    """float32 [B] new priorities of the sampled sequences, for ``replay.update_priorities``."""
    metrics: dict[str, float]
    """``loss``, ``mean_abs_td``, ``mean_q``, ``mean_target``, ``grad_norm``, ``trained_steps``;
    plus ``staleness/<strategy>/<first|last>`` on the steps the diagnostic runs."""


class _DirectCall(NamedTuple):
    """A traced learner graph called without ``tf.function``'s argument binding, for a
    batch of numpy arrays like the trace's.

    It checks the arrays by dtype and shape (a ``None`` dimension of the trace takes any
    size) and makes each one tensor with ``tf.constant``, cheaper than
    ``tf.convert_to_tensor(array, dtype)`` (``docs/learner.md``). Returns None for anything
    else (other keys, dtypes, shapes, tensors), which the caller sends through the
    ``tf.function``."""

    keys: tuple[str, ...]
    signature: list[tuple[np.dtype, tuple[int | None, ...]]]
    """Per flat input (the batch's leaves, then the importance weights): dtype and shape."""
    caller: Any

    @classmethod
    def of(cls, concrete: Any, batch: dict[str, Any]) -> "_DirectCall | None":
        if getattr(concrete, "_call_flat", None) is None or getattr(concrete, "captured_inputs", None) is None:
            return None  # no direct call in this TensorFlow
        specs = tf.nest.flatten(concrete.structured_input_signature[0])  # batch leaves, then weights
        return cls(tuple(batch), [(np.dtype(spec.dtype.as_numpy_dtype), tuple(spec.shape)) for spec in specs],
                   flat_caller(concrete))

    def __call__(self, batch: dict[str, Any], weights: Any) -> tf.Tensor | None:
        if tuple(batch) != self.keys:
            return None
        flat = tf.nest.flatten(batch)
        flat.append(weights)
        if len(flat) != len(self.signature):
            return None
        for value, (dtype, shape) in zip(flat, self.signature):
            if not (isinstance(value, np.ndarray) and value.dtype == dtype and len(value.shape) == len(shape)
                    and all(want is None or got == want for got, want in zip(value.shape, shape))):
                return None
        return self.caller(*[tf.constant(v) for v in flat])


class R2D2Learner:
    """Owns the online and target networks, the optimizer and the step counter.

    Args:
      config: hyperparameters (``batch_size``, ``burn_in``, ``trace_length``, ``n_step`` ...).
      network_config: the Q-network architecture.
      core: ``"stateful"`` (default; start states written with ``reset_states``) or
        ``"stateless"`` (the same network with the state as an input) — the
        benchmark compares them.
    """

    def __init__(self, config: R2D2Config, network_config: QNetworkConfig, *, core: str = "stateful"):
        if core not in ("stateful", "stateless"):
            raise ValueError(f"core must be 'stateful' or 'stateless', got {core!r}")
        self.config = config
        self.network_config = network_config
        stateful = core == "stateful"
        batch = config.batch_size if stateful else None
        self.online = build_q_network(network_config, stateful=stateful, batch_size=batch, name="online")
        self.target = build_q_network(network_config, stateful=stateful, batch_size=batch, name="target")
        self.target.set_weights(self.online.get_weights())
        # The evaluated policy's weights: a Polyak average of the online ones, whose greedy
        # actions flip less from one update to the next where the action gap is small.
        self.averaged = (build_q_network(network_config, stateful=False, name="averaged")
                         if config.policy_average_rate > 0 else None)
        if self.averaged is not None:
            self.averaged.set_weights(self.online.get_weights())
        make = StatefulCore if stateful else StatelessCore
        self._online_core, self._target_core = make(self.online), make(self.target)
        learning_rate = config.learning_rate
        if config.learning_rate_decay_steps:
            # Linear decay on the optimizer's own step counter, so it resumes from checkpoints.
            learning_rate = keras.optimizers.schedules.PolynomialDecay(
                config.learning_rate, config.learning_rate_decay_steps,
                config.learning_rate * config.learning_rate_end_fraction, power=1.0)
        self.optimizer = FusedAdam(learning_rate=learning_rate, epsilon=config.adam_epsilon)
        self.optimizer.build(self.online.trainable_variables)
        self.num_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="learner_steps")
        self.trace_count = 0  # Python side effect: counts traces of the step function
        self._step_fn = tf.function(self._packed_step, jit_compile=config.xla, autograph=False)
        self._steps_fn = tf.function(self._packed_steps, jit_compile=config.xla, autograph=False)
        # Direct callers of the traced graphs (None: not traced yet; False: not available).
        self._graph: _DirectCall | bool | None = None
        self._steps_graph: _DirectCall | bool | None = None
        self._staleness_fn = tf.function(self._staleness)

    # ------------------------------------------------------------------ public API

    def step(self, data: Mapping[str, Any], importance_weights: Any) -> StepResult:
        """One gradient step on a sampled batch ``[B, L]`` with importance weights ``[B]``.

        Returns the sequences' new priorities (computed before the update, from the same
        forward pass as the loss) and the step's metrics as Python floats.
        """
        batch = self._select(data)
        out = self._call(batch, importance_weights).numpy()  # one transfer: [B priorities, metrics]
        b = self.config.batch_size
        priorities = out[:b].astype(np.float32, copy=False)
        metrics = dict(zip(METRIC_NAMES, out[b:].tolist()))
        if self.config.staleness_period and "states" in data and \
                int(self.num_steps.numpy()) % self.config.staleness_period == 0:
            metrics.update(self.staleness(data))
        return StepResult(priorities, metrics)

    def steps(self, data: Mapping[str, Any], importance_weights: Any) -> list[StepResult]:
        """``K`` gradient steps in one graph call: step ``k`` trains on rows ``k B .. (k+1) B``
        of ``data`` (``[K B, L]``, e.g. one ``replay.sample(K * B)``) with their importance
        weights (``[K B]``, normalised per batch: :func:`r2d2_state.replay.per_batch_weights`).

        Each step is :meth:`step`'s, in order, inside one ``tf.while_loop``: the results
        equal K calls of :meth:`step` on the same batches (tested), but batch k was sampled
        before the priorities of the steps before it were written (``docs/learner.md``).
        ``K`` may change from call to call without a new trace.

        Returns one :class:`StepResult` per step; the staleness diagnostic, when due at
        one of the K steps, is computed after the call on that step's batch.
        """
        b = self.config.batch_size
        rows = np.shape(data["valid"])[0]
        if rows == 0 or rows % b:
            raise ValueError(f"steps() takes K * batch_size rows (batch_size={b}); got {rows}")
        k = rows // b
        batch = {name: tf.nest.map_structure(lambda x: np.reshape(x, (k, b) + np.shape(x)[1:]), value)
                 for name, value in self._select(data, rows=rows).items()}
        weights = np.reshape(np.asarray(importance_weights, np.float32), (k, b))
        before = int(self.num_steps.numpy()) if self.config.staleness_period else 0
        out = self._call_steps(batch, weights).numpy()  # [K, B + metrics]
        results = []
        for j in range(k):
            metrics = dict(zip(METRIC_NAMES, out[j, b:].tolist()))
            period = self.config.staleness_period
            if period and "states" in data and (before + j + 1) % period == 0:
                metrics.update(self.staleness(tf.nest.map_structure(lambda x: x[j * b:(j + 1) * b], dict(data))))
            results.append(StepResult(out[j, :b], metrics))
        return results

    def _call_steps(self, batch: dict[str, Any], weights: np.ndarray) -> tf.Tensor:
        """The multi-step graph: traced once with a dynamic K, then called as :meth:`_call`
        calls the single step."""
        if self._steps_graph is None:
            specs = [tf.TensorSpec((None,) + np.shape(v)[1:], tf.as_dtype(np.asarray(v).dtype))
                     for v in tf.nest.flatten(batch) + [weights]]
            concrete = self._steps_fn.get_concrete_function(tf.nest.pack_sequence_as(batch, specs[:-1]), specs[-1])
            self._steps_graph = _DirectCall.of(concrete, batch) or False
        out = self._steps_graph(batch, weights) if self._steps_graph else None
        return out if out is not None else self._steps_fn(batch, tf.convert_to_tensor(weights, tf.float32))

    def _call(self, batch: dict[str, Any], weights: Any) -> tf.Tensor:
        """The step's graph, called directly once traced (:class:`_DirectCall`): a
        ``tf.function`` call re-binds and type-checks its arguments every time (a sizeable share of a
        small T-maze step). Inputs whose structure, dtypes or shapes differ from the
        trace's go through the ``tf.function`` (which checks them and says what is wrong)."""
        if self._graph is None:
            weights = tf.convert_to_tensor(weights, tf.float32)
            out = self._step_fn(batch, weights)
            self._graph = _DirectCall.of(self._step_fn.get_concrete_function(batch, weights), batch) or False
            return out
        out = self._graph(batch, weights) if self._graph else None
        return out if out is not None else self._step_fn(batch, tf.convert_to_tensor(weights, tf.float32))

    def get_weights(self) -> list[np.ndarray]:
        """The online network's weights (what actors act with)."""
        return self.online.get_weights()

    def get_policy_weights(self) -> list[np.ndarray]:
        """The weights of the trained policy: the averaged ones when ``policy_average_rate``
        > 0, else the online ones. Evaluations and checkpoints' ``weights.npz`` use them."""
        return (self.averaged if self.averaged is not None else self.online).get_weights()

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.online.set_weights(weights)

    def checkpoint_objects(self) -> dict[str, Any]:
        """Trackables for ``tf.train.Checkpoint``: networks, optimizer, step counter."""
        objects = {"online": self.online, "target": self.target, "optimizer": self.optimizer,
                   "learner_steps": self.num_steps}
        if self.averaged is not None:
            objects["averaged"] = self.averaged
        return objects

    def staleness(self, data: Mapping[str, Any]) -> dict[str, float]:
        """The paper's dQ (section 3) at the first and last trained step, per strategy.

        ``dQ = ||q(h_hat_t) - q(h_t)||_2 / |max_{a,j} q(h_hat_j)_a|`` with the current
        online weights, where ``h_t`` is the state the actor recorded at step t and
        ``h_hat_t`` the state the replay unroll reaches there: from zeros or from the
        stored state, with or without burn-in. Averaged over sequences whose step t is
        a transition. Needs the replay's per-step ``states`` field.
        """
        if "states" not in data:
            raise ValueError("the staleness diagnostic needs per-step 'states' in the replayed "
                             "data (create the SequenceAdder with store_states=True)")
        batch = self._select(data)
        out = self._staleness_fn(batch, tf.nest.map_structure(tf.convert_to_tensor, data["states"]))
        return {k: float(v) for k, v in out.items()}

    # ------------------------------------------------------------------ internals

    def _select(self, data: Mapping[str, Any], rows: int | None = None) -> dict[str, Any]:
        missing = [k for k in LEARNER_FIELDS if k not in data]
        if missing:
            raise KeyError(f"replayed data lacks fields {missing}; expected {list(LEARNER_FIELDS)}")
        length = np.shape(data["valid"])[1]
        if length != self.config.sequence_length:
            raise ValueError(
                f"replayed sequences have {length} steps; expected burn_in + trace_length + n_step = "
                f"{self.config.sequence_length}")
        if np.shape(data["valid"])[0] != (rows or self.config.batch_size):
            raise ValueError(f"batch of {np.shape(data['valid'])[0]} sequences; expected "
                             f"batch_size={self.config.batch_size}")
        return {k: data[k] for k in LEARNER_FIELDS}

    def _packed_step(self, batch: dict[str, Any], importance_weights: tf.Tensor) -> tf.Tensor:
        """:meth:`_step` with its results in one float32 vector ``[B + len(METRIC_NAMES)]``."""
        self.trace_count += 1
        return self._pack(self._step(batch, importance_weights))

    @staticmethod
    def _pack(out: dict[str, tf.Tensor]) -> tf.Tensor:
        return tf.concat([out["priorities"], tf.stack([tf.cast(out[k], tf.float32) for k in METRIC_NAMES])], axis=0)

    def _packed_steps(self, batch: dict[str, Any], importance_weights: tf.Tensor) -> tf.Tensor:
        """:meth:`_packed_step` on ``batch[k]``, ``importance_weights[k]`` for k = 0 .. K-1,
        in order, in a ``tf.while_loop``; returns ``[K, B + len(METRIC_NAMES)]``."""
        self.trace_count += 1
        count = tf.shape(importance_weights)[0]
        rows = tf.TensorArray(tf.float32, size=count, element_shape=(self.config.batch_size + len(METRIC_NAMES),))

        def body(k: tf.Tensor, rows: tf.TensorArray) -> tuple[tf.Tensor, tf.TensorArray]:
            out = self._step(tf.nest.map_structure(lambda x: x[k], batch), importance_weights[k])
            return k + 1, rows.write(k, self._pack(out))

        _, rows = tf.while_loop(lambda k, _: k < count, body, (tf.constant(0), rows), parallel_iterations=1)
        return rows.stack()

    def _step(self, batch: dict[str, Any], importance_weights: tf.Tensor) -> dict[str, tf.Tensor]:
        cfg = self.config
        burn, trace = cfg.burn_in, cfg.trace_length
        start = batch["start_state"] if cfg.start_state == "stored" else None
        inputs = {k: batch[k] for k in NETWORK_INPUTS}

        # Target first: its unroll does not depend on the online network's. After the burn-in
        # every step runs as valid (burn_in_and_unroll's all_valid): the LSTMs' unmasked loop.
        q_target = burn_in_and_unroll(self._target_core, inputs, start, burn, all_valid=True)
        with tf.GradientTape() as tape:
            # Online: burn-in and the n-step tail are not recorded; only the trace is trained.
            q_trace, q_tail = burn_in_and_unroll(self._online_core, inputs, start, burn, tape=tape, training=True,
                                                 all_valid=True, trained=trace)
            with tape.stop_recording():
                # The targets' argmax needs no gradient; the gradient reaches q_trace directly
                # (a concat and slice on its path cost ~3% of the step).
                q_online = tf.concat([tf.stop_gradient(q_trace), q_tail], axis=1)  # [B, trace + n, A]
            out = losses.loss_and_priorities(
                q_online, q_target, batch["action"], batch["reward"], batch["discount"], batch["mask"],
                burn_in=burn, trace_length=trace, n_step=cfg.n_step, gamma=cfg.discount,
                priority_eta=cfg.priority_eta, rescale=cfg.value_rescaling, eps=cfg.rescale_epsilon,
                importance_weights=importance_weights, q_trace=q_trace)

        variables = self.online.trainable_variables
        grads = tape.gradient(out.loss, variables)
        clipped, grad_norm = tf.clip_by_global_norm(grads, cfg.max_gradient_norm)
        self.optimizer.apply(clipped, variables)
        self.num_steps.assign_add(1)
        # tf.cond, not ``if``: the step is traced without AutoGraph (its source conversion
        # was most of a short run's start-up time).
        def copy_weights() -> tf.Tensor:
            for t_var, o_var in zip(self.target.weights, self.online.weights):
                t_var.assign(o_var)
            return tf.constant(True)

        tf.cond(self.num_steps % cfg.target_update_period == 0, copy_weights, lambda: tf.constant(False))
        if self.averaged is not None:
            # max(rate, 1 / n): the mean of all weights so far until that is the slower average,
            # so the average does not start biased towards the initial weights.
            rate = tf.maximum(tf.constant(cfg.policy_average_rate, tf.float32),
                              1.0 / tf.cast(self.num_steps, tf.float32))
            for a_var, o_var in zip(self.averaged.weights, self.online.weights):
                a_var.assign_add(rate * (o_var - a_var))

        weight = out.weight
        count = tf.maximum(tf.reduce_sum(weight), 1.0)
        return {
            "loss": out.loss,
            "mean_abs_td": tf.reduce_sum(out.abs_td) / count,
            "mean_q": tf.reduce_sum(out.q_taken * weight) / count,
            "mean_target": tf.reduce_sum(out.targets * weight) / count,
            "grad_norm": grad_norm,
            "trained_steps": tf.reduce_sum(weight),
            "priorities": out.priorities,
        }

    def _staleness(self, batch: dict[str, Any], states: Any) -> dict[str, tf.Tensor]:
        cfg = self.config
        burn, trace = cfg.burn_in, cfg.trace_length
        inputs = {k: batch[k] for k in NETWORK_INPUTS}
        mask = tf.cast(batch["mask"], tf.float32)
        core = self._online_core
        recorded_at = lambda t: [[h[:, t], c[:, t]] for h, c in states]  # noqa: E731
        first, last = burn, burn + trace - 1

        # q(h_t): the actor's recorded state at step t, one step on observation t.
        reference = {}
        for name, t in (("first", first), ("last", last)):
            reference[name] = burn_in_and_unroll(core, time_slice(inputs, t, t + 1), recorded_at(t), 0)[:, 0]
        trained_valid = tf.cast(batch["valid"][:, first:last + 1], tf.float32)[..., None]

        starts = {
            "zero": (None, first, 0),
            "zero_burn_in": (None, 0, burn),
            "stored": (recorded_at(first), first, 0),
            "stored_burn_in": (batch["start_state"], 0, burn),
        }
        out = {}
        for strategy, (start_state, offset, burn_steps) in starts.items():
            q_hat = burn_in_and_unroll(core, time_slice(inputs, offset, burn + trace), start_state, burn_steps)
            # |max_{a,j} q(h_hat_j)_a| over the real trained steps (padding carries stale q).
            scale = tf.maximum(tf.abs(tf.reduce_max(q_hat + (trained_valid - 1.0) * 1e9, axis=[1, 2])), 1e-8)
            for name, t in (("first", first), ("last", last)):
                d_q = tf.norm(q_hat[:, t - burn] - reference[name], axis=-1) / scale
                m = mask[:, t]
                out[f"staleness/{strategy}/{name}"] = tf.reduce_sum(d_q * m) / tf.maximum(tf.reduce_sum(m), 1.0)
        return out
