"""R2D2 learning targets: value rescaling, n-step double-Q targets, sequence priorities.

Pure TensorFlow functions in the rlax / SEED RL style: no state, no global flags, shapes in
the docstrings, batch-major tensors ``[B, L, ...]``.

Replayed sequence layout (``L = burn_in + trace + n_step``), all ``float32 [B, L]``::

    reward[t]    reward received after the action taken on observation t
    discount[t]  0.0 if the episode terminated after action t, else 1.0 (truncation keeps
                 1.0); 0.0 where step t is not a transition
    mask[t]      1.0 where step t is a transition (obs t was acted on, reward t received)
    valid[t]     1.0 where obs t is real: the transitions plus the episode's final
                 observation, always stored after the last transition

A sequence holding the end of an episode that was truncated after 3 transitions, with one
step of front padding (``P``) and tail padding after the final observation ``F``::

    t         0  1  2  3  4  5  6
    obs       P  o  o  o  F  P  P
    mask      0  1  1  1  0  0  0
    valid     0  1  1  1  1  0  0
    discount  0  1  1  1  0  0  0

An n-step window starting at a transition runs over consecutive transitions and is cut only
by the end of the episode: it then bootstraps from the observation right after the last
transition in the window (``F`` above, a real observation). After a termination the discount
is 0, so the bootstrap (and anything later) vanishes; after a truncation the discount is 1
and the bootstrap from ``F`` counts, as it must. Sequences carry an ``n``-step tail, so a
window is never cut by the end of the sequence (the DI-engine pitfall): targets are only
defined for ``t + n <= L - 1`` and are 0 elsewhere.

The learner and the actors' initial priorities call :func:`loss_and_priorities` (as SEED
RL's ``compute_loss_and_priorities_from_agent_outputs``), which composes the functions above
it: :func:`n_step_double_q_targets`, :func:`action_values`, :func:`trained_steps_weight`,
:func:`sequence_td_loss` and :func:`sequence_priorities`.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import tensorflow as tf

__all__ = [
    "value_rescale",
    "inverse_value_rescale",
    "action_values",
    "n_step_double_q_targets",
    "trained_steps_weight",
    "sequence_td_loss",
    "sequence_priorities",
    "LossAndPriorities",
    "loss_and_priorities",
]

DEFAULT_RESCALE_EPS = 1e-3


def _check_eps(eps: float) -> float:
    # eps is a hyper-parameter, not data: requiring a Python number keeps the eps == 0
    # behaviour and the validation out of the traced graph.
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"eps must be a Python float >= 0, got {eps!r}")
    if not math.isfinite(eps) or eps < 0.0:
        raise ValueError(f"eps must be a finite float >= 0, got {eps!r}")
    return float(eps)


def value_rescale(x: tf.Tensor, eps: float = DEFAULT_RESCALE_EPS) -> tf.Tensor:
    """h(x) = sign(x) (sqrt(|x| + 1) - 1) + eps x  (Pohlen et al. 2018, R2D2).

    Computed as ``sign(x) |x| / (sqrt(|x| + 1) + 1) + eps x``, the same function written
    without the cancellation of ``sqrt(|x| + 1) - 1`` for small ``|x|`` in float32.

    Args:
      x: float tensor of any shape.
      eps: Python float >= 0; eps = 0 gives the plain square-root squashing.

    Returns:
      Tensor of the shape and dtype of ``x``.
    """
    eps = _check_eps(eps)
    x = tf.convert_to_tensor(x)
    abs_x = tf.abs(x)
    return tf.sign(x) * abs_x / (tf.sqrt(abs_x + 1.0) + 1.0) + eps * x


def inverse_value_rescale(x: tf.Tensor, eps: float = DEFAULT_RESCALE_EPS) -> tf.Tensor:
    """Exact inverse of :func:`value_rescale`.

    h^-1(x) = sign(x) (((sqrt(1 + 4 eps (|x| + 1 + eps)) - 1) / (2 eps))^2 - 1).

    The inner fraction is evaluated as ``2 (|x| + 1 + eps) / (sqrt(1 + 4 eps (|x| + 1 + eps))
    + 1)`` (multiply numerator and denominator by the conjugate): algebraically identical,
    free of the ``sqrt(1 + small) - 1`` cancellation that costs ~1e-4 absolute error in
    float32 at eps = 1e-3, and defined at eps = 0, where it reduces to
    h^-1(x) = sign(x) ((|x| + 1)^2 - 1).

    Args:
      x: float tensor of any shape.
      eps: Python float >= 0, the same value given to :func:`value_rescale`.

    Returns:
      Tensor of the shape and dtype of ``x``.
    """
    eps = _check_eps(eps)
    x = tf.convert_to_tensor(x)
    abs_x = tf.abs(x)
    inner = abs_x + 1.0 + eps
    root = 2.0 * inner / (tf.sqrt(1.0 + 4.0 * eps * inner) + 1.0)  # = sqrt(|h^-1(x)| + 1)
    return tf.sign(x) * (tf.square(root) - 1.0)


def action_values(q: tf.Tensor, action: tf.Tensor) -> tf.Tensor:
    """q[b, t, action[b, t]].

    Args:
      q: <float32>[B, L, A].
      action: <int>[B, L]; any value in [0, A) on non-transition steps (their value is
        weighted out by the caller).

    Returns:
      <float32>[B, L].
    """
    return tf.gather(q, tf.cast(action, tf.int32), batch_dims=2)


def n_step_double_q_targets(
    q_online: tf.Tensor,
    q_target: tf.Tensor,
    reward: tf.Tensor,
    discount: tf.Tensor,
    mask: tf.Tensor,
    gamma: float,
    n: int,
    rescale: bool = True,
    eps: float = DEFAULT_RESCALE_EPS,
) -> tf.Tensor:
    """n-step double-Q targets with value rescaling, cut only by episode ends.

    For every t with ``mask[t] = 1`` and ``t + n <= L - 1``::

        m         = number of consecutive transitions starting at t, capped at n  (>= 1)
        a*        = argmax_a q_online[t + m, a]
        bootstrap = h^-1(q_target[t + m, a*])       (q_target[t + m, a*] if not rescale)
        G         = sum_{j<m} gamma^j (prod_{i<j} discount[t+i]) reward[t+j]
                    + gamma^m (prod_{i<m} discount[t+i]) bootstrap
        target    = h(G)                            (G if not rescale)

    Targets are 0 where ``mask[t] = 0`` and for the last ``n`` steps (whose window would
    need steps past the sequence), and carry no gradient. ``n`` is a Python int: the loop
    over the window is unrolled at trace time.

    Args:
      q_online: <float32>[B, L, A] online-network Q values (rescaled space if rescale),
        used only for the argmax.
      q_target: <float32>[B, L, A] target-network Q values (rescaled space if rescale).
      reward: <float32>[B, L].
      discount: <float32>[B, L], 0 after a termination, 1 otherwise.
      mask: <float32>[B, L], 1 on transitions.
      gamma: discount factor in [0, 1].
      n: window length, Python int >= 1.
      rescale: apply h^-1 to the bootstrap and h to the return.
      eps: rescaling epsilon (Python float >= 0).

    Returns:
      <float32>[B, L] targets.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a Python int >= 1, got {n!r}")
    if not 0.0 <= float(gamma) <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma!r}")
    if rescale:
        eps = _check_eps(eps)

    q_online = tf.convert_to_tensor(q_online, tf.float32)
    q_target = tf.convert_to_tensor(q_target, tf.float32)
    reward = tf.convert_to_tensor(reward, tf.float32)
    discount = tf.convert_to_tensor(discount, tf.float32)
    mask = tf.convert_to_tensor(mask, tf.float32)

    # Double Q at every step s: evaluate the online argmax with the target network. Only the
    # value at s = t + m is used for target t, so computing it once for all s is cheaper
    # than gathering per window.
    a_star = tf.argmax(q_online, axis=-1, output_type=tf.int32)  # [B, L]
    bootstrap = tf.gather(q_target, a_star, batch_dims=2)  # [B, L]
    if rescale:
        bootstrap = inverse_value_rescale(bootstrap, eps)

    length = tf.shape(reward)[1]
    num_t = tf.maximum(length - n, 0)  # windows that fit: t = 0 .. L - n - 1

    def window(x: tf.Tensor, j: int) -> tf.Tensor:
        # x[:, t + j] for t in [0, num_t).
        return x[:, j : j + num_t]

    ret = tf.zeros_like(window(reward, 0))
    scale = tf.ones_like(ret)  # gamma^j prod_{i<j} discount[t+i]
    in_run = tf.ones_like(ret)  # 1 while steps t .. t+j are all transitions
    for j in range(n):
        in_run = in_run * window(mask, j)
        ret += in_run * scale * window(reward, j)
        scale = scale * gamma * window(discount, j)
        # The run ends after step t+j if it is cut here by the episode's end or by n.
        ends_here = in_run * (1.0 - window(mask, j + 1)) if j + 1 < n else in_run
        # tf.where rather than a product: a bootstrap from a step that is not selected may be
        # anything (e.g. a padded observation), and 0 * inf would poison the sum.
        ret += tf.where(ends_here > 0.0, scale * window(bootstrap, j + 1), 0.0)

    targets = value_rescale(ret, eps) if rescale else ret
    targets = targets * window(mask, 0)
    targets = tf.pad(targets, [[0, 0], [0, length - num_t]])
    return tf.stop_gradient(targets)


