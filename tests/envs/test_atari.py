"""The Atari (ALE) path: installed by the set-up, and tested rather than skipped."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re

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


def test_ci_runs_the_atari_tests():
    # make test installs [atari]: in CI a missing ale-py would silently skip every ALE test.
    if os.environ.get("CI", "").lower() not in ("1", "true"):
        pytest.skip("checked in CI only (CI=true), where make test installed the extras")
    assert HAS_ATARI, "CI ran without ale-py / opencv: the ALE tests would be skipped"


@needs_atari
def test_ale_py_ships_the_pong_rom():
    from ale_py import roms

    assert pathlib.Path(roms.get_rom_path("pong")).is_file()
