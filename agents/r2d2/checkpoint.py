"""Atomic, verified checkpoints of a training run: networks, optimizer, replay, counters.

Layout of ``RUN_DIR/checkpoints``::

    checkpoints/
      latest                      text: the name of the newest complete checkpoint
      ckpt-000000120000/          one checkpoint, named by its env step
        learner.index             tf.train.Checkpoint of learner.checkpoint_objects():
        learner.data-00000-of-00001   online + target (+ averaged) networks, Adam slots, learner step
        weights.npz               the policy's weights as plain arrays (evaluate, predict, export)
        replay.npz                SequenceReplay.save (contents, priorities, RNG)
        state.json                loop counters, RNG states, anything JSON
        MANIFEST.json             size + sha256 of every file above, written last

A save is written into ``checkpoints/.tmp-<random>/``, fsynced, renamed into place, then
``latest`` is replaced: a crash at any point leaves ``latest`` naming a complete checkpoint.
It never adopts a directory it did not write: an existing ``ckpt-<step>``, like the newer
checkpoints a resume from an older one replaces, is moved into ``checkpoints/superseded-<time>/``.
Reading checks the manifest first and raises :class:`CheckpointError` naming the file and
what differs, with no fallback (docs/training.md, "Checkpoints" and "Resume").
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from typing import Any, Mapping

import numpy as np

from agents.r2d2.train_config import RESUME_OVERRIDABLE, ConfigurationError, TrainConfig, config_differences
from r2d2_state.files import atomic_write_text, creation_mode, fsync_directory, fsync_file, read_json_object

__all__ = ["CheckpointError", "CheckpointManager", "LoadedCheckpoint", "check_config_matches_checkpoint"]

MANIFEST = "MANIFEST.json"
LATEST = "latest"
STATE = "state.json"
REPLAY = "replay.npz"
WEIGHTS = "weights.npz"
LEARNER_PREFIX = "learner"
_PREFIX = "ckpt-"
SUPERSEDED_PREFIX = "superseded-"
_FORMAT = "r2d2_state.checkpoint"
_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete or corrupt (the message names the file)."""


@dataclasses.dataclass(frozen=True)
class LoadedCheckpoint:
    name: str
    """Directory name, e.g. ``ckpt-000000120000``."""
    path: str
    """Absolute path of the checkpoint directory."""
    state: dict[str, Any]
    """The JSON state written with it (loop counters, RNG states)."""


