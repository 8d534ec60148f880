"""R2D2Policy: loads a run without building a learner, acts as evaluate.py's actor does
(every action, on the same seeds), carries the recurrent state, refuses bad input."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

import envs
from agents.r2d2 import evaluation
from agents.r2d2.actor import R2D2Actor
from agents.r2d2.checkpoint import CheckpointError, CheckpointManager
from agents.r2d2.loop import TrainingLoop
from agents.r2d2.policy import PolicyState, R2D2Policy
from agents.r2d2.presets import get_preset


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("policy") / "run"
    # The T-maze preset solves corridor 5 by 2k env steps: its greedy actions depend on the cue.
    config = get_preset("tmaze").replace(progress="none", run_dir=str(path), total_env_steps=2_000, eval_every=0,
                                         checkpoint_every=1_000, keep_checkpoints=5)
    TrainingLoop(config).run()
    return str(path)


def _evaluate_actions(monkeypatch, config, weights, episodes, epsilon, num_envs, seed):
    """evaluate.py's evaluation (evaluate_weights), recording every action its actor chose."""
    recorded = []
    original = R2D2Actor.select_actions

    def select_actions(self, observation):
        actions, state = original(self, observation)
        recorded.append(actions.copy())
        return actions, state

    monkeypatch.setattr(R2D2Actor, "select_actions", select_actions)
    result, _ = evaluation.evaluate_weights(config, weights, episodes, epsilon, num_envs, seed)
    monkeypatch.undo()
    return np.stack(recorded), result


def _predict_actions(policy, steps, num_envs, seed, **predict_kwargs):
    """The documented loop (NEXT_STEP autoreset) for ``steps`` vector steps."""
    env = policy.make_vector_env(num_envs, seed=seed)
    out, returns = [], np.zeros(num_envs)
    try:
        obs, _ = env.reset(seed=seed)
        state, reward, starts, done = None, None, np.ones(num_envs, bool), np.zeros(num_envs, bool)
        for _ in range(steps):
            actions, state = policy.predict(obs, state, episode_start=starts, reward=reward, **predict_kwargs)
            out.append(actions)
            obs, reward, terminated, truncated, _ = env.step(actions)
            returns += reward
            starts, done = done, terminated | truncated
    finally:
        env.close()
    return np.stack(out), returns


@pytest.mark.parametrize("epsilon,num_envs", [(0.0, 1), (0.0, 4), (0.3, 3)])
def test_predict_gives_evaluate_actions(run_dir, monkeypatch, epsilon, num_envs):
    policy = R2D2Policy.load(run_dir, seed=11)
    weights, _ = CheckpointManager(run_dir).load_weights()
    expected, result = _evaluate_actions(monkeypatch, policy.config, weights, 12, epsilon, num_envs, seed=11)
    actual, returns = _predict_actions(policy, len(expected), num_envs, seed=11, deterministic=epsilon == 0.0,
                                       epsilon=epsilon)
    assert expected.shape == actual.shape and expected.shape[0] > 10
    np.testing.assert_array_equal(actual, expected)
    assert len(np.unique(expected)) > 1  # the comparison is not of constant actions
    assert returns.sum() >= sum(result.returns)  # the quota's episodes are among the loop's


def test_tf_backend_gives_the_numpy_q_values(run_dir):
    numpy_policy = R2D2Policy.load(run_dir)
    tf_policy = R2D2Policy.load(run_dir, backend="tf")
    assert (numpy_policy.backend, tf_policy.backend) == ("numpy", "tf")
    rng = np.random.default_rng(0)
    states = [None, None]
    for t in range(6):
        obs = rng.random((5,) + numpy_policy.observation_shape).astype(np.float32)
        reward = None if t == 0 else rng.random(5)
        starts = rng.random(5) < 0.3
        (q_a, states[0]), (q_b, states[1]) = (p.q_values(obs, s, starts, reward) for p, s in
                                              zip((numpy_policy, tf_policy), states))
        np.testing.assert_allclose(q_a, q_b, atol=1e-5)
        for a, b in zip(states[0].lstm, states[1].lstm):
            np.testing.assert_allclose(a, b, atol=1e-5)


