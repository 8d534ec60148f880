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

SMALL = dict(lstm_units=(16,), mlp_units=(16,), head_units=16)
VECTOR_CONFIG = QNetworkConfig(observation_shape=(4,), num_actions=3, **SMALL)


def fake_obs(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.normal(size=(n, 4)).astype(np.float32)


def fresh_weights() -> list[np.ndarray]:
    """Weights of VECTOR_CONFIG's architecture, as a learner hands them to actors."""
    return build_q_network(VECTOR_CONFIG, stateful=False).get_weights()


def twin_actors(backend: str, n: int = 4) -> tuple[R2D2Actor, R2D2Actor]:
    """Two greedy actors with the same weights: fed alike, they act and carry state alike."""
    weights = fresh_weights()
    twins = tuple(R2D2Actor(VECTOR_CONFIG, num_envs=n, epsilons=0.0, seed=0, backend=backend) for _ in range(2))
    for actor in twins:
        actor.set_weights(weights)
    return twins


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


def test_one_state_row_per_env(actor4):
    actor4.reset()
    _, state = actor4.select_actions(fake_obs(np.random.default_rng(0), 4))
    assert [[s.shape for s in layer] for layer in state] == [[(4, 16), (4, 16)]]
    assert actor4.epsilons.shape == (4,)
    np.testing.assert_allclose(actor4.epsilons, actor_epsilons(4, 0.4, 7.0))


def test_state_returned_is_the_state_before_the_step(actor4):
    """Compared with a stateless network started from it: its Q-values are the step's, its
    final state the next step's state-before."""
    rng = np.random.default_rng(1)
    stateless = build_q_network(VECTOR_CONFIG, stateful=False)
    actor4.set_weights(stateless.get_weights())
    actor4.reset()
    final = None
    for step in range(4):
        obs = fake_obs(rng, 4)
        prev_action, prev_reward = actor4.prev_action, actor4.prev_reward
        action, state = actor4.select_actions(obs)
        if step == 0:
            assert all(not np.any(s) for s in state[0])
        else:
            np.testing.assert_allclose(state[0][0], np.asarray(final[0][0]), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(state[0][1], np.asarray(final[0][1]), rtol=1e-5, atol=1e-6)
        q, final = stateless({
            "observation": obs[:, None], "prev_action": prev_action[:, None],
            "prev_reward": prev_reward[:, None], "valid": np.ones((4, 1), np.float32),
            "initial_h0": state[0][0], "initial_c0": state[0][1],
        })
        np.testing.assert_allclose(actor4.last_q, np.asarray(q)[:, 0], rtol=1e-5, atol=1e-6)
        actor4.observe(action, np.full(4, 0.5), np.zeros(4, bool), np.zeros(4, bool))
        if step == 1:
            kept, kept_copy = state, [[x.copy() for x in layer] for layer in state]
    # The arrays handed out are not views of the state variables: later steps leave them be.
    for layer, layer_copy in zip(kept, kept_copy):
        for got, want in zip(layer, layer_copy):
            np.testing.assert_array_equal(got, want)


def test_rows_reset_only_for_envs_that_started_a_new_episode(backend):
    """Against a twin fed the same steps without the episode ends: only those rows differ."""
    actor, twin = twin_actors(backend)
    rng = np.random.default_rng(2)
    no = np.zeros(4, bool)

    def both(obs, action, reward, terminated=no, truncated=no):
        """One step of each; the twin never sees an episode end. Returns both states-before."""
        (_, state), (_, twin_state) = actor.select_actions(obs), twin.select_actions(obs)
        actor.observe(action, reward, terminated, truncated)
        twin.observe(action, reward, no, no)
        return state[0], twin_state[0]

    actions = [np.array([0, 1, 2, 0]), np.array([2, 2, 1, 0]), np.array([1, 0, 0, 2])]
    for action in actions:
        both(fake_obs(rng, 4), action, np.ones(4))
    # Env 1 terminates and env 2 truncates; the next observation is their final one.
    both(fake_obs(rng, 4), np.array([1, 2, 0, 1]), np.array([0.0, 2.0, 3.0, 0.0]),
         np.array([False, True, False, False]), np.array([False, False, True, False]))
    assert not actor.pending_resets.any()  # final observations carry the state on
    np.testing.assert_array_equal(actor.prev_action[1:3], [2, 0])
    np.testing.assert_array_equal(actor.prev_reward[1:3], [2.0, 3.0])
    state, twin_state = both(fake_obs(rng, 4), np.array([0, 1, 2, 0]), np.zeros(4))
    for got, want in zip(state, twin_state):
        np.testing.assert_array_equal(got, want)  # no row was reset for F
    # The step after F returned the new episodes' first observations (reward 0, flags False).
    np.testing.assert_array_equal(actor.pending_resets, [False, True, True, False])
    np.testing.assert_array_equal(actor.prev_action, [0, -1, -1, 0])
    np.testing.assert_array_equal(actor.prev_reward, [0.0, 0.0, 0.0, 0.0])
    state, twin_state = both(fake_obs(rng, 4), np.zeros(4, np.int64), np.zeros(4))
    for got, want in zip(state, twin_state):
        np.testing.assert_array_equal(got[[0, 3]], want[[0, 3]])  # untouched rows
        np.testing.assert_array_equal(got[[1, 2]], 0.0)  # reset rows
        assert np.all(np.abs(want[[1, 2]]).sum(axis=1) > 0)  # they were not zero before
    assert not actor.pending_resets.any()


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
    actor.set_weights([w * 0.5 for w in fresh_weights()])
    records, _ = run_tmaze(actor, 10, seed=1)
    assert actor.num_traces == 1
    assert actor._step_fn.experimental_get_tracing_count() == 1


def test_set_weights_changes_q_but_keeps_state(backend):
    actor, twin = twin_actors(backend)
    original = fresh_weights()
    actor.set_weights(original)
    twin.set_weights(original)
    rng = np.random.default_rng(6)
    first = fake_obs(rng, 4)
    for a in (actor, twin):
        a.select_actions(first)
    actor.set_weights([w + 0.1 for w in original])
    obs = fake_obs(rng, 4)
    (_, state), (_, twin_state) = actor.select_actions(obs), twin.select_actions(obs)
    for got, want in zip(state[0], twin_state[0]):
        np.testing.assert_array_equal(got, want)  # the state was kept
    assert not np.allclose(actor.last_q, twin.last_q)  # the new weights act
    actor.set_weights(original)
    for a in (actor, twin):
        a.reset()
        a.select_actions(first)
    np.testing.assert_array_equal(actor.last_q, twin.last_q)  # the same weights again


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
    weights = fresh_weights()
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
