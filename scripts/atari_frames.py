"""Real preprocessed Atari frames for replay benchmarks: an ALE game played with random actions.

    python scripts/atari_frames.py --count 200000 --game Pong --seed 0   # prints the cache path
    python scripts/atari_frames.py --count 50000 --out /tmp/pong.npy

Each frame is what ``envs.make_env("ALE/<game>-v5")`` stacks: grayscale, 84x84 uint8, after
``AtariPreprocessing`` (frame skip 4 with max-pooling, 30 no-ops at reset). Random frames compress
and deduplicate unlike real ones (a replay's memory and a compressor's speed depend on it); these
have Atari's large uniform areas, a few moving objects, and episode boundaries where a stack must
not reach across.

From Python: ``atari_frames(count)`` (uint8 [count, 84, 84]) or ``record_atari_frames(count,
game, seed)`` (the frames and the episode starts).

The recording is deterministic for (game, seed): frame i is the same whatever the count, so a
cache of more frames serves fewer. Caches are ``<dir>/<game>-seed<seed>-<count>.npy`` (frames)
with ``.starts.npy`` beside it (episode starts), written atomically; the default directory is
``$TMPDIR/r2d2_state_atari_frames``.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import re
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from r2d2_state.files import atomic_write  # noqa: E402

__all__ = ["AtariFrames", "atari_frames", "record_atari_frames", "cache_path", "DEFAULT_CACHE_DIR"]

DEFAULT_CACHE_DIR = os.path.join(tempfile.gettempdir(), "r2d2_state_atari_frames")
FRAME_SHAPE = (84, 84)


@dataclasses.dataclass(frozen=True)
class AtariFrames:
    """Frames of consecutive episodes of one game, in the order they were played."""

    frames: np.ndarray
    """uint8 [count, 84, 84]: frame i is the observation after step i (or after a reset)."""
    episode_starts: np.ndarray
    """int64 [episodes]: index of each episode's first frame (its reset observation), 0 first."""

    @property
    def episode_ids(self) -> np.ndarray:
        """int64 [count]: the episode each frame belongs to (0 .. episodes - 1)."""
        ids = np.zeros(len(self.frames), np.int64)
        ids[self.episode_starts[1:]] = 1
        return np.cumsum(ids)