def test_rows_are_independent_and_episode_start_resets_one_row(run_dir):
    policy = R2D2Policy.load(run_dir)
    rng = np.random.default_rng(1)
    obs = [rng.random((3,) + policy.observation_shape).astype(np.float32) for _ in range(3)]
    _, state = policy.predict(obs[0])
    _, state = policy.predict(obs[1], state, reward=np.array([0.5, 0.0, 1.0]))
    q, _ = policy.q_values(obs[2], state, episode_start=[False, True, False], reward=[1.0, 2.0, 0.0])
    # Row 1 starts afresh: as a fresh single-row policy would see it.
    q_fresh, _ = policy.q_values(obs[2][1:2])
    np.testing.assert_allclose(q[1], q_fresh[0], atol=1e-6)
    # Row 0 continues: as row 0 alone, fed the same history.
    _, alone = policy.predict(obs[0][:1])
    _, alone = policy.predict(obs[1][:1], alone, reward=[0.5])
    q_alone, _ = policy.q_values(obs[2][:1], alone, reward=[1.0])
    np.testing.assert_allclose(q[0], q_alone[0], atol=1e-6)
    assert not np.allclose(q[0], q_fresh[0], atol=1e-4)  # the carried state matters


def test_predict_tracks_the_previous_action_and_leaves_its_arguments(run_dir):
    policy = R2D2Policy.load(run_dir)
    obs = np.random.default_rng(2).random((2,) + policy.observation_shape).astype(np.float32)
    actions, state = policy.predict(obs)
    np.testing.assert_array_equal(state.prev_action, actions)
    before = [[a.copy() for a in layer] for layer in state.lstm]
    forced = state._replace(prev_action=(actions + 1) % policy.num_actions)
    q_taken, _ = policy.q_values(obs, state, reward=[0.0, 0.0])
    q_other, _ = policy.q_values(obs, forced, reward=[0.0, 0.0])
    assert not np.allclose(q_taken, q_other)  # the previous action is fed
    for layer, old in zip(state.lstm, before):
        for a, b in zip(layer, old):
            np.testing.assert_array_equal(a, b)


def test_state_none_equals_initial_state(run_dir):
    policy = R2D2Policy.load(run_dir)
    obs = np.random.default_rng(3).random((4,) + policy.observation_shape).astype(np.float32)
    q_none, _ = policy.q_values(obs)
    q_zero, _ = policy.q_values(obs, policy.initial_state(4), episode_start=np.ones(4, bool))
    np.testing.assert_array_equal(q_none, q_zero)


def test_load_from_a_checkpoint_directory_or_name(run_dir):
    names = CheckpointManager(run_dir).names()
    assert len(names) >= 2
    older = R2D2Policy.load(os.path.join(run_dir, "checkpoints", names[0]))
    assert older.checkpoint == names[0]
    by_name = R2D2Policy.load(run_dir, checkpoint=names[0])
    latest = R2D2Policy.load(run_dir)
    assert latest.checkpoint == names[-1]
    for a, b in zip(older.network.get_weights(), by_name.network.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(older.network.get_weights(), latest.network.get_weights()))


