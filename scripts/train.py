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
and exit 130 (SIGTERM: 143); during start-up Ctrl-C exits 130 at once, having written
nothing. ``--resume RUN_DIR`` continues from the run's latest checkpoint.
"""

from __future__ import annotations

import time

PROCESS_START = time.perf_counter()  # before TensorFlow's import: solve times include start-up

import signal  # noqa: E402
import sys  # noqa: E402

INTERRUPTED = 128 + signal.SIGINT
"""Exit status after Ctrl-C (the shell's convention: 128 + the signal number)."""


def _interrupted_while_importing(signum, frame) -> None:  # noqa: ARG001
    print("interrupted during start-up: nothing was written", file=sys.stderr)
    sys.exit(INTERRUPTED)


if __name__ == "__main__" and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _interrupted_while_importing)  # main() takes over from here

import dataclasses  # noqa: E402
import os  # noqa: E402
from typing import Annotated, Literal, Optional  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from agents.r2d2.tf_runtime import import_tensorflow_quietly, quiet_tensorflow  # noqa: E402

quiet_tensorflow()

import tyro  # noqa: E402

from agents.r2d2 import cli  # noqa: E402
from agents.r2d2.presets import DEFAULT_PRESET, GENERIC_PRESET, PRESETS, get_preset  # noqa: E402
from agents.r2d2.train_config import (RESUME_OVERRIDABLE, ConfigurationError, TrainConfig,  # noqa: E402
                                      config_differences)

PresetName = Literal[tuple(sorted(PRESETS))]  # type: ignore[valid-type]


@dataclasses.dataclass(frozen=True)
class TrainArgs:
    config: Annotated[TrainConfig, tyro.conf.arg(name="")]
    """The run's TrainConfig (default: the preset's value)."""
    preset: Annotated[Optional[PresetName], tyro.conf.arg(
        help=f"Starting config; the flags override its fields (default: {DEFAULT_PRESET}, or {GENERIC_PRESET} "
             "with --env / --env_id).")] = None
    env: Annotated[Optional[str], tyro.conf.arg(metavar="ENV_ID")] = None
    """Shorthand for --env_id: any Gymnasium id with Discrete or MultiDiscrete actions, or PACKAGE:ID to import PACKAGE first (minigrid:MiniGrid-MemoryS7-v0)."""
    env_package: Annotated[tuple[str, ...], tyro.conf.UseAppendAction, tyro.conf.arg(metavar="NAME")] = ()
    """Import NAME before making the env (it registers ids); repeatable; stored in the run's config, so --resume and evaluate.py import it too."""
    resume: Annotated[Optional[str], tyro.conf.arg(metavar="RUN_DIR")] = None
    """Continue RUN_DIR from its latest checkpoint (its config.json; only budget and output flags may change)."""
    checkpoint: Annotated[Optional[str], tyro.conf.arg(metavar="NAME")] = None
    """With --resume: resume from this checkpoint instead of the latest."""
    evaluate: bool = False
    """After training, evaluate the final checkpoint (scripts/evaluate.py)."""
    print_config: bool = False
    """Print the resolved config and exit."""
    ray_address: Annotated[Optional[str], tyro.conf.arg(metavar="ADDR")] = None
    """With --backend ray: join this Ray cluster ('auto', 'HOST:6379' or 'ray://HOST:10001'); default: start a local one."""


@dataclasses.dataclass(frozen=True)
class StartArgs:
    """The flags that choose the config the others override, parsed first: tyro's defaults cannot depend on a flag."""

    preset: Optional[PresetName] = None
    env: Annotated[Optional[str], tyro.conf.arg(aliases=("--env_id",))] = None
    resume: Optional[str] = None

    @property
    def preset_name(self) -> str:
        # Another env without a preset gets the hyperparameters meant for any small memory task.
        return self.preset or (GENERIC_PRESET if self.env is not None else DEFAULT_PRESET)


def _base_config(start: StartArgs) -> TrainConfig:
    """The defaults the flags override: the resumed run's config, or the preset's."""
    if start.resume is not None:
        config_path = os.path.join(start.resume, "config.json")
        if not os.path.isfile(config_path):
            raise ConfigurationError(f"--resume {start.resume!r}: not a run directory ({config_path!r} does not exist)")
        return TrainConfig.from_json_file(config_path)
    base = get_preset(start.preset_name)
    if start.env is not None and start.env != base.env_id:
        # The preset's env kwargs and action subset belong to the preset's env.
        base = base.replace(env_id=start.env, env_kwargs={}, env_actions=())
    return base


