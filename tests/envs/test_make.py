"""make_env / make_vector_env / describe_env on toy spaces and real ids."""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import envs


class ToyEnv(gym.Env):
    """Samples observations from any space; records the last action it received."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, obs_space: spaces.Space, action_space: spaces.Space | None = None):
        self.observation_space = obs_space
        self.action_space = action_space or spaces.Discrete(2)
        self.last_action = None

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        self.last_action = action
        return self.observation_space.sample(), 0.0, False, False, {}


TOY_SPACES = {
    "Discrete": (spaces.Discrete(5), (5,)),
    "DiscreteStart": (spaces.Discrete(3, start=-1), (3,)),
    "MultiDiscrete": (spaces.MultiDiscrete([2, 3]), (5,)),
    "MultiBinary": (spaces.MultiBinary(4), (4,)),
    "BoxFloat64Matrix": (spaces.Box(-1.0, 1.0, (2, 3), np.float64), (6,)),
    "Dict": (
        spaces.Dict({"a": spaces.Discrete(3), "b": spaces.Box(-1.0, 1.0, (2,), np.float64)}),
        (5,),
    ),
    "Tuple": (spaces.Tuple((spaces.Discrete(2), spaces.MultiDiscrete([3, 1]))), (6,)),
    "NestedDict": (
        spaces.Dict({"x": spaces.Tuple((spaces.Discrete(2),)), "y": spaces.MultiBinary(2)}),
        (4,),
    ),
}
IMAGE_SPACES = {
    "ImageHWC": (spaces.Box(0, 255, (8, 6, 3), np.uint8), (8, 6, 3)),
    "ImageHW": (spaces.Box(0, 255, (8, 6), np.uint8), (8, 6, 1)),
}


def _register(name: str, obs_space: spaces.Space, action_space: spaces.Space | None = None) -> str:
    env_id = f"r2d2_state_test/{name}-v0"
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=lambda: ToyEnv(obs_space, action_space))
    return env_id


@pytest.mark.filterwarnings("ignore:.*precision lowered by casting to float32")
@pytest.mark.parametrize("name", sorted(TOY_SPACES))
def test_vector_like_spaces_become_float32_vectors(name):
    space, shape = TOY_SPACES[name]
    env = envs.make_env(_register(name, space))
    obs, _ = env.reset(seed=0)
    assert obs.shape == shape and obs.dtype == np.float32
    assert env.observation_space.shape == shape and env.observation_space.dtype == np.float32
    assert env.observation_space.contains(obs)
    obs, *_ = env.step(0)
    assert obs.shape == shape and obs.dtype == np.float32
    description = envs.describe_env(env)
    assert (description.obs_shape, description.is_image) == (shape, False)


def test_one_hot_values():
    env = envs.make_env(_register("MultiDiscrete", TOY_SPACES["MultiDiscrete"][0]))
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        assert obs[:2].sum() == 1.0 and obs[2:].sum() == 1.0
        assert set(np.unique(obs)) <= {0.0, 1.0}


@pytest.mark.parametrize("name", sorted(IMAGE_SPACES))
def test_uint8_images_stay_images(name):
    space, shape = IMAGE_SPACES[name]
    env = envs.make_env(_register(name, space))
    obs, _ = env.reset(seed=0)
    assert obs.shape == shape and obs.dtype == np.uint8
    description = envs.describe_env(env)
    assert description.is_image and description.obs_shape == shape
    assert description.obs_dtype == np.uint8 and description.num_actions == 2


def test_channels_first_image_is_refused():
    with pytest.raises(ValueError, match=r"shape \(4, 32, 32\), expected an HxWxC image"):
        envs.make_env(_register("ChannelsFirst", spaces.Box(0, 255, (4, 32, 32), np.uint8)))


def test_dict_with_image_part_becomes_flat_uint8_with_image_first():
    space = spaces.Dict({"pixels": IMAGE_SPACES["ImageHWC"][0], "v": spaces.Discrete(2)})
    env = envs.make_env(_register("DictImage", space))
    obs, _ = env.reset(seed=0)
    raw = env.unwrapped.observation_space.sample()  # same layout as what the env returned
    assert obs.shape == (8 * 6 * 3 + 2,) and obs.dtype == np.uint8
    assert env.observation_space.contains(obs)
    packed = env.observation(raw)
    np.testing.assert_array_equal(packed[:144], raw["pixels"].reshape(-1))
    np.testing.assert_array_equal(packed[144:], np.eye(2, dtype=np.uint8)[raw["v"]])
    description = envs.describe_env(env)
    assert description.image_shape == (8, 6, 3) and not description.is_image
    assert description.obs_dtype == np.uint8 and description.obs_shape == (146,)


def test_dict_with_image_and_float_box_is_float32():
    space = spaces.Dict({"pixels": spaces.Box(0, 255, (5, 5), np.uint8),
                         "x": spaces.Box(-1.0, 1.0, (3,), np.float64)})
    env = envs.make_env(_register("DictImageFloat", space))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (28,) and obs.dtype == np.float32
    assert envs.describe_env(env).image_shape == (5, 5, 1)


def test_two_image_parts_are_refused():
    image = IMAGE_SPACES["ImageHWC"][0]
    with pytest.raises(ValueError, match=r"2 image parts \(\['a'\], \['b'\]\); at most one"):
        envs.make_env(_register("TwoImages", spaces.Dict({"a": image, "b": image})))


class TextEnv(ToyEnv):
    """Dict(image, Text mission); the mission changes within the episode if ``changing``."""

    def __init__(self, changing: bool):
        super().__init__(spaces.Dict({"image": spaces.Box(0, 10, (3, 3, 2), np.uint8),
                                      "mission": spaces.Text(20)}))
        self.changing, self.t = changing, 0

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return {"image": np.zeros((3, 3, 2), np.uint8), "mission": "go left"}, {}

    def step(self, action):
        self.t += 1
        mission = f"go left {self.t}" if self.changing else "go left"
        return {"image": np.full((3, 3, 2), self.t, np.uint8), "mission": mission}, 0.0, False, False, {}


@pytest.mark.parametrize("changing", [False, True])
def test_text_part_is_dropped_if_constant_within_the_episode(changing):
    env_id = f"r2d2_state_test/Text{changing}-v0"
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=lambda: TextEnv(changing))
    env = envs.make_env(env_id)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (18,) and obs.dtype == np.uint8
    assert any("dropped Text part ['mission']" in note for note in envs.describe_env(env).conversion.notes)
    if changing:
        with pytest.raises(ValueError, match=r"Text part \['mission'\] changed within an episode"):
            env.step(0)
    else:
        obs, *_ = env.step(0)
        np.testing.assert_array_equal(obs, np.ones(18, np.uint8))


@pytest.mark.parametrize(
    "space", [spaces.Text(5), spaces.Dict({"s": spaces.Sequence(spaces.Discrete(2))})]
)
def test_space_without_vector_form_is_refused(space):
    with pytest.raises(ValueError, match="no fixed-size vector form"):
        envs.make_env(_register(f"NoVector{type(space).__name__}", space))


def test_discrete_action_start_is_shifted_to_zero():
    env = envs.make_env(_register("ActionStart", spaces.Discrete(2), spaces.Discrete(3, start=1)))
    assert env.action_space == spaces.Discrete(3)
    env.reset(seed=0)
    env.step(0)
    assert env.unwrapped.last_action == 1


@pytest.mark.parametrize("make", [envs.make_env, lambda i: envs.make_vector_env(i, 2)])
def test_continuous_actions_are_refused_naming_the_env(make):
    with pytest.raises(ValueError, match=r"'Pendulum-v1' has action space Box\(-2.0, 2.0"):
        make("Pendulum-v1")


def test_multidiscrete_actions_become_one_discrete_and_the_env_gets_the_tuple():
    env = envs.make_env(_register("MultiAction", spaces.Discrete(2), spaces.MultiDiscrete([2, 3])))
    assert env.action_space == spaces.Discrete(6)
    env.reset(seed=0)
    received = []
    for action in range(6):
        env.step(action)
        received.append(tuple(int(a) for a in env.unwrapped.last_action))
    assert received == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]  # row-major unravel


def test_multidiscrete_with_start_gets_shifted_tuples():
    space = spaces.MultiDiscrete([2, 2], start=[1, -1])
    env = envs.make_env(_register("MultiActionStart", spaces.Discrete(2), space))
    env.reset(seed=0)
    env.step(3)
    assert tuple(int(a) for a in env.unwrapped.last_action) == (2, 0)
    assert envs.describe_env(env).num_actions == 4


def test_huge_multidiscrete_is_refused():
    space = spaces.MultiDiscrete([100, 100])
    with pytest.raises(ValueError, match=r"10000 combined actions, more than 4096"):
        envs.make_env(_register("MultiActionHuge", spaces.Discrete(2), space))


_HAS_ATARI = all(importlib.util.find_spec(m) is not None for m in ("ale_py", "cv2"))


@pytest.mark.skipif(_HAS_ATARI, reason="ale-py and opencv installed")
def test_atari_without_ale_py_says_which_extra_to_install():
    with pytest.raises(ImportError, match=r"pip install -e \.\[atari\]"):
        envs.make_env("ALE/Pong-v5")


@pytest.mark.parametrize("vectorization", ["sync", "native", "auto"])
def test_vector_env_autoreset_mode_and_description(vectorization):
    vec = envs.make_vector_env(envs.TMAZE_ID, 4, seed=0, vectorization=vectorization)
    assert vec.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert isinstance(vec, SyncVectorEnv) == (vectorization == "sync")
    description = envs.describe_env(vec)
    assert dataclasses.replace(description, conversion=None) == envs.EnvDescription(
        obs_shape=(4,),
        obs_dtype=np.dtype(np.float32),
        is_image=False,
        num_actions=3,
        reward_threshold=0.9,
        max_episode_steps=None,
        env_id=envs.TMAZE_ID,
    )


def test_vector_env_seed_is_deterministic_and_kwargs_reach_the_env():
    streams = []
    for vectorization in ("sync", "native"):
        vec = envs.make_vector_env(
            envs.TMAZE_ID, 3, seed=7, vectorization=vectorization, corridor_length=2
        )
        obs, _ = vec.reset()  # no seed: continues from make_vector_env's seeding
        streams.append(obs)
        assert vec.single_observation_space.shape == (4,)
        obs, *_ = vec.step(np.zeros(3, dtype=np.int64))
        np.testing.assert_array_equal(obs[:, 3], [0.5, 0.5, 0.5])  # corridor_length=2
    np.testing.assert_array_equal(streams[0], streams[1])


def test_vector_env_other_modes():
    vec = envs.make_vector_env(
        envs.CARTPOLE_NO_VELOCITY_ID, 2, seed=0, autoreset_mode=AutoresetMode.SAME_STEP
    )
    assert vec.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert envs.describe_env(vec).obs_shape == (2,)
    with pytest.raises(ValueError, match="no native vector env"):
        envs.make_vector_env(envs.CARTPOLE_NO_VELOCITY_ID, 2, vectorization="native")
    # auto falls back to sync for a mode the native T-maze does not implement
    vec = envs.make_vector_env(envs.TMAZE_ID, 2, autoreset_mode=AutoresetMode.SAME_STEP)
    assert isinstance(vec, SyncVectorEnv)


def test_env_actions_keep_a_subset_in_order_and_the_env_gets_its_own_actions():
    env_id = _register("ActionSubset", spaces.Discrete(2), spaces.Discrete(7))
    env = envs.make_env(env_id, env_actions=(0, 1, 2))
    assert env.action_space == spaces.Discrete(3)
    assert envs.describe_env(env).num_actions == 3
    assert envs.describe_env(env).conversion.action == "Discrete(7) -> Discrete(3) (env actions [0, 1, 2])"
    env.reset(seed=0)
    reordered = envs.make_env(env_id, env_actions=[5, 2])
    reordered.reset(seed=0)
    received = []
    for action in (0, 1):
        reordered.step(action)
        received.append(int(reordered.unwrapped.last_action))
    assert received == [5, 2]


def test_env_actions_index_the_flattened_multidiscrete_space():
    env = envs.make_env(_register("ActionSubsetMulti", spaces.Discrete(2), spaces.MultiDiscrete([2, 3])),
                        env_actions=(4,))
    env.reset(seed=0)
    env.step(0)
    assert tuple(int(a) for a in env.unwrapped.last_action) == (1, 1)


@pytest.mark.parametrize("bad", [(0, 7), (1, 1), (-1,), (0.5,), (True,), "012"])
def test_bad_env_actions_name_the_value_and_what_was_expected(bad):
    env_id = _register("ActionSubsetBad", spaces.Discrete(2), spaces.Discrete(7))
    with pytest.raises(ValueError, match=r"env_actions for '.*ActionSubsetBad-v0' must be distinct ints in"):
        envs.make_env(env_id, env_actions=bad)
    with pytest.raises(ValueError, match=r"env_actions"):
        envs.make_vector_env(env_id, 2, env_actions=bad)


def test_env_actions_use_sync_vectorization_and_refuse_native():
    vec = envs.make_vector_env(envs.TMAZE_ID, 3, seed=0, env_actions=(2, 0))
    assert isinstance(vec, SyncVectorEnv) and vec.single_action_space == spaces.Discrete(2)
    assert envs.describe_env(vec).conversion.action.endswith("(env actions [2, 0])")
    vec.step(np.array([0, 1, 0]))
    with pytest.raises(ValueError, match=r"env_actions \[2, 0\] need sync vectorization"):
        envs.make_vector_env(envs.TMAZE_ID, 3, vectorization="native", env_actions=(2, 0))
