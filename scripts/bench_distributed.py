#!/usr/bin/env python
"""Env steps/s and learner steps/s: the single-process loop vs the Ray backend with 1 and 2 actors.

Each configuration trains the T-maze preset for ``--seconds`` of training wall-clock
(``time_budget_s``; Ray start-up and worker start-up are outside the measured rates) and
reports the rates over the whole run from the loop's counters, plus the steady-state
rates of the last logged interval, and for Ray the array bytes the actor processes shipped
per env step. The last line of stdout is one JSON object.

Usage::

    python scripts/bench_distributed.py                    # ~3 x 60 s
    python scripts/bench_distributed.py --seconds 30 --actors 1 2 4
    python scripts/bench_distributed.py --shipped ../old-checkout   # bytes shipped per env step, here and there
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _measure(backend: str, num_actors: int, seconds: float, preset: str) -> dict:
    from agents.r2d2.loop import TrainingLoop
    from agents.r2d2.presets import get_preset
    from agents.r2d2.run_logger import read_metrics

    with tempfile.TemporaryDirectory() as tmp:
        config = get_preset(preset).replace(
            run_dir=os.path.join(tmp, "run"), time_budget_s=seconds, total_env_steps=10**9,
            eval_every=0, checkpoint_every=0, progress="none", backend=backend, num_actors=num_actors,
            stop_at_threshold=False)
        loop = TrainingLoop(config)
        started = time.perf_counter()
        result = loop.run()
        elapsed = time.perf_counter() - started
        shipped = getattr(loop.source, "shipped_bytes", None)
        rows = read_metrics(os.path.join(result.run_dir, "metrics.csv"))
        # Steady state: the mean of the logged interval rates over the second half of the run.
        half = [r for r in rows if float(r["wall_time_s"]) >= result.wall_time_s / 2]
        mean = lambda key: (sum(float(r[key]) for r in half) / len(half)) if half else None  # noqa: E731
        return {
            "backend": backend, "num_actors": num_actors if backend == "ray" else 0,
            "training_s": round(result.wall_time_s, 1), "total_s_incl_startup": round(elapsed, 1),
            "env_steps": result.env_steps, "learner_steps": result.learner_steps,
            "env_steps_per_s": round(result.env_steps / result.wall_time_s, 1),
            "learner_steps_per_s": round(result.learner_steps / result.wall_time_s, 2),
            "steady_env_steps_per_s": None if mean("env_steps_per_s") is None else round(mean("env_steps_per_s"), 1),
            "steady_learner_steps_per_s": (None if mean("learner_steps_per_s") is None
                                           else round(mean("learner_steps_per_s"), 2)),
            # What actor processes ship: each step once, sequences as references, priorities.
            "shipped_bytes_per_env_step": None if not shipped else round(shipped / result.env_steps, 1),
        }


SHIPPED_CODE = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np, tree
from agents.r2d2.learner import R2D2Learner
from agents.r2d2.presets import get_preset
from agents.r2d2.ray_backend import ActorWorker
out = {}
for preset in sys.argv[3:]:
    cfg = get_preset(preset)
    worker = ActorWorker(cfg.to_dict(), 0, 1)
    weights = R2D2Learner(cfg.r2d2, worker.network_config).get_weights()
    total = steps = 0
    for i in range(int(sys.argv[2])):
        r = worker.collect(cfg.r2d2.actor_update_period, weights if i == 0 else None)
        payload = r["items"] if "items" in r else r["steps"]  # sequences copied whole, or steps once
        if payload is not None:
            total += (sum(np.asarray(x).nbytes for x in tree.flatten(payload)) if isinstance(payload, dict)
                      else payload.nbytes())
        total += r["priorities"].nbytes
        steps += r["env_steps"]
    out[preset] = round(total / steps, 1)
print(json.dumps(out))
"""


def shipped_bytes(root: str, presets: list[str], chunks: int) -> dict:
    """Array bytes an actor process ships per env step (``ActorWorker.collect`` in a process
    of its own, without Ray), for the code checked out at ``root``."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", SHIPPED_CODE, root, str(chunks), *presets], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="training wall-clock per configuration")
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2], help="Ray actor counts to measure")
    parser.add_argument("--preset", default="tmaze")
    parser.add_argument("--skip-single", action="store_true", help="do not measure the single-process loop")
    parser.add_argument("--shipped", nargs="*", metavar="ROOT", default=None,
                        help="only the bytes an actor process ships per env step (no Ray, no timing), for "
                             "this checkout and each other checkout ROOT (e.g. a git worktree of an older commit)")
    args = parser.parse_args(argv)
    if args.shipped is not None:
        presets = ["tmaze", "memory", "cartpole_novel"]
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        report = {root: shipped_bytes(root, presets, 100) for root in [here, *args.shipped]}
        print(json.dumps({"benchmark": "shipped_bytes_per_env_step", "chunks": 100, "results": report}))
        return 0

    results = []
    if not args.skip_single:
        results.append(_measure("single", 1, args.seconds, args.preset))
        print(json.dumps(results[-1]), flush=True)
    for n in args.actors:
        results.append(_measure("ray", n, args.seconds, args.preset))
        print(json.dumps(results[-1]), flush=True)
    print(json.dumps({"benchmark": "distributed", "preset": args.preset, "seconds": args.seconds,
                      "cpu_count": os.cpu_count(), "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
