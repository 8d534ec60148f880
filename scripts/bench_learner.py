"""Learner steps/s: the stateful reset_states path vs the stateless path vs a naive step.

Batch 64, burn-in 40 + trace 80 + 5-step tail (L = 125), online + target networks, at
LSTM 64 and LSTM 512, all measured in the same run (ratios are what to read: the machine is
noisy), beside the naive peer (a plain Keras 3 step of that size, :func:`_naive_step_fn`),
the stateful step with the other XLA setting than the default, and the floors of the step's
arithmetic (:func:`_floor_seconds`, :func:`_chained_floor_seconds`, :func:`_gates_seconds`,
:func:`_op_seconds`).

The learner steps run in one process per LSTM size with TensorFlow's thread pools as
training sizes them (``--pools auto``, ``TrainConfig.tf_threads``), the floors in another
with the default pools, which give the best matmul rate.

With ``--base REV`` it times instead, in this process and round by round, the same stateful
learner with the revision's LSTM layer (``MaskAwareLSTM`` of its ``r2d2_state/networks.py``)
or this tree's ``FusedLSTM``, each with ``jit_compile`` off and on (ratios: medians of paired
rounds, of wall time and of this process's CPU time).

Usage:
    python scripts/bench_learner.py                 # both sizes (LSTM 512 takes ~1 min)
    python scripts/bench_learner.py --units 64 --steps 20
    python scripts/bench_learner.py --base 87a61ec --units 64 --steps 5 --rounds 7
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from bench_common import paired_ratio, print_result, revision_module, run_part  # noqa: E402  (scripts/ is on sys.path)


def _time_steps(fn, steps: int, repeats: int = 3) -> float:
    """Best-of-``repeats`` mean seconds per call over ``steps`` calls."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def _naive_step_fn(config, network_config):
    """A straightforward Keras 3 R2D2-sized step: no burn-in split, no masking, 1-step TD."""
    import keras
    import tensorflow as tf

    def build():
        obs = keras.Input((None,) + network_config.observation_shape)
        x = keras.layers.Dense(network_config.mlp_units[0], activation="relu")(obs)
        for units in network_config.lstm_units:
            x = keras.layers.LSTM(units, return_sequences=True)(x)
        x = keras.layers.Dense(network_config.head_units, activation="relu")(x)
        return keras.Model(obs, keras.layers.Dense(network_config.num_actions)(x))

    online, target = build(), build()
    optimizer = keras.optimizers.Adam(config.learning_rate)
    rng = np.random.default_rng(0)
    shape = (config.batch_size, config.sequence_length) + network_config.observation_shape
    obs = tf.constant(rng.normal(size=shape).astype(np.float32))
    action = tf.constant(rng.integers(0, network_config.num_actions, shape[:2]).astype(np.int32))
    reward = tf.constant(rng.normal(size=shape[:2]).astype(np.float32))

    @tf.function
    def step():
        q_next = target(obs)
        with tf.GradientTape() as tape:
            q = online(obs)
            q_taken = tf.gather(q, action, batch_dims=2)[:, :-1]
            y = reward[:, :-1] + config.discount * tf.reduce_max(q_next, -1)[:, 1:]
            loss = tf.reduce_mean(tf.square(tf.stop_gradient(y) - q_taken))
        grads = tape.gradient(loss, online.trainable_variables)
        optimizer.apply(grads, online.trainable_variables)
        return loss

    return step


def _floor_seconds(config, network_config, feature_dim: int, repeats: int = 3) -> float:
    """Time of the step's LSTM matrix arithmetic at this machine's best matmul rate.

    The step does one [B, in + units] x [in + units, 4 units] matmul per LSTM step for
    the online and target forward passes (L steps each) and two per trained step in the
    backward pass (dX and dW): 2 L + 2 T matmuls. The floor runs the same FLOPs as one
    large TensorFlow matmul (numpy's BLAS threads would fight TF's thread pool here).
    """
    import tensorflow as tf

    b, units = config.batch_size, network_config.lstm_units[0]
    count = 2 * config.sequence_length + 2 * config.trace_length
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(count * b, feature_dim + units)).astype(np.float32))
    w = tf.constant(rng.normal(size=(feature_dim + units, 4 * units)).astype(np.float32))
    matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(x, w)))
    matmul()
    return _time_steps(lambda: matmul().numpy(), 5, repeats)


