"""Checkpoints: exact round trip; corrupt, truncated or half-written ones are refused
with the file named, and a good checkpoint is never overwritten or deleted."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import numpy as np
import tree
import pytest

from agents.r2d2.actor import R2D2Actor
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
        keys = loop.replay.keys()
        np.testing.assert_array_equal(resumed.replay.keys(), keys)
        for a, b in zip(tree.flatten(resumed.replay.get(keys)), tree.flatten(loop.replay.get(keys))):
            np.testing.assert_array_equal(a, b)
        assert resumed.counters == dataclasses.replace(loop.counters, resumes=1)
        assert resumed.samples_per_insert() == loop.samples_per_insert() is not None
        assert resumed.counters.resumes == 1
        assert resumed.schedule.log.next == loop.schedule.log.next
        assert list(resumed.recent_returns) == list(loop.recent_returns)
        # The actor acts with the restored weights and exploration RNG (run() launches it).
        resumed.source.launch(0)
        actor = resumed.source.actor
        assert actor.rng_state == loop.source.actor.rng_state
        reference = R2D2Actor(resumed.network_config, actor.num_envs, epsilons=0.0, backend=actor.backend)
        reference.set_weights(loop.learner.get_weights())
        obs = np.zeros((actor.num_envs, *actor.observation_shape), actor.observation_dtype)
        actor.reset()
        actor.select_actions(obs)
        reference.select_actions(obs)
        np.testing.assert_array_equal(actor.last_q, reference.last_q)
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
    assert state["env_steps"] == trained.counters.env_steps
    assert state["replay_size"] == len(trained.replay)


# ---------------------------------------------------------------- collisions and superseded checkpoints


def _truncate(path: str) -> None:
    with open(path, "r+b") as file:
        file.truncate(os.path.getsize(path) // 2)


def test_save_never_adopts_an_existing_directory(trained, tmp_path):
    manager = _fresh_copy(trained, tmp_path)
    name = manager.latest_name()
    _truncate(os.path.join(manager.directory, name, "replay.npz"))
    step = int(name[len("ckpt-"):])
    manager.save(step, trained.learner.checkpoint_objects(), trained.replay, {"env_steps": step},
                 trained.learner.get_weights())
    manager.verify()  # the new, complete checkpoint, not the corrupt one
    assert manager.latest_name() == name
    (moved, where), = manager.superseded
    assert moved == name and os.path.basename(where).startswith("superseded-")
    assert os.path.isdir(os.path.join(where, name))  # kept aside, not deleted
    assert manager.names() == [name]


def test_resume_from_an_older_checkpoint_moves_the_newer_ones_aside(trained, tmp_path, capsys):
    """The issue's reproduction: a newer, corrupt checkpoint at the step the resumed run
    will end at must not be reused; the resumed run's own checkpoint is written."""
    manager = _fresh_copy(trained, tmp_path)
    older = manager.latest_name()
    steps = int(older[len("ckpt-"):])
    n = trained.config.r2d2.num_envs
    end = steps + 5 * n
    manager.save(end, trained.learner.checkpoint_objects(), trained.replay, {"env_steps": end},
                 trained.learner.get_weights())
    newer = manager.latest_name()
    _truncate(os.path.join(manager.directory, newer, "replay.npz"))
    with pytest.raises(CheckpointError, match="replay.npz"):
        TrainingLoop(trained.config, manager.run_dir, resume=True)
    config = trained.config.replace(total_env_steps=end, progress="plain")
    loop = TrainingLoop(config, manager.run_dir, resume=True, checkpoint=older)
    assert not [d for d in os.listdir(manager.directory) if d.startswith("superseded-")]  # run() moves them
    writes = []
    loop.on_insert = lambda chunk: writes.append((
        manager.latest_name(), [d for d in os.listdir(manager.directory) if d.startswith("superseded-")]))
    result = loop.run()
    latest_at_start, superseded = writes[0]
    assert len(superseded) == 1 and os.listdir(os.path.join(manager.directory, superseded[0])) == [newer]
    assert latest_at_start == older  # the pointer never names a moved checkpoint
    assert result.env_steps == end and os.path.basename(result.checkpoint) == newer
    assert "supersedes the newer checkpoints" in capsys.readouterr().out
    path, _ = manager.verify()  # latest: the resumed run's own, complete checkpoint
    assert os.path.basename(path) == newer and CheckpointManager.read_state(path)["resumes"] == 1


