"""The Ray backend: single-process runs never import Ray; workers produce prioritised
sequences; a killed actor process is restarted without losing inserted data; checkpoint
and resume; the default preset learns with 2 Ray actors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from agents.r2d2.presets import get_preset
from agents.r2d2.train_config import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_single_process_run_does_not_import_ray(tmp_path):
    """The default backend (the loop module and scripts/train.py) never imports ray."""
    code = (
        "import sys; sys.path.insert(0, 'scripts'); import train; import agents.r2d2.loop\n"
        f"train.main(['--preset', 'smoke', '--run_dir', {str(tmp_path / 'run')!r}, '--total_env_steps', '40',"
        " '--progress', 'none'])\n"
        "assert 'ray' not in sys.modules, sorted(m for m in sys.modules if m.startswith('ray'))\n"
        "print('NO_RAY')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=180,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert "NO_RAY" in out.stdout, out.stderr[-3000:]


def test_worker_epsilons_cover_all_envs_of_all_actors():
    from agents.r2d2.config import actor_epsilons
    from agents.r2d2.ray_backend import worker_epsilons

    spread = [e for i in range(3) for e in worker_epsilons(i, 3, 4, 0.4, 7.0)]
    assert spread == actor_epsilons(12, 0.4, 7.0)
    with pytest.raises(ValueError, match="actor_index"):
        worker_epsilons(3, 3, 4, 0.4, 7.0)


def test_config_rejects_unknown_backend():
    with pytest.raises(ValueError, match="backend"):
        TrainConfig(backend="mpi")


ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}})
    yield
    ray.shutdown()


def _smoke(tmp_path, name: str = "run", **changes) -> TrainConfig:
    config = get_preset("smoke").replace(progress="none", run_dir=str(tmp_path / name), backend="ray",
                                         num_actors=2)
    return config.replace(**changes)


def test_ray_that_cannot_start_is_one_error_and_writes_nothing(tmp_path, monkeypatch):
    """Starting or joining Ray is checked before anything is written to the run directory."""
    from agents.r2d2.loop import TrainingLoop
    from agents.r2d2.train_config import ConfigurationError

    def refuse(*args, **kwargs):
        raise ConnectionError("no cluster here (simulated)")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    config = _smoke(tmp_path)
    with pytest.raises(ConfigurationError, match="cannot join Ray at '127.0.0.1:1'.*no cluster here"):
        TrainingLoop(config, ray_address="127.0.0.1:1")
    assert not os.path.exists(config.run_dir) or os.listdir(config.run_dir) == []


def test_worker_collect_returns_prioritised_sequences():
    """In-process (no Ray): items stacked, one finite positive priority per sequence."""
    from agents.r2d2.learner import R2D2Learner
    from agents.r2d2.ray_backend import ActorWorker

    config = get_preset("smoke")
    worker = ActorWorker(config.to_dict(), actor_index=1, num_actors=2)
    learner = R2D2Learner(config.r2d2, worker.network_config)
    out = worker.collect(20, learner.get_weights())
    items = _items(out)
    k = items["valid"].shape[0]
    assert k > 0 and out["priorities"].shape == (k,)
    assert np.all(np.isfinite(out["priorities"])) and np.all(out["priorities"] >= 0)
    assert items["valid"].shape[1] == config.r2d2.sequence_length
    # Each step shipped once: 20 vector steps of num_envs envs, not the overlapping sequences' steps.
    assert out["steps"].num_steps == 20 * config.r2d2.num_envs
    assert out["bytes"] == out["steps"].nbytes() + out["priorities"].nbytes
    assert out["env_steps"] == 20 * config.r2d2.num_envs and out["episode_returns"]
    again = worker.collect(5)  # continues the same episodes (no reset), other k
    assert again["env_steps"] == 5 * config.r2d2.num_envs


def _items(out: dict) -> dict:
    """The sequences of a worker's chunk, read back from a replay they are inserted into."""
    from r2d2_state.replay import SequenceReplay

    replay = SequenceReplay(10_000, capacity_steps=100_000, seed=0)
    return replay.get(replay.add_chunk(out["steps"], out["priorities"]))


