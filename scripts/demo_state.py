"""Save, restore and burn in a recurrent state on a stateful Keras 3 Q-network.

What R2D2's replay relies on, shown with numbers:

1. an actor network (batch = 4 envs) steps through a stream of observations;
   at step k its (h, c) is saved with ``get_states``;
2. restoring that snapshot with ``reset_states`` reproduces the Q-values of
   the continuous run exactly;
3. a learner network of another batch size receives the weights and restores
   the snapshot too: same Q-values;
4. staleness: once the learner's weights have moved on, both a zero start and
   the stored (stale) start give wrong Q-values; a burn-in prefix shrinks the
   error, and from the stored start it shrinks faster (the paper's section 3).

Usage: python scripts/demo_state.py [--steps 60] [--units 64]
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from agents.r2d2.tf_runtime import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()  # no CUDA-probe noise on a CPU-only machine

from r2d2_state.networks import QNetworkConfig, build_q_network  # noqa: E402
from r2d2_state.state import get_states, reset_states  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60, help="length of the observation stream")
    parser.add_argument("--units", type=int, default=64, help="LSTM units")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps < 20:
        parser.error(f"--steps must be >= 20, got {args.steps}")

    import keras

    keras.utils.set_random_seed(args.seed)
    num_envs, obs_dim, num_actions = 4, 6, 3
    config = QNetworkConfig(observation_shape=(obs_dim,), num_actions=num_actions,
                            mlp_units=(64,), lstm_units=(args.units,), head_units=64)
    actor = build_q_network(config, stateful=True, batch_size=num_envs, name="actor")
    learner = build_q_network(config, stateful=True, batch_size=1, name="learner")
    # Larger recurrent weights make the state matter for longer (a trained LSTM's memory).
    actor.get_layer("lstm_0").cell.recurrent_kernel.assign(
        actor.get_layer("lstm_0").cell.recurrent_kernel * 2.0)
    learner.set_weights(actor.get_weights())

    rng = np.random.default_rng(args.seed)
    stream = {
        "observation": rng.normal(size=(num_envs, args.steps, obs_dim)).astype(np.float32),
        "prev_action": rng.integers(0, num_actions, size=(num_envs, args.steps)).astype(np.int32),
        "prev_reward": rng.normal(size=(num_envs, args.steps)).astype(np.float32),
        "valid": np.ones((num_envs, args.steps), np.float32),
    }
    window = lambda start, stop, rows=slice(None): {k: v[rows, start:stop] for k, v in stream.items()}

    # 1. The actor steps one observation at a time, recording the state before each step.
    reset_states(actor)
    recorded, q_actor = [], []
    for t in range(args.steps):
        recorded.append(get_states(actor))
        q_actor.append(np.asarray(actor(window(t, t + 1)))[:, 0])
    q_actor = np.stack(q_actor, axis=1)  # [envs, steps, actions]
    k = args.steps // 2
    print(f"actor: {num_envs} envs x {args.steps} steps, LSTM {args.units}; snapshot saved before step {k}")

    # 2. Restore the snapshot into the actor and replay the second half in one call.
    reset_states(actor, recorded[k])
    q_restored = np.asarray(actor(window(k, args.steps)))
    err = np.abs(q_restored - q_actor[:, k:]).max()
    print(f"restore into the actor, unroll steps {k}..{args.steps - 1} at once: max |dQ| = {err:.2e}")

    # 3. A learner network of batch 1 with the same weights restores env 2's row.
    row = 2
    reset_states(learner, [[s[row:row + 1] for s in layer] for layer in recorded[k]])
    q_learner = np.asarray(learner(window(k, args.steps, slice(row, row + 1))))
    err_learner = np.abs(q_learner[0] - q_actor[row, k:]).max()
    print(f"restore env {row}'s row into a batch-1 learner net:                 max |dQ| = {err_learner:.2e}")

    # 4. Staleness: the learner's weights have moved on since the actor recorded the
    #    states. The reference is the state the *current* weights reach by unrolling
    #    from the episode start; compare a zero start and the stale stored start, each
    #    with a growing burn-in before the trained step k.
    weights = learner.get_weights()
    learner.set_weights([w + 0.01 * rng.normal(size=w.shape).astype(w.dtype) for w in weights])
    one_row = slice(row, row + 1)
    reset_states(learner)
    q_reference = np.asarray(learner(window(0, k + 1, one_row)))[0, -1]
    scale = np.abs(q_reference).max()
    print("\nweights moved on (learner = actor weights + noise);")
    print("relative Q error at the trained step k vs burn-in length:")
    print(f"  {'burn-in':>7}  {'zero start':>10}  {'stored start':>12}")
    for burn in (0, 2, 5, 10, 20):
        if burn > k:
            break
        row_errors = []
        for start_state in ("zero", "stored"):
            stored = [[s[one_row] for s in layer] for layer in recorded[k - burn]]
            reset_states(learner, None if start_state == "zero" else stored)
            q = np.asarray(learner(window(k - burn, k + 1, one_row)))[0, -1]
            row_errors.append(np.linalg.norm(q - q_reference) / scale)
        print(f"  {burn:>7}  {row_errors[0]:>10.2e}  {row_errors[1]:>12.2e}")
    ok = err < 1e-5 and err_learner < 1e-5
    print("\nrestored state reproduces the continuous run:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
