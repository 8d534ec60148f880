#!/usr/bin/env python
"""Evaluate a training run's checkpoint and draw its learning curve.

Examples::

    python scripts/evaluate.py runs/tmaze-seed0-20250101-120000
    python scripts/evaluate.py RUN_DIR --episodes 200 --epsilon 0.01 --video

Runs N episodes with a batch-1 stateful network (greedy unless ``--epsilon``), prints
``mean +- std, min, max``, writes ``RUN_DIR/eval.json`` and ``RUN_DIR/learning_curve.png``
and, with ``--video``, ``RUN_DIR/episode.gif`` if the environment renders rgb_array.
A corrupt or truncated checkpoint, an invalid config.json or environment is refused with
one ``error:`` line (exit 2). A missing or broken metrics.csv only skips the picture.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Annotated, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from agents.r2d2.tf_runtime import import_tensorflow_quietly, quiet_tensorflow  # noqa: E402

quiet_tensorflow()

import tyro  # noqa: E402

from agents.r2d2 import cli  # noqa: E402
from agents.r2d2.train_config import ConfigurationError  # noqa: E402


@dataclasses.dataclass(frozen=True)
class EvaluateArgs:
    run_dir: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="RUN_DIR")]
    """A directory written by scripts/train.py."""
    episodes: int = 100
    """Episodes to run."""
    epsilon: float = 0.0
    """Exploration rate, 0 = greedy."""
    num_envs: int = 1
    """Parallel envs (network batch); 1 = the batch-1 network."""
    checkpoint: Optional[str] = None
    """Checkpoint name (default: latest)."""
    seed: int = 12345
    """Seed of the evaluation episodes."""
    video: bool = False
    """Also write RUN_DIR/episode.gif if the env renders."""


def main(argv: list[str] | None = None) -> int:
    try:
        args = cli.parse(EvaluateArgs, sys.argv[1:] if argv is None else list(argv), description=__doc__)
    except ConfigurationError as error:
        return cli.error_exit(error)
    if args.episodes < 1:
        return cli.error_exit(f"--episodes must be >= 1, got {args.episodes!r}")
    if not 0.0 <= args.epsilon <= 1.0:
        return cli.error_exit(f"--epsilon must be in [0, 1], got {args.epsilon!r}")
    if args.num_envs < 1:
        return cli.error_exit(f"--num-envs must be >= 1, got {args.num_envs!r}")

    import_tensorflow_quietly()  # before anything imports TensorFlow: no CUDA-probe noise
    from agents.r2d2.checkpoint import CheckpointError
    from agents.r2d2.evaluation import evaluate_run

    try:
        out = evaluate_run(args.run_dir, episodes=args.episodes, epsilon=args.epsilon, num_envs=args.num_envs,
                           checkpoint=args.checkpoint, video=args.video, seed=args.seed)
    except (CheckpointError, FileNotFoundError, ConfigurationError) as error:
        return cli.error_exit(error)
    print(f"{out['env_id']} checkpoint {out['checkpoint']} ({out['env_steps']:,d} env steps): {out['summary']}")
    if out["solve_threshold"] is not None:
        print(f"solve threshold {out['solve_threshold']:g}: {'solved' if out['solved'] else 'not solved'}")
    if args.video:
        print(out["video_message"])
    print(f"eval json: {out['eval_json']}\n{out['learning_curve_message']}")
    return 0



if __name__ == "__main__":
    sys.exit(main())
