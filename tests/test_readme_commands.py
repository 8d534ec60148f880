"""Every ``python scripts/train.py ...`` / ``scripts/evaluate.py`` example line of the README and
of docs/*.md runs as written, with a tiny step budget appended (the later flag wins in argparse).

``<date>`` run directories are filled with a run trained by the test first; lines that join a
running Ray cluster (``--ray-address auto``) are skipped: there is none in a test.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
TINY = ["--total_env_steps", "200", "--time_budget_s", "0", "--eval_every", "0", "--eval_episodes", "2",
        "--min_replay_size", "8", "--r2d2.batch_size", "8", "--r2d2.num_envs", "4", "--progress", "plain",
        "--checkpoint_every", "0", "--log_every", "50", "--eval_num_envs", "2"]


def readme_commands(paths: list[str] | None = None) -> list[str]:
    """The example command lines of README.md and docs/*.md (each once, in document order)."""
    if paths is None:
        docs = os.path.join(ROOT, "docs")
        paths = [os.path.join(ROOT, "README.md")] + sorted(
            os.path.join(docs, name) for name in os.listdir(docs) if name.endswith(".md"))
    lines = []
    for path in paths:
        with open(path, encoding="utf-8") as file:
            text = file.read()
        for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
            for line in block.splitlines():
                line = line.split("  #")[0].strip()
                if re.match(r"python scripts/(train|evaluate)\.py\b", line):
                    lines.append(line)
    return list(dict.fromkeys(lines))


def _params() -> list:
    out = []
    for line in readme_commands():
        marks = []
        if "--ray-address" in line:
            marks.append(pytest.mark.skip(reason="joins a running Ray cluster"))
        elif "--backend ray" in line and importlib.util.find_spec("ray") is None:
            marks.append(pytest.mark.skip(reason="needs the [ray] extra"))
        elif "minigrid" in line.lower() and importlib.util.find_spec("minigrid") is None:
            marks.append(pytest.mark.skip(reason="needs the [minigrid] extra"))
        out.append(pytest.param(line, marks=marks, id=line[len("python scripts/"):][:70]))
    return out


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, env=ENV, cwd=ROOT)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> str:
    run_dir = str(tmp_path_factory.mktemp("readme") / "run")
    result = _run(["scripts/train.py", "--preset", "smoke", "--run_dir", run_dir, "--total_env_steps", "100", "--log_every", "20",
                   "--progress", "none"])
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_readme_has_example_commands():
    commands = readme_commands([os.path.join(ROOT, "README.md")])
    assert any("--preset tmaze" in c for c in commands) and any("evaluate.py" in c for c in commands)


@pytest.mark.slow
@pytest.mark.parametrize("line", _params())
def test_readme_command_runs(line, trained_run, tmp_path):
    words = [w for w in shlex.split(line.replace("[", "").replace("]", "")) if w != "--video"]
    args = [w.replace("runs/tmaze-v0-seed0-<date>", trained_run) for w in words[1:]]
    assert not any("<" in a for a in args), f"unfilled placeholder in {line!r}"
    if args[0].endswith("evaluate.py"):
        args += ["--episodes", "2"]
    elif "--resume" in args:
        args += ["--total_env_steps", "300", "--progress", "plain"]  # budgets only: the run's config stays
    else:
        args += [*TINY, "--run_dir", str(tmp_path / "run")]
        if "--backend" in args:
            args += ["--num-actors", "1"]
    result = _run(args)
    assert result.returncode == 0, f"{line!r} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