def _chained_floor_seconds(config, network_config, feature_dim: int, repeats: int = 3) -> float:
    """The floor's matmuls run as a recurrence runs them: each on the previous one's output.

    Same count and FLOPs as :func:`_floor_seconds` (every matmul B x (in + units) x 4 units),
    alternating [B, in + units] @ [in + units, 4 units] and [B, 4 units] @ [4 units, in + units]
    so that no other op is needed between them. What it adds to the floor is what any
    step-by-step unroll pays before its first elementwise op: small matmuls one at a time.
    """
    import tensorflow as tf

    b, units = config.batch_size, network_config.lstm_units[0]
    count = 2 * config.sequence_length + 2 * config.trace_length
    width = feature_dim + units
    rng = np.random.default_rng(0)
    x0 = tf.constant(rng.normal(size=(b, width)).astype(np.float32))
    w1 = tf.constant((rng.normal(size=(width, 4 * units)) / np.sqrt(width)).astype(np.float32))
    w2 = tf.constant((rng.normal(size=(4 * units, width)) / np.sqrt(4 * units)).astype(np.float32))

    @tf.function
    def chain(x, w1, w2):  # arguments, not captured constants: nothing to fold
        for i in range(count):
            x = tf.matmul(x, w1 if i % 2 == 0 else w2)
        return tf.reduce_sum(x)

    chain(x0, w1, w2)
    return _time_steps(lambda: chain(x0, w1, w2).numpy(), 3, repeats)


def _gates_seconds(config, network_config, repeats: int = 3) -> float:
    """The recurrence's elementwise arithmetic alone, without a matmul: the fused cell's
    gate activations and state update (``r2d2_state.lstm``) for 2 L forward steps and
    their derivative for T backward steps, on [B, 4 units], chained step to step.

    A recurrence pays this on top of the chained floor: it grows as B x units per step,
    the matmul as B x units^2, so at small widths it is a large share of the step. The
    stand-in for each step's matmul is a concat / slice (one op), so this is an upper
    bound by one cheap op per step.
    """
    import tensorflow as tf

    b, units = config.batch_size, network_config.lstm_units[0]
    forward, backward = 2 * config.sequence_length, config.trace_length
    rng = np.random.default_rng(0)
    z0 = tf.constant(rng.normal(size=(b, 4 * units)).astype(np.float32))
    c0 = tf.constant(rng.normal(size=(b, units)).astype(np.float32))

    @tf.function
    def chain(z, c, acts, cs):  # arguments, not captured constants: nothing to fold
        for _ in range(forward):
            a = tf.sigmoid(z)
            i, f, o, s = tf.split(a, 4, axis=-1)
            c = f * c + i * (2.0 * s - 1.0)
            h = o * tf.tanh(c)
            z = tf.concat([h, h, h, h], axis=-1)
        dh, dc = h, c
        i, f, o, s = tf.split(acts, 4, axis=-1)
        for _ in range(backward):
            dh = dh + cs
            tc = tf.tanh(cs)
            dc = dc + dh * o * (1.0 - tc * tc)
            dz = tf.concat([dc * (2.0 * s - 1.0), dc * cs, dh * tc, dc * i * 2.0], axis=-1) * acts * (1.0 - acts)
            dh = dz[:, :units]
            dc = dc * f
        return tf.reduce_sum(dh) + tf.reduce_sum(dc)

    args = (z0, c0, tf.sigmoid(z0), c0)
    chain(*args)
    return _time_steps(lambda: chain(*args).numpy(), 3, repeats)


