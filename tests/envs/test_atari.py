"""The Atari (ALE) path: installed by the set-up, and tested rather than skipped."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
HAS_ATARI = all(importlib.util.find_spec(m) is not None for m in ("ale_py", "cv2"))
needs_atari = pytest.mark.skipif(not HAS_ATARI, reason="needs the [atari] extra (ale-py, opencv)")


def _extras_of_pyproject() -> dict[str, str]:
    # A regex rather than tomllib: the project supports Python 3.10, which has no tomllib.
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r"^(\w+)\s*=\s*(\[.*\])$", section, flags=re.M))


def test_make_installs_the_atari_extra():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    (extras,) = re.findall(r'pip install -q -e "\.\[([\w,]+)\]"', makefile)
    installed = extras.split(",")
    assert "atari" in installed, f"the Makefile installs the extras {installed}, without atari"
    declared = _extras_of_pyproject()
    assert set(installed) <= set(declared), (installed, sorted(declared))
    assert "ale-py" in declared["atari"] and "opencv-python-headless" in declared["atari"]
    assert "cramjam" in declared["atari"]  # the atari preset's replay compresses its frames


def test_ci_runs_the_atari_tests():
    # make test installs [atari]: in CI a missing ale-py would silently skip every ALE test.
    if os.environ.get("CI", "").lower() not in ("1", "true"):
        pytest.skip("checked in CI only (CI=true), where make test installed the extras")
    assert HAS_ATARI, "CI ran without ale-py / opencv: the ALE tests would be skipped"


@needs_atari
def test_ale_py_ships_the_pong_rom():
    from ale_py import roms

    assert pathlib.Path(roms.get_rom_path("pong")).is_file()


@needs_atari
def test_ale_observations_keep_the_stack_axis_first():
    import envs

    env = envs.make_env("ALE/Pong-v5")
    previous, _ = env.reset(seed=0)
    for _ in range(5):
        obs, *_ = env.step(0)
        assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8 and obs.flags["C_CONTIGUOUS"]
        assert env.observation_space.contains(obs)
        # Stack axis first, oldest frame first: the new stack is the old one shifted by one frame.
        np.testing.assert_array_equal(obs[:-1], previous[1:])
        previous = obs
    description = envs.describe_env(env)
    assert description.is_image and description.channels_first and description.num_actions == 6
    assert description.obs_shape == (4, 84, 84) and description.conversion.channels_first
    assert "4x84x84" in description.conversion.observation and "channels first" in description.conversion.observation
    env.close()


@needs_atari
def test_vector_ale_env_gives_the_q_network_its_frame_stacks():
    import envs
    from agents.r2d2.evaluation import network_config_for
    from agents.r2d2.train_config import TrainConfig
    from r2d2_state.networks import QNetworkConfig, build_q_network

    vec = envs.make_vector_env("ALE/Pong-v5", 2, seed=0, frame_stack=3)
    obs, _ = vec.reset()
    description = envs.describe_env(vec)
    assert obs.shape == (2, 3, 84, 84) and description.channels_first
    config = TrainConfig(env_id="ALE/Pong-v5")
    architecture = QNetworkConfig(lstm_units=(8,), head_units=8, conv_dense_units=16)
    config = config.replace(r2d2=config.r2d2.replace(network=architecture))
    network = network_config_for(config, description)
    assert network.channels_first and network.image_frame == (84, 84, 3)
    model = build_q_network(network, stateful=True, batch_size=2)
    q = np.asarray(model({"observation": obs[:, None], "prev_action": np.full((2, 1), -1, np.int32),
                          "prev_reward": np.zeros((2, 1), np.float32), "valid": np.ones((2, 1), np.float32)}))
    assert q.shape == (2, 1, 6) and np.isfinite(q).all()
    assert tuple(model.get_weights()[0].shape) == (8, 8, 3, 32)  # the Nature conv over 3 stacked frames
    vec.close()


@needs_atari
@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
def test_train_and_evaluate_scripts_run_on_pong(tmp_path):
    run_dir = tmp_path / "run"
    tiny = ["--r2d2.burn_in", "1", "--r2d2.trace_length", "2", "--r2d2.sequence_period", "2", "--r2d2.n_step", "1",
            "--r2d2.replay_capacity", "50", "--r2d2.batch_size", "2", "--r2d2.num_envs", "2",
            "--r2d2.network.lstm_units", "8", "--r2d2.network.head_units", "8",
            "--r2d2.network.conv_dense_units", "16", "--r2d2.replay_compression", "lz4"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    # max_episode_steps counts emulator frames (4 per agent step): short episodes for the evaluation.
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), "--env", "ALE/Pong-v5",
         "--env_kwargs", '{"max_episode_steps": 40}', "--total_env_steps", "48", "--min_replay_size", "2",
         "--replay_ratio", "1", "--eval_every", "0", "--checkpoint_every", "0", "--progress", "none",
         "--run_dir", str(run_dir), *tiny, "--evaluate", "--eval_episodes", "2", "--eval_num_envs", "2"],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "stopped by env_steps: 48 env steps" in result.stdout, result.stdout
    record = json.loads((run_dir / "env.json").read_text())
    assert record["observation_shape"] == [4, 84, 84] and record["conversion"]["channels_first"] is True
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert evaluation["episodes"] == 2
    (saved,) = run_dir.glob("**/replay.npz")  # the final checkpoint's replay: frames as LZ4 blocks
    with np.load(saved) as archive:
        assert any(name.endswith("_lz4") for name in archive.files), archive.files


def test_env_records_of_other_envs_are_unchanged_by_the_layout_field():
    import envs

    vec = envs.make_vector_env(envs.TMAZE_ID, 2, seed=0)
    record = envs.env_record(vec, envs.TMAZE_ID)
    vec.close()
    # A run dir recorded before channels_first existed still matches its rebuilt env.
    assert set(record["conversion"]) == {"observation", "image_shape", "action", "notes"}
    envs.check_env_record(json.loads(json.dumps(record)), record)  # as read back from env.json
