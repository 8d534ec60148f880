"""Acting-loop speed: env steps/s of what the training loop does per step, minus learning.

    python scripts/bench_actor.py                         # 1, 8 and 32 T-maze envs
    python scripts/bench_actor.py --num-envs 32 --steps 2000 --profile

One vector step of the acting loop = ``select_actions`` (one tf.function call: row
resets, state read, one LSTM step) + epsilon-greedy + ``env.step`` + ``actor.observe`` +
``SequenceAdder.add`` into a ``SequenceReplay``. Raw = ``env.step`` with random actions
in the same run. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from agents.r2d2.tf_runtime import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()  # no CUDA-probe noise on a CPU-only machine

import envs  # noqa: E402
from bench_common import print_result  # noqa: E402  (scripts/ is on sys.path)
from bench_envs import steps_per_second  # noqa: E402
from agents.r2d2.actor import R2D2Actor  # noqa: E402
from agents.r2d2.config import actor_epsilons  # noqa: E402
from r2d2_state.networks import QNetworkConfig  # noqa: E402
from r2d2_state.replay.adder import SequenceAdder  # noqa: E402
from r2d2_state.replay import SequenceReplay  # noqa: E402


class ActingLoop:
    """One acting loop: its own vector env, actor, replay and adder (R2D2's 40 + 80 + 5, period 40)."""

    def __init__(self, network_config: QNetworkConfig, env_id: str, num_envs: int, seed: int = 0,
                 actor_cls: type = R2D2Actor, adder_cls: type = SequenceAdder, **actor_kwargs) -> None:
        self.env = envs.make_vector_env(env_id, num_envs, seed=seed)
        self.actor = actor_cls(network_config, num_envs, actor_epsilons(num_envs, 0.4, 7.0), seed=seed, **actor_kwargs)
        self.adder = adder_cls(SequenceReplay(capacity=10_000, seed=seed), num_envs, 40, 80, 40, 5)
        self.obs, _ = self.env.reset(seed=seed)
        self.actor.reset()
        self.num_envs = num_envs
        self.parts = dict(act=0.0, env=0.0, observe=0.0, adder=0.0)

    def run(self, steps: int) -> tuple[float, float]:
        """Env steps/s over ``steps`` vector steps: wall clock and CPU time of this process."""
        wall, cpu = time.perf_counter(), time.process_time()
        obs, actor, adder, env = self.obs, self.actor, self.adder, self.env
        for _ in range(steps):
            action, state = actor.select_actions(obs)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            adder.add(obs, action, reward, terminated, truncated, state)
            actor.observe(action, reward, terminated, truncated)
            obs = next_obs
        self.obs = obs
        return (self.num_envs * steps / (time.perf_counter() - wall),
                self.num_envs * steps / max(time.process_time() - cpu, 1e-9))

    def run_timed(self, steps: int) -> float:
        """:meth:`run` with each part's seconds added to ``parts``; env steps/s (wall clock)."""
        obs, actor, adder, env, parts = self.obs, self.actor, self.adder, self.env, self.parts
        start = time.perf_counter()
        for _ in range(steps):
            t0 = time.perf_counter()
            action, state = actor.select_actions(obs)
            t1 = time.perf_counter()
            next_obs, reward, terminated, truncated, _ = env.step(action)
            t2 = time.perf_counter()
            actor.observe(action, reward, terminated, truncated)
            t3 = time.perf_counter()
            adder.add(obs, action, reward, terminated, truncated, state)
            t4 = time.perf_counter()
            parts["act"] += t1 - t0
            parts["env"] += t2 - t1
            parts["observe"] += t3 - t2
            parts["adder"] += t4 - t3
            obs = next_obs
        self.obs = obs
        return self.num_envs * steps / (time.perf_counter() - start)


def actor_steps_per_second(env_id: str, num_envs: int, steps: int, network_config: QNetworkConfig,
                           seed: int = 0, warmup: int = 20, profile: bool = False) -> dict[str, float]:
    """Env steps/s of the acting loop; with ``profile``, also milliseconds per vector step
    of each part (``ms_act``, ``ms_env``, ``ms_observe``, ``ms_adder``)."""
    loop = ActingLoop(network_config, env_id, num_envs, seed)
    loop.run(warmup)  # the first call traces the tf.function
    rate = loop.run_timed(steps) if profile else loop.run(steps)[0]
    loop.env.close()
    out = {"steps_per_s": rate, "items": float(loop.adder.num_emitted), "traces": float(loop.actor.num_traces)}
    if profile:
        out.update({f"ms_{k}": 1e3 * v / steps for k, v in loop.parts.items()})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", default=envs.TMAZE_ID)
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--steps", type=int, default=1000, help="timed vector steps per setting")
    parser.add_argument("--lstm-units", type=int, default=64)
    parser.add_argument("--mlp-units", type=int, nargs="*", default=[64])
    parser.add_argument("--head-units", type=int, default=64)
    parser.add_argument("--profile", action="store_true", help="also time each part of a step")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    description = envs.describe_env(envs.make_vector_env(args.env_id, 1))
    network_config = QNetworkConfig(
        observation_shape=description.obs_shape,
        num_actions=description.num_actions,
        mlp_units=tuple(args.mlp_units),
        lstm_units=(args.lstm_units,),
        head_units=args.head_units,
    )
    print(f"{args.env_id}: LSTM {args.lstm_units}, mlp {tuple(args.mlp_units)}, head {args.head_units}; "
          f"{args.steps} vector steps per row; load average {os.getloadavg()[0]:.2f} (before)")
    header = f"{'envs':>5} {'raw steps/s':>12} {'actor steps/s':>14} {'actor/raw time':>15}"
    if args.profile:
        header += "   ms per vector step: act / env / observe / adder"
    print(header)
    result: dict[str, float] = {}
    for n in args.num_envs:
        raw = steps_per_second(args.env_id, n, args.steps, vectorization="auto", seed=args.seed)  # the actor's env
        acting = actor_steps_per_second(args.env_id, n, args.steps, network_config,
                                        seed=args.seed, profile=args.profile)
        ratio = raw / acting["steps_per_s"]
        line = f"{n:>5} {raw:>12,.0f} {acting['steps_per_s']:>14,.0f} {ratio:>15.1f}"
        if args.profile:
            line += "   " + " / ".join(f"{acting[f'ms_{k}']:.3f}" for k in ("act", "env", "observe", "adder"))
        print(line)
        result[f"actor_steps_per_s_{n}"] = round(acting["steps_per_s"], 1)
        result[f"raw_steps_per_s_{n}"] = round(raw, 1)
        result[f"actor_over_raw_time_{n}"] = round(ratio, 2)
    print_result(result)


if __name__ == "__main__":
    main()
