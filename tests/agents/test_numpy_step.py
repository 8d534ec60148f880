"""NumpyQStep: one step of the Q-network in numpy equals the Keras network's step."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from agents.r2d2.numpy_step import NumpyQStep, numpy_step_unsupported
from r2d2_state.networks import QNetworkConfig, build_q_network

CONFIGS = {
    "default": QNetworkConfig(observation_shape=(4,), num_actions=3, lstm_units=(16,), mlp_units=(16,),
                              head_units=16),
    "two_lstms_2d_obs_scaled": QNetworkConfig(observation_shape=(2, 3), image=False, num_actions=5,
                                              lstm_units=(32, 24), mlp_units=(16, 8), head_units=16,
                                              observation_scale=0.5),
    "no_mlp_per_feature_scale_no_action": QNetworkConfig(observation_shape=(3,), num_actions=2, lstm_units=(8,),
                                                         mlp_units=(), head_units=4, use_prev_action=False,
                                                         observation_scale=(1.0, 2.0, 3.0)),
    "no_reward": QNetworkConfig(observation_shape=(3,), num_actions=2, lstm_units=(8,), mlp_units=(4,),
                                head_units=4, use_prev_reward=False),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_step_equals_the_keras_network(name):
    config, n = CONFIGS[name], 5
    keras.utils.set_random_seed(0)
    net = build_q_network(config, stateful=False)
    rng = np.random.default_rng(0)
    # Larger than initial weights, so every gate saturates somewhere.
    net.set_weights([w + rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in net.get_weights()])
    step = NumpyQStep(net, config)
    states = [[rng.normal(size=(n, u)).astype(np.float32) for _ in range(2)] for u in config.lstm_units]
    originals = [[s.copy() for s in layer] for layer in states]
    obs = rng.normal(size=(n,) + config.observation_shape).astype(np.float32)
    prev_action = np.array([-1, 0, 1, 1, 0], np.int32)  # -1: an episode's first step
    prev_reward = rng.normal(size=n).astype(np.float32)
    q, new = step(obs, prev_action, prev_reward, states)
    feed = {"observation": obs[:, None], "prev_action": prev_action[:, None],
            "prev_reward": prev_reward[:, None], "valid": np.ones((n, 1), np.float32)}
    for i, (h, c) in enumerate(states):
        feed[f"initial_h{i}"], feed[f"initial_c{i}"] = h, c
    want_q, want_states = net(feed)
    assert q.dtype == np.float32 and q.shape == (n, config.num_actions)
    np.testing.assert_allclose(q, np.asarray(want_q)[:, 0], rtol=1e-5, atol=1e-5)
    for got_layer, want_layer in zip(new, want_states):
        for got, want in zip(got_layer, want_layer):
            np.testing.assert_allclose(got, np.asarray(want), rtol=1e-5, atol=1e-5)
    for layer, original in zip(states, originals):  # the input states are not modified
        for s, o in zip(layer, original):
            np.testing.assert_array_equal(s, o)


def test_load_reads_new_weights():
    config = CONFIGS["default"]
    net = build_q_network(config, stateful=False)
    step = NumpyQStep(net, config)
    obs = np.ones((2, 4), np.float32)
    zeros = [[np.zeros((2, 16), np.float32)] * 2]
    before, _ = step(obs, np.zeros(2, np.int32), np.zeros(2, np.float32), zeros)
    net.set_weights([w + 0.1 for w in net.get_weights()])
    unchanged, _ = step(obs, np.zeros(2, np.int32), np.zeros(2, np.float32), zeros)
    np.testing.assert_array_equal(before, unchanged)  # a copy, not a view of the variables
    step.load()
    after, _ = step(obs, np.zeros(2, np.int32), np.zeros(2, np.float32), zeros)
    assert np.abs(after - before).max() > 1e-3


def test_unsupported_networks_are_named():
    image = QNetworkConfig(observation_shape=(7, 7, 3), num_actions=3, lstm_units=(8,), head_units=4)
    assert numpy_step_unsupported(image) == "the torso has convolutions (image observations)"
    assert numpy_step_unsupported(CONFIGS["default"]) is None
    with pytest.raises(ValueError, match="does not cover this network: the torso has convolutions"):
        NumpyQStep(build_q_network(image, stateful=False), image)
