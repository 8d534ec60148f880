"""The numpy T-maze vector env is a drop-in for SyncVectorEnv over TMazeEnv."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import envs
from envs.tmaze import TMazeEnv


def _stream(vec, actions, seed, reseed_at=None):
    obs, _ = vec.reset(seed=seed)
    out = [(obs, None, None, None)]
    for k, action in enumerate(actions):
        if k == reseed_at:
            obs, _ = vec.reset(seed=seed + 100)
            out.append((obs, None, None, None))
            continue
        obs, reward, terminated, truncated, _ = vec.step(action)
        out.append((obs, reward, terminated, truncated))
    return out


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(corridor_length=3),
        dict(corridor_length=2, max_steps=4, step_penalty=0.01, wrong_reward=0.0),
    ],
)
def test_same_stream_as_sync_vector_env(kwargs):
    num_envs, steps = 7, 400
    rng = np.random.default_rng(0)
    # Mostly forward so episodes end by a decision as well as by truncation.
    actions = rng.choice(3, p=[0.6, 0.2, 0.2], size=(steps, num_envs))
    sync = SyncVectorEnv([lambda: TMazeEnv(**kwargs) for _ in range(num_envs)])
    native = envs.TMazeVectorEnv(num_envs, **kwargs)
    expected = _stream(sync, actions, seed=5, reseed_at=200)
    got = _stream(native, actions, seed=5, reseed_at=200)
    ends = 0
    for (o1, r1, te1, tr1), (o2, r2, te2, tr2) in zip(expected, got, strict=True):
        np.testing.assert_array_equal(o2, o1)
        assert o2.dtype == o1.dtype == np.float32
        if r1 is not None:
            np.testing.assert_array_equal(r2, r1)
            np.testing.assert_array_equal(te2, te1)
            np.testing.assert_array_equal(tr2, tr1)
            ends += int(te1.sum() + tr1.sum())
    assert ends > 50  # the comparison covered many autoresets


def test_next_step_autoreset_semantics():
    vec = envs.TMazeVectorEnv(2, corridor_length=1)
    assert vec.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    vec.reset(seed=0)
    vec.step(np.array([0, 0]))  # both at the junction
    _, reward, terminated, _, _ = vec.step(np.array([1, 0]))  # env 0 decides
    assert terminated.tolist() == [True, False] and reward[0] in (-1.0, 1.0)
    obs, reward, terminated, truncated, _ = vec.step(np.array([1, 1]))
    # env 0: the action is ignored, a new episode starts (cue visible, reward 0, no flags)
    assert reward[0] == 0.0 and not terminated[0] and not truncated[0]
    assert obs[0, :2].sum() == 1.0 and obs[0, 3] == 0.0
    with pytest.raises(ValueError, match="NEXT_STEP only"):
        envs.TMazeVectorEnv(2, autoreset_mode=AutoresetMode.SAME_STEP)
    with pytest.raises(ValueError, match="actions must have shape"):
        vec.step(np.array([0]))
