from __future__ import annotations

import json

import numpy as np
import pytest

from r2d2_state.networks import QNetworkConfig, build_q_network
from r2d2_state.state import get_states, reset_states

CFG = QNetworkConfig(observation_shape=(4,), num_actions=3, mlp_units=(16,),
                     lstm_units=(8, 6), head_units=16)


def _inputs(batch, steps, seed=0, cfg=CFG):
    rng = np.random.default_rng(seed)
    return {
        "observation": rng.normal(size=(batch, steps) + cfg.observation_shape).astype(np.float32),
        "prev_action": rng.integers(-1, cfg.num_actions, size=(batch, steps)).astype(np.int32),
        "prev_reward": rng.normal(size=(batch, steps)).astype(np.float32),
        "valid": np.ones((batch, steps), np.float32),
    }


def _states(batch, seed=1, cfg=CFG):
    rng = np.random.default_rng(seed)
    return [[rng.normal(size=(batch, u)).astype(np.float32) for _ in range(2)] for u in cfg.lstm_units]


def _with_state(inputs, states):
    out = dict(inputs)
    for i, (h, c) in enumerate(states):
        out[f"initial_h{i}"], out[f"initial_c{i}"] = h, c
    return out


def test_stateful_and_stateless_give_identical_q_and_final_state():
    stateful = build_q_network(CFG, stateful=True, batch_size=5)
    stateless = build_q_network(CFG, stateful=False)
    stateless.set_weights(stateful.get_weights())
    x, s = _inputs(5, 7), _states(5)

    reset_states(stateful, s)
    q_stateful = np.asarray(stateful(x))
    q_stateless, finals = stateless(_with_state(x, s))
    np.testing.assert_allclose(q_stateful, q_stateless, atol=1e-6)
    for layer_state, layer_final in zip(get_states(stateful), finals):
        for a, b in zip(layer_state, layer_final):
            np.testing.assert_allclose(a, np.asarray(b), atol=1e-6)
    assert q_stateful.shape == (5, 7, 3)


def test_weights_move_between_batch_sizes():
    learner = build_q_network(CFG, stateful=True, batch_size=4)
    actor = build_q_network(CFG, stateful=True, batch_size=2)
    evaluator = build_q_network(CFG, stateful=True, batch_size=1)
    assert [w.shape for w in learner.get_weights()] == [w.shape for w in evaluator.get_weights()]
    actor.set_weights(learner.get_weights())
    evaluator.set_weights(learner.get_weights())
    x, s = _inputs(4, 5), _states(4)
    reset_states(learner, s)
    q = np.asarray(learner(x))
    row = 3
    reset_states(evaluator, [[a[row:row + 1] for a in layer] for layer in s])
    q_eval = np.asarray(evaluator({k: v[row:row + 1] for k, v in x.items()}))
    np.testing.assert_allclose(q_eval[0], q[row], atol=1e-6)
    reset_states(actor, [[a[2:] for a in layer] for layer in s])
    np.testing.assert_allclose(np.asarray(actor({k: v[2:] for k, v in x.items()})), q[2:], atol=1e-6)


def test_invalid_steps_carry_the_state_unchanged():
    net = build_q_network(CFG, stateful=True, batch_size=2)
    s = _states(2)
    x = _inputs(2, 4)
    reset_states(net, s)
    q_plain = np.asarray(net(x))
    # The same steps preceded by 3 padding steps of garbage, marked invalid.
    padded = {k: np.concatenate([np.full_like(v[:, :3], 7), v], axis=1) for k, v in x.items()}
    padded["valid"][:, :3] = 0.0
    reset_states(net, s)
    q_padded = np.asarray(net(padded))
    np.testing.assert_allclose(q_padded[:, 3:], q_plain, atol=1e-6)


def test_previous_action_and_reward_reach_the_network():
    net = build_q_network(CFG, stateful=False)
    x, s = _inputs(2, 3), _states(2)
    base = np.asarray(net(_with_state(x, s))[0])
    for key, value in (("prev_action", -1), ("prev_reward", 5.0)):
        changed = dict(x)
        changed[key] = np.full_like(x[key], value)
        assert np.abs(np.asarray(net(_with_state(changed, s))[0]) - base).max() > 1e-4
    off = QNetworkConfig(observation_shape=(4,), num_actions=3, mlp_units=(16,), lstm_units=(8,),
                         head_units=16, use_prev_action=False, use_prev_reward=False)
    net_off = build_q_network(off, stateful=False)
    s1 = _states(2, cfg=off)
    a = np.asarray(net_off(_with_state(x, s1))[0])
    changed = dict(x, prev_action=np.zeros_like(x["prev_action"]), prev_reward=np.zeros_like(x["prev_reward"]))
    np.testing.assert_array_equal(np.asarray(net_off(_with_state(changed, s1))[0]), a)


