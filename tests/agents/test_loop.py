"""The single-process loop: learning starts at min_replay_size, the replay ratio holds,
budgets and signals stop it, the default preset learns."""

from __future__ import annotations

import json
import os
import signal
import sys

import pytest

from agents.r2d2.loop import TrainingLoop
from agents.r2d2.presets import PRESETS, get_preset
from agents.r2d2.train_config import TrainConfig


def _tiny(tmp_path, **changes) -> TrainConfig:
    config = get_preset("smoke").replace(progress="none", run_dir=str(tmp_path / "run"))
    return config.replace(**changes)


@pytest.mark.parametrize("per_call", [1, 4])
def test_learning_starts_at_min_replay_size_and_ratio_holds(tmp_path, per_call):
    """Also with several learner steps per graph call (batches sampled together)."""
    config = _tiny(tmp_path, total_env_steps=600, min_replay_size=40, replay_ratio=2.0, learner_steps_per_call=per_call)
    sizes_at_learner_steps = []
    inserted_chunks = []
    loop = TrainingLoop(config, on_learner_step=lambda metrics: sizes_at_learner_steps.append(len(loop.replay)),
                        on_insert=inserted_chunks.append)
    result = loop.run()
    c, stats = loop.counters, loop.replay.stats()
    assert sizes_at_learner_steps, "the learner never ran"
    assert min(sizes_at_learner_steps) >= config.min_replay_size
    assert result.learner_steps == len(sizes_at_learner_steps)
    # The replay counts what the limiter uses: batch_size sequences per learner step, every inserted sequence.
    sampled = result.learner_steps * config.r2d2.batch_size
    assert stats["sampled_items"] == sampled
    assert stats["inserted"] == sum(k.num_sequences for k in inserted_chunks)
    # sampled ~= ratio * (inserted since learning started), within one batch.
    inserted = stats["inserted"] - c.inserted_at_learning_start
    assert abs(sampled - config.replay_ratio * inserted) <= config.r2d2.batch_size
    assert loop.samples_per_insert() == sampled / inserted
    assert result.stopped_by == "env_steps" and result.env_steps >= 600
    assert len(inserted_chunks) == c.vector_steps  # the local source: one chunk per vector step
    # One owner per count: the replay's (saved with it), not state.json a second time.
    with open(os.path.join(result.checkpoint, "state.json")) as file:
        assert not {"inserted_sequences", "sampled_sequences"} & set(json.load(file))


def test_no_learning_below_min_replay_size(tmp_path):
    config = _tiny(tmp_path, total_env_steps=200, min_replay_size=400, r2d2=get_preset("smoke").r2d2)
    result = TrainingLoop(config).run()
    assert result.learner_steps == 0


def test_run_dir_outputs_and_refuses_to_overwrite(tmp_path):
    config = _tiny(tmp_path, total_env_steps=400, log_every=100)
    result = TrainingLoop(config).run()
    run = result.run_dir
    assert TrainConfig.from_json_file(os.path.join(run, "config.json")) == config
    with open(os.path.join(run, "metrics.csv")) as file:
        lines = file.read().splitlines()
    assert lines[0].startswith("env_steps,") and len(lines) >= 4
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(os.path.join(run, "tb")))
    assert os.path.isfile(os.path.join(run, "checkpoints", "latest"))
    with pytest.raises(FileExistsError, match="already holds a run"):
        TrainingLoop(config)


def test_sigint_checkpoints_and_returns(tmp_path):
    config = _tiny(tmp_path, total_env_steps=10**9)

    def interrupting_step(metrics):
        if loop.learner.num_steps.numpy() == 4:
            os.kill(os.getpid(), signal.SIGINT)  # handled: finish the step, checkpoint, return

    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where the suite runs in the background
    loop = TrainingLoop(config, on_learner_step=interrupting_step)
    result = loop.run()
    assert result.stopped_by == "signal"
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored
    with open(os.path.join(result.checkpoint, "state.json")) as file:
        state = json.load(file)
    assert state["env_steps"] == result.env_steps and state["learner_steps"] == result.learner_steps >= 4


