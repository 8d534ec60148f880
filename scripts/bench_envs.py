"""Raw vector-env stepping speed with random actions (no agent, no network).

    python scripts/bench_envs.py --num-envs 32 --steps 2000
    python scripts/bench_envs.py --baselines     # memoryless returns quoted in the docs

Prints env steps per second (num_envs * vector steps / wall time) for each vectorization.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import envs


def steps_per_second(
    env_id: str, num_envs: int, steps: int, vectorization: str, seed: int = 0
) -> float:
    """Env steps/s of ``steps`` vector steps with uniformly random actions."""
    vec = envs.make_vector_env(env_id, num_envs, seed=seed, vectorization=vectorization)
    num_actions = int(vec.single_action_space.n)
    # Actions drawn up front so the timing measures the env, not the sampler.
    actions = np.random.default_rng(seed).integers(num_actions, size=(steps, num_envs))
    vec.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        vec.step(action)
    elapsed = time.perf_counter() - start
    vec.close()
    return num_envs * steps / elapsed


def mean_return(
    env_id: str, policy, episodes: int = 200, num_envs: int = 20, seed: int = 0
) -> float:
    """Mean return of ``policy(obs [N, F], rng) -> actions [N]`` over ``episodes`` episodes."""
    vec = envs.make_vector_env(env_id, num_envs, seed=seed)
    rng = np.random.default_rng(seed)
    obs, _ = vec.reset()
    running, returns = np.zeros(num_envs), []
    while len(returns) < episodes:
        obs, reward, terminated, truncated, _ = vec.step(policy(obs, rng))
        running += reward
        for i in np.flatnonzero(terminated | truncated):
            returns.append(running[i])
            running[i] = 0.0
    vec.close()
    return float(np.mean(returns[:episodes]))


def baselines() -> None:
    """Memoryless reference returns (what a recurrent agent has to beat)."""
    tmaze = envs.TMAZE_ID
    cartpole = envs.CARTPOLE_NO_VELOCITY_ID
    def walk_then_random_side(obs, rng):
        return np.where(obs[:, 2] == 1.0, rng.integers(1, 3, len(obs)), 0)

    def uniform_random(obs, rng):
        return rng.integers(2, size=len(obs))

    def push_toward_lean(obs, rng):
        return (obs[:, 1] > 0).astype(np.int64)

    rows = [
        (tmaze, "walk, then a random side", walk_then_random_side),
        (cartpole, "uniform random", uniform_random),
        (cartpole, "push toward the lean (theta > 0)", push_toward_lean),
    ]
    for env_id, name, policy in rows:
        value = mean_return(env_id, policy, episodes=1000)
        print(f"{env_id}: {name}: mean return {value:.2f} (1000 episodes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", default=envs.TMAZE_ID)
    parser.add_argument("--num-envs", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2000, help="vector steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    parser.add_argument("--baselines", action="store_true", help="memoryless returns instead")
    args = parser.parse_args()
    if args.baselines:
        baselines()
        return
    for vectorization in ("sync", "native"):
        try:
            rates = [
                steps_per_second(args.env_id, args.num_envs, args.steps, vectorization)
                for _ in range(args.repeats)
            ]
        except ValueError as error:
            print(f"{vectorization:>6}: n/a ({error})")
            continue
        print(
            f"{vectorization:>6}: {args.env_id} x {args.num_envs}: "
            f"best {max(rates):,.0f} env steps/s (runs: {', '.join(f'{r:,.0f}' for r in rates)})"
        )


if __name__ == "__main__":
    main()
