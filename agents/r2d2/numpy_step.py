"""The actor's one-step forward pass in numpy, for networks with a vector (MLP) torso.

In TensorFlow an actor step is one graph call, whose fixed cost is many times a small
LSTM step's arithmetic (docs/benchmarks.md); numpy has no such cost. The Keras network still
holds the weights (this mirror reads them back after ``set_weights``) and gives the same
numbers to float32 rounding (tested). Image torsos keep the TensorFlow step: there the
convolutions, not the call, dominate.

The forward pass (Keras's ``LSTMCell``, gates i, f, g, o)::

    x  = relu(... relu(scale * obs @ W0 + b0) ...)                      torso
    z  = x @ K_x + onehot(prev_action) @ K_a + prev_reward K_r + h @ R + b
    c' = sigmoid(f) c + sigmoid(i) tanh(g);  h' = sigmoid(o) tanh(c')    per LSTM layer
    q  = v(h') + a(h') - mean(a(h'))                                    dueling head

computed as ``[x, h] @ [K_x; R]`` (one matmul), ``K_a[prev_action]`` (a row lookup; -1,
an episode's first step, selects a zero row as ``one_hot(-1)`` does) and one ``tanh`` for
all four gates (sigmoid(z) = (1 + tanh(z / 2)) / 2, the i, f, o columns pre-scaled by 1/2);
the dueling head's two output layers and its mean are folded into one matmul (all linear).
"""

from __future__ import annotations

import keras
import numpy as np

from r2d2_state.network_config import QNetworkConfig

__all__ = ["NumpyQStep", "numpy_step_unsupported"]


def numpy_step_unsupported(config: QNetworkConfig) -> str | None:
    """Why :class:`NumpyQStep` cannot mirror networks of this config, or None if it can."""
    if config.is_image or config.image_shape is not None:
        return "the torso has convolutions (image observations)"
    if config.input_dtype != "float32":
        return f"the observation dtype is {config.input_dtype}, not float32"
    return None


