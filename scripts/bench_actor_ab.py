"""Acting loop of this tree vs a git revision's, interleaved in one process.

    python scripts/bench_actor_ab.py --base 87a61ec --num-envs 8 32

The base revision's ``agents/r2d2/actor.py``, ``r2d2_state/networks.py`` and
``r2d2_state/replay/adder.py`` are loaded from git next to the current ones; both run
``bench_actor.py``'s loop round by round on their own T-maze vector env (ratios: medians of
paired rounds). Variants of this tree: ``now`` (the default, ``backend="auto"``: the numpy
step for this vector torso), ``now_tf`` (the TensorFlow graph step) and ``now_xla`` (the
graph step with ``jit_compile=True``). Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from bench_actor import ActingLoop  # noqa: E402  (scripts/ is on sys.path; quiets TensorFlow's import)
from bench_common import paired_ratio, print_result, revision_module  # noqa: E402
import envs  # noqa: E402
from r2d2_state.networks import QNetworkConfig  # noqa: E402
from r2d2_state.replay import SequenceReplay  # noqa: E402


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
    print_result(result)


if __name__ == "__main__":
    main()
