"""SequenceAdder: per-step data from N parallel environments -> fixed-length R2D2 sequences.

Sequence layout (B = burn_in, T = trace_length, n = n_step, L = B + T + n, P = period).
Each episode is treated as preceded by B padding steps; in padded time, padded index =
episode step + B, and sequence j of an episode covers padded indices [j*P, j*P + L), its
trained window being [j*P + B, j*P + B + T). Example with B=2, T=3, n=1, P=2 (L=6) and an
episode of 4 transitions ``0 1 2 3`` whose final observation is ``F``::

    padded index   0   1   2   3   4   5   6   7
    episode        .   .   0   1   2   3   F
    sequence 0    [.   . | 0   1   2 | 3]                 emitted when step 3 is added
    sequence 1            [0   1 | 2   3   F | .]         emitted when F is added
    sequence 2                    [2   3 | F   .   . | .] not emitted: no transition
                                                          in its trained window

    ``.`` is padding (valid = mask = 0, zeros, prev_action -1); ``F`` is valid but not a
    transition (mask 0, action/reward/discount 0). ``|`` marks burn-in | trace | tail.

Adjacent sequences overlap by L - P steps. Sequences never contain steps of two episodes.
A sequence starting inside the front padding gets as ``start_state`` the state recorded
with the episode's first step (the actor's reset state), which the network carries
unchanged through the padded burn-in, so even an episode shorter than B has every
transition in the trained window of some sequence::

    B=4, T=2, n=0, P=2, episode ``0 F``:
    padded index   0   1   2   3   4   5
    sequence 0    [.   .   .   . | 0   F]   start_state = state recorded with step 0

Gymnasium NEXT_STEP autoreset (the default of 1.x vector envs): after a step that
terminates or truncates env i, the next ``env.step`` ignores the action, returns reward 0
and the new episode's first observation. Calls to ``add`` therefore look like::

    call       k-1                k                    k+1
    observ.    o_{E-1}            F (final obs)        o_0 of the next episode
    action     a_{E-1}            ignored              a_0
    reward     r_{E-1}, done      0 (not a transition)  r_0
    adder      transition E-1     records F, emits     starts the new episode
                                  the rest of episode

The adder tracks this from the flags itself: call ``add`` once per ``env.step``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import tree

from r2d2_state.autoreset import NextStepAutoreset
from r2d2_state.replay.buffer import SequenceReplay
from r2d2_state.replay.spec import ItemSpec

# Per-step scalar fields of an item: name -> (dtype, padding value).
_STEP_FIELDS = {
    "action": (np.int32, 0),
    "reward": (np.float32, 0.0),
    "discount": (np.float32, 0.0),
    "mask": (np.float32, 0.0),
    "valid": (np.float32, 0.0),
    "prev_action": (np.int32, -1),
    "prev_reward": (np.float32, 0.0),
}

PriorityFn = Callable[[dict], np.ndarray]

NON_FINITE_OBSERVATIONS = ("raise", "allow")
_INT32_MAX = int(np.iinfo(np.int32).max)


class SequenceAdder:
    """Packs steps from N envs into R2D2 sequences and inserts them into a replay.

    Each emitted item is a dict (time-major, no batch axis; L = B + T + n):

      observation: the observation structure, each leaf [L, ...], original dtype.
      action: int32 [L], action taken on observation t (0 where t is not a transition).
      reward: float32 [L], reward received after action t (0 where not a transition).
      discount: float32 [L], 0.0 if the env terminated after action t, else 1.0
        (truncation keeps 1.0: bootstrap); 0.0 where not a transition.
      mask: float32 [L], 1.0 where step t is a transition.
      valid: float32 [L], 1.0 where observation t is real: every transition and the
        episode's final observation; 0.0 on padding.
      prev_action: int32 [L], action taken before observation t in the same episode;
        -1 at the episode's first step and on padding.
      prev_reward: float32 [L], reward received before observation t; 0.0 at the first
        step and on padding.
      start_state: the recurrent state fed together with observation 0 (the state before
        that step), the structure the actor passed, each leaf [...] (no time axis).
      states (only with ``store_states=True``): the state recorded at every step, each
        leaf [L, ...], zeros on padding.

    Usage with a Gymnasium 1.x vector env (NEXT_STEP autoreset)::

        adder = SequenceAdder(replay, num_envs=4, burn_in=40, trace_length=80, period=40, n_step=5)
        obs, _ = envs.reset(seed=0)
        state = actor.initial_state(4)
        while True:
            action, next_state = actor.step(obs, state)
            next_obs, reward, terminated, truncated, _ = envs.step(action)
            adder.add(obs, action, reward, terminated, truncated, state)  # state BEFORE
            obs, state = next_obs, next_state  # (reset state rows for new episodes)

    Args:
      replay: where sequences go (``add_batch``); None to only return them from ``add``.
      num_envs: N, the batch size of every ``add`` call.
      burn_in: B >= 0 steps fed without training to refresh the stored state.
      trace_length: T >= 1 trained steps.
      period: P in [1, T], steps between the starts of adjacent sequences.
      n_step: n >= 0 extra tail steps for n-step targets.
      priority_fn: optional ``priority_fn(items) -> float [K]`` called with the stacked
        emitted items (leaves [K, ...]) to give actor-computed priorities; without it
        new items get the replay's max priority.
      store_states: also store the state at every step (``states``), for diagnostics.
      non_finite_observations: what a NaN or +-inf in a float observation leaf does:
        ``"raise"`` (default) refuses the step with a ValueError naming the leaf and the
        env; ``"allow"`` stores it as is (for envs whose observations use inf on purpose,
        e.g. "no object in sight"; the network must then cope with it). Non-finite
        recurrent states are always refused: they can only come from a diverged network.
    """

    def __init__(
        self,
        replay: SequenceReplay | None,
        num_envs: int,
        burn_in: int,
        trace_length: int,
        period: int,
        n_step: int = 0,
        priority_fn: PriorityFn | None = None,
        store_states: bool = False,
        non_finite_observations: str = "raise",
    ) -> None:
        for name, value, low in (("num_envs", num_envs, 1), ("burn_in", burn_in, 0), ("trace_length", trace_length, 1), ("n_step", n_step, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if isinstance(period, bool) or not isinstance(period, (int, np.integer)) or not 1 <= period <= trace_length:
            raise ValueError(f"period must be an int in [1, trace_length={trace_length}], got {period!r}")
        if non_finite_observations not in NON_FINITE_OBSERVATIONS:
            raise ValueError(f"non_finite_observations must be one of {NON_FINITE_OBSERVATIONS}, "
                             f"got {non_finite_observations!r}")
        if priority_fn is not None and not callable(priority_fn):
            raise TypeError(f"priority_fn must be callable, got {priority_fn!r}")
        self.replay = replay
        self.num_envs = int(num_envs)
        self.burn_in = int(burn_in)
        self.trace_length = int(trace_length)
        self.period = int(period)
        self.n_step = int(n_step)
        self.sequence_length = self.burn_in + self.trace_length + self.n_step
        self.priority_fn = priority_fn
        self.store_states = bool(store_states)
        self.non_finite_observations = non_finite_observations
        n, length = self.num_envs, self.sequence_length
        self._steps = {name: np.full((n, length), pad, dtype) for name, (dtype, pad) in _STEP_FIELDS.items()}
        self._input_spec: ItemSpec | None = None  # of {"observation": ..., "state": ...}
        self._rings: list[np.ndarray] = []  # per input leaf, [N, L, ...]
        self._first_state: list[np.ndarray] = []  # per state leaf, [N, ...]
        self._num_obs_leaves = 0
        self._position = np.zeros(n, np.int64)  # padded index of the next step per env
        self._next_sequence = np.zeros(n, np.int64)  # next sequence j to emit per env
        self._autoreset = NextStepAutoreset(n)  # which calls bring an episode's final observation
        self._fresh = np.ones(n, bool)  # this call is an episode's first step
        self._last_action = np.full(n, -1, np.int32)
        self._last_reward = np.zeros(n, np.float32)
        self.num_emitted = 0

    def reset(self, env_ids: Sequence[int] | None = None) -> None:
        """Drops the partial episodes of ``env_ids`` (all envs if None); their next ``add``
        starts a new episode. Call after ``env.reset()``."""
        if env_ids is None:
            ids = np.arange(self.num_envs)
        else:
            ids = np.asarray(env_ids, dtype=np.int64).reshape(-1)
            bad = ids[(ids < 0) | (ids >= self.num_envs)]
            if bad.size:
                raise IndexError(f"unknown env id {int(bad[0])!r}: expected 0..{self.num_envs - 1}")
        self._fresh[ids] = True
        self._autoreset.reset(ids)

    def add(
        self,
        observation: Any,
        action: np.ndarray,
        reward: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        state: Any,
    ) -> dict | None:
        """Records one step of every env; inserts (and returns) the completed sequences.

        Args:
          observation: the batched observation the actor acted on, leaves [N, ...].
          action: int [N], the actions passed to ``env.step`` (non-negative).
          reward, terminated, truncated: [N] as returned by ``env.step(action)``.
          state: the actor's recurrent state *before* this step, leaves [N, ...].

        Returns:
          The emitted items stacked (leaves [K, ...]) or None if none completed.

        Bad inputs raise before anything is recorded, checked on the values as they will be
        stored: shapes other than [N, ...], a dtype or structure other than the first
        call's, float actions or actions outside the stored int32 range ``[0, 2**31 - 1]``,
        non-bool flags, rewards that are not finite as float32 (NaN, inf, or beyond
        +-3.4e38), non-finite states, and non-finite float observations unless
        ``non_finite_observations="allow"``. An error from ``priority_fn`` or the replay comes after the
        step was recorded: the emitted items are then lost, the replay is unchanged.
        One adder serves one actor thread (it has no lock; the replay has one).
        """
        n = self.num_envs
        action = _vector(action, "action", n)
        reward = _vector(reward, "reward", n)
        terminated = _vector(terminated, "terminated", n)
        truncated = _vector(truncated, "truncated", n)
        if not np.issubdtype(action.dtype, np.integer):
            raise TypeError(f"action must be an integer array (discrete actions), got dtype {action.dtype}")
        if np.any(action < 0):
            raise ValueError(f"actions must be >= 0 (-1 marks padding), got {action.tolist()!r}")
        if np.any(action > _INT32_MAX):
            raise ValueError(f"actions are stored as int32: expected values <= {_INT32_MAX}, got {action.tolist()!r}")
        if not (np.issubdtype(reward.dtype, np.floating) or np.issubdtype(reward.dtype, np.integer)):
            raise TypeError(f"reward must be a real array, got dtype {reward.dtype}")
        with np.errstate(over="ignore"):
            stored_reward = reward.astype(np.float32)
        if not np.all(np.isfinite(stored_reward)):
            raise ValueError(f"reward must be finite as float32 (|r| <= 3.4e38), got {reward.tolist()!r}")
        for name, flags in (("terminated", terminated), ("truncated", truncated)):
            if flags.dtype != np.bool_:
                raise TypeError(f"{name} must be a bool array, got dtype {flags.dtype}")
        inputs = {"observation": observation, "state": state}
        spec = self._input_spec or ItemSpec.from_item(inputs, leading_axes=1)
        leaves = spec.flatten(inputs, leading_shape=(n,))
        self._check_finite(spec, leaves)
        # Validation is over; mutate from here on.
        if self._input_spec is None:
            self._allocate(spec, leaves)
        self._begin_episodes(leaves)
        emissions = self._record(leaves, action, stored_reward, terminated, truncated)
        if not emissions:
            return None
        items = self._gather(*map(np.asarray, zip(*emissions)))
        if self.replay is not None:
            priorities = None if self.priority_fn is None else np.asarray(self.priority_fn(items))
            self.replay.add_batch(items, priorities)
        self.num_emitted += len(emissions)
        return items

    # ------------------------------------------------------------------ internals

    def _check_finite(self, spec: ItemSpec, leaves: list[np.ndarray]) -> None:
        """NaN / inf in a state leaf, or an observation leaf unless allowed: ValueError."""
        for leaf_spec, leaf in zip(spec.leaves, leaves):
            if leaf.dtype.kind not in "fc":  # integers, bools, structured: always finite
                continue
            is_state = leaf_spec.path[0] == "state"
            if not is_state and self.non_finite_observations == "allow":
                continue
            finite = np.isfinite(leaf).reshape(leaf.shape[0], -1).all(axis=1)
            if not finite.all():
                bad = np.flatnonzero(~finite)
                hint = "" if is_state else " (non_finite_observations='allow' stores them)"
                raise ValueError(f"leaf {leaf_spec.name!r} has NaN or inf values in env(s) {bad.tolist()!r}: "
                                 f"expected finite values{hint}")

    def _allocate(self, spec: ItemSpec, leaves: list[np.ndarray]) -> None:
        self._input_spec = spec
        self._num_obs_leaves = sum(1 for s in spec.leaves if s.path[0] == "observation")
        self._rings = [np.zeros((self.num_envs, self.sequence_length) + s.shape, s.dtype) for s in spec.leaves]
        self._first_state = [np.zeros_like(leaf) for leaf in leaves[self._num_obs_leaves :]]

    def _begin_episodes(self, leaves: list[np.ndarray]) -> None:
        fresh = np.flatnonzero(self._fresh)
        if fresh.size == 0:
            return
        burn_in = self.burn_in
        for ring in self._rings:  # front padding: padded indices [0, B) are slots [0, B)
            ring[fresh, :burn_in] = 0
        for name, (_, pad) in _STEP_FIELDS.items():
            self._steps[name][fresh, :burn_in] = pad
        for first, leaf in zip(self._first_state, leaves[self._num_obs_leaves :]):
            first[fresh] = leaf[fresh]
        self._position[fresh] = burn_in
        self._next_sequence[fresh] = 0
        self._last_action[fresh] = -1
        self._last_reward[fresh] = 0.0
        self._fresh[fresh] = False

    def _record(self, leaves, action, reward, terminated, truncated) -> list[tuple[int, int, int]]:
        """Writes this step into every env's ring; returns (env, start, length) to emit."""
        envs = np.arange(self.num_envs)
        slot = self._position % self.sequence_length
        transition, _ = self._autoreset.step(terminated, truncated)
        final = ~transition  # this observation is the final one of its episode
        for ring, leaf in zip(self._rings, leaves):
            ring[envs, slot] = leaf
        steps = self._steps
        steps["action"][envs, slot] = np.where(transition, action, 0)
        steps["reward"][envs, slot] = np.where(transition, reward, 0.0)
        steps["discount"][envs, slot] = np.where(transition & ~terminated, 1.0, 0.0)
        steps["mask"][envs, slot] = transition
        steps["valid"][envs, slot] = 1.0
        steps["prev_action"][envs, slot] = self._last_action
        steps["prev_reward"][envs, slot] = self._last_reward
        self._last_action = np.where(transition, action, self._last_action).astype(np.int32)
        self._last_reward = np.where(transition, reward, self._last_reward).astype(np.float32)

        emissions = []
        length, period = self.sequence_length, self.period
        for env in range(self.num_envs):
            position = int(self._position[env])
            if transition[env]:
                start = position + 1 - length
                if start >= 0 and start % period == 0:
                    emissions.append((env, start, length))
                    self._next_sequence[env] += 1
            else:
                # Emit every remaining sequence whose trained window holds a transition:
                # transitions are padded indices [B, position), so start + B < position.
                j = int(self._next_sequence[env])
                while j * period + self.burn_in < position:
                    start = j * period
                    emissions.append((env, start, position + 1 - start))
                    j += 1
                self._next_sequence[env] = j
        self._position += 1
        self._fresh = final.copy()  # after a final observation, a new episode begins
        return emissions

    def _gather(self, env: np.ndarray, start: np.ndarray, length: np.ndarray) -> dict:
        """Stacks the emitted sequences: env, start (padded index), length, each int [K]."""
        size = self.sequence_length
        offsets = np.arange(size)
        rows = env[:, None]
        cols = (start[:, None] + offsets) % size  # [K, L] ring slots
        padding = offsets[None, :] >= length[:, None]  # [K, L] tail beyond the episode
        has_padding = bool(padding.any())
        item: dict[str, Any] = {}
        for name, (_, pad) in _STEP_FIELDS.items():
            values = self._steps[name][rows, cols]
            if has_padding:
                values[padding] = pad
            item[name] = values
        gathered = []
        for ring in self._rings:
            values = ring[rows, cols]
            if has_padding:
                values[padding] = 0
            gathered.append(values)
        skeleton = self._input_spec.skeleton if self._input_spec is not None else {}
        num_obs = self._num_obs_leaves
        item["observation"] = tree.unflatten_as(skeleton["observation"], gathered[:num_obs])
        # The state fed with observation 0: recorded at padded index `start`, or, for a
        # start inside the front padding, the state recorded with the episode's step 0.
        in_padding = start < self.burn_in
        start_leaves = []
        for ring, first in zip(self._rings[num_obs:], self._first_state):
            values = ring[env, start % size]
            if in_padding.any():
                values[in_padding] = first[env[in_padding]]
            start_leaves.append(values)
        item["start_state"] = tree.unflatten_as(skeleton["state"], start_leaves)
        if self.store_states:
            item["states"] = tree.unflatten_as(skeleton["state"], gathered[num_obs:])
        return item


def _vector(value: Any, name: str, n: int) -> np.ndarray:
    array = np.asarray(value)
    if array.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one per env), got {array.shape!r}")
    return array
