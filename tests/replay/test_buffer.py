from __future__ import annotations

import threading

import numpy as np
import pytest

from r2d2_state.replay import SequenceReplay, sequence_priorities


def make_item(value: float, length: int = 3) -> dict:
    return {
        "observation": {"pixels": np.full((length, 2, 2), value, np.uint8), "vector": np.full((length, 4), value, np.float32)},
        "action": np.full(length, value, np.int32),
        "start_state": [(np.full(5, value, np.float32), np.full(5, -value, np.float32))],
    }


def stack(items):
    import tree
    return tree.map_structure(lambda *xs: np.stack(xs), *items)


def test_add_sample_shapes_and_fifo():
    replay = SequenceReplay(3, seed=0)
    assert len(replay) == 0
    keys = [replay.add(make_item(v)) for v in range(5)]
    assert keys == [0, 1, 2, 3, 4] and len(replay) == 3
    # FIFO: items 3 and 4 overwrote slots 0 and 1.
    sample = replay.sample(3)
    values = sample.data["action"][:, 0]
    assert set(values.tolist()) <= {2, 3, 4}
    np.testing.assert_array_equal(sample.keys, values)  # keys are insert ids
    assert sample.data["observation"]["pixels"].shape == (3, 3, 2, 2)
    assert sample.data["observation"]["pixels"].dtype == np.uint8
    assert sample.data["start_state"][0][1].shape == (3, 5)
    assert isinstance(sample.data["start_state"][0], tuple)
    assert sample.weights.dtype == np.float32 and sample.weights.shape == (3,)
    stats = replay.stats()
    assert stats["inserted"] == 5 and stats["evicted"] == 2 and stats["size"] == 3
    assert stats["item_bytes"] == 3 * 4 + 3 * 16 + 3 * 4 + 2 * 20
    assert stats["row_bytes"] == 128 and stats["storage_bytes"] == 3 * 128  # padded layout


def test_add_batch_and_oversized_batch():
    replay = SequenceReplay(4, seed=0)
    keys = replay.add_batch(stack([make_item(v) for v in range(6)]))
    np.testing.assert_array_equal(keys, np.arange(6))
    got = {int(k): int(a) for k, a in zip(*(lambda s: (s.keys, s.data["action"][:, 0]))(replay.sample(4)))}
    assert all(k == a and k >= 2 for k, a in got.items())


def test_new_items_get_max_priority_or_the_given_one():
    replay = SequenceReplay(10, seed=0)
    replay.add(make_item(0))
    replay.add(make_item(1), priority=5.0)
    replay.add(make_item(2))
    replay.add_batch(stack([make_item(3), make_item(4)]), priorities=np.array([0.5, 7.0]))
    replay.add(make_item(5))
    np.testing.assert_array_equal(replay.priorities(), [1.0, 5.0, 5.0, 0.5, 7.0, 7.0])


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_sampling_frequencies_follow_priority_power(alpha):
    replay = SequenceReplay(4, priority_exponent=alpha, seed=1)
    replay.add_batch(stack([make_item(v) for v in range(4)]), priorities=np.array([1.0, 2.0, 3.0, 4.0]))
    expected = np.array([1.0, 2.0, 3.0, 4.0]) ** alpha
    expected /= expected.sum()
    counts = np.zeros(4)
    draws = 0
    for _ in range(500):
        sample = replay.sample(4)
        counts += np.bincount(sample.keys, minlength=4)
        draws += 4
        np.testing.assert_allclose(sample.probabilities, expected[sample.keys])
    # 2000 draws: allow 4 standard errors per item.
    frequencies = counts / draws
    tolerance = 4 * np.sqrt(expected * (1 - expected) / draws)
    assert (np.abs(frequencies - expected) <= tolerance).all(), (frequencies, expected)


