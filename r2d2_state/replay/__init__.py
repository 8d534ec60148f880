"""Recurrent replay for R2D2: numpy + dm-tree only (no TensorFlow import).

Public names:
  SequenceAdder: per-step data from N vector envs -> fixed-length sequences.
  SequenceReplay: fixed-capacity FIFO with prioritized sampling and atomic persistence.
  Sample: what ``SequenceReplay.sample`` returns (keys, data, weights, probabilities).
  sequence_priorities: R2D2's eta * max + (1 - eta) * mean of |td| over valid steps.
  per_batch_weights: the importance weights of one sample of K batches, normalised per batch.
  SumTree: the vectorised numpy sum-tree behind the sampling.
  ItemSpec: the stored structure / shapes / dtypes of an item.
"""

from __future__ import annotations

from r2d2_state.replay.adder import SequenceAdder
from r2d2_state.replay.buffer import Sample, SequenceReplay
from r2d2_state.replay.persistence import FORMAT_VERSION
from r2d2_state.replay.priorities import per_batch_weights, sequence_priorities
from r2d2_state.replay.spec import ItemSpec
from r2d2_state.replay.sum_tree import SumTree

__all__ = [
    "FORMAT_VERSION",
    "ItemSpec",
    "Sample",
    "SequenceAdder",
    "SequenceReplay",
    "SumTree",
    "per_batch_weights",
    "sequence_priorities",
]