def _op_seconds(config, network_config, repeats: int = 3, ops: int = 1000) -> float:
    """TensorFlow's cost per op in a graph: a chain of ``ops`` adds on one [B, 4 units] tensor."""
    import tensorflow as tf

    x0 = tf.constant(np.zeros((config.batch_size, 4 * network_config.lstm_units[0]), np.float32))
    one = tf.constant(1.0)

    @tf.function
    def chain(x, step):  # arguments, not captured constants: Grappler would fold the chain
        for _ in range(ops):
            x = x + step
        return tf.reduce_sum(x)

    chain(x0, one)
    return _time_steps(lambda: chain(x0, one).numpy(), 3, repeats) / ops


def paper_configs(units: int):
    """``(R2D2Config, QNetworkConfig)`` of the benchmarks' learner step: batch 64, 40 + 80 + 5,
    LSTM ``units``, 4 observation features and 4 actions."""
    from agents.r2d2.config import R2D2Config
    from r2d2_state.networks import QNetworkConfig

    architecture = QNetworkConfig(mlp_units=(64,), lstm_units=(units,), head_units=units)
    return R2D2Config(network=architecture), architecture.for_env(observation_shape=(4,), num_actions=4)


def measure_steps(units: int, steps: int, quick: bool = False, pools: str = "auto") -> dict[str, float]:
    """The learner steps, in this (fresh) process; ``pools`` "auto": TensorFlow's thread
    pools as training sizes them (``TrainConfig.tf_threads`` 0), "default": TensorFlow's."""
    from agents.r2d2.tf_runtime import configure_tf_threads

    config, network_config = paper_configs(units)
    intra, inter = configure_tf_threads(0, network_config, xla=config.xla) if pools == "auto" else (0, 0)
    import keras

    from agents.r2d2.learner import R2D2Learner
    from agents.r2d2.synthetic import random_batch

    keras.utils.set_random_seed(0)
    data, weights = random_batch(config, network_config)
    learners = {core: R2D2Learner(config, network_config, core=core) for core in ("stateful", "stateless")}
    # The stateful step with the other XLA setting than the default, for the XLA ratio.
    learners["stateful_other_jit"] = R2D2Learner(config.replace(jit_compile=not config.xla), network_config)
    calls = {core: (lambda l=l: l.step(data, weights)) for core, l in learners.items()}
    calls["naive"] = _naive_step_fn(config, network_config)
    for call in calls.values():
        call()  # trace
    # Interleave the variants round by round and keep each one's best round, so that load
    # from other processes hits all of them alike.
    results = {name: float("inf") for name in calls}
    paired, paired_xla = [], []
    for _ in range(3 if quick else 7):
        times = {name: _time_steps(call, steps, 1) for name, call in calls.items()}
        for name, seconds in times.items():
            results[name] = min(results[name], seconds)
        paired.append(times["stateful"] / times["stateless"])
        xla, plain = ((times["stateful"], times["stateful_other_jit"]) if config.xla
                      else (times["stateful_other_jit"], times["stateful"]))
        paired_xla.append(xla / plain)
    # The ratio is the median of back-to-back pairs: robust to the machine's drift.
    results["stateful_over_stateless"] = float(np.median(paired))
    results["xla_over_no_xla"] = float(np.median(paired_xla))
    for core, learner in learners.items():
        if learner.trace_count != 1:
            raise RuntimeError(f"{core} learner step retraced: {learner.trace_count} traces")
    results["intra_op_threads"], results["inter_op_threads"] = intra, inter
    return results


def measure_floors(units: int, quick: bool = False) -> dict[str, float]:
    """The floors, in this (fresh) process with TensorFlow's default pools: the best matmul
    rate of the machine."""
    config, network_config = paper_configs(units)
    results = {}
    feature_dim = network_config.mlp_units[0] + network_config.num_actions + 1
    # A floor is the best rate the machine gives: best of many short repeats.
    repeats = 2 if quick else (10 if units <= 128 else 3)
    results["floor"] = _floor_seconds(config, network_config, feature_dim, repeats)
    results["chained_floor"] = _chained_floor_seconds(config, network_config, feature_dim, repeats)
    results["gates"] = _gates_seconds(config, network_config, 1 if quick else 3)
    results["op"] = _op_seconds(config, network_config, 1 if quick else 3)
    return results


