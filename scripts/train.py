#!/usr/bin/env python
"""Train R2D2 (single process, or Ray actor processes) from a preset plus flag overrides; optionally evaluate.

Examples::

    python scripts/train.py                                   # the default preset (T-maze, corridor 5)
    python scripts/train.py --preset tmaze --evaluate         # train, then evaluate: `make run`
    python scripts/train.py --preset cartpole_novel --seed 3 --r2d2.batch_size 64
    python scripts/train.py --env CartPole-v1 --total_env_steps 200000   # any env: the generic 'memory' preset
    python scripts/train.py --preset minigrid_memory             # MiniGrid-MemoryS7-v0 (pip install -e .[minigrid])
    python scripts/train.py --env minigrid:MiniGrid-MemoryS9-v0 --total_env_steps 100000
    python scripts/train.py --resume runs/tmaze-seed0-20250101-120000     # after Ctrl-C / a crash
    python scripts/train.py --backend ray --num-actors 2       # actors in 2 Ray processes (local cluster)
    python scripts/train.py --backend ray --num-actors 8 --ray-address auto   # join a running cluster

Every field of ``TrainConfig`` (``agents/r2d2/train_config.py``) is a flag, the R2D2
hyperparameters as ``--r2d2.NAME``; ``--help`` lists them with their docstrings and the
preset's values. Ctrl-C (SIGINT) or SIGTERM finish the current step, write a checkpoint
and exit 0; ``--resume RUN_DIR`` continues from the run's latest checkpoint.
"""

from __future__ import annotations

import time

PROCESS_START = time.perf_counter()  # before TensorFlow's import: solve times include start-up

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from agents.r2d2.presets import DEFAULT_PRESET, GENERIC_PRESET, PRESETS, get_preset  # noqa: E402
from agents.r2d2.train_config import (RESUME_OVERRIDABLE, ConfigurationError, TrainConfig,  # noqa: E402
                                      apply_overrides, flat_fields)
