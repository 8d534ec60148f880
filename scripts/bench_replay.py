"""Replay benchmark: steps stored once (SequenceReplay) against cpprb, a numpy copy floor and Reverb.

Every sequence comes from a ``SequenceAdder`` driving 8 envs, as in training. Cases
(sequences of 80 steps, a new one every 40 steps of an env): ``small`` (100k sequences,
observations [4] float32, (h, c) of 64 units), ``atari`` (2k sequences, 84x84 uint8 single
frames, (h, c) of 512 units) and ``atari_stack4`` (4-frame stacks, each frame stored once).
For each: insert time with the replay full, and one prioritized sample of 64 + priority
update, against cpprb's ``PrioritizedReplayBuffer`` holding the same sequences whole (each
case in 3 fresh processes: times are medians, ratios the median of each process's own) and,
for frames, a plain numpy copy of the batch's bytes (the floor). Stored bytes per env step
at the R2D2 Atari shape (L = 40 + 80 + 5, period 40, LSTM 512), raw and compressed, with
Reverb beside them when its venv exists (``scripts/reverb_peer.py``). Frames are real Atari
frames when ale-py is installed (``scripts/atari_frames.py``), else synthetic (docs/replay.md,
"Benchmark").

Usage:
  python scripts/bench_replay.py                     # ~6 min and ~3 GB; Reverb adds ~2 min
  python scripts/bench_replay.py --quick             # a smoke run
  python scripts/bench_replay.py --paper-scale       # also 1M Atari steps raw (~7.7 GB) and 4M compressed (~2.4 GB)
The last line printed is one JSON object (ratios: ``*_vs_cpprb_*`` ours / cpprb as
throughput, > 1 is faster; ``atari_sample_vs_copy_floor`` our time / the floor's).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.metadata
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_common import run_part  # noqa: E402
from r2d2_state.replay import FrameStack, SequenceAdder, SequenceReplay  # noqa: E402

BATCH = 64
NUM_ENVS = 8
FRAME_BYTES = 84 * 84


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    sequences: int
    obs_shape: tuple[int, ...]
    units: int
    sample_iters: int
    stack: int = 0  # frames per observation (0: no stack)
    burn_in: int = 0
    trace_length: int = 80
    n_step: int = 0
    period: int = 40

    @property
    def length(self) -> int:
        return self.burn_in + self.trace_length + self.n_step


class Stream:
    """Observations of NUM_ENVS envs: rows of a frame pool (each env its own offset), frame
    stacks built as FrameStackObservation does (reset padding), episodes every 400-600 steps."""

    def __init__(self, case: Case, frames: np.ndarray, seed: int) -> None:
        self.case, self.frames = case, frames
        rng = np.random.default_rng(seed)
        self.rng = rng
        self.cursor = rng.integers(0, len(frames), NUM_ENVS)
        self.left = rng.integers(400, 600, NUM_ENVS)
        self.stacks = None
        self.vectors = rng.standard_normal((64, NUM_ENVS) + case.obs_shape).astype(np.float32)
        self.t = 0
        self.state = [[rng.standard_normal((NUM_ENVS, case.units)).astype(np.float32) for _ in "hc"]]
        self.action = rng.integers(0, 4, NUM_ENVS)
        self.reward = rng.standard_normal(NUM_ENVS).astype(np.float32)
        self.final_next = np.zeros(NUM_ENVS, bool)  # the next observation is an episode's final one
        self.fresh_next = np.ones(NUM_ENVS, bool)  # the next observation starts an episode

    def step(self) -> tuple:
        """One vector step under NEXT_STEP autoreset: after a terminating step comes the
        final observation (no transition), then the next episode's first."""
        case = self.case
        starting, final = self.fresh_next.copy(), self.final_next.copy()
        self.fresh_next = final
        self.left -= 1
        terminated = (self.left <= 0) & ~final
        self.left = np.where(terminated, self.rng.integers(400, 600, NUM_ENVS), self.left)
        self.final_next = terminated
        self.t += 1
        if case.obs_shape == (4,):
            obs = self.vectors[self.t % 64]
        else:
            self.cursor = (self.cursor + 1) % len(self.frames)
            frame = self.frames[self.cursor]  # [N, 84, 84]
            if not case.stack:
                obs = frame
            else:
                if self.stacks is None:
                    self.stacks = np.repeat(frame[:, None], case.stack, axis=1)
                shifted = np.concatenate([self.stacks[:, 1:], frame[:, None]], axis=1)
                fresh = np.repeat(frame[:, None], case.stack, axis=1)
                self.stacks = np.where(starting[:, None, None, None], fresh, shifted)
                obs = self.stacks
        return obs, self.action, self.reward, terminated, np.zeros(NUM_ENVS, bool), self.state


