"""scripts/train.py and scripts/evaluate.py as a user runs them (subprocesses).

- SIGINT finishes the step, checkpoints and exits 130; during start-up it exits 130 at once, writing nothing;
- ``kill -9`` after a checkpoint, then ``--resume``, continues from exactly the
  checkpointed counters and replay (nothing checkpointed is lost);
- evaluate.py writes eval.json and learning_curve.png, and refuses a corrupt checkpoint.
"""

from __future__ import annotations

import json
import os
import re
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
def test_sigint_writes_checkpoint_and_exits_130(tmp_path):
    run_dir = str(tmp_path / "run")
    process = _start(*_smoke_args(run_dir, "--total_env_steps", "100000000", "--log_every", "100"))
    _wait_for(lambda: os.path.exists(os.path.join(run_dir, "metrics.csv")), process)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err[-3000:]
    assert "stopped by signal" in out and "Traceback" not in err
    state = _latest_state(run_dir)
    assert state is not None and state["env_steps"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("delay_s", [0.3, 1.5])
def test_sigint_during_start_up_is_quiet_exits_130_and_writes_nothing(tmp_path, delay_s):
    """Issue 26.4: Ctrl-C ~1.5 s in (TensorFlow's import, building the run) was a KeyboardInterrupt traceback."""
    run_dir = tmp_path / "run"
    process = subprocess.Popen([sys.executable, *_smoke_args(str(run_dir))], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(delay_s)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert "run dir:" not in out, "the signal came after start-up: the test did not test it"
    assert process.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert "interrupted during start-up: nothing was written" in err
    assert not run_dir.exists()


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
    for flag in ("--r2d2.batch_size", "--replay_ratio", "--env ENV_ID", "--resume RUN_DIR", "--preset",
                 "--r2d2.network.lstm_units", "--stop_at_threshold, --no_stop_at_threshold", "--backend {single,ray}",
                 "--progress {auto,rich,plain,none}", "--r2d2.start_state {stored,zero}"):
        assert flag in result.stdout, f"{flag!r} not in --help"
    # The env fields of the network are the environment's, not flags.
    assert "observation_shape" not in result.stdout and "num_actions" not in result.stdout


def test_help_does_not_import_tensorflow():
    code = ("import runpy, sys; sys.argv = ['train.py', '--help']\n"
            "try:\n    runpy.run_path(%r, run_name='__main__')\n"
            "except SystemExit as exit_:\n    assert exit_.code in (0, None), exit_.code\n"
            "heavy = sorted(m for m in ('tensorflow', 'keras', 'gymnasium') if m in sys.modules)\n"
            "print('imported:', heavy, file=sys.stderr)\n"
            "assert not heavy, heavy\n") % TRAIN
    result = _run("-c", code, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "imported: []" in result.stderr and "--r2d2.batch_size" in result.stdout


@pytest.mark.parametrize("flags,words", [
    (["--seed", "x"], ["--seed", "'x'"]),
    (["--r2d2.batch_size", "0"], ["--r2d2.batch_size", ">= 1", "0"]),
    (["--r2d2.start_state", "bogus"], ["--r2d2.start_state", "'bogus'", "stored"]),
    (["--r2d2.network.lstm_units", "a,b"], ["--r2d2.network.lstm_units", "'a,b'"]),
    (["--env_kwargs", "[1]"], ["--env_kwargs", "'[1]'", "JSON object"]),
    (["--r2d2.jit_compile", "maybe"], ["--r2d2.jit_compile", "'maybe'", "'True'", "'None'"]),
    (["--no_stop_at_threshold", "false"], ["unrecognized", "false"]),  # a switch takes no value
    (["--no_such_flag", "1"], ["--no_such_flag"]),
    (["--preset", "nope"], ["--preset", "'nope'", "tmaze"]),
])
def test_bad_flag_is_one_error_line_naming_it(capsys, flags, words):
    assert _script("train").main(["--preset", "smoke", *flags]) == 2
    line = _one_error_line(capsys)
    for word in words:
        assert word in line, (word, line)


def test_flag_spellings_and_value_forms(capsys):
    """Underscores and dashes, switches with their --no_ form, tuples as several words, None."""
    assert _script("train").main([
        "--preset", "smoke", "--r2d2.batch-size", "4", "--r2d2.network.lstm_units", "8", "8",
        "--r2d2.network.head_units", "12", "--no-stop-at-threshold", "--solve_threshold", "None", "--eval-every", "100",
        "--num-actors", "3", "--env_kwargs", '{"corridor_length": 3}', "--print-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["r2d2"]["batch_size"] == 4 and config["r2d2"]["network"]["lstm_units"] == [8, 8]
    assert config["r2d2"]["network"]["head_units"] == 12 and config["stop_at_threshold"] is False
    assert config["solve_threshold"] is None and config["eval_every"] == 100 and config["num_actors"] == 3
    assert config["env_kwargs"] == {"corridor_length": 3} and config["min_replay_size"] == 16  # the rest: smoke's
    for word, value in (("None", None), ("True", True), ("False", False)):
        assert _script("train").main(["--preset", "smoke", "--r2d2.jit_compile", word, "--print-config"]) == 0
        assert json.loads(capsys.readouterr().out)["r2d2"]["jit_compile"] is value


@pytest.mark.parametrize("flag,suggestion", [
    ("--batch_size", "--r2d2.batch_size"), ("--r2d2.lstm_units", "--r2d2.network.lstm_units"),
    ("--replay-ratio2", "--replay_ratio"),
])
@pytest.mark.parametrize("encoding", ["utf-8", "ascii"])  # tyro draws its error box with either
def test_an_unknown_flag_suggests_the_closest_real_one(flag, suggestion, encoding):
    """Issue 25.6: an unknown flag named itself only; tyro's own suggestion is passed on."""
    result = subprocess.run([sys.executable, TRAIN, "--preset", "smoke", flag, "8"], capture_output=True, text=True,
                            timeout=120, env={**ENV, "PYTHONIOENCODING": encoding}, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: unrecognized flags: {flag}, 8; did you mean {suggestion}?"


def test_help_shows_the_chosen_presets_values(capsys):
    """Issue 25.6: --help's defaults are the values that apply for the chosen preset."""
    from agents.r2d2.presets import get_preset

    tmaze, novel = get_preset("tmaze"), get_preset("cartpole_novel")
    values = {"--env_id STR": (tmaze.env_id, novel.env_id), "--r2d2.discount FLOAT": (tmaze.r2d2.discount,
                                                                                         novel.r2d2.discount),
              "--r2d2.burn_in INT": (tmaze.r2d2.burn_in, novel.r2d2.burn_in)}
    assert all(a != b for a, b in values.values())  # else the test tells nothing
    for preset, index in (("tmaze", 0), ("cartpole_novel", 1)):
        with pytest.raises(SystemExit):
            _script("train").main(["--preset", preset, "--help"])
        out = " ".join(capsys.readouterr().out.replace("│", " ").split())
        for flag, defaults in values.items():
            shown = re.search(re.escape(flag) + r" .*?\(default: (\S+?)\)", out)
            assert shown and shown.group(1) == str(defaults[index]), (preset, flag, shown and shown.group(0))


def test_env_package_flag_adds_to_the_presets_packages(capsys):
    assert _script("train").main(["--preset", "minigrid_memory", "--env-package", "foo", "--env_package", "bar",
                                  "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["env_packages"] == ["minigrid", "foo", "bar"]


def test_env_actions_flag_and_another_env_drops_the_presets_subset(capsys):
    assert _script("train").main(["--preset", "minigrid_memory", "--env_actions", "2", "0", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["env_actions"] == [2, 0]
    assert _script("train").main(["--preset", "minigrid_memory", "--env", "CartPole-v1", "--print-config"]) == 0
    captured = capsys.readouterr()
    config = json.loads(captured.out)
    assert config["env_actions"] == [] and config["env_kwargs"] == {}  # they belong to the preset's env
    assert ("note: --env CartPole-v1: the 'minigrid_memory' preset's env_kwargs {'agent_view_size': 3} and "
            "env_actions (0, 1, 2) are for MiniGrid-MemoryS7-v0 and not used") in captured.err
    assert _script("train").main(["--preset", "minigrid_memory", "--env", "MiniGrid-MemoryS9-v0",
                                  "--env_actions", "0", "1", "2", "--print-config"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["env_actions"] == [0, 1, 2]
    assert "env_kwargs {'agent_view_size': 3} are for" in captured.err and "env_actions (0" not in captured.err


def test_dropped_preset_env_settings_are_noted_after_a_successful_start(tmp_path, capsys):
    code = _script("train").main(["--preset", "smoke", "--env", "r2d2_state/TMaze-v0", "--run_dir", str(tmp_path / "a"),
                                  "--progress", "none", "--total_env_steps", "40"])
    assert code == 0 and "note:" not in capsys.readouterr().err  # the preset's own env: nothing dropped
    code = _script("train").main(["--preset", "smoke", "--env", "CartPole-v1", "--run_dir", str(tmp_path / "b"),
                                  "--progress", "none", "--total_env_steps", "40", "--min_replay_size", "8",
                                  "--r2d2.batch_size", "8"])
    err = capsys.readouterr().err
    assert code == 0 and "note: --env CartPole-v1: the 'smoke' preset's env_kwargs {'corridor_length': 2}" in err


@pytest.mark.parametrize("env_id,note", [
    ("CartPole-v1", None),
    ("minigrid:MiniGrid-MemoryS7-v0", "--preset minigrid_memory is tuned for this env"),
    ("MiniGrid-MemoryS7-v0", "--preset minigrid_memory is tuned for this env"),
])
def test_an_env_without_a_preset_gets_no_note_about_the_generic_presets_settings(capsys, env_id, note):
    """Issue 26.9: every --env run said the 'memory' preset's env_kwargs are not used, though
    the user named no preset; an env with a preset of its own gets that preset suggested."""
    assert _script("train").main(["--env", env_id, "--print-config"]) == 0
    err = capsys.readouterr().err
    assert "not used" not in err and "corridor_length" not in err
    if note is None:
        assert "note:" not in err
    else:
        assert note in err and "'memory' preset" in err


def test_print_config_applies_overrides():
    result = _run(TRAIN, "--preset", "tmaze", "--env", "CartPole-v1", "--r2d2.network.lstm_units", "32",
                  "--print-config", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    config = json.loads(result.stdout)
    assert config["env_id"] == "CartPole-v1" and config["env_kwargs"] == {}
    assert config["r2d2"]["network"]["lstm_units"] == [32]


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
    sys.modules[spec.name] = module  # tyro reads the scripts' dataclasses (annotations, docstrings) through it
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
    elif damage == "garbage_env_json":
        with open(os.path.join(run_dir, "env.json"), "w") as file:
            file.write("{not json")
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
    elif damage in ("edited_discount", "edited_lstm_units"):
        path = os.path.join(run_dir, "config.json")
        with open(path) as file:
            values = json.load(file)
        if damage == "edited_discount":
            values["r2d2"]["discount"] = 0.5
        else:
            values["r2d2"]["network"]["lstm_units"] = [u * 2 for u in values["r2d2"]["network"]["lstm_units"]]
        with open(path, "w") as file:
            json.dump(values, file)
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
    ("garbage_env_json", [], ["env.json", "env record"]),
    # Issue 26.3: an edited config.json was evaluated silently (discount) or a Keras shape error (LSTM units).
    ("edited_discount", [], ["r2d2.discount", "no longer matches", "config.json"]),
    ("edited_lstm_units", [], ["lstm_units", "no longer matches"]),
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
    with pytest.raises(SystemExit):
        _script("train").main(["--help"])
    assert "--run_dir" in capsys.readouterr().out


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


def test_a_run_with_a_flat_network_field_in_its_config_is_refused_in_one_line(finished_run, tmp_path, capsys):
    """Issue 25.5: a config.json with the network fields flat under r2d2 was loaded as if nested."""
    run_dir = _copy_run(finished_run, tmp_path)
    path = os.path.join(run_dir, "config.json")
    with open(path) as file:
        values = json.load(file)
    values["r2d2"]["lstm_units"] = values["r2d2"]["network"].pop("lstm_units")
    with open(path, "w") as file:
        json.dump(values, file)
    before = _files(run_dir)
    for script, args in (("evaluate", [run_dir, "--episodes", "2"]), ("train", ["--resume", run_dir])):
        assert _script(script).main(args) == 2
        line = _one_error_line(capsys)
        assert "config.json" in line and "r2d2.lstm_units" in line and "r2d2.network.lstm_units" in line, line
    assert _files(run_dir) == before


def test_resume_refuses_flags_outside_budget_and_output(finished_run, tmp_path, capsys):
    run_dir = _copy_run(finished_run, tmp_path)
    before = _files(run_dir)
    for flags, word in ((["--seed", "3"], "seed"), (["--r2d2.network.lstm_units", "8"], "r2d2.network.lstm_units"),
                        (["--env", "CartPole-v1"], "env_id")):
        assert _script("train").main(["--resume", run_dir, *flags]) == 2
        line = _one_error_line(capsys)
        assert "cannot change" in line and word in line, line
    assert _files(run_dir) == before
    # Budget and output flags may change: the run's config with them applied.
    assert _script("train").main(["--resume", run_dir, "--eval-every", "50", "--total_env_steps", "999",
                                  "--r2d2.actor_backend", "tf", "--print-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["eval_every"] == 50 and config["total_env_steps"] == 999 and config["seed"] == 0
    assert config["r2d2"]["actor_backend"] == "tf"  # the same numbers, another way to compute them


@pytest.mark.slow
def test_a_short_run_prints_no_cuda_probe_noise(tmp_path):
    """TensorFlow's CPU-only start-up lines (before its logging starts) are filtered out of stderr."""
    from agents.r2d2.tf_runtime import NOISE

    env = {k: v for k, v in ENV.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user starts it
    result = subprocess.run([sys.executable, TRAIN, "--preset", "smoke", "--total_env_steps", "100", "--log_every", "50",
                             "--run_dir", str(tmp_path / "run"), "--progress", "plain"],
                            capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    for noise in ("cuInit", "Could not find cuda drivers", "absl::InitializeLog", *NOISE):
        assert noise not in result.stderr, f"{noise!r} in stderr:\n{result.stderr[-3000:]}"
    assert "stopped by env_steps" in result.stdout


def test_plot_runs_draws_each_runs_evaluations_and_refuses_a_run_without_any(tmp_path, capsys):
    from agents.r2d2.run_logger import CSV_COLUMNS

    runs = []
    for seed, evals in ((0, "0.5"), (1, "")):
        run = tmp_path / f"run{seed}"
        run.mkdir()
        (run / "config.json").write_text(json.dumps({"seed": seed}))
        row = {c: "" for c in CSV_COLUMNS} | {"env_steps": "1000", "eval_return": evals}
        (run / "metrics.csv").write_text(",".join(CSV_COLUMNS) + "\n" + ",".join(row[c] for c in CSV_COLUMNS) + "\n")
        runs.append(str(run))
    plot = _script("plot_runs")
    assert plot.eval_curve(runs[0]) == ([1000.0], [0.5])
    out = tmp_path / "curves.png"
    assert plot.main([runs[0], "--out", str(out), "--threshold", "0.9", "--reference", "0.5"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.main([runs[0], runs[1], "--out", str(tmp_path / "none.png")]) == 2
    assert "no evaluations" in capsys.readouterr().err and not (tmp_path / "none.png").exists()


# ---------------------------------------------------------------- an unusable run directory: one line, exit 2


@pytest.mark.parametrize("where,words", [
    ("file", ["--run_dir", "is a file"]),
    ("under_file", ["--run_dir", "is a file"]),
])
def test_a_run_dir_that_is_a_file_is_one_error_line(tmp_path, capsys, where, words):
    """Issue 26.2: --run_dir naming a file said '[Errno 17] File exists' without naming the flag."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file\n")
    run_dir = blocker if where == "file" else blocker / "run"
    code = _script("train").main(["--preset", "smoke", "--run_dir", str(run_dir), "--progress", "none"])
    assert code == 2
    line = _one_error_line(capsys)
    for word in words:
        assert word in line, line
    assert str(run_dir) in line
    assert blocker.read_text() == "a file\n" and os.listdir(tmp_path) == ["blocker"]


@pytest.mark.slow
@pytest.mark.parametrize("inside", [True, False])
def test_an_unwritable_run_dir_is_one_error_line_without_traceback(tmp_path, inside):
    """Issue 26.2: --run_dir in (or under) a folder that cannot be written was a PermissionError traceback."""
    locked = tmp_path / "locked"
    locked.mkdir()
    run_dir = locked if inside else locked / "sub" / "run"
    if os.getuid() == 0:  # root writes past permissions, not into an immutable directory
        import shutil

        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(locked)]).returncode != 0:
            pytest.skip("running as root without chattr +i: no directory is unwritable")
        unlock = ["chattr", "-i", str(locked)]
    else:
        locked.chmod(0o555)
        unlock = ["chmod", "755", str(locked)]
    try:
        result = _run(*_smoke_args(str(run_dir)))
    finally:
        subprocess.run(unlock, check=True)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "--run_dir" in errors[0] and "not writable" in errors[0], result.stderr[-2000:]
    assert os.listdir(locked) == []


def _result(**changes):
    from agents.r2d2.loop import LoopResult

    values = dict(run_dir="runs/x", stopped_by="env_steps", env_steps=2_000, learner_steps=10, episodes=1,
                  wall_time_s=12.0, last_eval=None, solved_at=None, checkpoint=None)
    return LoopResult(**{**values, **changes})


def test_the_stop_line_says_which_budget_stopped_the_run_and_counts_in_words():
    """Issues 26.10 / 26.11: '1 episodes'; a run past its budget (2,048/2,000 on Ray) and a
    run stopped by the preset's time budget said nothing about either."""
    from agents.r2d2.presets import get_preset

    train = _script("train")
    config = get_preset("tmaze").replace(total_env_steps=2_000)
    line = train.stop_line(_result(), config, config)
    assert "1 episode," in line and "10 learner steps" in line and "past" not in line
    line = train.stop_line(_result(env_steps=2_048), config, config)
    assert "48 past --total_env_steps 2,000" in line
    line = train.stop_line(_result(stopped_by="time_budget", wall_time_s=570.2), config, config)
    assert "stopped by time_budget" in line and "570 s of training" in line
    assert "--time_budget_s 570, the preset's" in line and "set 0 for none" in line
    assert "--time_budget_s 570, the run's" in train.stop_line(_result(stopped_by="time_budget"), config, config,
                                                               resumed=True)
    line = train.stop_line(_result(stopped_by="time_budget"), config.replace(time_budget_s=60), config)
    assert "--time_budget_s 60, given" in line


def test_progress_lines_name_their_numbers_in_words():
    """Issue 26.11: 'learner', 'learn/s', 'spi' and 'env/s' were explained nowhere."""
    from agents.r2d2.run_logger import RunLogger

    logger = RunLogger("unused", mode="none", total_env_steps=3_000)
    line = logger.plain_line({"env_steps": 1_000, "episodes": 1, "env_steps_per_s": 450.0, "learner_steps": 30,
                              "learner_steps_per_s": 20.5, "samples_per_insert": 4.0, "wall_time_s": 12.0})
    for words in ("env steps     1,000/3,000", "env steps/s 450", "learner steps 30", "learner steps/s 20.5",
                  "samples/insert 4.00", "time 12 s"):
        assert words in line, line
    for cryptic in ("learn/s", "spi ", "| env/s", "| t "):
        assert cryptic not in line, line


@pytest.mark.parametrize("flags,words", [
    ([], ["defaults below are the 'tmaze' preset's", "--time_budget_s 570 s", "--env ID --help shows the 'memory'"]),
    (["--env", "CartPole-v1"], ["defaults below are the 'memory' preset's (the one --env runs start from"]),
    (["--preset", "cartpole_novel"], ["defaults below are the 'cartpole_novel' preset's.", "--time_budget_s 600 s"]),
])
def test_help_says_whose_defaults_it_shows_and_the_time_budget(capsys, flags, words):
    """Issue 26.10: --help showed the tmaze preset's values (570 s budget, discount 0.7) as if they
    applied to every run, and a tmaze run's 570 s time budget surprised."""
    with pytest.raises(SystemExit):
        _script("train").main([*flags, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for word in words:
        assert word in out, out[:3000]


@pytest.mark.slow
@pytest.mark.parametrize("level", [None, "0"])
def test_importing_the_project_in_a_users_script_quiets_tensorflows_start_up(level):
    """Issue 26.12: the README's own example printed TensorFlow's CUDA probe (an E-level
    'failed call to cuInit' on a CPU machine) when the project imported TensorFlow; a user
    who asks for TensorFlow's info lines (TF_CPP_MIN_LOG_LEVEL 0) still gets them."""
    from agents.r2d2.tf_runtime import NOISE

    env = {k: v for k, v in ENV.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    code = ("from agents.r2d2.loop import TrainingLoop\n"
            "import keras\n"  # what TrainingLoop(config) imports first
            "import tensorflow as tf\n"
            "print(float(keras.ops.sum(keras.ops.ones(3))), tf.config.list_physical_devices('GPU'))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, env=env,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("3.0 [")
    if level is None:
        for noise in ("cuInit", "Could not find cuda drivers", "absl::InitializeLog", *NOISE):
            assert noise not in result.stderr, f"{noise!r} in stderr:\n{result.stderr[-3000:]}"
    else:
        assert "cuda" in result.stderr.lower(), result.stderr[-3000:]  # nothing hidden that was asked for


@pytest.mark.slow
def test_a_ray_run_piped_prints_no_tensorflow_start_up_colour_codes_or_auth_notice(tmp_path):
    """Issue 26.12: Ray workers printed TensorFlow's start-up lines again, with ANSI colour
    codes when piped, and Ray a token-authentication notice."""
    pytest.importorskip("ray")
    from agents.r2d2.tf_runtime import NOISE

    env = {k: v for k, v in ENV.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "RAY_COLOR_PREFIX")}
    result = subprocess.run([sys.executable, *_smoke_args(str(tmp_path / "run"), "--backend", "ray", "--num-actors",
                                                          "2", "--total_env_steps", "200")],
                            capture_output=True, text=True, timeout=400, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    for noise in ("\x1b[", "Token authentication", "cuInit", "Could not find cuda drivers", *NOISE):
        assert noise not in result.stderr + result.stdout, f"{noise!r} in:\n{result.stderr[-3000:]}"
