"""FusedLSTM: ``keras.layers.LSTM`` with an unroll close to its matrix arithmetic.

Keras runs an LSTM as its cell's ``call`` once per timestep inside a ``while_loop``, with
TensorFlow's automatic gradient of that loop. This layer keeps the layer, its weights and
its state variables, and replaces the loop (:meth:`FusedLSTM.inner_loop`)::

    forward    xp = x @ kernel + bias              one matmul for all T steps
               for t in range(T):                  tf.while_loop
                   z = xp[t] + h @ recurrent_kernel           one matmul per step
                   i, f, o, g = sigmoid(z) (g's columns pre-scaled: tanh(x) = 2 sigmoid(2x) - 1)
                   c, h = where(valid_t, (f c + i g, o tanh(c)), (c, h))
    backward   for t in reversed(range(T)):       one matmul per step (dz @ recurrent_kernel^T)
               d recurrent_kernel = H_prev^T @ dZ  one matmul for all T steps
               d kernel, d bias, d x               autodiff of the projection: one matmul each

Same numbers, weights and state variables as ``keras.layers.LSTM`` (``tests/test_lstm.py``).
A masked batch always takes the fused loop, never cuDNN, which refuses masks that are not
right-padded; an unmasked one skips the ``where`` and, on a GPU, takes Keras's own cuDNN
path (docs/network.md). Configurations the fused loop does not cover (dropout, other
activations, no bias, ``go_backwards``, ``unroll``) run Keras's generic loop.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
from typing import Any, Iterator

import keras
import tensorflow as tf

__all__ = ["FusedLSTM", "all_steps_valid"]

_ALL_VALID: contextvars.ContextVar[bool] = contextvars.ContextVar("r2d2_state_all_steps_valid", default=False)


@contextlib.contextmanager
def all_steps_valid(enabled: bool = True) -> Iterator[None]:
    """Inside this block, :class:`FusedLSTM` layers ignore their mask: the caller promises
    every step it feeds is valid (e.g. a learner's trained trace, which starts after the
    burn-in that holds all front padding). ``enabled=False``: a block without effect.

    Read when a layer is called (traced): inside a ``tf.function`` the promise holds for
    every later call of that trace. It saves the masked branch, the ``tf.cond`` between
    the branches and their gradients (with the same numbers: an all-true mask takes the
    unmasked branch anyway).
    """
    if not enabled:
        yield
        return
    token = _ALL_VALID.set(True)
    try:
        yield
    finally:
        _ALL_VALID.reset(token)


@keras.saving.register_keras_serializable(package="r2d2_state")
class FusedLSTM(keras.layers.LSTM):
    """``keras.layers.LSTM`` whose recurrent loop is the fused one of this module.

    Attributes:
      loop_log: the last 64 ``(branch, loop)`` pairs, one appended each time a loop is
        traced (eager calls trace every time): branch ``"masked"`` or ``"unmasked"``, loop ``"fused"``,
        ``"keras"`` (``keras.layers.LSTM.inner_loop``, which takes cuDNN on a GPU) or
        ``"generic"`` (``keras.layers.RNN.inner_loop``, never cuDNN). For tests.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.loop_log: collections.deque[tuple[str, str]] = collections.deque(maxlen=64)

    @staticmethod
    def gpu_available() -> bool:
        """Whether a GPU is visible (then the unmasked path may take cuDNN)."""
        return bool(tf.config.list_logical_devices("GPU"))

    def fused_supported(self, sequences: Any = None) -> bool:
        """The fused loop covers this configuration (default activations, bias, no dropout)
        and these sequences (a static number of steps; the batch may be dynamic)."""
        cell = self.cell
        return ((sequences is None or sequences.shape[1] is not None)
                and cell.activation is keras.activations.tanh
                and cell.recurrent_activation is keras.activations.sigmoid
                and cell.use_bias and not cell.dropout and not cell.recurrent_dropout
                and not self.go_backwards and not self.unroll)

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if mask is None or _ALL_VALID.get():
            return self._unmasked(sequences, initial_state, training)
        mask = tf.cast(mask, tf.bool)
        if sequences.shape[1] == 1 and self.fused_supported(sequences):
            # One step (the actor): the masked step costs what the unmasked one does, and
            # a branch on the mask would cost more than either.
            self.loop_log.append(("masked", "fused"))
            return self._single_step(sequences, initial_state, mask)
        # Same structure from both branches (Keras's loops return the states as a tuple).
        same = lambda out: (out[0], out[1], list(out[2]))  # noqa: E731
        return tf.cond(
            tf.reduce_all(mask),
            lambda: same(self._unmasked(sequences, initial_state, training)),
            lambda: same(self._masked(sequences, initial_state, mask, training)),
        )

    # ------------------------------------------------------------------ branches

    def _single_step(self, sequences, initial_state, mask):
        """T = 1 in the fewest ops: Keras's weight layout as is, no transposes."""
        h0, c0 = initial_state
        cell = self.cell
        z = tf.matmul(sequences[:, 0], cell.kernel) + tf.matmul(h0, cell.recurrent_kernel) + cell.bias
        i, f, g, o = tf.split(z, 4, axis=-1)
        c = tf.sigmoid(f) * c0 + tf.sigmoid(i) * tf.tanh(g)
        h = tf.sigmoid(o) * tf.tanh(c)
        v = tf.cast(mask[:, :1], h.dtype)  # [B, 1]
        h, c = h0 + v * (h - h0), c0 + v * (c - c0)
        out = h * v  # Keras: a masked first step outputs zeros
        return out, out[:, None], [h, c]

    def _unmasked(self, sequences, initial_state, training):
        if self.use_cudnn in ("auto", True) and self.gpu_available():
            self.loop_log.append(("unmasked", "keras"))
            return keras.layers.LSTM.inner_loop(self, sequences, initial_state, None, training=training)
        if not self.fused_supported(sequences):
            self.loop_log.append(("unmasked", "generic"))
            return keras.layers.RNN.inner_loop(self, sequences, initial_state, None, training=training)
        self.loop_log.append(("unmasked", "fused"))
        return self._fused(sequences, initial_state, None)

    def _masked(self, sequences, initial_state, mask, training):
        if not self.fused_supported(sequences):
            self.loop_log.append(("masked", "generic"))
            return keras.layers.RNN.inner_loop(self, sequences, initial_state, mask, training=training)
        self.loop_log.append(("masked", "fused"))
        return self._fused(sequences, initial_state, mask)

    def _fused(self, sequences, initial_state, mask):
        """Keras's ``inner_loop`` contract: ``(last_output, outputs [B, T, U], [h, c])``."""
        # Snapshots: a stateful layer's initial state may be its state variables, which
        # are assigned the final state before the gradient reads h0 and c0.
        h0, c0 = (tf.identity(s) for s in initial_state)
        units = self.units
        x = tf.convert_to_tensor(sequences)
        dtype = x.dtype
        # tanh(x) = 2 sigmoid(2x) - 1: scaling the g columns by 2 lets one sigmoid
        # activate all four gates; the columns are reordered to i, f, o, g.
        kernel = _to_ifog(tf.convert_to_tensor(self.cell.kernel), units)
        recurrent = _to_ifog(tf.convert_to_tensor(self.cell.recurrent_kernel), units)
        bias = _to_ifog(tf.convert_to_tensor(self.cell.bias), units)
        steps, features = x.shape[1], x.shape[2]
        # [T, B, 4U], time-major. A plain 2-D matmul: einsum's gradient costs more here.
        x_tb = tf.reshape(tf.transpose(x, [1, 0, 2]), [-1, features])
        # The static step count keeps T static when the batch is dynamic (the loop needs it).
        xp = tf.reshape(tf.matmul(x_tb, kernel) + bias, [steps, tf.shape(x)[0], 4 * units])
        valid = None if mask is None else tf.transpose(tf.cast(mask, dtype))[..., None]  # [T, B, 1]
        if steps == 1:  # the actor's case: no loop at all
            h, c = _cell(xp[0], h0, c0, recurrent, units)
            if valid is not None:
                h, c = h0 + valid[0] * (h - h0), c0 + valid[0] * (c - c0)
            hs = h[None]
        else:
            if valid is None:
                hs, h, c = _unroll(xp, h0, c0, recurrent)
            else:
                hs, h, c = _unroll_masked(xp, h0, c0, recurrent, valid)
        if valid is not None:
            # Keras's masked outputs repeat the previous output and start from zeros:
            # before a row's first valid step its output is 0, after it the carried h.
            seen = tf.cast(tf.cumsum(valid, axis=0) > 0, dtype)
            hs = hs * seen
        outputs = tf.transpose(hs, [1, 0, 2])
        return hs[-1], outputs, [h, c]


