"""Export: the SavedModel gives the live network's Q-values and states (1e-5), in a fresh
process that cannot import this project; an export never half-replaces a directory."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from agents.r2d2.export import METADATA, export_saved_model
from agents.r2d2.loop import TrainingLoop
from agents.r2d2.policy import PolicyState, R2D2Policy
from agents.r2d2.presets import get_preset
from r2d2_state.networks import QNetworkConfig, build_q_network

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "run"
    config = get_preset("smoke").replace(progress="none", run_dir=str(path), total_env_steps=400)
    TrainingLoop(config).run()
    return str(path)


def _inputs(policy: R2D2Policy, batch: int, steps: int, seed: int) -> dict[str, np.ndarray]:
    """Random sequences [B, T] and start states [B, units] (a mid-episode start)."""
    rng = np.random.default_rng(seed)
    shape = (batch, steps) + policy.observation_shape
    obs = (rng.integers(0, 256, shape).astype(np.uint8) if policy.observation_dtype == np.uint8
           else rng.normal(size=shape).astype(np.float32))
    out = {"observation": obs,
           "prev_action": rng.integers(-1, policy.num_actions, (batch, steps)).astype(np.int32),
           "prev_reward": rng.normal(size=(batch, steps)).astype(np.float32)}
    for i, units in enumerate(policy.lstm_units):
        out[f"initial_h{i}"] = rng.uniform(-0.5, 0.5, (batch, units)).astype(np.float32)
        out[f"initial_c{i}"] = rng.uniform(-1, 1, (batch, units)).astype(np.float32)
    return out


def _live(policy: R2D2Policy, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The live policy stepped through the sequences: q [B, T, A], final states."""
    layers = len(policy.lstm_units)
    steps = inputs["observation"].shape[1]
    state = PolicyState(tuple((inputs[f"initial_h{i}"], inputs[f"initial_c{i}"]) for i in range(layers)),
                        inputs["prev_action"][:, 0])
    qs = []
    for t in range(steps):
        state = state._replace(prev_action=inputs["prev_action"][:, t])
        q, state = policy.q_values(inputs["observation"][:, t], state, reward=inputs["prev_reward"][:, t])
        qs.append(q)
    out = {"q": np.stack(qs, axis=1)}
    for i, (h, c) in enumerate(state.lstm):
        out[f"final_h{i}"], out[f"final_c{i}"] = h, c
    return out


def _first_step(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: (v[:, 0] if k in ("observation", "prev_action", "prev_reward") else v) for k, v in inputs.items()}


FRESH_PROCESS = textwrap.dedent("""
    import importlib.abc, sys

    class Refuse(importlib.abc.MetaPathFinder):
        # This project must not be needed to load and run the export (it is installed here).
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("r2d2_state", "agents", "envs"):
                raise ImportError(f"the export imported {name}")
            return None

    sys.meta_path.insert(0, Refuse())
    import numpy as np
    import tensorflow as tf

    export_dir, inputs_path, outputs_path = sys.argv[1:]
    model = tf.saved_model.load(export_dir)
    with np.load(inputs_path) as archive:
        inputs = {k: archive[k] for k in archive.files}
    sequence = {k: tf.constant(v) for k, v in inputs.items()}
    step = {k: (v[:, 0] if k in ("observation", "prev_action", "prev_reward") else v) for k, v in sequence.items()}
    out = {f"serve/{k}": v.numpy() for k, v in model.serve(sequence).items()}
    out.update({f"step/{k}": v.numpy() for k, v in model.step(step).items()})
    out.update({f"signature/{k}": v.numpy() for k, v in model.signatures["serving_default"](**sequence).items()})
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("r2d2_state", "agents", "envs"))
    assert not loaded, loaded
    np.savez(outputs_path, **out)
""")


def test_export_gives_the_live_q_values_in_a_fresh_process(run_dir, tmp_path):
    policy = R2D2Policy.load(run_dir)
    export_dir = export_saved_model(policy, tmp_path / "exported")
    inputs = _inputs(policy, batch=3, steps=5, seed=0)
    np.savez(tmp_path / "inputs.npz", **inputs)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS, export_dir, str(tmp_path / "inputs.npz"),
                             str(tmp_path / "outputs.npz")], cwd=outside, env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    live_sequence = _live(policy, inputs)
    live_step = _live(policy, {k: (v[:, :1] if v.ndim >= 2 and k in ("observation", "prev_action", "prev_reward")
                                   else v) for k, v in inputs.items()})
    with np.load(tmp_path / "outputs.npz") as exported:
        for key, value in live_sequence.items():
            np.testing.assert_allclose(exported[f"serve/{key}"], value, atol=1e-5, err_msg=key)
            np.testing.assert_allclose(exported[f"signature/{key}"], value, atol=1e-5, err_msg=key)
        for key, value in live_step.items():
            expected = value[:, 0] if key == "q" else value
            np.testing.assert_allclose(exported[f"step/{key}"], expected, atol=1e-5, err_msg=key)
        assert exported["serve/q"].shape == (3, 5, policy.num_actions)
    metadata = json.loads((tmp_path / "exported" / METADATA).read_text())
    assert metadata["observation_shape"] == list(policy.observation_shape)
    assert metadata["state_inputs"] == ["initial_h0", "initial_c0"]
    assert metadata["checkpoint"] == policy.checkpoint and metadata["env_id"] == policy.config.env_id


def test_image_network_with_two_lstm_layers_exports(tmp_path):
    import tensorflow as tf

    config = QNetworkConfig(lstm_units=(8, 6), head_units=8).for_env((7, 7, 3), 4, image=True)
    weights = build_q_network(config, stateful=False).get_weights()
    policy = R2D2Policy(config, weights)
    assert policy.backend == "tf"
    model = tf.saved_model.load(export_saved_model(policy, tmp_path / "image"))
    inputs = _inputs(policy, batch=2, steps=3, seed=1)
    exported = {k: v.numpy() for k, v in model.serve({k: tf.constant(v) for k, v in inputs.items()}).items()}
    live = _live(policy, inputs)
    assert sorted(exported) == sorted(live) == ["final_c0", "final_c1", "final_h0", "final_h1", "q"]
    for key, value in live.items():
        np.testing.assert_allclose(exported[key], value, atol=1e-5, err_msg=key)


def test_export_refuses_an_existing_directory_and_leaves_it(run_dir, tmp_path):
    policy = R2D2Policy.load(run_dir)
    target = tmp_path / "exported"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="exists: export to a new directory"):
        export_saved_model(policy, target)
    assert os.listdir(target) == ["keep.txt"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_saved_model(policy, tmp_path / "no" / "such")
    export_saved_model(policy, target, overwrite=True)
    assert "saved_model.pb" in os.listdir(target) and "keep.txt" not in os.listdir(target)
    assert sorted(os.listdir(tmp_path)) == ["exported"]  # no temporary directory left


def test_export_script(run_dir, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("_script_export", os.path.join(ROOT, "scripts", "export.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    assert module.main([run_dir, str(tmp_path / "out")]) == 0
    assert "exported r2d2_state/TMaze-v0 checkpoint ckpt-" in capsys.readouterr().out
    assert os.path.isfile(tmp_path / "out" / "saved_model.pb")
    assert module.main([run_dir, str(tmp_path / "out")]) == 2
    assert module.main([str(tmp_path / "none"), str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)
    assert "exists" in err[0] and "neither a run directory" in err[1]
    assert not os.path.exists(tmp_path / "out2")
