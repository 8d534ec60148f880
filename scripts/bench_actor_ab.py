"""Acting loop of this tree vs a git revision's, interleaved in one process.

    python scripts/bench_actor_ab.py --base 87a61ec --num-envs 8 32

The base revision's ``agents/r2d2/actor.py``, ``r2d2_state/networks.py`` and
``r2d2_state/replay/adder.py`` are loaded from git next to the current ones; both loops
(``select_actions`` + ``env.step`` + ``adder.add`` + ``observe``, as in
``bench_actor.py``) run round by round on their own T-maze vector env, and the ratio
is the median of the rounds' paired ratios, which survives a loaded machine better
than absolute times. Variants of this tree: ``now`` (the default, ``backend="auto"``:
the numpy step for this vector torso), ``now_tf`` (the TensorFlow graph step) and
``now_xla`` (the graph step with ``jit_compile=True``). Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import subprocess
import types
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from agents.r2d2.tf_runtime import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()  # no CUDA-probe noise on a CPU-only machine

import envs  # noqa: E402
from agents.r2d2.actor import R2D2Actor  # noqa: E402
from agents.r2d2.config import actor_epsilons  # noqa: E402
from r2d2_state.networks import QNetworkConfig  # noqa: E402
from r2d2_state.replay.adder import SequenceAdder  # noqa: E402
from r2d2_state.replay import SequenceReplay  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE_FILES = {"networks": "r2d2_state/networks.py", "adder": "r2d2_state/replay/adder.py",
              "actor": "agents/r2d2/actor.py"}


def load_base(revision: str, directory: str) -> dict:
    """The base revision's networks, adder and actor modules (the actor built on that networks)."""
    modules = {}
    for key, path in BASE_FILES.items():
        source = subprocess.run(["git", "-C", ROOT, "show", f"{revision}:{path}"], check=True,
                                capture_output=True, text=True).stdout
        file = os.path.join(directory, f"base_{key}.py")
        with open(file, "w") as handle:
            handle.write(source)
        spec = importlib.util.spec_from_file_location(f"base_{key}", file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        saved = sys.modules.get("r2d2_state.networks")
        if key == "adder" and "r2d2_state.replay.buffer" not in sys.modules:
            # An adder from before the step store imports the replay from its old module.
            sys.modules["r2d2_state.replay.buffer"] = types.SimpleNamespace(SequenceReplay=SequenceReplay)
        if key == "actor":  # its `from r2d2_state.networks import ...` gets the base networks
            sys.modules["r2d2_state.networks"] = modules["networks"]
        try:
            spec.loader.exec_module(module)
        finally:
            sys.modules["r2d2_state.networks"] = saved
        modules[key] = module
    return modules


class Loop:
    """One acting loop: its own vector env, actor, replay and adder."""

    def __init__(self, actor_cls, adder_cls, network_config, env_id: str, n: int, seed: int = 0, **actor_kwargs):
        self.env = envs.make_vector_env(env_id, n, seed=seed)
        self.actor = actor_cls(network_config, n, actor_epsilons(n, 0.4, 7.0), seed=seed, **actor_kwargs)
        self.adder = adder_cls(SequenceReplay(capacity=10_000, seed=seed), n, 40, 80, 40, 5)
        self.obs, _ = self.env.reset(seed=seed)
        self.actor.reset()
        self.n = n

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
        return (self.n * steps / (time.perf_counter() - wall),
                self.n * steps / max(time.process_time() - cpu, 1e-9))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="87a61ec", help="git revision to compare with")
    parser.add_argument("--env-id", default=envs.TMAZE_ID)
    parser.add_argument("--num-envs", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--steps", type=int, default=300, help="vector steps per round and variant")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--lstm-units", type=int, default=64)
    args = parser.parse_args()

    description = envs.describe_env(envs.make_vector_env(args.env_id, 1))
    network_config = QNetworkConfig(observation_shape=description.obs_shape, num_actions=description.num_actions,
                                    mlp_units=(64,), lstm_units=(args.lstm_units,), head_units=64)
    result: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as directory:
        base = load_base(args.base, directory)
        # The revision's QNetworkConfig may lack newer fields; they keep their defaults here.
        base_fields = {f.name for f in dataclasses.fields(base["networks"].QNetworkConfig)}
        base_config = base["networks"].QNetworkConfig(
            **{k: v for k, v in vars(network_config).items() if k in base_fields})
        print(f"{'envs':>5} {'variant':>8} {'steps/s':>10} {'x base (wall)':>14} {'x base (cpu)':>13}")
        for n in args.num_envs:
            loops = {"base": Loop(base["actor"].R2D2Actor, base["adder"].SequenceAdder, base_config, args.env_id, n),
                     "now": Loop(R2D2Actor, SequenceAdder, network_config, args.env_id, n),
                     "now_tf": Loop(R2D2Actor, SequenceAdder, network_config, args.env_id, n, backend="tf"),
                     "now_xla": Loop(R2D2Actor, SequenceAdder, network_config, args.env_id, n, jit_compile=True)}
            for loop in loops.values():
                loop.run(20)  # trace
            rates = {name: [] for name in loops}
            for _ in range(args.rounds):
                for name, loop in loops.items():
                    rates[name].append(loop.run(args.steps))
            for name, values in rates.items():
                wall = np.array([w for w, _ in values])
                cpu = np.array([c for _, c in values])
                base_wall = np.array([w for w, _ in rates["base"]])
                base_cpu = np.array([c for _, c in rates["base"]])
                speedup, speedup_cpu = float(np.median(wall / base_wall)), float(np.median(cpu / base_cpu))
                print(f"{n:>5} {name:>8} {np.median(wall):>10,.0f} {speedup:>14.2f} {speedup_cpu:>13.2f}")
                result[f"{name}_steps_per_s_{n}"] = round(float(np.median(wall)), 1)
                result[f"{name}_over_base_{n}"] = round(speedup, 3)
                result[f"{name}_over_base_cpu_{n}"] = round(speedup_cpu, 3)
            for loop in loops.values():
                loop.env.close()
    result["load_average_1min"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