def trained_steps_weight(mask: tf.Tensor, start: int, length: int) -> tf.Tensor:
    """mask restricted to the trained window [start, start + length).

    With full-length sequences this is ``start = burn_in, length = trace``: burn-in steps
    only warm up the state and the n-step tail only provides bootstrap values.

    Args:
      mask: <float32>[B, L].
      start: first trained step, Python int >= 0.
      length: number of trained steps, Python int >= 1, ``start + length <= L``.

    Returns:
      <float32>[B, L].
    """
    if start < 0 or length < 1:
        raise ValueError(f"need start >= 0 and length >= 1, got start={start!r}, length={length!r}")
    mask = tf.convert_to_tensor(mask, tf.float32)
    static_len = mask.shape[1]
    if static_len is not None and start + length > static_len:
        raise ValueError(
            f"trained window [{start}, {start + length}) exceeds the sequence length {static_len}"
        )
    steps = tf.range(tf.shape(mask)[1])
    window = tf.cast((steps >= start) & (steps < start + length), tf.float32)
    return mask * window[tf.newaxis, :]


def sequence_td_loss(
    q_taken: tf.Tensor,
    targets: tf.Tensor,
    weight: tf.Tensor,
    importance_weights: tf.Tensor | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """R2D2's loss: 0.5 td^2 summed over each sequence's trained steps, weighted, batch mean.

    ``loss = mean_b( w_b * sum_t weight[b, t] * 0.5 td[b, t]^2 )`` with ``w_b`` the
    prioritized-replay importance weight: the paper's definition (Kapturowski et al. 2019),
    as SEED RL and Acme compute it.

    Summing, not averaging, over time matters under Adam: dividing the gradient by the
    number of trained steps T acts like multiplying Adam's epsilon by T, and would give a
    step in a short sequence (an episode's end) T/k times the weight of a step in a full one.

    Args:
      q_taken: <float32>[B, L] Q of the taken actions (online network, gradient flows).
      targets: <float32>[B, L] from :func:`n_step_double_q_targets`.
      weight: <float32>[B, L] trained steps, e.g. from :func:`trained_steps_weight`.
      importance_weights: <float32>[B] prioritized-replay weights, or None for 1.

    Returns:
      (loss: <float32>[], abs_td: <float32>[B, L] = |td| * weight, no gradient).
    """
    td = tf.stop_gradient(targets) - q_taken
    weight = tf.convert_to_tensor(weight, tf.float32)
    per_sequence = tf.reduce_sum(0.5 * tf.square(td) * weight, axis=1)
    if importance_weights is not None:
        per_sequence = per_sequence * tf.convert_to_tensor(importance_weights, tf.float32)
    abs_td = tf.stop_gradient(tf.abs(td) * weight)
    return tf.reduce_mean(per_sequence), abs_td


def sequence_priorities(abs_td: tf.Tensor, mask: tf.Tensor, eta: float = 0.9) -> tf.Tensor:
    """R2D2 priority eta * max_t |td| + (1 - eta) * mean_t |td| over masked steps.

    A row with no masked step gets priority 0 (it holds nothing to learn from; the replay
    is expected to add its own small epsilon before exponentiation if it needs p > 0).

    Args:
      abs_td: <float32>[B, L] TD errors (absolute value is taken here anyway).
      mask: <float32>[B, L] steps that count (the trained steps), 0 or 1.
      eta: mixing weight in [0, 1].

    Returns:
      <float32>[B].
    """
    if not 0.0 <= float(eta) <= 1.0:
        raise ValueError(f"eta must be in [0, 1], got {eta!r}")
    abs_td = tf.abs(tf.convert_to_tensor(abs_td, tf.float32))
    mask = tf.convert_to_tensor(mask, tf.float32)
    counted = mask > 0.0
    # |td| >= 0, so 0 is a neutral element for the max and the empty row's max is 0.
    max_td = tf.reduce_max(tf.where(counted, abs_td, 0.0), axis=1)
    total = tf.reduce_sum(tf.where(counted, abs_td, 0.0), axis=1)
    count = tf.reduce_sum(tf.cast(counted, tf.float32), axis=1)
    mean_td = total / tf.maximum(count, 1.0)
    return tf.stop_gradient(eta * max_td + (1.0 - eta) * mean_td)


class LossAndPriorities(NamedTuple):
    """What :func:`loss_and_priorities` returns; ``T`` is the trace length."""

    loss: tf.Tensor
    """<float32>[] the R2D2 loss (see :func:`sequence_td_loss`); gradient reaches q_online."""
    priorities: tf.Tensor
    """<float32>[B] eta * max |td| + (1 - eta) * mean |td| over each sequence's trained steps."""
    abs_td: tf.Tensor
    """<float32>[B, T] |td| on the trained steps, 0 elsewhere."""
    q_taken: tf.Tensor
    """<float32>[B, T] online Q of the taken actions on the trace."""
    targets: tf.Tensor
    """<float32>[B, T] n-step double-Q targets on the trace."""
    weight: tf.Tensor
    """<float32>[B, T] 1 on the trained steps (transitions of the trace), else 0."""


def loss_and_priorities(
    q_online: tf.Tensor,
    q_target: tf.Tensor,
    action: tf.Tensor,
    reward: tf.Tensor,
    discount: tf.Tensor,
    mask: tf.Tensor,
    *,
    burn_in: int,
    trace_length: int,
    n_step: int,
    gamma: float,
    priority_eta: float = 0.9,
    rescale: bool = True,
    eps: float = DEFAULT_RESCALE_EPS,
    importance_weights: tf.Tensor | None = None,
    q_trace: tf.Tensor | None = None,
) -> LossAndPriorities:
    """R2D2's loss and sequence priorities from the unrolls of replayed sequences.

    The one place that slices a sequence into burn-in, trace and n-step tail::

        step of the sequence   0 .. burn_in-1 | burn_in .. burn_in+T-1 | .. L-1   (L = burn_in + T + n)
        batch fields           not read       | trained steps          | n-step tail
        q_online, q_target     (not passed)   | 0 .. T-1               | T .. T+n-1

    The learner passes its online and target networks' unrolls; an actor computing initial
    priorities passes its one network's unroll as both.

    Args:
      q_online: <float32>[B, T + n, A] online-network Q after the burn-in (rescaled space
        if rescale); its argmax picks the bootstrap actions.
      q_target: <float32>[B, T + n, A] target-network Q after the burn-in.
      action: <int>[B, L] actions taken.
      reward: <float32>[B, L].
      discount: <float32>[B, L], 0 after a termination and on non-transitions, else 1.
      mask: <float32>[B, L], 1 on transitions.
      burn_in, trace_length, n_step: Python ints, ``L = burn_in + trace_length + n_step``.
      gamma: discount factor in [0, 1].
      priority_eta: the priorities' max/mean mixture in [0, 1].
      rescale: value rescaling h / h^-1 on the targets.
      eps: rescaling epsilon (Python float >= 0).
      importance_weights: <float32>[B] prioritized-replay weights, or None for 1.
      q_trace: <float32>[B, T, A] the online Q on the trace that the gradient flows through,
        if it was unrolled apart (the learner); None: ``q_online[:, :T]``.

    Returns:
      :class:`LossAndPriorities` (loss [], priorities [B], abs_td / q_taken / targets /
      weight [B, trace_length]).
    """
    for name, value, low in (("burn_in", burn_in, 0), ("trace_length", trace_length, 1), ("n_step", n_step, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be a Python int >= {low}, got {value!r}")
    length = burn_in + trace_length + n_step
    q_online = tf.convert_to_tensor(q_online, tf.float32)
    for name, tensor, expected in (("mask", mask, length), ("q_online", q_online, length - burn_in),
                                   ("q_target", q_target, length - burn_in)):
        steps = tf.convert_to_tensor(tensor).shape[1]
        if steps is not None and steps != expected:
            raise ValueError(f"{name} has {steps} steps; expected {expected} (burn_in={burn_in}, "
                             f"trace_length={trace_length}, n_step={n_step}; Q values start after the burn-in)")
    burn, trace = burn_in, trace_length
    after = lambda x: tf.cast(x[:, burn:], tf.float32)  # noqa: E731
    targets = n_step_double_q_targets(
        q_online, q_target, after(reward), after(discount), after(mask),
        gamma=gamma, n=n_step, rescale=rescale, eps=eps)[:, :trace]
    weight = trained_steps_weight(after(mask)[:, :trace], 0, trace)
    q_taken = action_values(q_online[:, :trace] if q_trace is None else q_trace, action[:, burn:burn + trace])
    loss, abs_td = sequence_td_loss(q_taken, targets, weight, importance_weights)
    priorities = sequence_priorities(abs_td, weight, priority_eta)
    return LossAndPriorities(loss, priorities, abs_td, q_taken, targets, weight)
