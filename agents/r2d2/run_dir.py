"""The run directory: where a run writes, the checks before it does, the files that describe it.

Layout::

    RUN_DIR/
      config.json     the TrainConfig (what --resume and evaluate.py rebuild)
      env.json        the environment's record (checked when the env is rebuilt)
      metrics.csv     one row per log interval
      tb/             TensorBoard event files
      checkpoints/    agents.r2d2.checkpoint

Every check runs before anything is written (a failed start leaves the directory as it
was); :func:`write_run_files` is the first write of a run.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from agents.r2d2.train_config import ConfigurationError
from r2d2_state.files import atomic_write_text, read_json_object

__all__ = ["default_run_dir", "check_writable", "check_fresh", "check_metrics_readable", "write_run_files",
           "read_env_json"]


def default_run_dir(config: Any, root: str = "runs") -> str:
    """``runs/<env name>-seed<seed>-<time>``."""
    name = config.env_id.split(":")[-1].split("/")[-1].lower()  # PACKAGE:NS/Name-v0 -> name-v0
    return os.path.join(root, f"{name}-seed{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}")


def check_writable(path: str) -> None:
    """``path`` must be a directory this process can create and write (ConfigurationError
    naming ``run_dir`` otherwise; nothing is created here)."""
    existing = path
    while not os.path.lexists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    if not os.path.isdir(existing):
        what = "is" if existing == path else f"would be under {existing!r}, which is"
        raise ConfigurationError(f"run_dir {path!r} {what} a file, not a directory: pick another --run_dir")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable" if existing == path else f"cannot be created: {existing!r} is not writable"
        raise ConfigurationError(f"run_dir {path!r} {what} by this user: pick another --run_dir")
    if existing == path:
        for name in ("checkpoints", "metrics.csv", "tb"):
            inner = os.path.join(path, name)
            if os.path.lexists(inner) and not os.access(inner, os.W_OK | (os.X_OK if os.path.isdir(inner) else 0)):
                raise ConfigurationError(f"run_dir {path!r}: {inner!r} is not writable by this user")


def check_fresh(path: str, checkpoints: Any) -> None:
    """A new run needs a directory without another run's config or checkpoints
    (``checkpoints``: the directory's :class:`~agents.r2d2.checkpoint.CheckpointManager`)."""
    if os.path.exists(os.path.join(path, "config.json")):
        raise FileExistsError(f"{path!r} already holds a run (config.json exists): "
                              "resume it with --resume, or pick another --run_dir")
    names = checkpoints.names()
    if names or os.path.lexists(os.path.join(checkpoints.directory, "latest")):
        raise FileExistsError(
            f"{path!r} holds checkpoints of another run ({names or 'a latest pointer'}) but no "
            "config.json: a new run there would mix with them. Pick another --run_dir, or move "
            f"{checkpoints.directory!r} away")


def check_metrics_readable(path: str) -> None:
    """A resumed run rewrites ``metrics.csv`` from its checkpoint's step on: it must be readable."""
    from agents.r2d2.run_logger import read_metrics

    try:
        read_metrics(os.path.join(path, "metrics.csv"))
    except ValueError as error:
        raise ConfigurationError(f"{error}; move it away to resume (it is rewritten from the checkpoint's "
                                 "step on)") from None


def write_run_files(path: str, config: Any, env_info: dict[str, Any]) -> None:
    """``config.json`` and ``env.json`` (what evaluate.py checks when it rebuilds the env: id,
    packages, conversion). ConfigurationError when the directory cannot be written."""
    try:
        os.makedirs(path, exist_ok=True)
        atomic_write_text(os.path.join(path, "config.json"), json.dumps(config.to_dict(), indent=2, sort_keys=True))
        atomic_write_text(os.path.join(path, "env.json"), json.dumps(env_info, indent=2))
    except OSError as error:
        raise ConfigurationError(f"cannot write the run directory {path!r} "
                                 f"({type(error).__name__}: {error}): pick another --run_dir") from error


def read_env_json(run_dir: str | None) -> dict[str, Any] | None:
    """The run's ``env.json`` record, or None when there is none (ConfigurationError naming
    the file when it is unreadable or not a JSON object)."""
    path = os.path.join(run_dir or "", "env.json")
    if run_dir is None or not os.path.isfile(path):
        return None
    return read_json_object(path, ConfigurationError, "env record")
