"""Every scenario of the seed documents (../shared/seeds), replayed on Keras 3.

The seeds use Keras 2 calls (``lstm.reset_states(states=[h, c])``,
``model.reset_states()``); here the same scenarios run through
``r2d2_state.state`` and assert numbers instead of printing them.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from r2d2_state.state import get_states, reset_states


# ----------------------------------------------------------------- seeds 000 / 001

BATCH, STEPS, IN_DIM, OUT_DIM, NODES = 10, 2, 3, 3, 10


def _seed000_stateful(batch_size: int = BATCH):
    keras.utils.set_random_seed(42)
    inputs = keras.Input(shape=(STEPS, IN_DIM), batch_size=batch_size)
    lstm = keras.layers.RNN(keras.layers.LSTMCell(NODES), return_state=True,
                            return_sequences=True, stateful=True)
    seq, h, c = lstm(inputs)
    out = keras.layers.Dense(OUT_DIM)(seq)
    return keras.Model(inputs, [h, c, out]), lstm


def test_seed000_stateful_reset_to_zero_reproduces_and_ones_differ():
    model, lstm = _seed000_stateful()
    x = np.random.default_rng(42).random((BATCH, STEPS, IN_DIM), dtype=np.float32)

    _, _, out1 = model(x)
    _, _, out2 = model(x)
    # The state carried over from the first call changes the second output.
    assert not np.allclose(out1, out2, atol=1e-6)

    # Keras 2: lstm.reset_states(states=[np.zeros(...), np.zeros(...)])
    reset_states(lstm, [np.zeros((BATCH, NODES)), np.zeros((BATCH, NODES))])
    _, _, out3 = model(x)
    np.testing.assert_allclose(out3, out1, rtol=0, atol=1e-7)

    reset_states(lstm, [np.ones((BATCH, NODES)), np.ones((BATCH, NODES))])
    _, _, out4 = model(x)
    assert np.abs(np.mean(out4) - np.mean(out1)) > 1e-3

    # The layer also reports the state the model returned.
    h, c, _ = model(x)
    (h_state, c_state), = get_states(lstm)
    np.testing.assert_allclose(h_state, h, atol=1e-7)
    np.testing.assert_allclose(c_state, c, atol=1e-7)


def test_seed000_stateless_explicit_state_on_batch_of_one():
    """The seed's monkey-patched ``get_initial_state`` is ``initial_state=`` on Keras 3."""
    stateful, lstm = _seed000_stateful(batch_size=1)
    inputs = keras.Input(shape=(STEPS, IN_DIM))
    h0, c0 = keras.Input(shape=(NODES,)), keras.Input(shape=(NODES,))
    rnn = keras.layers.RNN(keras.layers.LSTMCell(NODES), return_state=True, return_sequences=True)
    seq, h, c = rnn(inputs, initial_state=[h0, c0])
    out = keras.layers.Dense(OUT_DIM)(seq)
    stateless = keras.Model([inputs, h0, c0], [out, h, c])
    stateless.set_weights(stateful.get_weights())

    x = np.random.default_rng(0).random((1, STEPS, IN_DIM), dtype=np.float32)
    zeros, ones = np.zeros((1, NODES), np.float32), np.ones((1, NODES), np.float32)
    a, _, _ = stateless([x, zeros, zeros])
    b, _, _ = stateless([x, zeros, zeros])
    np.testing.assert_array_equal(a, b)  # no hidden state between calls
    with_ones, _, _ = stateless([x, ones, ones])
    assert np.abs(np.mean(with_ones) - np.mean(a)) > 1e-3

    # Same numbers as the stateful layer with the same state set through reset_states.
    reset_states(lstm, [ones, ones])
    _, _, expected = stateful(x)
    np.testing.assert_allclose(with_ones, expected, atol=1e-6)
    reset_states(lstm)
    _, _, expected_zero = stateful(x)
    np.testing.assert_allclose(a, expected_zero, atol=1e-6)


# -------------------------------------------------------------------------- seed 002

SEQ_LEN, SEED2_BATCH, LSTM_UNITS = 3, 6, 16
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZA"


def _alphabet_data():
    ints = np.arange(len(ALPHABET))
    n = 24  # the seed's TimeseriesGenerator first batch: 24 windows of 3 -> next letter
    x = np.stack([ints[i:i + SEQ_LEN] for i in range(n)]).astype(np.float32) / len(ALPHABET)
    y = keras.utils.to_categorical(ints[SEQ_LEN:SEQ_LEN + n], num_classes=len(ALPHABET))
    return x[..., None], y


