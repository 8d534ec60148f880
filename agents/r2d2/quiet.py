"""Quiet TensorFlow's start-up on a machine without a GPU.

TensorFlow 2.21 prints its CUDA probe on every start of a CPU-only machine, before its
logging is initialised (so ``TF_CPP_MIN_LOG_LEVEL`` does not reach these lines)::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 ... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
    E0000 ... cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: ... UNKNOWN ERROR (303)

:func:`quiet_tensorflow` (call it before anything imports TensorFlow) sets
``TF_CPP_MIN_LOG_LEVEL=2`` unless the user set it; :func:`import_tensorflow_quietly`
imports TensorFlow and probes its devices with the process's stderr captured, then
writes back every captured line except the probe's (:data:`NOISE`). A user who sets
``TF_CPP_MIN_LOG_LEVEL`` to 0 or 1 (asking for TensorFlow's info lines) sees everything.
"""

from __future__ import annotations

import os
import sys
import tempfile

__all__ = ["NOISE", "quiet_tensorflow", "import_tensorflow_quietly"]

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
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2") in ("0", "1"):
        import tensorflow  # noqa: F401

        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")  # the CUDA probe (cuInit) runs here, not at import
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
