"""Atomic file writes, and the one reader of a JSON-object file (standard library only, so
the replay can use them too).

A write goes to a temporary file in the destination's directory, is flushed and
fsynced, then ``os.replace``d over the destination and the directory is fsynced:
a crash at any point leaves the old file or the new one, never a mix. The file gets
the mode a plain ``open(path, "w")`` would give it: the replaced file's, or 0666 less
the process's umask for a new one.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from typing import IO, Any, Callable

__all__ = ["atomic_write", "atomic_write_text", "creation_mode", "current_umask", "fsync_directory", "fsync_file",
           "read_json_object"]


def current_umask() -> int:
    """The process's umask (read without changing it where the platform allows)."""
    try:  # Linux >= 4.7: no window in which another thread would create files with a changed umask
        with open("/proc/self/status", encoding="ascii", errors="replace") as file:
            for line in file:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def creation_mode(directory: bool = False) -> int:
    """The permission bits ``open`` (0666) or ``os.mkdir`` (0777) give a new file or directory."""
    return (0o777 if directory else 0o666) & ~current_umask()


def atomic_write(path: str | os.PathLike, write: Callable[[IO[Any]], None], *, binary: bool = False) -> None:
    """Call ``write(file)`` on a temporary file, then atomically move it to ``path``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)  # a replaced file keeps its mode, as with open(path, "w")
    except FileNotFoundError:
        mode = creation_mode()
    fd, temp_path = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        os.chmod(temp_path, mode)  # mkstemp makes it 0600
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


def read_json_object(path: str, error: type[Exception], what: str) -> dict[str, Any]:
    """The JSON object in the file ``path``; raises ``error`` naming the file and ``what`` it
    should hold when it is unreadable, not JSON or not an object."""
    try:
        with open(path, encoding="utf-8") as file:
            value = json.load(file)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path!r} is not a readable {what} ({type(exc).__name__}: {exc})") from None
    if not isinstance(value, dict):
        raise error(f"{path!r} is not a {what}: expected a JSON object, got {type(value).__name__}")
    return value
