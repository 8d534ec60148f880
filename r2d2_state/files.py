"""Atomic file writes (standard library only, so the replay can use them too).

A write goes to a temporary file in the destination's directory, is flushed and
fsynced, then ``os.replace``d over the destination and the directory is fsynced:
a crash at any point leaves the old file or the new one, never a mix.
"""

from __future__ import annotations

import os
import tempfile
from typing import IO, Any, Callable

__all__ = ["atomic_write", "atomic_write_text", "fsync_directory", "fsync_file"]


def atomic_write(path: str | os.PathLike, write: Callable[[IO[Any]], None], *, binary: bool = False) -> None:
    """Call ``write(file)`` on a temporary file, then atomically move it to ``path``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp_path = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")) as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_path, path)
    except BaseException:
        try:
            os.unlink(temp_path)
        except FileNotFoundError:
            pass
        raise
    fsync_directory(directory)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda file: file.write(text))


def fsync_file(path: str | os.PathLike) -> None:
    with open(path, "rb") as file:
        os.fsync(file.fileno())


def fsync_directory(path: str | os.PathLike) -> None:
    """Make a rename inside ``path`` durable (not possible on every platform, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