def test_large_sample_frequencies():
    replay_big = SequenceReplay(1000, priority_exponent=1.0, seed=3)
    priorities = np.arange(1, 1001, dtype=np.float64)
    replay_big.add_batch({"x": np.zeros((1000, 1), np.float32)}, priorities=priorities)
    keys = np.concatenate([replay_big.sample(1000).keys for _ in range(100)])
    # Mass of each decile of keys: priorities are linear, so decile d has mass ~ (2d+1)/100.
    deciles = np.bincount(keys // 100, minlength=10) / keys.size
    expected = np.array([priorities[d * 100:(d + 1) * 100].sum() for d in range(10)]) / priorities.sum()
    np.testing.assert_allclose(deciles, expected, atol=0.006)


def test_importance_weights_by_hand():
    # priorities 1..4, alpha=1: P = [.1, .2, .3, .4]; size 4, beta = .5:
    # w = (4 P) ** -.5 = [1.5811, 1.1180, 0.9129, 0.7906], divided by the batch max.
    replay = SequenceReplay(4, priority_exponent=1.0, importance_exponent=0.5, seed=0)
    replay.add_batch(stack([make_item(v) for v in range(4)]), priorities=np.array([1.0, 2.0, 3.0, 4.0]))
    by_hand = np.array([1.5811388, 1.1180340, 0.9128709, 0.7905694])
    for _ in range(20):
        sample = replay.sample(3)
        np.testing.assert_allclose(sample.probabilities, np.array([0.1, 0.2, 0.3, 0.4])[sample.keys])
        np.testing.assert_allclose(sample.weights, by_hand[sample.keys] / by_hand[sample.keys].max(), rtol=1e-6)
        assert sample.weights.max() == 1.0


def test_beta_zero_gives_unit_weights_and_alpha_zero_is_uniform():
    replay = SequenceReplay(4, priority_exponent=0.0, importance_exponent=0.0, seed=0)
    replay.add_batch(stack([make_item(v) for v in range(4)]), priorities=np.array([0.0, 2.0, 3.0, 9.0]))
    sample = replay.sample(4)
    np.testing.assert_array_equal(sample.weights, 1.0)
    np.testing.assert_allclose(sample.probabilities, 0.25)


def test_update_priorities_skips_stale_keys():
    replay = SequenceReplay(2, priority_exponent=1.0, seed=0)
    for v in range(3):
        replay.add(make_item(v))  # key 0's slot now holds key 2
    applied = replay.update_priorities(np.array([0, 1, 2]), np.array([10.0, 3.0, 4.0]))
    assert applied == 2
    np.testing.assert_array_equal(replay.priorities(), [4.0, 3.0])  # slot 0 = key 2
    assert replay.stats()["stale_updates_skipped"] == 1
    assert replay.stats()["max_priority_seen"] == 4.0


def test_sampled_batch_does_not_change_when_the_buffer_is_written():
    replay = SequenceReplay(2, seed=0)
    replay.add(make_item(1))
    sample = replay.sample(1)
    before = sample.data["action"].copy()
    replay.add(make_item(2))
    replay.add(make_item(3))  # overwrites the sampled slot
    np.testing.assert_array_equal(sample.data["action"], before)
    # Output memory is recycled only once nobody references it.
    held = [replay.sample(2).data["action"] for _ in range(5)]
    snapshots = [h.copy() for h in held]
    for _ in range(5):
        replay.sample(2)
    for h, snap in zip(held, snapshots):
        np.testing.assert_array_equal(h, snap)
    assert len({id(h.base) for h in held}) == 5
    first = replay.sample(2).data["action"].base
    replay.sample(2)
    del first
    reused = replay.sample(2, reuse_buffers=True).data["action"]
    again = replay.sample(2, reuse_buffers=True).data["action"]
    assert np.shares_memory(reused, again)  # opt-in: documented reuse


def test_sequence_priorities_by_hand():
    abs_td = np.array([[1.0, 2.0, 3.0, 9.0], [4.0, 0.0, 0.0, 0.0], [5.0, 5.0, 5.0, 5.0]])
    mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], np.float32)
    # row 0: max 3, mean 2 -> .9*3 + .1*2 = 2.9; row 1: 4; row 2: no valid step -> 0.
    np.testing.assert_allclose(sequence_priorities(abs_td, mask, eta=0.9), [2.9, 4.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(sequence_priorities(abs_td, mask, eta=0.0), [2.0, 4.0, 0.0], rtol=1e-6)
    with pytest.raises(ValueError, match="non-negative"):
        sequence_priorities(-abs_td, mask)
    with pytest.raises(ValueError, match="shape"):
        sequence_priorities(abs_td, mask[:, :2])
    with pytest.raises(ValueError, match="eta"):
        sequence_priorities(abs_td, mask, eta=1.5)


def test_one_learner_samples_while_actor_threads_insert():
    replay = SequenceReplay(200, priority_exponent=0.9, seed=0)
    replay.add(make_item(0))
    errors = []

    def actor(offset):
        try:
            for v in range(300):
                if v % 3:
                    replay.add(make_item((offset + v) % 250))
                else:
                    replay.add_batch(stack([make_item(v % 250)] * 2), priorities=np.array([0.5, 2.0]))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=actor, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    rng = np.random.default_rng(0)
    while any(thread.is_alive() for thread in threads):
        sample = replay.sample(min(8, len(replay)))
        # Every sampled item is internally consistent (not torn by a concurrent write).
        pixels = sample.data["observation"]["pixels"][:, :, 0, 0].astype(np.int32)
        np.testing.assert_array_equal(pixels, sample.data["action"])
        replay.update_priorities(sample.keys, rng.random(sample.keys.shape[0]) + 0.1)
    for thread in threads:
        thread.join()
    assert not errors
    assert replay.stats()["inserted"] == 1 + 2 * (200 + 100 * 2)
    replay.sample(4)
    stats = replay.stats()
    assert replay.counts() == (stats["inserted"], stats["sampled_items"]) and stats["sampled_items"] >= 4
    np.testing.assert_allclose(replay._sampler.tree.total, (replay.priorities() ** 0.9).sum())


def _memory(array: np.ndarray) -> np.ndarray:
    """The array that owns ``array``'s memory (numpy's ``base`` chain)."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def test_output_memory_is_recycled_in_a_learner_loop():
    import weakref

    replay = SequenceReplay(8, seed=0)
    replay.add_batch(stack([make_item(v) for v in range(8)]))
    # A learner holds its current batch while it samples the next one: two buffers suffice.
    held = replay.sample(4)
    owners = []
    for _ in range(10):
        sample = replay.sample(4)
        assert not np.shares_memory(sample.data["action"], held.data["action"])  # a held batch is never reused
        owners.append(weakref.ref(_memory(sample.data["action"])))
        held = sample
    assert all(ref() is not None for ref in owners), "sampled memory was freed instead of recycled"
    assert len({id(ref()) for ref in owners}) == 2

    # A dropped batch's memory comes back with the next sample; a kept one is left alone.
    dropped = weakref.ref(_memory(replay.sample(4).data["action"]))
    kept = replay.sample(4)
    assert _memory(kept.data["action"]) is dropped()
    expected = kept.data["action"].copy()
    for _ in range(5):
        replay.sample(4)
    np.testing.assert_array_equal(kept.data["action"], expected)