def test_new_run_refuses_a_directory_with_another_runs_checkpoints(trained, tmp_path):
    manager = _fresh_copy(trained, tmp_path)
    os.remove(os.path.join(manager.run_dir, "config.json"))
    before = _snapshot(manager.run_dir)
    with pytest.raises(FileExistsError, match="checkpoints of another run.*--run_dir"):
        TrainingLoop(trained.config, manager.run_dir)
    assert _snapshot(manager.run_dir) == before


def test_failed_resume_with_an_edited_config_changes_nothing(trained, tmp_path):
    from agents.r2d2.train_config import ConfigurationError

    manager = _fresh_copy(trained, tmp_path)
    config_path = os.path.join(manager.run_dir, "config.json")
    with open(config_path) as file:
        values = json.load(file)
    values["r2d2"]["replay_capacity"] += 1
    with open(config_path, "w") as file:
        json.dump(values, file)
    before = _snapshot(manager.run_dir)
    from agents.r2d2.train_config import TrainConfig

    edited = TrainConfig.from_json_file(config_path).replace(total_env_steps=5000)
    with pytest.raises(ConfigurationError, match=r"r2d2\.replay_capacity: config .*checkpoint"):
        TrainingLoop(edited, manager.run_dir, resume=True)
    assert _snapshot(manager.run_dir) == before  # config.json still holds the old budget


@pytest.mark.parametrize("damage", ["binary_latest", "manifest_entry_type", "state_not_object"])
def test_damaged_pointer_or_manifest_is_a_checkpoint_error(trained, tmp_path, damage):
    manager = _fresh_copy(trained, tmp_path)
    path = manager.resolve()
    if damage == "binary_latest":
        with open(os.path.join(manager.directory, "latest"), "wb") as file:
            file.write(b"\xff\xfe\x00ckpt")
        match = "latest.* is corrupt"
    elif damage == "manifest_entry_type":
        manifest_path = os.path.join(path, "MANIFEST.json")
        with open(manifest_path) as file:
            manifest = json.load(file)
        manifest["files"]["replay.npz"] = 12
        with open(manifest_path, "w") as file:
            json.dump(manifest, file)
        match = "entry 'replay.npz' must be"
    else:
        state_path = os.path.join(path, "state.json")
        with open(state_path, "w") as file:
            file.write("[1, 2]")
        manifest_path = os.path.join(path, "MANIFEST.json")
        with open(manifest_path) as file:
            manifest = json.load(file)
        manifest["files"]["state.json"] = {"size": os.path.getsize(state_path),
                                           "sha256": hashlib.sha256(b"[1, 2]").hexdigest()}
        with open(manifest_path, "w") as file:
            json.dump(manifest, file)
        match = "state.json.*expected a JSON object"
    before = _snapshot(manager.run_dir)
    with pytest.raises(CheckpointError, match=match):
        manager.load_weights()
    with pytest.raises(CheckpointError, match=match):
        TrainingLoop(trained.config, manager.run_dir, resume=True)
    assert _snapshot(manager.run_dir) == before


@pytest.mark.parametrize("dropped", ["resumes", "recent_returns", "actor_rng", "config"])
def test_a_state_json_lacking_a_key_is_refused_and_left_alone(trained, tmp_path, dropped):
    """No defaults for keys this loop writes: such a state.json is not one of its checkpoints."""
    manager = _fresh_copy(trained, tmp_path)
    state = dict(manager.read_state(manager.resolve()))
    del state[dropped]
    loop = trained
    name = os.path.basename(manager.save(loop.counters.env_steps + 4, loop.learner.checkpoint_objects(), loop.replay,
                                         state, loop.learner.get_weights()))
    before = _snapshot(manager.run_dir)
    match = "holds no config" if dropped == "config" else rf"state.json' lacks the keys \['{dropped}'\]"
    with pytest.raises(CheckpointError, match=match):
        TrainingLoop(loop.config, manager.run_dir, resume=True, checkpoint=name)
    assert _snapshot(manager.run_dir) == before


@pytest.mark.parametrize("budget", ["env_steps", "time_budget"])
def test_a_resume_whose_budget_is_met_writes_nothing_and_says_so(trained, tmp_path, capsys, budget):
    """Issue 26.1: a resume with nothing to do rewrote the checkpoint (moving the real one
    aside as 'not written by this run') and lowered the budget in config.json."""
    manager = _fresh_copy(trained, tmp_path)
    before = _snapshot(manager.run_dir)
    change = ({"total_env_steps": 100} if budget == "env_steps"
              else {"time_budget_s": 0.001, "total_env_steps": 10 ** 6})
    config = trained.config.replace(progress="plain", **change)
    for _ in range(2):  # a repeat adds nothing either
        result = TrainingLoop(config, manager.run_dir, resume=True).run()
        assert result.nothing_to_do and "nothing was written" in result.nothing_to_do
        assert result.stopped_by == budget and result.env_steps == trained.counters.env_steps
        assert result.checkpoint == manager.verify()[0]
        assert _snapshot(manager.run_dir) == before
        assert sorted(os.listdir(manager.directory)) == sorted(os.listdir(trained.checkpoints.directory))
    assert "nothing to do" in capsys.readouterr().out


