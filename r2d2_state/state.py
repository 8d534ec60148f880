"""Read and write the recurrent state of stateful Keras 3 layers and models.

Keras 3 removed ``layer.reset_states(states=[h, c])`` (``reset_state()`` only zeroes) and
``keras.Model`` has no ``reset_states`` at all. :func:`get_states`, :func:`reset_states`
and :func:`reset_rows` give back those semantics for any model or layer that holds stateful
recurrent layers (``LSTM``, ``GRU``, ``SimpleRNN``, ``keras.layers.RNN`` over cells, also
inside nested models and ``Bidirectional``), eagerly and inside ``tf.function``.

Layout: a list over the stateful recurrent layers in model order, each the list of that
layer's state arrays ``[batch, units]`` (``[h, c]`` for an LSTM, ``[h]`` for a GRU or
SimpleRNN); for a stack of LSTMs ``np.asarray(get_states(model))`` is
``[num_layers, 2, batch, units]``, and ``reset_states`` accepts that array back.

Every write validates the whole structure (nesting, shapes, dtypes) before it assigns
anything, so a bad call raises and leaves every state as it was (docs/state_api.md).
"""

from __future__ import annotations

from typing import Any, Iterator

import keras
import numpy as np

__all__ = [
    "recurrent_layers",
    "stateful_layers",
    "get_states",
    "reset_states",
    "reset_rows",
    "state_shapes",
    "zero_states",
]


def recurrent_layers(model_or_layer: keras.layers.Layer) -> list[keras.layers.RNN]:
    """All recurrent layers (stateful or not) of a model or layer, in model order."""
    return [layer for layer in _walk(model_or_layer) if isinstance(layer, keras.layers.RNN)]


def stateful_layers(model_or_layer: keras.layers.Layer) -> list[keras.layers.RNN]:
    """The stateful recurrent layers whose state this module reads and writes.

    Raises:
      TypeError: ``model_or_layer`` is not a Keras layer or model.
      ValueError: it holds no stateful recurrent layer, it is itself a
        stateless recurrent layer (Keras 3 would silently ignore a reset
        there), or a stateful layer is not built yet.
    """
    if not isinstance(model_or_layer, keras.layers.Layer):
        raise TypeError(
            f"expected a keras.Model or keras.layers.Layer, got {type(model_or_layer).__name__}"
        )
    if isinstance(model_or_layer, keras.layers.RNN) and not model_or_layer.stateful:
        raise ValueError(
            f"layer {model_or_layer.name!r} is not stateful: its state cannot be read or set. "
            "Build it with stateful=True and a static batch size "
            "(keras.Input(batch_shape=(batch, None, features))), or pass the state as "
            "initial_state= when calling it."
        )
    found = [layer for layer in recurrent_layers(model_or_layer) if layer.stateful]
    if not found:
        raise ValueError(
            f"{model_or_layer.name!r} has no stateful recurrent layer "
            f"(recurrent layers found: {[l.name for l in recurrent_layers(model_or_layer)]}); "
            "expected at least one LSTM/GRU/SimpleRNN/RNN with stateful=True"
        )
    for layer in found:
        if layer.states is None or any(s is None for s in _as_list(layer.states)):
            raise ValueError(
                f"stateful layer {layer.name!r} is not built: call the model once or build it "
                "with a static batch size before reading or setting its state"
            )
    return found


def state_shapes(model_or_layer: keras.layers.Layer) -> list[list[tuple[int, ...]]]:
    """Shapes of the states, in the layout of :func:`get_states`."""
    return [[tuple(int(d) for d in v.shape) for v in _as_list(layer.states)]
            for layer in stateful_layers(model_or_layer)]


def zero_states(model_or_layer: keras.layers.Layer, batch_size: int | None = None,
                dtype: Any = np.float32) -> list[list[np.ndarray]]:
    """Zeros in the layout of :func:`get_states`, optionally for another batch size."""
    shapes = state_shapes(model_or_layer)
    return [[np.zeros(((batch_size if batch_size is not None else s[0]),) + s[1:], dtype)
             for s in layer] for layer in shapes]


