"""Restore a replayed sequence's stored start state, burn in, then unroll.

R2D2 replays fixed-length sequences that start mid-episode. The start state the actor
recorded is stale (older weights) and a zero state is wrong: restore the stored state and
run a *burn-in* prefix without gradients so the state catches up with the current weights,
then train on the rest (docs/learner.md, "Burn-in and the learner").

Two interchangeable cores, with identical Q-values for identical weights (tested), carry the
state through the unroll: :class:`StatefulCore` (the main path), a stateful network of fixed
batch size whose start state is written with :func:`r2d2_state.state.reset_states`, and
:class:`StatelessCore`, the same network built ``stateful=False`` with the state as
``initial_h{i}/initial_c{i}`` inputs and outputs.

Gradients: the burn-in runs under ``tape.stop_recording()``, so the state after it is a
constant for the gradient with either core (tested).
"""

from __future__ import annotations

import contextlib
from typing import Any, Mapping

import keras
import tensorflow as tf

from r2d2_state.lstm import all_steps_valid
from r2d2_state.state import reset_states, stateful_layers

__all__ = [
    "START_STATES",
    "NETWORK_INPUTS",
    "StatefulCore",
    "StatelessCore",
    "time_slice",
    "burn_in_and_unroll",
]

START_STATES = ("stored", "zero")
"""How a replayed sequence's start state is chosen: the actor's recorded state or zeros."""

NETWORK_INPUTS = ("observation", "prev_action", "prev_reward", "valid")
"""The replayed fields the Q-network reads (see :mod:`r2d2_state.networks`)."""


def time_slice(inputs: Mapping[str, Any], start: int, stop: int | None) -> dict[str, Any]:
    """``inputs[k][:, start:stop]`` for every network input (batch-major, time second)."""
    return {k: inputs[k][:, start:stop] for k in NETWORK_INPUTS}


class StatefulCore:
    """Unrolls a stateful network; the state lives in its recurrent layers' variables."""

    stateful = True

    def __init__(self, network: keras.Model):
        self.network = network
        self.layers = stateful_layers(network)  # raises if the network is not stateful

    def begin(self, start_state: Any | None) -> None:
        """Set the state (``None``: zeros) before the first :meth:`unroll`."""
        reset_states(self.network, start_state)

    def unroll(self, inputs: Mapping[str, Any], training: bool = False, *, all_valid: bool = False) -> tf.Tensor:
        """Q-values ``[B, T, A]``; the state advances to the end of ``inputs``.

        ``all_valid``: the caller promises every step of ``inputs`` is valid; the LSTMs
        then skip their masked branch (:func:`r2d2_state.lstm.all_steps_valid`).
        """
        with all_steps_valid(all_valid):
            return self.network(_tensors(inputs), training=training)


class StatelessCore:
    """Unrolls a stateless network, carrying the state as a tensor between calls."""

    stateful = False

    def __init__(self, network: keras.Model):
        self.network = network
        names = [k for k in network.input if k.startswith("initial_h")] if isinstance(network.input, dict) else []
        if not names:
            raise ValueError(
                f"network {network.name!r} has no initial_h*/initial_c* inputs; expected a model "
                "from build_q_network(config, stateful=False)"
            )
        self.num_layers = len(names)
        self.units = [int(network.input[f"initial_h{i}"].shape[-1]) for i in range(self.num_layers)]
        self._state: list[list[tf.Tensor]] | None = None
        self._begun = False

    def begin(self, start_state: Any | None) -> None:
        """Set the state (``None``: zeros, sized by the first :meth:`unroll`'s batch)."""
        self._begun = True
        self._state = None if start_state is None else [
            [tf.convert_to_tensor(h, tf.float32), tf.convert_to_tensor(c, tf.float32)] for h, c in start_state]

    def unroll(self, inputs: Mapping[str, Any], training: bool = False, *, all_valid: bool = False) -> tf.Tensor:
        """As :meth:`StatefulCore.unroll`, with the state carried as a tensor."""
        if not self._begun:
            raise RuntimeError("call begin(start_state) before unroll()")
        feed = _tensors(inputs)
        if self._state is None:
            batch = tf.shape(feed["valid"])[0]
            self._state = [[tf.zeros((batch, u)), tf.zeros((batch, u))] for u in self.units]
        for i, (h, c) in enumerate(self._state):
            feed[f"initial_h{i}"], feed[f"initial_c{i}"] = h, c
        with all_steps_valid(all_valid):
            q, finals = self.network(feed, training=training)
        self._state = [[h, c] for h, c in finals]
        return q

    @property
    def state(self) -> list[list[tf.Tensor]] | None:
        return self._state


def _tensors(inputs: Mapping[str, Any]) -> dict[str, tf.Tensor]:
    # Keras refuses a dict input that mixes numpy arrays and tensors.
    return {k: tf.convert_to_tensor(v) for k, v in inputs.items()}


def burn_in_and_unroll(core: StatefulCore | StatelessCore, inputs: Mapping[str, Any],
                       start_state: Any | None, burn_in: int, *,
                       tape: tf.GradientTape | None = None, training: bool = False, all_valid: bool = False,
                       trained: int | None = None) -> Any:
    """Restore ``start_state``, run ``burn_in`` steps without gradient, unroll the rest.

    The one burn-in and unroll: the learner (online and target networks), the actors'
    initial priorities and the staleness diagnostic all call it.

    Args:
      core: a :class:`StatefulCore` or :class:`StatelessCore`.
      inputs: network inputs, each ``[B, L, ...]``.
      start_state: per-layer ``[h, c]`` with ``[B, units]`` arrays, or ``None``
        for the zero state (the ``zero`` start strategy).
      burn_in: number of leading steps to run without gradient (0 allowed).
      tape: the active ``GradientTape``, if any: burn-in is not recorded on it.
      training: the unroll after the burn-in runs in training mode.
      all_valid: after the burn-in, every step counts as valid and the LSTMs take their
        unmasked loop. True for replayed R2D2 sequences: their front padding lies inside the
        burn-in, and what follows an episode's final observation is never used.
      trained: only this many steps after the burn-in are unrolled with ``training`` and
        recorded on ``tape``; the rest (the n-step tail) without gradient.

    Returns:
      Q-values ``[B, L - burn_in, A]`` for the steps after the burn-in; with ``trained``,
      ``(q_trained [B, trained, A], q_tail [B, L - burn_in - trained, A])``.
    """
    if burn_in < 0:
        raise ValueError(f"burn_in must be >= 0, got {burn_in!r}")
    length = inputs["valid"].shape[1]
    if length is not None and burn_in >= length:
        raise ValueError(f"burn_in ({burn_in}) must be shorter than the sequence ({length} steps)")
    no_gradient = tape.stop_recording if tape is not None else contextlib.nullcontext
    core.begin(start_state)
    if burn_in:
        with no_gradient():
            core.unroll(time_slice(inputs, 0, burn_in), training=False)
    rest = dict(inputs, valid=tf.ones_like(inputs["valid"])) if all_valid else inputs
    if trained is None:
        return core.unroll(time_slice(rest, burn_in, None), training=training, all_valid=all_valid)
    q = core.unroll(time_slice(rest, burn_in, burn_in + trained), training=training, all_valid=all_valid)
    with no_gradient():
        tail = core.unroll(time_slice(rest, burn_in + trained, None), all_valid=all_valid)
    return q, tail
