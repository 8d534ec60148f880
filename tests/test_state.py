from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from r2d2_state.state import (get_states, recurrent_layers, reset_rows, reset_states,
                              state_shapes, stateful_layers, zero_states)

B, F, U = 4, 3, 5


def _stack(kinds=("lstm", "lstm"), batch=B, units=U):
    layers = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "simple": keras.layers.SimpleRNN}
    inp = keras.Input(batch_shape=(batch, None, F))
    h = inp
    for i, kind in enumerate(kinds):
        h = layers[kind](units, stateful=True, return_sequences=True, name=f"{kind}{i}")(h)
    return keras.Model(inp, keras.layers.Dense(2)(h))


def _x(seed=0, t=3, batch=B):
    return np.random.default_rng(seed).normal(size=(batch, t, F)).astype(np.float32)


def _random_states(model, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.normal(size=s).astype(np.float32) for s in layer] for layer in state_shapes(model)]


def _snapshot(model):
    return [[s.copy() for s in layer] for layer in get_states(model)]


def _assert_same(a, b):
    assert len(a) == len(b)
    for la, lb in zip(a, b):
        for x, y in zip(la, lb):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("kinds,expected_counts", [
    (("lstm", "lstm"), [2, 2]),
    (("gru",), [1]),
    (("simple", "lstm"), [1, 2]),
])
def test_round_trip_for_each_layer_kind(kinds, expected_counts):
    model = _stack(kinds)
    model(_x())
    assert [len(s) for s in get_states(model)] == expected_counts
    saved = _snapshot(model)
    y1 = np.asarray(model(_x(1)))
    model(_x(2))
    reset_states(model, saved)
    np.testing.assert_allclose(model(_x(1)), y1, atol=1e-7)


def test_lstm_stack_layout_is_layers_2_batch_units():
    model = _stack(("lstm", "lstm"))
    model(_x())
    states = np.asarray(get_states(model))
    assert states.shape == (2, 2, B, U)
    target = np.random.default_rng(0).normal(size=(2, 2, B, U))
    reset_states(model, target)  # the array form, float64 accepted and cast
    np.testing.assert_allclose(np.asarray(get_states(model)), target.astype(np.float32))


def test_rnn_over_cells_and_nested_models_are_found_in_order():
    inner_in = keras.Input(batch_shape=(B, None, F))
    inner = keras.Model(inner_in, keras.layers.RNN(keras.layers.GRUCell(U), stateful=True,
                                                   return_sequences=True, name="cell_gru")(inner_in))
    outer_in = keras.Input(batch_shape=(B, None, F))
    h = inner(outer_in)
    h = keras.layers.LSTM(U, return_sequences=True, name="plain_stateless")(h)
    h = keras.layers.LSTM(U, stateful=True, return_sequences=True, name="last")(h)
    model = keras.Model(outer_in, h)
    model(_x())
    assert [l.name for l in stateful_layers(model)] == ["cell_gru", "last"]
    assert [l.name for l in recurrent_layers(model)] == ["cell_gru", "plain_stateless", "last"]
    new = _random_states(model)
    reset_states(model, new)
    _assert_same(get_states(model), new)


def test_zero_reset_and_zero_states():
    model = _stack()
    model(_x())
    reset_states(model)
    for layer in get_states(model):
        for s in layer:
            assert not s.any()
    z = zero_states(model, batch_size=1)
    assert [[a.shape for a in layer] for layer in z] == [[(1, U), (1, U)]] * 2


def test_single_layer_accepts_its_own_list_and_bare_array():
    model = _stack(("lstm", "gru"))
    model(_x())
    lstm, gru = stateful_layers(model)
    h, c = np.ones((B, U)), np.full((B, U), 2.0)
    reset_states(lstm, [h, c])
    assert get_states(lstm)[0][1][0, 0] == 2.0
    reset_states(gru, np.full((B, U), 3.0, dtype=np.float16))  # a GRU's bare h, half precision
    assert get_states(gru)[0][0][0, 0] == 3.0
    assert get_states(model)[0][0][0, 0] == 1.0  # the model view sees the same variables