def _defaults_note(start: StartArgs, base: TrainConfig) -> str:
    """Where ``--help``'s defaults come from, and the preset's time budget if it has one."""
    if start.resume is not None:
        where = "the resumed run's config.json"
    else:
        where = f"the {start.preset_name!r} preset's"
        if start.preset is None and start.env is None:
            where += (f" (the default preset; --env ID --help shows the {GENERIC_PRESET!r} preset's, which --env "
                      "runs start from; --preset NAME --help another's)")
        elif start.preset is None:
            where += " (the one --env runs start from; --preset NAME --help shows another's)"
    note = f"\n\nThe defaults below are {where}."
    if base.time_budget_s:
        note += (f" It stops a run after --time_budget_s {base.time_budget_s:g} s of training (set 0 for no time "
                 "limit).")
    return note


def parse_args(argv: list[str]) -> tuple[TrainArgs, TrainConfig, StartArgs, TrainConfig]:
    """The script's flags, the resolved config, the flags that chose its defaults and those
    defaults (``--help`` exits 0 after printing).

    Raises:
      ConfigurationError: a bad flag or value, a missing run directory, or a --resume
        that would change more than the budget and output fields.
    """
    start, _ = cli.parse(StartArgs, argv, return_unknown_args=True, add_help=False)
    base = _base_config(start)
    args = cli.parse(TrainArgs, argv, default=TrainArgs(config=base), description=__doc__.rstrip() + _defaults_note(start, base))
    config = args.config
    if args.env is not None:
        config = config.replace(env_id=args.env)
    if args.env_package:  # added to --env_packages, or to the preset's packages
        config = config.replace(env_packages=tuple(dict.fromkeys([*config.env_packages, *args.env_package])))
    if args.resume:
        refused = sorted(set(config_differences(base.to_dict(), config.to_dict())) - RESUME_OVERRIDABLE)
        if refused:
            raise ConfigurationError(f"--resume keeps the run's config; these flags cannot change: {refused}")
    elif args.checkpoint is not None:
        raise ConfigurationError(f"--checkpoint {args.checkpoint!r} needs --resume RUN_DIR (it picks the checkpoint "
                                 "to resume from)")
    return args, config, start, base


def _bare_id(env_id: str) -> str:
    return env_id.split(":")[-1]  # PACKAGE:ID -> ID


def dropped_preset_env_settings(start: StartArgs, config: TrainConfig) -> str | None:
    """The note for ``--env OTHER``: with ``--preset NAME`` whose env kwargs or action subset
    belong to another env, that they are not used; without ``--preset``, the preset tuned
    for this env if there is one (None if there is nothing to say)."""
    if start.resume is not None or start.env is None:
        return None
    preset, env_id = get_preset(start.preset_name), start.env
    if env_id == preset.env_id:
        return None
    if start.preset is None:
        # The generic preset's env settings were never the user's choice: nothing to say about
        # them, but a preset made for this env is worth knowing.
        tuned = [name for name in sorted(PRESETS)
                 if name != start.preset_name and _bare_id(get_preset(name).env_id) == _bare_id(env_id)]
        if not tuned:
            return None
        return (f"note: --env {env_id}: this run starts from the generic {start.preset_name!r} preset; --preset "
                f"{tuned[0]} is tuned for this env")
    dropped = [f"{name} {value!r}" for name, value in (("env_kwargs", preset.env_kwargs),
                                                       ("env_actions", preset.env_actions))
               if value and not getattr(config, name)]  # not set again by its flag
    if not dropped:
        return None
    return (f"note: --env {env_id}: the {start.preset!r} preset's {' and '.join(dropped)} are for {preset.env_id} "
            "and not used (set them with the same flags)")


def _count(n: int, word: str) -> str:
    return f"{n:,d} {word}" + ("" if n == 1 else "s")


