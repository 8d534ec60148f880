"""Checkpoints: exact round trip; corrupt, truncated or half-written ones are refused
with the file named, and a good checkpoint is never overwritten or deleted."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

from agents.r2d2.checkpoint import CheckpointError, CheckpointManager
from agents.r2d2.loop import TrainingLoop
from agents.r2d2.presets import get_preset


def _trained_loop(tmp_path, steps: int = 400) -> TrainingLoop:
    config = get_preset("smoke").replace(progress="none", run_dir=str(tmp_path / "run"), total_env_steps=steps,
                                         keep_checkpoints=5)
    loop = TrainingLoop(config)
    loop.run()
    return loop


def _snapshot(directory: str) -> dict[str, str]:
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as file:
                out[os.path.relpath(path, directory)] = hashlib.sha256(file.read()).hexdigest()
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return _trained_loop(tmp_path_factory.mktemp("ckpt"))


def test_round_trip_restores_everything(trained, tmp_path):
    loop = trained
    config = loop.config.replace(total_env_steps=loop.config.total_env_steps)
    resumed = TrainingLoop(config, loop.run_dir, resume=True)
    try:
        for a, b in zip(loop.learner.online.weights + loop.learner.target.weights,
                        resumed.learner.online.weights + resumed.learner.target.weights):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
        slots_a = [np.asarray(v) for v in loop.learner.optimizer.variables]
        slots_b = [np.asarray(v) for v in resumed.learner.optimizer.variables]
        assert len(slots_a) == len(slots_b) > 2
        for a, b in zip(slots_a, slots_b):
            np.testing.assert_array_equal(a, b)
        assert int(resumed.learner.num_steps.numpy()) == int(loop.learner.num_steps.numpy()) > 0
        assert resumed.replay.stats() == loop.replay.stats()
        np.testing.assert_array_equal(resumed.replay.priorities(), loop.replay.priorities())
        np.testing.assert_array_equal(resumed.replay._rows, loop.replay._rows)
        for key in ("env_steps", "episodes", "inserted_sequences", "sampled_sequences", "vector_steps"):
            assert resumed.counters[key] == loop.counters[key], key
        assert resumed.counters["resumes"] == 1
        assert list(resumed.recent_returns) == list(loop.recent_returns)
        # The actor acts with the restored weights and exploration RNG.
        for a, b in zip(resumed.actor.network.get_weights(), loop.learner.get_weights()):
            np.testing.assert_array_equal(a, b)
        assert resumed.actor._rng.bit_generator.state == loop.actor._rng.bit_generator.state
        # The replay samples the same batch after the restore (its RNG came back too).
        s1, s2 = resumed.replay.sample(4), loop.replay.sample(4)
        np.testing.assert_array_equal(s1.keys, s2.keys)
    finally:
        resumed.close()


def _fresh_copy(trained, tmp_path) -> CheckpointManager:
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(trained.run_dir, target)
    return CheckpointManager(str(target))


@pytest.mark.parametrize("damage", ["truncate_replay", "flip_learner_byte", "delete_state", "delete_manifest"])
def test_corrupt_checkpoint_is_refused_and_left_alone(trained, tmp_path, damage):
    manager = _fresh_copy(trained, tmp_path)
    path = manager.resolve()
    if damage == "truncate_replay":
        target = os.path.join(path, "replay.npz")
        with open(target, "r+b") as file:
            file.truncate(os.path.getsize(target) // 2)
        expected = "'replay.npz' has .* bytes"
    elif damage == "flip_learner_byte":
        target = os.path.join(path, "learner.data-00000-of-00001")
        with open(target, "r+b") as file:
            file.seek(os.path.getsize(target) // 2)
            byte = file.read(1)
            file.seek(-1, 1)
            file.write(bytes([byte[0] ^ 0xFF]))
        expected = "'learner.data-00000-of-00001' has sha256"
    elif damage == "delete_state":
        os.remove(os.path.join(path, "state.json"))
        expected = "'state.json' is missing"
    else:
        os.remove(os.path.join(path, "MANIFEST.json"))
        expected = "incomplete: MANIFEST.json is missing"
    before = _snapshot(manager.run_dir)
    with pytest.raises(CheckpointError, match=expected):
        manager.verify()
    config = trained.config
    with pytest.raises(CheckpointError, match=expected):
        TrainingLoop(config, manager.run_dir, resume=True)  # never trains from scratch instead
    assert _snapshot(manager.run_dir) == before, "a failed load changed files"


def test_failed_write_keeps_the_good_checkpoint(trained, tmp_path, monkeypatch):
    manager = _fresh_copy(trained, tmp_path)
    good = manager.latest_name()
    before = _snapshot(manager.directory)

    class FailingReplay:
        def save(self, path):
            with open(path, "wb") as file:
                file.write(b"half")
            raise OSError("disk full (simulated)")

    with pytest.raises(OSError, match="disk full"):
        manager.save(10**6, trained.learner.checkpoint_objects(), FailingReplay(), {"env_steps": 10**6})
    assert manager.latest_name() == good
    assert _snapshot(manager.directory) == before
    assert not [n for n in os.listdir(manager.directory) if n.startswith(".tmp-")]


def test_killed_write_leftover_is_ignored_and_cleaned(trained, tmp_path):
    manager = _fresh_copy(trained, tmp_path)
    good = manager.latest_name()
    leftover = os.path.join(manager.directory, ".tmp-killed")
    os.makedirs(leftover)
    with open(os.path.join(leftover, "replay.npz"), "wb") as file:
        file.write(b"partial")
    assert manager.latest_name() == good
    manager.verify()  # the latest is unaffected
    manager.save(10**6, trained.learner.checkpoint_objects(), trained.replay, {"env_steps": 10**6},
                 trained.learner.get_weights())
    assert manager.latest_name() == "ckpt-000001000000"
    assert not os.path.exists(leftover)
    manager.verify()


def test_keep_last_k(trained, tmp_path):
    manager = _fresh_copy(trained, tmp_path)
    manager.keep = 2
    for step in (10**6, 2 * 10**6, 3 * 10**6):
        manager.save(step, trained.learner.checkpoint_objects(), trained.replay, {"env_steps": step})
    assert manager.names() == ["ckpt-000002000000", "ckpt-000003000000"]
    assert manager.latest_name() == "ckpt-000003000000"


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint in .*nothing to resume from"):
        CheckpointManager(str(tmp_path)).verify()


def test_state_json_matches_loop(trained):
    with open(os.path.join(CheckpointManager(trained.run_dir).resolve(), "state.json")) as file:
        state = json.load(file)
    assert state["env_steps"] == trained.counters["env_steps"]
    assert state["replay_size"] == len(trained.replay)
