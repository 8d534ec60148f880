"""R2D2's sequence priority (a mixture of the max and the mean absolute TD error) and
importance weights of a sample drawn as several batches."""

from __future__ import annotations

import numpy as np


def sequence_priorities(abs_td: np.ndarray, mask: np.ndarray, eta: float = 0.9) -> np.ndarray:
    """Priority per sequence: ``eta * max_t |td| + (1 - eta) * mean_t |td|`` over valid steps.

    Args:
      abs_td: float [B, T], absolute TD errors (non-negative, finite).
      mask: [B, T], non-zero where step t of sequence b is a trained transition; steps
        with mask 0 are ignored by both the max and the mean.
      eta: mixture weight in [0, 1]; R2D2 uses 0.9.

    Returns:
      float32 [B]. A row with no valid step gets priority 0.0: it carries no learning
      signal, so with alpha > 0 it is never sampled again (with alpha = 0 every item has
      weight 1 and it still is).
    """
    abs_td = np.asarray(abs_td)
    mask = np.asarray(mask)
    if abs_td.ndim != 2:
        raise ValueError(f"abs_td must be [B, T], got shape {abs_td.shape!r}")
    if mask.shape != abs_td.shape:
        raise ValueError(
            f"mask must have the shape of abs_td {abs_td.shape!r}, got {mask.shape!r}"
        )
    if not 0.0 <= float(eta) <= 1.0:
        raise ValueError(f"eta must be in [0, 1], got {eta!r}")
    valid = mask != 0
    values = np.where(valid, abs_td, 0.0).astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError("abs_td has NaN or inf on valid steps")
    if np.any(values < 0):
        raise ValueError(
            f"abs_td must be non-negative (pass |td|), got min {values.min()!r}"
        )
    count = valid.sum(axis=1)
    mean = values.sum(axis=1) / np.maximum(count, 1)
    maximum = values.max(axis=1) if values.shape[1] else np.zeros(values.shape[0])
    return (eta * maximum + (1.0 - eta) * mean).astype(np.float32)


def per_batch_weights(weights: np.ndarray, batch_size: int) -> np.ndarray:
    """Importance weights of one ``replay.sample(K * batch_size)`` as K batches of their own.

    The replay normalises a sample's weights by their maximum (the paper's, Schaul et al.'s
    ``w_i / max_j w_j``). For K batches drawn together each batch is normalised by its own
    maximum, as K separate samples would be: ``[K B] -> [K B]``.
    """
    w = np.asarray(weights, np.float32).reshape(-1, batch_size)
    return (w / w.max(axis=1, keepdims=True)).reshape(-1)
