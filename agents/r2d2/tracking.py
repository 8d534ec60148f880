"""Weights & Biases logging of a run's metrics, beside metrics.csv and TensorBoard (off by default).

A run whose ``config.json`` has ``track: true`` (``scripts/train.py --track``) logs every
metric row to a W&B run, against ``env_steps`` (a resumed run re-logs the steps past its
checkpoint, which a monotonic W&B ``step`` would drop); the W&B run's id is kept in
``RUN_DIR/wandb.json``, so ``--resume`` continues it (docs/policy.md).
:class:`agents.r2d2.run_logger.RunLogger` calls :func:`log_row` and :func:`close` (module
functions, so the logger holds one opaque handle).
"""

from __future__ import annotations

import json
import math
import os
import secrets
from typing import Any, Mapping

from r2d2_state.files import atomic_write_text

__all__ = ["WandbTracker", "open_tracker", "log_row", "close", "tracked_metrics", "RUN_ID_FILE"]

RUN_ID_FILE = "wandb.json"
"""In the run directory: the W&B run id (and project, entity) a resumed run continues."""

_OFF = "off"  # the handle of a run that is not tracked: config.json was read once


def tracked_metrics(row: Mapping[str, Any]) -> dict[str, float]:
    """The scalars of a metrics row that TensorBoard gets (finite numbers), with ``env_steps``."""
    out = {key: float(value) for key, value in row.items()
           if key != "env_steps" and isinstance(value, (int, float)) and math.isfinite(value)}
    out["env_steps"] = int(row["env_steps"])
    return out


class WandbTracker:
    """One W&B run for one run directory.

    Raises:
      ImportError: wandb is not installed (the message says how to install it).
    """

    def __init__(self, run_dir: str, config: Any) -> None:
        try:
            import wandb
        except ImportError as error:
            raise ImportError("track=True (--track) logs to Weights & Biases, which is not installed: "
                              "pip install -e '.[wandb]'") from error
        self.run_dir = run_dir
        run_id = _run_id(run_dir, config)
        self.run = wandb.init(
            project=config.wandb_project, entity=config.wandb_entity, id=run_id, resume="allow",
            name=os.path.basename(os.path.normpath(run_dir)), dir=run_dir, config=config.to_dict(),
            # The console belongs to the run's progress display.
            settings=wandb.Settings(console="off"),
        )
        self.run.define_metric("env_steps")
        self.run.define_metric("*", step_metric="env_steps")

    def log(self, row: Mapping[str, Any]) -> None:
        self.run.log(tracked_metrics(row))

    def close(self) -> None:
        self.run.finish()


def open_tracker(run_dir: str) -> WandbTracker | None:
    """A tracker if ``RUN_DIR/config.json`` asks for one (``track``), else None.

    A directory without a readable config.json (a logger used on its own) is not tracked.
    """
    from agents.r2d2.train_config import ConfigurationError, TrainConfig

    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        return None
    try:
        config = TrainConfig.from_json_file(path)
    except ConfigurationError:
        return None
    return WandbTracker(run_dir, config) if config.track else None


def log_row(handle: Any, run_dir: str, row: Mapping[str, Any]) -> Any:
    """Log ``row`` if the run is tracked; returns the handle to keep (None before the first row)."""
    if handle is None:
        handle = open_tracker(run_dir) or _OFF
    if handle is not _OFF:
        handle.log(row)
    return handle


def close(handle: Any) -> None:
    """Finish the W&B run, if one was opened."""
    if handle is not None and handle is not _OFF:
        handle.close()


def _run_id(run_dir: str, config: Any) -> str:
    """The W&B run id of this run directory: the recorded one, or a new one recorded now."""
    path = os.path.join(run_dir, RUN_ID_FILE)
    try:
        with open(path, encoding="utf-8") as file:
            recorded = json.load(file)
        if isinstance(recorded, dict) and isinstance(recorded.get("id"), str) and recorded["id"]:
            return recorded["id"]
    except (OSError, ValueError):
        pass  # none yet (or unreadable): a new W&B run
    run_id = secrets.token_hex(6)  # W&B run ids: letters and digits
    atomic_write_text(path, json.dumps({"id": run_id, "project": config.wandb_project,
                                        "entity": config.wandb_entity}, indent=2))
    return run_id