def test_time_budget_stops(tmp_path):
    result = TrainingLoop(_tiny(tmp_path, total_env_steps=10**9, time_budget_s=3.0)).run()
    assert result.stopped_by == "time_budget"
    assert 3.0 <= result.wall_time_s < 30.0


def test_presets_round_trip_and_replace_validates():
    config = get_preset("tmaze")
    with pytest.raises(ValueError, match="min_replay_size must be >= r2d2.batch_size"):
        config.replace(min_replay_size=1)
    for name in PRESETS:
        preset = get_preset(name)
        assert TrainConfig.from_dict(json.loads(preset.to_json())) == preset


@pytest.mark.slow
def test_default_preset_learns_short_tmaze(tmp_path):
    """The tmaze preset on a short corridor reaches well above chance (0.0) within minutes."""
    from agents.r2d2.evaluation import evaluate_weights

    config = get_preset("tmaze").replace(
        env_kwargs={"corridor_length": 3, "max_steps": 14}, progress="none", run_dir=str(tmp_path / "run"),
        time_budget_s=150.0, solve_threshold=0.9,
    )
    loop = TrainingLoop(config)
    result = loop.run()
    final, _ = evaluate_weights(config, loop.learner.get_weights(), episodes=100, num_envs=20)
    assert final.mean > 0.5, (result, final.summary())


@pytest.mark.parametrize("per_call", [1, 3])
def test_staleness_diagnostic_is_logged_when_enabled(tmp_path, per_call):
    from agents.r2d2.run_logger import read_metrics

    smoke = get_preset("smoke")
    config = _tiny(tmp_path, total_env_steps=600, min_replay_size=40, replay_ratio=2.0, log_every=100,
                   r2d2=smoke.r2d2.replace(staleness_period=2), learner_steps_per_call=per_call)
    loop = TrainingLoop(config)
    assert loop.source.adder.store_states
    result = loop.run()
    assert result.learner_steps >= 2
    rows = [r for r in read_metrics(os.path.join(result.run_dir, "metrics.csv"))
            if r.get("staleness/zero/first") not in (None, "")]
    assert rows, "no staleness metrics in metrics.csv"
    for row in rows:
        for strategy in ("zero", "zero_burn_in", "stored", "stored_burn_in"):
            for step in ("first", "last"):
                assert float(row[f"staleness/{strategy}/{step}"]) >= 0.0


def test_evaluation_writes_a_video_of_a_rendering_env(tmp_path):
    from PIL import Image

    from agents.r2d2.evaluation import evaluate_weights
    from r2d2_state.networks import build_q_network
    import envs

    config = get_preset("smoke")
    vec = envs.make_vector_env(config.env_id, 1, **config.env_kwargs)
    from agents.r2d2.evaluation import network_config_for

    weights = build_q_network(network_config_for(config, envs.describe_env(vec)), stateful=False).get_weights()
    vec.close()
    path = str(tmp_path / "episode.gif")
    result, message = evaluate_weights(config, weights, episodes=2, epsilon=1.0, video_path=path)
    assert message.startswith("video:"), message
    with Image.open(path) as gif:
        assert gif.n_frames >= 2
    assert len(result.returns) == 2


def test_an_evaluation_reaching_the_threshold_stops_the_run_as_solved(tmp_path):
    """T-maze returns are >= -1, so a threshold of -1 is reached by the first evaluation."""
    config = _tiny(tmp_path, total_env_steps=10**9, eval_every=100, eval_episodes=5, solve_threshold=-1.0,
                   stop_at_threshold=True)
    result = TrainingLoop(config).run()
    assert result.stopped_by == "solved"
    assert result.solved_at["env_steps"] == result.last_eval["env_steps"] == result.env_steps == 100
    assert result.solved_at["eval_return"] == result.last_eval["mean"] >= -1.0


