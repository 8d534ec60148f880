"""Replay benchmark: SequenceReplay vs cpprb's PrioritizedReplayBuffer vs a numpy copy floor.

Two cases, each with R2D2-shaped sequences of 80 steps:
  small: 100k sequences, observations [80, 4] float32, (h, c) of 64 units;
  atari: 2k sequences, observations [80, 84, 84] uint8, (h, c) of 512 units.
For each: insert throughput once the buffer is full (the steady state of a long run:
every insert evicts the oldest sequence), one sequence per call as an actor emits them
and in batches of 32; and the time of one prioritized sample of 64 + priority update. For atari, the
floor is a plain numpy copy of one batch's bytes (64 random rows of the packed storage,
every leaf, ``np.take(..., out=, mode='clip')`` into a preallocated array).

Usage:
  python scripts/bench_replay.py            # full run (~20 s here, ~3 GB RAM)
  python scripts/bench_replay.py --quick    # short run for a smoke check
The last line printed is one JSON object with the ratios (ours / cpprb as throughput,
so > 1 means faster than cpprb; atari_sample_vs_copy_floor = our time / floor time).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.metadata
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from r2d2_state.replay import SequenceReplay  # noqa: E402

BATCH = 64
STEPS = 80


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    capacity: int
    obs_shape: tuple[int, ...]
    obs_dtype: type
    units: int
    sample_iters: int


def make_items(case: Case, count: int, rng: np.random.Generator) -> list[dict]:
    """``count`` distinct random sequences in our item layout (numpy only)."""
    items = []
    for _ in range(count):
        if case.obs_dtype == np.uint8:
            obs = rng.integers(0, 256, (STEPS,) + case.obs_shape, dtype=np.uint8)
        else:
            obs = rng.standard_normal((STEPS,) + case.obs_shape).astype(np.float32)
        items.append({
            "observation": obs,
            "action": rng.integers(0, 4, STEPS).astype(np.int32),
            "reward": rng.standard_normal(STEPS).astype(np.float32),
            "discount": np.ones(STEPS, np.float32),
            "mask": np.ones(STEPS, np.float32),
            "valid": np.ones(STEPS, np.float32),
            "prev_action": rng.integers(0, 4, STEPS).astype(np.int32),
            "prev_reward": rng.standard_normal(STEPS).astype(np.float32),
            "start_state": [[rng.standard_normal(case.units).astype(np.float32),
                             rng.standard_normal(case.units).astype(np.float32)]],
        })
    return items


def to_cpprb(item: dict) -> dict:
    h, c = item["start_state"][0]
    return {"obs": item["observation"], "act": item["action"], "rew": item["reward"],
            "discount": item["discount"], "mask": item["mask"], "valid": item["valid"],
            "prev_act": item["prev_action"], "prev_rew": item["prev_reward"], "h": h, "c": c}


def stack(items: list[dict]) -> dict:
    import tree
    return tree.map_structure(lambda *xs: np.stack(xs), *items)


def timed(fn, iters: int) -> float:
    """Seconds per call of ``fn`` over ``iters`` calls."""
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - start) / iters


def interleaved(fns: dict, iters: int, rounds: int) -> dict:
    """Median over ``rounds`` of each fn's seconds per call, rounds interleaved so that
    load from other processes on a shared machine hits every contender alike."""
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(timed(fn, iters))
    return {name: float(np.median(values)) for name, values in times.items()}


def run_case(case: Case, cpprb, quick: bool, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    pool = make_items(case, 16, rng)
    pool_batch = stack(pool * 2)  # 32 items
    ours = SequenceReplay(case.capacity, priority_exponent=0.9, importance_exponent=0.6, seed=seed)
    result: dict = {}
    theirs = None
    if cpprb is not None:
        first = to_cpprb(pool[0])
        env_dict = {k: {"shape": v.shape, "dtype": v.dtype} for k, v in first.items()}
        theirs = cpprb.PrioritizedReplayBuffer(case.capacity, env_dict, alpha=0.9)
        cpprb_pool = [to_cpprb(item) for item in pool]
        cpprb_batch = {k: np.stack([p[k] for p in cpprb_pool * 2]) for k in cpprb_pool[0]}

    # --- fill to capacity (untimed), then time inserts in the steady state of a long run:
    # every insert evicts the oldest sequence and writes over memory already touched.
    while len(ours) < case.capacity:
        ours.add_batch(pool_batch)
    if theirs is not None:
        while theirs.get_stored_size() < case.capacity:
            theirs.add(**cpprb_batch)
    single = 2000 if quick else 10000
    counter = {"ours": 0, "cpprb": 0}

    def add_ours():
        ours.add(pool[counter["ours"] % 16])
        counter["ours"] += 1

    def add_cpprb():
        theirs.add(**cpprb_pool[counter["cpprb"] % 16])
        counter["cpprb"] += 1

    fns = {"ours": add_ours}
    if theirs is not None:
        fns["cpprb"] = add_cpprb
    insert = interleaved(fns, max(1, single // 4), 4)
    fns = {"ours": lambda: ours.add_batch(pool_batch)}
    if theirs is not None:
        fns["cpprb"] = lambda: theirs.add(**cpprb_batch)
    insert_batch = interleaved(fns, max(1, single // 32 // 4), 4)
    result["insert_ms_ours"] = insert["ours"] * 1e3
    result["insert_batch32_ms_per_item_ours"] = insert_batch["ours"] / 32 * 1e3
    if theirs is not None:
        result["insert_ms_cpprb"] = insert["cpprb"] * 1e3
        result["insert_batch32_ms_per_item_cpprb"] = insert_batch["cpprb"] / 32 * 1e3

    # --- sample 64 + priority update.
    prio_rng = np.random.default_rng(seed + 1)

    def step_ours():
        sample = ours.sample(BATCH)
        ours.update_priorities(sample.keys, prio_rng.random(BATCH) + 0.01)

    def step_ours_reuse():
        sample = ours.sample(BATCH, reuse_buffers=True)
        ours.update_priorities(sample.keys, prio_rng.random(BATCH) + 0.01)

    def step_cpprb():
        sample = theirs.sample(BATCH, beta=0.6)
        theirs.update_priorities(sample["indexes"], prio_rng.random(BATCH) + 0.01)

    # The floor copies one batch's bytes (64 packed rows, every leaf) from the very same
    # storage into a preallocated array: no sampling, no priorities, no allocation.
    storage = ours._rows
    out = np.empty((BATCH,) + storage.shape[1:], storage.dtype)
    floor_rng = np.random.default_rng(seed + 2)

    def copy_floor():
        idx = floor_rng.integers(0, case.capacity, BATCH)
        np.take(storage, idx, axis=0, out=out, mode="clip")

    fns = {"ours": step_ours, "ours_reuse": step_ours_reuse, "floor": copy_floor}
    if theirs is not None:
        fns["cpprb"] = step_cpprb
    iters = max(5, case.sample_iters // (10 if quick else 1))
    times = interleaved(fns, max(1, iters // 5), 5)
    result["sample_update_ms_ours"] = times["ours"] * 1e3
    result["sample_update_ms_ours_reuse_buffers"] = times["ours_reuse"] * 1e3
    result["copy_floor_ms"] = times["floor"] * 1e3
    if theirs is not None:
        result["sample_update_ms_cpprb"] = times["cpprb"] * 1e3
    result["item_bytes"] = ours.stats()["item_bytes"]
    del ours, theirs
    gc.collect()
    return result


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run, noisier)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the samplers")
    args = parser.parse_args()
    try:
        import cpprb
    except ImportError:
        cpprb = None
        print("cpprb is not installed (pip install -e '.[bench]'): the cpprb ratios are skipped")

    cases = [
        Case("small", 100_000, (4,), np.float32, 64, sample_iters=3000),
        Case("atari", 2_000, (84, 84), np.uint8, 512, sample_iters=150),
    ]
    results = {}
    for case in cases:
        print(f"case {case.name}: {case.capacity} sequences x {STEPS} x {case.obs_shape} "
              f"{np.dtype(case.obs_dtype).name}, (h, c) of {case.units}", flush=True)
        results[case.name] = run_case(case, cpprb, args.quick, args.seed)
        for key, value in results[case.name].items():
            print(f"  {key:40s} {value:10.4f}" if isinstance(value, float) else f"  {key:40s} {value:10d}")

    small, atari = results["small"], results["atari"]
    summary = {
        "quick": args.quick,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpprb": _version("cpprb") if cpprb else None,
        "sample_update_ms_small": round(small["sample_update_ms_ours"], 4),
        "sample_update_ms_atari": round(atari["sample_update_ms_ours"], 4),
        "atari_copy_floor_ms": round(atari["copy_floor_ms"], 4),
        "atari_sample_vs_copy_floor": round(atari["sample_update_ms_ours"] / atari["copy_floor_ms"], 3),
        "atari_sample_reuse_vs_copy_floor": round(atari["sample_update_ms_ours_reuse_buffers"] / atari["copy_floor_ms"], 3),
        "bytes_per_sequence_small": small["item_bytes"],
        "bytes_per_sequence_atari": atari["item_bytes"],
    }
    if cpprb is not None:
        summary.update({
            "sample_update_ms_cpprb_small": round(small["sample_update_ms_cpprb"], 4),
            "sample_update_ms_cpprb_atari": round(atari["sample_update_ms_cpprb"], 4),
            "sample_update_vs_cpprb_small": round(small["sample_update_ms_cpprb"] / small["sample_update_ms_ours"], 3),
            "sample_update_vs_cpprb_atari": round(atari["sample_update_ms_cpprb"] / atari["sample_update_ms_ours"], 3),
            "insert_vs_cpprb_small": round(small["insert_ms_cpprb"] / small["insert_ms_ours"], 3),
            "insert_vs_cpprb_atari": round(atari["insert_ms_cpprb"] / atari["insert_ms_ours"], 3),
            "insert_batch32_vs_cpprb_small": round(
                small["insert_batch32_ms_per_item_cpprb"] / small["insert_batch32_ms_per_item_ours"], 3),
        })
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