class CheckpointManager:
    """Writes and reads the checkpoints of one run directory (module docstring)."""

    def __init__(self, run_dir: str | os.PathLike, keep: int = 2) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep!r}")
        self.run_dir = os.path.abspath(os.fspath(run_dir))
        self.directory = os.path.join(self.run_dir, "checkpoints")
        self.keep = int(keep)
        self.superseded: list[tuple[str, str]] = []
        """(checkpoint name, where it was moved) for every checkpoint this manager moved aside."""

    # ------------------------------------------------------------------ listing

    def names(self) -> list[str]:
        """Names of the complete checkpoint directories (those with a manifest), oldest first."""
        if not os.path.isdir(self.directory):
            return []
        return sorted(n for n in os.listdir(self.directory)
                      if n.startswith(_PREFIX) and os.path.isdir(os.path.join(self.directory, n)))

    def latest_name(self) -> str | None:
        """The name ``latest`` points to, or None if no checkpoint was ever completed."""
        pointer = os.path.join(self.directory, LATEST)
        try:
            with open(pointer, encoding="utf-8") as file:
                name = file.read(4096).strip()
        except FileNotFoundError:
            return None
        except (UnicodeDecodeError, IsADirectoryError, OSError) as error:
            raise CheckpointError(f"{pointer!r} is corrupt: expected a checkpoint name as text "
                                  f"({type(error).__name__}: {error})") from None
        if not name.startswith(_PREFIX) or os.sep in name or "/" in name or not name.isprintable():
            raise CheckpointError(f"{pointer!r} is corrupt: expected a checkpoint name, got {name!r}")
        return name

    # ------------------------------------------------------------------ writing

    def save(
        self,
        step: int,
        trackables: Mapping[str, Any],
        replay: Any,
        state: Mapping[str, Any],
        weights: list[np.ndarray] | None = None,
    ) -> str:
        """Write checkpoint ``ckpt-<step>`` atomically; returns its path.

        Always writes: an existing ``ckpt-<step>`` directory (not written by this call) is
        moved aside into ``superseded-<time>/`` once the new one is complete, and recorded
        in :attr:`superseded`.
        """
        import tensorflow as tf  # the replay side of this module needs no TensorFlow

        os.makedirs(self.directory, exist_ok=True)
        name = f"{_PREFIX}{int(step):012d}"
        final = os.path.join(self.directory, name)
        temp = tempfile.mkdtemp(prefix=".tmp-", dir=self.directory)
        try:
            os.chmod(temp, creation_mode(directory=True))  # mkdtemp makes it 0700; os.mkdir honours the umask
            tf.train.Checkpoint(**trackables).write(os.path.join(temp, LEARNER_PREFIX))
            replay.save(os.path.join(temp, REPLAY))
            if weights is not None:
                with open(os.path.join(temp, WEIGHTS), "wb") as file:
                    np.savez(file, **{f"w{i:04d}": np.asarray(w) for i, w in enumerate(weights)})
            _write_text(os.path.join(temp, STATE), json.dumps(dict(state), indent=2, sort_keys=True))
            files = sorted(f for f in os.listdir(temp) if f != MANIFEST)
            for f in files:
                fsync_file(os.path.join(temp, f))
            manifest = {"format": _FORMAT, "version": _VERSION, "step": int(step),
                        "files": {f: _describe(os.path.join(temp, f)) for f in files}}
            _write_text(os.path.join(temp, MANIFEST), json.dumps(manifest, indent=2, sort_keys=True))
            fsync_directory(temp)
            if os.path.lexists(final):
                # Never adopt it: it may be corrupt or another history's. Keep it aside.
                self._move_aside([name])
            os.replace(temp, final)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        atomic_write_text(os.path.join(self.directory, LATEST), name + "\n")
        self._prune(keep_name=name)
        return final

    def supersede_newer_than(self, name: str) -> tuple[str | None, list[str]]:
        """Point ``latest`` at checkpoint ``name`` and move every newer checkpoint aside.

        For a resume from an older checkpoint: the newer ones belong to the history the
        resumed run replaces. They go into ``checkpoints/superseded-<time>/`` (kept, not
        deleted) so that later saves and ``latest`` can never mix the two histories.

        Returns:
          (the superseded directory or None if nothing was newer, the names moved).
        """
        name = os.path.basename(os.path.normpath(name))
        newer = [n for n in self.names() if n > name]
        if self.latest_name() != name:
            # First the pointer (to a checkpoint that exists), then the moves: a crash in
            # between leaves a sound latest.
            atomic_write_text(os.path.join(self.directory, LATEST), name + "\n")
        if not newer:
            return None, []
        return self._move_aside(newer), newer

    def _move_aside(self, names: list[str]) -> str:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = os.path.join(self.directory, f"{SUPERSEDED_PREFIX}{stamp}")
        suffix = 1
        while os.path.lexists(target) and any(os.path.lexists(os.path.join(target, n)) for n in names):
            suffix += 1
            target = os.path.join(self.directory, f"{SUPERSEDED_PREFIX}{stamp}-{suffix}")
        os.makedirs(target, exist_ok=True)
        for n in names:
            os.replace(os.path.join(self.directory, n), os.path.join(target, n))
            self.superseded.append((n, target))
        fsync_directory(target)
        fsync_directory(self.directory)
        return target

    def _prune(self, keep_name: str) -> None:
        # Only checkpoints older than the one just written: a newer one is never ours to delete.
        older = [n for n in self.names() if n < keep_name]
        for old in older[: max(0, len(older) - (self.keep - 1))]:
            shutil.rmtree(os.path.join(self.directory, old), ignore_errors=True)
        # Leftovers of writes killed midway; never a complete checkpoint.
        for entry in os.listdir(self.directory):
            if entry.startswith(".tmp-"):
                shutil.rmtree(os.path.join(self.directory, entry), ignore_errors=True)

    # ------------------------------------------------------------------ reading

    def resolve(self, name: str | None = None) -> str:
        """Absolute path of checkpoint ``name`` (default: the ``latest`` one).

        Raises:
          CheckpointError: no checkpoint exists, or ``name`` is unknown.
        """
        if name is None:
            name = self.latest_name()
            if name is None:
                raise CheckpointError(
                    f"no checkpoint in {self.directory!r} (no {LATEST!r} pointer): nothing to resume from")
        path = os.path.join(self.directory, os.path.basename(os.path.normpath(name)))
        if not os.path.isdir(path):
            raise CheckpointError(f"checkpoint {name!r} does not exist in {self.directory!r}; "
                                  f"available: {self.names()}")
        return path

    def verify(self, name: str | None = None) -> tuple[str, dict[str, Any]]:
        """Check every file of a checkpoint against its manifest; returns (path, manifest).

        Raises:
          CheckpointError: naming the missing manifest, a missing file, a size or a
            sha256 that differs from the manifest, or an unknown format.
        """
        path = self.resolve(name)
        manifest_path = os.path.join(path, MANIFEST)
        hint = self._hint(os.path.basename(path))
        try:
            with open(manifest_path, encoding="utf-8") as file:
                manifest = json.load(file)
        except FileNotFoundError:
            raise CheckpointError(f"checkpoint {path!r} is incomplete: {MANIFEST} is missing.{hint}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise CheckpointError(f"checkpoint {path!r} is corrupt: {manifest_path!r} is not valid JSON "
                                  f"({error}).{hint}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT or not isinstance(manifest.get("files"), dict):
            raise CheckpointError(f"{manifest_path!r} is not an r2d2_state checkpoint manifest.{hint}")
        if manifest.get("version") != _VERSION:
            raise CheckpointError(f"{manifest_path!r} has version {manifest.get('version')!r}; "
                                  f"this code reads version {_VERSION}")
        for file_name, expected in sorted(manifest["files"].items()):
            if (not isinstance(expected, dict) or isinstance(expected.get("size"), bool)
                    or not isinstance(expected.get("size"), int) or not isinstance(expected.get("sha256"), str)
                    or os.path.basename(file_name) != file_name):
                raise CheckpointError(
                    f"{manifest_path!r} is corrupt: entry {file_name!r} must be {{'size': int, 'sha256': str}}, "
                    f"got {expected!r}.{hint}")
            file_path = os.path.join(path, file_name)
            if not os.path.isfile(file_path):
                raise CheckpointError(f"checkpoint {path!r} is corrupt: {file_name!r} is missing.{hint}")
            size = os.path.getsize(file_path)
            if size != expected["size"]:
                raise CheckpointError(
                    f"checkpoint {path!r} is corrupt: {file_name!r} has {size} bytes, the manifest "
                    f"says {expected['size']} (truncated or overwritten).{hint}")
            digest = _sha256(file_path)
            if digest != expected["sha256"]:
                raise CheckpointError(
                    f"checkpoint {path!r} is corrupt: {file_name!r} has sha256 {digest[:16]}..., the "
                    f"manifest says {expected['sha256'][:16]}... (its content changed).{hint}")
        return path, manifest

    def load(self, trackables: Mapping[str, Any], replay: Any, name: str | None = None) -> LoadedCheckpoint:
        """Verify, then restore ``trackables`` (tf.train.Checkpoint) and ``replay`` in place.

        Every file is verified before anything is restored, so a corrupt checkpoint
        leaves the objects as they were.
        """
        import tensorflow as tf

        path, _ = self.verify(name)
        state = self.read_state(path)
        status = tf.train.Checkpoint(**trackables).read(os.path.join(path, LEARNER_PREFIX))
        try:
            status.assert_existing_objects_matched()
        except AssertionError as error:
            raise CheckpointError(f"checkpoint {path!r} does not match this learner's networks "
                                  f"(a different architecture or config?): {error}") from error
        replay.load(os.path.join(path, REPLAY))
        return LoadedCheckpoint(name=os.path.basename(path), path=path, state=state)

    def load_weights(self, name: str | None = None) -> tuple[list[np.ndarray], LoadedCheckpoint]:
        """The policy's weights from a verified checkpoint (no learner needed): the online
        network's, or their average when the run set ``r2d2.policy_average_rate``."""
        path, _ = self.verify(name)
        weights_path = os.path.join(path, WEIGHTS)
        try:
            with np.load(weights_path, allow_pickle=False) as archive:
                weights = [archive[key] for key in sorted(archive.files)]
        except Exception as error:  # noqa: BLE001 - missing (not in the manifest) or unreadable
            raise CheckpointError(f"checkpoint {path!r} has no readable {WEIGHTS} "
                                  f"({type(error).__name__}: {error})") from None
        return weights, LoadedCheckpoint(name=os.path.basename(path), path=path, state=self.read_state(path))

    @staticmethod
    def read_state(path: str) -> dict[str, Any]:
        return read_json_object(os.path.join(path, STATE), CheckpointError, "checkpoint state")

    def _hint(self, bad: str) -> str:
        others = [n for n in self.names() if n != bad]
        if not others:
            return " No other checkpoint exists; nothing was changed."
        return (f" Nothing was changed or deleted. Other checkpoints: {others}; resume from one with "
                f"--checkpoint NAME (after checking it).")


def check_config_matches_checkpoint(config: Any, state: Mapping[str, Any], checkpoint_path: str, config_path: str,
                                    remedy: str = "Restore config.json, or start a new run") -> None:
    """The run's ``config.json`` (a ``TrainConfig``) must match the config the checkpoint
    was trained with, but for the budget and output fields (``RESUME_OVERRIDABLE``).

    Raises:
      ConfigurationError: naming each differing field (up to 5) and both values.
      CheckpointError: the checkpoint's ``state.json`` holds no config or an invalid one.
    """
    if "config" not in state:
        raise CheckpointError(f"{checkpoint_path!r}: state.json holds no config (expected the TrainConfig it was "
                              "trained with)")
    try:
        trained = TrainConfig.from_dict(state["config"]).to_dict()
    except (ValueError, TypeError, AttributeError, KeyError) as error:
        raise CheckpointError(f"{checkpoint_path!r}: state.json holds an invalid config ({error})") from None
    now = config.to_dict()
    differing = [f for f in config_differences(now, trained) if f not in RESUME_OVERRIDABLE]
    if differing:
        details = "; ".join(f"{f}: config {_dotted(now, f)!r}, checkpoint {_dotted(trained, f)!r}"
                            for f in differing[:5])
        raise ConfigurationError(
            f"{config_path!r} no longer matches checkpoint {os.path.basename(checkpoint_path)!r} ({details}): "
            f"only {sorted(RESUME_OVERRIDABLE)} may differ. {remedy}")


def _dotted(values: Mapping[str, Any], name: str) -> Any:
    for part in name.split("."):
        values = values.get(part, "<missing>") if isinstance(values, Mapping) else "<missing>"
    return values


# ---------------------------------------------------------------------- file helpers


def _describe(path: str) -> dict[str, Any]:
    return {"size": os.path.getsize(path), "sha256": _sha256(path)}


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_text(path: str, text: str) -> None:
    # Inside the temporary checkpoint directory: made durable, then the directory is renamed.
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
