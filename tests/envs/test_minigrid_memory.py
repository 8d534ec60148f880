"""Why the ``minigrid_memory`` preset uses ``agent_view_size=3`` on MiniGrid-MemoryS7-v0.

With the default 7x7 view, the agent at the junction looking back west sees the cue (in the
start room, 4 cells away) and both objects beside it in one observation, so a memoryless
policy can choose right (turning north or south encodes the choice). With a 3x3 view no
observation at the junction holds the cue: every path to the end passes the one-cell hallway
facing east in the same state whatever the cue, so without memory the choice is right with
probability 1/2 (memoryless mean return <= 0.5).
"""

from __future__ import annotations

import importlib.util

import gymnasium as gym
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("minigrid") is None,
                                reason="needs the [minigrid] extra")


def _objects_seen(view: int, direction: int, seed: int) -> list[int]:
    import minigrid  # noqa: F401
    from minigrid.core.constants import OBJECT_TO_IDX

    env = gym.make("MiniGrid-MemoryS7-v0", agent_view_size=view).unwrapped
    env.reset(seed=seed)
    env.agent_pos, env.agent_dir = np.array((5, 3)), direction  # the junction
    image = env.gen_obs()["image"][:, :, 0]
    return [int(v) for v in image.reshape(-1) if v in (OBJECT_TO_IDX["key"], OBJECT_TO_IDX["ball"])]


@pytest.mark.parametrize("seed", range(5))
def test_default_view_shows_cue_and_both_objects_at_once(seed):
    assert len(_objects_seen(7, direction=2, seed=seed)) == 3  # facing west: cue + the two objects


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("direction", range(4))
def test_3x3_view_never_shows_the_cue_at_the_junction(seed, direction):
    assert len(_objects_seen(3, direction=direction, seed=seed)) <= 1  # at most one end object


def test_preset_env_has_the_three_movement_actions():
    """The preset keeps left, right, forward: MiniGrid's other 4 actions do nothing in this task."""
    import minigrid  # noqa: F401
    from minigrid.core.actions import Actions

    import envs
    from agents.r2d2.presets import get_preset

    config = get_preset("minigrid_memory")
    vec = envs.make_vector_env(config.env_id, 1, seed=0, **config.env_make_kwargs)
    assert envs.describe_env(vec).num_actions == 3
    assert config.env_actions == (Actions.left, Actions.right, Actions.forward)
    inner = vec.envs[0].unwrapped
    assert inner.agent_view_size == 3
    moves = []
    for action in (0, 1, 2):  # left, then right (back to east), then forward
        before = (tuple(inner.agent_pos), inner.agent_dir)
        vec.step(np.array([action]))
        moves.append((before, (tuple(inner.agent_pos), inner.agent_dir)))
    (p0, d0), (p1, d1) = moves[0]
    assert p1 == p0 and d1 == (d0 - 1) % 4  # left turns counter-clockwise
    (p0, d0), (p1, d1) = moves[1]
    assert p1 == p0 and d1 == (d0 + 1) % 4
    (p0, d0), (p1, d1) = moves[2]
    assert d1 == d0 and p1 == (p0[0] + 1, p0[1])  # east, one cell (the start row is open to the hallway)
    vec.close()
