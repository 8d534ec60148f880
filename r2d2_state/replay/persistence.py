"""Atomic single-file persistence for SequenceReplay: an uncompressed ``.npz``.

Layout of the file (a zip of ``.npy`` arrays, readable with ``numpy.load`` and no pickle):

- ``meta``: a 0-d unicode array holding JSON: ``format`` (``FORMAT_NAME``), ``version``
  (``FORMAT_VERSION``), capacity, exponents, next key, max priority, counters, the numpy
  bit generator state and the item spec (structure, leaf paths, shapes, dtypes).
- ``priorities``: float64 [size], raw priorities of slots 0..size-1.
- ``leaf_<i>``: leaf i of the spec (dm-tree flatten order), [size, ...].

Writing goes to a temporary file in the destination directory, is flushed and fsynced,
then ``os.replace``d over the destination (atomic on POSIX and Windows), and the directory
is fsynced; a crash at any point leaves either the old file or the new one, never a mix.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from r2d2_state.files import atomic_write

FORMAT_NAME = "r2d2_state.SequenceReplay"
FORMAT_VERSION = 1
_META_KEYS = ("capacity", "priority_exponent", "importance_exponent", "next_key", "max_priority", "counters", "rng", "spec")


def _write_arrays(file: Any, arrays: dict[str, np.ndarray]) -> None:
    """Writes the arrays into an open binary file (split out so tests can fail it midway)."""
    np.savez(file, **arrays)


def write(path: str | os.PathLike, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Atomically writes ``meta`` (JSON-serialisable) and ``arrays`` to ``path``."""
    path = os.fspath(path)
    header = dict(meta, format=FORMAT_NAME, version=FORMAT_VERSION)
    payload = {"meta": np.array(json.dumps(header)), **arrays}
    # Looked up at call time, so tests can make the writer fail midway.
    atomic_write(path, lambda file: _write_arrays(file, payload), binary=True)


def read(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Reads a file written by ``write``; checks format name, version and meta keys.

    Raises:
      ValueError: naming ``path`` (and the entry) for anything unreadable: a missing,
        truncated or bit-flipped file (zip or CRC errors), a pickled entry, corrupt meta.
    """
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not hasattr(archive, "files"):
                raise ValueError("a single .npy array, not an .npz archive")
            arrays = {name: archive[name] for name in archive.files}
    except Exception as error:  # noqa: BLE001 - zipfile.BadZipFile, zlib.error, EOFError, OSError, ...
        raise ValueError(f"{path!r} is not a readable replay save file "
                         f"({type(error).__name__}: {error})") from None
    if "meta" not in arrays:
        raise ValueError(f"{path!r} has no 'meta' entry: not a replay save file")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except (json.JSONDecodeError, ValueError) as error:
        raise ValueError(f"{path!r}: field 'meta' is corrupt: {error}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path!r}: field 'meta' is corrupt: expected a JSON object, got {type(meta).__name__}")
    if meta.get("format") != FORMAT_NAME:
        raise ValueError(f"{path!r}: expected format {FORMAT_NAME!r}, got {meta.get('format')!r}")
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{path!r}: unsupported format version {meta.get('version')!r} (this code reads {FORMAT_VERSION})"
        )
    missing = [key for key in _META_KEYS if key not in meta]
    if missing:
        raise ValueError(f"{path!r}: meta is missing {missing!r}")
    return meta, arrays