@pytest.mark.parametrize("start_state", ["stored", "zero"])
def test_worker_priorities_equal_the_learners_at_equal_weights(start_state):
    """Actor-side initial priorities and the learner's come from one function: with the
    learner's online = target = the actor's weights they agree on the same sequences."""
    from agents.r2d2.learner import R2D2Learner
    from agents.r2d2.ray_backend import ActorWorker

    smoke = get_preset("smoke")
    config = smoke.replace(r2d2=smoke.r2d2.replace(start_state=start_state))
    worker = ActorWorker(config.to_dict(), actor_index=0, num_actors=1)
    weights = R2D2Learner(config.r2d2, worker.network_config).get_weights()
    out = worker.collect(40, weights)
    items = _items(out)
    k = items["valid"].shape[0]
    assert k >= 2, f"expected at least 2 sequences from 40 vector steps, got {k}"
    learner = R2D2Learner(config.r2d2.replace(batch_size=k), worker.network_config)
    learner.online.set_weights(weights)
    learner.target.set_weights(weights)
    result = learner.step(items, np.ones(k, np.float32))
    assert np.all(result.priorities > 0), result.priorities
    np.testing.assert_allclose(out["priorities"], result.priorities, rtol=1e-5, atol=1e-6)


def test_killed_actor_is_restarted_and_inserted_data_is_kept(tmp_path, ray_cluster):
    from agents.r2d2.loop import TrainingLoop

    config = _smoke(tmp_path, total_env_steps=60_000, log_every=40)  # a safety cap: SIGINT below ends the run
    config = config.replace(r2d2=config.r2d2.replace(replay_capacity=20_000))
    seen: dict = {}

    def insert(chunk):
        if "before" not in seen and loop.replay.stats()["inserted"] >= 100 and loop.learner.num_steps.numpy() > 0:
            seen["before"] = {"inserted": loop.replay.stats()["inserted"], "size": len(loop.replay),
                              "learner_steps": int(loop.learner.num_steps.numpy()),
                              "chunks0": loop.source.chunks_per_worker[0]}
            os.kill(ray.get(loop.source.workers[0].pid.remote()), signal.SIGKILL)  # run() launched the workers
        elif "before" in seen and loop.source.chunks_per_worker[0] >= seen["before"]["chunks0"] + 3 \
                and "stopped" not in seen:
            seen["stopped"] = True
            os.kill(os.getpid(), signal.SIGINT)  # handled by the loop: checkpoint and return

    loop = TrainingLoop(config, on_insert=insert)
    result = loop.run()
    before = seen["before"]
    assert result.stopped_by == "signal", result
    assert loop.source.restarts >= 1
    assert loop.replay.stats()["inserted"] > before["inserted"]
    assert len(loop.replay) >= before["size"]  # capacity > run: nothing inserted was dropped
    assert result.learner_steps > before["learner_steps"]
    assert loop.source.chunks_per_worker[0] >= before["chunks0"] + 3  # the restarted process delivers again
    from agents.r2d2.run_logger import read_metrics

    rows = read_metrics(os.path.join(result.run_dir, "metrics.csv"))
    assert float(rows[-1]["actor_restarts"]) >= 1


def test_ray_mode_builds_no_driver_side_env_actor_or_adder(tmp_path, ray_cluster, monkeypatch):
    """The driver only probes the environment (one env, closed at once); the workers act."""
    import envs
    from agents.r2d2.actor import R2D2Actor
    from agents.r2d2.loop import TrainingLoop
    from agents.r2d2.ray_backend import RayExperience
    from r2d2_state.replay import SequenceAdder

    made, closed, built = [], [], []
    make = envs.make_vector_env

    def recording_make(env_id, num_envs, *args, **kwargs):
        vec = make(env_id, num_envs, *args, **kwargs)
        made.append(num_envs)
        close = vec.close
        vec.close = lambda **kw: (closed.append(num_envs), close(**kw))[1]
        return vec

    monkeypatch.setattr(envs, "make_vector_env", recording_make)
    for cls in (R2D2Actor, SequenceAdder):
        init = cls.__init__
        monkeypatch.setattr(cls, "__init__", lambda self, *a, _init=init, _cls=cls, **k: (
            built.append(_cls.__name__), _init(self, *a, **k))[1])
    loop = TrainingLoop(_smoke(tmp_path))
    try:
        assert made == [1] and closed == [1], (made, closed)
        assert built == [], f"the driver built {built}"
        assert isinstance(loop.source, RayExperience) and loop.source.workers == []  # launched by run()
        assert loop.source.env_info["num_actions"] == loop.network_config.num_actions
        assert not os.path.exists(loop.run_dir)  # the constructor writes nothing
        loop.source.launch(0)
        assert len(loop.source.workers) == 2 and built == []
    finally:
        loop.close()


