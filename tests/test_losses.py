"""Tests for r2d2_state.losses against loops a person can check by eye."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from r2d2_state import losses

GAMMA = 0.997


@pytest.fixture(params=["eager", "tf_function"])
def run(request):
    """``run(fn, *args, **kwargs)``: ``fn`` called eagerly, or traced inside a ``tf.function``
    (arguments captured as constants, as a learner's graph sees its hyper-parameters)."""

    def call(fn, *args, **kwargs):
        if request.param == "eager":
            return fn(*args, **kwargs)
        return tf.function(lambda: fn(*args, **kwargs))()

    return call


# ----------------------------------------------------------------------------- reference


def h_ref(x: float, eps: float = 1e-3) -> float:
    return math.copysign(math.sqrt(abs(x) + 1.0) - 1.0, x) + eps * x


def h_inv_ref(x: float, eps: float = 1e-3) -> float:
    if eps == 0.0:
        return math.copysign((abs(x) + 1.0) ** 2 - 1.0, x)
    y = (math.sqrt(1.0 + 4.0 * eps * (abs(x) + 1.0 + eps)) - 1.0) / (2.0 * eps)
    return math.copysign(y * y - 1.0, x)


def targets_ref(q_online, q_target, reward, discount, mask, gamma, n, rescale, eps=1e-3):
    """Straight transcription of the definition, one (b, t) at a time, in float64."""
    q_online, q_target = np.asarray(q_online), np.asarray(q_target)
    batch, length = np.asarray(reward).shape
    out = np.zeros((batch, length))
    for b in range(batch):
        for t in range(length):
            if t + n > length - 1 or mask[b][t] == 0:
                continue
            m = 0
            while m < n and mask[b][t + m] == 1:
                m += 1
            a_star = int(np.argmax(q_online[b, t + m]))
            boot = float(q_target[b, t + m, a_star])
            if rescale:
                boot = h_inv_ref(boot, eps)
            ret, coef = 0.0, 1.0
            for j in range(m):
                ret += coef * reward[b][t + j]
                coef *= gamma * discount[b][t + j]
            ret += coef * boot
            out[b, t] = h_ref(ret, eps) if rescale else ret
    return out


def run_targets(run, q_online, q_target, reward, discount, mask, gamma, n, rescale):
    return run(
        losses.n_step_double_q_targets,
        tf.constant(q_online, tf.float32),
        tf.constant(q_target, tf.float32),
        tf.constant(reward, tf.float32),
        tf.constant(discount, tf.float32),
        tf.constant(mask, tf.float32),
        gamma=gamma,
        n=n,
        rescale=rescale,
    ).numpy()


# ----------------------------------------------------------------------------- rescaling


def test_value_rescale_hand_values(run):
    # h(3) = (2 - 1) + 3e-3, h(-8) = -(3 - 1) - 8e-3, h(0) = 0.
    x = tf.constant([3.0, -8.0, 0.0])
    np.testing.assert_allclose(run(losses.value_rescale, x).numpy(), [1.003, -2.008, 0.0], rtol=1e-6)
    np.testing.assert_allclose(
        run(losses.inverse_value_rescale, tf.constant([1.003, -2.008, 0.0])).numpy(),
        [3.0, -8.0, 0.0],
        rtol=1e-5,
    )


def _wide_range() -> np.ndarray:
    magnitudes = np.concatenate([[0.0, 1e-30, 1e-12, 1e-7], np.logspace(-5, 4, 400)])
    return np.concatenate([magnitudes, -magnitudes]).astype(np.float32)


@pytest.mark.parametrize("eps", [1e-3, 1e-2, 0.0])
def test_rescale_round_trip_float32(run, eps):
    x = _wide_range()
    x_back = run(lambda: losses.inverse_value_rescale(losses.value_rescale(x, eps), eps)).numpy()
    # h compresses |x| ~ 1e4 to ~ 1e2, so float32 rounding of h(x) is amplified ~2x on the
    # way back: relative 1e-5 is ~20 ulp, and 1e-6 absolute covers the x ~ 0 end.
    np.testing.assert_allclose(x_back, x, rtol=1e-5, atol=1e-6)
    assert x_back[0] == 0.0

    y = run(losses.value_rescale, x, eps).numpy()  # values of h over the same wide range
    y_back = run(lambda: losses.value_rescale(losses.inverse_value_rescale(y, eps), eps)).numpy()
    np.testing.assert_allclose(y_back, y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("eps", [1e-3, 0.0])
def test_rescale_matches_float64_formula(run, eps):
    x = _wide_range()
    np.testing.assert_allclose(
        run(losses.value_rescale, x, eps).numpy(),
        [h_ref(float(v), eps) for v in x],
        rtol=2e-6,
        atol=1e-7,
    )
    y = np.concatenate([_wide_range()[:200], [-120.0, 120.0]]).astype(np.float32)
    y = y[np.abs(y) <= 120.0]  # h^-1 of 120 is ~1.4e4 at eps=1e-3
    np.testing.assert_allclose(
        run(losses.inverse_value_rescale, y, eps).numpy(),
        [h_inv_ref(float(v), eps) for v in y],
        rtol=1e-5,
        atol=1e-6,
    )


def test_rescale_eps_zero_closed_form(run):
    y = tf.constant([0.0, 1.0, -2.0, 10.0])
    np.testing.assert_allclose(
        run(losses.inverse_value_rescale, y, eps=0.0).numpy(), [0.0, 3.0, -8.0, 120.0], rtol=1e-6
    )


@pytest.mark.parametrize("eps", [-1e-3, float("nan"), float("inf")])
def test_rescale_rejects_bad_eps(eps):
    with pytest.raises(ValueError, match="eps"):
        losses.value_rescale(tf.constant([1.0]), eps)
    with pytest.raises(ValueError, match="eps"):
        losses.inverse_value_rescale(tf.constant([1.0]), eps)


def test_rescale_rejects_tensor_eps_but_takes_numpy_scalars():
    with pytest.raises(TypeError, match="Python float"):
        losses.value_rescale(tf.constant([1.0]), tf.constant(1e-3))
    np.testing.assert_allclose(
        losses.value_rescale(tf.constant([3.0]), np.float32(1e-3)).numpy(), [1.003], rtol=1e-6
    )


# ----------------------------------------------------------------------------- targets


def test_one_step_hand_computed_no_rescale(run):
    # L = 3, n = 1, one action: target[t] = r[t] + gamma * discount[t] * q_target[t + 1].
    q = np.array([[[10.0], [20.0], [30.0]]])
    reward = [[1.0, 2.0, 0.0]]
    discount = [[1.0, 0.0, 0.0]]  # terminated after step 1
    mask = [[1.0, 1.0, 0.0]]
    out = run_targets(run, q, q, reward, discount, mask, GAMMA, n=1, rescale=False)
    np.testing.assert_allclose(out, [[1.0 + GAMMA * 20.0, 2.0, 0.0]], rtol=1e-6)


def test_double_q_uses_online_argmax_and_target_value(run):
    # Online prefers action 1 at the bootstrap step, target prefers action 0: double Q must
    # take q_target[., 1] = 5, not max q_target = 100.
    q_online = np.array([[[0.0, 0.0], [1.0, 2.0]]])
    q_target = np.array([[[0.0, 0.0], [100.0, 5.0]]])
    out = run_targets(run, q_online, q_target, [[1.0, 0.0]], [[1.0, 1.0]], [[1.0, 0.0]], 0.5, 1, False)
    np.testing.assert_allclose(out, [[1.0 + 0.5 * 5.0, 0.0]])


def test_termination_inside_window_hand_computed(run):
    # Episode: transitions at t = 0..2, terminated after t = 2, final obs at t = 3, tail pad.
    # n = 3, gamma = 0.5, no rescale, A = 1 (q_target = 100 everywhere, 7 at the final obs).
    q = np.full((1, 7, 1), 100.0)
    q[0, 3, 0] = 7.0
    reward = [[1.0, 2.0, 4.0, 0.0, 0.0, 0.0, 0.0]]
    discount = [[1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]]
    mask = [[1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]]
    out = run_targets(run, q, q, reward, discount, mask, 0.5, n=3, rescale=False)
    # t = 0: m = 3, 1 + .5*2 + .25*4 + .125 * 0 (discount[2] = 0) * 7 = 3
    # t = 1: m = 2, 2 + .5*4 + 0 = 4;  t = 2: m = 1, 4 + 0 = 4;  t >= 3: not transitions.
    np.testing.assert_allclose(out, [[3.0, 4.0, 4.0, 0.0, 0.0, 0.0, 0.0]])


def test_truncation_bootstraps_from_final_observation(run):
    # Same rewards, but truncated after t = 2: discount stays 1, so the final observation's
    # value (7) is bootstrapped; the window is shortened by the episode end only.
    q = np.full((1, 7, 1), 100.0)
    q[0, 3, 0] = 7.0
    reward = [[1.0, 2.0, 4.0, 0.0, 0.0, 0.0, 0.0]]
    discount = [[1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]]
    mask = [[1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]]
    out = run_targets(run, q, q, reward, discount, mask, 0.5, n=3, rescale=False)
    # t = 0: 3 + .125*7 ; t = 1: 4 + .25*7 ; t = 2: 4 + .5*7
    np.testing.assert_allclose(out, [[3.875, 5.75, 7.5, 0.0, 0.0, 0.0, 0.0]])


def test_full_window_and_sequence_tail(run):
    # No episode end: every window is n long and bootstraps at t + n; the last n steps have
    # no complete window and get 0 even though they are transitions.
    q = np.arange(6, dtype=np.float64).reshape(1, 6, 1)  # q[t] = t
    reward = [[1.0] * 6]
    discount = [[1.0] * 6]
    mask = [[1.0] * 6]
    out = run_targets(run, q, q, reward, discount, mask, 0.5, n=2, rescale=False)
    # target[t] = 1 + .5 + .25 * (t + 2) for t = 0..3
    np.testing.assert_allclose(out, [[2.0, 2.25, 2.5, 2.75, 0.0, 0.0]])


def test_front_padding_gets_zero_and_does_not_leak(run):
    # Episode starts at t = 2 (burn-in region of the first sequence is padded). The padded
    # steps hold garbage Q (inf) and garbage rewards; targets there are 0 and finite.
    q = np.ones((1, 6, 2))
    q[0, :2] = np.inf
    reward = [[9.0, 9.0, 1.0, 1.0, 1.0, 0.0]]
    discount = [[0.0, 0.0, 1.0, 1.0, 1.0, 1.0]]
    mask = [[0.0, 0.0, 1.0, 1.0, 1.0, 1.0]]
    out = run_targets(run, q, q, reward, discount, mask, 1.0, n=2, rescale=False)
    np.testing.assert_allclose(out, [[0.0, 0.0, 3.0, 3.0, 0.0, 0.0]])
    assert np.all(np.isfinite(out))


def _random_episode_batch(rng, batch, length, num_actions):
    """Sequences with front padding, episode ends (terminated or truncated) and tail padding."""
    reward = np.zeros((batch, length))
    discount = np.zeros((batch, length))
    mask = np.zeros((batch, length))
    for b in range(batch):
        start = int(rng.integers(0, length // 3))
        num_transitions = int(rng.integers(1, length - start))
        stop = start + num_transitions  # index of the final observation (or just more steps)
        ends = rng.random() < 0.7
        mask[b, start:stop] = 1.0
        reward[b, start:stop] = rng.normal(size=num_transitions) * 5.0
        discount[b, start:stop] = 1.0
        if ends and rng.random() < 0.5:
            discount[b, stop - 1] = 0.0  # terminated after the last transition
        if not ends and stop < length:
            mask[b, stop:] = 1.0  # the episode runs past the sequence end
            reward[b, stop:] = rng.normal(size=length - stop)
            discount[b, stop:] = 1.0
    q_online = rng.normal(size=(batch, length, num_actions)) * 3.0
    q_target = rng.normal(size=(batch, length, num_actions)) * 3.0
    return q_online, q_target, reward, discount, mask


@pytest.mark.parametrize("n", [1, 5])
@pytest.mark.parametrize("rescale", [True, False])
def test_targets_match_reference_on_random_episodes(run, n, rescale):
    rng = np.random.default_rng(n + 10 * rescale)
    q_online, q_target, reward, discount, mask = _random_episode_batch(rng, 16, 14, 3)
    out = run_targets(run, q_online, q_target, reward, discount, mask, GAMMA, n, rescale)
    expected = targets_ref(q_online, q_target, reward, discount, mask, GAMMA, n, rescale)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert np.all(out[:, -n:] == 0.0)
    assert np.all(out[mask == 0] == 0.0)


def test_rescale_on_hand_computed(run):
    # n = 1, gamma = 1: bootstrap h^-1(q_target[1]) = 3, then target = h(G).
    q = np.array([[[0.0], [losses.value_rescale(tf.constant(3.0)).numpy()]]])
    out = run_targets(run, q, q, [[1.0, 0.0]], [[1.0, 0.0]], [[1.0, 0.0]], 1.0, n=1, rescale=True)
    # G = 1 + h^-1(h(3)) = 4; target = h(4) = sqrt(5) - 1 + 4e-3
    np.testing.assert_allclose(out[0, 0], math.sqrt(5.0) - 1.0 + 4e-3, rtol=1e-5)


def test_targets_in_tf_function_and_no_gradient():
    rng = np.random.default_rng(0)
    arrays = _random_episode_batch(rng, 4, 10, 2)
    q_online, q_target, reward, discount, mask = (tf.constant(a, tf.float32) for a in arrays)
    q_online, q_target = tf.Variable(q_online), tf.Variable(q_target)

    @tf.function(jit_compile=False)
    def grads():
        with tf.GradientTape(persistent=True) as tape:
            targets = losses.n_step_double_q_targets(
                q_online, q_target, reward, discount, mask, GAMMA, n=5
            )
            total = tf.reduce_sum(targets)
        return targets, tape.gradient(total, q_online), tape.gradient(total, q_target)

    targets, g_online, g_target = grads()
    assert g_online is None and g_target is None
    expected = targets_ref(*arrays, GAMMA, 5, True)
    np.testing.assert_allclose(targets.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_targets_reject_bad_arguments():
    x = tf.zeros((1, 4))
    q = tf.zeros((1, 4, 2))
    with pytest.raises(ValueError, match="n must be"):
        losses.n_step_double_q_targets(q, q, x, x, x, GAMMA, n=0)
    with pytest.raises(ValueError, match="gamma"):
        losses.n_step_double_q_targets(q, q, x, x, x, 1.5, n=1)


# ----------------------------------------------------------------------------- learner helpers


def test_trained_steps_weight(run):
    mask = tf.constant([[0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]])
    weight = run(losses.trained_steps_weight, mask, start=2, length=3).numpy()
    np.testing.assert_array_equal(weight, [[0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="exceeds"):
        losses.trained_steps_weight(mask, start=5, length=3)


def test_action_values_and_td_loss_hand_computed(run):
    q = tf.constant([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])
    taken = run(losses.action_values, q, tf.constant([[1, 0, 1]]))
    np.testing.assert_array_equal(taken.numpy(), [[2.0, 3.0, 6.0]])
    targets = tf.constant([[4.0, 2.0, 0.0]])
    weight = tf.constant([[1.0, 1.0, 0.0]])
    loss, abs_td = run(losses.sequence_td_loss, taken, targets, weight, tf.constant([0.5]))
    # td = [2, -1, (ignored)] -> 0.5 * (4 + 1) = 2.5 summed over time, times importance 0.5
    np.testing.assert_allclose(loss.numpy(), 1.25)
    np.testing.assert_array_equal(abs_td.numpy(), [[2.0, 1.0, 0.0]])


def test_td_loss_gradient_reaches_q_only(run):
    q = tf.Variable([[[1.0, 2.0], [3.0, 4.0]]])
    targets = tf.Variable([[0.0, 0.0]])

    def gradients():
        with tf.GradientTape() as tape:
            loss, _ = losses.sequence_td_loss(
                losses.action_values(q, tf.constant([[0, 1]])), targets, tf.ones((1, 2))
            )
        return tape.gradient(loss, [q, targets])

    g_q, g_targets = run(gradients)
    assert g_targets is None
    # d/dq of 0.5 * sum(q^2) over time = q at the taken actions
    np.testing.assert_allclose(g_q.numpy(), [[[1.0, 0.0], [0.0, 4.0]]])


def test_td_loss_weighs_every_trained_step_alike_whatever_the_sequence_length(run):
    # Sequence 0 ends after 1 trained step, sequence 1 has 4 (td = 1 everywhere). Summed over
    # time (the paper's loss): mean(0.5 * 1, 0.5 * 4) = 1.25, and every trained step's
    # gradient is td / B. A per-sequence mean would give 0.5 and weigh the lone step 4x.
    q = tf.Variable(tf.zeros((2, 4)))
    weight = tf.constant([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])

    def loss_and_gradient():
        with tf.GradientTape() as tape:
            loss, _ = losses.sequence_td_loss(q, tf.ones((2, 4)), weight)
        return loss, tape.gradient(loss, q)

    loss, gradient = run(loss_and_gradient)
    np.testing.assert_allclose(loss.numpy(), 1.25)
    np.testing.assert_allclose(gradient.numpy(), -0.5 * weight.numpy())


# ----------------------------------------------------------------------------- priorities


def test_sequence_priorities_hand_numbers(run):
    abs_td = tf.constant(
        [
            [1.0, 3.0, 2.0, 100.0],  # last step not counted
            [0.0, 0.0, 0.0, 0.0],
            [5.0, 5.0, 5.0, 5.0],  # no counted step
            [-4.0, 2.0, 0.0, 0.0],  # signs are ignored
        ]
    )
    mask = tf.constant(
        [[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]]
    )
    p = run(losses.sequence_priorities, abs_td, mask, eta=0.9).numpy()
    # row 0: 0.9 * 3 + 0.1 * 2 = 2.9 ; row 3: 0.9 * 4 + 0.1 * 3 = 3.9
    np.testing.assert_allclose(p, [2.9, 0.0, 0.0, 3.9], rtol=1e-6)
    p_mean = run(losses.sequence_priorities, abs_td, mask, eta=0.0).numpy()
    np.testing.assert_allclose(p_mean, [2.0, 0.0, 0.0, 3.0], rtol=1e-6)
    with pytest.raises(ValueError, match="eta"):
        losses.sequence_priorities(abs_td, mask, eta=1.5)


@pytest.mark.parametrize("seed", range(5))
def test_numpy_and_tensorflow_sequence_priorities_agree(run, seed):
    """The replay's numpy priority (no TensorFlow) and the learner's are one definition."""
    from r2d2_state.replay.priorities import sequence_priorities as numpy_priorities

    rng = np.random.default_rng(seed)
    batch, length = 8, int(rng.integers(1, 12))
    abs_td = np.abs(rng.normal(scale=3.0, size=(batch, length))).astype(np.float32)
    mask = (rng.random((batch, length)) < 0.6).astype(np.float32)
    mask[0] = 0.0  # a row without any counted step
    eta = float(rng.uniform())
    expected = numpy_priorities(abs_td, mask, eta)
    got = run(losses.sequence_priorities, tf.constant(abs_td), tf.constant(mask), eta=eta).numpy()
    assert got.dtype == expected.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert expected[0] == 0.0


# ----------------------------------------------------------------------------- loss and priorities


def _hand_sequence():
    # L = 4 = burn-in 1 + trace 2 + n 1, A = 2, gamma 0.5, no rescaling. Q values start
    # after the burn-in (steps 1..3); the burn-in step's fields hold 9s that must not be read.
    q_online = tf.constant([[[1.0, 2.0], [3.0, 0.0], [0.0, 5.0]]])
    q_target = tf.constant([[[7.0, 7.0], [4.0, 6.0], [8.0, 2.0]]])
    action = tf.constant([[9, 1, 0, 0]])
    reward = tf.constant([[9.0, 1.0, 2.0, 0.0]])
    ones = tf.ones((1, 4))
    return q_online, q_target, action, reward, ones, ones


def test_loss_and_priorities_hand_computed(run):
    q_online, q_target, action, reward, discount, mask = _hand_sequence()
    out = run(losses.loss_and_priorities, q_online, q_target, action, reward, discount, mask,
              burn_in=1, trace_length=2, n_step=1, gamma=0.5, priority_eta=0.9, rescale=False,
              importance_weights=tf.constant([0.5]))
    # step 1: a* = argmax q_online[step 2] = 0 (the target's argmax would be 1, value 6),
    #         target = 1 + 0.5 * q_target[step 2, 0] = 3, q_taken = q_online[step 1, 1] = 2, td = 1
    # step 2: a* = argmax q_online[step 3] = 1, target = 2 + 0.5 * 2 = 3, q_taken = 3, td = 0
    np.testing.assert_allclose(out.targets.numpy(), [[3.0, 3.0]])
    np.testing.assert_allclose(out.q_taken.numpy(), [[2.0, 3.0]])
    np.testing.assert_allclose(out.abs_td.numpy(), [[1.0, 0.0]])
    np.testing.assert_allclose(out.weight.numpy(), [[1.0, 1.0]])
    np.testing.assert_allclose(out.loss.numpy(), 0.5 * (0.5 * 1.0))  # importance 0.5 x 0.5 td^2
    np.testing.assert_allclose(out.priorities.numpy(), [0.9 * 1.0 + 0.1 * 0.5])


def test_loss_and_priorities_gradient_reaches_only_the_traces_online_q(run):
    q_online, q_target, action, reward, discount, mask = _hand_sequence()
    q_online, q_target = tf.Variable(q_online), tf.Variable(q_target)
    q_trace = tf.Variable(q_online[:, :2])

    def gradients():
        with tf.GradientTape() as tape:
            whole = losses.loss_and_priorities(q_online, q_target, action, reward, discount, mask,
                                               burn_in=1, trace_length=2, n_step=1, gamma=0.5, rescale=False)
            # The learner unrolls the trace apart and passes it: same loss, gradient to it only.
            apart = losses.loss_and_priorities(tf.stop_gradient(q_online), q_target, action, reward, discount,
                                               mask, burn_in=1, trace_length=2, n_step=1, gamma=0.5,
                                               rescale=False, q_trace=q_trace)
        return whole.loss, apart.loss, tape.gradient([whole.loss, apart.loss], [q_online, q_target, q_trace])

    whole, apart, (g_online, g_target, g_trace) = run(gradients)
    assert g_target is None
    np.testing.assert_allclose(apart.numpy(), whole.numpy())
    # d(0.5 td^2)/dq_taken = -td: -1 at (trace step 0, a=1), 0 at (trace step 1, a=0); none on the tail.
    expected = np.zeros((1, 3, 2), np.float32)
    expected[0, 0, 1] = -1.0
    np.testing.assert_allclose(g_online.numpy(), expected)
    np.testing.assert_allclose(g_trace.numpy(), expected[:, :2])


def test_loss_and_priorities_refuses_a_sequence_of_the_wrong_length():
    q_online, q_target, action, reward, discount, mask = _hand_sequence()
    with pytest.raises(ValueError, match=r"mask has 4 steps; expected 5 \(burn_in=2, trace_length=2, n_step=1"):
        losses.loss_and_priorities(q_online, q_target, action, reward, discount, mask,
                                   burn_in=2, trace_length=2, n_step=1, gamma=0.5)
    with pytest.raises(ValueError, match="q_online has 3 steps; expected 4 .*Q values start after the burn-in"):
        losses.loss_and_priorities(q_online, q_target, action, reward, discount, mask,
                                   burn_in=0, trace_length=3, n_step=1, gamma=0.5)
    with pytest.raises(ValueError, match="n_step must be a Python int >= 1, got 0"):
        losses.loss_and_priorities(q_online, q_target, action, reward, discount, mask,
                                   burn_in=3, trace_length=1, n_step=0, gamma=0.5)