def _to_ifog(weights: tf.Tensor, units: int) -> tf.Tensor:
    """Keras's gate order i, f, c(g), o on the last axis -> i, f, o, 2 g."""
    i, f, g, o = tf.split(weights, 4, axis=-1)
    return tf.concat([i, f, o, 2.0 * g], axis=-1)


def _cell(xp_t, h, c, recurrent, units):
    """One step on ifo(2g)-ordered pre-activations."""
    a = tf.sigmoid(xp_t + tf.matmul(h, recurrent))
    i, f, o, s = tf.split(a, 4, axis=-1)
    c = f * c + i * (2.0 * s - 1.0)
    return o * tf.tanh(c), c


MAX_STEPS_PER_ITERATION = 8
"""Timesteps per ``while_loop`` iteration for small layers (the largest divisor of T up to
this): each iteration has a fixed cost in TensorFlow's executor, comparable to a step's
arithmetic at 64 units on a CPU."""

UNROLL_MAX_UNITS = 128
"""Wider layers run one step per iteration: there the iteration's cost is small next to
the step's matmul, and stacking several steps' gate activations costs more (measured:
docs/benchmarks.md, the ``FusedLSTM`` rows)."""


INLINE_MAX_STEPS = 32
"""Sequences of at most this many steps (small layers) run as straight-line ops without a
``while_loop``: building a loop, its body and its TensorArrays is most of the tracing
time of a short-sequence learner step, and running it has a fixed cost per iteration."""