@pytest.fixture(scope="module")
def seed002_model():
    keras.utils.set_random_seed(42)
    x, y = _alphabet_data()
    inp = keras.Input(batch_shape=(SEED2_BATCH, SEQ_LEN, 1))
    out = keras.layers.LSTM(LSTM_UNITS, stateful=True, name="lstm")(inp)
    out = keras.layers.Dense(y.shape[1], activation="softmax")(out)
    model = keras.Model(inp, out)
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    model.fit(x, y, epochs=2, batch_size=SEED2_BATCH, verbose=0, shuffle=False)
    x_test = np.repeat(x[:1], SEED2_BATCH, axis=0)  # x_data[0] repeated batch-size times
    return model, x_test


def get_hidden_states(model):  # the seed's helper, Keras 3 form
    return get_states(model.get_layer("lstm"))[0]


def set_hidden_states(model, hidden_states):  # the seed's helper, Keras 3 form
    reset_states(model.get_layer("lstm"), hidden_states)


def test_seed002_cases_1_to_5(seed002_model):
    model, x_test = seed002_model
    predict = lambda: model.predict(x_test, batch_size=SEED2_BATCH, verbose=0)[:, 0]

    # (1) no reset: the state left by training differs per row, so do the outputs.
    hs1 = get_hidden_states(model)
    assert np.asarray(hs1).shape == (2, SEED2_BATCH, LSTM_UNITS)
    case1 = predict()
    assert np.ptp(case1) > 1e-6

    # (2) no reset again: the state advanced, the outputs change.
    case2 = predict()
    assert np.max(np.abs(case2 - case1)) > 1e-6

    # (3) restore the state saved in (1): case 1 again, exactly.
    set_hidden_states(model, hs1)
    np.testing.assert_allclose(predict(), case1, rtol=0, atol=1e-7)

    # (4) zero state (Keras 2: model.reset_states()): identical inputs, identical rows.
    reset_states(model)
    case4 = predict()
    np.testing.assert_allclose(case4, np.full(SEED2_BATCH, case4[0]), rtol=0, atol=1e-7)
    assert np.abs(case4[0] - case1[0]) > 1e-6

    # (5) row 0's saved state broadcast to every row: every row gives case 1's row 0.
    broadcast = [np.repeat(s[:1], SEED2_BATCH, axis=0) for s in hs1]
    set_hidden_states(model, broadcast)
    np.testing.assert_allclose(predict(), np.full(SEED2_BATCH, case1[0]), rtol=0, atol=1e-7)


def test_seed002_saved_state_is_a_copy(seed002_model):
    model, x_test = seed002_model
    saved = get_hidden_states(model)
    before = [s.copy() for s in saved]
    model.predict(x_test, batch_size=SEED2_BATCH, verbose=0)
    for s, b in zip(saved, before):
        np.testing.assert_array_equal(s, b)  # not a live view of the variables


# -------------------------------------------------------------------------- seed 003

LAYERS, B3, UNITS3, F3, T3 = 2, 3, 5, 4, 6


def _two_layer_stateless():
    x = keras.Input(shape=(None, F3))
    states = keras.Input(shape=(LAYERS, 2, UNITS3))  # batch-major form of [layers, 2, batch, units]
    h = x
    finals = []
    for i in range(LAYERS):
        lstm = keras.layers.LSTM(UNITS3, return_sequences=True, return_state=True, name=f"lstm{i}")
        h, hh, cc = lstm(h, initial_state=[states[:, i, 0], states[:, i, 1]])
        finals.append(keras.ops.stack([hh, cc], axis=1))
    return keras.Model([x, states], [h, keras.ops.stack(finals, axis=1)])


def test_seed003_stepping_with_carried_state_equals_one_unroll():
    keras.utils.set_random_seed(3)
    model = _two_layer_stateless()
    rng = np.random.default_rng(3)
    x = rng.normal(size=(B3, T3, F3)).astype(np.float32)
    init_state = np.zeros((LAYERS, 2, B3, UNITS3), np.float32)  # the seed's layout

    full, _ = model([x, np.transpose(init_state, (2, 0, 1, 3))])
    state = init_state
    outs = []
    for t in range(T3):  # seq_length = 1 per call, state fed back like the placeholder
        out, new_state = model([x[:, t:t + 1], np.transpose(state, (2, 0, 1, 3))])
        state = np.transpose(np.asarray(new_state), (1, 2, 0, 3))
        assert state.shape == (LAYERS, 2, B3, UNITS3)
        outs.append(np.asarray(out))
    np.testing.assert_allclose(np.concatenate(outs, axis=1), full, atol=1e-6)


