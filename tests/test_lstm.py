"""FusedLSTM against keras.layers.LSTM: outputs, final states and gradients, and its paths."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from r2d2_state.lstm import FusedLSTM
from r2d2_state.networks import QNetworkConfig, build_q_network
from r2d2_state.state import get_states, reset_rows, reset_states, stateful_layers

B, T, F, U = 3, 7, 4, 5


def _mask(kind: str) -> np.ndarray | None:
    """Rows with left padding (burn-in of an episode's first sequence), right padding
    (after an episode's end), a hole, or nothing masked."""
    if kind == "none":
        return None
    mask = np.ones((B, T), bool)
    if kind in ("left", "mixed"):
        mask[0, :3] = False
    if kind in ("right", "mixed"):
        mask[1, 5:] = False
    if kind == "mixed":
        mask[2, 2] = False
    if kind == "all_valid":
        pass
    if kind == "all_masked":
        mask[:] = False
    return mask


def _pair(stateful: bool, return_sequences: bool = True, return_state: bool = False):
    kwargs = dict(return_sequences=return_sequences, return_state=return_state, stateful=stateful)
    ours, ref = FusedLSTM(U, **kwargs), keras.layers.LSTM(U, **kwargs)
    for layer in (ours, ref):
        layer.build((B, T, F))
    rng = np.random.default_rng(3)
    # Weights large enough that every gate saturates somewhere.
    ref.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in ref.get_weights()])
    ours.set_weights(ref.get_weights())
    return ours, ref


def _run(layer, x, h0, c0, mask, stateful, graph):
    def run(x, h0, c0):
        with tf.GradientTape() as tape:
            tape.watch([x, h0, c0])
            if stateful:
                reset_states(layer, [[h0, c0]])
                out = layer(x, mask=mask)
                h, c = get_states(layer)[0]
            else:
                out = layer(x, mask=mask, initial_state=[h0, c0])
                out, h, c = out if isinstance(out, (list, tuple)) else (out, None, None)
            weights = tf.range(1.0, 1.0 + out.shape[-1])
            loss = tf.reduce_sum(out * weights)
            if h is not None:
                loss += tf.reduce_sum(2.0 * h) + tf.reduce_sum(tf.square(c))
        grads = tape.gradient(loss, [x, h0, c0] + layer.trainable_variables)
        if stateful:
            h, c = get_states(layer)[0]
        return [out, h, c] + grads

    fn = tf.function(run) if graph else run
    return [None if v is None else np.asarray(v) for v in fn(x, h0, c0)]


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf.function"])
@pytest.mark.parametrize("stateful", [False, True], ids=["stateless", "stateful"])
@pytest.mark.parametrize("kind", ["none", "all_valid", "left", "right", "mixed", "all_masked"])
def test_outputs_states_and_gradients_equal_keras_lstm(kind, stateful, graph):
    ours, ref = _pair(stateful, return_state=not stateful)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(B, T, F)).astype(np.float32))
    h0 = tf.constant(rng.normal(size=(B, U)).astype(np.float32))
    c0 = tf.constant(rng.normal(size=(B, U)).astype(np.float32))
    mask = _mask(kind)
    mask = None if mask is None else tf.constant(mask)
    got = _run(ours, x, h0, c0, mask, stateful, graph)
    want = _run(ref, x, h0, c0, mask, stateful, graph)
    names = ["output", "h", "c", "d_x", "d_h0", "d_c0", "d_kernel", "d_recurrent_kernel", "d_bias"]
    for name, a, b in zip(names, got, want):
        if stateful and name in ("d_h0", "d_c0"):
            continue  # the state variables are assigned: no gradient path to h0, c0
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=name)
    if stateful:  # the state variables hold the final state, as Keras's do
        np.testing.assert_allclose(get_states(ours)[0][0], get_states(ref)[0][0], atol=1e-5)


