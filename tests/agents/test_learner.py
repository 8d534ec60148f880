from __future__ import annotations

import numpy as np
import pytest

from agents.r2d2.config import R2D2Config, actor_epsilons
from agents.r2d2.learner import R2D2Learner
from agents.r2d2.synthetic import random_batch
from r2d2_state.networks import QNetworkConfig, build_q_network

CFG = R2D2Config(burn_in=3, trace_length=6, sequence_period=3, n_step=2, batch_size=6, discount=0.9,
                 learning_rate=1e-3, target_update_period=1000,
                 network=QNetworkConfig(lstm_units=(8,), mlp_units=(8,), head_units=8))
NET = QNetworkConfig(observation_shape=(3,), num_actions=3, mlp_units=(8,), lstm_units=(8,), head_units=8)


def h(x, eps=1e-3):
    return np.sign(x) * (np.sqrt(np.abs(x) + 1) - 1) + eps * x


def h_inv(x, eps=1e-3):
    return np.sign(x) * (((np.sqrt(1 + 4 * eps * (np.abs(x) + 1 + eps)) - 1) / (2 * eps)) ** 2 - 1)


def _stateless_q(weights, data):
    """Q over the whole sequence from the stored start state, continuous unroll [B, L, A]."""
    net = build_q_network(NET, stateful=False)
    net.set_weights(weights)
    feed = {k: data[k] for k in ("observation", "prev_action", "prev_reward", "valid")}
    for i, (hh, cc) in enumerate(data["start_state"]):
        feed[f"initial_h{i}"], feed[f"initial_c{i}"] = hh, cc
    return np.asarray(net(feed)[0], np.float64)


def _reference(learner, data, weights, cfg=CFG):
    """Loss and priorities by the paper's definitions, in plain numpy loops.

    Loss (Kapturowski et al. 2019; SEED RL and Acme alike): per sequence the SUM over its
    trained steps of 0.5 td^2, times its importance weight, averaged over the batch.
    """
    q_online = _stateless_q(learner.online.get_weights(), data)
    q_target = _stateless_q(learner.target.get_weights(), data)
    burn, trace, n, gamma = cfg.burn_in, cfg.trace_length, cfg.n_step, cfg.discount
    mask, reward, discount = data["mask"], data["reward"], data["discount"]
    losses, priorities = [], []
    for b in range(cfg.batch_size):
        tds = []
        for t in range(burn, burn + trace):
            if not mask[b, t]:
                continue
            m = 0
            while m < n and mask[b, t + m]:
                m += 1
            ret, alive = 0.0, 1.0
            for j in range(m):
                ret += gamma ** j * alive * reward[b, t + j]
                alive *= discount[b, t + j]
            a_star = int(np.argmax(q_online[b, t + m]))
            ret += gamma ** m * alive * h_inv(q_target[b, t + m, a_star])
            tds.append(h(ret) - q_online[b, t, data["action"][b, t]])
        tds = np.abs(np.array(tds))
        losses.append(weights[b] * (0.5 * tds ** 2).sum())
        priorities.append(cfg.priority_eta * tds.max() + (1 - cfg.priority_eta) * tds.mean() if len(tds) else 0.0)
    return float(np.mean(losses)), np.array(priorities)


@pytest.mark.parametrize("core,burn_in,xla", [("stateful", 3, False), ("stateless", 3, False), ("stateful", 0, False),
                                             ("stateful", 3, True), ("stateless", 3, True)])
