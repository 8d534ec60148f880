"""scripts/atari_frames.py: real preprocessed ALE frames for the replay benchmarks, cached."""

from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import atari_frames  # noqa: E402

pytestmark = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) is not None for m in ("ale_py", "cv2")),
    reason="needs the [atari] extra (ale-py, opencv)")

COUNT = 1000  # a random Pong episode is shorter: at least one episode boundary


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    return atari_frames.record_atari_frames(COUNT, "Pong", 0, cache_dir=str(tmp_path_factory.mktemp("frames")))


def test_frames_are_84x84_uint8_and_change_from_step_to_step(recorded):
    frames = recorded.frames
    assert frames.shape == (COUNT, 84, 84) and frames.dtype == np.uint8 and frames.flags["C_CONTIGUOUS"]
    changed = np.any(frames[1:] != frames[:-1], axis=(1, 2))
    assert changed.mean() > 0.9, f"only {changed.mean():.1%} of consecutive frames differ"
    # Real frames: mostly one background grey level, not noise (a compressor sees the difference).
    _, counts = np.unique(frames, return_counts=True)
    assert counts.max() / frames.size > 0.5


def test_episode_starts_mark_each_reset(recorded):
    starts = recorded.episode_starts
    assert starts.dtype == np.int64 and starts[0] == 0 and len(starts) >= 2
    assert np.all(np.diff(starts) > 0) and starts[-1] < COUNT
    ids = recorded.episode_ids
    assert ids.shape == (COUNT,) and ids[0] == 0 and ids[-1] == len(starts) - 1
    assert np.all(ids[starts[1:]] == ids[starts[1:] - 1] + 1)


def test_recording_is_deterministic_for_a_seed(recorded, tmp_path):
    again = atari_frames.record_atari_frames(300, "Pong", 0, cache_dir=str(tmp_path), use_cache=False)
    np.testing.assert_array_equal(again.frames, recorded.frames[:300])
    other = atari_frames.record_atari_frames(300, "Pong", 1, cache_dir=str(tmp_path), use_cache=False)
    assert np.any(other.frames != again.frames)


def test_cache_is_read_back_and_a_longer_one_serves_fewer_frames(recorded, tmp_path, monkeypatch):
    directory = str(tmp_path)
    first = atari_frames.record_atari_frames(200, "Pong", 0, cache_dir=directory)
    path = atari_frames.cache_path(200, "Pong", 0, directory)
    assert os.path.isfile(path) and os.path.isfile(path[:-4] + ".starts.npy")
    np.testing.assert_array_equal(np.load(path), first.frames)

    def no_playing(*args, **kwargs):
        raise AssertionError("recorded again instead of reading the cache")

    monkeypatch.setattr(atari_frames, "_play", no_playing)
    np.testing.assert_array_equal(atari_frames.atari_frames(200, cache_dir=directory), first.frames)
    fewer = atari_frames.record_atari_frames(120, "Pong", 0, cache_dir=directory)
    np.testing.assert_array_equal(fewer.frames, first.frames[:120])
    assert not os.path.exists(atari_frames.cache_path(120, "Pong", 0, directory))


def test_a_given_path_is_written_with_its_starts(tmp_path):
    path = tmp_path / "sub" / "pong.npy"
    recorded = atari_frames.record_atari_frames(50, path=str(path))
    np.testing.assert_array_equal(np.load(path), recorded.frames)
    np.testing.assert_array_equal(np.load(tmp_path / "sub" / "pong.starts.npy"), recorded.episode_starts)


@pytest.mark.parametrize("kwargs, words", [
    (dict(count=0), "count must be an int >= 1 (frames to record), got 0"),
    (dict(count=True), "count must be an int >= 1"),
    (dict(count=10, game="Pong-v5"), "game must be an ALE game name such as 'Pong' or 'Breakout', got 'Pong-v5'"),
    (dict(count=10, game="NoSuchGame"), "no ALE id 'ALE/NoSuchGame-v5'"),
    (dict(count=10, seed=-1), "seed must be an int >= 0, got -1"),
    (dict(count=10, path="frames.bin"), "path must end in .npy, got 'frames.bin'"),
])
def test_bad_input_is_refused_and_nothing_is_written(kwargs, words, tmp_path):
    with pytest.raises(ValueError) as error:
        atari_frames.record_atari_frames(cache_dir=str(tmp_path), **kwargs)
    assert words in str(error.value)
    assert os.listdir(tmp_path) == []


def test_command_line_writes_the_frames_and_says_what_it_recorded(tmp_path, capsys):
    path = tmp_path / "pong.npy"
    atari_frames.main(["--count", "40", "--out", str(path)])
    out = capsys.readouterr().out
    assert f"{path}: 40 frames uint8 84x84 of Pong (seed 0), 1 episodes" in out and "consecutive frames differ" in out
    assert np.load(path).shape == (40, 84, 84)
    with pytest.raises(SystemExit):
        atari_frames.main(["--count", "0", "--out", str(tmp_path / "none.npy")])
    assert "count must be an int >= 1" in capsys.readouterr().err
    assert not (tmp_path / "none.npy").exists()
