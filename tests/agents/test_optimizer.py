from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from agents.r2d2.optimizer import FusedAdam


def _variables(seed: int) -> list[keras.Variable]:
    rng = np.random.default_rng(seed)
    return [keras.Variable(rng.normal(size=shape).astype(np.float32)) for shape in [(5, 7), (7,), (3, 2, 4)]]


@pytest.mark.parametrize("graph", [False, True])
@pytest.mark.parametrize("schedule", [False, True])
def test_fused_adam_equals_keras_adam(graph, schedule):
    def make(cls):
        lr = keras.optimizers.schedules.PolynomialDecay(3e-2, 4, 3e-3) if schedule else 3e-2
        return cls(learning_rate=lr, epsilon=1e-3)

    rng = np.random.default_rng(1)
    grads = [[tf.constant(rng.normal(size=v.shape).astype(np.float32)) for v in _variables(0)] for _ in range(6)]
    results = []
    for cls in (FusedAdam, keras.optimizers.Adam):
        variables, optimizer = _variables(0), make(cls)
        optimizer.build(variables)
        apply = (lambda g: optimizer.apply(g, variables))
        if graph:
            apply = tf.function(apply, autograph=False)
        for g in grads:
            apply(g)
        results.append(([v.numpy() for v in variables], [v.numpy() for v in optimizer.variables]))
    (ours, ours_slots), (ref, ref_slots) = results
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    assert len(ours_slots) == len(ref_slots)  # same optimizer variables: checkpoints unchanged
    for a, b in zip(ours_slots, ref_slots):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    assert not np.allclose(ours[0], _variables(0)[0].numpy())  # the update did happen


def test_fused_adam_restores_a_keras_adam_checkpoint(tmp_path):
    variables, adam = _variables(0), keras.optimizers.Adam(1e-2)
    adam.build(variables)
    adam.apply([tf.ones_like(v) for v in variables], variables)
    path = tf.train.Checkpoint(optimizer=adam).write(str(tmp_path / "ckpt"))
    fused = FusedAdam(1e-2)
    fused.build(_variables(1))
    tf.train.Checkpoint(optimizer=fused).read(path).assert_consumed()
    for a, b in zip(fused.variables, adam.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_fused_adam_one_kernel_per_variable():
    variables, optimizer = _variables(0), FusedAdam(1e-2)
    optimizer.build(variables)
    graph = tf.function(lambda g: optimizer.apply(g, variables), autograph=False).get_concrete_function(
        [tf.TensorSpec(v.shape, tf.float32) for v in variables]).graph
    types = [op.type for op in graph.get_operations()]
    assert types.count("ResourceApplyAdam") == len(variables)
    assert types.count("Pow") == 2  # the bias corrections, built once per step, not per variable
