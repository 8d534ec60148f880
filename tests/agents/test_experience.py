"""The single-process experience source: its chunks carry the initial priorities the Ray
actors compute, the learner's TD priority with the actor's weights."""

from __future__ import annotations

import numpy as np
import pytest

from agents.r2d2.presets import get_preset


@pytest.mark.parametrize("start_state", ["stored", "zero"])
def test_local_chunks_carry_the_learners_priorities_at_equal_weights(start_state):
    from agents.r2d2.evaluation import network_config_for
    from agents.r2d2.experience import make_source, open_environment
    from agents.r2d2.learner import R2D2Learner
    from r2d2_state.replay import SequenceReplay

    smoke = get_preset("smoke")
    config = smoke.replace(r2d2=smoke.r2d2.replace(start_state=start_state))
    vec, description, env_info = open_environment(config)
    network_config = network_config_for(config, description)
    learner = R2D2Learner(config.r2d2, network_config)
    source = make_source(config, vec, description, env_info, network_config, learner)
    try:
        source.launch(config.seed)
        chunks = [chunk for _ in range(40) for chunk in source.collect()]
    finally:
        source.close()
    replay = SequenceReplay(10_000, capacity_steps=100_000, seed=0)
    keys = np.concatenate([replay.add_chunk(c.steps, c.priorities) for c in chunks])
    priorities = np.concatenate([c.priorities for c in chunks])
    assert keys.shape == priorities.shape and np.all(keys >= 0) and keys.size >= 2, keys
    # The learner, with online = target = the actor's weights, on the same sequences.
    check = R2D2Learner(config.r2d2.replace(batch_size=keys.size), network_config)
    check.online.set_weights(learner.get_weights())
    check.target.set_weights(learner.get_weights())
    result = check.step(replay.get(keys), np.ones(keys.size, np.float32))
    assert np.all(result.priorities > 0), result.priorities
    np.testing.assert_allclose(priorities, result.priorities, rtol=1e-5, atol=1e-6)