def test_reset_rows_by_mask_and_by_index():
    model = _stack()
    model(_x())
    before = _snapshot(model)
    reset_rows(model, np.array([True, False, False, True]))
    after = get_states(model)
    for la, lb in zip(after, before):
        for a, b in zip(la, lb):
            assert not a[[0, 3]].any()
            np.testing.assert_array_equal(a[[1, 2]], b[[1, 2]])
    values = _random_states(model, seed=7)
    reset_rows(model, [2], values)
    for la, lv in zip(get_states(model), values):
        for a, v in zip(la, lv):
            np.testing.assert_array_equal(a[2], v[2])
            assert not a[0].any()


def test_inside_tf_function_without_retracing():
    model = _stack()
    model(_x())
    traces = []

    @tf.function
    def restore_and_run(states, done, x):
        traces.append(1)
        reset_states(model, states)
        before = get_states(model)
        y = model(x)
        reset_rows(model, done)
        return before, y

    states = _random_states(model)
    for seed in range(3):
        before, y = restore_and_run(states, tf.constant([seed == 0, False, True, False]), _x(seed))
        _assert_same([[np.asarray(t) for t in layer] for layer in before], states)
    assert len(traces) == 1
    now = get_states(model)
    assert not now[0][0][2].any() and now[0][0][1].any()

    # The eager path matches the traced one.
    reset_states(model, states)
    np.testing.assert_allclose(model(_x(2)), y, atol=1e-6)


# ------------------------------------------------------------------------------- errors


@pytest.fixture
def built():
    model = _stack(("lstm", "lstm"))
    model(_x())
    reset_states(model, _random_states(model))
    return model


@pytest.mark.parametrize("bad,error,words", [
    ([[np.zeros((B, U))] * 2], ValueError, ["cover 1 layers", "2"]),
    ([[np.zeros((B, U))] * 2, [np.zeros((B, U))]], ValueError, ["lstm1", "expected 2 arrays"]),
    ([[np.zeros((B, U))] * 2, [np.zeros((B, U)), np.zeros((B + 1, U))]], ValueError,
     ["lstm1", "(4, 5)", "(5, 5)"]),
    ([[np.zeros((B, U))] * 2, [np.zeros((B, U + 1)), np.zeros((B, U))]], ValueError, ["lstm1", "(4, 6)"]),
    ([[np.zeros((B, U))] * 2, [np.zeros((B, U), np.int32)] * 2], TypeError, ["lstm1", "float"]),
    (np.zeros((3, 2, B, U)), ValueError, ["(3, 2, 4, 5)", "num_layers"]),
    ("zeros", TypeError, ["str"]),
])
def test_bad_states_raise_and_change_nothing(built, bad, error, words):
    before = _snapshot(built)
    with pytest.raises(error) as info:
        reset_states(built, bad)
    for w in words:
        assert w in str(info.value)
    _assert_same(get_states(built), before)  # layer 0 was valid but must not be written


def test_bad_rows_raise_and_change_nothing(built):
    before = _snapshot(built)
    with pytest.raises(ValueError, match=r"expected shape \(4,\)"):
        reset_rows(built, np.array([True, False]))
    with pytest.raises(IndexError, match=r"\[0, 4\)"):
        reset_rows(built, [1, 9])
    with pytest.raises(ValueError, match="lstm1"):
        reset_rows(built, [1], [[np.zeros((B, U))] * 2, [np.zeros((1, U))] * 2])
    _assert_same(get_states(built), before)


