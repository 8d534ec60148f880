"""Acting-loop speed: env steps/s of what the training loop does per step, minus learning.

    python scripts/bench_actor.py                         # 1, 8 and 32 T-maze envs
    python scripts/bench_actor.py --num-envs 32 --steps 2000 --profile
    python scripts/bench_actor.py --base 87a61ec --num-envs 8 32 --steps 300   # against a git revision

One vector step of the acting loop = ``select_actions`` (one tf.function call: row
resets, state read, one LSTM step) + epsilon-greedy + ``env.step`` + ``actor.observe`` +
``SequenceAdder.add`` into a ``SequenceReplay``. Raw = ``env.step`` with random actions
in the same run. Prints a table, then one JSON line.

With ``--base REV`` the revision's ``agents/r2d2/actor.py``, ``r2d2_state/networks.py`` and
``r2d2_state/replay/adder.py`` are loaded from git next to the current ones, and both loops
run ``--rounds`` rounds of ``--steps`` vector steps in one process, interleaved (ratios:
medians of paired rounds). Variants of this tree: ``now`` (``backend="auto"``: the numpy step
for this vector torso), ``now_tf`` (the TensorFlow graph step) and ``now_xla`` (the graph
step with ``jit_compile=True``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from agents.r2d2.tf_runtime import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()  # no CUDA-probe noise on a CPU-only machine

import numpy as np  # noqa: E402

import envs  # noqa: E402
from bench_common import paired_ratio, print_result, revision_module  # noqa: E402  (scripts/ is on sys.path)
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


def load_base(revision: str, directory: str) -> dict[str, types.ModuleType]:
    """The base revision's networks, adder and actor modules (the actor built on that networks)."""
    networks = revision_module(revision, "r2d2_state/networks.py", directory, "base_networks")
    # An adder from before the step store imports the replay from its old module.
    old_replay = {} if "r2d2_state.replay.buffer" in sys.modules else {
        "r2d2_state.replay.buffer": types.SimpleNamespace(SequenceReplay=SequenceReplay)}
    adder = revision_module(revision, "r2d2_state/replay/adder.py", directory, "base_adder", old_replay)
    actor = revision_module(revision, "agents/r2d2/actor.py", directory, "base_actor",
                            {"r2d2_state.networks": networks, **old_replay})
    return {"networks": networks, "adder": adder, "actor": actor}


def compare_with_base(args: argparse.Namespace, network_config: QNetworkConfig) -> dict[str, float]:
    """``--base``: this tree's acting loops against the revision's, round by round."""
    result: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as directory:
        base = load_base(args.base, directory)
        # The revision's QNetworkConfig may lack newer fields; they keep their defaults here.
        base_fields = {f.name for f in dataclasses.fields(base["networks"].QNetworkConfig)}
        base_config = base["networks"].QNetworkConfig(
            **{k: v for k, v in vars(network_config).items() if k in base_fields})
        print(f"{'envs':>5} {'variant':>8} {'steps/s':>10} {'x base (wall)':>14} {'x base (cpu)':>13}")
        for n in args.num_envs:
            loops = {"base": ActingLoop(base_config, args.env_id, n, actor_cls=base["actor"].R2D2Actor,
                                        adder_cls=base["adder"].SequenceAdder),
                     "now": ActingLoop(network_config, args.env_id, n),
                     "now_tf": ActingLoop(network_config, args.env_id, n, backend="tf"),
                     "now_xla": ActingLoop(network_config, args.env_id, n, jit_compile=True)}
            for loop in loops.values():
                loop.run(20)  # trace
            rates = {name: [] for name in loops}
            for _ in range(args.rounds):
                for name, loop in loops.items():
                    rates[name].append(loop.run(args.steps))
            for name, values in rates.items():
                (wall, cpu), (base_wall, base_cpu) = zip(*values), zip(*rates["base"])
                speedup, speedup_cpu = paired_ratio(wall, base_wall), paired_ratio(cpu, base_cpu)
                print(f"{n:>5} {name:>8} {np.median(wall):>10,.0f} {speedup:>14.2f} {speedup_cpu:>13.2f}")
                result[f"{name}_steps_per_s_{n}"] = round(float(np.median(wall)), 1)
                result[f"{name}_over_base_{n}"] = round(speedup, 3)
                result[f"{name}_over_base_cpu_{n}"] = round(speedup_cpu, 3)
            for loop in loops.values():
                loop.env.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", default=envs.TMAZE_ID)
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--steps", type=int, default=1000, help="timed vector steps per setting (per round with --base)")
    parser.add_argument("--lstm-units", type=int, default=64)
    parser.add_argument("--mlp-units", type=int, nargs="*", default=[64])
    parser.add_argument("--head-units", type=int, default=64)
    parser.add_argument("--profile", action="store_true", help="also time each part of a step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base", default=None, metavar="REV", help="compare with this git revision's acting loop")
    parser.add_argument("--rounds", type=int, default=7, help="with --base: interleaved rounds per variant")
    args = parser.parse_args()

    description = envs.describe_env(envs.make_vector_env(args.env_id, 1))
    network_config = QNetworkConfig(
        observation_shape=description.obs_shape,
        num_actions=description.num_actions,
        mlp_units=tuple(args.mlp_units),
        lstm_units=(args.lstm_units,),
        head_units=args.head_units,
    )
    if args.base is not None:
        print_result(compare_with_base(args, network_config))
        return
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