# Config fields that also get a dashed spelling (--num-actors as in the docs).
DASHED_ALIASES = {"num_actors": "--num-actors"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Presets: " + ", ".join(sorted(PRESETS)) + f" (default {DEFAULT_PRESET}; "
               f"{GENERIC_PRESET} when --env is given without --preset).")
    parser.add_argument("--preset", default=None, choices=sorted(PRESETS),
                        help=f"starting config; flags below override its fields (default: {DEFAULT_PRESET}, "
                             f"or {GENERIC_PRESET} with --env / --env_id)")
    parser.add_argument("--env", dest="env_alias", metavar="ENV_ID", default=None,
                        help="shorthand for --env_id: any Gymnasium id with Discrete or MultiDiscrete "
                             "actions, or PACKAGE:ID to import PACKAGE first (minigrid:MiniGrid-MemoryS7-v0)")
    parser.add_argument("--env-package", dest="env_package", metavar="NAME", action="append", default=None,
                        help="import NAME before making the env (it registers ids); repeatable; stored in "
                             "the run's config, so --resume and evaluate.py import it too")
    parser.add_argument("--resume", metavar="RUN_DIR", default=None,
                        help="continue RUN_DIR from its latest checkpoint (its config.json; only budget "
                             f"and output flags may change: {', '.join(sorted(RESUME_OVERRIDABLE))})")
    parser.add_argument("--checkpoint", metavar="NAME", default=None,
                        help="with --resume: resume from this checkpoint instead of the latest")
    parser.add_argument("--evaluate", action="store_true",
                        help="after training, evaluate the final checkpoint (scripts/evaluate.py)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--ray-address", metavar="ADDR", default=None,
                        help="with --backend ray: join this Ray cluster ('auto', 'HOST:6379' or "
                             "'ray://HOST:10001'); default: start a local one")
    fields = parser.add_argument_group("config fields (TrainConfig; default = the preset's value)")
    for name, kind, default, doc in flat_fields():
        shown = json.dumps(default) if isinstance(default, dict) else default
        flags = [f"--{name}"] + ([DASHED_ALIASES[name]] if name in DASHED_ALIASES else [])
        fields.add_argument(*flags, dest=f"field:{name}", metavar=_metavar(kind), default=None,
                            help=f"{doc} [{shown}]".replace("%", "%%"))
    return parser


def _metavar(kind) -> str:
    text = getattr(kind, "__name__", None) or str(kind)
    return {"dict": "JSON", "tuple": "INTS"}.get(text, text.upper())


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    overrides = {k[len("field:"):]: v for k, v in vars(args).items() if k.startswith("field:") and v is not None}
    if args.env_alias is not None:
        overrides["env_id"] = args.env_alias
    if args.env_package:  # added to --env_packages, or to the preset's packages
        given = overrides.get("env_packages")
        given = given.split(",") if given is not None else ([] if args.resume else get_preset(args.preset).env_packages)
        overrides["env_packages"] = ",".join(dict.fromkeys(p.strip() for p in [*given, *args.env_package] if p.strip()))
    if args.resume:
        config_path = os.path.join(args.resume, "config.json")
        if not os.path.isfile(config_path):
            raise ConfigurationError(f"--resume {args.resume!r}: not a run directory ({config_path!r} does not exist)")
        refused = sorted(set(overrides) - RESUME_OVERRIDABLE)
        if refused:
            raise ConfigurationError(f"--resume keeps the run's config; these flags cannot change: {refused}")
        return apply_overrides(TrainConfig.from_json_file(config_path), overrides)
    if args.checkpoint is not None:
        raise ConfigurationError(f"--checkpoint {args.checkpoint!r} needs --resume RUN_DIR (it picks the checkpoint "
                                 "to resume from)")
    preset = args.preset
    if preset is None:
        # Another env without a preset gets the hyperparameters meant for any small memory task.
        preset = GENERIC_PRESET if "env_id" in overrides else DEFAULT_PRESET
    base = get_preset(preset)
    if "env_id" in overrides and overrides["env_id"] != base.env_id and "env_kwargs" not in overrides:
        overrides["env_kwargs"] = "{}"  # the preset's env kwargs belong to the preset's env
    return apply_overrides(base, overrides)


def _error(message: object) -> int:
    """Configuration and environment errors: one line on stderr, exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = resolve_config(args)
    except ValueError as error:  # ConfigurationError, or a flag value that does not parse
        return _error(error)
    if args.print_config:
        print(config.to_json())
        return 0
    import envs

    try:  # an unknown id or a missing package: one line, before anything is written
        envs.resolve_env_id(config.env_id, config.env_packages)
    except ValueError as error:
        return _error(error)

    from agents.r2d2.checkpoint import CheckpointError
    from agents.r2d2.loop import RunFailedError, TrainingLoop

    if args.ray_address is not None and config.backend != "ray":
        return _error("--ray-address needs --backend ray")
    kwargs = dict(resume=bool(args.resume), checkpoint=args.checkpoint, process_start=PROCESS_START)
    try:
        if config.backend == "ray":
            try:
                from agents.r2d2.ray_backend import RayTrainingLoop
            except ImportError as error:
                return _error(f"--backend ray needs Ray ({error}); pip install -e '.[ray]'")
            loop = RayTrainingLoop(config, args.resume or None, ray_address=args.ray_address, **kwargs)
        else:
            loop = TrainingLoop(config, args.resume or None, **kwargs)
    except (CheckpointError, FileExistsError, ConfigurationError) as error:
        return _error(error)
    print(f"run dir: {loop.run_dir}", flush=True)
    try:
        result = loop.run()
    except RunFailedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"stopped by {result.stopped_by}: {result.env_steps:,d} env steps, {result.learner_steps:,d} learner "
          f"steps, {result.episodes:,d} episodes, {result.wall_time_s:.0f} s of training", flush=True)
    if result.solved_at:
        s = result.solved_at
        print(f"solved at {s['env_steps']:,d} env steps: {s['wall_time_s']:.0f} s of training, "
              f"{s['process_time_s']:.0f} s since the process started (eval return {s['eval_return']:.3f})")
    if args.evaluate and result.stopped_by != "signal":
        from agents.r2d2.evaluation import evaluate_run

        out = evaluate_run(result.run_dir, episodes=config.eval_episodes, epsilon=config.r2d2.eval_epsilon)
        print(f"evaluation: {out['summary']}")
        print(f"eval json: {out['eval_json']}\n{out['learning_curve_message']}")
    print(f"run dir: {result.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
