"""Atomic writes (r2d2_state/files.py) give files the mode a plain open() would."""

from __future__ import annotations

import os
import stat

import pytest

from r2d2_state.files import atomic_write, atomic_write_text, creation_mode, current_umask


@pytest.fixture
def umask():
    def set_umask(mask: int) -> None:
        os.umask(mask)

    saved = os.umask(0o022)
    os.umask(saved)
    yield set_umask
    os.umask(saved)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_a_new_file_honours_the_umask_like_open(tmp_path, umask, mask):
    """Issue 26.7: config.json and env.json were written 0600 whatever the umask."""
    umask(mask)
    assert current_umask() == mask
    atomic_write_text(tmp_path / "atomic.json", "{}\n")
    atomic_write(tmp_path / "atomic.bin", lambda file: file.write(b"\0"), binary=True)
    with open(tmp_path / "plain.json", "w") as file:
        file.write("{}\n")
    assert _mode(tmp_path / "atomic.json") == _mode(tmp_path / "atomic.bin") == _mode(tmp_path / "plain.json")
    assert _mode(tmp_path / "atomic.json") == 0o666 & ~mask == creation_mode()
    assert creation_mode(directory=True) == 0o777 & ~mask
    assert current_umask() == mask  # reading it changed nothing


def test_a_replaced_file_keeps_its_mode(tmp_path, umask):
    umask(0o022)
    path = tmp_path / "config.json"
    path.write_text("old\n")
    path.chmod(0o640)
    atomic_write_text(path, "new\n")
    assert path.read_text() == "new\n" and _mode(path) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temporary file left