def get_states(model_or_layer: keras.layers.Layer) -> list[list[Any]]:
    """The current states of every stateful recurrent layer, in model order.

    Returns:
      A list over stateful recurrent layers, each a list of arrays ``[batch,
      units]`` (``[h, c]`` for LSTM, ``[h]`` for GRU/SimpleRNN). Eagerly these
      are numpy copies, not views of the variables; inside ``tf.function`` they
      are tensors holding the values read at that point of the graph.
    """
    layers = stateful_layers(model_or_layer)
    if _executing_eagerly():
        return [[np.array(keras.ops.convert_to_numpy(v.value)) for v in _as_list(layer.states)]
                for layer in layers]
    return [[keras.ops.copy(v.value) for v in _as_list(layer.states)] for layer in layers]


def reset_states(model_or_layer: keras.layers.Layer, states: Any = None) -> None:
    """Set the state of every stateful recurrent layer (Keras 2's ``reset_states(states)``).

    Args:
      model_or_layer: a model or a single stateful recurrent layer.
      states: ``None`` for zeros. Otherwise the structure :func:`get_states`
        returns (a list over layers of lists of ``[batch, units]`` arrays), or
        an array ``[num_layers, num_states, batch, units]``. A single layer also
        takes its own list (``[h, c]``) and, when it has one state, the bare
        array ``h``. Any float dtype; values are cast to the variable's dtype.

    Raises:
      ValueError / TypeError naming the layer and the expected vs given shape.
      Nothing is assigned unless the whole structure is valid.
    """
    layers = stateful_layers(model_or_layer)
    if states is None:
        for layer in layers:
            for var in _as_list(layer.states):
                var.assign(keras.ops.zeros(var.shape, dtype=var.dtype))
        return
    per_layer = _normalize(model_or_layer, layers, states)
    checked = [(layer, i, var, _checked_value(layer, i, var, value))
               for layer, values in zip(layers, per_layer)
               for i, (var, value) in enumerate(zip(_as_list(layer.states), values))]
    values = _guard_dynamic_shapes(checked)
    for (_, _, var, _), value in zip(checked, values):
        var.assign(value)


def reset_rows(model_or_layer: keras.layers.Layer, rows: Any, states: Any = None) -> None:
    """Set the state of some batch rows only (e.g. the envs that began a new episode).

    Args:
      rows: a boolean mask ``[batch]`` (a numpy array or a tensor, also inside
        ``tf.function``) or integer row indices (a list or numpy array; ``[]`` selects
        no row). Integer rows of length ``batch`` holding only 0 and 1 are refused as
        ambiguous (a 0/1 mask or indices?), and so is an integer tensor: pass a bool
        mask or ``np.flatnonzero(mask)``.
      states: ``None`` for zeros. Otherwise the :func:`get_states` structure
        with every array ``[batch, units]``; only the selected rows are taken
        from it, the other rows keep their current values. This full-batch form
        keeps shapes static, so a ``tf.function`` that resets rows never retraces.

    Rows not selected are left untouched. Validation happens before any write.
    """
    layers = stateful_layers(model_or_layer)
    batch = int(_as_list(layers[0].states)[0].shape[0])
    mask = _row_mask(rows, batch, layers[0].name)
    per_layer = (None if states is None else _normalize(model_or_layer, layers, states))
    checked = []
    for li, layer in enumerate(layers):
        for i, var in enumerate(_as_list(layer.states)):
            if per_layer is None:
                new = keras.ops.zeros(var.shape, dtype=var.dtype)
            else:
                new = _checked_value(layer, i, var, per_layer[li][i])
            checked.append((layer, i, var, new))
    mask, *values = _guard_dynamic_shapes(checked, mask=(mask, batch, layers[0].name))
    for (_, _, var, _), new in zip(checked, values):
        keep = keras.ops.reshape(mask, (-1,) + (1,) * (len(var.shape) - 1))
        var.assign(keras.ops.where(keep, new, var.value))


# --------------------------------------------------------------------------- helpers


