from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from r2d2_state.burn_in import StatefulCore, StatelessCore, burn_in_and_unroll
from r2d2_state.networks import QNetworkConfig, build_q_network
from r2d2_state.state import get_states, reset_states

CFG = QNetworkConfig(observation_shape=(3,), num_actions=2, mlp_units=(8,), lstm_units=(8, 6), head_units=8)
B, EPISODE = 2, 30


def _episode(seed=0, length=EPISODE):
    rng = np.random.default_rng(seed)
    action = rng.integers(0, 2, size=(B, length)).astype(np.int32)
    reward = rng.normal(size=(B, length)).astype(np.float32)
    return {
        "observation": rng.normal(size=(B, length, 3)).astype(np.float32),
        "prev_action": np.concatenate([np.full((B, 1), -1, np.int32), action[:, :-1]], 1),
        "prev_reward": np.concatenate([np.zeros((B, 1), np.float32), reward[:, :-1]], 1),
        "valid": np.ones((B, length), np.float32),
    }


def _window(inputs, start, stop):
    return {k: v[:, start:stop] for k, v in inputs.items()}


@pytest.fixture(scope="module")
def nets():
    stateful = build_q_network(CFG, stateful=True, batch_size=B)
    stateless = build_q_network(CFG, stateful=False)
    stateless.set_weights(stateful.get_weights())
    return stateful, stateless


@pytest.mark.parametrize("kind", ["stateful", "stateless"])
@pytest.mark.parametrize("k,burn_in", [(0, 0), (7, 0), (7, 5), (12, 10)])
def test_restoring_recorded_state_and_burning_in_matches_continuous_unroll(nets, kind, k, burn_in):
    """The burn-in invariant: with unchanged weights, stored state + burn-in = continuous run."""
    stateful, stateless = nets
    episode = _episode()
    reset_states(stateful)
    q_continuous = np.asarray(stateful(episode))
    reset_states(stateful)
    if k:
        stateful(_window(episode, 0, k))
    recorded = get_states(stateful)  # the state the actor held before step k

    core = StatefulCore(stateful) if kind == "stateful" else StatelessCore(stateless)
    length = 15
    q = np.asarray(burn_in_and_unroll(core, _window(episode, k, k + length), recorded, burn_in))
    assert q.shape == (B, length - burn_in, 2)
    np.testing.assert_allclose(q, q_continuous[:, k + burn_in:k + length], atol=2e-6)


def test_zero_start_state_differs_from_stored(nets):
    stateful, _ = nets
    episode = _episode(1)
    reset_states(stateful)
    stateful(_window(episode, 0, 10))
    recorded = get_states(stateful)
    core = StatefulCore(stateful)
    q_stored = np.asarray(burn_in_and_unroll(core, _window(episode, 10, 20), recorded, 0))
    q_zero = np.asarray(burn_in_and_unroll(core, _window(episode, 10, 20), None, 0))
    assert np.abs(q_stored[:, 0] - q_zero[:, 0]).max() > 1e-4


@pytest.mark.parametrize("kind", ["stateful", "stateless"])
def test_no_gradient_reaches_the_burn_in(nets, kind):
    stateful, stateless = nets
    core = StatefulCore(stateful) if kind == "stateful" else StatelessCore(stateless)
    episode = _episode(2)
    obs = tf.Variable(episode["observation"][:, :12])
    start = [[np.full((B, u), 0.3, np.float32), np.full((B, u), -0.2, np.float32)] for u in CFG.lstm_units]
    burn = 5

    def grad_wrt_observations(use_tape_guard: bool):
        with tf.GradientTape() as tape:
            inputs = dict(_window(episode, 0, 12), observation=obs)
            q = burn_in_and_unroll(core, inputs, start, burn, tape=tape if use_tape_guard else None)
            loss = tf.reduce_sum(tf.square(q))
        grads = tape.gradient(loss, [obs] + core.network.trainable_variables)
        return np.asarray(grads[0]), grads[1:]

    g_obs, g_weights = grad_wrt_observations(True)
    assert not g_obs[:, :burn].any()  # nothing flows into the burn-in inputs
    assert np.abs(g_obs[:, burn:]).sum() > 0  # the trained part does get gradients
    assert all(g is not None for g in g_weights)
    if kind == "stateless":
        # Without the guard the stateless state tensor would carry gradient into the burn-in:
        # the check above is able to fail.
        g_unguarded, _ = grad_wrt_observations(False)
        assert np.abs(g_unguarded[:, :burn]).sum() > 0


def test_burn_in_bounds_are_checked(nets):
    core = StatefulCore(nets[0])
    episode = _window(_episode(), 0, 6)
    with pytest.raises(ValueError, match="burn_in must be >= 0, got -1"):
        burn_in_and_unroll(core, episode, None, -1)
    with pytest.raises(ValueError, match=r"burn_in \(6\) must be shorter than the sequence \(6 steps\)"):
        burn_in_and_unroll(core, episode, None, 6)
