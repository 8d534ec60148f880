#!/usr/bin/env python
"""Export a training run's Q-network as a TensorFlow SavedModel, for serving.

Examples::

    python scripts/export.py runs/tmaze-v0-seed0-<date> exported/tmaze
    python scripts/export.py RUN_DIR OUT_DIR --checkpoint ckpt-000000002000 --overwrite

``OUT_DIR`` then holds a SavedModel (endpoints and signatures ``serve``, sequences, and
``step``, one step; TensorFlow alone loads it) and ``policy.json`` describing its inputs
(docs/policy.md, "Export"). A missing or corrupt checkpoint, an invalid run directory or an
existing ``OUT_DIR`` is refused with one ``error:`` line (exit 2), and nothing is written.
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
class ExportArgs:
    run_dir: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="RUN_DIR")]
    """A directory written by scripts/train.py (or one of its checkpoints, RUN_DIR/checkpoints/ckpt-...)."""
    out_dir: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="OUT_DIR")]
    """The SavedModel directory to write (must not exist, unless --overwrite)."""
    checkpoint: Optional[str] = None
    """Checkpoint name (default: latest)."""
    overwrite: bool = False
    """Replace an existing OUT_DIR (once the new export is complete)."""


def main(argv: list[str] | None = None) -> int:
    try:
        args = cli.parse(ExportArgs, sys.argv[1:] if argv is None else list(argv), description=__doc__)
    except ConfigurationError as error:
        return cli.error_exit(error)
    import_tensorflow_quietly()
    from agents.r2d2.checkpoint import CheckpointError
    from agents.r2d2.export import export_saved_model
    from agents.r2d2.policy import R2D2Policy

    try:
        policy = R2D2Policy.load(args.run_dir, checkpoint=args.checkpoint)
        path = export_saved_model(policy, args.out_dir, overwrite=args.overwrite)
    except (CheckpointError, FileNotFoundError, FileExistsError, ConfigurationError, ValueError) as error:
        return cli.error_exit(error)
    print(f"exported {policy.config.env_id} checkpoint {policy.checkpoint} to {path} "
          f"(endpoints serve, step; inputs in {os.path.join(path, 'policy.json')})")
    return 0



if __name__ == "__main__":
    sys.exit(main())