def _walk(layer: keras.layers.Layer) -> Iterator[keras.layers.Layer]:
    """Depth-first over a layer and its sublayers, in the order they were added."""
    yield layer
    children: list[keras.layers.Layer] = []
    if isinstance(layer, keras.layers.Bidirectional):
        children = [layer.forward_layer, layer.backward_layer]
    elif isinstance(layer, keras.layers.RNN):
        children = []  # cells hold no state variables of their own
    elif hasattr(layer, "layers") and isinstance(getattr(layer, "layers"), (list, tuple)):
        children = list(layer.layers)
    elif isinstance(getattr(layer, "layer", None), keras.layers.Layer):
        children = [layer.layer]  # Wrapper (TimeDistributed, ...)
    seen = {id(layer)}
    for child in children:
        if id(child) in seen:
            continue
        seen.add(id(child))
        yield from _walk(child)


def _as_list(states: Any) -> list[Any]:
    return list(states) if isinstance(states, (list, tuple)) else [states]


def _executing_eagerly() -> bool:
    if keras.config.backend() == "tensorflow":
        import tensorflow as tf  # local: only the TF backend has graph mode

        return tf.executing_eagerly()
    return True


def _is_array(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


def _shape(x: Any) -> tuple:
    return tuple(None if d is None else int(d) for d in x.shape)


def _normalize(target: keras.layers.Layer, layers: list[keras.layers.RNN], states: Any) -> list[list[Any]]:
    """Bring any accepted form of ``states`` to a list over layers of lists of arrays."""
    counts = [len(_as_list(layer.states)) for layer in layers]
    single = isinstance(target, keras.layers.RNN)
    if _is_array(states):
        shape = _shape(states)
        if single and counts[0] == 1 and len(shape) == 2:
            return [[states]]
        if single and len(shape) == 3:  # [num_states, batch, units] for one layer
            states = states[None]
            shape = _shape(states)
        if len(shape) != 4:
            raise ValueError(
                f"states array for {target.name!r} has shape {shape}; expected "
                f"[num_layers={len(layers)}, num_states={counts[0]}, batch, units]"
            )
        if shape[0] != len(layers) or any(shape[1] != c for c in counts):
            raise ValueError(
                f"states array for {target.name!r} has shape {shape}; expected "
                f"[num_layers={len(layers)}, num_states={counts[0]}, batch, units] "
                f"(states per layer: {counts})"
            )
        return [[states[i, j] for j in range(counts[i])] for i in range(len(layers))]
    if not isinstance(states, (list, tuple)):
        raise TypeError(
            f"states for {target.name!r} must be None, an array or a list; got {type(states).__name__}"
        )
    if single and len(states) == counts[0] and all(_is_array(s) for s in states):
        return [list(states)]  # a single layer's own [h, c]
    if len(states) != len(layers):
        raise ValueError(
            f"states for {target.name!r} cover {len(states)} layers; expected one entry per "
            f"stateful recurrent layer: {len(layers)} ({[l.name for l in layers]})"
        )
    out = []
    for layer, count, entry in zip(layers, counts, states):
        if _is_array(entry) and count == 1 and len(_shape(entry)) == 2:
            entry = [entry]
        if _is_array(entry) and len(_shape(entry)) == 3:
            entry = [entry[j] for j in range(_shape(entry)[0])]
        if not isinstance(entry, (list, tuple)) or len(entry) != count:
            got = (f"{len(entry)} arrays" if isinstance(entry, (list, tuple))
                   else type(entry).__name__)
            raise ValueError(
                f"states for layer {layer.name!r}: expected {count} arrays "
                f"({'[h, c]' if count == 2 else '[h]'}), got {got}"
            )
        out.append(list(entry))
    return out


def _checked_value(layer: keras.layers.RNN, index: int, var: Any, value: Any) -> Any:
    """Validate one state array against its variable and cast it to the variable's dtype."""
    if not _is_array(value):
        if isinstance(value, (list, tuple)):
            value = np.asarray(value)
        else:
            raise TypeError(
                f"state {index} of layer {layer.name!r}: expected an array of shape "
                f"{tuple(var.shape)}, got {type(value).__name__}"
            )
    dtype = _numpy_dtype(value)
    if dtype is None or not np.issubdtype(dtype, np.floating):
        raise TypeError(
            f"state {index} of layer {layer.name!r}: expected a float array, got dtype {value.dtype}"
        )
    expected = tuple(int(d) for d in var.shape)
    given = _shape(value)
    if len(given) != len(expected) or any(g is not None and g != e for g, e in zip(given, expected)):
        raise ValueError(
            f"state {index} of layer {layer.name!r}: expected shape {expected} "
            f"(batch, units), got {given}"
        )
    return keras.ops.cast(value, var.dtype)


def _numpy_dtype(x: Any) -> np.dtype | None:
    """The numpy dtype of an array or tensor; None for dtypes Keras does not know (object, str)."""
    try:
        return np.dtype(keras.backend.standardize_dtype(x.dtype))
    except (ValueError, TypeError):
        return None


def _guard_dynamic_shapes(checked: list[tuple], mask: tuple | None = None) -> list[Any]:
    """The values of ``checked`` [(layer, index, variable, value)], after ``mask``'s value,
    each made to depend on a run-time shape check of *every* value.

    Inside ``tf.function`` a value may have a dynamic batch (``[None, units]``), which
    passes the trace-time check; without this guard the first layer's assignment could
    run before a later layer's wrong batch fails. Every value with an unknown dimension
    goes through ``tf.ensure_shape`` (an ``InvalidArgumentError`` "Shape of tensor ...
    [5,5] is not compatible with expected shape [4,5]"), and all values then pass through
    one ``tf.identity_n``, which runs only when every check has passed. This must be a
    data dependency: Grappler's constant folding drops control dependencies on asserts
    whose shapes it learns when the function runs.
    """
    values = ([mask[0]] if mask is not None else []) + [value for *_, value in checked]
    if _executing_eagerly():
        return values
    import tensorflow as tf

    guarded, dynamic = [], False
    if mask is not None:
        mask_value, batch, _ = mask
        if any(d is None for d in _shape(mask_value)):
            dynamic = True
            mask_value = tf.ensure_shape(mask_value, (batch,))
        guarded.append(mask_value)
    for layer, index, var, value in checked:
        if any(d is None for d in _shape(value)):
            dynamic = True
            value = tf.ensure_shape(value, tuple(int(d) for d in var.shape))
        guarded.append(value)
    return tf.identity_n(guarded) if dynamic else values


def _row_mask(rows: Any, batch: int, layer_name: str) -> Any:
    """A boolean ``[batch]`` mask from a mask or from row indices, validated."""
    where = f"rows for layer {layer_name!r}"
    if _is_array(rows) and not isinstance(rows, np.ndarray):  # a tensor: only a bool mask
        dtype = _numpy_dtype(rows)
        if dtype != np.bool_:
            raise TypeError(
                f"{where}: a tensor must be a boolean mask of shape ({batch},), got dtype {rows.dtype} "
                "(pass integer indices as a list or numpy array)")
        given = _shape(rows)
        if len(given) != 1 or given[0] not in (None, batch) or (given[0] is None and _executing_eagerly()):
            raise ValueError(f"row mask for layer {layer_name!r}: expected shape ({batch},), got {given}")
        return keras.ops.convert_to_tensor(rows)
    try:
        index = np.asarray(rows)
    except (ValueError, TypeError) as error:
        raise TypeError(f"{where}: expected a boolean mask [{batch}] or integer indices, got {rows!r} "
                        f"({error})") from None
    if index.dtype == np.bool_:
        if index.shape != (batch,):
            raise ValueError(
                f"row mask for layer {layer_name!r}: expected shape ({batch},), got {index.shape}"
            )
        return keras.ops.convert_to_tensor(index)
    if index.size == 0 and index.ndim == 1:
        return keras.ops.convert_to_tensor(np.zeros(batch, dtype=bool))  # no row selected
    if index.ndim != 1 or index.dtype.kind not in "iu":
        raise TypeError(
            f"{where}: expected a boolean mask [{batch}] or integer indices, got {rows!r} "
            f"(dtype {index.dtype}, shape {index.shape})"
        )
    if index.min() < -batch or index.max() >= batch:
        raise IndexError(
            f"{where}: indices must be in [0, {batch}), got {index.tolist()}"
        )
    if index.shape == (batch,) and np.isin(index, (0, 1)).all():
        raise ValueError(
            f"{where}: {index.tolist()} is ambiguous (a 0/1 mask or row indices?); pass a boolean "
            f"mask (np.asarray(rows, bool)) or the row indices (np.flatnonzero(mask))"
        )
    mask = np.zeros(batch, dtype=bool)
    mask[index] = True
    return keras.ops.convert_to_tensor(mask)