def compare_with_base(revision: str, units: int, steps: int, rounds: int) -> dict[str, float]:
    """``--base``: seconds per learner step with the revision's LSTM layer and this tree's,
    XLA off and on; the ratios to the revision's layer without XLA."""
    import keras

    import r2d2_state.networks as networks
    from agents.r2d2.learner import R2D2Learner
    from agents.r2d2.synthetic import random_batch

    keras.utils.set_random_seed(0)
    config, network_config = paper_configs(units)
    data, weights = random_batch(config, network_config)
    ours = networks.FusedLSTM
    calls = {}
    with tempfile.TemporaryDirectory() as directory:
        base = revision_module(revision, "r2d2_state/networks.py", directory, "base_networks")
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
    for _ in range(rounds):
        for name, call in calls.items():
            w, c = time.perf_counter(), time.process_time()
            for _ in range(steps):
                call()
            wall[name].append((time.perf_counter() - w) / steps)
            cpu[name].append((time.process_time() - c) / steps)
    result: dict[str, float] = {}
    print(f"LSTM {units}: {'variant':>10} {'wall ms':>9} {'x base':>7} {'cpu ms':>8} {'x base (cpu)':>13}")
    for name in calls:
        ratio, ratio_cpu = paired_ratio(wall[name], wall["base"]), paired_ratio(cpu[name], cpu["base"])
        print(f"{'':>9} {name:>10} {1e3 * statistics.median(wall[name]):>9.1f} {ratio:>7.3f} "
              f"{1e3 * statistics.median(cpu[name]):>8.1f} {ratio_cpu:>13.3f}")
        result[f"{name}_over_base_time_lstm{units}"] = round(ratio, 3)
        result[f"{name}_over_base_cpu_time_lstm{units}"] = round(ratio_cpu, 3)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, nargs="+", default=[64, 512], help="LSTM sizes to measure")
    parser.add_argument("--steps", type=int, default=0, help="steps per timing (0: 20 for 64, 3 for 512)")
    parser.add_argument("--quick", action="store_true", help="one timing repeat instead of three")
    parser.add_argument("--pools", choices=("auto", "default"), default="auto",
                        help="TensorFlow thread pools of the learner steps: 'auto', as training sizes them "
                             "(TrainConfig.tf_threads 0), or TensorFlow's 'default'. The floors always run with "
                             "the default pools (the machine's best matmul rate), in a process of their own")
    parser.add_argument("--base", default=None, metavar="REV", help="compare the LSTM layer with this git revision's")
    parser.add_argument("--rounds", type=int, default=7, help="with --base: interleaved rounds per variant")
    parser.add_argument("--_part", nargs=2, metavar=("PART", "UNITS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, root)
    if args.base is not None:
        from agents.r2d2.tf_runtime import import_tensorflow_quietly

        import_tensorflow_quietly()  # no CUDA-probe noise on a CPU-only machine
        print_result({k: v for units in args.units for k, v in
                      compare_with_base(args.base, units, args.steps or 5, args.rounds).items()})
        return 0
    if args._part:
        from agents.r2d2.tf_runtime import import_tensorflow_quietly

        import_tensorflow_quietly()  # no CUDA-probe noise on a CPU-only machine
        part, units = args._part[0], int(args._part[1])
        steps = args.steps or (10 if units <= 128 else 2)
        out = (measure_steps(units, steps, args.quick, args.pools) if part == "steps"
               else measure_floors(units, args.quick))
        print(json.dumps(out))
        return 0

    def measure(part: str, units: int) -> dict[str, float]:
        return run_part(__file__, "--_part", part, str(units), "--steps", str(args.steps), "--pools", args.pools,
                        *(["--quick"] if args.quick else []))

    summary: dict[str, float] = {}
    print(f"{'lstm':>5} {'stateful ms':>12} {'stateless ms':>13} {'naive ms':>9} {'floor ms':>9} "
          f"{'steps/s':>8} {'stateful/stateless':>19} {'vs naive':>9} {'vs floor':>9}")
    for units in args.units:
        # The floors' processes differ by up to 1.4x in matmul rate (thread placement):
        # the best of two processes.
        floors = [measure("floors", units) for _ in range(2)]
        r = {**measure("steps", units), **{key: min(f[key] for f in floors) for key in floors[0]}}
        ratio = r["stateful_over_stateless"]
        pools = f"{r['intra_op_threads']}x{r['inter_op_threads']}" if r["intra_op_threads"] else "default"
        print(f"      TensorFlow pools of the steps (threads within an op x ops at once): {pools}")
        print(f"      XLA / no XLA (stateful, median of paired rounds): {r['xla_over_no_xla']:.3f}")
        print(f"      chained floor (the floor's matmuls one after another): {r['chained_floor'] * 1e3:.1f} ms "
              f"({r['chained_floor'] / r['floor']:.2f}x the floor; the stateful step is "
              f"{r['stateful'] / r['chained_floor']:.2f}x it); cost per graph op: {r['op'] * 1e6:.1f} us")
        arithmetic = r["chained_floor"] + r["gates"]
        print(f"      gate arithmetic (the cells' elementwise ops, no matmul): {r['gates'] * 1e3:.1f} ms "
              f"({r['gates'] / r['floor']:.2f}x the floor); chained floor + gates {arithmetic * 1e3:.1f} ms "
              f"({arithmetic / r['floor']:.2f}x the floor; the stateful step is {r['stateful'] / arithmetic:.2f}x it)")
        print(f"{units:>5} {r['stateful'] * 1e3:>12.1f} {r['stateless'] * 1e3:>13.1f} {r['naive'] * 1e3:>9.1f} "
              f"{r['floor'] * 1e3:>9.1f} {1 / r['stateful']:>8.2f} {ratio:>19.3f} "
              f"{r['stateful'] / r['naive']:>9.2f} {r['stateful'] / r['floor']:>9.2f}", flush=True)
        summary[f"steps_per_s_lstm{units}"] = round(1.0 / r["stateful"], 3)
        summary[f"stateless_steps_per_s_lstm{units}"] = round(1.0 / r["stateless"], 3)
        summary[f"naive_steps_per_s_lstm{units}"] = round(1.0 / r["naive"], 3)
        summary[f"stateful_over_naive_time_lstm{units}"] = round(r["stateful"] / r["naive"], 3)
        summary[f"stateful_over_floor_time_lstm{units}"] = round(r["stateful"] / r["floor"], 3)
        summary[f"stateful_over_stateless_time_lstm{units}"] = round(ratio, 3)
        summary[f"xla_over_no_xla_time_lstm{units}"] = round(r["xla_over_no_xla"], 3)
        summary[f"floor_ms_lstm{units}"] = round(r["floor"] * 1e3, 3)
        summary[f"chained_floor_ms_lstm{units}"] = round(r["chained_floor"] * 1e3, 3)
        summary[f"chained_floor_over_floor_lstm{units}"] = round(r["chained_floor"] / r["floor"], 3)
        summary[f"stateful_over_chained_floor_time_lstm{units}"] = round(r["stateful"] / r["chained_floor"], 3)
        summary[f"op_us_lstm{units}"] = round(r["op"] * 1e6, 2)
        summary[f"intra_op_threads_lstm{units}"] = r["intra_op_threads"]
        summary[f"inter_op_threads_lstm{units}"] = r["inter_op_threads"]
        summary[f"gates_ms_lstm{units}"] = round(r["gates"] * 1e3, 3)
        summary[f"gates_over_floor_lstm{units}"] = round(r["gates"] / r["floor"], 3)
        summary[f"stateful_over_chained_floor_and_gates_time_lstm{units}"] = round(
            r["stateful"] / (r["chained_floor"] + r["gates"]), 3)
    ratios = [v for k, v in summary.items() if k.startswith("stateful_over_stateless_time_")]
    summary["stateful_over_stateless_time"] = round(max(ratios), 3)
    print_result(summary, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
