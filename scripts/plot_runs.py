#!/usr/bin/env python
"""Greedy evaluation curves of several runs (e.g. seeds) in one PNG.

    python scripts/plot_runs.py runs/a runs/b --out curves.png --threshold 0.9 --reference 0.5

Reads each RUN_DIR/metrics.csv (its ``eval_return`` rows) and draws one line per run,
labelled with the run's seed from its config.json. ``--reference`` draws a dashed line for
a baseline (e.g. the memoryless level). The PNG is written atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def eval_curve(run_dir: str) -> tuple[list[float], list[float]]:
    """(env steps, greedy evaluation return) of a run's periodic evaluations.

    Raises:
      FileNotFoundError: RUN_DIR has no metrics.csv rows with an evaluation.
    """
    from agents.r2d2.run_logger import read_metrics

    rows = [r for r in read_metrics(os.path.join(run_dir, "metrics.csv")) if r.get("eval_return") not in (None, "")]
    if not rows:
        raise FileNotFoundError(f"{run_dir!r}: no evaluations in its metrics.csv")
    return [float(r["env_steps"]) for r in rows], [float(r["eval_return"]) for r in rows]


def _label(run_dir: str) -> str:
    try:
        with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as file:
            return f"seed {json.load(file)['seed']}"
    except (OSError, ValueError, KeyError):
        return os.path.basename(os.path.normpath(run_dir))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--out", required=True, help="PNG path")
    parser.add_argument("--threshold", type=float, default=None, help="solve threshold line")
    parser.add_argument("--reference", type=float, default=None, help="baseline line (e.g. memoryless level)")
    parser.add_argument("--reference-label", default="memoryless level")
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    try:
        curves = [(_label(d), *eval_curve(d)) for d in args.run_dirs]
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from r2d2_state.files import atomic_write

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for label, xs, ys in curves:
        ax.plot(xs, ys, "o-", markersize=3, label=label)
    if args.threshold is not None:
        ax.axhline(args.threshold, color="tab:green", linestyle="--", label=f"threshold {args.threshold:g}")
    if args.reference is not None:
        ax.axhline(args.reference, color="tab:gray", linestyle=":", label=f"{args.reference_label} {args.reference:g}")
    ax.set_xlabel("env steps")
    ax.set_ylabel("greedy evaluation return")
    ax.set_title(args.title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    atomic_write(args.out, lambda file: fig.savefig(file, format="png"), binary=True)
    plt.close(fig)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
