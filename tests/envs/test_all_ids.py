"""Every registered id with Discrete / MultiDiscrete actions trains: make_vector_env ->
describe_env -> network build -> actor steps -> adder -> replay -> learner steps.

Ids: Gymnasium's classic control and toy text (Box2D and ALE where their extras are installed),
MiniGrid's memory tasks (with the [minigrid] extra) and this project's. An id whose package is
missing is skipped with the reason; ids with continuous actions are not collected.
"""

from __future__ import annotations

import importlib.util
import json
import os

import gymnasium as gym
import pytest
from gymnasium import spaces

import envs
from agents.r2d2.config import R2D2Config
from agents.r2d2.loop import TrainingLoop
from agents.r2d2.train_config import TrainConfig
from r2d2_state.network_config import QNetworkConfig

HAS_MINIGRID = importlib.util.find_spec("minigrid") is not None
if HAS_MINIGRID:
    import minigrid  # noqa: F401 - registers the MiniGrid ids

FAMILIES = ("gymnasium.envs.classic_control", "gymnasium.envs.toy_text", "gymnasium.envs.box2d")
MINIGRID_MEMORY_IDS = ["MiniGrid-MemoryS7-v0", "MiniGrid-MemoryS9-v0", "MiniGrid-MemoryS11-v0",
                       "MiniGrid-MemoryS13-v0", "MiniGrid-MemoryS13Random-v0", "MiniGrid-MemoryS17Random-v0"]
ALE_IDS = ["ALE/Pong-v5", "ALE/Breakout-v5"]


def _entry_module(spec: gym.envs.registration.EnvSpec) -> str:
    entry = spec.entry_point
    return entry.split(":")[0] if isinstance(entry, str) else getattr(entry, "__module__", "")


def _collect() -> list:
    params = []
    for env_id, spec in sorted(gym.registry.items()):
        ours = env_id.startswith(envs.NAMESPACE + "/")
        if not ours and not _entry_module(spec).startswith(FAMILIES):
            continue
        try:
            env = gym.make(env_id)
        except (ImportError, gym.error.DependencyNotInstalled) as error:
            reason = " ".join(str(error).split())[:160]
            params.append(pytest.param(env_id, marks=pytest.mark.skip(reason=f"not installed: {reason}"),
                                       id=env_id))
            continue
        action_space = env.action_space
        env.close()
        if isinstance(action_space, (spaces.Discrete, spaces.MultiDiscrete)):
            params.append(pytest.param(env_id, id=env_id))
    minigrid_skip = pytest.mark.skipif(not HAS_MINIGRID, reason="needs the [minigrid] extra")
    params += [pytest.param(i, marks=minigrid_skip, id=i) for i in MINIGRID_MEMORY_IDS]
    has_ale = all(importlib.util.find_spec(m) is not None for m in ("ale_py", "cv2"))
    ale_skip = pytest.mark.skipif(not has_ale, reason="needs the [atari] extra (ale-py, opencv)")
    params += [pytest.param(i, marks=ale_skip, id=i) for i in ALE_IDS]
    return params


def _tiny_config(env_id: str, tmp_path) -> TrainConfig:
    return TrainConfig(
        env_id=env_id, total_env_steps=24, min_replay_size=2, replay_ratio=1.0, eval_every=0,
        eval_episodes=1, checkpoint_every=0, log_every=1000, progress="none", run_dir=str(tmp_path / "run"),
        r2d2=R2D2Config(burn_in=1, trace_length=2, sequence_period=2, n_step=1, replay_capacity=50,
                        batch_size=2, target_update_period=2,
                        network=QNetworkConfig(mlp_units=(8,), lstm_units=(8,), head_units=8),
                        num_envs=2, actor_update_period=2),
    )


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
@pytest.mark.parametrize("env_id", _collect())
def test_id_trains_end_to_end(env_id, tmp_path):
    vec = envs.make_vector_env(env_id, 2, seed=0)
    description = envs.describe_env(vec)
    vec.close()
    assert description.num_actions >= 1
    loop = TrainingLoop(_tiny_config(env_id, tmp_path))
    result = loop.run()
    assert result.env_steps >= 24 and result.learner_steps >= 1
    with open(os.path.join(result.run_dir, "env.json")) as file:
        record = json.load(file)
    assert record["env_id"] == env_id and record["num_actions"] == description.num_actions
    assert tuple(record["observation_shape"]) == description.obs_shape


def test_registered_families_are_collected():
    ids = {p.values[0] for p in _collect()}
    assert {"CartPole-v1", "Acrobot-v1", "MountainCar-v0", "FrozenLake-v1", "Taxi-v4", "Blackjack-v1",
            "CliffWalking-v1", envs.TMAZE_ID, envs.CARTPOLE_NO_VELOCITY_ID} <= ids
    assert "Pendulum-v1" not in ids  # continuous actions
