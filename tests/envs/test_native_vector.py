"""Native vector envs (a spec's ``vector_entry_point``) give the adder what SyncVectorEnv gives.

- CartPole-v1's ``CartPoleVectorEnv`` does not take ``autoreset_mode``: make_vector_env passes
  only what its constructor takes, checks that it runs NEXT_STEP, and uses it;
- on every native env registered: NEXT_STEP semantics (the step after an episode end has
  reward 0, both flags false, a fresh first observation, and ignores the action), the same
  spaces and array dtypes as sync, and for CartPole the same transitions as the single env;
- a native env that cannot stand in (kwargs it does not take, another autoreset mode, other
  spaces) falls back to sync, and ``vectorization="native"`` says why.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.envs.classic_control.cartpole import CartPoleEnv, CartPoleVectorEnv
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv

import envs

NATIVE_IDS = sorted(i for i, s in gym.registry.items()
                    if s.vector_entry_point is not None and not i.startswith("phys2d/"))


def _stream(vec: VectorEnv, steps: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    obs, _ = vec.reset(seed=seed)
    out = []
    for _ in range(steps):
        action = rng.integers(vec.single_action_space.n, size=vec.num_envs)
        next_obs, reward, terminated, truncated, _ = vec.step(action)
        out.append((obs, action, np.asarray(reward), np.asarray(terminated), np.asarray(truncated), next_obs))
        obs = next_obs
    return out


def test_cartpole_uses_its_native_vector_env():
    vec = envs.make_vector_env("CartPole-v1", 4, seed=0)
    assert isinstance(vec.unwrapped, CartPoleVectorEnv)
    assert vec.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert envs.describe_env(vec).obs_shape == (4,)


@pytest.mark.parametrize("env_id", NATIVE_IDS)
def test_native_follows_next_step_and_matches_sync(env_id):
    native = envs.make_vector_env(env_id, 4, seed=0, vectorization="native")
    sync = envs.make_vector_env(env_id, 4, seed=0, vectorization="sync")
    assert isinstance(sync, SyncVectorEnv) and not isinstance(native, SyncVectorEnv)
    assert native.single_observation_space == sync.single_observation_space
    assert native.single_action_space == sync.single_action_space
    native_stream, sync_stream = _stream(native, 300), _stream(sync, 300)
    resets = 0
    for stream in (native_stream, sync_stream):
        ended = np.zeros(4, bool)
        for obs, _, reward, terminated, truncated, _ in stream:
            # The step after an end is a reset step: no reward, no flags.
            assert np.all(reward[ended] == 0) and not terminated[ended].any() and not truncated[ended].any()
            resets += int(ended.sum())
            ended = terminated | truncated
    assert resets > 0, "no episode ended: the probe saw no reset step"
    for (n_obs, _, n_rew, n_term, n_trunc, _), (s_obs, _, s_rew, s_term, s_trunc, _) in zip(
            native_stream, sync_stream):
        assert (n_obs.dtype, n_obs.shape) == (s_obs.dtype, s_obs.shape)
        assert n_term.dtype == s_term.dtype == np.bool_ and n_trunc.dtype == s_trunc.dtype == np.bool_
        assert np.issubdtype(n_rew.dtype, np.floating) and np.issubdtype(s_rew.dtype, np.floating)


def test_cartpole_native_transitions_are_the_single_envs():
    """Same dynamics, reward and flags from every state, and the reset step ignores the action."""
    native = envs.make_vector_env("CartPole-v1", 3, seed=1)
    single = CartPoleEnv()
    single.reset(seed=0)
    ended = np.zeros(3, bool)
    for obs, action, reward, terminated, _, next_obs in _stream(native, 400, seed=1):
        for i in range(3):
            if ended[i]:
                assert np.all(np.abs(next_obs[i]) <= 0.05)  # a fresh start, whatever the action
                continue
            single.state, single.steps_beyond_terminated = obs[i].astype(np.float64), None
            expected, r, term, _, _ = single.step(int(action[i]))
            np.testing.assert_allclose(next_obs[i], expected, rtol=1e-5, atol=1e-6)
            assert (reward[i], terminated[i]) == (r, term)
        ended = terminated.copy()


class _OtherModeVectorEnv(CartPoleVectorEnv):
    metadata = {**CartPoleVectorEnv.metadata, "autoreset_mode": AutoresetMode.SAME_STEP}


class _OtherSpaceVectorEnv(CartPoleVectorEnv):
    def __init__(self, num_envs: int = 1, **kwargs):
        super().__init__(num_envs=num_envs, **kwargs)
        self.single_observation_space = spaces.Box(-np.inf, np.inf, (4,), np.float64)


@pytest.mark.parametrize("vector_cls, why", [
    (_OtherModeVectorEnv, "runs autoreset mode"),
    (_OtherSpaceVectorEnv, "'s spaces .* differ from make_env's"),
])
def test_native_that_cannot_stand_in_falls_back_to_sync(vector_cls, why):
    env_id = f"r2d2_state_test/{vector_cls.__name__}-v0"
    if env_id not in gym.registry:
        gym.register(env_id, entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv",
                     vector_entry_point=vector_cls, max_episode_steps=500)
    assert isinstance(envs.make_vector_env(env_id, 2), SyncVectorEnv)
    with pytest.raises(ValueError, match=f"no usable native vector env: its vector env ?{why}"):
        envs.make_vector_env(env_id, 2, vectorization="native")


def test_kwargs_the_native_env_does_not_take_fall_back_to_sync():
    # CartPoleEnv takes render_mode and sutton_barto_reward, CartPoleVectorEnv too; a kwarg
    # only the single env takes is simulated with a subclass.
    class SingleOnly(CartPoleEnv):
        def __init__(self, extra: int = 0, **kwargs):
            super().__init__(**kwargs)

    env_id = "r2d2_state_test/SingleOnlyKwarg-v0"
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=SingleOnly, vector_entry_point=CartPoleVectorEnv,
                     max_episode_steps=500)
    assert not isinstance(envs.make_vector_env(env_id, 2), SyncVectorEnv)
    assert isinstance(envs.make_vector_env(env_id, 2, extra=1), SyncVectorEnv)
    with pytest.raises(ValueError, match=r"does not take \['extra'\]"):
        envs.make_vector_env(env_id, 2, extra=1, vectorization="native")