def test_step_matches_numpy_reference(core, burn_in, xla):
    cfg = CFG.replace(burn_in=burn_in, jit_compile=xla)
    learner = R2D2Learner(cfg, NET, core=core)
    # Online and target start equal; perturb the target so that swapping their roles
    # (argmax from the target, value from the online net) would fail the comparison.
    rng = np.random.default_rng(7)
    learner.target.set_weights([w + 0.3 * rng.standard_normal(w.shape).astype(w.dtype)
                                for w in learner.target.get_weights()])
    data, weights = random_batch(cfg, NET, seed=3, episode_end_fraction=0.5)
    if burn_in:
        # A row with front padding (an episode's first sequence; the adder pads only inside
        # the burn-in) and rows ending early are covered too.
        data["valid"][0, :2] = data["mask"][0, :2] = 0.0
        data["reward"][0, :2] = data["discount"][0, :2] = 0.0
        data["start_state"] = [[np.where(np.arange(cfg.batch_size)[:, None] == 0, 0.0, s).astype(np.float32)
                                for s in layer] for layer in data["start_state"]]
    expected_loss, expected_priorities = _reference(learner, data, weights, cfg)
    result = learner.step(data, weights)
    metrics = result.metrics
    assert metrics["loss"] == pytest.approx(expected_loss, rel=1e-4, abs=1e-6)
    np.testing.assert_allclose(result.priorities, expected_priorities, rtol=1e-4, atol=1e-6)
    assert result.priorities.shape == (cfg.batch_size,)
    for key in ("mean_abs_td", "mean_q", "mean_target", "grad_norm", "trained_steps"):
        assert np.isfinite(metrics[key])


def test_step_traces_once_and_counts_steps():
    learner = R2D2Learner(CFG, NET)
    for seed in range(4):
        data, weights = random_batch(CFG, NET, seed=seed)
        learner.step(data, weights)
    assert learner.trace_count == 1
    assert int(learner.num_steps.numpy()) == 4


def test_only_the_burn_in_traces_a_masked_loop():
    """After the burn-in every step is all-valid: the trace, the tail and the target's
    rest are traced as the unmasked loop alone (no masked branch, no tf.cond, no
    gradient of either), which roughly halves a short-sequence step's tracing time."""
    from r2d2_state.state import stateful_layers

    learner = R2D2Learner(CFG, NET)
    layers = [stateful_layers(net)[0] for net in (learner.online, learner.target)]
    for layer in layers:
        layer.loop_log.clear()
    learner.step(*random_batch(CFG, NET, seed=0))
    online, target = (list(layer.loop_log) for layer in layers)
    # burn-in: both branches of the cond; trace and tail: the unmasked loop only.
    assert sorted(online) == sorted([("unmasked", "fused"), ("masked", "fused"),
                                     ("unmasked", "fused"), ("unmasked", "fused")])
    assert sorted(target) == sorted([("unmasked", "fused"), ("masked", "fused"), ("unmasked", "fused")])


def test_zero_start_strategy_ignores_the_stored_state():
    data, weights = random_batch(CFG, NET, seed=5)
    zeroed = dict(data, start_state=[[np.zeros_like(s) for s in layer] for layer in data["start_state"]])
    results = {}
    for strategy in ("stored", "zero"):
        for name, batch in (("given", data), ("zeroed", zeroed)):
            learner = R2D2Learner(CFG.replace(start_state=strategy), NET)
            learner.online.set_weights(R2D2Learner.shared_init)
            learner.target.set_weights(R2D2Learner.shared_init)
            results[strategy, name] = learner.step(batch, weights).priorities
    np.testing.assert_allclose(results["zero", "given"], results["zero", "zeroed"], rtol=1e-6)
    np.testing.assert_allclose(results["stored", "zeroed"], results["zero", "zeroed"], rtol=1e-6)
    assert np.abs(results["stored", "given"] - results["zero", "given"]).max() > 1e-6


@pytest.fixture(autouse=True)
def _shared_init():
    net = build_q_network(NET, stateful=False)
    R2D2Learner.shared_init = net.get_weights()
    yield
    del R2D2Learner.shared_init


def test_target_network_updates_every_period():
    learner = R2D2Learner(CFG.replace(target_update_period=3), NET)
    data, weights = random_batch(CFG, NET, seed=1)
    same = lambda: all(np.array_equal(a, b) for a, b in zip(learner.online.get_weights(),
                                                             learner.target.get_weights()))
    assert same()
    learner.step(data, weights)
    learner.step(data, weights)
    assert not same()
    learner.step(data, weights)
    assert same()