@pytest.mark.parametrize("inline_max", [0, 16])
@pytest.mark.parametrize("per_iteration", [1, 3, 8])
@pytest.mark.parametrize("steps", [1, 2, 8, 11, 16])
def test_step_counts_and_steps_per_loop_iteration(monkeypatch, steps, per_iteration, inline_max):
    from r2d2_state import lstm

    monkeypatch.setattr(lstm, "MAX_STEPS_PER_ITERATION", per_iteration)
    monkeypatch.setattr(lstm, "INLINE_MAX_STEPS", inline_max)  # 0: always the while_loop
    ours, ref = FusedLSTM(U, return_sequences=False), keras.layers.LSTM(U, return_sequences=False)
    x = tf.constant(np.random.default_rng(1).normal(size=(B, steps, F)).astype(np.float32))
    ours(x), ref(x)
    ours.set_weights(ref.get_weights())
    mask = np.ones((B, steps), bool)
    mask[0, 0] = False
    for m in (None, tf.constant(mask)):
        results = []
        for layer in (ours, ref):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(layer(x, mask=m)))
            results.append([loss] + tape.gradient(loss, layer.trainable_variables))
        for a, b in zip(*results):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


def test_state_api_and_weights_layout_unchanged():
    cfg = QNetworkConfig(observation_shape=(4,), num_actions=3, mlp_units=(8,), lstm_units=(6, 5), head_units=8)
    net = build_q_network(cfg, stateful=True, batch_size=2)
    layers = stateful_layers(net)
    assert [type(layer) for layer in layers] == [FusedLSTM, FusedLSTM]
    assert [v.name for v in layers[0].trainable_variables] == ["kernel", "recurrent_kernel", "bias"]
    plain = keras.layers.LSTM(6)
    plain.build((None, None, 8 + 3 + 1))  # torso + one-hot previous action + previous reward
    assert [w.shape for w in layers[0].get_weights()] == [w.shape for w in plain.get_weights()]
    rng = np.random.default_rng(0)
    x = {"observation": rng.normal(size=(2, 3, 4)).astype(np.float32),
         "prev_action": np.zeros((2, 3), np.int32), "prev_reward": np.zeros((2, 3), np.float32),
         "valid": np.ones((2, 3), np.float32)}
    net(x)
    before = get_states(net)
    reset_rows(net, np.array([True, False]))
    after = get_states(net)
    for (h0, c0), (h1, c1) in zip(before, after):
        assert not np.any(h1[0]) and not np.any(c1[0])
        np.testing.assert_array_equal(h1[1], h0[1])
    stateless = build_q_network(cfg, stateful=False)
    stateless.set_weights(net.get_weights())


def _patched_paths(monkeypatch, gpu: bool):
    """Pretend a GPU is (or is not) visible and record every call of Keras's own LSTM loop
    (the one that takes cuDNN on a GPU) with the mask it receives."""
    calls = []
    original = keras.layers.LSTM.inner_loop

    def spy(self, sequences, initial_state, mask, training=False):
        calls.append(mask)
        return original(self, sequences, initial_state, mask, training=training)

    monkeypatch.setattr(keras.layers.LSTM, "inner_loop", spy)
    monkeypatch.setattr(FusedLSTM, "gpu_available", staticmethod(lambda: gpu))
    return calls


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf.function"])
def test_masked_path_never_takes_keras_cudnn_loop_even_on_a_gpu(monkeypatch, graph):
    calls = _patched_paths(monkeypatch, gpu=True)
    layer = FusedLSTM(U, return_sequences=True)
    x = tf.constant(np.random.default_rng(0).normal(size=(B, T, F)).astype(np.float32))
    left_padded = tf.constant(_mask("left"))
    run = tf.function(lambda: layer(x, mask=left_padded)) if graph else (lambda: layer(x, mask=left_padded))
    run()
    assert ("masked", "fused") in layer.loop_log
    # In a graph both branches of the all-valid check are traced: the unmasked one may use
    # Keras's (cuDNN) loop, the masked one never does, and Keras's loop never sees a mask.
    assert all(m is None for m in calls)
    if graph:
        assert ("unmasked", "keras") in layer.loop_log
        assert len(calls) == layer.loop_log.count(("unmasked", "keras"))
    else:
        assert calls == [] and list(layer.loop_log) == [("masked", "fused")]


