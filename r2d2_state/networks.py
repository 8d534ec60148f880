"""The recurrent Q-network of R2D2: torso -> LSTM(s) -> dueling head.

One architecture, two variants with the same weight layout, so ``set_weights`` /
``get_weights`` move weights between every variant and batch size (the recurrent states
are not weights):

- **stateful** (:func:`build_q_network` with ``stateful=True``): a fixed batch size; the
  LSTM state lives in the layers' state variables (:mod:`r2d2_state.state`). The actor, the
  learner's burn-in and evaluation each use their own instance.
- **stateless** (``stateful=False``): any batch size; the initial state is an input and
  the final state an output.

Inputs (a dict)::

  observation:  [B, T, *obs_shape]  float32 vectors, or uint8 images [B, T, H, W, C]
                                    (channels first, [B, T, C, H, W]: frame stacks)
  prev_action:  int32 [B, T]        previous action, -1 at an episode's first step
  prev_reward:  float32 [B, T]      previous reward, 0 at an episode's first step
  valid:        float32 [B, T]      (optional) 0 on padding: the LSTM carries its
                                    state unchanged across those steps
  initial_state (stateless only):   list over LSTM layers of [h, c], each [B, units]

Outputs: ``q`` float32 [B, T, num_actions]; the stateless variant also returns the final
state (same layout as ``initial_state``). The torsos: docs/network.md.
"""

from __future__ import annotations

import math

import keras

from r2d2_state.lstm import FusedLSTM
from r2d2_state.network_config import QNetworkConfig

__all__ = ["QNetworkConfig", "FusedLSTM", "MaskAwareLSTM", "build_q_network", "initial_state_inputs"]


def initial_state_inputs(config: QNetworkConfig, batch_size: int | None = None) -> list[list[keras.KerasTensor]]:
    """Symbolic ``[h, c]`` inputs per LSTM layer, for building models with explicit state."""
    return [[keras.Input(batch_shape=(batch_size, units), name=f"initial_h{i}"),
             keras.Input(batch_shape=(batch_size, units), name=f"initial_c{i}")]
            for i, units in enumerate(config.lstm_units)]


def build_q_network(config: QNetworkConfig, *, stateful: bool, batch_size: int | None = None,
                    name: str | None = None) -> keras.Model:
    """Build the stateful (fixed ``batch_size``) or stateless (any batch) variant.

    Raises:
      ValueError: ``stateful=True`` without a positive ``batch_size``; a config without
        the observation shape or the number of actions (see ``QNetworkConfig.for_env``).
    """
    config.require_env()
    if stateful and (batch_size is None or int(batch_size) < 1):
        raise ValueError(
            f"a stateful network needs a static batch size >= 1, got batch_size={batch_size!r}"
        )
    batch = int(batch_size) if batch_size is not None else None
    obs_dtype = config.input_dtype
    inputs = {
        "observation": keras.Input(batch_shape=(batch, None) + config.observation_shape,
                                   dtype=obs_dtype, name="observation"),
        "prev_action": keras.Input(batch_shape=(batch, None), dtype="int32", name="prev_action"),
        "prev_reward": keras.Input(batch_shape=(batch, None), dtype="float32", name="prev_reward"),
        "valid": keras.Input(batch_shape=(batch, None), dtype="float32", name="valid"),
    }
    initial = None if stateful else initial_state_inputs(config, batch)

    x = _torso(config)(inputs["observation"])
    extras = [x]
    if config.use_prev_action:
        extras.append(keras.ops.one_hot(inputs["prev_action"], config.num_actions))
    if config.use_prev_reward:
        extras.append(keras.ops.expand_dims(inputs["prev_reward"], -1))
    x = keras.layers.Concatenate(name="lstm_input")(extras) if len(extras) > 1 else x
    mask = keras.ops.greater(inputs["valid"], 0.5)

    finals = []
    for i, units in enumerate(config.lstm_units):
        lstm = FusedLSTM(units, return_sequences=True, return_state=not stateful,
                             stateful=stateful, name=f"lstm_{i}")
        if stateful:
            x = lstm(x, mask=mask)
        else:
            x, h, c = lstm(x, mask=mask, initial_state=initial[i])
            finals.append([h, c])

    q = _DuelingHead(config.num_actions, config.head_units, name="dueling_head")(x)
    if stateful:
        return keras.Model(inputs=inputs, outputs=q, name=name or f"q_network_stateful_b{batch}")
    all_inputs = dict(inputs)
    for i, (h, c) in enumerate(initial):
        all_inputs[f"initial_h{i}"] = h
        all_inputs[f"initial_c{i}"] = c
    return keras.Model(inputs=all_inputs, outputs=[q, finals], name=name or "q_network_stateless")


