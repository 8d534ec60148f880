"""The acting step: the one place an actor steps a vector env.

Every caller (the single-process experience source, a Ray actor process, evaluation) steps
its envs through :class:`Acting`, so the order that R2D2's alignment rests on lives once::

    actions, state = actor.select_actions(obs)            # state BEFORE the step
    next_obs, r, term, trunc, _ = envs.step(actions)
    adder.add(obs, actions, r, term, trunc, state)        # training only: steps + sequences
    actor.observe(actions, r, term, trunc)                # NEXT_STEP row resets
    obs = next_obs

Episode returns and lengths are counted under Gymnasium's NEXT_STEP autoreset
(:class:`r2d2_state.autoreset.EpisodeStatistics`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from r2d2_state.autoreset import EpisodeStatistics

__all__ = ["Acting", "Step"]


class Step(NamedTuple):
    """What one vector step finished: the envs whose episode ended, their returns and lengths."""

    envs: list[int]
    returns: list[float]
    lengths: list[int]


class Acting:
    """An actor on a vector env, with an adder when its steps are for training.

    Args:
      envs: a vector env (NEXT_STEP autoreset); reset on the first step with ``seed``.
      actor: an :class:`~agents.r2d2.actor.R2D2Actor` (or anything with ``select_actions``,
        ``observe`` and ``reset``) of batch ``envs.num_envs``.
      adder: a :class:`~r2d2_state.replay.SequenceAdder`, or None (evaluation).
      seed: seeds the envs' first reset.
    """

    def __init__(self, envs: Any, actor: Any, adder: Any = None, seed: int | None = None) -> None:
        self.envs, self.actor, self.adder = envs, actor, adder
        self.seed = seed
        self.obs: Any = None
        self.episodes = EpisodeStatistics(int(envs.num_envs))

    def reset(self, seed: int | None = None) -> None:
        """Start every env afresh (the next step resets them with ``seed``); episodes in
        progress are dropped, by the adder too."""
        self.seed, self.obs = seed, None
        self.episodes = EpisodeStatistics(int(self.envs.num_envs))
        if self.adder is not None:
            self.adder.reset()

    def begin(self) -> None:
        """Reset the envs (with ``seed``) and the actor, unless they run already."""
        if self.obs is None:
            self.obs, _ = self.envs.reset(seed=self.seed)
            self.actor.reset()

    def step(self) -> Step:
        """One vector step (module docstring)."""
        self.begin()
        actions, state = self.actor.select_actions(self.obs)
        next_obs, reward, terminated, truncated, _ = self.envs.step(actions)
        if self.adder is not None:
            self.adder.add(self.obs, actions, reward, terminated, truncated, state)
        self.actor.observe(actions, reward, terminated, truncated)
        self.obs = next_obs
        returns, lengths, envs = self.episodes.step_with_envs(reward, terminated, truncated)
        return Step(list(envs), list(returns), list(lengths))

    def run(self, vector_steps: int) -> tuple[list[float], list[int]]:
        """``vector_steps`` steps; the returns and lengths of the episodes they finished."""
        returns: list[float] = []
        lengths: list[int] = []
        for _ in range(int(vector_steps)):
            done = self.step()
            returns.extend(done.returns)
            lengths.extend(done.lengths)
        return returns, lengths