class NumpyQStep:
    """One timestep of a ``build_q_network`` network in numpy.

    Args:
      network: a network built by :func:`r2d2_state.networks.build_q_network` (stateful or
        not) for ``config``; its weights are read now and by :meth:`load`.
      config: the network's config.

    Raises:
      ValueError: the config or one of the network's layers is not covered (see
        :func:`numpy_step_unsupported`; LSTMs with other activations, no bias or dropout).
    """

    def __init__(self, network: keras.Model, config: QNetworkConfig) -> None:
        reason = numpy_step_unsupported(config)
        if reason is not None:
            raise ValueError(f"NumpyQStep does not cover this network: {reason}")
        self.config = config
        self.num_actions = int(config.num_actions)
        self.units = [int(u) for u in config.lstm_units]
        self._network = network
        self.load()

    def load(self) -> None:
        """Read the network's current weights (after ``set_weights``)."""
        net, config = self._network, self.config
        f32 = np.float32
        self._scale: np.ndarray | None = None
        self._offset: np.ndarray | None = None
        self._torso: list[tuple[np.ndarray, np.ndarray]] = []
        torso = net.get_layer("torso")
        for layer in getattr(torso, "layers", []):
            if isinstance(layer, keras.layers.Reshape):
                continue  # the step flattens every observation
            if isinstance(layer, keras.layers.Rescaling):
                self._scale = np.asarray(layer.scale, f32).reshape(-1)
                self._offset = np.asarray(layer.offset, f32).reshape(-1)
            elif isinstance(layer, keras.layers.Dense) and layer.activation is keras.activations.relu:
                self._torso.append((np.asarray(layer.kernel, f32), np.asarray(layer.bias, f32)))
            else:
                raise ValueError(f"NumpyQStep does not cover the torso layer {layer.name!r} "
                                 f"({type(layer).__name__})")
        self._lstm: list[tuple[np.ndarray, np.ndarray]] = []
        self._action_rows: np.ndarray | None = None
        self._reward_row: np.ndarray | None = None
        for i, units in enumerate(self.units):
            layer = net.get_layer(f"lstm_{i}")
            cell = layer.cell
            if not (cell.activation is keras.activations.tanh
                    and cell.recurrent_activation is keras.activations.sigmoid
                    and cell.use_bias and not cell.dropout and not cell.recurrent_dropout):
                raise ValueError(f"NumpyQStep covers LSTMs with tanh / sigmoid, a bias and no dropout; "
                                 f"{layer.name!r} is not one")
            # sigmoid(z) = (1 + tanh(z / 2)) / 2: halve the i, f, o columns, keep g's.
            half = np.full(4 * units, 0.5, f32)
            half[2 * units:3 * units] = 1.0
            kernel = np.asarray(cell.kernel, f32) * half
            recurrent = np.asarray(cell.recurrent_kernel, f32) * half
            bias = np.asarray(cell.bias, f32) * half
            if i == 0:
                rows = kernel.shape[0]
                extra = int(config.use_prev_action) * self.num_actions + int(config.use_prev_reward)
                features = rows - extra
                if config.use_prev_action:
                    # Row 0 is one_hot(-1) = zeros: an episode's first step.
                    self._action_rows = np.concatenate(
                        [np.zeros((1, 4 * units), f32), kernel[features:features + self.num_actions]])
                if config.use_prev_reward:
                    self._reward_row = kernel[rows - 1]
                kernel = kernel[:features]
            self._lstm.append((np.ascontiguousarray(np.concatenate([kernel, recurrent])), bias))
        head = net.get_layer("dueling_head")
        self._head_hidden = (
            np.concatenate([np.asarray(head.value_hidden.kernel, f32), np.asarray(head.advantage_hidden.kernel, f32)], 1),
            np.concatenate([np.asarray(head.value_hidden.bias, f32), np.asarray(head.advantage_hidden.bias, f32)]))
        # q = v + a - mean(a) is linear in the hidden units: one [2 units, A] matmul.
        value_kernel, value_bias = np.asarray(head.value.kernel, f32), np.asarray(head.value.bias, f32)
        adv_kernel, adv_bias = np.asarray(head.advantage.kernel, f32), np.asarray(head.advantage.bias, f32)
        self._q = (
            np.concatenate([np.repeat(value_kernel, self.num_actions, axis=1),
                            adv_kernel - adv_kernel.mean(axis=1, keepdims=True)]),
            value_bias + adv_bias - adv_bias.mean())

    def __call__(self, observation: np.ndarray, prev_action: np.ndarray, prev_reward: np.ndarray,
                 states: list[list[np.ndarray]]) -> tuple[np.ndarray, list[list[np.ndarray]]]:
        """One step for a batch of N.

        Args:
          observation: float32 [N, *observation_shape].
          prev_action: int [N], -1 at an episode's first step.
          prev_reward: float32 [N].
          states: ``get_states`` layout, ``[[h, c], ...]`` per LSTM layer, float32 [N, units];
            not modified.

        Returns:
          ``(q, new_states)``: q float32 [N, num_actions] and the states after the step
          (new arrays).
        """
        n = observation.shape[0]
        x = observation.reshape(n, -1)
        if self._scale is not None:
            x = x * self._scale + self._offset
        for kernel, bias in self._torso:
            x = np.maximum(x @ kernel + bias, 0.0)
        new_states = []
        for i, ((weights, bias), (h, c), units) in enumerate(zip(self._lstm, states, self.units)):
            z = np.concatenate([x, h], axis=1) @ weights
            z += bias
            if i == 0:
                if self._action_rows is not None:
                    z += self._action_rows[np.asarray(prev_action, np.int64) + 1]
                if self._reward_row is not None:
                    z += np.asarray(prev_reward, np.float32)[:, None] * self._reward_row
            t = np.tanh(z)
            gates = 0.5 * t[:, :2 * units] + 0.5  # i, f
            c = gates[:, units:] * c + gates[:, :units] * t[:, 2 * units:3 * units]
            h = (0.5 * t[:, 3 * units:] + 0.5) * np.tanh(c)
            new_states.append([h, c])
            x = h
        hidden = np.maximum(x @ self._head_hidden[0] + self._head_hidden[1], 0.0)
        return hidden @ self._q[0] + self._q[1], new_states