MaskAwareLSTM = FusedLSTM
"""The former name of the network's LSTM layer (now :class:`r2d2_state.lstm.FusedLSTM`)."""


def _torso(config: QNetworkConfig) -> keras.layers.Layer:
    """Observation encoder applied at every timestep: [B, T, *obs] -> [B, T, F].

    Chosen from the observation (the table of docs/network.md): an MLP for vectors, the
    Nature-DQN conv stack for images of H and W >= 36, MiniGrid / BabyAI's small stack for
    smaller ones, channels-first images transposed in the graph, and a multi-input torso for
    a flat vector with an image part. Images are rescaled by 1/255, except symbolic grids
    (``image_codes``), whose channels are one-hot encoded.
    """
    if config.image_shape is not None:
        return keras.layers.TimeDistributed(_MultiInputTorso(config), name="torso")
    if not config.is_image:
        layers: list[keras.layers.Layer] = []
        if len(config.observation_shape) > 1:
            layers.append(keras.layers.Reshape((-1, int(math.prod(config.observation_shape)))))
        scale = config.observation_scale
        if isinstance(scale, tuple):
            layers.append(keras.layers.Rescaling([float(f) for f in scale], name="observation_scale"))
        elif scale != 1.0:
            layers.append(keras.layers.Rescaling(float(scale), name="observation_scale"))
        layers += [keras.layers.Dense(u, activation="relu", name=f"torso_dense_{i}")
                   for i, u in enumerate(config.mlp_units)]
        return keras.Sequential(layers, name="torso") if layers else keras.layers.Identity(name="torso")
    shape, frame = config.observation_shape, config.image_frame
    # Keras convolutions on CPU take channels last only: a frame stack kept stack-axis-first
    # (contiguous frames for the replay) is transposed here, one uint8 copy per step.
    layout = (keras.layers.Permute((2, 3, 1), name="channels_last") if config.channels_first
              else keras.layers.Reshape(frame))
    conv = keras.Sequential([keras.Input(shape=shape, dtype=config.input_dtype), layout,
                             *_image_encoder(frame, config)], name=_encoder_name(frame))
    return keras.layers.TimeDistributed(conv, name="torso")


NATURE_MIN_SIZE = 36
"""Smallest H and W the Nature-DQN stack (8x8/4, 4x4/2, 3x3/1) takes."""


def _encoder_name(frame: tuple[int, ...]) -> str:
    return "nature_conv" if min(frame[:2]) >= NATURE_MIN_SIZE else "small_conv"


def _image_encoder(frame: tuple[int, ...], config: QNetworkConfig) -> list[keras.layers.Layer]:
    """Layers from a [H, W, C] image (uint8 or float 0..255; or symbolic codes, see
    ``QNetworkConfig.image_codes``) to a feature vector."""
    layers: list[keras.layers.Layer] = (
        [OneHotChannels(config.image_codes, name="image_one_hot")] if config.image_codes
        else [keras.layers.Rescaling(1.0 / 255.0)])
    if min(frame[:2]) >= NATURE_MIN_SIZE:
        return layers + [
            keras.layers.Conv2D(32, 8, strides=4, activation="relu", name="conv_0"),
            keras.layers.Conv2D(64, 4, strides=2, activation="relu", name="conv_1"),
            keras.layers.Conv2D(64, 3, strides=1, activation="relu", name="conv_2"),
            keras.layers.Flatten(),
            keras.layers.Dense(config.conv_dense_units, activation="relu", name="conv_dense"),
        ]
    h, w = frame[:2]
    for i, (filters, pool) in enumerate([(16, True), (32, False), (64, False)]):
        if min(h, w) >= 2:
            layers.append(keras.layers.Conv2D(filters, 2, activation="relu", name=f"small_conv_{i}"))
            h, w = h - 1, w - 1
        if pool and min(h, w) >= 4:
            layers.append(keras.layers.MaxPooling2D(2, name="small_pool"))
            h, w = h // 2, w // 2
    return layers + [keras.layers.Flatten(), keras.layers.LayerNormalization(name="small_conv_norm")]


