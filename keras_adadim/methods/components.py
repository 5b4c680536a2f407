"""Reusable pieces of self-supervised methods: an EMA teacher with the cosine
momentum schedule and a FIFO feature queue, each a Keras layer (so its
weights and state are tracked, saved in ``.keras`` files and restored on
resume), and the cosine schedule factor they and the model share. The
default predictor head is made by ``keras_adadim.methods.base`` (from
``keras_adadim.models.heads``)."""

import math

import keras
from keras import ops

from keras_adadim._validation import check_number


def cosine_decay_factor(progress):
    """(cos(pi p) + 1) / 2 for training progress p in [0, 1]: 1 at the
    start, 0 at the end, half-cosine in between. The one cosine schedule of
    the library: the EMA momentum (:func:`cosine_momentum`), AdaDim's
    ``alpha="cosine"`` (1 minus it) and the online probe's learning rate."""
    return (ops.cos(math.pi * progress) + 1.0) / 2.0


def cosine_momentum(base, final, progress):
    """tau = final - (final - base) (cos(pi p) + 1) / 2 for training progress
    p in [0, 1] (BYOL, Grill et al. 2020, Sec. 3.2; solo-learn's
    ``MomentumUpdater``): ``base`` at the start, ``final`` at the end."""
    return final - (final - base) * cosine_decay_factor(progress)


@keras.saving.register_keras_serializable(package="keras_adadim")
class EMATeacher(keras.layers.Layer):
    """A momentum (EMA) copy of encoder -> projector.

    ``setup(encoder, projector)`` makes copies; ``update(encoder, projector,
    progress)`` moves each trainable weight towards the online one,
    ``t <- tau t + (1 - tau) o``, with tau on the cosine schedule
    :func:`cosine_momentum`; calling the teacher gives stop-gradient
    ``(r, z)``. As in BYOL, MoCo v3 and solo-learn, the teacher runs in
    training mode during training: its batch-norm layers normalise with
    batch statistics and keep their own moving statistics (which the EMA
    does not touch); inference-mode batch norm in the teacher lets BYOL
    collapse. The copies' weights are "trainable" for batch norm's sake,
    but the model excludes them from the optimizer
    (``Method.frozen_variables``). A method declares one as
    ``self.teacher`` (see ``keras_adadim.methods.base``).

    Args:
        base_momentum: tau at the start of training (BYOL/MoCo v3 on
            CIFAR: 0.99).
        final_momentum: tau at the end (1.0).
    """

    def __init__(self, base_momentum=0.99, final_momentum=1.0, **kwargs):
        super().__init__(**kwargs)
        self.base_momentum = check_number("base_momentum", base_momentum, 0, 1)
        self.final_momentum = check_number("final_momentum", final_momentum,
                                           0, 1)
        self.encoder = self.projector = None

    def setup(self, encoder, projector):
        # Under the teacher's own name scope, so the copies' variable paths
        # differ from the online networks' (PyTorch tracks parameters by
        # path: equal paths would hide the online weights' gradients from
        # `zero_grad`).
        with keras.name_scope(self.name):
            self.encoder = keras.models.clone_model(encoder)
            self.projector = keras.models.clone_model(projector)

    def momentum(self, progress):
        return cosine_momentum(self.base_momentum, self.final_momentum, progress)

    def ensure_built(self, image_shape, representation_shape):
        # Built while the model builds (its first call), so that loading a
        # saved model creates the copies' weights before restoring them.
        for net, shape in ((self.encoder, image_shape),
                           (self.projector, representation_shape)):
            if not net.built:
                with keras.name_scope(self.name):
                    net.build(shape)

    def update(self, encoder, projector, progress):
        tau = self.momentum(progress)
        for online_net, target_net in ((encoder, self.encoder),
                                       (projector, self.projector)):
            for online, target in zip(online_net.trainable_weights,
                                      target_net.trainable_weights):
                new = tau * target + (1.0 - tau) * ops.cast(online, target.dtype)
                target.assign(ops.stop_gradient(new))
        return tau

    def call(self, x, training=False):
        r = self.encoder(x, training=training)
        z = self.projector(r, training=training)
        return ops.stop_gradient(r), ops.stop_gradient(z)

    def get_config(self):
        return {**super().get_config(), "base_momentum": self.base_momentum,
                "final_momentum": self.final_momentum}


@keras.saving.register_keras_serializable(package="keras_adadim")
class FeatureQueue(keras.layers.Layer):
    """A FIFO queue of the last ``size`` feature rows (MoCo's negatives,
    NNCLR's support set), newest first.

    Starts as L2-normalised Gaussian rows (seeded), as solo-learn and lightly
    initialise theirs; ``push(rows)`` returns the queue with ``rows`` in
    front and the oldest rows dropped. Under ``tf.distribute`` the model
    pushes the global batch, so every replica holds the same queue in the
    same order.

    Args:
        size: number of rows kept.
        seed: seed of the initial rows.
    """

    def __init__(self, size, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.size = check_number("size", size, 1, integer=True)
        self.seed = int(seed)
        self.queue = None

    def build(self, feature_shape):
        dim = int(feature_shape[-1])
        self.queue = self.add_weight(
            name="queue", shape=(self.size, dim), dtype="float32",
            initializer=_UnitRows(self.seed), trainable=False,
        )

    def push(self, rows, keep=True):
        """Enqueue ``rows`` (b, F); ``keep`` False (a skipped batch) leaves
        the queue as it was."""
        rows = ops.stop_gradient(ops.cast(rows, "float32"))
        old = ops.convert_to_tensor(self.queue)
        # The batch size may be unknown while tracing (TF: a dataset without
        # `drop_remainder`, or rows all-gathered over replicas), so cut the
        # newest `size` rows dynamically and restore the static shape.
        new = ops.concatenate([rows, old], axis=0)[: self.size]
        new = ops.reshape(new, tuple(self.queue.shape))
        self.queue.assign(ops.where(keep, new, old))

    def get_config(self):
        return {**super().get_config(), "size": self.size, "seed": self.seed}


class _UnitRows(keras.initializers.Initializer):
    """Rows drawn from a seeded standard normal, L2-normalised."""

    def __init__(self, seed):
        self.seed = seed

    def __call__(self, shape, dtype=None):
        x = keras.random.normal(shape, seed=self.seed, dtype="float32")
        return x / ops.sqrt(ops.sum(ops.square(x), axis=1, keepdims=True))

    def get_config(self):
        return {"seed": self.seed}