def atari_like_frames(count: int, seed: int) -> np.ndarray:
    """Real Pong frames (ale-py), else synthetic ones with a screen's structure (background,
    borders, moving blocks)."""
    try:
        from atari_frames import atari_frames

        return atari_frames(count, seed=seed)
    except Exception as error:  # noqa: BLE001 - no ale-py / ROMs: synthetic frames, said so
        print(f"real Atari frames unavailable ({type(error).__name__}: {error}); synthetic frames")
    rng = np.random.default_rng(seed)
    frames = np.full((count, 84, 84), 87, np.uint8)
    frames[:, :8], frames[:, -4:] = 236, 236
    positions = rng.integers(10, 70, (3, 2))
    for t in range(count):
        positions = np.clip(positions + rng.integers(-2, 3, positions.shape), 10, 70)
        for y, x in positions:
            frames[t, y:y + 8, x:x + 3] = 147
    return frames


def make_replay(case: Case, capacity_steps: int, seed: int,
                compression: str | None = None) -> tuple[SequenceReplay, SequenceAdder]:
    replay = SequenceReplay(capacity_steps=capacity_steps, priority_exponent=0.9, importance_exponent=0.6, seed=seed,
                            compression=compression)
    stacks = [FrameStack("observation", case.stack)] if case.stack else []
    adder = SequenceAdder(replay, NUM_ENVS, case.burn_in, case.trace_length, case.period, case.n_step,
                          frame_stacks=stacks)
    return replay, adder


def timed(fn, iters: int) -> float:
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - start) / iters


def interleaved(fns: dict, iters: int, rounds: int) -> dict:
    """Median over ``rounds`` of each fn's seconds per call, rounds interleaved so that load
    from other processes hits every contender alike."""
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(timed(fn, iters))
    return {name: float(np.median(values)) for name, values in times.items()}


