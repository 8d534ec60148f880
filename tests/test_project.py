"""The project's front door and packaging: README links, LICENSE, pyproject, Makefile, TensorBoard."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _pyproject() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_readme_is_a_short_front_door():
    lines = README.count("\n")
    assert lines <= 200, f"README.md has {lines} lines; reference material belongs in docs/*.md"
    for section in ("## Install", "## Quickstart", "## Your own environment", "## Results", "## Citation"):
        assert section in README, f"README.md lacks {section!r}"
    assert "make run" in README and "make test" in README and "pip install -e ." in README
    assert "Kapturowski" in README and "@inproceedings" in README
    begin, end = README.index("<!-- results: begin"), README.index("<!-- results: end -->")
    assert begin < end and "docs/benchmarks.md" in README[begin:end]


def test_every_relative_link_of_the_documents_exists():
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            assert (path.parent / target).exists(), f"{path.relative_to(ROOT)} links to missing {target!r}"


def test_license_file_matches_pyproject():
    project = _pyproject()
    assert project["project"]["license"] == "Apache-2.0"  # an SPDX expression, not the deprecated table
    assert project["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    floor = next(r for r in project["build-system"]["requires"] if r.startswith("setuptools"))
    assert int(re.search(r">=(\d+)", floor).group(1)) >= 77, f"license-files needs setuptools >= 77, got {floor!r}"


def test_runtime_dependencies_are_declared():
    declared = {re.split(r"[<>=\[; ]", d)[0].lower() for d in _pyproject()["project"]["dependencies"]}
    for name in ("tyro", "tensorboard", "tensorflow", "gymnasium"):
        assert name in declared, f"{name} is used at run time but not in pyproject's dependencies"


def test_tensorboard_command_of_the_readme_exists():
    assert ".venv/bin/tensorboard --logdir runs" in README
    (entry,) = [e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "tensorboard"]
    assert entry.module.startswith("tensorboard")
    assert importlib.util.find_spec(entry.module) is not None
    result = subprocess.run([sys.executable, "-c", f"import {entry.module}; print('ok')"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]


def _make_targets() -> dict[str, list[str]]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets, current = {}, None
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z][\w-]*):", line)
        if match:
            current = targets.setdefault(match.group(1), [])
        elif line.startswith("\t") and current is not None:
            current.append(line.strip())
    return targets


def test_every_phony_make_target_exists_and_bench_runs_real_scripts():
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    phony = re.search(r"^\.PHONY:(.*)$", text, flags=re.M).group(1).split()
    targets = _make_targets()
    missing = [t for t in phony if t not in targets]
    assert not missing, f"Makefile declares {missing} in .PHONY without a rule"
    scripts = [m for line in targets["bench"] for m in re.findall(r"scripts/\w+\.py", line)]
    assert "scripts/bench_learning.py" in scripts and len(scripts) >= 3, targets["bench"]
    for script in scripts:
        assert (ROOT / script).is_file(), f"make bench runs missing {script}"


def test_make_installs_the_wandb_extra_and_ci_has_it():
    """The tracking tests skip without wandb: make test installs it, so CI runs them."""
    import importlib.util
    import os
    import re

    root = pathlib.Path(__file__).resolve().parents[1]
    extras = re.search(r'pip install -q -e "\.\[([^\]]*)\]"', (root / "Makefile").read_text(encoding="utf-8"))
    assert extras and "wandb" in extras.group(1).split(","), extras
    if os.environ.get("CI") == "true":
        assert importlib.util.find_spec("wandb") is not None
