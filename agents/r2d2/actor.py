"""R2D2Actor: one stateful recurrent Q-network acting in N parallel environments.

The actor holds the LSTM state of every env as one row of the stateful network's state
variables (batch = N), feeds each observation together with the previous action and
reward of the same episode, and hands the replay the state *before* each step, which is
what a stored sequence must start from: the state fed together with the sequence's first
observation.

Episode boundaries follow Gymnasium 1.x NEXT_STEP autoreset, exactly as
:class:`r2d2_state.replay.adder.SequenceAdder` reads them (env i, calls of
``select_actions`` / ``observe``)::

    call           k-1                 k                       k+1
    observation    o_{E-1}             F (final obs)           o_0 (next episode)
    state fed      h_{E-1}             h_E (carried on)        zeros (row i reset)
    prev_action    a_{E-2}             a_{E-1}                 -1
    prev_reward    r_{E-2}             r_{E-1}                 0
    env.step       r_{E-1}, done       ignores the action,     r_0
                                       returns o_0, reward 0

Only row i is reset; the other envs' rows are untouched.

Two backends compute the step with the same numbers (to float32 rounding): ``"tf"``, one
call of a traced graph over the stateful network, and ``"numpy"``
(:class:`agents.r2d2.numpy_step.NumpyQStep`) for vector torsos; ``"auto"`` (the default)
takes numpy where it applies (docs/learner.md, "Actor").
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from agents.r2d2.config import ACTOR_BACKENDS
from agents.r2d2.tf_runtime import flat_caller
from agents.r2d2.numpy_step import NumpyQStep, numpy_step_unsupported
from r2d2_state.autoreset import NextStepAutoreset
from r2d2_state.networks import QNetworkConfig, build_q_network
from r2d2_state.state import get_states, reset_rows, reset_states, stateful_layers

__all__ = ["R2D2Actor"]


class R2D2Actor:
    """Epsilon-greedy acting with a stateful recurrent Q-network over a vector env.

    The acting loop (``select_actions`` gives the state *before* the step, for the adder;
    ``observe`` after ``env.step``) is shown in docs/learner.md, "Actor"; greedy evaluation
    is the same loop with ``epsilons=0.0``.

    Args:
      network_config: architecture; the actor builds its own stateful instance with
        batch size ``num_envs`` (weights come from the learner with ``set_weights``).
      num_envs: N, the vector env's number of sub-environments.
      epsilons: one exploration rate in [0, 1] for every env, or N of them.
      seed: seeds the exploration generator (numpy ``default_rng``); the network's
        initial weights come from Keras' global seed as usual.
      jit_compile: compile the step with XLA (tf backend only; slower to start, mixed
        in speed: docs/learner.md, "Actor").
      backend: ``"auto"`` (default), ``"numpy"`` or ``"tf"`` (module docstring).

    Attributes:
      backend: the resolved backend, ``"numpy"`` or ``"tf"``.
      epsilons: float64 [N], the per-env exploration rates.
      last_q: float32 [N, A], the Q-values of the last ``select_actions`` (None before).
      num_traces: how many times the step function was traced (1 after the first step).
    """

    def __init__(
        self,
        network_config: QNetworkConfig,
        num_envs: int,
        epsilons: Sequence[float] | float,
        seed: int | None = None,
        jit_compile: bool = False,
        backend: str = "auto",
    ) -> None:
        if not isinstance(network_config, QNetworkConfig):
            raise TypeError(f"network_config must be a QNetworkConfig, got {type(network_config).__name__}")
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        self.config = network_config
        self.num_envs = int(num_envs)
        self.num_actions = int(network_config.num_actions)
        self.observation_shape = tuple(network_config.observation_shape)
        # Matches the network's observation input: uint8 images are rescaled inside it.
        self.observation_dtype = np.dtype(network_config.input_dtype)
        if backend not in ACTOR_BACKENDS:
            raise ValueError(f"backend must be one of {ACTOR_BACKENDS}, got {backend!r}")
        unsupported = numpy_step_unsupported(network_config)
        if backend == "numpy" and (unsupported or jit_compile):
            raise ValueError(f"backend='numpy' does not apply here: "
                             f"{unsupported or 'jit_compile=True is for the tf backend'}")
        self.backend = "numpy" if backend == "numpy" or (
            backend == "auto" and unsupported is None and not jit_compile) else "tf"
        self._model: keras.Model = build_q_network(
            network_config, stateful=True, batch_size=self.num_envs, name=f"actor_q_network_n{self.num_envs}"
        )
        self._layer_sizes = [len(layer.states) for layer in stateful_layers(self._model)]
        self.epsilons = self._checked_epsilons(epsilons)
        self._rng = np.random.default_rng(seed)
        self.last_q: np.ndarray | None = None
        self.num_traces = 0
        n = self.num_envs
        # Fixed input signature: the same graph serves every step, whatever the numpy
        # inputs look like (the pitfall "retracing every call because shapes vary").
        # Two inputs and one output per step: every argument and result costs a
        # conversion and a signature check per call, as much as a small op in the graph.
        signature = [
            tf.TensorSpec((n,) + self.observation_shape, tf.as_dtype(self.observation_dtype), name="observation"),
            tf.TensorSpec((3, n), tf.float32, name="prev_action_reward_reset"),
        ]
        self._step_fn = tf.function(self._step, input_signature=signature, jit_compile=bool(jit_compile), autograph=False)
        # The traced graph, called directly: a tf.function call re-binds and type-checks
        # its arguments every time, which costs as much as a small LSTM step itself.
        self._concrete_step: Callable[..., Any] | None = None
        self._state_units = [int(v.shape[-1]) for layer in stateful_layers(self._model) for v in layer.states]
        bounds = np.cumsum([self.num_actions] + self._state_units).tolist()
        self._state_columns = list(zip(bounds[:-1], bounds[1:]))
        self._aux = np.zeros((3, n), np.float32)  # prev_action, prev_reward, reset rows
        self._numpy_step = NumpyQStep(self._model, network_config) if self.backend == "numpy" else None
        self._states: list[list[np.ndarray]] = []  # numpy backend: the envs' state rows
        self.reset()

    # ------------------------------------------------------------------ public API

    def reset(self) -> None:
        """Start every env afresh (call after ``env.reset()``): zero state, prev_action -1,
        prev_reward 0, no pending row resets."""
        n = self.num_envs
        reset_states(self._model)
        units = iter(self._state_units)
        self._states = [[np.zeros((n, next(units)), np.float32) for _ in range(count)] for count in self._layer_sizes]
        self._prev_action = np.full(n, -1, np.int32)
        self._prev_reward = np.zeros(n, np.float32)
        self._pending_reset = np.zeros(n, bool)  # zero these rows before the next step
        self._autoreset = NextStepAutoreset(n)  # which env.step results are reset steps

    def select_actions(self, observation: Any) -> tuple[np.ndarray, list[list[np.ndarray]]]:
        """Choose actions for the batched observation and advance the recurrent state.

        Args:
          observation: [N, *observation_shape]; float vectors (cast to float32) or uint8
            images, as the vector env returns them.

        Returns:
          ``(actions, state)``: actions int32 [N] (epsilon-greedy per env) and the
          recurrent state fed with this observation, i.e. *before* this step, in the
          ``get_states`` layout (list over LSTM layers of ``[h, c]``, each float32
          [N, units], fresh numpy arrays) -- what ``SequenceAdder.add`` takes as ``state``.

        Raises:
          ValueError: the observation's shape is not [N, *observation_shape].
          TypeError: image observations that are not uint8.
        """
        obs = self._checked_observation(observation)
        if self._numpy_step is not None:
            return self._select_numpy(obs)
        if self._concrete_step is None:
            self._concrete_step = flat_caller(self._step_fn.get_concrete_function())  # the one trace
        aux = self._aux
        aux[0], aux[1], aux[2] = self._prev_action, self._prev_reward, self._pending_reset
        # tf.constant: half the cost of letting the call convert numpy arrays itself.
        out = self._concrete_step(tf.constant(obs), tf.constant(aux)).numpy()  # [N, A + sum of units]
        self._pending_reset[:] = False
        q = out[:, : self.num_actions].copy()
        arrays = iter([out[:, a:b].copy() for a, b in self._state_columns])
        state = [[next(arrays) for _ in range(count)] for count in self._layer_sizes]
        return self._epsilon_greedy(q), state

    def _select_numpy(self, obs: np.ndarray) -> tuple[np.ndarray, list[list[np.ndarray]]]:
        if self._pending_reset.any():
            rows = self._pending_reset[:, None]
            self._states = [[np.where(rows, np.float32(0.0), s) for s in layer] for layer in self._states]
            self._pending_reset[:] = False
        before = self._states  # never written in place: the step returns new arrays
        q, self._states = self._numpy_step(obs, self._prev_action, self._prev_reward, before)
        return self._epsilon_greedy(q), before

    def _epsilon_greedy(self, q: np.ndarray) -> np.ndarray:
        self.last_q = q
        greedy = np.argmax(q, axis=1)
        explore = self._rng.random(self.num_envs) < self.epsilons
        # Uniform over all actions (the greedy one included), as in the paper's Ape-X actors.
        random = self._rng.integers(self.num_actions, size=self.num_envs)
        return np.where(explore, random, greedy).astype(np.int32)

    def observe(self, action: Any, reward: Any, terminated: Any, truncated: Any) -> None:
        """Record the outcome of ``env.step(action)`` for the next ``select_actions``.

        An env whose previous step ended its episode has just returned the next episode's
        first observation (NEXT_STEP autoreset): its state row is zeroed before the next
        step and its prev_action / prev_reward become -1 / 0. Every other env feeds the
        action it took and the reward it got.

        Args:
          action: int [N], the actions passed to ``env.step``.
          reward, terminated, truncated: [N], as ``env.step`` returned them.

        Raises:
          ValueError: a shape other than [N], an action outside [0, num_actions), or a
            non-finite reward. Nothing changes unless every input is valid.
        """
        n = self.num_envs
        action = _vector(action, "action", n)
        reward = _vector(reward, "reward", n)
        terminated = _vector(terminated, "terminated", n).astype(bool)
        truncated = _vector(truncated, "truncated", n).astype(bool)
        if not np.issubdtype(action.dtype, np.integer):
            raise TypeError(f"action must be an integer array, got dtype {action.dtype}")
        if np.any((action < 0) | (action >= self.num_actions)):
            raise ValueError(f"actions must be in [0, {self.num_actions}), got {action.tolist()!r}")
        reward = reward.astype(np.float32)
        if not np.all(np.isfinite(reward)):
            raise ValueError(f"reward must be finite, got {reward.tolist()!r}")
        # The step that returned a new episode's first observation is not a transition.
        transition, _ = self._autoreset.step(terminated, truncated)
        new_episode = ~transition
        self._prev_action = np.where(new_episode, -1, action).astype(np.int32)
        self._prev_reward = np.where(new_episode, 0.0, reward).astype(np.float32)
        self._pending_reset = self._pending_reset | new_episode

    def set_weights(self, weights: list[np.ndarray]) -> None:
        """Load the learner's weights (``get_weights`` order of ``build_q_network``).
        The recurrent states are not weights: they are kept."""
        self._model.set_weights(weights)
        if self._numpy_step is not None:
            self._numpy_step.load()

    @property
    def rng_state(self) -> dict[str, Any]:
        """The exploration generator's state (``bit_generator.state``), for checkpoints:
        assigning a saved one makes a resumed run draw the same explorations."""
        return self._rng.bit_generator.state

    @rng_state.setter
    def rng_state(self, state: dict[str, Any]) -> None:
        self._rng.bit_generator.state = state

    @property
    def prev_action(self) -> np.ndarray:
        """int32 [N]: what the next ``select_actions`` feeds as the previous action."""
        return self._prev_action.copy()

    @property
    def prev_reward(self) -> np.ndarray:
        """float32 [N]: what the next ``select_actions`` feeds as the previous reward."""
        return self._prev_reward.copy()

    @property
    def pending_resets(self) -> np.ndarray:
        """bool [N]: rows the next ``select_actions`` zeroes before acting."""
        return self._pending_reset.copy()

    # ------------------------------------------------------------------ internals

    def _step(self, observation, aux):
        """One graph per actor: row resets, state read, one network step.

        observation [N, *obs]; aux float32 [3, N]: previous action (exact as a float),
        previous reward, rows to reset (1.0) -> float32 [N, A + sum of state units]: the
        Q-values, then the state-before tensors in ``get_states`` order.
        """
        self.num_traces += 1  # Python side effect: runs once per trace only
        prev_action, prev_reward = tf.cast(aux[0], tf.int32), aux[1]
        reset_rows(self._model, aux[2] > 0.5)
        # Read after the resets and before the call: tf.function's automatic control
        # dependencies order these reads between the two writes to each state variable.
        before = [tensor for layer in get_states(self._model) for tensor in layer]
        q = self._model(
            {
                "observation": observation[:, None],
                "prev_action": prev_action[:, None],
                "prev_reward": prev_reward[:, None],
                "valid": tf.ones_like(prev_reward)[:, None],
            },
            training=False,
        )
        return tf.concat([q[:, 0]] + before, axis=1)

    def _checked_observation(self, observation: Any) -> np.ndarray:
        expected = (self.num_envs,) + self.observation_shape
        obs = np.asarray(observation)
        if obs.shape != expected:
            raise ValueError(
                f"observation must have shape {expected} ([num_envs, *observation_shape]), "
                f"got {obs.shape!r}"
            )
        if self.observation_dtype == np.uint8 and obs.dtype != np.uint8:
            # Casting floats to uint8 would silently wrap or truncate pixel values.
            raise TypeError(f"uint8 (image) observations must be uint8, got dtype {obs.dtype}")
        return obs.astype(self.observation_dtype, copy=False)

    def _checked_epsilons(self, epsilons: Sequence[float] | float) -> np.ndarray:
        values = np.asarray(epsilons, dtype=np.float64)
        if values.ndim == 0:
            values = np.full(self.num_envs, float(values))
        if values.shape != (self.num_envs,):
            raise ValueError(
                f"epsilons must be a scalar or have shape ({self.num_envs},) (one per env), "
                f"got shape {values.shape!r}"
            )
        if not np.all((values >= 0.0) & (values <= 1.0)):  # also rejects NaN
            raise ValueError(f"epsilons must be in [0, 1], got {values.tolist()!r}")
        return values


def _vector(value: Any, name: str, n: int) -> np.ndarray:
    array = np.asarray(value)
    if array.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one per env), got {array.shape!r}")
    return array
