"""Learner step time by TensorFlow thread-pool size (``TrainConfig.tf_threads``).

    python scripts/bench_threads.py                       # tmaze, cartpole_novel, lstm64
    python scripts/bench_threads.py --configs tmaze --threads 1 2 --rounds 5
    python scripts/bench_threads.py --threads 0 1 1x2     # 1x2: 1 thread per op, 2 ops at once

TensorFlow fixes its pools at its first op, so every measurement is its own process: the
learner of a config, one step ("start-up"), then ``STEPS[config]`` timed steps on a fixed random
batch. Rounds interleave the thread counts; the table gives the median per config and count
and the paired ratio to TensorFlow's default pools (0). Configs: the ``tmaze``,
``cartpole_novel`` and ``minigrid_memory`` presets' learners; ``lstm64`` / ``lstm256`` /
``lstm512`` the step of ``bench_learner.py``. Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from bench_common import paired_ratio, print_result, run_part  # scripts/ is on sys.path

CONFIGS = ("tmaze", "cartpole_novel", "minigrid_memory", "lstm64", "lstm256", "lstm512")
STEPS = {"tmaze": 300, "cartpole_novel": 200, "minigrid_memory": 100, "lstm64": 30, "lstm256": 6, "lstm512": 3}


def _pools(threads: str) -> tuple[int, int]:
    """``"N"``: N threads in both pools (0: TensorFlow's default); ``"AxB"``: A threads
    within an op (intra-op pool), B ops at once (inter-op pool)."""
    intra, _, inter = threads.partition("x")
    pools = (int(intra), int(inter or intra))
    if min(pools) < 0 or (0 in pools and pools != (0, 0)):
        raise ValueError(f"threads must be N or AxB with N >= 0 and A, B >= 1, got {threads!r}")
    return pools


def _measure(config: str, threads: str, steps: int) -> dict[str, float]:
    """In this (fresh) process: start-up and seconds per learner step."""
    import tensorflow as tf

    intra, inter = _pools(threads)
    if intra:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    from agents.r2d2.learner import R2D2Learner
    from agents.r2d2.presets import get_preset
    from agents.r2d2.synthetic import random_batch
    from bench_learner import paper_configs

    if config in ("tmaze", "cartpole_novel", "minigrid_memory"):
        r2d2 = get_preset(config).r2d2
        shape, actions = {"tmaze": ((4,), 3), "cartpole_novel": ((2,), 2), "minigrid_memory": ((3, 3, 3), 3)}[config]
        net = r2d2.network.for_env(shape, actions)
    else:
        r2d2, net = paper_configs(int(config.removeprefix("lstm")))
    started = time.perf_counter()
    learner = R2D2Learner(r2d2, net)
    data, weights = random_batch(r2d2, net)
    learner.step(data, weights)
    startup = time.perf_counter() - started
    learner.step(data, weights)
    started = time.perf_counter()
    for _ in range(steps):
        learner.step(data, weights)
    return {"startup_s": startup, "step_ms": (time.perf_counter() - started) / steps * 1e3}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=["tmaze", "cartpole_novel", "lstm64"])
    parser.add_argument("--threads", nargs="+", default=["0", "1", "2"],
                        help="pool sizes to compare: N (both pools; 0: TensorFlow's default) or AxB "
                             "(A threads within an op, B ops at once)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--_measure", nargs=3, metavar=("CONFIG", "THREADS", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._measure:
        config, threads, steps = args._measure
        print(json.dumps(_measure(config, threads, int(steps))))
        return 0
    for threads in args.threads:
        try:
            _pools(threads)
        except ValueError as error:
            parser.error(str(error))
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    for round_index in range(args.rounds):
        for config in args.configs:
            for threads in args.threads:
                record = run_part(__file__, "--_measure", config, threads, str(STEPS[config]))
                results.setdefault((config, threads), []).append(record)
                print(f"round {round_index + 1}/{args.rounds}  {config:15s} threads {threads}  "
                      f"start-up {record['startup_s']:5.2f} s  step {record['step_ms']:7.2f} ms", file=sys.stderr, flush=True)
    summary: dict[str, float] = {}
    print(f"{'config':15s} {'threads':>7s} {'start-up s':>10s} {'step ms':>9s} {'vs default':>10s}")
    for config in args.configs:
        for threads in args.threads:
            runs = results[(config, threads)]
            step = statistics.median(r["step_ms"] for r in runs)
            startup = statistics.median(r["startup_s"] for r in runs)
            ratio = None
            if "0" in args.threads:
                ratio = paired_ratio([r["step_ms"] for r in runs], [r["step_ms"] for r in results[(config, "0")]])
                summary[f"step_over_default_{config}_threads{threads}"] = round(ratio, 3)
            summary[f"step_ms_{config}_threads{threads}"] = round(step, 3)
            summary[f"startup_s_{config}_threads{threads}"] = round(startup, 3)
            print(f"{config:15s} {threads:>7s} {startup:10.2f} {step:9.2f} {'' if ratio is None else f'{ratio:10.3f}'}")
    print_result(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