def test_the_constructor_writes_nothing(tmp_path):
    """Issue 26.5: TrainingLoop(config) wrote config.json and env.json before run()."""
    config = get_preset("smoke").replace(progress="none", run_dir=str(tmp_path / "run"), total_env_steps=40)
    loop = TrainingLoop(config)
    try:
        assert not os.path.exists(config.run_dir)
    finally:
        loop.close()
    existing = tmp_path / "existing"
    existing.mkdir()
    loop = TrainingLoop(config.replace(run_dir=str(existing)))
    try:
        assert os.listdir(existing) == []
    finally:
        loop.close()
    result = TrainingLoop(config).run()
    assert {"config.json", "env.json", "checkpoints"} <= set(os.listdir(result.run_dir))


def test_a_signal_before_any_step_of_a_resumed_run_keeps_its_checkpoint(trained, tmp_path):
    """Stopped before it did anything, a resumed run does not write its checkpoint again
    (that would move the resumed one aside as if another run had written it)."""
    manager = _fresh_copy(trained, tmp_path)
    name = manager.latest_name()
    config = trained.config.replace(total_env_steps=10 ** 6)
    loop = TrainingLoop(config, manager.run_dir, resume=True)
    loop._stop_reason = lambda stop_signal: "signal"
    result = loop.run()
    assert result.checkpoint == os.path.join(manager.directory, name)
    assert not [d for d in os.listdir(manager.directory) if d.startswith("superseded-")]
    assert manager.latest_name() == name


def test_run_files_and_checkpoints_get_the_modes_open_and_mkdir_give(trained):
    """Issue 26.7: config.json / env.json were 0600 and checkpoint directories 0700
    (temporary files renamed into place), unlike metrics.csv."""
    import stat

    from r2d2_state.files import creation_mode

    def mode(*parts: str) -> int:
        return stat.S_IMODE(os.stat(os.path.join(trained.run_dir, *parts)).st_mode)

    assert mode("config.json") == mode("env.json") == mode("metrics.csv") == creation_mode()
    latest = trained.checkpoints.latest_name()
    assert mode("checkpoints", latest) == mode("checkpoints") == creation_mode(directory=True)
    assert mode("checkpoints", "latest") == creation_mode()


def test_an_averaged_policy_is_what_evaluations_and_weights_npz_get_and_resume_restores(tmp_path, monkeypatch):
    """With ``policy_average_rate`` the evaluations and the checkpoint's ``weights.npz``
    (evaluate, predict, export) get the averaged weights, not the online ones, and a resume
    restores the average exactly."""
    from agents.r2d2 import loop as loop_module

    evaluated = []
    real_call = loop_module.Evaluator.__call__

    def record(self, weights, env_steps):
        evaluated.append([np.array(w) for w in weights])
        return real_call(self, weights, env_steps)

    monkeypatch.setattr(loop_module.Evaluator, "__call__", record)
    config = get_preset("smoke")
    config = config.replace(progress="none", run_dir=str(tmp_path / "run"), total_env_steps=400, eval_every=400,
                            r2d2=config.r2d2.replace(policy_average_rate=0.05))
    loop = TrainingLoop(config)
    loop.run()
    try:
        policy = loop.learner.get_policy_weights()
        assert int(loop.learner.num_steps.numpy()) > 20  # beyond the plain mean of the first 1 / rate steps
        assert any(not np.allclose(a, b) for a, b in zip(policy, loop.learner.get_weights()))
        assert evaluated, "no evaluation ran"
        for a, b in zip(evaluated[-1], policy):
            np.testing.assert_array_equal(a, b)
        saved, _ = CheckpointManager(loop.run_dir).load_weights()
        for a, b in zip(saved, policy):
            np.testing.assert_array_equal(a, b)
        resumed = TrainingLoop(config, loop.run_dir, resume=True)
        try:
            for a, b in zip(resumed.learner.get_policy_weights(), policy):
                np.testing.assert_array_equal(a, b)
        finally:
            resumed.close()
    finally:
        loop.close()