def test_dueling_head_advantages_have_zero_mean_offset():
    """Q = V + A - mean_a A: the mean of Q over actions is V and Q - V = A - mean_a A."""
    import keras

    net = build_q_network(CFG, stateful=False)
    head = net.get_layer("dueling_head")
    # Advantages far from zero mean, so a head without the mean subtraction would be off by 6.
    kernel, _ = head.advantage.get_weights()
    head.advantage.set_weights([kernel, np.array([5.0, 6.0, 7.0], np.float32)])
    feed = _with_state(_inputs(3, 2), _states(3))
    features = keras.Model(net.inputs, head.input)(feed)  # the last LSTM's output [B, T, units]
    v = np.asarray(head.value(head.value_hidden(features)))  # [B, T, 1]
    a = np.asarray(head.advantage(head.advantage_hidden(features)))  # [B, T, A]
    q = np.asarray(net(feed)[0])
    assert q.shape == (3, 2, 3) and v.shape == (3, 2, 1) and a.shape == (3, 2, 3)
    assert abs(a.mean() - 6.0) < 1.0, f"advantages should average about 6, got {a.mean()!r}"
    np.testing.assert_allclose(q.mean(axis=-1, keepdims=True), v, atol=1e-5)
    np.testing.assert_allclose(q - q.mean(axis=-1, keepdims=True), a - a.mean(axis=-1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(q, v + a - a.mean(axis=-1, keepdims=True), atol=1e-5)


def test_image_torso_on_uint8_frames():
    cfg = QNetworkConfig(observation_shape=(84, 84, 4), num_actions=4, lstm_units=(16,), head_units=16)
    assert cfg.is_image
    sf = build_q_network(cfg, stateful=True, batch_size=2)
    sl = build_q_network(cfg, stateful=False)
    sl.set_weights(sf.get_weights())
    x = _inputs(2, 3, cfg=cfg)
    x["observation"] = np.random.default_rng(0).integers(0, 255, size=(2, 3, 84, 84, 4)).astype(np.uint8)
    s = _states(2, cfg=cfg)
    reset_states(sf, s)
    np.testing.assert_allclose(np.asarray(sf(x)), np.asarray(sl(_with_state(x, s))[0]), atol=1e-5)


@pytest.mark.parametrize("kwargs,words", [
    (dict(observation_shape=(), num_actions=2), "observation_shape"),
    (dict(observation_shape=(4,), num_actions=0), "num_actions must be >= 1, got 0"),
    (dict(observation_shape=(4,), num_actions=2, lstm_units=()), "lstm_units"),
    (dict(observation_shape=(4, 4, 4, 4), num_actions=2), "(H, W) or (H, W, C)"),
])
def test_config_validation(kwargs, words):
    with pytest.raises(ValueError) as info:
        QNetworkConfig(**kwargs)
    assert words in str(info.value)


def test_observation_scale_multiplies_vector_observations():
    import dataclasses

    scaled_cfg = dataclasses.replace(CFG, observation_scale=10.0)
    scaled = build_q_network(scaled_cfg, stateful=False)
    plain = build_q_network(CFG, stateful=False)
    assert len(scaled.get_weights()) == len(plain.get_weights())  # no weights of its own
    plain.set_weights(scaled.get_weights())
    x, s = _inputs(3, 5), _states(3)
    x10 = dict(x, observation=10.0 * x["observation"])
    q_scaled = np.asarray(scaled(_with_state(x, s))[0])
    np.testing.assert_allclose(q_scaled, np.asarray(plain(_with_state(x10, s))[0]), rtol=1e-5, atol=1e-5)
    assert not np.allclose(q_scaled, np.asarray(plain(_with_state(x, s))[0]), atol=1e-4)


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf"), True, (), (1.0, 0.0, 1.0, 1.0)])
def test_observation_scale_must_be_a_positive_number(scale):
    with pytest.raises(ValueError, match=r"observation_scale must be a finite number > 0 or a tuple of them"):
        QNetworkConfig(observation_shape=(4,), num_actions=3, observation_scale=scale)


def test_observation_scale_per_feature():
    import dataclasses

    features = CFG.observation_shape[0]
    factors = tuple(float(i + 2) for i in range(features))
    scaled = build_q_network(dataclasses.replace(CFG, observation_scale=factors), stateful=False)
    plain = build_q_network(CFG, stateful=False)
    plain.set_weights(scaled.get_weights())
    x, s = _inputs(3, 5), _states(3)
    xs = dict(x, observation=x["observation"] * np.asarray(factors, np.float32))
    np.testing.assert_allclose(np.asarray(scaled(_with_state(x, s))[0]), np.asarray(plain(_with_state(xs, s))[0]),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="one per feature"):
        QNetworkConfig(observation_shape=(features + 1,), num_actions=3, observation_scale=factors)
    from agents.r2d2.config import R2D2Config  # JSON lists come back as tuples

    config = R2D2Config(network=QNetworkConfig(observation_scale=[10.0, 50.0]))
    assert R2D2Config.from_dict(json.loads(config.to_json())).network.observation_scale == (10.0, 50.0)


def test_stateful_needs_a_batch_size():
    with pytest.raises(ValueError, match="static batch size"):
        build_q_network(CFG, stateful=True)


@pytest.mark.parametrize("pad", [0, 3])
def test_mask_aware_lstm_matches_keras_lstm_values_and_gradients(pad):
    import keras
    import tensorflow as tf

    from r2d2_state.networks import MaskAwareLSTM

    x = tf.constant(np.random.default_rng(0).normal(size=(3, 6, 4)).astype(np.float32))
    mask = np.ones((3, 6), bool)
    mask[1, :pad] = False
    mask = tf.constant(mask)
    ours, ref = MaskAwareLSTM(5, return_sequences=True), keras.layers.LSTM(5, return_sequences=True)
    ours(x), ref(x)
    ours.set_weights(ref.get_weights())
    results = []
    for layer in (ours, ref):
        with tf.GradientTape() as tape:
            y = layer(x, mask=mask)
            loss = tf.reduce_sum(tf.square(y))
        results.append((np.asarray(y), [np.asarray(g) for g in tape.gradient(loss, layer.trainable_variables)]))
    np.testing.assert_allclose(results[0][0], results[1][0], atol=1e-6)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, atol=1e-5)