def _steps_per_iteration(steps: int | None, units: int) -> int:
    if steps is None or units > UNROLL_MAX_UNITS:
        return 1
    if steps <= INLINE_MAX_STEPS:
        return steps
    return max(k for k in range(1, MAX_STEPS_PER_ITERATION + 1) if steps % k == 0)


def _chunks(x: tf.Tensor, k: int) -> tf.TensorArray:
    """[T, ...] -> TensorArray of T / k elements [k, ...]."""
    shape = x.shape[1:]
    return tf.TensorArray(x.dtype, size=x.shape[0] // k, element_shape=(k,) + tuple(shape)).unstack(
        tf.reshape(x, tf.concat([[-1, k], _dims(x)[1:]], axis=0)))


def _dims(x: tf.Tensor) -> list:
    """x's shape with the static dimensions as ints and the dynamic ones (the batch) as tensors."""
    return [d if d is not None else tf.shape(x)[i] for i, d in enumerate(x.shape)]


def _stacked(ta: tf.TensorArray, like: tf.Tensor) -> tf.Tensor:
    return tf.reshape(ta.stack(), tf.concat([[-1], _dims(like)[1:]], axis=0))


def _forward(xp, h0, c0, recurrent, valid):
    """The forward recurrence. Returns H [T, B, U] (carried h), A [T, B, 4U] (gate
    activations, g as sigmoid(2 z_g)), C [T, B, U] (carried c), h_T, c_T."""
    steps = xp.shape[0]
    k = _steps_per_iteration(steps, h0.shape[-1])
    iterations = steps // k
    dtype = xp.dtype

    def run(h, c, x_k, v_k):
        """``len(x_k)`` steps from (h, c): their H, A, C stacked, and the last h, c."""
        h_out, a_out, c_out = [], [], []
        for j in range(len(x_k)):
            a = tf.sigmoid(x_k[j] + tf.matmul(h, recurrent))
            i, f, o, s = tf.split(a, 4, axis=-1)
            c_new = f * c + i * (2.0 * s - 1.0)
            h_new = o * tf.tanh(c_new)
            if v_k is not None:
                c_new = c + v_k[j] * (c_new - c)
                h_new = h + v_k[j] * (h_new - h)
            h, c = h_new, c_new
            h_out.append(h)
            a_out.append(a)
            c_out.append(c)
        return tf.stack(h_out), tf.stack(a_out), tf.stack(c_out), h, c

    if iterations == 1:
        # Short sequences: straight-line ops, no loop to build or run.
        return run(h0, c0, tf.unstack(xp), None if valid is None else tf.unstack(valid))

    xs = _chunks(xp, k)
    vs = None if valid is None else _chunks(valid, k)

    def body(t, h, c, hs, acts, cs):
        h_k, a_k, c_k, h, c = run(h, c, tf.unstack(xs.read(t)), None if vs is None else tf.unstack(vs.read(t)))
        return t + 1, h, c, hs.write(t, h_k), acts.write(t, a_k), cs.write(t, c_k)

    def ta(like):
        return tf.TensorArray(dtype, size=iterations, element_shape=(k,) + tuple(like.shape))

    _, h, c, hs, acts, cs = tf.while_loop(
        lambda t, *_: t < iterations, body,
        (tf.constant(0), h0, c0, ta(h0), ta(xp[0]), ta(c0)),
        parallel_iterations=1)
    return _stacked(hs, xp[..., :h0.shape[-1]]), _stacked(acts, xp), _stacked(cs, xp[..., :h0.shape[-1]]), h, c


