"""SequenceAdder: per-step data from N parallel environments -> steps stored once + R2D2 sequences.

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

What it writes. Each call writes the N steps once (a :class:`~r2d2_state.replay.steps.StepChunk`)
and each emitted sequence as a row of step ids plus its start state, either straight into
a replay (``add_chunk``) or kept until :meth:`SequenceAdder.take_chunk` (an actor process
ships its chunks to the learner's replay). Adjacent sequences share their L - P common
steps; a frame-stacked observation leaf (:class:`~r2d2_state.replay.steps.FrameStack`)
stores its newest frame only, after checking that the others repeat the previous step's.
"""

from __future__ import annotations

import uuid
from typing import Any, Sequence

import numpy as np

from r2d2_state.autoreset import NextStepAutoreset
from r2d2_state.replay.replay import SequenceReplay
from r2d2_state.replay.sequences import frame_shape
from r2d2_state.replay.spec import ItemSpec
from r2d2_state.replay.steps import STORED, TERMINATED, TRANSITION, FrameStack, SequenceLayout, StepChunk

NON_FINITE_OBSERVATIONS = ("raise", "allow")
_INT32_MAX = int(np.iinfo(np.int32).max)


class SequenceAdder:
    """Writes steps from N envs once and R2D2 sequences as references to them.

    Every sequence read back from the replay (``replay.sample`` / ``replay.get``) is a dict
    (leaves [L, ...] per sequence; L = B + T + n):

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

        replay = SequenceReplay(capacity_steps=1_000_000, seed=0)
        adder = SequenceAdder(replay, num_envs=4, burn_in=40, trace_length=80, period=40, n_step=5)
        obs, _ = envs.reset(seed=0)
        state = actor.initial_state(4)
        while True:
            action, next_state = actor.step(obs, state)
            next_obs, reward, terminated, truncated, _ = envs.step(action)
            adder.add(obs, action, reward, terminated, truncated, state)  # state BEFORE
            obs, state = next_obs, next_state  # (reset state rows for new episodes)

    Args:
      replay: where steps and sequences go (``add_chunk``, every call); None to keep them
        until :meth:`take_chunk`.
      num_envs: N, the batch size of every ``add`` call.
      burn_in: B >= 0 steps fed without training to refresh the stored state.
      trace_length: T >= 1 trained steps.
      period: P in [1, T], steps between the starts of adjacent sequences.
      n_step: n >= 0 extra tail steps for n-step targets.
      store_states: also store the state at every step (``states``), for diagnostics.
      non_finite_observations: what a NaN or +-inf in a float observation leaf does:
        ``"raise"`` (default) refuses the step with a ValueError naming the leaf and the
        env; ``"allow"`` stores it as is (for envs whose observations use inf on purpose,
        e.g. "no object in sight"; the network must then cope with it). Non-finite
        recurrent states are always refused: they can only come from a diverged network.
      frame_stacks: observation leaves that stack the last k frames
        (:class:`~r2d2_state.replay.steps.FrameStack`); each frame is stored once.
    """

    def __init__(
        self,
        replay: SequenceReplay | None,
        num_envs: int,
        burn_in: int,
        trace_length: int,
        period: int,
        n_step: int = 0,
        store_states: bool = False,
        non_finite_observations: str = "raise",
        frame_stacks: Sequence[FrameStack] = (),
    ) -> None:
        for name, value, low in (("num_envs", num_envs, 1), ("burn_in", burn_in, 0), ("trace_length", trace_length, 1), ("n_step", n_step, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if isinstance(period, bool) or not isinstance(period, (int, np.integer)) or not 1 <= period <= trace_length:
            raise ValueError(f"period must be an int in [1, trace_length={trace_length}], got {period!r}")
        if non_finite_observations not in NON_FINITE_OBSERVATIONS:
            raise ValueError(f"non_finite_observations must be one of {NON_FINITE_OBSERVATIONS}, "
                             f"got {non_finite_observations!r}")
        if replay is not None and not isinstance(replay, SequenceReplay):
            raise TypeError(f"replay must be a SequenceReplay or None, got {type(replay).__name__}")
        stacks = tuple(frame_stacks)
        if not all(isinstance(s, FrameStack) for s in stacks):
            raise TypeError(f"frame_stacks must be FrameStack objects, got {stacks!r}")
        self.replay = replay
        self.num_envs = int(num_envs)
        self.burn_in = int(burn_in)
        self.trace_length = int(trace_length)
        self.period = int(period)
        self.n_step = int(n_step)
        self.layout = SequenceLayout(self.burn_in, self.trace_length, self.n_step, self.period, stacks)
        self.sequence_length = self.layout.length
        self.store_states = bool(store_states)
        self.non_finite_observations = non_finite_observations
        self.writer = uuid.uuid4().hex
        n = self.num_envs
        self._input_spec: ItemSpec | None = None  # of {"observation": ..., "state": ...}
        self._num_obs_leaves = 0
        self._stacked: dict[int, tuple[int, int, str]] = {}  # obs leaf index -> (frames, axis, padding)
        self._last_obs: dict[int, np.ndarray] = {}  # stacked leaf -> the previous observation [N, ...]
        self._state_ring: list[np.ndarray] = []  # per state leaf, [N, L, ...] by padded index % L
        self._first_state: list[np.ndarray] = []  # per state leaf, [N, ...]
        self._calls = 0  # add calls so far: env e's step of call c has writer id c * N + e
        self._position = np.zeros(n, np.int64)  # padded index of the next step per env
        self._episode_call = np.zeros(n, np.int64)  # the call of each env's episode's first step
        self._next_sequence = np.zeros(n, np.int64)  # next sequence j to emit per env
        self._autoreset = NextStepAutoreset(n)  # which calls bring an episode's final observation
        self._fresh = np.ones(n, bool)  # this call is an episode's first step
        self._pending_steps: list[list[np.ndarray]] = []  # per call, the step leaves [N, ...]
        self._pending_rows: list[np.ndarray] = []  # per call, sequence id rows [K, W]
        self._pending_states: list[list[np.ndarray]] = []  # per call, start-state leaves [K, ...]
        self._pending_first = 0  # the call of the first pending step
        self.num_emitted = 0

    @property
    def history(self) -> int:
        """Writer ids before a chunk's first one that its sequences may refer to."""
        return (self.sequence_length + self.layout.lookback) * self.num_envs

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
    ) -> int:
        """Records one step of every env; returns how many sequences it completed.

        Args:
          observation: the batched observation the actor acted on, leaves [N, ...].
          action: int [N], the actions passed to ``env.step`` (non-negative).
          reward, terminated, truncated: [N] as returned by ``env.step(action)``.
          state: the actor's recurrent state *before* this step, leaves [N, ...].

        Bad inputs raise before anything is recorded, checked on the values as they will be
        stored: shapes other than [N, ...], a dtype or structure other than the first
        call's, float actions or actions outside the stored int32 range ``[0, 2**31 - 1]``,
        non-bool flags, rewards that are not finite as float32 (NaN, inf, or beyond
        +-3.4e38), non-finite states, non-finite float observations unless
        ``non_finite_observations="allow"``, and frame stacks whose older frames are not the
        previous step's. An error from the replay comes after the step was recorded: that
        call's steps and sequences are then lost, the replay is unchanged.
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
        stacked = self._stacked if self._input_spec is not None else self._stack_plan(spec)
        self._check_finite(spec, leaves)
        self._check_stacks(spec, leaves, stacked)
        # Validation is over; mutate from here on.
        if self._input_spec is None:
            self._allocate(spec, leaves, stacked)
        self._begin_episodes(leaves)
        emitted = self._record(leaves, action, stored_reward, terminated, truncated)
        self.num_emitted += emitted
        if self.replay is not None:
            chunk = self.take_chunk()
            if chunk is not None:
                self.replay.add_chunk(chunk)
        return emitted

    def take_chunk(self) -> StepChunk | None:
        """The steps and sequences written since the last call (None if there are none)."""
        if not self._pending_steps:
            return None
        num_obs = self._num_obs_leaves
        calls = self._pending_steps
        leaves = [parts[0] for parts in zip(*calls)] if len(calls) == 1 else \
            [np.concatenate(parts) for parts in zip(*calls)]
        steps = {"observation": self._obs_spec.unflatten(leaves[:num_obs]),
                 "action": leaves[num_obs], "reward": leaves[num_obs + 1], "flags": leaves[num_obs + 2]}
        if self.store_states:
            steps["state"] = self._state_spec.unflatten(leaves[num_obs + 3:])
        rows = [r for r in self._pending_rows if r.shape[0]]
        width = self.layout.width
        sequences = np.concatenate(rows) if rows else np.zeros((0, width), np.int64)
        state_parts = [p for p in self._pending_states if p[0].shape[0]] if self._state_ring else []
        if state_parts:
            state_leaves = [np.concatenate(parts) for parts in zip(*state_parts)]
        else:
            state_leaves = [np.zeros((0,) + ring.shape[2:], ring.dtype) for ring in self._state_ring]
        chunk = StepChunk(self.writer, self._pending_first * self.num_envs, steps, sequences,
                          self._state_spec.unflatten(state_leaves), self.layout, self.history, self.num_envs)
        self._pending_steps, self._pending_rows, self._pending_states = [], [], []
        self._pending_first = self._calls
        return chunk

    # ------------------------------------------------------------------ internals

    def _stack_plan(self, spec: ItemSpec) -> dict[int, tuple[int, int, str]]:
        """Observation leaf index -> (frames, axis, padding) of the declared frame stacks."""
        obs = [leaf for leaf in spec.leaves if leaf.path[0] == "observation"]
        names = {leaf.name: i for i, leaf in enumerate(obs)}
        plan = {}
        for stack in self.layout.frame_stacks:
            if stack.leaf not in names:
                raise ValueError(f"frame stack of unknown observation leaf {stack.leaf!r}: expected one of "
                                 f"{sorted(names)}")
            index = names[stack.leaf]
            _, axis = frame_shape(obs[index].shape, stack.axis, stack.size, stack.leaf)
            plan[index] = (stack.size, axis, stack.padding)
        return plan

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

    def _check_stacks(self, spec: ItemSpec, leaves: list[np.ndarray], stacked: dict) -> None:
        """Only the newest frame of a stack is stored: the others must be the previous
        step's (or the episode start's padding), or the stack could not be rebuilt."""
        for index, (size, axis, padding) in stacked.items():
            obs = leaves[index]
            a = axis + 1  # the env axis comes first
            older = np.take(obs, range(size - 1), axis=a)
            fresh = self._fresh if self._input_spec is not None else np.ones(self.num_envs, bool)
            if padding == "reset":
                expected_fresh = np.repeat(np.take(obs, [size - 1], axis=a), size - 1, axis=a)
            else:
                expected_fresh = np.zeros_like(older)
            last = self._last_obs.get(index)
            expected = expected_fresh if last is None else np.where(
                _rows(fresh, older.ndim), expected_fresh, np.take(last, range(1, size), axis=a))
            same = (older == expected).reshape(self.num_envs, -1).all(axis=1)
            if not same.all():
                bad = np.flatnonzero(~same).tolist()
                raise ValueError(
                    f"observation leaf {spec.leaves[index].name!r} is declared a {size}-frame stack (axis {axis}), "
                    f"but in env(s) {bad} its older frames are not the previous step's frames "
                    f"({padding!r} padding at an episode's first step): it cannot be stored as single frames")

    def _allocate(self, spec: ItemSpec, leaves: list[np.ndarray], stacked: dict) -> None:
        self._input_spec = spec
        self._stacked = stacked
        self._obs_spec = ItemSpec(spec.skeleton["observation"], tuple(s for s in spec.leaves if s.path[0] == "observation"))
        self._state_spec = ItemSpec(spec.skeleton["state"], tuple(s for s in spec.leaves if s.path[0] == "state"))
        self._num_obs_leaves = sum(1 for s in spec.leaves if s.path[0] == "observation")
        length = self.sequence_length
        states = leaves[self._num_obs_leaves:]
        self._state_ring = [np.zeros((self.num_envs, length) + leaf.shape[1:], leaf.dtype) for leaf in states]
        self._first_state = [np.zeros_like(leaf) for leaf in states]
        self._pending_first = self._calls

    def _begin_episodes(self, leaves: list[np.ndarray]) -> None:
        fresh = np.flatnonzero(self._fresh)
        if fresh.size == 0:
            return
        for first, leaf in zip(self._first_state, leaves[self._num_obs_leaves:]):
            first[fresh] = leaf[fresh]
        self._position[fresh] = self.burn_in
        self._episode_call[fresh] = self._calls
        self._next_sequence[fresh] = 0
        self._fresh[fresh] = False

    def _record(self, leaves, action, reward, terminated, truncated) -> int:
        """Writes this call's steps; emits the sequences it completes; returns their count."""
        n = self.num_envs
        envs = np.arange(n)
        transition, _ = self._autoreset.step(terminated, truncated)
        final = ~transition  # this observation is the final one of its episode
        num_obs = self._num_obs_leaves
        step = []
        for index, leaf in enumerate(leaves[:num_obs]):
            if index in self._stacked:
                size, axis, _ = self._stacked[index]
                self._last_obs[index] = leaf.copy()
                leaf = np.take(leaf, size - 1, axis=axis + 1)  # the newest frame
            step.append(leaf)
        step.append(np.where(transition, action, 0).astype(np.int32))
        step.append(np.where(transition, reward, 0.0).astype(np.float32))
        step.append((STORED + transition * TRANSITION + (transition & terminated) * TERMINATED).astype(np.uint8))
        states = leaves[num_obs:]
        if self.store_states:
            step.extend(states)
        self._pending_steps.append(step)
        slot = self._position % self.sequence_length
        for ring, leaf in zip(self._state_ring, states):
            ring[envs, slot] = leaf

        length, period = self.sequence_length, self.period
        position = self._position
        if transition.all():  # no episode ends here: at most one full sequence per env
            start = position + 1 - length
            due = np.flatnonzero((start >= 0) & (start % period == 0))
            self._next_sequence[due] += 1
            emissions = list(zip(due.tolist(), start[due].tolist()))
        else:
            emissions = []
            for env in range(n):
                pos = int(position[env])
                if transition[env]:
                    start = pos + 1 - length
                    if start >= 0 and start % period == 0:
                        emissions.append((env, start))
                        self._next_sequence[env] += 1
                else:
                    # Emit every remaining sequence whose trained window holds a transition:
                    # transitions are padded indices [B, pos), so start + B < pos.
                    j = int(self._next_sequence[env])
                    while j * period + self.burn_in < pos:
                        emissions.append((env, j * period))
                        j += 1
                    self._next_sequence[env] = j
        if emissions:
            env, start = (np.asarray(x, np.int64) for x in zip(*emissions))
            self._emit(env, start)
        else:
            self._pending_rows.append(np.zeros((0, self.layout.width), np.int64))
            self._pending_states.append([np.zeros((0,) + r.shape[2:], r.dtype) for r in self._state_ring])
        self._position += 1
        self._calls += 1
        self._fresh = final.copy()  # after a final observation, a new episode begins
        return len(emissions)

    def _emit(self, env: np.ndarray, start: np.ndarray) -> None:
        """Id rows and start states of the sequences (env, start padded index), each int [K]."""
        lookback, burn_in = self.layout.lookback, self.burn_in
        padded = start[:, None] - lookback + np.arange(self.layout.width)[None, :]  # [K, W]
        last = self._position[env][:, None]  # the step just recorded
        present = (padded >= burn_in) & (padded <= last)
        calls = self._episode_call[env][:, None] + padded - burn_in
        self._pending_rows.append(np.where(present, calls * self.num_envs + env[:, None], -1))
        # The state fed with observation 0: recorded at padded index `start`, or, for a
        # start inside the front padding, the state recorded with the episode's step 0.
        in_padding = start < burn_in
        states = []
        for ring, first in zip(self._state_ring, self._first_state):
            values = ring[env, start % self.sequence_length]
            if in_padding.any():
                values[in_padding] = first[env[in_padding]]
            states.append(values)
        self._pending_states.append(states)


def _rows(mask: np.ndarray, ndim: int) -> np.ndarray:
    return mask.reshape(mask.shape + (1,) * (ndim - 1))


def _vector(value: Any, name: str, n: int) -> np.ndarray:
    array = np.asarray(value)
    if array.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one per env), got {array.shape!r}")
    return array