def test_model_without_stateful_layer_and_stateless_layer_are_refused():
    inp = keras.Input((None, F))
    lstm = keras.layers.LSTM(U, name="stateless_lstm")
    model = keras.Model(inp, lstm(inp))
    with pytest.raises(ValueError, match="no stateful recurrent layer"):
        reset_states(model)
    with pytest.raises(ValueError, match="'stateless_lstm' is not stateful"):
        reset_states(lstm, [np.zeros((1, U))] * 2)
    with pytest.raises(ValueError, match="'stateless_lstm' is not stateful"):
        get_states(lstm)
    dense_only = keras.Sequential([keras.Input((F,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no stateful recurrent layer"):
        get_states(dense_only)
    with pytest.raises(TypeError, match="expected a keras.Model"):
        get_states(object())


def test_unbuilt_stateful_layer_is_refused():
    lstm = keras.layers.LSTM(U, stateful=True, name="unbuilt")
    with pytest.raises(ValueError, match="'unbuilt' is not built"):
        get_states(lstm)


# ------------------------------------------------------------------------------- edges


def test_graph_mode_dynamic_batch_checks_every_layer_before_assigning(built):
    before = _snapshot(built)
    spec = tf.TensorSpec([None, U], tf.float32)

    @tf.function(input_signature=[spec] * 4)
    def restore(h0, c0, h1, c1):
        reset_states(built, [[h0, c0], [h1, c1]])

    good = np.ones((B, U), np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"h1 \[5,5\] is not compatible with expected shape \[4,5\]"):
        restore(good, good, np.ones((B + 1, U), np.float32), good)
    _assert_same(get_states(built), before)  # layer 0 was valid but must not have been written
    restore(good, good, good, good)
    assert all((s == 1).all() for layer in get_states(built) for s in layer)


def test_graph_mode_dynamic_batch_rows_checked_before_assigning(built):
    before = _snapshot(built)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.bool), tf.TensorSpec([None, U], tf.float32)])
    def reset_some(mask, h):
        reset_rows(built, mask, [[h, h], [h, h]])

    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[5,5\] is not compatible with expected shape \[4,5\]"):
        reset_some(np.ones(B, bool), np.ones((B + 1, U), np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[5\] is not compatible with expected shape \[4\]"):
        reset_some(np.ones(B + 1, bool), np.ones((B, U), np.float32))
    _assert_same(get_states(built), before)


@pytest.mark.parametrize("rows", [np.array([1, 0, 0, 1]), [0, 1, 1, 0], np.array([0, 0, 0, 0], np.uint8)])
def test_integer_zero_one_rows_of_batch_length_are_refused_as_ambiguous(built, rows):
    before = _snapshot(built)
    with pytest.raises(ValueError, match="ambiguous.*np.flatnonzero"):
        reset_rows(built, rows)

    @tf.function
    def traced():
        reset_rows(built, rows)

    with pytest.raises(ValueError, match="ambiguous"):
        traced()
    _assert_same(get_states(built), before)


def test_integer_tensor_rows_are_refused_eagerly_and_in_graph(built):
    before = _snapshot(built)
    with pytest.raises(TypeError, match="lstm0.*boolean mask"):
        reset_rows(built, tf.constant([1, 0, 0, 1]))
    with pytest.raises(TypeError, match="lstm0.*boolean mask"):
        tf.function(lambda rows: reset_rows(built, rows))(tf.constant([1, 0, 0, 1]))
    _assert_same(get_states(built), before)


def test_empty_rows_select_nothing(built):
    before = _snapshot(built)
    reset_rows(built, [])
    reset_rows(built, np.array([], np.int64))
    _assert_same(get_states(built), before)


def test_object_arrays_name_the_layer(built):
    before = _snapshot(built)
    bad = np.array([[None] * U] * B, dtype=object)
    with pytest.raises(TypeError, match="state 0 of layer 'lstm1'.*float"):
        reset_states(built, [[np.zeros((B, U))] * 2, [bad, np.zeros((B, U))]])
    with pytest.raises(TypeError, match="lstm0"):
        reset_rows(built, np.array([object(), 1], dtype=object))
    _assert_same(get_states(built), before)