def _backward(dH, dh, dc, A, C, C_prev, recurrent, valid):
    """Reverse recurrence: dZ [T, B, 4U] (ifo(2g) pre-activations), dh_0, dc_0."""
    steps = dH.shape[0]
    k = _steps_per_iteration(steps, dH.shape[-1])
    iterations = steps // k
    recurrent_t = tf.transpose(recurrent)

    def run(dh, dc, dH_k, A_k, C_k, Cp_k, v_k):
        dz_out = [None] * len(dH_k)
        for j in reversed(range(len(dH_k))):
            dh = dh + dH_k[j]
            a = A_k[j]
            i, f, o, s = tf.split(a, 4, axis=-1)
            if v_k is not None:
                v = v_k[j]
                dh_keep, dc_keep = dh * (1.0 - v), dc * (1.0 - v)
                dh, dc = dh * v, dc * v
            tc = tf.tanh(C_k[j])
            dc = dc + dh * o * (1.0 - tc * tc)
            g = 2.0 * s - 1.0
            # d pre-activation of each gate; g's column was scaled by 2: d sigmoid(2z) = 2 s (1 - s).
            dz = tf.concat([dc * g, dc * Cp_k[j], dh * tc, dc * i * 2.0], axis=-1) * a * (1.0 - a)
            dh = tf.matmul(dz, recurrent_t)
            dc = dc * f
            if v_k is not None:
                dh, dc = dh + dh_keep, dc + dc_keep
            dz_out[j] = dz
        return tf.stack(dz_out), dh, dc

    if iterations == 1:
        return run(dh, dc, *(tf.unstack(x) for x in (dH, A, C, C_prev)),
                   None if valid is None else tf.unstack(valid))

    dHs, As, Cs, Cps = _chunks(dH, k), _chunks(A, k), _chunks(C, k), _chunks(C_prev, k)
    vs = None if valid is None else _chunks(valid, k)

    def body(t, dh, dc, dzs):
        dz_k, dh, dc = run(dh, dc, *(tf.unstack(ta.read(t)) for ta in (dHs, As, Cs, Cps)),
                           None if vs is None else tf.unstack(vs.read(t)))
        return t - 1, dh, dc, dzs.write(t, dz_k)

    _, dh0, dc0, dzs = tf.while_loop(
        lambda t, *_: t >= 0, body,
        (tf.constant(iterations - 1), dh, dc,
         tf.TensorArray(dH.dtype, size=iterations, element_shape=(k,) + tuple(A.shape[1:]))),
        parallel_iterations=1)
    return _stacked(dzs, A), dh0, dc0


def _make_unroll(masked: bool):
    def unroll(xp, h0, c0, recurrent, *valid):
        v = valid[0] if masked else None

        @tf.custom_gradient
        def run(xp, h0, c0, recurrent):
            hs, acts, cs, h, c = _forward(xp, h0, c0, recurrent, v)

            def grad(dH, dh, dc):
                dH = tf.zeros_like(hs) if dH is None else dH
                dh = tf.zeros_like(h) if dh is None else dh
                dc = tf.zeros_like(c) if dc is None else dc
                c_prev = tf.concat([c0[None], cs[:-1]], axis=0)
                dZ, dh0, dc0 = _backward(dH, dh, dc, acts, cs, c_prev, recurrent, v)
                h_prev = tf.concat([h0[None], hs[:-1]], axis=0)
                d_recurrent = tf.matmul(tf.reshape(h_prev, [-1, h_prev.shape[-1]]),
                                        tf.reshape(dZ, [-1, dZ.shape[-1]]), transpose_a=True)
                return dZ, dh0, dc0, d_recurrent

            return (hs, h, c), grad

        return run(xp, h0, c0, recurrent)

    return unroll


_unroll = _make_unroll(False)
_unroll_masked_impl = _make_unroll(True)


def _unroll_masked(xp, h0, c0, recurrent, valid):
    return _unroll_masked_impl(xp, h0, c0, recurrent, valid)
