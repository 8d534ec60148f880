"""The TensorFlow runtime of a training process: a quiet start-up, thread pools, direct graph calls.

TensorFlow prints its CUDA probe on every start of a CPU-only machine, before its logging is
initialised (so ``TF_CPP_MIN_LOG_LEVEL`` does not reach those lines).
:func:`import_tensorflow_quietly` drops them (:data:`NOISE`) and writes back every other line;
:func:`install_quiet_tensorflow_import`, run when :mod:`agents.r2d2` is imported, makes the
process's first ``import tensorflow`` do the same. ``TF_CPP_MIN_LOG_LEVEL`` 0 or 1 shows everything.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import tempfile
from typing import Any, Callable, Iterator

__all__ = ["NOISE", "OP_PARALLEL_MAX_UNITS", "configure_tf_threads", "flat_caller", "import_tensorflow_quietly",
           "install_quiet_tensorflow_import", "quiet_tensorflow"]

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


def flat_caller(concrete: Any) -> Callable[..., Any]:
    """A caller of a traced graph whose arguments are already tensors of its signature.

    ``ConcreteFunction._call_flat`` skips re-binding and type-checking the arguments (a
    fixed cost per call, large beside a small network's step); it is not public API, so
    the public call is the fallback when it is missing.
    """
    call_flat = getattr(concrete, "_call_flat", None)
    captured = getattr(concrete, "captured_inputs", None)
    if call_flat is None or captured is None:
        return concrete
    return lambda *args: call_flat(list(args), captured)


OP_PARALLEL_MAX_UNITS = 128
"""Widest LSTM layer for which ``tf_threads`` auto runs one thread per op, two ops at once."""


def configure_tf_threads(requested: int, network_config: Any, notes: list[str] | None = None, *,
                         xla: bool = False) -> tuple[int, int]:
    """Set TensorFlow's intra- and inter-op thread pools for this process; returns the
    pools in effect, ``(intra, inter)`` (0: TensorFlow's default).

    ``requested`` N > 0: N threads in both pools. 0 (auto): one thread within an op and two
    ops at once (``(1, 2)``) for networks whose widest LSTM has at most
    ``OP_PARALLEL_MAX_UNITS`` units, without the Nature-DQN conv stack and without XLA, so
    that the online and the target network's small recurrences each keep a core busy;
    TensorFlow's default otherwise (``docs/learner.md``, "Threads").

    TensorFlow fixes its pools when it runs its first op; if that happened before this call
    with other sizes, the pools stay as they are and, for an explicit request, ``notes``
    gets a line saying so.
    """
    import tensorflow as tf

    from r2d2_state.networks import NATURE_MIN_SIZE

    threading = tf.config.threading
    frame = network_config.image_shape or (network_config.observation_shape if network_config.is_image else None)
    large_images = frame is not None and min(frame[:2]) >= NATURE_MIN_SIZE
    narrow = max(network_config.lstm_units) <= OP_PARALLEL_MAX_UNITS
    if requested > 0:
        pools = (requested, requested)
    else:
        pools = (1, 2) if narrow and not large_images and not xla else (0, 0)
    if pools == (0, 0):
        return threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads()
    try:
        threading.set_intra_op_parallelism_threads(pools[0])
        threading.set_inter_op_parallelism_threads(pools[1])
    except RuntimeError:
        current = threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads()
        if requested > 0 and notes is not None:
            notes.append(f"tf_threads={requested} not applied: TensorFlow ran before the run started and keeps "
                         f"its thread pools ({current[0] or 'its default'} threads)")
        return current
    return pools
