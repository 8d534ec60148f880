"""Export a trained Q-network for serving: a TensorFlow SavedModel (Keras 3's ``ExportArchive``).

The SavedModel holds the stateless network's graph and weights: TensorFlow alone loads and
runs it (``tf.saved_model.load``, TF Serving, ...), without this project or Keras' custom
layers. Its endpoints (also its signatures; ``serving_default`` is ``serve``): ``serve``, a
sequence per row, and ``step``, one step, each with the LSTM states in and out;
``policy.json`` next to ``saved_model.pb`` describes the inputs for a caller without this
project. Both are tabled in docs/policy.md, "Export for serving".
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

from r2d2_state.files import atomic_write_text, fsync_directory

__all__ = ["export_saved_model", "METADATA"]

METADATA = "policy.json"
"""The file in an export directory that describes its inputs and outputs."""


def export_saved_model(policy: Any, path: str | os.PathLike, *, overwrite: bool = False) -> str:
    """Write ``policy``'s Q-network as a SavedModel directory at ``path``; returns its absolute path.

    The directory is written under a temporary name beside ``path`` and renamed when complete:
    a crash leaves no half-written export at ``path``.

    Args:
      policy: an :class:`agents.r2d2.policy.R2D2Policy`.
      path: the export directory (its parent must exist).
      overwrite: replace an existing directory at ``path`` (moved away only once the new
        export is complete); otherwise an existing ``path`` is refused.

    Raises:
      FileExistsError: ``path`` exists and ``overwrite`` is False.
      FileNotFoundError: ``path``'s parent directory does not exist.
    """
    import keras
    import tensorflow as tf

    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path!r} exists: export to a new directory, or replace it "
                              "(overwrite=True, --overwrite)")
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"cannot export to {path!r}: the directory {parent!r} does not exist")
    network, units = policy.network, policy.lstm_units
    obs_shape, obs_dtype = tuple(policy.observation_shape), tf.as_dtype(policy.observation_dtype)
    state_names = [f"{kind}{i}" for i in range(len(units)) for kind in ("h", "c")]
    state_specs = {f"initial_{name}": tf.TensorSpec((None, units[int(name[1:])]), tf.float32,
                                                    name=f"initial_{name}") for name in state_names}

    def run(observation, prev_action, prev_reward, states):
        inputs = {"observation": observation, "prev_action": prev_action, "prev_reward": prev_reward,
                  "valid": tf.ones_like(prev_reward), **states}
        q, finals = network(inputs, training=False)
        flat = [t for layer in finals for t in layer]
        return q, {f"final_{name}": t for name, t in zip(state_names, flat)}

    def serve(inputs):
        # One network step per timestep (static T = 1), not one unroll over an unknown T: Keras'
        # TimeDistributed (the image torsos) maps over the batch axis when the time axis is unknown.
        observation, prev_action, prev_reward = inputs["observation"], inputs["prev_action"], inputs["prev_reward"]
        steps = tf.shape(observation)[1]

        def body(t, qs, *states):
            q, finals = run(observation[:, t][:, None], prev_action[:, t][:, None], prev_reward[:, t][:, None],
                            dict(zip(state_specs, states)))
            return (t + 1, qs.write(t, q[:, 0]), *[finals[f"final_{name}"] for name in state_names])

        start = (tf.constant(0), tf.TensorArray(tf.float32, size=steps), *_states(inputs).values())
        _, qs, *finals = tf.while_loop(lambda t, *_: t < steps, body, start)
        q = tf.transpose(qs.stack(), [1, 0, 2])  # [T, B, A] -> [B, T, A]
        return {"q": tf.ensure_shape(q, (None, None, policy.num_actions)),
                **{f"final_{name}": state for name, state in zip(state_names, finals)}}

    def step(inputs):
        q, finals = run(inputs["observation"][:, None], inputs["prev_action"][:, None],
                        inputs["prev_reward"][:, None], _states(inputs))
        return {"q": q[:, 0], **finals}

    def _states(inputs):
        return {name: inputs[name] for name in state_specs}

    archive = keras.export.ExportArchive()
    archive.track(network)
    for name, function, time_axis in (("serve", serve, (None,)), ("step", step, ())):
        signature = {"observation": tf.TensorSpec((None,) + time_axis + obs_shape, obs_dtype, name="observation"),
                     "prev_action": tf.TensorSpec((None,) + time_axis, tf.int32, name="prev_action"),
                     "prev_reward": tf.TensorSpec((None,) + time_axis, tf.float32, name="prev_reward"),
                     **state_specs}
        archive.add_endpoint(name, tf.function(function, autograph=False), input_signature=[signature])
    metadata = _metadata(policy, state_names)
    temp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent)
    try:
        archive.write_out(temp, verbose=False)
        atomic_write_text(os.path.join(temp, METADATA), json.dumps(metadata, indent=2))
        old = None
        if os.path.exists(path):  # overwrite: move the old export away only now
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".old", dir=parent)
            os.rename(path, os.path.join(old, "export"))
        os.rename(temp, path)
        fsync_directory(parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return path


def _metadata(policy: Any, state_names: list[str]) -> dict[str, Any]:
    config = policy.config
    return {
        "format": "r2d2_state.saved_model",
        "version": 1,
        "endpoints": ["serve", "step"],
        "observation_shape": list(policy.observation_shape),
        "observation_dtype": policy.observation_dtype.name,
        "num_actions": policy.num_actions,
        "lstm_units": list(policy.lstm_units),
        "state_inputs": [f"initial_{name}" for name in state_names],
        "state_outputs": [f"final_{name}" for name in state_names],
        "uses_prev_action": bool(policy.network_config.use_prev_action),
        "uses_prev_reward": bool(policy.network_config.use_prev_reward),
        "episode_start": "zero states, prev_action -1, prev_reward 0",
        "greedy_action": "argmax of q over its last axis",
        "eval_epsilon": policy.epsilon,
        "run_dir": policy.run_dir,
        "checkpoint": policy.checkpoint,
        "env_id": None if config is None else config.env_id,
        "env_kwargs": None if config is None else config.env_kwargs,
        "env_packages": None if config is None else list(config.env_packages),
        "env_actions": None if config is None else list(config.env_actions),
    }