def stop_line(result, config: TrainConfig, base: TrainConfig, resumed: bool = False) -> str:
    """The line saying why and where a run stopped, with the budget that stopped it (``base``:
    the preset's or resumed run's config the flags changed)."""
    line = (f"stopped by {result.stopped_by}: {_count(result.env_steps, 'env step')}, "
            f"{_count(result.learner_steps, 'learner step')}, {_count(result.episodes, 'episode')}, "
            f"{result.wall_time_s:.0f} s of training")
    if result.stopped_by == "time_budget":
        whose = ("given" if config.time_budget_s != base.time_budget_s else "the run's" if resumed else
                 "the preset's")
        line += f" (--time_budget_s {config.time_budget_s:g}, {whose}; raise it, or set 0 for none)"
    elif result.stopped_by == "env_steps" and result.env_steps > config.total_env_steps:
        line += (f" ({result.env_steps - config.total_env_steps:,d} past --total_env_steps "
                 f"{config.total_env_steps:,d}: the actors' last collection is used whole)")
    elif result.stopped_by == "solved":
        line += " (an evaluation reached the solve threshold; --no_stop_at_threshold trains on)"
    return line



def main(argv: list[str] | None = None) -> int:
    """Train (and evaluate); returns the exit status: 0, 1 (the run failed), 2 (a bad flag,
    config, environment or run directory), 130 / 143 (stopped by Ctrl-C / SIGTERM)."""
    if signal.getsignal(signal.SIGINT) is _interrupted_while_importing:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    stage = ["start-up"]
    try:
        return _main(argv, stage)
    except KeyboardInterrupt:  # before the loop's handlers were installed, or after they were removed
        done = {"start-up": "nothing was written", "the end of the run": "the run's checkpoint is complete",
                "evaluation": "the run's checkpoint is complete; eval.json was not written"}[stage[0]]
        print(f"interrupted during {stage[0]}: {done}", file=sys.stderr)
        return INTERRUPTED


def _main(argv: list[str] | None, stage: list[str]) -> int:
    try:
        args, config, start, base = parse_args(sys.argv[1:] if argv is None else list(argv))
    except ValueError as error:  # ConfigurationError, or a config value out of range
        return cli.error_exit(error)
    note = dropped_preset_env_settings(start, config)
    if args.print_config:
        print(config.to_json())
        if note:
            print(note, file=sys.stderr)
        return 0
    import envs

    try:  # an unknown id or a missing package: one line, before anything is written
        envs.resolve_env_id(config.env_id, config.env_packages)
    except ValueError as error:
        return cli.error_exit(error)

    import_tensorflow_quietly()  # before anything imports TensorFlow: no CUDA-probe noise
    from agents.r2d2.checkpoint import CheckpointError
    from agents.r2d2.loop import RunFailedError, TrainingLoop

    if args.ray_address is not None and config.backend != "ray":
        return cli.error_exit("--ray-address needs --backend ray")
    try:
        loop = TrainingLoop(config, args.resume or None, resume=bool(args.resume), checkpoint=args.checkpoint,
                            process_start=PROCESS_START, ray_address=args.ray_address)
    except (CheckpointError, FileExistsError, ConfigurationError) as error:
        return cli.error_exit(error)
    print(f"run dir: {loop.run_dir}", flush=True)
    if note:  # after the start succeeded: a failed start stays one error line
        print(note, file=sys.stderr, flush=True)
    try:
        result = loop.run()
    except ConfigurationError as error:  # the run directory could not be written: nothing was trained
        return cli.error_exit(error)
    except RunFailedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if result.nothing_to_do is None:  # else the loop said why it trained nothing
        print(stop_line(result, config, base, resumed=bool(args.resume)), flush=True)
    stage[0] = "the end of the run"
    if result.stop_signal is not None:  # the checkpoint is written; the exit status says how the run ended
        print(f"run dir: {result.run_dir} (--resume {result.run_dir} continues it)")
        return 128 + result.stop_signal
    if result.solved_at:
        s = result.solved_at
        print(f"solved at {s['env_steps']:,d} env steps: {s['wall_time_s']:.0f} s of training, "
              f"{s['process_time_s']:.0f} s since the process started (eval return {s['eval_return']:.3f})")
    if args.evaluate:
        from agents.r2d2.evaluation import evaluate_run

        stage[0] = "evaluation"
        out = evaluate_run(result.run_dir, episodes=config.eval_episodes, epsilon=config.r2d2.eval_epsilon)
        print(f"evaluation: {out['summary']}")
        print(f"eval json: {out['eval_json']}\n{out['learning_curve_message']}")
    print(f"run dir: {result.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