_THREADS_PROBE = """
import sys, tensorflow as tf
from agents.r2d2.loop import TrainingLoop
from agents.r2d2.presets import get_preset
config = get_preset("smoke").replace(progress="none", run_dir=sys.argv[1], total_env_steps=40,
                                     min_replay_size=16, tf_threads=int(sys.argv[2]))
loop = TrainingLoop(config, config.run_dir)
loop.run()
print(loop.tf_threads, tf.config.threading.get_intra_op_parallelism_threads(),
      tf.config.threading.get_inter_op_parallelism_threads())
"""


@pytest.mark.parametrize("requested,expected", [(0, ["1", "1", "2"]), (2, ["2", "2", "2"])])
def test_tf_threads_set_before_tensorflow_starts(tmp_path, requested, expected):
    """In a fresh process the loop sizes TensorFlow's pools before its first op: auto (0)
    is 1 thread per op and 2 ops at once for the smoke preset's LSTM."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", _THREADS_PROBE, str(tmp_path / "run"), str(requested)],
                         cwd=root, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=root, TF_CPP_MIN_LOG_LEVEL="3"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-3:] == expected


def test_tf_threads_after_tensorflow_started_keeps_the_pools_and_says_so(tmp_path):
    import tensorflow as tf

    from agents.r2d2.tf_runtime import configure_tf_threads
    from r2d2_state.network_config import QNetworkConfig

    tf.constant(1.0) + 1.0  # TensorFlow is running: its pools are fixed
    current = (tf.config.threading.get_intra_op_parallelism_threads(),
               tf.config.threading.get_inter_op_parallelism_threads())
    wanted = current[0] + 3
    notes: list[str] = []
    net = QNetworkConfig(observation_shape=(4,), num_actions=2)
    assert configure_tf_threads(wanted, net, notes) == current
    assert len(notes) == 1 and f"tf_threads={wanted} not applied" in notes[0]
    assert configure_tf_threads(0, net, notes) in (current, (1, 2)) and len(notes) == 1  # auto: no note


def test_tf_threads_validation():
    with pytest.raises(ValueError, match="tf_threads must be an int >= 0"):
        get_preset("smoke").replace(tf_threads=-1)


@pytest.mark.parametrize("value", [0, -2, 1.5, True])
def test_learner_steps_per_call_validation(value):
    with pytest.raises(ValueError, match=f"learner_steps_per_call must be an int >= 1, got {value!r}"):
        get_preset("smoke").replace(learner_steps_per_call=value)


@pytest.mark.parametrize("shape,units,xla,expected", [
    ((4,), (64,), False, [("intra", 1), ("inter", 2)]), ((3, 3, 3), (64,), False, [("intra", 1), ("inter", 2)]),
    ((7, 7, 3), (128, 32), False, [("intra", 1), ("inter", 2)]),
    ((84, 84, 3), (64,), False, []), ((4,), (256,), False, []), ((4,), (64, 512), False, []), ((4,), (64,), True, [])])
def test_tf_threads_auto_runs_narrow_lstms_one_thread_per_op_two_ops_at_once(monkeypatch, shape, units, xla, expected):
    import tensorflow as tf

    from agents.r2d2.tf_runtime import configure_tf_threads
    from r2d2_state.network_config import QNetworkConfig

    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(tf.config.threading, "set_intra_op_parallelism_threads", lambda n: calls.append(("intra", n)))
    monkeypatch.setattr(tf.config.threading, "set_inter_op_parallelism_threads", lambda n: calls.append(("inter", n)))
    pools = configure_tf_threads(0, QNetworkConfig(observation_shape=shape, num_actions=2, lstm_units=units), xla=xla)
    assert calls == expected
    if expected:
        assert pools == (1, 2)


def test_the_final_step_is_always_logged_also_after_a_resume(tmp_path):
    """Issue 26.8: a run shorter than log_every wrote no metrics.csv, and a resume added no row."""
    from agents.r2d2.run_logger import read_metrics

    config = _tiny(tmp_path, total_env_steps=120, log_every=10_000, eval_every=10_000)
    first = TrainingLoop(config).run()
    csv_path = os.path.join(first.run_dir, "metrics.csv")
    rows = read_metrics(csv_path)
    assert [int(r["env_steps"]) for r in rows] == [first.env_steps]
    assert int(rows[-1]["learner_steps"]) == first.learner_steps
    second = TrainingLoop(config.replace(total_env_steps=200), first.run_dir, resume=True).run()
    assert second.env_steps > first.env_steps
    assert [int(r["env_steps"]) for r in read_metrics(csv_path)] == [first.env_steps, second.env_steps]


def test_the_learning_curve_shows_single_points_and_keeps_its_legend_off_the_axes(tmp_path, monkeypatch):
    """Issue 26.8: one row drew an empty plot (a line without markers), the legend sat on the curves."""
    import matplotlib.figure

    from agents.r2d2.evaluation import plot_learning_curve
    from agents.r2d2.run_logger import CSV_COLUMNS

    csv_path = tmp_path / "metrics.csv"
    row = {"env_steps": "3000", "wall_time_s": "12", "recent_return": "0.5", "eval_return": "0.8",
           "eval_return_std": "0.1"}
    csv_path.write_text(",".join(CSV_COLUMNS) + "\n" + ",".join(row.get(c, "") for c in CSV_COLUMNS) + "\n")
    drawn = []

    def capture(self, file, **kwargs):
        self.canvas.draw()
        drawn.append(self)
        file.write(b"png")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", capture)
    plot_learning_curve(str(csv_path), str(tmp_path / "curve.png"), threshold=0.9)
    fig, = drawn
    ax, = fig.axes
    curves = [line for line in ax.get_lines() if line.get_label().startswith(("training", "greedy"))]
    assert len(curves) == 2 and all(line.get_marker() not in ("None", "", None) for line in curves)
    legends = fig.legends + ([ax.get_legend()] if ax.get_legend() else [])
    legend, = legends
    assert not legend.get_window_extent().overlaps(ax.get_window_extent())


def test_the_start_of_learning_is_said_once(tmp_path, capsys):
    """Issue 26.11: the first progress line's env steps/s (no learner yet) was unexplained."""
    config = _tiny(tmp_path, total_env_steps=200, min_replay_size=40, progress="plain")
    TrainingLoop(config).run()
    out = capsys.readouterr().out
    assert out.count("learning starts at") == 1 and "(min_replay_size 40)" in out


