"""What a training run writes while it runs: metrics.csv, TensorBoard events, progress.

- ``RUN_DIR/metrics.csv``: one row per log interval (and per evaluation), fixed columns
  (:data:`CSV_COLUMNS`), empty cells for values not measured in that row. On resume the
  rows past the checkpoint's env step are dropped first (:meth:`RunLogger.truncate_after`),
  so the file never holds two rows for the same stretch of training.
- ``RUN_DIR/tb/``: ``tf.summary`` scalars under the same names.
- Weights & Biases, the same scalars, if the run's config asks (``--track``, :mod:`agents.r2d2.tracking`).
- The console: a ``rich`` live panel on a terminal, a plain line per row otherwise.
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
from typing import Any, Mapping

from agents.r2d2 import tracking
from r2d2_state.files import atomic_write

__all__ = ["CSV_COLUMNS", "RunLogger", "read_metrics"]

CSV_COLUMNS = (
    "env_steps", "wall_time_s", "episodes", "learner_steps", "replay_size",
    "recent_return", "recent_length", "eval_return", "eval_return_std",
    "loss", "mean_abs_td", "mean_q", "grad_norm", "env_steps_per_s", "learner_steps_per_s",
) + tuple(f"staleness/{strategy}/{step}" for strategy in ("zero", "zero_burn_in", "stored", "stored_burn_in")
          for step in ("first", "last")) + ("samples_per_insert", "actor_restarts")
"""Columns of metrics.csv, in order (the last two are written by the Ray backend only)."""


class RunLogger:
    """metrics.csv + TensorBoard + console progress of one run (module docstring)."""

    def __init__(self, run_dir: str, mode: str = "auto", total_env_steps: int | None = None,
                 title: str = "r2d2") -> None:
        if mode not in ("auto", "rich", "plain", "none"):
            raise ValueError(f"mode must be auto, rich, plain or none, got {mode!r}")
        if mode == "auto":
            mode = "rich" if sys.stdout.isatty() else "plain"
        self.mode = mode
        self.run_dir = run_dir
        self.csv_path = os.path.join(run_dir, "metrics.csv")
        self.total_env_steps = total_env_steps
        self.title = title
        self._writer = None
        self._live = None
        self._last: dict[str, Any] = {}
        self._tracker: Any = None  # Weights & Biases when config.json asks (agents.r2d2.tracking)

    # ------------------------------------------------------------------ CSV

    def truncate_after(self, env_steps: int) -> int:
        """Drop CSV rows with ``env_steps`` greater than ``env_steps``; returns rows kept.

        Rewritten via a temporary file and rename, so a crash here loses nothing.
        """
        rows = read_metrics(self.csv_path)
        kept = [row for row in rows if _float(row.get("env_steps")) <= env_steps]
        def write(file):
            writer = csv.DictWriter(file, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(kept)

        atomic_write(self.csv_path, write)
        return len(kept)

    def log(self, row: Mapping[str, Any]) -> None:
        """Append one row to the CSV and TensorBoard, refresh the console."""
        new = not os.path.exists(self.csv_path) or os.path.getsize(self.csv_path) == 0
        line = io.StringIO()
        writer = csv.DictWriter(line, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({k: _cell(row.get(k)) for k in CSV_COLUMNS})
        # One write + flush per row: a kill -9 can cut at most the last line.
        with open(self.csv_path, "a", newline="", encoding="utf-8") as file:
            file.write(line.getvalue())
            file.flush()
        self._tensorboard(row)
        self._tracker = tracking.log_row(self._tracker, self.run_dir, row)
        self._last.update({k: v for k, v in row.items() if v is not None})
        self._console(row)

    def _tensorboard(self, row: Mapping[str, Any]) -> None:
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.run_dir, "tb"))
            # tf.summary.scalar needs the tensorboard package; tf.summary.write with the
            # scalars plugin's metadata writes the same event without it.
            self._scalar_metadata = summary_pb2.SummaryMetadata(
                plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")).SerializeToString()
        step = int(row["env_steps"])
        with self._writer.as_default(step=step):
            for key, value in row.items():
                if key != "env_steps" and isinstance(value, (int, float)) and math.isfinite(value):
                    tf.summary.write(key, tf.constant(float(value), tf.float32), metadata=self._scalar_metadata)
        self._writer.flush()

    # ------------------------------------------------------------------ console

    def _console(self, row: Mapping[str, Any]) -> None:
        if self.mode == "none":
            return
        if self.mode == "plain":
            print(self.plain_line(row), flush=True)
            return
        if self._live is None:
            from rich.live import Live

            self._live = Live(self._panel(), refresh_per_second=4, transient=False)
            self._live.start()
        self._live.update(self._panel())

    def plain_line(self, row: Mapping[str, Any]) -> str:
        """One progress line; its labels are the metrics.csv columns' meanings in words."""
        last = self._last
        parts = [f"env steps {int(row['env_steps']):>9,d}"]
        if self.total_env_steps:
            parts[0] += f"/{self.total_env_steps:,d}"
        for key, label, fmt in (
            ("episodes", "episodes", "{:,.0f}"), ("recent_return", "return", "{:.3f}"),
            ("eval_return", "eval return", "{:.3f}"), ("env_steps_per_s", "env steps/s", "{:,.0f}"),
            ("learner_steps", "learner steps", "{:,.0f}"), ("learner_steps_per_s", "learner steps/s", "{:.1f}"),
            ("samples_per_insert", "samples/insert", "{:.2f}"), ("actor_restarts", "actor restarts", "{:,.0f}"),
            ("loss", "loss", "{:.4f}"), ("wall_time_s", "time", "{:.0f} s"),
        ):
            value = row.get(key, last.get(key) if key != "eval_return" else None)
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                parts.append(f"{label} {fmt.format(value)}")
        return " | ".join(parts)

    def _panel(self):
        from rich.table import Table

        last = self._last
        table = Table(title=self.title, show_header=False, expand=False)
        table.add_column(justify="right", style="bold")
        table.add_column(justify="left")
        steps = int(last.get("env_steps", 0))
        total = f" / {self.total_env_steps:,d} ({100 * steps / self.total_env_steps:.1f}%)" if self.total_env_steps else ""
        rows = [
            ("env steps", f"{steps:,d}{total}"),
            ("episodes", f"{int(last.get('episodes', 0)):,d}"),
            ("recent return", _fmt(last.get("recent_return"), "{:.3f}")),
            ("last eval return", _fmt(last.get("eval_return"), "{:.3f}")),
            ("env steps/s", _fmt(last.get("env_steps_per_s"), "{:,.0f}")),
            ("learner steps", f"{int(last.get('learner_steps', 0)):,d}"),
            ("learner steps/s", _fmt(last.get("learner_steps_per_s"), "{:.1f}")),
            ("loss", _fmt(last.get("loss"), "{:.4f}")),
        ]
        if "samples_per_insert" in last or "actor_restarts" in last:  # Ray backend
            rows += [("samples per insert", _fmt(last.get("samples_per_insert"), "{:.2f}")),
                     ("actor restarts", _fmt(last.get("actor_restarts"), "{:,.0f}"))]
        rows += [
            ("replay size", f"{int(last.get('replay_size', 0)):,d}"),
            ("wall time", _fmt(last.get("wall_time_s"), "{:.0f} s")),
        ]
        for label, value in rows:
            table.add_row(label, value)
        return table

    def message(self, text: str) -> None:
        """A line for the user (goes above the live panel on a terminal)."""
        if self.mode == "none":
            return
        if self._live is not None:
            self._live.console.print(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        tracking.close(self._tracker)
        self._tracker = None
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def read_metrics(path: str) -> list[dict[str, str]]:
    """Rows of a metrics.csv (strings; empty cells are ''). [] if the file does not exist.

    A last line cut by a crash mid-write (fewer cells than columns) is dropped.

    Raises:
      ValueError: naming the file, if it is not a readable CSV (binary garbage, NUL bytes).
    """
    try:
        with open(path, newline="", encoding="utf-8") as file:
            rows = list(csv.DictReader(file))
    except FileNotFoundError:
        return []
    except (UnicodeDecodeError, csv.Error, IsADirectoryError) as error:
        raise ValueError(f"{path!r} is not a readable metrics CSV ({type(error).__name__}: {error})") from None
    return [row for row in rows if None not in row.values() and row.get("env_steps")]


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


def _fmt(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)
