"""Ids and packages: ``module:EnvId``, ``env_packages``, and one-line errors that say whether the
package is missing or the id unknown, with Gymnasium's close-match suggestion."""

from __future__ import annotations

import importlib.util
import sys
import types

import gymnasium as gym
import numpy as np
import pytest

import envs

HAS_MINIGRID = importlib.util.find_spec("minigrid") is not None
needs_minigrid = pytest.mark.skipif(not HAS_MINIGRID, reason="needs the [minigrid] extra")


@pytest.fixture
def fake_package(monkeypatch):
    """A module that registers ``FakePkg-v0`` (CartPole) when imported, and not before."""
    monkeypatch.delitem(sys.modules, "r2d2_fake_envs", raising=False)
    gym.registry.pop("FakePkg-v0", None)
    module = types.ModuleType("r2d2_fake_envs")

    class Finder:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name != "r2d2_fake_envs":
                return None
            from importlib.machinery import ModuleSpec

            class Loader:
                def create_module(self, spec):
                    return module

                def exec_module(self, mod):
                    gym.register("FakePkg-v0", entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv",
                                 max_episode_steps=50)

            return ModuleSpec(name, Loader())

    monkeypatch.setattr(sys, "meta_path", [Finder, *sys.meta_path])
    yield "r2d2_fake_envs"
    gym.registry.pop("FakePkg-v0", None)


def test_package_id_is_unknown_until_its_package_is_imported(fake_package):
    with pytest.raises(envs.EnvIdError, match=r"unknown environment id 'FakePkg-v0'.*--env-package PACKAGE"):
        envs.make_env("FakePkg-v0")
    env = envs.make_env("FakePkg-v0", env_packages=[fake_package])
    assert env.spec.id == "FakePkg-v0"


def test_module_colon_id(fake_package):
    vec = envs.make_vector_env(f"{fake_package}:FakePkg-v0", 2, seed=0)
    assert envs.describe_env(vec).env_id == "FakePkg-v0"


@pytest.mark.parametrize("make", [envs.make_env, lambda i, **k: envs.make_vector_env(i, 2, **k)])
def test_unknown_id_suggests_close_ids(make):
    with pytest.raises(envs.EnvIdError) as info:
        make("CartPol-v1")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("unknown environment id 'CartPol-v1': ")
    assert "Did you mean: `CartPole`?" in message  # Gymnasium's own suggestion


def test_unknown_version_names_the_versions():
    with pytest.raises(envs.EnvIdError) as info:
        envs.make_env("CartPole-v9")
    assert str(info.value) == (
        "unknown environment id 'CartPole-v9': Environment version `v9` for environment `CartPole` doesn't "
        "exist. It provides versioned environments: [ `v0`, `v1` ]; close registered ids: CartPole-v1, CartPole-v0")


@pytest.mark.parametrize("env_id, packages, words", [
    ("no_such_pkg:Foo-v0", (), "environment 'no_such_pkg:Foo-v0': environment package 'no_such_pkg' is not installed"),
    ("CartPole-v1", ("no_such_pkg",), "--env-package no_such_pkg: environment package 'no_such_pkg' is not installed"),
])
def test_missing_package_is_named(env_id, packages, words):
    with pytest.raises(envs.EnvIdError) as info:
        envs.make_vector_env(env_id, 2, env_packages=packages)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_a_package_failing_on_its_own_dependency_is_not_called_missing(monkeypatch):
    from importlib.machinery import ModuleSpec

    class Finder:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name != "r2d2_broken_envs":
                return None

            class Loader:
                def create_module(self, spec):
                    return None

                def exec_module(self, mod):
                    import r2d2_missing_dependency  # noqa: F401

            return ModuleSpec(name, Loader())

    monkeypatch.setattr(sys, "meta_path", [Finder, *sys.meta_path])
    with pytest.raises(ModuleNotFoundError, match="r2d2_missing_dependency"):
        envs.import_env_packages(["r2d2_broken_envs"])


@needs_minigrid
@pytest.mark.parametrize("how", ["module", "package"])
def test_minigrid_memory_by_module_or_package(how):
    kwargs = {"env_packages": ["minigrid"]} if how == "package" else {}
    env_id = "minigrid:MiniGrid-MemoryS7-v0" if how == "module" else "MiniGrid-MemoryS7-v0"
    vec = envs.make_vector_env(env_id, 2, seed=0, **kwargs)
    d = envs.describe_env(vec)
    assert (d.obs_shape, d.obs_dtype, d.image_shape, d.num_actions) == ((151,), np.uint8, (7, 7, 3), 7)
    assert any("mission" in note for note in d.conversion.notes)
    obs, *_ = vec.step(np.zeros(2, np.int64))
    assert obs.shape == (2, 151) and obs[:, 147:].sum() == 2  # the direction one-hot


@needs_minigrid
def test_minigrid_typo_gets_close_match():
    with pytest.raises(envs.EnvIdError, match=r"'minigrid:MiniGrid-MemoryS8-v0'.*Did you mean: `MiniGrid-MemoryS9`"):
        envs.make_env("minigrid:MiniGrid-MemoryS8-v0")