def fill(replay: SequenceReplay, adder: SequenceAdder, stream: Stream, steps: int) -> float:
    """Add ``steps`` env steps, one chunk per vector step as the single-process loop does;
    seconds per vector step (adder and replay)."""
    start = time.perf_counter()
    calls = max(1, steps // NUM_ENVS)
    for _ in range(calls):
        adder.add(*stream.step())
    return (time.perf_counter() - start) / calls


def insert_chunks(replay: SequenceReplay, case: Case, stream: Stream, steps: int, chunk_steps: int = 40) -> float:
    """The replay's own insert: seconds per sequence of ``add_chunk`` for chunks of
    ``chunk_steps`` vector steps (what an actor process ships), the adder's time excluded."""
    stacks = [FrameStack("observation", case.stack)] if case.stack else []
    if not hasattr(replay, "_bench_writer"):  # a second actor, with envs of its own
        replay._bench_writer = SequenceAdder(None, NUM_ENVS, case.burn_in, case.trace_length, case.period,
                                             case.n_step, frame_stacks=stacks)
        replay._bench_stream = Stream(case, stream.frames, 99)
    writer, stream = replay._bench_writer, replay._bench_stream
    seconds, sequences = 0.0, 0
    for _ in range(max(1, steps // (NUM_ENVS * chunk_steps))):
        for _ in range(chunk_steps):
            writer.add(*stream.step())
        chunk = writer.take_chunk()
        start = time.perf_counter()
        replay.add_chunk(chunk)
        seconds += time.perf_counter() - start
        sequences += chunk.num_sequences
    return seconds / max(1, sequences)


def cpprb_items(case: Case, stream: Stream, count: int) -> list[dict]:
    """``count`` sequences as cpprb stores them: whole, every field."""
    replay, adder = make_replay(case, count * case.period * 2 + 10_000, 1)
    while len(replay) < count:
        adder.add(*stream.step())
    items = replay.get(replay.keys()[:count])
    out = []
    for i in range(count):
        h, c = items["start_state"][0]
        out.append({"obs": items["observation"][i], "act": items["action"][i], "rew": items["reward"][i],
                    "discount": items["discount"][i], "mask": items["mask"][i], "valid": items["valid"][i],
                    "prev_act": items["prev_action"][i], "prev_rew": items["prev_reward"][i], "h": h[i], "c": c[i]})
    return out


def run_case(case: Case, frames: np.ndarray, cpprb, quick: bool, seed: int) -> dict:
    stream = Stream(case, frames, seed)
    capacity_steps = case.sequences * case.period
    ours, adder = make_replay(case, capacity_steps, seed)
    fill(ours, adder, stream, capacity_steps + 4 * case.length * NUM_ENVS)  # full: steady state from here
    result: dict = {}
    theirs = None
    if cpprb is not None:
        pool = cpprb_items(case, Stream(case, frames, seed + 5), 16)
        env_dict = {k: {"shape": v.shape, "dtype": v.dtype} for k, v in pool[0].items()}
        theirs = cpprb.PrioritizedReplayBuffer(case.sequences, env_dict, alpha=0.9)
        batch = {k: np.stack([p[k] for p in pool * 2]) for k in pool[0]}
        while theirs.get_stored_size() < case.sequences:
            theirs.add(**batch)
        counter = [0]

        def add_cpprb():
            theirs.add(**pool[counter[0] % 16])
            counter[0] += 1

    # --- insert: the replay's insert per sequence (ours: chunks of 40 vector steps, each step
    # once; cpprb: one whole sequence a call), and what acting pays per vector step here.
    per_round = 400 if quick else 2_000
    ours_insert, cpprb_insert, acting = [], [], []
    for _ in range(4):
        ours_insert.append(insert_chunks(ours, case, stream, per_round * case.period // 4))
        acting.append(fill(ours, adder, stream, 40 * NUM_ENVS))
        if theirs is not None:
            cpprb_insert.append(timed(add_cpprb, per_round // 4))
    result["insert_ms_per_sequence_ours"] = float(np.median(ours_insert)) * 1e3
    result["adder_and_insert_ms_per_vector_step_ours"] = float(np.median(acting)) * 1e3
    if theirs is not None:
        result["insert_ms_per_sequence_cpprb"] = float(np.median(cpprb_insert)) * 1e3

    # --- sample 64 + priority update.
    prio_rng = np.random.default_rng(seed + 1)

    def step_ours():
        sample = ours.sample(BATCH)
        ours.update_priorities(sample.keys, prio_rng.random(BATCH) + 0.01)

    def step_cpprb():
        sample = theirs.sample(BATCH, beta=0.6)
        theirs.update_priorities(sample["indexes"], prio_rng.random(BATCH) + 0.01)

    fns = {"ours": step_ours}
    if theirs is not None:
        fns["cpprb"] = step_cpprb
    if case.obs_shape != (4,):
        # The floor: one batch's frames (B x L, x 4 for stacks) copied from the step store into
        # a preallocated array: no sampling, no priorities, no padding, no allocation.
        store = ours._steps.arrays[ours._step_names["observation"]]
        count = BATCH * case.length * max(1, case.stack)
        out = np.empty((count,) + store.shape[1:], store.dtype)
        floor_rng = np.random.default_rng(seed + 2)

        def copy_floor():
            np.take(store, floor_rng.integers(0, capacity_steps, count), axis=0, out=out, mode="clip")

        fns["floor"] = copy_floor
    iters = max(5, case.sample_iters // (10 if quick else 1))
    times = interleaved(fns, max(1, iters // 5), 5)
    result["sample_update_ms_ours"] = times["ours"] * 1e3
    if theirs is not None:
        result["sample_update_ms_cpprb"] = times["cpprb"] * 1e3
        result["sample_update_vs_cpprb"] = times["cpprb"] / times["ours"]
        result["insert_vs_cpprb"] = result["insert_ms_per_sequence_cpprb"] / result["insert_ms_per_sequence_ours"]
    if "floor" in times:
        result["copy_floor_ms"] = times["floor"] * 1e3
    stats = ours.stats()
    result["stored_bytes_per_env_step"] = stats["storage_bytes"] / capacity_steps
    result["cpprb_bytes_per_env_step"] = (sum(v.nbytes for v in pool[0].values()) / case.period
                                          if theirs is not None else None)
    del ours, theirs, adder
    gc.collect()
    return result


def bytes_per_step(stack: int, frames: np.ndarray, steps: int, seed: int, compression: str | None = None) -> dict:
    """Stored bytes per env step at the R2D2 Atari shape, full and in steady state."""
    case = Case("r2d2_atari", 0, (84, 84), 512, 0, stack=stack, burn_in=40, trace_length=80, n_step=5)
    stream = Stream(case, frames, seed)
    replay, adder = make_replay(case, steps, seed, compression)
    fill(replay, adder, stream, steps + 4 * case.length * NUM_ENVS)
    stats = replay.stats()
    replay.sample(BATCH)  # the first batch maps its output buffers: steady state from the second
    sample_s = timed(lambda: replay.sample(BATCH), 10)
    out = {"bytes_per_env_step": stats["storage_bytes"] / steps, "step_store_bytes": stats["step_store_bytes"],
           "sequence_index_bytes": stats["sequence_index_bytes"], "sampler_bytes": stats["sampler_bytes"],
           "sequences_held": stats["size"], "sample_ms": sample_s * 1e3}
    del replay, adder
    gc.collect()
    return out


def paper_scale(steps: int, frames_path: str, seed: int, compression: str | None = None) -> dict:
    """``steps`` Atari steps, single frames, LSTM 512, period 40, filled then sampled, in a
    process of its own: its peak resident memory."""
    code = (
        "import json, resource, sys, time, numpy as np\n"
        f"sys.path[:0] = [{os.path.dirname(os.path.abspath(__file__))!r}, "
        f"{os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')!r}]\n"
        "import bench_replay as b\n"
        f"frames = np.load({frames_path!r})\n"
        "case = b.Case('paper', 0, (84, 84), 512, 0, burn_in=40, trace_length=80, n_step=5)\n"
        f"replay, adder = b.make_replay(case, {steps}, {seed}, {compression!r})\n"
        f"stream = b.Stream(case, frames, {seed})\n"
        "start = time.perf_counter()\n"
        f"b.fill(replay, adder, stream, {steps} + 4 * case.length * b.NUM_ENVS)\n"
        "fill_s = time.perf_counter() - start\n"
        "sample_s = b.timed(lambda: replay.update_priorities(replay.sample(b.BATCH).keys, np.ones(b.BATCH)), 20)\n"
        "stats = replay.stats()\n"
        "print(json.dumps({'steps': stats['capacity_steps'], 'sequences_held': stats['size'],\n"
        "  'storage_bytes': stats['storage_bytes'], 'fill_s': fill_s, 'sample_update_ms': sample_s * 1e3,\n"
        "  'peak_rss_bytes': b.peak_rss_bytes()}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_rss_bytes() -> int:
    """This process's peak resident memory: VmHWM (Linux), which starts afresh with the
    process's own memory, unlike ru_maxrss, which keeps the parent's peak across fork and
    exec; ru_maxrss elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations and smaller replays (a smoke run)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the samplers")
    parser.add_argument("--paper-scale", action="store_true",
                        help="also fill and sample 1M Atari steps raw, and the paper's 4M compressed")
    parser.add_argument("--paper-steps", type=int, default=1_000_000, help="steps of the raw --paper-scale replay")
    parser.add_argument("--paper-steps-lz4", type=int, default=4_000_000,
                        help="steps of the compressed --paper-scale replay")
    parser.add_argument("--reverb-python", default=None,
                        help="the Reverb peer venv's python (default: $REVERB_PEER_PYTHON or .reverb-venv/bin/python)")
    parser.add_argument("--reverb-steps", type=int, default=1_000_000, help="env steps Reverb is filled with")
    parser.add_argument("--no-reverb", action="store_true", help="skip the Reverb peer")
    parser.add_argument("--processes", type=int, default=None,
                        help="fresh processes per timing case (default 3, 1 with --quick): times are medians over "
                             "them, cpprb ratios the median of each process's own ratio")
    parser.add_argument("--_case", default=None, help=argparse.SUPPRESS)  # one case, in its own process
    args = parser.parse_args()
    try:
        import cpprb
    except ImportError:
        cpprb = None
        print("cpprb is not installed (pip install -e '.[bench]'): the cpprb ratios are skipped")

    frames = atari_like_frames(20_000 if args.quick else 50_000, args.seed)
    cases = {case.name: case for case in [
        Case("small", 100_000 if not args.quick else 20_000, (4,), 64, sample_iters=3000),
        Case("atari", 2_000, (84, 84), 512, sample_iters=150),
        Case("atari_stack4", 2_000, (84, 84), 512, sample_iters=100, stack=4),
    ]}
    if args._case:
        print(json.dumps(run_case(cases[args._case], frames, cpprb, args.quick, args.seed)))
        return
    processes = args.processes if args.processes is not None else (1 if args.quick else 3)
    if processes < 1:
        parser.error(f"--processes must be >= 1, got {processes}")
    results, per_process = {}, {}
    for case in cases.values():
        print(f"case {case.name}: {case.sequences} sequences x {case.length} steps (a new one every {case.period}), "
              f"{case.obs_shape}{' x 4-frame stacks' if case.stack else ''}, (h, c) of {case.units}", flush=True)
        # Each case in a fresh process: a fresh batch costs page faults whose price depends on
        # what the process allocated and freed before, so cases run in one process change
        # each other's figures (cpprb allocates every batch; this replay recycles its buffers).
        # Several processes: cpprb's sampling time varies between fresh processes more than
        # this replay's, so one process's ratio is a draw, their median the figure.
        runs = [run_part(__file__, "--_case", case.name, "--seed", str(args.seed), *(["--quick"] if args.quick else []))
                for _ in range(processes)]
        results[case.name] = {key: None if runs[0][key] is None else float(np.median([run[key] for run in runs]))
                              for key in runs[0]}
        per_process[case.name] = runs
        for key, value in results[case.name].items():
            print(f"  {key:40s} {value if value is None else round(value, 4)}")
    shape_steps = 40_000 if args.quick else 200_000
    single = bytes_per_step(0, frames, shape_steps, args.seed)
    stack4 = bytes_per_step(4, frames, shape_steps, args.seed)
    print(f"R2D2 Atari shape (L 125, period 40, LSTM 512), {shape_steps} steps: single frames {single}, "
          f"4-frame stacks {stack4}")
    try:
        import cramjam  # noqa: F401 - the codec of compression="lz4"
    except ImportError:
        single_lz4 = stack4_lz4 = None
        print("cramjam is not installed (pip install -e '.[atari]'): the compressed figures are skipped")
    else:
        single_lz4 = bytes_per_step(0, frames, shape_steps, args.seed, "lz4")
        stack4_lz4 = bytes_per_step(4, frames, shape_steps, args.seed, "lz4")
        print(f"  compressed (lz4): single frames {single_lz4}, 4-frame stacks {stack4_lz4}")

    small, atari, atari4 = results["small"], results["atari"], results["atari_stack4"]
    summary = {
        "quick": args.quick, "python": platform.python_version(), "numpy": np.__version__,
        "cpprb": _version("cpprb") if cpprb else None, "cores": os.cpu_count(),
        "stored_bytes_per_env_step_over_frame_atari": round(single["bytes_per_env_step"] / FRAME_BYTES, 4),
        "stored_bytes_per_env_step_over_frame_atari_stack4": round(stack4["bytes_per_env_step"] / FRAME_BYTES, 4),
        "stored_bytes_per_env_step_atari": round(single["bytes_per_env_step"], 1),
        "sample_ms_r2d2_atari_shape": round(single["sample_ms"], 3),
        "sample_update_ms_small": round(small["sample_update_ms_ours"], 4),
        "sample_update_ms_atari": round(atari["sample_update_ms_ours"], 4),
        "sample_update_ms_atari_stack4": round(atari4["sample_update_ms_ours"], 4),
        "atari_copy_floor_ms": round(atari["copy_floor_ms"], 4),
        "atari_sample_vs_copy_floor": round(atari["sample_update_ms_ours"] / atari["copy_floor_ms"], 3),
        "atari_stack4_sample_vs_copy_floor": round(atari4["sample_update_ms_ours"] / atari4["copy_floor_ms"], 3),
        "insert_ms_per_sequence_small": round(small["insert_ms_per_sequence_ours"], 4),
        "adder_and_insert_ms_per_vector_step_small": round(small["adder_and_insert_ms_per_vector_step_ours"], 4),
        "adder_and_insert_ms_per_vector_step_atari_stack4": round(
            atari4["adder_and_insert_ms_per_vector_step_ours"], 4),
    }
    if single_lz4 is not None:
        summary.update({
            "stored_bytes_per_env_step_over_frame_atari_lz4": round(single_lz4["bytes_per_env_step"] / FRAME_BYTES, 4),
            "stored_bytes_per_env_step_over_frame_atari_stack4_lz4": round(
                stack4_lz4["bytes_per_env_step"] / FRAME_BYTES, 4),
            "stored_bytes_per_env_step_atari_lz4": round(single_lz4["bytes_per_env_step"], 1),
            "step_store_bytes_per_env_step_atari_lz4": round(single_lz4["step_store_bytes"] / shape_steps, 1),
            "sequence_index_bytes_per_env_step_atari": round(single_lz4["sequence_index_bytes"] / shape_steps, 1),
            "sample_ms_r2d2_atari_shape_lz4": round(single_lz4["sample_ms"], 3),
            "sample_ms_r2d2_atari_shape_stack4": round(stack4["sample_ms"], 3),
            "sample_ms_r2d2_atari_shape_stack4_lz4": round(stack4_lz4["sample_ms"], 3),
        })
    if cpprb is not None:
        summary.update({
            "sample_update_ms_cpprb_small": round(small["sample_update_ms_cpprb"], 4),
            "sample_update_ms_cpprb_atari": round(atari["sample_update_ms_cpprb"], 4),
            "sample_update_vs_cpprb_small": round(small["sample_update_vs_cpprb"], 3),
            "sample_update_vs_cpprb_atari": round(atari["sample_update_vs_cpprb"], 3),
            "sample_update_vs_cpprb_atari_stack4": round(atari4["sample_update_vs_cpprb"], 3),
            "insert_vs_cpprb_small": round(small["insert_vs_cpprb"], 3),
            "insert_vs_cpprb_atari": round(atari["insert_vs_cpprb"], 3),
            "sample_update_vs_cpprb_small_per_process": [round(run["sample_update_vs_cpprb"], 3)
                                                         for run in per_process["small"]],
            "insert_vs_cpprb_small_per_process": [round(run["insert_vs_cpprb"], 3) for run in per_process["small"]],
            "cpprb_bytes_per_env_step_over_frame_atari_stack4": round(
                atari4["cpprb_bytes_per_env_step"] / FRAME_BYTES, 3),
        })
    if not args.no_reverb:
        from reverb_peer import run_reverb_peer

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "frames.npy")
            np.save(path, frames)
            peer = run_reverb_peer(python=args.reverb_python, frames_path=path,
                                   steps=20_000 if args.quick else args.reverb_steps)
        if peer is not None:
            bytes_key = next(k for k in ("rss_bytes_per_env_step", "bytes_per_env_step") if k in peer)
            summary["reverb_bytes_per_env_step"] = peer[bytes_key]
            summary["reverb_sample_ms"] = round(peer["sample_batch_s"] * 1e3, 3)
            summary["bytes_per_env_step_vs_reverb"] = round(single["bytes_per_env_step"] / peer[bytes_key], 3)
            if summary["reverb_sample_ms"]:
                summary["sample_vs_reverb"] = round(summary["reverb_sample_ms"] / single["sample_ms"], 3)
            if single_lz4 is not None:
                summary["bytes_per_env_step_vs_reverb_lz4"] = round(single_lz4["bytes_per_env_step"] / peer[bytes_key], 3)
                if summary["reverb_sample_ms"]:
                    summary["sample_vs_reverb_lz4"] = round(summary["reverb_sample_ms"] / single_lz4["sample_ms"], 3)
            summary["reverb"] = peer
    if args.paper_scale:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "frames.npy")
            np.save(path, frames)
            paper = paper_scale(args.paper_steps, path, args.seed)
            paper_lz4 = paper_scale(args.paper_steps_lz4, path, args.seed, "lz4") if single_lz4 is not None else None
        summary["paper_scale"] = paper
        if paper_lz4 is not None:
            summary["paper_scale_lz4"] = paper_lz4
            summary["paper_scale_lz4_peak_rss_gb"] = round(paper_lz4["peak_rss_bytes"] / 1e9, 3)
        summary["paper_scale_peak_rss_gb"] = round(paper["peak_rss_bytes"] / 1e9, 3)
        summary["paper_scale_peak_rss_over_frames"] = round(paper["peak_rss_bytes"] / (args.paper_steps * FRAME_BYTES), 3)
        summary["paper_4m_steps_gb"] = round(4_000_000 * single["bytes_per_env_step"] / 1e9, 1)
        if single_lz4 is not None:
            summary["paper_4m_steps_gb_lz4"] = round(4_000_000 * single_lz4["bytes_per_env_step"] / 1e9, 2)
    summary["peak_rss_gb_this_process"] = round(peak_rss_bytes() / 1e9, 3)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
