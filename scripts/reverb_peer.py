"""Reverb as a peer of the replay: R2D2 items written as Acme's R2D2 adder writes them.

Reverb (dm-reverb 0.14.0) needs TensorFlow 2.14 and Python <= 3.11, so it gets its own venv:

    python3.11 -m venv .reverb-venv
    .reverb-venv/bin/pip install "dm-reverb==0.14.0" "tensorflow==2.14.*" "numpy<2"
    python scripts/atari_frames.py --count 50000 --out /tmp/pong.npy      # real frames, our venv
    .reverb-venv/bin/python scripts/reverb_peer.py --frames /tmp/pong.npy --steps 1000000

The script starts a Reverb server in its own process with one table (prioritized sampler,
priority exponent 0.9; FIFO remover; ``max_size`` in items; rate limiter ``MinSize(1)``, so
neither side waits), and writes one actor's stream through a ``TrajectoryWriter``: each env
step is appended once (observation uint8 84x84, the single frames of the given ``.npy`` in
order, cycled; action int32; reward float32; discount float32), an item of ``L = 125`` steps is
created every ``period = 40`` steps of an episode, and each item's LSTM state (``h`` and ``c``,
float32 [512] each) is appended at its first step only and referenced as one squeezed step. At
an episode's end (the frames' episode starts) the last item is zero-padded to ``L`` steps, as
Acme's default ``EndBehavior.ZERO_PAD`` does. Reverb stores the appended steps in chunks
compressed with Snappy, shared by the overlapping items.

It prints one JSON line (the last line of stdout, the keys of :func:`measure`): resident
bytes per env step once the process runs steadily (RSS growth from ``warmup_fraction`` of
the steps to the end), insert throughput, and sampling through ``reverb.TrajectoryDataset``
(Acme's learner input) in the server's process, where Reverb reads the table directly
instead of over gRPC: its best case. From our own venv (without importing reverb)::

    from reverb_peer import run_reverb_peer
    result = run_reverb_peer(frames_path="/tmp/pong.npy", steps=1_000_000)   # None without the venv

The peer's python is ``python=``, else ``$REVERB_PEER_PYTHON``, else ``.reverb-venv/bin/python``
in the repository.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import time
from typing import Any

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE = "r2d2"
FRAME_SHAPE = (84, 84)

__all__ = ["PeerSettings", "default_python", "items_per_episode", "item_ends", "padding_steps", "episode_lengths",
           "run_reverb_peer"]


@dataclasses.dataclass(frozen=True)
class PeerSettings:
    """What the peer writes and measures."""

    steps: int = 1_000_000
    """Env steps to insert (one actor's stream). Reverb's auto-tuned chunk lengths and its
    allocations settle within the first few hundred thousand steps (``rss_samples``: the growth
    per tenth falls, then stays), so the default measures the second half of a million."""
    sequence_length: int = 125
    """L: steps per item (R2D2's burn-in 40 + trace 80 + n-step 5)."""
    period: int = 40
    """Steps between the starts of consecutive items of an episode."""
    state_units: int = 512
    """Width of the stored LSTM state: h and c, float32 [state_units] each, per item."""
    batch_size: int = 64
    """Items per sampled batch."""
    sample_batches: int = 50
    """Batches timed (after 5 untimed ones)."""
    max_size: int | None = None
    """Table size in items; None: every item the fill creates (nothing is removed)."""
    priority_exponent: float = 0.9
    """The prioritized sampler's exponent (R2D2's)."""
    warmup_fraction: float = 0.5
    """RSS growth is measured from this fraction of the steps on (start-up allocations and the
    chunker's tuning excluded)."""
    seed: int = 0
    """Seeds actions, rewards, priorities and states."""

    def __post_init__(self) -> None:
        for name in ("steps", "sequence_length", "period", "state_units", "batch_size", "sample_batches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.period > self.sequence_length:
            raise ValueError(f"period must be at most sequence_length ({self.sequence_length}), got {self.period!r}")
        if self.max_size is not None and (isinstance(self.max_size, bool) or not isinstance(self.max_size, int)
                                          or self.max_size < 1):
            raise ValueError(f"max_size must be an int >= 1 or None, got {self.max_size!r}")
        if not (isinstance(self.priority_exponent, (int, float)) and 0 <= self.priority_exponent <= 1):
            raise ValueError(f"priority_exponent must be in [0, 1], got {self.priority_exponent!r}")
        if not (isinstance(self.warmup_fraction, (int, float)) and 0 <= self.warmup_fraction < 1):
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")


def default_python() -> str:
    """The peer venv's python: ``$REVERB_PEER_PYTHON``, else ``.reverb-venv/bin/python`` here."""
    return os.environ.get("REVERB_PEER_PYTHON") or os.path.join(ROOT, ".reverb-venv", "bin", "python")


def items_per_episode(length: int, sequence_length: int, period: int) -> int:
    """Items Acme's sequence adder (ZERO_PAD) creates for an episode of ``length`` steps: one
    ending at step L, then one every ``period`` steps, the last one zero-padded."""
    if length < 1:
        raise ValueError(f"an episode has at least one step, got length {length!r}")
    return 1 + max(0, math.ceil((length - sequence_length) / period))


def item_ends(length: int, sequence_length: int, period: int) -> list[int]:
    """Step counts of an episode of ``length`` steps after which an item of the last L steps is
    created (the last one counts the zero padding); item i covers steps ``end - L .. end - 1``."""
    last = length + padding_steps(length, sequence_length, period)
    return list(range(sequence_length, last, period)) + [last] if last > sequence_length else [last]


def padding_steps(length: int, sequence_length: int, period: int) -> int:
    """Zero steps appended after an episode's last step so its last item has L steps."""
    if length <= sequence_length:
        return sequence_length - length
    return (period - (length - sequence_length) % period) % period


def episode_lengths(steps: int, episode_starts: np.ndarray, num_frames: int) -> list[int]:
    """Lengths of the episodes of ``steps`` env steps taken from ``num_frames`` frames whose
    episodes start at ``episode_starts`` (cycled: the frames' end also ends an episode)."""
    if steps < 1 or num_frames < 1:
        raise ValueError(f"steps and num_frames must be >= 1, got {steps!r} and {num_frames!r}")
    starts = np.unique(np.concatenate([[0], np.asarray(episode_starts, np.int64)]))
    if starts.min() < 0 or starts.max() >= num_frames:
        raise ValueError(f"episode starts must lie in 0 .. {num_frames - 1}, got {starts.min()} .. {starts.max()}")
    one_pass = np.diff(np.append(starts, num_frames)).tolist()
    lengths: list[int] = []
    remaining = steps
    while remaining > 0:
        for length in one_pass:
            take = min(length, remaining)
            lengths.append(int(take))
            remaining -= take
            if remaining == 0:
                break
    return lengths


def _memory() -> tuple[int, int]:
    """(VmRSS, RssAnon) of this process in bytes (Linux: dm-reverb ships Linux wheels only)."""
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon"):
                values[key] = int(rest.split()[0]) * 1024
    return values["VmRSS"], values["RssAnon"]


def _load_frames(path: str, mmap: bool = False) -> tuple[np.ndarray, np.ndarray]:
    if not str(path).endswith(".npy") or not os.path.isfile(path):
        raise ValueError(f"frames must be an existing .npy of uint8 [N, 84, 84] frames, got {path!r}")
    frames = np.load(path, mmap_mode="r" if mmap else None)
    if frames.dtype != np.uint8 or frames.ndim != 3 or frames.shape[1:] != FRAME_SHAPE or len(frames) < 1:
        raise ValueError(f"{path!r} holds {frames.dtype} {frames.shape}, expected uint8 [N, 84, 84] frames")
    starts_path = path[: -len(".npy")] + ".starts.npy"
    starts = np.load(starts_path) if os.path.isfile(starts_path) else np.zeros(1, np.int64)
    return frames, starts


def measure(frames_path: str, settings: PeerSettings) -> dict[str, Any]:
    """Fill a Reverb table with ``settings.steps`` env steps and time sampling (reverb venv only)."""
    frames, starts = _load_frames(frames_path)  # before the first memory reading: not counted
    lengths = episode_lengths(settings.steps, starts, len(frames))
    L, period, units = settings.sequence_length, settings.period, settings.state_units
    expected_items = sum(items_per_episode(n, L, period) for n in lengths)
    max_size = settings.max_size or expected_items

    import reverb  # the peer venv's; our own venv has neither reverb nor TensorFlow 2.14
    import tensorflow as tf

    rng = np.random.default_rng(settings.seed)
    signature = {
        "observation": tf.TensorSpec((L,) + FRAME_SHAPE, tf.uint8),
        "action": tf.TensorSpec((L,), tf.int32),
        "reward": tf.TensorSpec((L,), tf.float32),
        "discount": tf.TensorSpec((L,), tf.float32),
        "h": tf.TensorSpec((units,), tf.float32),
        "c": tf.TensorSpec((units,), tf.float32),
    }
    table = reverb.Table(name=TABLE, sampler=reverb.selectors.Prioritized(settings.priority_exponent),
                         remover=reverb.selectors.Fifo(), max_size=max_size,
                         rate_limiter=reverb.rate_limiters.MinSize(1), signature=signature)
    server = reverb.Server(tables=[table])
    address = f"localhost:{server.port}"
    client = reverb.Client(address)
    writer = client.trajectory_writer(num_keep_alive_refs=L + 1)
    zero_step = {"observation": np.zeros(FRAME_SHAPE, np.uint8), "action": np.int32(0),
                 "reward": np.float32(0.0), "discount": np.float32(0.0)}
    actions = rng.integers(0, 6, size=settings.steps).astype(np.int32)
    rewards = rng.choice(np.array([0.0, 0.0, 0.0, 1.0, -1.0], np.float32), size=settings.steps)

    def create_item() -> None:
        history = writer.history
        trajectory = {key: history[key][-L:] for key in ("observation", "action", "reward", "discount")}
        trajectory["h"], trajectory["c"] = history["h"][-L], history["c"][-L]
        writer.create_item(TABLE, float(rng.uniform(0.1, 1.0)), trajectory)
        writer.flush(block_until_num_items=2)  # Acme's max_in_flight_items

    warmup_step = int(settings.steps * settings.warmup_fraction)
    memory_at_warmup = _memory() if warmup_step == 0 else None
    step, frame, items, padded = 0, 0, 0, 0
    sample_every, rss_samples = max(1, settings.steps // 10), [[0, _memory()[0]]]
    start = time.perf_counter()
    for length in lengths:
        ends = set(item_ends(length, L, period))
        for t in range(length):
            data = {"observation": frames[frame], "action": actions[step], "reward": rewards[step],
                    "discount": np.float32(0.0 if t == length - 1 else 1.0)}
            if t % period == 0:  # an item starts here: its LSTM state, once
                data["h"] = rng.standard_normal(units).astype(np.float32)
                data["c"] = rng.standard_normal(units).astype(np.float32)
            writer.append(data)
            step, frame = step + 1, (frame + 1) % len(frames)
            if t == length - 1:
                pad = padding_steps(length, L, period)
                for _ in range(pad):
                    writer.append(zero_step)
                padded += pad
                create_item()
                items += 1
                writer.end_episode(clear_buffers=True)
            elif t + 1 in ends:
                create_item()
                items += 1
            if step == warmup_step and memory_at_warmup is None:
                writer.flush()
                memory_at_warmup = _memory()
            if step % sample_every == 0:
                rss_samples.append([step, _memory()[0]])
    writer.flush()
    insert_s = time.perf_counter() - start
    writer.close()
    table_size = client.server_info()[TABLE].current_size
    memory_at_end = _memory()
    measured_steps = settings.steps - warmup_step

    dataset = reverb.TrajectoryDataset.from_table_signature(
        server_address=address, table=TABLE, max_in_flight_samples_per_worker=2 * settings.batch_size)
    batches = iter(dataset.batch(settings.batch_size, drop_remainder=True))
    for _ in range(5):  # the pipeline's start-up
        next(batches)
    start = time.perf_counter()
    for _ in range(settings.sample_batches):
        sample = next(batches)
    sample_s = (time.perf_counter() - start) / settings.sample_batches
    shapes = {key: [int(d) for d in value.shape] for key, value in sample.data.items()}
    server.stop()

    raw_step = int(np.prod(FRAME_SHAPE)) + 4 + 4 + 4  # observation, action, reward, discount
    return {
        "peer": "reverb", "reverb_version": _version("dm-reverb"), "tensorflow_version": tf.__version__,
        "frames_path": os.path.abspath(frames_path), "frames": int(len(frames)),
        "env_steps": settings.steps, "episodes": len(lengths), "padding_steps": padded, "items": items,
        "table_size": int(table_size), "max_size": max_size, "removed_items": max(0, items - int(table_size)),
        "sequence_length": L, "period": period, "state_units": units,
        "priority_exponent": settings.priority_exponent,
        "step_shapes": {"observation": [*FRAME_SHAPE, "uint8"], "action": ["int32"], "reward": ["float32"],
                        "discount": ["float32"], "h": [units, "float32", "item start only"],
                        "c": [units, "float32", "item start only"]},
        "sample_batch_shapes": shapes,
        "raw_bytes_per_env_step": raw_step + 2 * units * 4 / period,
        "rss_bytes_per_env_step": (memory_at_end[0] - memory_at_warmup[0]) / max(1, measured_steps),
        "rss_anon_bytes_per_env_step": (memory_at_end[1] - memory_at_warmup[1]) / max(1, measured_steps),
        "rss_measured_from_step": warmup_step, "rss_end_bytes": memory_at_end[0],
        "rss_samples": rss_samples,
        "insert_env_steps_per_s": settings.steps / insert_s, "insert_s": insert_s,
        "sample_batch_size": settings.batch_size, "sample_batches": settings.sample_batches,
        "sample_batch_s": sample_s, "sampled_items_per_s": settings.batch_size / sample_s,
    }


def _version(package: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _arguments(frames_path: str, settings: PeerSettings) -> list[str]:
    args = ["--frames", os.fspath(frames_path)]
    for field in dataclasses.fields(PeerSettings):
        value = getattr(settings, field.name)
        if value is not None:
            args += [f"--{field.name.replace('_', '-')}", str(value)]
    return args


def run_reverb_peer(python: str | None = None, frames_path: str = "", steps: int = 1_000_000, *,
                    timeout_s: float = 7200.0, **settings: Any) -> dict[str, Any] | None:
    """Run this script under the Reverb venv's ``python`` and return its JSON result.

    Args:
      python: the peer venv's interpreter (default :func:`default_python`).
      frames_path: a ``.npy`` of uint8 [N, 84, 84] frames (``scripts/atari_frames.py``).
      steps: env steps to insert.
      timeout_s: give up after this long.
      **settings: other :class:`PeerSettings` fields (``sample_batches``, ``max_size``, ...).

    Returns:
      The result dict, or None (with a printed note) when that python does not exist.

    Raises:
      ValueError: bad settings or frames path (checked here, before anything runs).
      RuntimeError: the peer failed (its exit code and the end of its stderr).
    """
    peer = PeerSettings(steps=steps, **settings)
    if not str(frames_path).endswith(".npy") or not os.path.isfile(frames_path):
        raise ValueError(f"frames_path must be an existing .npy of uint8 [N, 84, 84] frames, got {frames_path!r}")
    python = python or default_python()
    if not os.path.isfile(python):
        print(f"reverb peer skipped: no interpreter at {python!r} (create the venv: see scripts/reverb_peer.py)")
        return None
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([python, os.path.abspath(__file__), *_arguments(frames_path, peer)],
                            capture_output=True, text=True, timeout=timeout_s, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"the reverb peer exited with {result.returncode}: {result.stderr[-3000:]}")
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"the reverb peer printed no JSON line: {result.stdout[-2000:]}")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", required=True, help=".npy of uint8 [N, 84, 84] frames (atari_frames.py)")
    defaults = PeerSettings()
    for field in dataclasses.fields(PeerSettings):
        kind = float if field.name in ("priority_exponent", "warmup_fraction") else int
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=kind, default=getattr(defaults, field.name))
    args = parser.parse_args(argv)
    try:
        settings = PeerSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(PeerSettings)})
        _load_frames(args.frames, mmap=True)  # checked before the server starts
    except ValueError as error:
        parser.error(str(error))
    print(json.dumps(measure(args.frames, settings)), flush=True)


if __name__ == "__main__":
    main()
