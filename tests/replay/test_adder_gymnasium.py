"""SequenceAdder on a real Gymnasium 1.x SyncVectorEnv (NEXT_STEP autoreset): invariants."""

from __future__ import annotations

import collections

import gymnasium as gym
import numpy as np

from .test_adder import Recorder


def test_cartpole_sequences_are_faithful():
    num_envs, burn_in, trace, period, n_step = 3, 4, 8, 4, 2
    envs = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1", max_episode_steps=30)] * num_envs)
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    adder = Recorder(num_envs=num_envs, burn_in=burn_in, trace_length=trace, period=period, n_step=n_step,
                     store_states=True)
    rng = np.random.default_rng(0)
    obs, _ = envs.reset(seed=0)
    # The "state" encodes (env, episode, step) so every stored step can be traced back.
    episode = np.zeros(num_envs, np.int64)
    step = np.zeros(num_envs, np.int64)
    ended = np.zeros(num_envs, bool)
    log = {}  # (env, episode, step) -> (obs, action, reward, terminated, truncated, state)
    transitions = collections.defaultdict(set)  # (env, episode) -> steps that are transitions
    items = []
    for _ in range(300):
        action = rng.integers(0, 2, num_envs)
        state = [np.stack([np.arange(num_envs), episode, step], axis=1).astype(np.float32),
                 rng.standard_normal((num_envs, 3)).astype(np.float32)]
        next_obs, reward, terminated, truncated, _ = envs.step(action)
        out = adder.add(obs, action, reward, terminated, truncated, state)
        for i in range(num_envs):
            log[i, episode[i], step[i]] = (obs[i], action[i], reward[i], terminated[i], truncated[i],
                                           state[0][i], state[1][i])
            if not ended[i]:
                transitions[i, episode[i]].add(int(step[i]))
        if out is not None:
            items.extend({k: (v[j] if k not in ("start_state", "states") else [x[j] for x in v])
                          for k, v in out.items()} for j in range(out["action"].shape[0]))
        # NEXT_STEP: after a final observation the env starts a new episode.
        step = np.where(ended, 0, step + 1)
        episode = np.where(ended, episode + 1, episode)
        ended = terminated | truncated
        obs = next_obs
    envs.close()
    assert len(items) > 30

    covered = collections.defaultdict(set)
    for item in items:
        valid = item["valid"].astype(bool)
        ids = item["states"][0][valid].astype(np.int64)  # [valid, 3]
        assert (ids[:, :2] == ids[0, :2]).all(), "a sequence mixes episodes"
        env, ep = int(ids[0, 0]), int(ids[0, 1])
        np.testing.assert_array_equal(ids[:, 2], ids[0, 2] + np.arange(len(ids)))  # consecutive
        first_valid = int(np.flatnonzero(valid)[0])
        assert valid[first_valid:first_valid + len(ids)].all()  # one contiguous block
        assert first_valid == 0 or ids[0, 2] == 0  # only episode starts are front-padded
        for t, s in zip(np.flatnonzero(valid), ids[:, 2]):
            o, a, r, term, trunc, h, c = log[env, ep, s]
            np.testing.assert_array_equal(item["observation"][t], o)  # what the env returned
            if item["mask"][t]:
                assert item["action"][t] == a and item["reward"][t] == np.float32(r)
                assert item["discount"][t] == (0.0 if term else 1.0)
                if burn_in <= t < burn_in + trace:
                    covered[env, ep].add(int(s))
            else:
                assert s not in transitions[env, ep]  # the final observation
        # start_state: the state passed together with observation 0 (or step 0 if padded).
        start_step = int(ids[0, 2]) if first_valid == 0 else 0
        np.testing.assert_array_equal(item["start_state"][0], log[env, ep, start_step][5])
        np.testing.assert_array_equal(item["start_state"][1], log[env, ep, start_step][6])
        assert (item["prev_action"][~valid] == -1).all()
        assert (item["observation"][~valid] == 0).all()
    # Every transition of every finished episode is trained in some sequence.
    finished = {key for key in transitions if key[1] < episode[key[0]]}
    assert finished
    for key in finished:
        assert covered[key] == transitions[key], key
