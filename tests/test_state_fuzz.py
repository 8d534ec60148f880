"""Random malformed inputs against the state API (``reset_states`` / ``reset_rows``):
every call either works or raises a clear error (ValueError / TypeError / IndexError with
a message naming the layer or the value), and a call that raises leaves every state as
it was. Bounded and derandomized, so it runs in seconds in the suite."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from r2d2_state.state import get_states, reset_rows, reset_states  # noqa: E402

B, F, U = 3, 2, 4
CLEAR_ERRORS = (ValueError, TypeError, IndexError)
EXAMPLES = int(os.environ.get("R2D2_FUZZ_EXAMPLES", "120"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
_MODEL = []


def model():
    if not _MODEL:
        import keras

        inp = keras.Input(batch_shape=(B, None, F))
        h = keras.layers.LSTM(U, stateful=True, return_sequences=True, name="lstm0")(inp)
        h = keras.layers.GRU(U, stateful=True, return_sequences=True, name="gru1")(h)
        net = keras.Model(inp, h)
        net(np.zeros((B, 1, F), np.float32))
        _MODEL.append(net)
    return _MODEL[0]


DTYPES = ["float32", "float64", "float16", "int32", "bool", "complex64", "object", "U2"]


@st.composite
def state_arrays(draw):
    kind = draw(st.sampled_from(["good", "good", "shape", "dtype", "other"]))
    shape = (B, U)
    if kind == "shape":
        shape = draw(st.sampled_from([(B + 1, U), (B, U + 1), (U,), (B, U, 1), (), (0, U)]))
    dtype = np.dtype(draw(st.sampled_from(DTYPES))) if kind == "dtype" else np.dtype("float32")
    if kind == "other":
        return draw(st.sampled_from([None, "h", 1.5, [1.0, 2.0], {"h": 1}]))
    if dtype.kind in "OU":
        return np.zeros(shape, dtype)
    with np.errstate(all="ignore"):
        return np.asarray(draw(st.sampled_from([0.0, 1.0, -2.5, 3e38])) * np.ones(shape)).astype(dtype)


@st.composite
def structures(draw):
    layout = draw(st.sampled_from(["full", "full", "array4", "short", "long", "flat", "tuple"]))
    if layout == "array4":
        return draw(state_arrays())
    lstm = [draw(state_arrays()), draw(state_arrays())]
    gru = [draw(state_arrays())]
    if layout == "short":
        return [lstm]
    if layout == "long":
        return [lstm, gru, gru]
    if layout == "flat":
        return lstm + gru
    if layout == "tuple":
        return (tuple(lstm), gru[0])
    return [lstm, gru]


@st.composite
def rows(draw):
    return draw(st.one_of(
        st.lists(st.integers(-B - 1, B + 1), max_size=B + 1),
        st.lists(st.booleans(), min_size=0, max_size=B + 1).map(lambda x: np.asarray(x, bool)),
        st.lists(st.integers(0, 1), min_size=B, max_size=B).map(np.asarray),
        st.sampled_from([[], np.array([], np.float64), np.array([0.0, 1.0]), "0", None, 1, np.array([[0]]),
                         np.array([object()], dtype=object), [True, 0, 2]]),
    ))


def _snapshot():
    return [[s.copy() for s in layer] for layer in get_states(model())]


def _same(before) -> None:
    for a_layer, b_layer in zip(get_states(model()), before):
        for a, b in zip(a_layer, b_layer):
            np.testing.assert_array_equal(a, b)


def _call(fn, *args):
    reset_states(model(), [[np.full((B, U), 0.5, np.float32)] * 2, [np.full((B, U), -0.5, np.float32)]])
    before = _snapshot()
    try:
        fn(model(), *args)
    except CLEAR_ERRORS as error:
        names = ("lstm0", "gru1", model().name)
        assert any(name in str(error) for name in names), f"the error names no layer: {error!r}"
        _same(before)
        return False
    for layer in get_states(model()):
        for s in layer:
            assert s.shape == (B, U) and s.dtype == np.float32
    return True


@FUZZ
@given(states=structures())
def test_reset_states_fuzz(states):
    _call(reset_states, states)


@FUZZ
@given(selected=rows(), states=st.one_of(st.none(), structures()))
def test_reset_rows_fuzz(selected, states):
    _call(reset_rows, selected, states)
