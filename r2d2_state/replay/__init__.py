"""Recurrent replay for R2D2: numpy + dm-tree only (no TensorFlow import).

Public names:
  SequenceAdder: per-step data from N vector envs -> steps stored once + R2D2 sequences.
  SequenceReplay: prioritized replay of those sequences (or of whole items), atomic persistence.
  Sample: what ``SequenceReplay.sample`` returns (keys, data, weights, probabilities).
  StepChunk: steps and sequence references as an adder hands them to a replay.
  FrameStack: declares an observation leaf a stack of the last k frames (stored once each).
  sequence_priorities: R2D2's eta * max + (1 - eta) * mean of |td| over valid steps.
  per_batch_weights: the importance weights of one sample of K batches, normalised per batch.
  SumTree: the vectorised numpy sum-tree behind the sampling.
  ItemSpec: the stored structure / shapes / dtypes of an item.
"""

from __future__ import annotations

from r2d2_state.replay.adder import SequenceAdder
from r2d2_state.replay.persistence import FORMAT_VERSION
from r2d2_state.replay.priorities import per_batch_weights, sequence_priorities
from r2d2_state.replay.replay import Sample, SequenceReplay
from r2d2_state.replay.spec import ItemSpec
from r2d2_state.replay.steps import FrameStack, SequenceLayout, StepChunk
from r2d2_state.replay.sum_tree import SumTree

__all__ = [
    "FORMAT_VERSION",
    "FrameStack",
    "ItemSpec",
    "Sample",
    "SequenceAdder",
    "SequenceLayout",
    "SequenceReplay",
    "StepChunk",
    "SumTree",
    "per_batch_weights",
    "sequence_priorities",
]