@keras.saving.register_keras_serializable(package="r2d2_state")
class OneHotChannels(keras.layers.Layer):
    """[..., C] integer codes -> [..., sum(codes)] float32: channel k one-hot over
    ``codes[k]`` values (a code outside 0 .. codes[k] - 1 gives zeros).

    For images whose channels are categories (MiniGrid's object, colour and state), where a
    conv on the raw codes would see a key (5) and a ball (6) as nearly the same input.
    """

    def __init__(self, codes, **kwargs):
        super().__init__(**kwargs)
        self.codes = tuple(int(k) for k in codes)

    def call(self, x):
        x = keras.ops.cast(x, "int32")
        parts = [keras.ops.one_hot(x[..., k], n) for k, n in enumerate(self.codes)]
        return keras.ops.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (sum(self.codes),)

    def get_config(self):
        return {**super().get_config(), "codes": list(self.codes)}


class _MultiInputTorso(keras.layers.Layer):
    """[B, F] flat observation = [image.ravel(), rest] -> concat(conv(image), mlp(rest))."""

    def __init__(self, config: QNetworkConfig, **kwargs):
        super().__init__(name="multi_input", **kwargs)
        self.image_shape = config.image_shape
        self.image_size = int(math.prod(config.image_shape))
        self.rest_size = config.observation_shape[0] - self.image_size
        self.image_encoder = keras.Sequential(_image_encoder(self.image_shape, config),
                                              name=_encoder_name(self.image_shape))
        self.rest_encoder = [keras.layers.Dense(u, activation="relu", name=f"torso_dense_{i}")
                             for i, u in enumerate(config.mlp_units)] if self.rest_size else []

    def build(self, input_shape):
        self.image_encoder.build((None,) + self.image_shape)
        size = self.rest_size
        for layer in self.rest_encoder:
            layer.build((None, size))
            size = layer.units

    def call(self, x):
        x = keras.ops.cast(x, "float32")
        image = keras.ops.reshape(x[:, :self.image_size], (-1,) + self.image_shape)
        parts = [self.image_encoder(image)]
        if self.rest_size:
            rest = x[:, self.image_size:]
            for layer in self.rest_encoder:
                rest = layer(rest)
            parts.append(rest)
        return keras.ops.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]

    def compute_output_shape(self, input_shape):
        size = self.image_encoder.compute_output_shape((None,) + self.image_shape)[-1]
        if self.rest_size:
            size += self.rest_encoder[-1].units if self.rest_encoder else self.rest_size
        return (input_shape[0], size)


class _DuelingHead(keras.layers.Layer):
    """q = v + a - mean(a), each stream with its own hidden layer (Wang et al. 2016)."""

    def __init__(self, num_actions: int, units: int, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # padding steps still get (ignored) Q-values
        self.num_actions = num_actions
        self.units = units
        self.value_hidden = keras.layers.Dense(units, activation="relu", name="value_hidden")
        self.value = keras.layers.Dense(1, name="value")
        self.advantage_hidden = keras.layers.Dense(units, activation="relu", name="advantage_hidden")
        self.advantage = keras.layers.Dense(num_actions, name="advantage")

    def build(self, input_shape):
        self.value_hidden.build(input_shape)
        self.value.build(tuple(input_shape[:-1]) + (self.units,))
        self.advantage_hidden.build(input_shape)
        self.advantage.build(tuple(input_shape[:-1]) + (self.units,))

    def call(self, x):
        v = self.value(self.value_hidden(x))
        a = self.advantage(self.advantage_hidden(x))
        return v + a - keras.ops.mean(a, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.num_actions,)

    def get_config(self):
        return {**super().get_config(), "num_actions": self.num_actions, "units": self.units}