def test_seed003_stateful_stack_round_trips_layers_2_batch_units():
    keras.utils.set_random_seed(3)
    x_in = keras.Input(batch_shape=(B3, None, F3))
    h = x_in
    for i in range(LAYERS):
        h = keras.layers.LSTM(UNITS3, return_sequences=True, stateful=True, name=f"lstm{i}")(h)
    model = keras.Model(x_in, h)
    x = np.random.default_rng(4).normal(size=(B3, T3, F3)).astype(np.float32)

    reset_states(model)
    full = np.asarray(model(x))
    reset_states(model, np.zeros((LAYERS, 2, B3, UNITS3), np.float32))
    outs = []
    for t in range(T3):
        state = np.asarray(get_states(model))
        assert state.shape == (LAYERS, 2, B3, UNITS3)
        reset_states(model, np.zeros_like(state))  # scramble, then restore the carried state
        reset_states(model, state)
        outs.append(np.asarray(model(x[:, t:t + 1])))
    np.testing.assert_allclose(np.concatenate(outs, axis=1), full, atol=1e-6)


# -------------------------------------------------------------------------- seed 004

TIMESTEPS, EMB, UNITS4, SAMPLES = 3, 4, 3, 2


def test_seed004_initial_state_as_model_input_trains_on_batch():
    keras.utils.set_random_seed(4)
    inputs = keras.Input((TIMESTEPS, EMB))
    initial_state = keras.Input((UNITS4,))
    hidden = keras.layers.SimpleRNN(UNITS4)(inputs, initial_state=initial_state)
    output = keras.layers.Dense(1)(hidden)
    model = keras.Model([inputs, initial_state], output)
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(0.1))

    rng = np.random.default_rng(4)
    x = rng.random((SAMPLES, TIMESTEPS, EMB), dtype=np.float32)
    s = rng.random((SAMPLES, UNITS4), dtype=np.float32)
    y = rng.random((SAMPLES, 1), dtype=np.float32)
    expected = float(np.mean((np.asarray(model([x, s])) - y) ** 2))
    with_zero_state = float(np.mean((np.asarray(model([x, np.zeros_like(s)])) - y) ** 2))
    assert abs(expected - with_zero_state) > 1e-6  # the state input matters

    loss = model.train_on_batch([x, s], y)
    assert loss == pytest.approx(expected, rel=1e-5)
    after = float(np.mean((np.asarray(model([x, s])) - y) ** 2))
    assert after < expected  # one SGD step on that batch lowers its loss


def test_seed004_sequential_stateful_rnn_state_set_before_fit():
    keras.utils.set_random_seed(4)
    model = keras.Sequential([
        keras.Input(batch_shape=(SAMPLES, TIMESTEPS, EMB)),
        keras.layers.SimpleRNN(UNITS4, stateful=True),
        keras.layers.Dense(1),
    ])
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(0.0))  # lr 0: the loss only reads
    rng = np.random.default_rng(5)
    x = rng.random((SAMPLES, TIMESTEPS, EMB), dtype=np.float32)
    y = rng.random((SAMPLES, 1), dtype=np.float32)
    some_initial_state = rng.random((SAMPLES, UNITS4)).astype(np.float64)  # any float dtype

    rnn = model.layers[0]
    reset_states(rnn, some_initial_state)  # Keras 2: rnn.reset_states(states=some_initial_state)
    (h,), = get_states(rnn)
    np.testing.assert_allclose(h, some_initial_state, atol=1e-7)

    # Expected loss of the first batch: a stateless twin fed the same initial state.
    twin_in, twin_state = keras.Input((TIMESTEPS, EMB)), keras.Input((UNITS4,))
    twin = keras.Model([twin_in, twin_state],
                       keras.layers.Dense(1)(keras.layers.SimpleRNN(UNITS4)(twin_in, initial_state=twin_state)))
    twin.set_weights(model.get_weights())
    expected = float(np.mean((np.asarray(twin([x, some_initial_state.astype(np.float32)])) - y) ** 2))
    zero_state = float(np.mean((np.asarray(twin([x, np.zeros((SAMPLES, UNITS4), np.float32)])) - y) ** 2))
    assert abs(expected - zero_state) > 1e-6

    history = model.fit(x, y, batch_size=SAMPLES, epochs=1, shuffle=False, verbose=0)
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-5)
    (h_after,), = get_states(rnn)
    assert not np.allclose(h_after, some_initial_state)  # stateful: fit advanced it