def test_checkpoint_and_resume_with_ray_backend(tmp_path, ray_cluster):
    from agents.r2d2.loop import TrainingLoop

    config = _smoke(tmp_path, total_env_steps=800)
    first = TrainingLoop(config).run()
    assert first.stopped_by == "env_steps" and first.learner_steps > 0
    resumed_loop = TrainingLoop(config.replace(total_env_steps=1_600), resume=True)
    assert resumed_loop.counters.env_steps == first.env_steps
    assert int(resumed_loop.learner.num_steps.numpy()) == first.learner_steps
    size_at_resume = len(resumed_loop.replay)
    second = resumed_loop.run()
    assert second.env_steps >= 1_600 and second.learner_steps > first.learner_steps
    assert len(resumed_loop.replay) >= size_at_resume
    assert resumed_loop.counters.resumes == 1


@pytest.mark.slow
def test_default_preset_learns_short_tmaze_with_two_ray_actors(tmp_path, ray_cluster):
    """As test_default_preset_learns_short_tmaze (tests/agents/test_loop.py), on Ray."""
    from agents.r2d2.evaluation import evaluate_weights
    from agents.r2d2.loop import TrainingLoop

    config = get_preset("tmaze").replace(
        env_kwargs={"corridor_length": 3, "max_steps": 14}, progress="none", run_dir=str(tmp_path / "run"),
        time_budget_s=150.0, solve_threshold=0.9, backend="ray", num_actors=2)
    loop = TrainingLoop(config)
    result = loop.run()
    final, _ = evaluate_weights(config, loop.learner.get_weights(), episodes=100, num_envs=20)
    assert final.mean > 0.5, (result, final.summary())


def test_a_worker_that_always_fails_ends_the_run_with_its_error(tmp_path, ray_cluster, monkeypatch):
    from agents.r2d2 import ray_backend
    from agents.r2d2.checkpoint import CheckpointManager
    from agents.r2d2.loop import RunFailedError
    from agents.r2d2.loop import TrainingLoop
    from agents.r2d2.ray_backend import ActorWorker

    class BrokenWorker(ActorWorker):
        def __init__(self, config, actor_index, num_actors, seed=None):
            if actor_index == 1:
                raise RuntimeError(f"broken actor {actor_index} (simulated)")
            super().__init__(config, actor_index, num_actors, seed)

    monkeypatch.setattr(ray_backend, "ActorWorker", BrokenWorker)
    config = _smoke(tmp_path, total_env_steps=4_000, max_actor_restarts=2)
    loop = TrainingLoop(config)
    with pytest.raises(RunFailedError, match=r"actor 1 failed 3 times \(max_actor_restarts=2.*broken actor 1"):
        loop.run()
    assert loop.source.restarts_per_worker == [0, 3]
    assert loop.counters.env_steps < config.total_env_steps  # ended by the failure, not the budget
    CheckpointManager(loop.run_dir).verify()  # what the driver held was checkpointed


def test_the_ray_summary_explains_the_samples_per_insert_tolerance(tmp_path):
    """Issue 26.11: 'samples per insert 64 +- 409.6 sequences' read as a tolerance larger than the target."""
    from agents.r2d2.ray_backend import RayExperience, error_buffer

    config = _smoke(tmp_path).replace(replay_ratio=64.0)
    summary = RayExperience(config, None, {}, lambda: [], lambda: 0).summary
    buffer = error_buffer(config)
    assert "+-" not in summary
    assert "replay_ratio 64 sampled per inserted sequence" in summary
    assert f"the sampled total kept within {buffer:g} sequences of replay_ratio x inserted" in summary
    assert f"({buffer / 64:.3g} inserted sequences' worth)" in summary


def test_worker_reads_back_every_sequence_of_a_long_run():
    """The worker's scratch replay holds every chunk's sequences while it computes their
    priorities, whatever the preset's chunk size (the memory preset's 4-step chunks once
    lost some to the store's blocks)."""
    from agents.r2d2.ray_backend import ActorWorker
    from agents.r2d2.learner import R2D2Learner

    config = get_preset("memory")
    worker = ActorWorker(config.to_dict(), actor_index=0, num_actors=1)
    weights = R2D2Learner(config.r2d2, worker.network_config).get_weights()
    sequences = 0
    for i in range(80):
        out = worker.collect(config.r2d2.actor_update_period, weights if i == 0 else None)
        if out["steps"] is not None:
            assert out["priorities"].shape == (out["steps"].num_sequences,)
            sequences += out["steps"].num_sequences
    assert sequences > 30
