"""scripts/reverb_peer.py: the item schedule of Acme's sequence adder, the settings, and the run
from our venv (the Reverb run itself only where the peer venv exists)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import reverb_peer  # noqa: E402

L, PERIOD = 125, 40


@pytest.mark.parametrize("length", [1, 50, 124, 125, 126, 164, 165, 166, 205, 833, 1000])
def test_items_follow_acmes_zero_padded_sequence_adder(length):
    ends = reverb_peer.item_ends(length, L, PERIOD)
    padding = reverb_peer.padding_steps(length, L, PERIOD)
    assert len(ends) == reverb_peer.items_per_episode(length, L, PERIOD)
    starts = [end - L for end in ends]
    assert starts[0] == 0 and all(s % PERIOD == 0 for s in starts)  # the state is stored at these steps
    assert all(b - a == PERIOD for a, b in zip(ends, ends[1:]))
    assert ends[-1] == length + padding and 0 <= padding < max(L, PERIOD) and starts[-1] < length
    assert all(end <= length for end in ends[:-1])  # only the last item reaches into the padding
    covered = np.zeros(length, bool)
    for start in starts:
        covered[start:start + L] = True
    assert covered.all()


def test_padding_pads_to_the_next_write():
    assert reverb_peer.padding_steps(50, L, PERIOD) == 75            # short episode: one item of L
    assert reverb_peer.padding_steps(165, L, PERIOD) == 0            # ends exactly at a write
    assert reverb_peer.padding_steps(166, L, PERIOD) == 39


def test_episode_lengths_cycle_the_frames_and_sum_to_the_steps():
    lengths = reverb_peer.episode_lengths(2_500, np.array([0, 300, 700]), 1_000)
    assert sum(lengths) == 2_500
    assert lengths == [300, 400, 300, 300, 400, 300, 300, 200]
    assert reverb_peer.episode_lengths(10, np.array([0]), 1_000) == [10]
    with pytest.raises(ValueError, match=r"episode starts must lie in 0 \.\. 99, got 0 \.\. 100"):
        reverb_peer.episode_lengths(10, np.array([0, 100]), 100)


@pytest.mark.parametrize("kwargs, words", [
    (dict(steps=0), "steps must be an int >= 1, got 0"),
    (dict(period=200), "period must be at most sequence_length (125), got 200"),
    (dict(max_size=0), "max_size must be an int >= 1 or None, got 0"),
    (dict(priority_exponent=1.5), "priority_exponent must be in [0, 1], got 1.5"),
    (dict(warmup_fraction=1.0), "warmup_fraction must be in [0, 1), got 1.0"),
    (dict(batch_size=True), "batch_size must be an int >= 1, got True"),
])
def test_settings_are_validated(kwargs, words):
    with pytest.raises(ValueError) as error:
        reverb_peer.PeerSettings(**kwargs)
    assert words in str(error.value)


def test_importing_the_peer_module_imports_neither_reverb_nor_tensorflow():
    code = ("import sys; sys.path.insert(0, 'scripts'); import reverb_peer; "
            "print(sorted(m for m in ('reverb', 'tensorflow') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


@pytest.fixture()
def frames_path(tmp_path):
    rng = np.random.default_rng(0)
    frames = np.full((400, 84, 84), 87, np.uint8)
    frames[:, 30:34, 40:42] = rng.integers(100, 236, size=(400, 4, 2))  # a little motion
    path = tmp_path / "frames.npy"
    np.save(path, frames)
    np.save(tmp_path / "frames.starts.npy", np.array([0, 250]))
    return str(path)


def test_run_without_the_peer_venv_returns_none_with_a_note(frames_path, tmp_path, capsys):
    assert reverb_peer.run_reverb_peer(python=str(tmp_path / "no-venv" / "python"), frames_path=frames_path,
                                       steps=100) is None
    assert "reverb peer skipped: no interpreter at" in capsys.readouterr().out


@pytest.mark.parametrize("kwargs, words", [
    (dict(frames_path="missing.npy"), "frames_path must be an existing .npy of uint8 [N, 84, 84] frames"),
    (dict(steps=-5), "steps must be an int >= 1, got -5"),
])
def test_run_checks_its_arguments_before_running(kwargs, words, frames_path, tmp_path):
    with pytest.raises(ValueError) as error:
        reverb_peer.run_reverb_peer(python=str(tmp_path / "python"), **{"frames_path": frames_path, **kwargs})
    assert words in str(error.value)


def test_arguments_reach_the_script_as_flags(frames_path):
    settings = reverb_peer.PeerSettings(steps=300, sample_batches=2, max_size=9, warmup_fraction=0.25)
    args = reverb_peer._arguments(frames_path, settings)
    assert args[:2] == ["--frames", frames_path]
    assert "--max-size" in args and args[args.index("--max-size") + 1] == "9"
    assert args[args.index("--warmup-fraction") + 1] == "0.25"


@pytest.mark.skipif(not os.path.isfile(reverb_peer.default_python()),
                    reason="no Reverb venv (REVERB_PEER_PYTHON or .reverb-venv; see scripts/reverb_peer.py)")
def test_reverb_peer_fills_and_samples(frames_path):
    result = reverb_peer.run_reverb_peer(frames_path=frames_path, steps=600, sample_batches=2, batch_size=4)
    # Episodes of 250 and 150 steps, cycled: 250, 150, 200 -> 5 + 2 + 3 items.
    assert result["env_steps"] == 600 and result["episodes"] == 3 and result["items"] == 10
    assert result["table_size"] == 10 and result["removed_items"] == 0
    assert result["sample_batch_shapes"]["observation"] == [4, 125, 84, 84]
    assert result["sample_batch_shapes"]["h"] == [4, 512] and result["sample_batch_shapes"]["c"] == [4, 512]
    assert result["insert_env_steps_per_s"] > 0 and result["sample_batch_s"] > 0
    assert len(result["rss_samples"]) >= 2