def test_a_sequence_longer_than_the_envs_episodes_is_warned_about(tmp_path, capsys):
    """Issue 26.10: --r2d2.burn_in 1000 on CartPole (500-step episodes) ran 10x slower without a word."""
    from agents.r2d2.loop import sequence_longer_than_episodes

    assert sequence_longer_than_episodes(8, 24, 500) is None
    assert sequence_longer_than_episodes(476, 24, 500) is None
    assert sequence_longer_than_episodes(8, 24, None) is None
    base = _tiny(tmp_path, env_id="CartPole-v1", env_kwargs={}, total_env_steps=8, progress="plain")
    loop = TrainingLoop(base.replace(r2d2=base.r2d2.replace(burn_in=1000)))
    try:
        warning, = [note for note in loop.notes if note.startswith("warning: burn_in")]
        assert "burn_in 1,000 + trace_length 4 = 1,004" in warning and "CartPole-v1" in warning
        assert "end by 500 steps (max_episode_steps)" in warning
    finally:
        loop.close()
    loop = TrainingLoop(base.replace(run_dir=str(tmp_path / "other")))
    try:
        assert not [note for note in loop.notes if "burn_in" in note]
    finally:
        loop.close()


def test_a_replay_codec_that_is_not_installed_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cramjam", None)  # as if not installed
    config = get_preset("smoke")
    config = config.replace(r2d2=config.r2d2.replace(replay_compression="lz4"))
    with pytest.raises(ValueError, match="needs the cramjam package"):
        TrainingLoop(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
