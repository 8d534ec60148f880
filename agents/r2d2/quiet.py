"""Quiet TensorFlow's start-up on a machine without a GPU.

TensorFlow 2.21 prints its CUDA probe on every start of a CPU-only machine, before its
logging is initialised (so ``TF_CPP_MIN_LOG_LEVEL`` does not reach these lines)::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 ... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
    E0000 ... cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: ... UNKNOWN ERROR (303)

:func:`install_quiet_tensorflow_import` (run when :mod:`agents.r2d2` is imported) makes
the first ``import tensorflow`` of the process, by any module, do what
:func:`import_tensorflow_quietly` does. :func:`quiet_tensorflow` (call it before anything
imports TensorFlow) sets
``TF_CPP_MIN_LOG_LEVEL=2`` unless the user set it; :func:`import_tensorflow_quietly`
imports TensorFlow and probes its devices with the process's stderr captured, then
writes back every captured line except the probe's (:data:`NOISE`). A user who sets
``TF_CPP_MIN_LOG_LEVEL`` to 0 or 1 (asking for TensorFlow's info lines) sees everything.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import tempfile
from typing import Any, Iterator

__all__ = ["NOISE", "quiet_tensorflow", "import_tensorflow_quietly", "install_quiet_tensorflow_import"]

NOISE = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "Could not find cuda drivers on your machine",
    "failed call to cuInit",
    "oneDNN custom operations are on",
    "Unable to register cuDNN factory", "Unable to register cuFFT factory", "Unable to register cuBLAS factory",
    "computation placer already registered",
)
"""Substrings of TensorFlow's start-up lines that are dropped (CUDA probe, oneDNN notice)."""


def quiet_tensorflow() -> None:
    """Hide TensorFlow's C++ info and warning lines unless the user set ``TF_CPP_MIN_LOG_LEVEL``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def import_tensorflow_quietly() -> None:
    """Import TensorFlow and probe its devices without the CPU-only start-up noise.

    Other lines printed meanwhile are written back to stderr. Does nothing more than
    ``import tensorflow`` when TensorFlow is imported already or the user asked for its
    info lines (``TF_CPP_MIN_LOG_LEVEL`` 0 or 1).
    """
    quiet_tensorflow()
    if "tensorflow" in sys.modules or _user_wants_info():
        import tensorflow  # noqa: F401

        return
    with _filtered_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # the CUDA probe (cuInit) runs here, not at import


def _user_wants_info() -> bool:
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2") in ("0", "1")


@contextlib.contextmanager
def _filtered_stderr() -> Iterator[None]:
    """Capture the process's stderr (file descriptor 2, where TensorFlow's C++ writes);
    write back every captured line but the :data:`NOISE` ones."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode("utf-8", "replace").splitlines(keepends=True)
            kept = [line for line in lines if not any(noise in line for noise in NOISE)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    """TensorFlow's own loader, run as :func:`import_tensorflow_quietly` runs it."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        with _filtered_stderr():
            self._loader.exec_module(module)
            module.config.list_physical_devices("GPU")

    def __getattr__(self, name: str) -> Any:  # resource readers, get_data, ...: the real loader's
        return getattr(self._loader, name)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: on the first ``import tensorflow`` it wraps the real loader."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        _remove_finder()
        if "tensorflow" in sys.modules or _user_wants_info():
            return None
        spec = importlib.util.find_spec("tensorflow")
        if spec is None or spec.loader is None:
            return None
        spec.loader = _QuietLoader(spec.loader)
        return spec


def _remove_finder() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietTensorFlowFinder)]


def install_quiet_tensorflow_import() -> None:
    """Make the process's first ``import tensorflow`` (by whatever module) quiet, like
    :func:`import_tensorflow_quietly`, without importing TensorFlow now.

    Called when :mod:`agents.r2d2` is imported: a user's script that imports the project
    (and the Ray actor processes) gets no CUDA-probe lines. Sets ``TF_CPP_MIN_LOG_LEVEL=2``
    unless the user set it; 0 or 1 leave every line as TensorFlow prints it.
    """
    quiet_tensorflow()
    if "tensorflow" in sys.modules or _user_wants_info():
        return
    if not any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())