def test_policy_weights_are_the_polyak_average_of_the_online_weights():
    """After learner step n, averaged += max(rate, 1 / n) * (online - averaged): the mean of
    every online weight so far for the first 1 / rate steps, then an exponential average."""
    rate = 0.3
    learner = R2D2Learner(CFG.replace(policy_average_rate=rate, learning_rate=1e-2), NET)
    assert "averaged" in learner.checkpoint_objects()
    data, weights = random_batch(CFG, NET, seed=3)
    expected = [w.astype(np.float64) for w in learner.online.get_weights()]
    for n in range(1, 7):
        learner.step(data, weights)
        step_rate = max(rate, 1.0 / n)
        expected = [e + step_rate * (o - e) for e, o in zip(expected, learner.online.get_weights())]
        for got, want in zip(learner.get_policy_weights(), expected):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    online = learner.get_weights()  # what actors act with
    assert any(not np.allclose(a, b) for a, b in zip(learner.get_policy_weights(), online))
    for a, b in zip(learner.get_weights(), learner.online.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_without_averaging_the_policy_weights_are_the_online_ones():
    learner = R2D2Learner(CFG, NET)
    data, weights = random_batch(CFG, NET, seed=3)
    learner.step(data, weights)
    assert learner.averaged is None and "averaged" not in learner.checkpoint_objects()
    for a, b in zip(learner.get_policy_weights(), learner.online.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_learner_drives_its_loss_down_on_a_fixed_batch():
    cfg = CFG.replace(learning_rate=3e-3, target_update_period=20)
    learner = R2D2Learner(cfg, NET)
    data, weights = random_batch(cfg, NET, seed=11)
    first = learner.step(data, weights).metrics["loss"]
    for _ in range(150):
        last = learner.step(data, weights).metrics["loss"]
    assert last < 0.2 * first


def test_bad_batches_are_refused():
    learner = R2D2Learner(CFG, NET)
    data, weights = random_batch(CFG, NET)
    with pytest.raises(KeyError, match="start_state"):
        learner.step({k: v for k, v in data.items() if k != "start_state"}, weights)
    short = {k: (v[:, :-1] if k != "start_state" else v) for k, v in data.items()}
    with pytest.raises(ValueError, match=r"10 steps; expected burn_in \+ trace_length \+ n_step = 11"):
        learner.step(short, weights)
    half = {k: (v[:3] if k != "start_state" else [[s[:3] for s in l] for l in v]) for k, v in data.items()}
    with pytest.raises(ValueError, match="batch of 3 sequences; expected batch_size=6"):
        learner.step(half, weights[:3])
    assert int(learner.num_steps.numpy()) == 0


def _recorded_states(weights, data):
    """Step a batch-B stateful copy one observation at a time, recording the state before each."""
    from r2d2_state.state import get_states, reset_states

    net = build_q_network(NET, stateful=True, batch_size=CFG.batch_size)
    net.set_weights(weights)
    reset_states(net, data["start_state"])
    hs, cs = [], []
    for t in range(CFG.sequence_length):
        (h_t, c_t), = get_states(net)
        hs.append(h_t)
        cs.append(c_t)
        net({k: data[k][:, t:t + 1] for k in ("observation", "prev_action", "prev_reward", "valid")})
    return [[np.stack(hs, 1), np.stack(cs, 1)]]


def test_staleness_diagnostic_orders_the_strategies():
    learner = R2D2Learner(CFG, NET)
    data, _ = random_batch(CFG, NET, seed=7, episode_end_fraction=0.0)
    data["start_state"] = [[s * 20 for s in layer] for layer in data["start_state"]]  # far from zero
    data["states"] = _recorded_states(learner.get_weights(), data)
    fresh = learner.staleness(data)
    # The actor's states came from the current weights: the stored state is exact.
    for key in ("stored/first", "stored/last", "stored_burn_in/first", "stored_burn_in/last"):
        assert fresh[f"staleness/{key}"] < 1e-5
    assert fresh["staleness/zero/first"] > 1e-3

    # After the weights move on, the recorded states are stale. Without burn-in the first
    # trained step starts from exactly the recorded state (dQ = 0 by construction), but the
    # unroll under the new weights drifts away from the actor's states by the last step.
    learner.set_weights([w + 0.3 * np.random.default_rng(0).normal(size=w.shape).astype(w.dtype)
                         for w in learner.get_weights()])
    stale = learner.staleness(data)
    assert stale["staleness/stored/first"] < 1e-5
    assert stale["staleness/stored/last"] > 1e-3
    assert stale["staleness/stored_burn_in/first"] > 1e-3
    assert stale["staleness/zero/first"] > stale["staleness/stored/first"]


def test_staleness_needs_recorded_states():
    learner = R2D2Learner(CFG, NET)
    data, _ = random_batch(CFG, NET)
    with pytest.raises(ValueError, match="per-step 'states'"):
        learner.staleness(data)


def test_actor_epsilons_follow_the_paper():
    eps = actor_epsilons(8)
    assert eps[0] == pytest.approx(0.4) and eps[-1] == pytest.approx(0.4 ** 8)
    assert all(a > b for a, b in zip(eps, eps[1:]))
    assert actor_epsilons(1) == [0.4]


def test_xla_is_auto_by_lstm_width_unless_set():
    from agents.r2d2.config import XLA_MIN_LSTM_UNITS

    import dataclasses

    wide = dataclasses.replace(CFG.network, lstm_units=(64, XLA_MIN_LSTM_UNITS))
    narrow = dataclasses.replace(CFG.network, lstm_units=(XLA_MIN_LSTM_UNITS - 1,))
    assert CFG.jit_compile is None and not CFG.xla
    assert CFG.replace(network=wide).xla and not CFG.replace(network=narrow).xla
    assert not CFG.replace(network=wide, jit_compile=False).xla and CFG.replace(jit_compile=True).xla
    assert R2D2Config.from_dict(CFG.replace(jit_compile=True).to_dict()).jit_compile is True
    with pytest.raises(ValueError, match=r"jit_compile must be True, False or None \(auto\), got 'yes'"):
        CFG.replace(jit_compile="yes")


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match=r"sequence_period must be in \[1, trace_length\], got 7"):
        CFG.replace(sequence_period=7)
    with pytest.raises(ValueError, match="start_state must be one of"):
        CFG.replace(start_state="random")
    with pytest.raises(ValueError, match=r"actor_backend must be one of \('auto', 'numpy', 'tf'\), got 'torch'"):
        CFG.replace(actor_backend="torch")
    assert CFG.actor_backend == "auto" and R2D2Config.from_dict(CFG.replace(actor_backend="tf").to_dict()).actor_backend == "tf"
    with pytest.raises(ValueError, match=r"policy_average_rate must be in \[0, 1\], got 1.5"):
        CFG.replace(policy_average_rate=1.5)
    with pytest.raises(ValueError, match="unknown R2D2Config fields"):
        CFG.replace(batchsize=3)
    assert R2D2Config.from_dict(CFG.to_dict()) == CFG


def test_learning_rate_decays_linearly_then_stays():
    cfg = CFG.replace(learning_rate=1e-3, learning_rate_decay_steps=4, learning_rate_end_fraction=0.1)
    learner = R2D2Learner(cfg, NET)
    data, weights = random_batch(cfg, NET, seed=2)
    rates = []
    for _ in range(6):
        rates.append(float(learner.optimizer.learning_rate))
        learner.step(data, weights)
    np.testing.assert_allclose(rates, [1e-3, 7.75e-4, 5.5e-4, 3.25e-4, 1e-4, 1e-4], rtol=1e-5)
    assert float(R2D2Learner(CFG, NET).optimizer.learning_rate) == pytest.approx(CFG.learning_rate)


def test_direct_graph_call_equals_the_tf_function_and_falls_back_on_other_inputs():
    """After the first step the learner calls its traced graph directly; the numbers are
    those of the tf.function, and inputs unlike the trace's still go through it."""
    import tensorflow as tf

    direct, reference = R2D2Learner(CFG, NET), R2D2Learner(CFG, NET)
    reference.online.set_weights(direct.online.get_weights())
    reference.target.set_weights(direct.target.get_weights())
    for seed in range(3):
        data, weights = random_batch(CFG, NET, seed=seed)
        got = direct.step(data, weights)
        packed = reference._step_fn(reference._select(data), tf.constant(weights, tf.float32)).numpy()
        np.testing.assert_allclose(got.priorities, packed[:CFG.batch_size], rtol=1e-6)
        assert list(got.metrics.values()) == pytest.approx(packed[CFG.batch_size:].tolist(), rel=1e-6)
    assert direct._graph not in (None, False)  # the direct path was taken
    for a, b in zip(direct.online.get_weights(), reference.online.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    signature, caller = direct._graph.signature, direct._graph.caller
    calls = []
    direct._graph = direct._graph._replace(caller=lambda *args: calls.append(len(args)) or caller(*args))
    data, weights = random_batch(CFG, NET, seed=5)
    direct.step(data, weights)
    assert calls == [len(signature)]  # replay-like numpy input: the direct call
    direct.step(data, weights.astype(np.float64))
    assert calls == [len(signature)]  # float64 weights: the tf.function's way
    data["observation"] = data["observation"].astype(np.float64)  # another dtype: the tf.function's way
    assert np.isfinite(direct.step(data, weights).metrics["loss"])
    assert calls == [len(signature)]
    data["observation"] = data["observation"][..., :2]  # a wrong shape: refused, not silently fed
    with pytest.raises((ValueError, TypeError, tf.errors.InvalidArgumentError)):
        direct.step(data, weights)


@pytest.mark.parametrize("stateful", [True, False])
def test_steps_in_one_call_equal_the_same_steps_one_by_one(stateful):
    """``steps`` runs K learner steps in one graph call: the same priorities, metrics,
    weights, optimizer state and target copies as K calls of ``step`` on the same batches,
    for K changing from call to call (one trace)."""
    from r2d2_state.replay import per_batch_weights

    cfg = CFG.replace(target_update_period=2, learning_rate_decay_steps=4, policy_average_rate=0.3)
    core = "stateful" if stateful else "stateless"
    fused, single = R2D2Learner(cfg, NET, core=core), R2D2Learner(cfg, NET, core=core)
    single.online.set_weights(fused.online.get_weights())
    single.target.set_weights(fused.target.get_weights())
    single.averaged.set_weights(fused.averaged.get_weights())
    seed = 0
    for k in (3, 1, 2):
        batches = [random_batch(cfg, NET, seed=seed + j) for j in range(k)]
        seed += k
        data = {name: np.concatenate([d[name] for d, _ in batches]) if name != "start_state" else
                [[np.concatenate([d[name][0][i] for d, _ in batches]) for i in range(2)]] for name in batches[0][0]}
        weights = np.concatenate([w for _, w in batches])
        got = fused.steps(data, weights)
        assert len(got) == k
        for (batch, w), result in zip(batches, got):
            want = single.step(batch, w)
            np.testing.assert_allclose(result.priorities, want.priorities, rtol=1e-5, atol=1e-6)
            assert list(result.metrics.values()) == pytest.approx(list(want.metrics.values()), rel=1e-5, abs=1e-6)
        assert int(fused.num_steps.numpy()) == int(single.num_steps.numpy())
        for a, b in zip(fused.online.get_weights() + fused.target.get_weights() + fused.get_policy_weights(),
                        single.online.get_weights() + single.target.get_weights() + single.get_policy_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(fused.optimizer.variables, single.optimizer.variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
    assert fused._steps_graph is not None and fused.trace_count == 1  # K changed, no new trace
    # per-batch normalisation: each batch's largest weight is 1
    w = per_batch_weights(np.array([0.5, 0.25, 1.0, 2.0], np.float32), 2)
    np.testing.assert_allclose(w, [1.0, 0.5, 0.5, 1.0])
    with pytest.raises(ValueError, match="K \\* batch_size rows"):
        fused.steps({k: v[:-1] for k, v in data.items() if k != "start_state"} | {"start_state": data["start_state"]},
                    weights[:-1])
