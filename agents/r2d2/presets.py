"""Tuned TrainConfigs for the shipped environments (``--preset NAME``).

=================  =====================================  ===========================
preset             environment                            target
=================  =====================================  ===========================
``tmaze``          ``r2d2_state/TMaze-v0``, corridor 5    solve (eval return >= 0.9)
(default)                                                 in < 10 min on 2 CPU cores
``cartpole_novel`` ``r2d2_state/CartPoleNoVelocity-v1``   best effort (see README)
``smoke``          T-maze, corridor 2, tiny everything    tests: seconds, not minutes
``minigrid_memory`` ``MiniGrid-MemoryS7-v0``, 3x3 view     memoryless level (0.5) in
                   (``pip install -e .[minigrid]``)       10 min; memory not yet (README)
=================  =====================================  ===========================

Usage::

    config = get_preset("tmaze").replace(seed=1)
"""

from __future__ import annotations

from agents.r2d2.config import R2D2Config
from agents.r2d2.train_config import TrainConfig

__all__ = ["DEFAULT_PRESET", "PRESETS", "get_preset"]

DEFAULT_PRESET = "tmaze"


def _tmaze() -> TrainConfig:
    # Tuned on 2 shared CPU cores; what mattered, in order:
    # - The cue is visible at step 0 only. Q-learning ties the turn to the cue only if both
    #   lie in one trained trace (gradients flow through time in the trace, not in the
    #   burn-in). Each episode's first sequence starts at its step 0 (front padding), so
    #   cutting episodes at max_steps = trace_length puts every whole episode in one trace.
    # - Exploration: with no step penalty nothing but the discount makes "forward" better
    #   than bumping into a wall, so the paper's mostly-greedy actors never reach the
    #   junction. High per-env epsilons (0.9 ** (1 + 3 i / (N - 1)), 0.9 .. 0.66) do;
    #   discount 0.9 makes the forward/bump gap 10 % instead of 1 %.
    # - n_step 1: with such exploring actors, n-step returns would be mostly the
    #   behaviour policy's (random) returns.
    return TrainConfig(
        env_id="r2d2_state/TMaze-v0",
        env_kwargs={"corridor_length": 5, "max_steps": 14},
        total_env_steps=3_000_000,
        time_budget_s=570.0,
        replay_ratio=12.0,
        min_replay_size=500,
        eval_every=5_000,
        eval_episodes=100,
        eval_num_envs=50,
        log_every=2_000,
        checkpoint_every=50_000,
        r2d2=R2D2Config(
            burn_in=4, trace_length=14, sequence_period=7, n_step=1, discount=0.9,
            replay_capacity=5_000, batch_size=64, learning_rate=1e-3, target_update_period=100,
            mlp_units=(32,), lstm_units=(64,), head_units=64,
            num_envs=16, epsilon_base=0.9, epsilon_alpha=3.0, actor_update_period=10,
        ),
    )


def _cartpole_novel() -> TrainConfig:
    return TrainConfig(
        env_id="r2d2_state/CartPoleNoVelocity-v1",
        total_env_steps=1_000_000,
        time_budget_s=600.0,
        replay_ratio=1.0,
        min_replay_size=500,
        eval_every=10_000,
        eval_episodes=20,
        eval_num_envs=10,
        log_every=2_000,
        checkpoint_every=50_000,
        r2d2=R2D2Config(
            burn_in=10, trace_length=20, sequence_period=10, n_step=5, discount=0.99,
            replay_capacity=10_000, batch_size=32, learning_rate=1e-3, target_update_period=200,
            mlp_units=(64,), lstm_units=(64,), head_units=64,
            num_envs=16, actor_update_period=10,
        ),
    )


def _smoke() -> TrainConfig:
    return TrainConfig(
        env_id="r2d2_state/TMaze-v0",
        env_kwargs={"corridor_length": 2},
        total_env_steps=2_000,
        replay_ratio=1.0,
        min_replay_size=16,
        eval_every=0,
        eval_episodes=10,
        eval_num_envs=5,
        log_every=200,
        checkpoint_every=0,
        progress="plain",
        r2d2=R2D2Config(
            burn_in=2, trace_length=4, sequence_period=2, n_step=2, discount=0.99,
            replay_capacity=500, batch_size=8, learning_rate=1e-3, target_update_period=50,
            mlp_units=(16,), lstm_units=(16,), head_units=16,
            num_envs=4, actor_update_period=5,
        ),
    )


def _minigrid_memory() -> TrainConfig:
    # MiniGrid-MemoryS7-v0 (pip install -e .[minigrid]): see a key or a ball in the start room,
    # walk the one-cell hallway, step next to the matching object of the two at its end.
    # - agent_view_size 3: with MiniGrid's default 7x7 view the agent at the junction looking
    #   back sees the cue and both objects in one observation, so a memoryless policy solves it
    #   (tests/envs/test_minigrid_memory.py); with 3x3 it needs memory: memoryless return <= 0.5.
    # - Observation: 3x3x3 view + direction one-hot (mission text dropped), uint8[31], small-conv
    #   + MLP multi-input torso.
    # - As the T-maze: whole short episodes in one trace (first sequences start at step 0),
    #   high per-env epsilons, discount 0.9; n_step 3 carries the sparse end reward back faster.
    return TrainConfig(
        env_id="MiniGrid-MemoryS7-v0",
        env_packages=("minigrid",),
        env_kwargs={"agent_view_size": 3},
        total_env_steps=3_000_000,
        time_budget_s=570.0,
        replay_ratio=4.0,
        min_replay_size=500,
        eval_every=20_000,
        eval_episodes=100,
        eval_num_envs=50,
        log_every=10_000,
        checkpoint_every=100_000,
        r2d2=R2D2Config(
            burn_in=2, trace_length=16, sequence_period=8, n_step=3, discount=0.9,
            replay_capacity=5_000, batch_size=32, learning_rate=1e-3, target_update_period=100,
            mlp_units=(16,), lstm_units=(64,), head_units=64,
            num_envs=16, epsilon_base=0.9, epsilon_alpha=3.0, actor_update_period=10,
        ),
    )


PRESETS = {"tmaze": _tmaze, "cartpole_novel": _cartpole_novel, "smoke": _smoke,
           "minigrid_memory": _minigrid_memory}


def get_preset(name: str) -> TrainConfig:
    """The TrainConfig of preset ``name``.

    Raises:
      ValueError: unknown name (the message lists the presets).
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {sorted(PRESETS)}")
    return PRESETS[name]()
