"""Learner step with this tree's LSTM layer vs a git revision's, XLA on and off, interleaved.

    python scripts/bench_learner_ab.py --base 87a61ec --units 64 --steps 5 --rounds 7

Builds the same ``R2D2Learner`` (stateful core, batch 64, 40 + 80 + 5) with the base
revision's LSTM layer (``MaskAwareLSTM`` of its ``r2d2_state/networks.py``) or this tree's
``FusedLSTM``, each with ``jit_compile`` off and on, and times them round by round (ratios:
medians of paired rounds, of wall time and of this process's CPU time). Prints one JSON
line last.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench_common import ROOT, paired_ratio, print_result, revision_module  # noqa: E402  (scripts/ is on sys.path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="87a61ec")
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="learner steps per round and variant")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    from agents.r2d2.tf_runtime import import_tensorflow_quietly

    import_tensorflow_quietly()  # no CUDA-probe noise on a CPU-only machine

    import keras

    import r2d2_state.networks as networks
    from agents.r2d2.learner import R2D2Learner
    from agents.r2d2.synthetic import random_batch
    from bench_learner import paper_configs

    keras.utils.set_random_seed(0)
    config, network_config = paper_configs(args.units)
    data, weights = random_batch(config, network_config)
    ours = networks.FusedLSTM
    calls = {}
    with tempfile.TemporaryDirectory() as directory:
        base = revision_module(args.base, "r2d2_state/networks.py", directory, "base_networks")
        layers = {"base": getattr(base, "MaskAwareLSTM", None) or base.FusedLSTM, "fused": ours}
        for layer_name, layer in layers.items():
            for jit in (False, True):
                networks.FusedLSTM = layer  # what build_q_network instantiates
                try:
                    learner = R2D2Learner(config.replace(jit_compile=jit), network_config)
                finally:
                    networks.FusedLSTM = ours
                name = f"{layer_name}{'_xla' if jit else ''}"
                calls[name] = lambda learner=learner: learner.step(data, weights)
                calls[name]()  # trace (and compile)
    wall = {name: [] for name in calls}
    cpu = {name: [] for name in calls}
    for _ in range(args.rounds):
        for name, call in calls.items():
            w, c = time.perf_counter(), time.process_time()
            for _ in range(args.steps):
                call()
            wall[name].append((time.perf_counter() - w) / args.steps)
            cpu[name].append((time.process_time() - c) / args.steps)
    result: dict[str, float] = {}
    print(f"LSTM {args.units}: {'variant':>10} {'wall ms':>9} {'x base':>7} {'cpu ms':>8} {'x base (cpu)':>13}")
    for name in calls:
        ratio, ratio_cpu = paired_ratio(wall[name], wall["base"]), paired_ratio(cpu[name], cpu["base"])
        print(f"{'':>9} {name:>10} {1e3 * statistics.median(wall[name]):>9.1f} {ratio:>7.3f} "
              f"{1e3 * statistics.median(cpu[name]):>8.1f} {ratio_cpu:>13.3f}")
        result[f"{name}_over_base_time_lstm{args.units}"] = round(ratio, 3)
        result[f"{name}_over_base_cpu_time_lstm{args.units}"] = round(ratio_cpu, 3)
    print_result(result)


if __name__ == "__main__":
    main()
