"""scripts/train.py and scripts/evaluate.py as a user runs them (subprocesses).

- SIGINT finishes the step, checkpoints and exits 0;
- ``kill -9`` after a checkpoint, then ``--resume``, continues from exactly the
  checkpointed counters and replay (nothing checkpointed is lost);
- evaluate.py writes eval.json and learning_curve.png, and refuses a corrupt checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, "scripts", "train.py")
EVALUATE = os.path.join(ROOT, "scripts", "evaluate.py")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


def _run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=ENV, cwd=ROOT)


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV, cwd=ROOT)


def _wait_for(predicate, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process.poll() is not None:
            raise AssertionError(f"process exited early ({process.returncode}): {process.stderr.read()[-3000:]}")
        time.sleep(0.2)
    process.kill()
    raise AssertionError("timed out")


def _latest_state(run_dir: str) -> dict | None:
    ckpts = os.path.join(run_dir, "checkpoints")
    try:
        with open(os.path.join(ckpts, "latest")) as file:
            name = file.read().strip()
        with open(os.path.join(ckpts, name, "state.json")) as file:
            return json.load(file)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _smoke_args(run_dir: str, *extra: str) -> list[str]:
    return [TRAIN, "--preset", "smoke", "--run_dir", run_dir, "--progress", "plain", *extra]


@pytest.mark.slow
def test_sigint_writes_checkpoint_and_exits_zero(tmp_path):
    run_dir = str(tmp_path / "run")
    process = _start(*_smoke_args(run_dir, "--total_env_steps", "100000000", "--log_every", "100"))
    _wait_for(lambda: os.path.exists(os.path.join(run_dir, "metrics.csv")), process)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-3000:]
    assert "stopped by signal" in out
    state = _latest_state(run_dir)
    assert state is not None and state["env_steps"] > 0


@pytest.mark.slow
def test_kill9_then_resume_loses_nothing_checkpointed(tmp_path):
    run_dir = str(tmp_path / "run")
    process = _start(*_smoke_args(run_dir, "--total_env_steps", "100000000", "--checkpoint_every", "400"))
    _wait_for(lambda: (_latest_state(run_dir) or {}).get("learner_steps", 0) > 0, process)
    process.kill()  # SIGKILL: no handler, no final checkpoint
    process.communicate(timeout=30)
    checkpointed = _latest_state(run_dir)
    steps = checkpointed["env_steps"]

    resumed = _run(TRAIN, "--resume", run_dir, "--total_env_steps", str(steps + 400), "--progress", "plain")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (f"from ckpt-{steps:012d}: {steps:,d} env steps, {checkpointed['learner_steps']:,d} learner steps, "
            f"replay {checkpointed['replay_size']:,d}") in resumed.stdout
    final = _latest_state(run_dir)
    assert final["env_steps"] >= steps + 400
    assert final["learner_steps"] > checkpointed["learner_steps"]
    assert final["inserted_sequences"] > checkpointed["inserted_sequences"]
    assert final["resumes"] == checkpointed["resumes"] + 1
    # metrics.csv has no rows from the lost stretch twice.
    with open(os.path.join(run_dir, "metrics.csv")) as file:
        rows = [line.split(",")[0] for line in file.read().splitlines()[1:]]
    assert len(rows) == len(set(rows))

    # evaluate.py on the same run: JSON + PNG.
    evaluated = _run(EVALUATE, run_dir, "--episodes", "6")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "+-" in evaluated.stdout and "min" in evaluated.stdout and "max" in evaluated.stdout
    with open(os.path.join(run_dir, "eval.json")) as file:
        result = json.load(file)
    assert result["episodes"] == 6 and len(result["returns"]) == 6
    with open(os.path.join(run_dir, "learning_curve.png"), "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"

    # A truncated checkpoint: both scripts refuse it (exit 2), naming the file; nothing changes.
    latest = os.path.join(run_dir, "checkpoints", f"ckpt-{final['env_steps']:012d}", "replay.npz")
    with open(latest, "r+b") as file:
        file.truncate(100)
    listing = sorted(os.listdir(os.path.join(run_dir, "checkpoints")))
    for args in ([EVALUATE, run_dir], [TRAIN, "--resume", run_dir]):
        refused = _run(*args)
        assert refused.returncode == 2
        assert "replay.npz" in refused.stderr and "corrupt" in refused.stderr
    assert sorted(os.listdir(os.path.join(run_dir, "checkpoints"))) == listing


def test_help_lists_every_field():
    result = _run(TRAIN, "--help", timeout=120)
    assert result.returncode == 0
    for flag in ("--r2d2.batch_size", "--replay_ratio", "--env ENV_ID", "--resume RUN_DIR", "--preset"):
        assert flag in result.stdout


def test_print_config_applies_overrides():
    result = _run(TRAIN, "--preset", "tmaze", "--env", "CartPole-v1", "--r2d2.lstm_units", "32",
                  "--print-config", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    config = json.loads(result.stdout)
    assert config["env_id"] == "CartPole-v1" and config["env_kwargs"] == {}
    assert config["r2d2"]["lstm_units"] == [32]


def test_an_env_without_a_preset_gets_the_generic_memory_preset():
    from agents.r2d2.presets import DEFAULT_PRESET, GENERIC_PRESET, get_preset

    generic, default = get_preset(GENERIC_PRESET), get_preset(DEFAULT_PRESET)
    assert generic.r2d2 != default.r2d2
    result = _run(TRAIN, "--env", "CartPole-v1", "--print-config", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    config = json.loads(result.stdout)
    assert config["env_id"] == "CartPole-v1" and config["env_kwargs"] == {}
    assert config["r2d2"]["discount"] == generic.r2d2.discount
    assert config["replay_ratio"] == generic.replay_ratio
    # No --env: the default preset, unchanged.
    plain = json.loads(_run(TRAIN, "--print-config", timeout=120).stdout)
    assert plain["env_id"] == default.env_id and plain["r2d2"]["discount"] == default.r2d2.discount
