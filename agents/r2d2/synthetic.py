"""Random replayed batches in the replay's sequence layout, for benchmarks and tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.r2d2.config import R2D2Config
from r2d2_state.networks import QNetworkConfig


def random_batch(config: R2D2Config, network_config: QNetworkConfig, seed: int = 0,
                 episode_end_fraction: float = 0.1) -> tuple[dict[str, Any], np.ndarray]:
    """A batch ``[batch_size, sequence_length]`` shaped like ``SequenceReplay.sample().data``.

    A fraction of the sequences end their episode at a random step (termination or
    truncation, final observation kept, zero-padded tail), so targets and masks see
    every case. Returns ``(data, importance_weights)``.
    """
    rng = np.random.default_rng(seed)
    b, length, a = config.batch_size, config.sequence_length, network_config.num_actions
    if network_config.input_dtype == "uint8":
        obs = rng.integers(0, 255, size=(b, length) + network_config.observation_shape, dtype=np.uint8)
    else:
        obs = rng.normal(size=(b, length) + network_config.observation_shape).astype(np.float32)
    action = rng.integers(0, a, size=(b, length)).astype(np.int32)
    reward = rng.normal(size=(b, length)).astype(np.float32)
    discount = np.ones((b, length), np.float32)
    mask = np.ones((b, length), np.float32)
    valid = np.ones((b, length), np.float32)
    for row in np.flatnonzero(rng.random(b) < episode_end_fraction):
        end = int(rng.integers(config.burn_in + 1, length - 1))  # last transition index
        if rng.random() < 0.5:
            discount[row, end] = 0.0  # terminated after action `end`
        mask[row, end + 1:] = 0.0
        valid[row, end + 2:] = 0.0
        reward[row, end + 1:] = 0.0
        discount[row, end + 1:] = 0.0
    prev_action = np.concatenate([np.full((b, 1), -1, np.int32), action[:, :-1]], axis=1)
    prev_reward = np.concatenate([np.zeros((b, 1), np.float32), reward[:, :-1]], axis=1)
    start_state = [[rng.normal(scale=0.1, size=(b, u)).astype(np.float32) for _ in range(2)]
                   for u in network_config.lstm_units]
    data = {"observation": obs, "action": action, "reward": reward, "discount": discount,
            "mask": mask, "valid": valid, "prev_action": prev_action, "prev_reward": prev_reward,
            "start_state": start_state}
    weights = rng.uniform(0.5, 1.0, size=b).astype(np.float32)
    return data, weights / weights.max()
