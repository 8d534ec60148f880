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


# ---------------------------------------------------------------- failed starts: one line, exit 2, nothing on disk


def _script(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_script_{name}", os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize("flags,words", [
    (["--env", "Pendulum-v1"], ["Pendulum-v1", "Discrete"]),
    (["--env", "r2d2_state/NoSuchEnv-v0"], ["NoSuchEnv"]),
    (["--env_kwargs", '{"no_such_kwarg": 1}'], ["no_such_kwarg"]),
    (["--seed", "-1"], ["seed", "-1"]),
    (["--checkpoint", "ckpt-000000000400"], ["--checkpoint", "--resume"]),
])
def test_failed_start_is_one_error_line_and_creates_nothing(tmp_path, capsys, flags, words):
    run_dir = tmp_path / "run"
    code = _script("train").main(["--preset", "smoke", "--run_dir", str(run_dir), "--progress", "none", *flags])
    assert code == 2
    line = _one_error_line(capsys)
    for word in words:
        assert word in line
    assert not run_dir.exists()
    # The same directory still starts a new run (nothing blocks it).
    assert not os.path.exists(run_dir / "config.json")


def test_failed_start_subprocess_has_no_traceback(tmp_path):
    run_dir = tmp_path / "run"
    result = _run(*_smoke_args(str(run_dir), "--env", "Pendulum-v1"), timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert not run_dir.exists()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from agents.r2d2.loop import TrainingLoop
    from agents.r2d2.presets import get_preset

    run_dir = str(tmp_path_factory.mktemp("scripts") / "run")
    config = get_preset("smoke").replace(progress="none", run_dir=run_dir, total_env_steps=400)
    TrainingLoop(config).run()
    return run_dir


def _copy_run(finished_run, tmp_path) -> str:
    import shutil

    target = str(tmp_path / "copy")
    shutil.copytree(finished_run, target)
    return target


def _files(directory: str) -> dict[str, bytes]:
    out = {}
    for root, _, names in os.walk(directory):
        for name in names:
            with open(os.path.join(root, name), "rb") as file:
                out[os.path.relpath(os.path.join(root, name), directory)] = file.read()
    return out


def _damage(run_dir: str, damage: str) -> None:
    checkpoints = os.path.join(run_dir, "checkpoints")
    with open(os.path.join(checkpoints, "latest")) as file:
        name = file.read().strip()
    if damage == "garbage_config":
        with open(os.path.join(run_dir, "config.json"), "wb") as file:
            file.write(b"\x00\xffnot json")
    elif damage == "config_wrong_type":
        with open(os.path.join(run_dir, "config.json"), "w") as file:
            file.write('{"r2d2": {"replay_capacity": "big"}}')
    elif damage == "garbage_metrics":
        with open(os.path.join(run_dir, "metrics.csv"), "wb") as file:
            file.write(b"\xff\xfe\x00\x01binary")
    elif damage == "binary_latest":
        with open(os.path.join(checkpoints, "latest"), "wb") as file:
            file.write(b"\x89PNG\x00\xff")
    elif damage == "manifest_entry_type":
        path = os.path.join(checkpoints, name, "MANIFEST.json")
        with open(path) as file:
            manifest = json.load(file)
        manifest["files"]["weights.npz"] = ["not", "a", "dict"]
        with open(path, "w") as file:
            json.dump(manifest, file)
    elif damage == "edited_capacity":
        path = os.path.join(run_dir, "config.json")
        with open(path) as file:
            values = json.load(file)
        values["r2d2"]["replay_capacity"] += 100
        with open(path, "w") as file:
            json.dump(values, file)


@pytest.mark.parametrize("damage,words", [
    ("garbage_config", ["config.json"]), ("config_wrong_type", ["config.json"]),
    ("garbage_metrics", ["metrics.csv"]), ("binary_latest", ["latest", "corrupt"]),
    ("manifest_entry_type", ["weights.npz", "MANIFEST.json"]),
    ("edited_capacity", ["r2d2.replay_capacity", "no longer matches"]),
])
def test_failed_resume_is_one_error_line_and_changes_nothing(finished_run, tmp_path, capsys, damage, words):
    run_dir = _copy_run(finished_run, tmp_path)
    _damage(run_dir, damage)
    before = _files(run_dir)
    code = _script("train").main(["--resume", run_dir, "--total_env_steps", "5000", "--progress", "none"])
    assert code == 2
    line = _one_error_line(capsys)
    for word in words:
        assert word in line
    assert _files(run_dir) == before  # config.json keeps the old budget, no checkpoint moved


@pytest.mark.parametrize("damage,args,words", [
    ("garbage_config", [], ["config.json"]), ("binary_latest", [], ["latest"]),
    ("manifest_entry_type", [], ["weights.npz"]), (None, ["--num-envs", "0"], ["--num-envs", "0"]),
])
def test_evaluate_errors_are_one_line(finished_run, tmp_path, capsys, damage, args, words):
    run_dir = _copy_run(finished_run, tmp_path)
    if damage:
        _damage(run_dir, damage)
    before = _files(run_dir)
    code = _script("evaluate").main([run_dir, "--episodes", "2", *args])
    assert code == 2
    line = _one_error_line(capsys)
    for word in words:
        assert word in line
    assert _files(run_dir) == before


@pytest.mark.parametrize("damage", ["garbage_metrics", "missing_metrics"])
def test_evaluation_is_written_without_a_usable_learning_curve_input(finished_run, tmp_path, capsys, damage):
    run_dir = _copy_run(finished_run, tmp_path)
    if damage == "missing_metrics":
        os.remove(os.path.join(run_dir, "metrics.csv"))
    else:
        _damage(run_dir, damage)
    code = _script("evaluate").main([run_dir, "--episodes", "2"])
    assert code == 0
    assert "no learning curve" in capsys.readouterr().out
    with open(os.path.join(run_dir, "eval.json")) as file:
        assert json.load(file)["episodes"] == 2
    assert not os.path.exists(os.path.join(run_dir, "learning_curve.png"))


def test_existing_run_hint_names_a_real_flag(finished_run, capsys):
    code = _script("train").main(["--preset", "smoke", "--run_dir", finished_run, "--progress", "none"])
    assert code == 2
    line = _one_error_line(capsys)
    assert "--run_dir" in line and "--run-dir" not in line
    assert "--run_dir" in _script("train").build_parser().format_help()


def test_learning_curve_is_written_atomically(finished_run, tmp_path, monkeypatch):
    import matplotlib.figure

    from agents.r2d2.evaluation import plot_learning_curve

    png = tmp_path / "curve.png"
    png.write_bytes(b"old picture")

    def crash(self, file, **kwargs):
        file.write(b"\x89PNG half")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", crash)
    with pytest.raises(OSError, match="disk full"):
        plot_learning_curve(os.path.join(finished_run, "metrics.csv"), str(png))
    assert png.read_bytes() == b"old picture" and os.listdir(tmp_path) == ["curve.png"]
