"""R2D2Actor: row resets, state-before, epsilon-greedy, one trace, agreement with the adder."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import envs
from agents.r2d2.actor import R2D2Actor
from agents.r2d2.config import actor_epsilons
from r2d2_state.networks import QNetworkConfig, build_q_network
from r2d2_state.replay import SequenceAdder, SequenceReplay
from r2d2_state.state import get_states, reset_states

SMALL = dict(lstm_units=(16,), mlp_units=(16,), head_units=16)
VECTOR_CONFIG = QNetworkConfig(observation_shape=(4,), num_actions=3, **SMALL)


def fake_obs(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.normal(size=(n, 4)).astype(np.float32)


def run_tmaze(actor: R2D2Actor, steps: int, seed: int = 0, adder: SequenceAdder | None = None,
              corridor_length: int = 2):
    """Acts ``steps`` vector steps on the T-maze; returns per-step records of what was fed."""
    n = actor.num_envs
    vec = envs.make_vector_env(envs.TMAZE_ID, n, seed=seed, corridor_length=corridor_length)
    obs, _ = vec.reset(seed=seed)
    actor.reset()
    records = []
    items = []
    for _ in range(steps):
        fed = dict(observation=obs.copy(), prev_action=actor.prev_action, prev_reward=actor.prev_reward)
        action, state = actor.select_actions(obs)
        next_obs, reward, terminated, truncated, _ = vec.step(action)
        if adder is not None:
            before = adder.replay.stats()["inserted"]
            adder.add(obs, action, reward, terminated, truncated, state)
            after = adder.replay.stats()["inserted"]
            if after > before:  # the sequences this step completed, read back from the replay
                items.append(adder.replay.get(np.arange(before, after)))
        actor.observe(action, reward, terminated, truncated)
        records.append(dict(fed, state=state, action=action, terminated=terminated, truncated=truncated))
        obs = next_obs
    vec.close()
    return records, items


@pytest.fixture(scope="module", params=["numpy", "tf"])
def backend(request) -> str:
    """Every behaviour below holds for both ways of computing the step."""
    return request.param


@pytest.fixture(scope="module")
def actor4(backend) -> R2D2Actor:
    actor = R2D2Actor(VECTOR_CONFIG, num_envs=4, epsilons=actor_epsilons(4, 0.4, 7.0), seed=0, backend=backend)
    assert actor.backend == backend
    return actor


def traces(backend: str) -> int:
    """Traces of the tf step after acting: one; the numpy step traces nothing."""
    return 1 if backend == "tf" else 0


def test_network_is_stateful_with_batch_num_envs(actor4):
    assert actor4.network.input["observation"].shape[0] == 4
    assert [s.shape for s in get_states(actor4.network)[0]] == [(4, 16), (4, 16)]
    assert actor4.epsilons.shape == (4,)
    np.testing.assert_allclose(actor4.epsilons, actor_epsilons(4, 0.4, 7.0))


def test_state_returned_is_the_state_before_the_step(actor4):
    """Compared with get_states before the call, and with a stateless network started from it."""
    rng = np.random.default_rng(1)
    actor4.reset()
    stateless = build_q_network(VECTOR_CONFIG, stateful=False)
    stateless.set_weights(actor4.network.get_weights())
    for step in range(4):
        obs = fake_obs(rng, 4)
        before = get_states(actor4.network)
        prev_action, prev_reward = actor4.prev_action, actor4.prev_reward
        action, state = actor4.select_actions(obs)
        for layer_got, layer_want in zip(state, before):
            for got, want in zip(layer_got, layer_want):
                np.testing.assert_array_equal(got, want)
        if step == 0:
            assert all(not np.any(s) for s in state[0])
        q, final = stateless({
            "observation": obs[:, None], "prev_action": prev_action[:, None],
            "prev_reward": prev_reward[:, None], "valid": np.ones((4, 1), np.float32),
            "initial_h0": state[0][0], "initial_c0": state[0][1],
        })
        np.testing.assert_allclose(actor4.last_q, np.asarray(q)[:, 0], rtol=1e-5, atol=1e-6)
        # ... and the actor's variables now hold the stateless network's final state.
        after = get_states(actor4.network)[0]
        np.testing.assert_allclose(after[0], np.asarray(final[0][0]), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(after[1], np.asarray(final[0][1]), rtol=1e-5, atol=1e-6)
        actor4.observe(action, np.full(4, 0.5), np.zeros(4, bool), np.zeros(4, bool))
        if step == 1:
            kept, kept_copy = state, [[x.copy() for x in layer] for layer in state]
    # The arrays handed out are not views of the state variables: later steps leave them be.
    for layer, layer_copy in zip(kept, kept_copy):
        for got, want in zip(layer, layer_copy):
            np.testing.assert_array_equal(got, want)


def test_rows_reset_only_for_envs_that_started_a_new_episode(actor4):
    rng = np.random.default_rng(2)
    actor4.reset()
    no = np.zeros(4, bool)
    for _ in range(3):
        action, _ = actor4.select_actions(fake_obs(rng, 4))
        actor4.observe(action, np.ones(4), no, no)
    # Env 1 terminates and env 2 truncates; the next observation is their final one.
    action, _ = actor4.select_actions(fake_obs(rng, 4))
    last_action = action.copy()
    actor4.observe(action, np.array([0.0, 2.0, 3.0, 0.0]), np.array([False, True, False, False]),
                   np.array([False, False, True, False]))
    assert not actor4.pending_resets.any()  # final observations carry the state on
    np.testing.assert_array_equal(actor4.prev_action[1:3], last_action[1:3])
    np.testing.assert_array_equal(actor4.prev_reward[1:3], [2.0, 3.0])
    before_final = get_states(actor4.network)
    _, state = actor4.select_actions(fake_obs(rng, 4))
    for got, want in zip(state[0], before_final[0]):
        np.testing.assert_array_equal(got, want)  # no row was reset for F
    # The step after F returns the new episodes' first observations (reward 0, flags False).
    actor4.observe(np.array([0, 1, 2, 0]), np.zeros(4), no, no)
    np.testing.assert_array_equal(actor4.pending_resets, [False, True, True, False])
    np.testing.assert_array_equal(actor4.prev_action, [0, -1, -1, 0])
    np.testing.assert_array_equal(actor4.prev_reward, [0.0, 0.0, 0.0, 0.0])
    before = get_states(actor4.network)
    _, state = actor4.select_actions(fake_obs(rng, 4))
    for got, want in zip(state[0], before[0]):
        np.testing.assert_array_equal(got[[0, 3]], want[[0, 3]])  # untouched rows
        np.testing.assert_array_equal(got[[1, 2]], 0.0)  # reset rows
        assert np.all(np.abs(want[[1, 2]]).sum(axis=1) > 0)  # they were not zero before
    assert not actor4.pending_resets.any()


def test_epsilon_zero_is_greedy_and_one_is_uniform(backend):
    actor = R2D2Actor(VECTOR_CONFIG, num_envs=8, epsilons=0.0, seed=3, backend=backend)
    rng = np.random.default_rng(3)
    for _ in range(10):
        action, _ = actor.select_actions(fake_obs(rng, 8))
        np.testing.assert_array_equal(action, np.argmax(actor.last_q, axis=1))
        assert action.dtype == np.int32 and action.shape == (8,)
    actor = R2D2Actor(VECTOR_CONFIG, num_envs=8, epsilons=1.0, seed=3, backend=backend)
    obs = fake_obs(rng, 8)
    counts = np.zeros(3)
    for _ in range(250):  # 2000 draws: standard error of a frequency ~0.011
        action, _ = actor.select_actions(obs)
        counts += np.bincount(action, minlength=3)
    np.testing.assert_allclose(counts / counts.sum(), [1 / 3] * 3, atol=0.05)
    assert actor.num_traces == traces(backend)
    # A restored generator state replays the same explorations (checkpoint / resume).
    saved = actor.rng_state
    first = [actor.select_actions(obs)[0] for _ in range(3)]
    actor.rng_state = saved
    np.testing.assert_array_equal(first[0], actor.select_actions(obs)[0])


def test_per_env_epsilons_mix_greedy_and_random(backend):
    actor = R2D2Actor(VECTOR_CONFIG, num_envs=2, epsilons=[0.0, 1.0], seed=4, backend=backend)
    rng = np.random.default_rng(4)
    obs = fake_obs(rng, 2)
    off_greedy = 0
    for _ in range(60):
        action, _ = actor.select_actions(obs)
        greedy = np.argmax(actor.last_q, axis=1)
        assert action[0] == greedy[0]
        off_greedy += int(action[1] != greedy[1])
    assert 25 <= off_greedy <= 55  # expected 40 (2/3 of 60)


def test_traces_once_over_episode_ends_and_weight_changes():
    actor = R2D2Actor(VECTOR_CONFIG, num_envs=4, epsilons=actor_epsilons(4), seed=5, backend="tf")
    records, _ = run_tmaze(actor, 20)
    assert any(r["terminated"].any() or r["truncated"].any() for r in records)
    actor.set_weights([w * 0.5 for w in actor.network.get_weights()])
    records, _ = run_tmaze(actor, 10, seed=1)
    assert actor.num_traces == 1
    assert actor._step_fn.experimental_get_tracing_count() == 1


def test_set_weights_changes_q_but_keeps_state(actor4):
    rng = np.random.default_rng(6)
    actor4.reset()
    obs = fake_obs(rng, 4)
    actor4.select_actions(obs)
    state = get_states(actor4.network)
    original = actor4.network.get_weights()
    actor4.set_weights([w + 0.1 for w in original])
    for got, want in zip(get_states(actor4.network)[0], state[0]):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(actor4.network.get_weights()[0], original[0])
    actor4.set_weights(original)
    for got, want in zip(actor4.network.get_weights(), original):
        np.testing.assert_array_equal(got, want)


def test_prev_inputs_and_start_states_agree_with_sequence_adder(backend):
    """What the actor fed (prev_action, prev_reward, state) is what the adder stored."""
    n = 3
    actor = R2D2Actor(VECTOR_CONFIG, num_envs=n, epsilons=[1.0, 0.5, 0.2], seed=7, backend=backend)
    adder = SequenceAdder(SequenceReplay(10_000, capacity_steps=10_000), num_envs=n, burn_in=2, trace_length=3,
                          period=2, n_step=1, store_states=True)
    records, batches = run_tmaze(actor, 60, adder=adder)
    # Candidate (env, step) per recorded state-before h. Two envs with the same cue and
    # history share a state, so an item is matched against every candidate window.
    where: dict[bytes, list[tuple[int, int]]] = {}
    for k, rec in enumerate(records):
        for env in range(n):
            where.setdefault(rec["state"][0][0][env].tobytes(), []).append((env, k))

    def fed(env: int, k: int) -> list:
        rec = records[k]
        return [rec["prev_action"][env], rec["prev_reward"][env], rec["observation"][env],
                rec["state"][0][0][env], rec["state"][0][1][env]]

    def stored(batch: dict, i: int, t: int) -> list:
        return [batch["prev_action"][i, t], batch["prev_reward"][i, t], batch["observation"][i, t],
                batch["states"][0][0][i, t], batch["states"][0][1][i, t]]

    def same(a: list, b: list) -> bool:
        return all(np.array_equal(x, y) for x, y in zip(a, b))

    num_items = ends = 0
    for batch in batches:
        for i in range(len(batch["valid"])):
            num_items += 1
            valid = np.flatnonzero(batch["valid"][i])
            first, last = int(valid[0]), int(valid[-1])
            # The last valid step is never an episode's first (T-maze episodes have >= 3
            # steps), so its state is non-zero and identifies the window up to ties.
            candidates = [(env, k) for env, k in where[batch["states"][0][0][i, last].tobytes()]
                          if k - (last - first) >= 0
                          and all(same(stored(batch, i, t), fed(env, k - (last - t))) for t in valid)]
            assert candidates, f"item {i}: no recorded window fed what the adder stored"
            env, k = candidates[0]
            if batch["valid"][i, 0]:
                start = fed(env, k - last)
            else:  # front padding: the window starts with the episode's first step
                start = fed(env, k - (last - first))
                assert start[0] == -1 and start[1] == 0.0
                assert not np.any(start[3]) and not np.any(start[4])  # zero state row
            np.testing.assert_array_equal(batch["start_state"][0][0][i], start[3])
            np.testing.assert_array_equal(batch["start_state"][0][1][i], start[4])
            if batch["mask"][i, last] == 0:  # ends with a final observation F
                ends += 1
                # F is fed with the episode's last action and reward, not -1 / 0.
                assert records[k]["prev_action"][env] == records[k - 1]["action"][env]
    assert num_items > 20 and ends > 3


class TinyImageEnv(gym.Env):
    """uint8 36x36x1 frames of noise; episodes of 3 steps; 2 actions."""

    observation_space = spaces.Box(0, 255, (36, 36, 1), np.uint8)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self._frame(), {}

    def step(self, action):
        self._t += 1
        return self._frame(), float(action), self._t >= 3, False, {}

    def _frame(self):
        return self.np_random.integers(0, 256, (36, 36, 1), dtype=np.uint8)


def test_image_observations_with_adder():
    config = QNetworkConfig(observation_shape=(36, 36, 1), num_actions=2, conv_dense_units=16, **SMALL)
    n = 2
    vec = gym.vector.SyncVectorEnv([TinyImageEnv] * n)
    actor = R2D2Actor(config, num_envs=n, epsilons=0.5, seed=8)
    assert actor.backend == "tf"  # auto: convolutions keep the graph step
    adder = SequenceAdder(None, num_envs=n, burn_in=1, trace_length=2, period=1, n_step=1)
    obs, _ = vec.reset(seed=8)
    actor.reset()
    emitted = 0
    for _ in range(10):
        action, state = actor.select_actions(obs)
        next_obs, reward, terminated, truncated, _ = vec.step(action)
        emitted += adder.add(obs, action, reward, terminated, truncated, state)
        actor.observe(action, reward, terminated, truncated)
        obs = next_obs
    assert emitted > 0 and actor.last_q.shape == (n, 2) and actor.num_traces == 1
    with pytest.raises(TypeError, match="uint8"):
        actor.select_actions(obs.astype(np.float32))


def test_bad_inputs_raise_naming_the_values(actor4):
    with pytest.raises(ValueError, match=r"\(4, 4\).*got \(3, 4\)"):
        actor4.select_actions(np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"got \(4, 5\)"):
        actor4.select_actions(np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match=r"in \[0, 1\].*1\.5"):
        R2D2Actor(VECTOR_CONFIG, num_envs=4, epsilons=[0.1, 0.2, 0.3, 1.5])
    with pytest.raises(ValueError, match=r"shape \(4,\).*got shape \(3,\)"):
        R2D2Actor(VECTOR_CONFIG, num_envs=4, epsilons=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        R2D2Actor(VECTOR_CONFIG, num_envs=4, epsilons=-0.1)
    with pytest.raises(ValueError, match="nan"):
        R2D2Actor(VECTOR_CONFIG, num_envs=4, epsilons=float("nan"))
    with pytest.raises(ValueError, match="num_envs"):
        R2D2Actor(VECTOR_CONFIG, num_envs=0, epsilons=0.1)
    no = np.zeros(4, bool)
    with pytest.raises(ValueError, match=r"action must have shape \(4,\)"):
        actor4.observe(np.zeros(3, np.int64), np.zeros(4), no, no)
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        actor4.observe(np.array([0, 1, 2, 3]), np.zeros(4), no, no)


def test_numpy_and_tf_backends_act_alike_over_episode_ends_and_weight_changes():
    """Same seeds, same weights: the same Q-values, states and actions, step by step."""
    actors = {b: R2D2Actor(VECTOR_CONFIG, num_envs=4, epsilons=actor_epsilons(4), seed=9, backend=b)
              for b in ("numpy", "tf")}
    weights = actors["tf"].network.get_weights()
    runs = {}
    for b, actor in actors.items():
        actor.set_weights(weights)
        first, _ = run_tmaze(actor, 25)
        actor.set_weights([w * 0.7 for w in weights])
        second, _ = run_tmaze(actor, 15, seed=1)
        runs[b] = first + second
    assert any(r["terminated"].any() or r["truncated"].any() for r in runs["tf"])
    for got, want in zip(runs["numpy"], runs["tf"]):
        np.testing.assert_array_equal(got["action"], want["action"])
        np.testing.assert_array_equal(got["prev_action"], want["prev_action"])
        for g, w in zip(got["state"][0], want["state"][0]):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    assert actors["numpy"].num_traces == 0 and actors["tf"].num_traces == 1


def test_numpy_backend_reads_back_what_is_written_through_network():
    """``actor.network`` stays the actor's state: writes to it are honoured by the next step."""
    rng = np.random.default_rng(10)
    actor = R2D2Actor(VECTOR_CONFIG, num_envs=4, epsilons=0.0, seed=10, backend="numpy")
    reference = R2D2Actor(VECTOR_CONFIG, num_envs=4, epsilons=0.0, seed=10, backend="tf")
    reference.set_weights(actor.network.get_weights())
    for _ in range(3):
        obs = fake_obs(rng, 4)
        actor.select_actions(obs)
        reference.select_actions(obs)
    written = [[rng.normal(size=(4, 16)).astype(np.float32) for _ in range(2)]]
    reset_states(actor.network, written)
    reset_states(reference.network, written)
    new_weights = [w + 0.05 for w in reference.network.get_weights()]
    actor.network.set_weights(new_weights)
    reference.network.set_weights(new_weights)
    obs = fake_obs(rng, 4)
    _, state = actor.select_actions(obs)
    _, want = reference.select_actions(obs)
    np.testing.assert_array_equal(state[0][0], written[0][0])
    np.testing.assert_allclose(actor.last_q, reference.last_q, rtol=1e-5, atol=1e-6)
    for got, expected in zip(get_states(actor.network)[0], get_states(reference.network)[0]):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_backend_choice_and_errors():
    assert R2D2Actor(VECTOR_CONFIG, num_envs=2, epsilons=0.0).backend == "numpy"
    assert R2D2Actor(VECTOR_CONFIG, num_envs=2, epsilons=0.0, jit_compile=True).backend == "tf"
    image = QNetworkConfig(observation_shape=(7, 7, 3), num_actions=3, **SMALL)
    with pytest.raises(ValueError, match="backend='numpy' does not apply here: the torso has convolutions"):
        R2D2Actor(image, num_envs=2, epsilons=0.0, backend="numpy")
    with pytest.raises(ValueError, match="jit_compile=True is for the tf backend"):
        R2D2Actor(VECTOR_CONFIG, num_envs=2, epsilons=0.0, backend="numpy", jit_compile=True)
    with pytest.raises(ValueError, match=r"backend must be one of \('auto', 'numpy', 'tf'\), got 'jax'"):
        R2D2Actor(VECTOR_CONFIG, num_envs=2, epsilons=0.0, backend="jax")
