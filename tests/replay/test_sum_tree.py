from __future__ import annotations

import numpy as np
import pytest

from r2d2_state.replay import SumTree


@pytest.mark.parametrize("capacity,block_size", [(1, 1), (5, 2), (37, 4), (1000, None), (1025, 32), (1025, 1)])
def test_matches_brute_force(capacity, block_size):
    rng = np.random.default_rng(capacity)
    tree = SumTree(capacity, block_size)
    values = np.zeros(capacity)
    for _ in range(20):
        idx = rng.integers(0, capacity, rng.integers(1, 10))
        new = rng.integers(0, 5, idx.shape[0]).astype(np.float64)  # integers: exact sums
        tree.set(idx, new)
        values[idx] = new  # repeated indices: last wins in both
        assert tree.total == values.sum()
        np.testing.assert_array_equal(tree.leaves, values)
        if values.sum() > 0:
            targets = rng.random(50) * values.sum()
            expected = np.searchsorted(np.cumsum(values), targets, side="right")
            np.testing.assert_array_equal(tree.find(targets), expected)
            drawn, drawn_values = tree.sample(rng, 50)
            assert (values[drawn] > 0).all()
            np.testing.assert_array_equal(drawn_values, values[drawn])


def test_set_all_and_zero_total():
    tree = SumTree(10, 3)
    tree.set_all(np.arange(10, dtype=np.float64))
    assert tree.total == 45.0
    tree.set_all(np.zeros(10))
    with pytest.raises(ValueError, match="total"):
        tree.sample(np.random.default_rng(0), 1)


def test_boundary_targets_never_pick_zero_leaves():
    tree = SumTree(8, 2)
    tree.set(np.arange(8), np.array([0, 1, 0, 0, 2, 0, 0, 0], np.float64))
    np.testing.assert_array_equal(tree.find(np.array([0.0, 0.999, 1.0, 2.999])), [1, 1, 4, 4])


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_bad_capacity(bad):
    with pytest.raises(ValueError, match="capacity"):
        SumTree(bad)