def _check(count: int, game: str, seed: int) -> None:
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"count must be an int >= 1 (frames to record), got {count!r}")
    if not isinstance(game, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", game):
        raise ValueError(f"game must be an ALE game name such as 'Pong' or 'Breakout', got {game!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")


def cache_path(count: int, game: str = "Pong", seed: int = 0, cache_dir: str | None = None) -> str:
    """Where :func:`record_atari_frames` caches ``count`` frames (the ``.npy`` of the frames)."""
    _check(count, game, seed)
    return os.path.join(cache_dir or DEFAULT_CACHE_DIR, f"{game}-seed{int(seed)}-{int(count)}.npy")


def _starts_path(frames_path: str) -> str:
    return frames_path[: -len(".npy")] + ".starts.npy"


def _play(count: int, game: str, seed: int) -> AtariFrames:
    """Play ``game`` with uniformly random actions until ``count`` frames are recorded."""
    import gymnasium as gym

    import envs  # here: importing the scripts module costs no Gymnasium / ALE start-up

    try:
        env = envs.make_env(f"ALE/{game}-v5", frame_stack=1)
    except gym.error.Error as error:
        raise ValueError(f"game {game!r}: no ALE id 'ALE/{game}-v5' ({' '.join(str(error).split())})") from None
    try:
        actions = np.random.default_rng(seed).integers(env.action_space.n, size=count)
        frames = np.empty((count,) + FRAME_SHAPE, np.uint8)
        starts = [0]
        obs, _ = env.reset(seed=int(seed))
        for i in range(count):
            frames[i] = obs[-1]
            if i + 1 == count:
                break
            obs, _, terminated, truncated, _ = env.step(int(actions[i]))
            if terminated or truncated:
                obs, _ = env.reset()
                starts.append(i + 1)
    finally:
        env.close()
    return AtariFrames(frames, np.asarray(starts, np.int64))


def _load(path: str, count: int) -> AtariFrames | None:
    starts_path = _starts_path(path)
    if not (os.path.isfile(path) and os.path.isfile(starts_path)):
        return None
    frames = np.load(path, mmap_mode="r")
    if frames.dtype != np.uint8 or frames.shape[1:] != FRAME_SHAPE or len(frames) < count:
        return None
    starts = np.load(starts_path)
    return AtariFrames(np.array(frames[:count]), starts[starts < count].astype(np.int64))


def record_atari_frames(count: int, game: str = "Pong", seed: int = 0, *, cache_dir: str | None = None,
                        path: str | None = None, use_cache: bool = True) -> AtariFrames:
    """``count`` preprocessed frames of ``game`` played with random actions, from the cache if there.

    Args:
      count: frames to record (>= 1).
      game: ALE game name (the id is ``ALE/<game>-v5``).
      seed: seeds the env's reset and the random actions.
      cache_dir: directory of the caches (default ``DEFAULT_CACHE_DIR``).
      path: read / write exactly this ``.npy`` instead (episode starts in ``.starts.npy`` beside it).
      use_cache: False: record again (and rewrite the cache).

    Returns:
      AtariFrames: frames uint8 [count, 84, 84] and the episode starts.

    Raises:
      ValueError: a bad count, seed or path, or a game ALE does not have (nothing is written).
      ImportError: the [atari] extra is not installed.
    """
    _check(count, game, seed)
    count, seed = int(count), int(seed)
    if path is not None and not str(path).endswith(".npy"):
        raise ValueError(f"path must end in .npy, got {path!r}")
    target = os.fspath(path) if path is not None else cache_path(count, game, seed, cache_dir)
    if use_cache:
        candidates = [target]
        if path is None:  # a longer recording of the same game and seed starts with these frames
            pattern = os.path.join(os.path.dirname(target), f"{game}-seed{seed}-*.npy")
            longer = [p for p in glob.glob(pattern) if re.fullmatch(r".*-\d+\.npy", p)]
            candidates += sorted(longer, key=lambda p: int(p.rsplit("-", 1)[1][:-4]))
        for candidate in candidates:
            cached = _load(candidate, count)
            if cached is not None:
                return cached
    recorded = _play(count, game, seed)
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    # Starts first: the frames file marks a complete cache.
    atomic_write(_starts_path(target), lambda file: np.save(file, recorded.episode_starts), binary=True)
    atomic_write(target, lambda file: np.save(file, recorded.frames), binary=True)
    return recorded


def atari_frames(count: int, game: str = "Pong", seed: int = 0, *, cache_dir: str | None = None) -> np.ndarray:
    """uint8 [count, 84, 84]: :func:`record_atari_frames`'s frames (episode starts there)."""
    return record_atari_frames(count, game, seed, cache_dir=cache_dir).frames


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200_000, help="frames to record")
    parser.add_argument("--game", default="Pong", help="ALE game name (ALE/<game>-v5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write this .npy (default: the cache)")
    args = parser.parse_args(argv)
    try:
        recorded = record_atari_frames(args.count, args.game, args.seed, path=args.out)
    except ValueError as error:
        parser.error(str(error))
    path = args.out or cache_path(args.count, args.game, args.seed)
    frames = recorded.frames
    changed = float(np.mean(np.any(frames[1:] != frames[:-1], axis=(1, 2)))) if len(frames) > 1 else 0.0
    print(f"{path}: {len(frames)} frames uint8 84x84 of {args.game} (seed {args.seed}), "
          f"{len(recorded.episode_starts)} episodes, {changed:.1%} of consecutive frames differ")


if __name__ == "__main__":
    main()
