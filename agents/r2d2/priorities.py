"""Initial priorities of an actor's sequences: the learner's TD priority with the actor's weights.

The learner's priority of a sequence needs its whole unroll (burn-in, trace, n-step tail)
from its stored start state, while an actor emits sequences as step references
(:class:`~r2d2_state.replay.StepChunk`). :class:`ActorPriorities` adds each chunk to a
scratch replay of a few chunks, reads the emitted sequences back as arrays and unrolls them
with a stateless twin of the actor's Q-network, used as both online and target network.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ActorPriorities"]


class ActorPriorities:
    """``priorities(chunk) -> float32 [k]`` for the k sequences a chunk completed.

    Args:
      network_config: the actor's (environment-completed) ``QNetworkConfig``.
      r2d2: the run's ``R2D2Config`` (burn-in, trace, n-step, discount, eta, rescaling).
      history: the adder's lookback in steps (``SequenceAdder.history``).
      chunk_steps: at most this many env steps (all envs) per chunk.
    """

    def __init__(self, network_config: Any, r2d2: Any, history: int, chunk_steps: int) -> None:
        import tensorflow as tf

        from r2d2_state.networks import build_q_network
        from r2d2_state.replay import SequenceReplay

        self.r2d2 = r2d2
        # The stateless twin unrolls whole emitted sequences from their start states.
        self.twin = build_q_network(network_config, stateful=False, name="priority_twin")
        # Sequences one chunk can complete; the lookback, two chunks and the blocks each env
        # fills (r2d2_state.replay.steps).
        most = chunk_steps * (2 + r2d2.sequence_length // r2d2.sequence_period) + 64
        steps = history + 2 * chunk_steps
        self._scratch = SequenceReplay(most, capacity_steps=steps + steps // 8)
        # k varies per chunk: let tf.function generalise the batch axis. A closure, not a bound
        # method: Ray rewrites actor methods' signatures (tracing kwargs).
        self._fn = tf.function(_priority_function(self.twin, r2d2), reduce_retracing=True)

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.twin.set_weights(weights)

    def __call__(self, chunk: Any) -> np.ndarray:
        """float32 [k]: the priorities of ``chunk``'s emitted sequences, in its order."""
        keys = self._scratch.add_chunk(chunk)
        if not keys.size:
            return np.zeros(0, np.float32)
        return self.of_items(self._scratch.get(keys))

    def of_items(self, items: dict[str, Any]) -> np.ndarray:
        """float32 [k] of stacked replay items (``SequenceReplay.get``)."""
        import tensorflow as tf

        from r2d2_state.burn_in import NETWORK_INPUTS

        batch = {k: tf.nest.map_structure(tf.convert_to_tensor, items[k]) for k in NETWORK_INPUTS + (
            "action", "reward", "discount", "mask")}
        if self.r2d2.start_state != "stored":
            return np.asarray(self._fn(batch), np.float32)
        start = [[tf.convert_to_tensor(h, tf.float32), tf.convert_to_tensor(c, tf.float32)]
                 for h, c in items["start_state"]]
        return np.asarray(self._fn(batch, start), np.float32)


def _priority_function(twin: Any, r: Any) -> Any:
    """``fn(batch, start=None) -> priorities [k]`` unrolling the stateless ``twin`` network."""
    from r2d2_state import losses
    from r2d2_state.burn_in import NETWORK_INPUTS, StatelessCore, burn_in_and_unroll

    burn, trace = r.burn_in, r.trace_length
    core = StatelessCore(twin)

    def priorities(batch: dict[str, Any], start: Any = None) -> Any:
        q = burn_in_and_unroll(core, {k: batch[k] for k in NETWORK_INPUTS}, start, burn,
                               all_valid=True)  # [k, trace + n, A], as in the learner
        # The learner's function with this one network as online and target network.
        return losses.loss_and_priorities(
            q, q, batch["action"], batch["reward"], batch["discount"], batch["mask"],
            burn_in=burn, trace_length=trace, n_step=r.n_step, gamma=r.discount, priority_eta=r.priority_eta,
            rescale=r.value_rescaling, eps=r.rescale_epsilon).priorities

    return priorities
