"""The R2D2 agent. Importing it makes TensorFlow's later start-up quiet (agents.r2d2.tf_runtime)."""

from agents.r2d2.tf_runtime import install_quiet_tensorflow_import

install_quiet_tensorflow_import()