def test_unmasked_path_takes_keras_loop_on_a_gpu_and_the_fused_loop_on_a_cpu(monkeypatch):
    x = tf.constant(np.random.default_rng(0).normal(size=(B, T, F)).astype(np.float32))
    calls = _patched_paths(monkeypatch, gpu=True)
    on_gpu = FusedLSTM(U)
    on_gpu(x, mask=tf.ones((B, T), bool))
    assert on_gpu.loop_log[-1] == ("unmasked", "keras") and calls == [None]

    calls = _patched_paths(monkeypatch, gpu=False)
    on_cpu = FusedLSTM(U)
    on_cpu(x)
    on_cpu(x, mask=tf.ones((B, T), bool))
    assert list(on_cpu.loop_log) == [("unmasked", "fused")] * 2 and calls == []

    no_cudnn = FusedLSTM(U, use_cudnn=False)
    _patched_paths(monkeypatch, gpu=True)
    no_cudnn(x)
    assert list(no_cudnn.loop_log) == [("unmasked", "fused")]


def test_unsupported_configurations_use_the_generic_loop_never_cudnn(monkeypatch):
    calls = _patched_paths(monkeypatch, gpu=True)
    layer = FusedLSTM(U, activation="relu")
    x = tf.constant(np.random.default_rng(0).normal(size=(B, T, F)).astype(np.float32))
    ref = keras.layers.LSTM(U, activation="relu")
    layer(x), ref(x)
    ref.set_weights(layer.get_weights())
    mask = tf.constant(_mask("left"))
    np.testing.assert_allclose(np.asarray(layer(x, mask=mask)), np.asarray(ref(x, mask=mask)), atol=1e-6)
    assert ("masked", "generic") in layer.loop_log
    assert all(m is None for m in calls[:-1])  # the last call is the reference layer's own


def test_serialization_round_trip():
    layer = FusedLSTM(U, return_sequences=True, stateful=False)
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(clone) is FusedLSTM and clone.units == U and clone.return_sequences


@pytest.mark.parametrize("time_steps", [T, None])
def test_dynamic_batch_and_time_in_a_traced_function_equal_keras_lstm(time_steps):
    # Traced with a dynamic batch (as the Ray actor's priority function is), and with a
    # dynamic number of steps, which the fused loop cannot take (it falls back to Keras's).
    ours, ref = _pair(stateful=False)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(B, T, F)).astype(np.float32)
    mask = np.ones((B, T), bool)
    mask[0, :2] = False
    spec = [tf.TensorSpec((None, time_steps, F), tf.float32), tf.TensorSpec((None, time_steps), tf.bool)]
    results = [tf.function(lambda x, m, layer=layer: layer(x, mask=m), input_signature=spec)(x, mask)
               for layer in (ours, ref)]
    np.testing.assert_allclose(results[0].numpy(), results[1].numpy(), atol=1e-5)
    assert ours.loop_log[-1][1] == ("fused" if time_steps else "generic")


def test_all_steps_valid_traces_only_the_unmasked_loop_with_equal_numbers():
    from r2d2_state.lstm import all_steps_valid

    ours, ref = FusedLSTM(U, return_sequences=True), keras.layers.LSTM(U, return_sequences=True)
    x = tf.constant(np.random.default_rng(2).normal(size=(B, 5, F)).astype(np.float32))
    ours(x), ref(x)
    ours.set_weights(ref.get_weights())
    mask = tf.ones((B, 5), tf.bool)

    @tf.function(autograph=False)
    def hinted(x):
        with tf.GradientTape() as tape:
            with all_steps_valid():
                loss = tf.reduce_sum(tf.square(ours(x, mask=mask)))
        return [loss] + tape.gradient(loss, ours.trainable_variables)

    ours.loop_log.clear()
    got = hinted(x)
    assert list(ours.loop_log) == [("unmasked", "fused")]  # no masked branch, no cond
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(ref(x, mask=mask)))
    want = [loss] + tape.gradient(loss, ref.trainable_variables)
    for a, b in zip(got, want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
    ours.loop_log.clear()
    left = np.ones((B, 5), bool)
    left[0, :2] = False
    ours(x, mask=tf.constant(left))  # outside the block the mask counts again
    assert ("masked", "fused") in list(ours.loop_log)