def test_load_without_env_json_makes_the_env_once(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    os.remove(copy / "env.json")
    policy = R2D2Policy.load(str(copy))
    reference = R2D2Policy.load(run_dir)
    assert policy.network_config == reference.network_config


def test_bad_input_is_refused_with_the_value_named(run_dir):
    policy = R2D2Policy.load(run_dir)
    shape = policy.observation_shape
    obs = np.zeros((2,) + shape, np.float32)
    _, state = policy.predict(obs)
    with pytest.raises(ValueError, match=r"observation must have shape \[N, \*\(4,\)\].*\(2, 5\)"):
        policy.predict(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"pass reward=.*rows \[0, 1\]"):
        policy.predict(obs, state)
    with pytest.raises(ValueError, match=rf"state's h of LSTM layer 0 must have shape \(3, {policy.lstm_units[0]}\)"):
        policy.predict(np.zeros((3,) + shape, np.float32), state, reward=np.zeros(3))
    with pytest.raises(TypeError, match="state must be None or the PolicyState"):
        policy.predict(obs, [[np.zeros((2, 16))] * 2], reward=np.zeros(2))
    with pytest.raises(ValueError, match=r"episode_start must have shape \(2,\)"):
        policy.predict(obs, state, episode_start=[True], reward=np.zeros(2))
    with pytest.raises(ValueError, match=r"reward must be finite, got \[nan, 0.0\]"):
        policy.predict(obs, state, reward=[np.nan, 0.0])
    with pytest.raises(ValueError, match="epsilon must be a number in \\[0, 1\\], got 1.5"):
        policy.predict(obs, state, deterministic=False, epsilon=1.5, reward=np.zeros(2))
    with pytest.raises(ValueError, match=r"state.prev_action must be ints in \[-1, 3\), got \[3, 0\]"):
        policy.predict(obs, state._replace(prev_action=np.array([3, 0])), reward=np.zeros(2))
    # A state whose rows all start afresh needs no reward.
    actions, _ = policy.predict(obs, state, episode_start=[True, True])
    assert actions.shape == (2,) and actions.dtype == np.int32
    assert isinstance(state, PolicyState)


def test_load_refuses_what_is_not_a_run(run_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a run directory"):
        R2D2Policy.load(str(tmp_path))
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    name = CheckpointManager(str(copy)).latest_name()
    with open(copy / "checkpoints" / name / "weights.npz", "ab") as file:
        file.write(b"x")
    with pytest.raises(CheckpointError, match="weights.npz"):
        R2D2Policy.load(str(copy))


def test_make_vector_env_checks_env_json(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    record = (copy / "env.json").read_text().replace('"corridor_length": 5', '"corridor_length": 7')
    (copy / "env.json").write_text(record)
    policy = R2D2Policy.load(run_dir)
    env = policy.make_vector_env(2, seed=0)
    assert envs.describe_env(env).num_actions == policy.num_actions
    env.close()
    with pytest.raises(ValueError, match=r"env_kwargs: recorded \{'corridor_length': 7, .*now \{'corridor_length': 5,"):
        R2D2Policy.load(str(copy), checkpoint=None).make_vector_env(1)


def test_image_network_steps_as_the_actor_does():
    """The TensorFlow path (stateless network, any batch) against the actor's stateful one."""
    from r2d2_state.networks import QNetworkConfig, build_q_network

    config = QNetworkConfig(lstm_units=(8,), head_units=8).for_env((7, 7, 3), 3, image=True)
    weights = build_q_network(config, stateful=False).get_weights()
    policy = R2D2Policy(config, weights)
    actor = R2D2Actor(config, num_envs=2, epsilons=0.0, backend="tf")
    actor.set_weights(weights)
    assert policy.backend == "tf"
    rng = np.random.default_rng(4)
    state, reward = None, None
    starts, done = np.ones(2, bool), np.zeros(2, bool)
    for t in range(6):
        obs = rng.integers(0, 256, (2, 7, 7, 3)).astype(np.uint8)
        actions, _ = actor.select_actions(obs)
        q, _ = policy.q_values(obs, state, starts, reward)
        predicted, state = policy.predict(obs, state, starts, reward=reward)
        np.testing.assert_allclose(q, actor.last_q, atol=1e-5)
        np.testing.assert_array_equal(predicted, actions)
        reward = rng.normal(size=2).astype(np.float32)
        terminated = np.array([t == 2, False])
        actor.observe(actions, reward, terminated, np.zeros(2, bool))
        starts, done = done, terminated
