"""Weights & Biases tracking (offline mode): off by default, the same scalars as TensorBoard,
one W&B run per run directory across --resume, a clear error without wandb, --track as a flag."""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import sys

import numpy as np
import pytest

from agents.r2d2 import tracking
from agents.r2d2.loop import TrainingLoop
from agents.r2d2.presets import get_preset
from agents.r2d2.train_config import RESUME_OVERRIDABLE

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytest.importorskip("wandb")


@pytest.fixture
def wandb_offline(monkeypatch):
    """W&B in offline mode; every ``run.log`` call recorded."""
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logged: list[dict] = []
    original = wandb.Run.log

    def log(self, data, *args, **kwargs):
        logged.append(dict(data))
        return original(self, data, *args, **kwargs)

    monkeypatch.setattr(wandb.Run, "log", log)
    return logged


def _config(run_dir, **changes):
    return get_preset("smoke").replace(**{"progress": "none", "run_dir": str(run_dir), "total_env_steps": 300,
                                          "log_every": 100, **changes})


def _tensorboard_scalars(run_dir) -> dict[int, dict[str, float]]:
    import tensorflow as tf

    out: dict[int, dict[str, float]] = {}
    for path in glob.glob(os.path.join(run_dir, "tb", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                out.setdefault(int(event.step), {})[value.tag] = float(tf.make_ndarray(value.tensor))
    return out


def test_tracked_run_logs_the_tensorboard_scalars_and_resumes_the_same_wandb_run(tmp_path, wandb_offline):
    run_dir = tmp_path / "run"
    TrainingLoop(_config(run_dir, track=True)).run()
    tensorboard = _tensorboard_scalars(str(run_dir))
    assert sorted(tensorboard) == [100, 200, 300]
    logged = {int(row["env_steps"]): {k: v for k, v in row.items() if k != "env_steps"} for row in wandb_offline}
    assert sorted(logged) == sorted(tensorboard)
    for step, scalars in tensorboard.items():
        assert sorted(logged[step]) == sorted(scalars), step
        for key, value in scalars.items():
            np.testing.assert_allclose(logged[step][key], value, rtol=1e-6, err_msg=f"{key} at {step}")
    assert {"loss", "recent_return", "env_steps_per_s"} <= set(logged[300])
    run_id = json.loads((run_dir / tracking.RUN_ID_FILE).read_text())["id"]
    files = glob.glob(str(run_dir / "wandb" / f"offline-run-*-{run_id}" / f"run-{run_id}.wandb"))
    assert len(files) == 1
    with open(files[0], "rb") as file:
        assert b"recent_return" in file.read()  # the metrics reached W&B's run file

    wandb_offline.clear()
    TrainingLoop(_config(run_dir, track=True, total_env_steps=500), resume=True).run()
    assert [int(row["env_steps"]) for row in wandb_offline] == [400, 500]
    assert json.loads((run_dir / tracking.RUN_ID_FILE).read_text())["id"] == run_id
    assert len(glob.glob(str(run_dir / "wandb" / f"offline-run-*-{run_id}"))) >= 1
    assert all(name.endswith(run_id) for name in os.listdir(run_dir / "wandb") if name.startswith("offline-run-"))


def test_resume_with_track_tracks_an_untracked_run(tmp_path, wandb_offline):
    run_dir = tmp_path / "run"
    TrainingLoop(_config(run_dir)).run()
    assert wandb_offline == [] and not os.path.exists(run_dir / "wandb")
    TrainingLoop(_config(run_dir, track=True, total_env_steps=400), resume=True).run()
    assert [int(row["env_steps"]) for row in wandb_offline] == [400]
    assert os.path.isfile(run_dir / tracking.RUN_ID_FILE)


def test_tracking_is_off_by_default(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a run without track opened Weights & Biases")

    monkeypatch.setattr(tracking.WandbTracker, "__init__", refuse)
    config = _config(tmp_path / "run")
    assert config.track is False
    TrainingLoop(config).run()
    assert not os.path.exists(tmp_path / "run" / "wandb")
    assert not os.path.exists(tmp_path / "run" / tracking.RUN_ID_FILE)


def test_without_wandb_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    with pytest.raises(ImportError, match=r"pip install -e '\.\[wandb\]'"):
        tracking.WandbTracker(str(tmp_path), _config(tmp_path, track=True))
    assert os.listdir(tmp_path) == []


def test_tracked_metrics_are_tensorboards():
    row = {"env_steps": 100, "loss": 0.5, "eval_return": None, "mean_q": float("nan"), "episodes": 3,
           "note": "text"}
    assert tracking.tracked_metrics(row) == {"env_steps": 100, "loss": 0.5, "episodes": 3.0}


def test_track_is_a_flag_and_may_change_on_resume(capsys):
    spec = importlib.util.spec_from_file_location("_script_train", os.path.join(ROOT, "scripts", "train.py"))
    train = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = train
    spec.loader.exec_module(train)
    for flags, expected in ((["--track"], True), (["--no_track"], False), ([], False),
                            (["--track", "--wandb_project", "mine", "--wandb-entity", "team"], True)):
        assert train.main(["--preset", "smoke", *flags, "--print-config"]) == 0
        config = json.loads(capsys.readouterr().out)
        assert config["track"] is expected, flags
    assert (config["wandb_project"], config["wandb_entity"]) == ("mine", "team")
    assert train.main(["--preset", "smoke", "--stop_at_threshold", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["stop_at_threshold"] is True
    assert {"track", "wandb_project", "wandb_entity"} <= RESUME_OVERRIDABLE
    with pytest.raises(ValueError, match="wandb_project must be a non-empty string"):
        get_preset("smoke").replace(wandb_project="")
