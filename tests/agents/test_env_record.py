"""Runs record their env (``env.json``: id, packages, conversion) and ``--env-package`` is part of
the config, so ``--resume`` and ``evaluate.py RUN_DIR`` rebuild exactly the same env."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from importlib.machinery import ModuleSpec

import gymnasium as gym
import pytest

from agents.r2d2.evaluation import evaluate_run
from agents.r2d2.loop import TrainingLoop
from agents.r2d2.presets import get_preset
from agents.r2d2.train_config import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import train as train_script  # noqa: E402

PACKAGE, ENV_ID = "r2d2_record_envs", "RecordPkg-v0"


@pytest.fixture
def package(monkeypatch):
    """A module that registers ENV_ID (a T-maze) when imported, and counts its imports."""
    imports = []

    class Finder:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name != PACKAGE:
                return None

            class Loader:
                def create_module(self, spec):
                    return None

                def exec_module(self, module):
                    imports.append(name)
                    gym.register(ENV_ID, entry_point="envs.tmaze:TMazeEnv", reward_threshold=0.9,
                                 kwargs={"corridor_length": 2})

            return ModuleSpec(name, Loader())

    def forget():
        sys.modules.pop(PACKAGE, None)
        gym.registry.pop(ENV_ID, None)

    forget()
    monkeypatch.setattr(sys, "meta_path", [Finder, *sys.meta_path])
    yield imports, forget
    forget()


def _resolve(*argv: str) -> TrainConfig:
    return train_script.parse_args(list(argv))[1]


def test_env_package_flag_is_repeatable_and_stored():
    config = _resolve("--preset", "smoke", "--env", "X-v0", "--env-package", "a", "--env-package", "b",
                      "--env-package", "a")
    assert config.env_packages == ("a", "b")
    assert TrainConfig.from_dict(json.loads(config.to_json())) == config
    if importlib.util.find_spec("minigrid") is not None:
        assert _resolve("--preset", "minigrid_memory", "--env-package", "c").env_packages == ("minigrid", "c")


def test_bad_id_fails_before_the_run_dir_exists(tmp_path, capsys):
    # Configuration errors: one `error:` line on stderr, exit status 2, nothing on disk.
    run_dir = tmp_path / "run"
    assert train_script.main(["--preset", "smoke", "--env", "CartPol-v1", "--run_dir", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown environment id 'CartPol-v1': ") and len(err.splitlines()) == 1
    assert "Did you mean: `CartPole`?" in err
    assert train_script.main(["--preset", "smoke", "--env-package", "no_such_pkg", "--run_dir", str(run_dir)]) == 2
    assert "environment package 'no_such_pkg' is not installed" in capsys.readouterr().err
    assert not run_dir.exists()


def test_run_records_env_and_evaluation_rebuilds_it(package, tmp_path):
    imports, forget = package
    config = get_preset("smoke").replace(env_id=ENV_ID, env_packages=(PACKAGE,), env_kwargs={},
                                         total_env_steps=100, log_every=20, progress="none",
                                         run_dir=str(tmp_path / "run"))
    result = TrainingLoop(config).run()
    with open(os.path.join(result.run_dir, "env.json")) as file:
        record = json.load(file)
    assert record["env_id"] == ENV_ID and record["env_packages"] == [PACKAGE]
    assert record["conversion"]["observation"].startswith("Box(0.0, 1.0, (4,), float32)")
    assert record["observation_shape"] == [4] and record["num_actions"] == 3
    assert "gymnasium" in record["package_versions"]

    forget()  # a fresh process: evaluation must import the package from the config
    out = evaluate_run(result.run_dir, episodes=2)
    assert out["env_id"] == ENV_ID and imports == [PACKAGE, PACKAGE]

    record["conversion"]["observation"] = "something else"
    with open(os.path.join(result.run_dir, "env.json"), "w") as file:
        json.dump(record, file)
    with pytest.raises(ValueError, match=r"differs from the run's env.json: conversion: recorded"):
        evaluate_run(result.run_dir, episodes=2)


def test_env_actions_are_recorded_and_evaluation_rebuilds_them(tmp_path):
    config = get_preset("smoke").replace(env_actions=(2, 1, 0), total_env_steps=100, log_every=20,
                                         progress="none", run_dir=str(tmp_path / "run"))
    result = TrainingLoop(config).run()
    with open(os.path.join(result.run_dir, "env.json")) as file:
        record = json.load(file)
    assert record["env_actions"] == [2, 1, 0]
    assert record["conversion"]["action"] == "Discrete(3) (env actions [2, 1, 0])"
    with open(os.path.join(result.run_dir, "config.json")) as file:
        assert json.load(file)["env_actions"] == [2, 1, 0]
    assert evaluate_run(result.run_dir, episodes=2)["episodes"] == 2

    record["env_actions"] = [0, 1, 2]
    with open(os.path.join(result.run_dir, "env.json"), "w") as file:
        json.dump(record, file)
    with pytest.raises(ValueError, match=r"env_actions: recorded \[0, 1, 2\], now \[2, 1, 0\]"):
        evaluate_run(result.run_dir, episodes=2)


@pytest.mark.parametrize("bad", [(1, 1), (-2,), (0.5,)])
def test_bad_env_actions_in_the_config_are_refused(bad):
    with pytest.raises(ValueError, match=r"TrainConfig.env_actions must be distinct ints >= 0"):
        get_preset("smoke").replace(env_actions=bad)
