"""FusedAdam: ``keras.optimizers.Adam`` whose update is one TensorFlow kernel per variable.

Keras 3's Adam builds its update from ~25 graph ops per variable, a large share of a small
learner step's ops, tracing time and per-op overhead on a CPU (docs/learner.md, "Speed").
``tf.raw_ops.ResourceApplyAdam`` does the same arithmetic in one kernel::

    lr_t = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
    m    = m + (g - m) (1 - beta_1)            Keras: m += (g - m)(1 - beta_1)
    v    = v + (g^2 - v) (1 - beta_2)          Keras: v += (g^2 - v)(1 - beta_2)
    var  = var - lr_t m / (sqrt(v) + epsilon)  Keras: the same expression

Same variables (``iterations``, the momentums and velocities), so checkpoints and the
Keras API are unchanged (tested against ``keras.optimizers.Adam``). Configurations the
kernel does not cover (AMSGrad, sparse gradients, other dtypes) take Keras's own update.
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["FusedAdam"]


@keras.saving.register_keras_serializable(package="r2d2_state")
class FusedAdam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` with ``update_step`` as ``ResourceApplyAdam``."""

    def apply(self, grads, trainable_variables=None):
        # The step's scalars (bias corrections, learning rate) are built once per apply and
        # shared by every variable's kernel; None outside an apply.
        self._step_scalars = None
        try:
            return super().apply(grads, trainable_variables)
        finally:
            self._step_scalars = None

    def update_step(self, gradient, variable, learning_rate):
        if (self.amsgrad or isinstance(gradient, tf.IndexedSlices)
                or variable.dtype not in (tf.float32, tf.float64)):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        scalars = getattr(self, "_step_scalars", None)
        if scalars is None or scalars[0] != dtype:
            step = tf.cast(self.iterations + 1, dtype)
            beta_1, beta_2 = tf.constant(self.beta_1, dtype), tf.constant(self.beta_2, dtype)
            scalars = (dtype, tf.cast(learning_rate, dtype), beta_1, beta_2, tf.pow(beta_1, step),
                       tf.pow(beta_2, step), tf.constant(self.epsilon, dtype))
            self._step_scalars = scalars
        _, lr, beta_1, beta_2, beta1_power, beta2_power, epsilon = scalars
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        handle = variable.handle if isinstance(variable, tf.Variable) else variable.value.handle
        tf.raw_ops.ResourceApplyAdam(
            var=handle, m=m.value.handle, v=v.value.handle, beta1_power=beta1_power,
            beta2_power=beta2_power, lr=lr, beta1=beta_1, beta2=beta_2, epsilon=epsilon,
            grad=tf.cast(gradient, dtype), use_locking=False)
