"""The one place where keras-adadim touches backend-specific APIs.

Everything else in the library is written against ``keras.ops``. The helper
here answers a question ``keras.ops`` cannot: whether a tensor holds concrete
values (so a data-dependent check can raise a Python error) or is symbolic /
traced (inside ``tf.function`` or ``jax.jit``), where such a check must be
skipped and the compiled-step guard in ``AdaDimModel`` takes over.
"""

import keras
import numpy as np


def is_concrete(x):
    """True when ``x`` holds real values that can be inspected in Python."""
    if isinstance(x, (np.ndarray, np.generic, float, int)):
        return True
    if keras.backend.is_keras_tensor(x):
        return False
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.executing_eagerly()
    if backend == "jax":
        import jax

        return not isinstance(x, jax.core.Tracer)
    if backend == "torch":
        import torch

        return not torch.compiler.is_compiling()
    return True
