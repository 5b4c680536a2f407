"""Distributed training with exact global-batch statistics.

AdaDim's loss is made of batch statistics: the InfoNCE negatives, VICReg's
variance and covariance, the Gram matrices of L_mut, the effective rank
behind alpha. Computed per device on a slice of the batch they silently
change the method, so ``AdaDimModel`` computes all of them over the global
batch on every backend (how to launch: ``docs/distributed.md``):

* **JAX**, ``keras.distribution.DataParallel`` (one host, or several through
  ``keras.distribution.initialize``): Keras jits the step over arrays
  sharded along the batch, and XLA's SPMD partitioner keeps every op
  semantically global, so nothing is needed in the step
  (``tests/test_distributed.py`` checks it). With several processes
  feeding their own slices, :func:`global_batch` assembles the alpha
  estimate's batch from every process's rows, and :func:`mean_over_replicas`
  makes every process use the same alpha.
* **TensorFlow**, ``tf.distribute.MirroredStrategy`` /
  ``MultiWorkerMirroredStrategy``: each replica runs the step on its slice.
  :func:`gather_rows` all-gathers every per-sample output of the method
  (embeddings, representations, teacher outputs) and the labels before the loss, so every replica computes the loss of the global batch;
  its gradient reaches each replica's own rows through all_gather's
  gradient (all-reduce, then slice) and :func:`scale_loss` divides by the
  replica count, so the gradients the optimizer sums over replicas are the
  single-device gradients of the global-batch loss. During ``fit``,
  :func:`synchronized_batch_norm` makes batch normalisation use global
  statistics too.
* **PyTorch**: single process only; :func:`check_single_process` raises a
  clear error under ``torch.distributed`` with world size > 1 or
  ``torch.nn.DataParallel``.
"""

import contextlib

import keras
from keras import ops

from keras_adadim import _backend

_global_statistics = True


def set_global_batch_statistics(enabled):
    """Turn the TensorFlow all-gather off (``False``) or on (default).

    Off, each replica computes the batch statistics of its own slice: the
    wrong method, kept only so tests and ablations can show the difference.
    The loss is still scaled by 1 / replicas."""
    global _global_statistics
    _global_statistics = bool(enabled)


def num_replicas():
    """Replicas that run the current training step on slices of the batch
    (TensorFlow strategies; 1 on JAX, PyTorch and outside a step)."""
    return _backend.replicas_in_step()


def gather(x):
    """``x`` (rows = this replica's images) concatenated over the replicas
    along axis 0, in replica order; identity with a single replica."""
    if not _global_statistics:
        return x
    return _backend.all_gather(x)


def gather_rows(rows, y=None, valid=None):
    """The global batch of one step: ``(rows, y, valid)`` with every tensor
    of ``rows`` (a method's per-sample outputs: leading axis = this
    replica's images, any trailing shape) and the labels ``y`` gathered over
    replicas, in replica order; ``valid`` (this replica's batch was fine)
    becomes "every replica's batch was fine". Identity with one replica.

    Everything travels in ONE all-gather (columns of a float32 matrix):
    each collective costs a cross-replica synchronisation, in the step and
    in its gradient."""
    if num_replicas() == 1 or not _global_statistics:
        return rows, y, valid
    columns = []  # (key, dtype, trailing shape, width) in packing order
    pieces = []

    def add(key, x):
        x = ops.convert_to_tensor(x)
        trailing = tuple(x.shape[1:])
        width = 1
        for d in trailing:
            width *= int(d)
        columns.append((key, x.dtype, trailing, width))
        pieces.append(ops.cast(ops.reshape(x, (-1, width)), "float32"))

    for key in sorted(rows):
        add(key, rows[key])
    b = ops.shape(pieces[0])[0]
    if valid is not None:
        add("valid", ops.cast(valid, "float32") * ops.ones((b,), "float32"))
    if y is not None:
        y_shape = tuple(ops.convert_to_tensor(y).shape)
        add("y", ops.reshape(y, (-1,)))  # integer class ids: exact in f32
    gathered = gather(ops.concatenate(pieces, axis=1))
    at = 0
    parts = {}
    for key, dtype, trailing, width in columns:
        part = ops.cast(gathered[:, at: at + width], dtype)
        parts[key] = ops.reshape(part, (-1, *trailing))
        at += width
    rows = {key: parts[key] for key in rows}
    if valid is not None:
        valid = ops.min(parts["valid"]) > 0.5
    if y is not None:
        y = ops.reshape(parts["y"], (-1, *y_shape[1:]))
    return rows, y, valid


def scale_loss(loss):
    """Divide the global-batch loss by the number of replicas: each replica
    computes the whole loss, and the optimizer sums their gradients (Keras'
    TF trainer multiplies the logged loss back, as for its own losses)."""
    n = num_replicas()
    return loss if n == 1 else loss / float(n)


def global_batch(x):
    """The global batch of which ``x`` is this process's slice (JAX with
    several processes and ``auto_shard_dataset = False``); ``x`` itself
    otherwise."""
    return _backend.globalize_batch(x)


def mean_over_replicas(value, model):
    """A Python float computed outside the step, averaged over the replicas
    of ``model``'s TF strategy or over JAX processes (so every worker ends
    with the same alpha); ``value`` itself elsewhere."""
    return _backend.mean_over_replicas(value, model)


def check_single_process(model):
    """PyTorch: raise if ``model`` is trained by more than one process or
    device, where its batch statistics would silently be per device."""
    if keras.backend.backend() != "torch":
        return
    world = _backend.torch_world_size()
    replicated = getattr(model, "_is_replica", False)
    if world > 1 or replicated:
        how = (
            f"torch.distributed is initialised with world_size={world}"
            if world > 1
            else "the model is a replica made by torch.nn.DataParallel"
        )
        raise RuntimeError(
            f"AdaDimModel cannot train on several devices with the PyTorch "
            f"backend ({how}): its loss is built from batch statistics "
            "(InfoNCE negatives, VICReg variance/covariance, L_mut Gram "
            "matrices) that would be computed per device, silently changing "
            "the method. Train on one device, or use JAX "
            "(keras.distribution.DataParallel) or TensorFlow "
            "(tf.distribute.MirroredStrategy) for several; see "
            "docs/distributed.md."
        )


@contextlib.contextmanager
def synchronized_batch_norm(model):
    """While training under a TF strategy with several replicas, every
    ``BatchNormalization`` layer of ``model`` normalises with statistics of
    the global batch (``synchronized=True``, restored afterwards so saved
    models stay loadable on other backends). No-op elsewhere: on JAX the
    statistics are global already."""
    strategy = getattr(model, "_distribute_strategy", None)
    layers = []
    if strategy is not None and strategy.num_replicas_in_sync > 1:
        layers = [
            layer
            for layer in model._flatten_layers()
            if isinstance(layer, keras.layers.BatchNormalization)
            and not layer.synchronized
        ]
    for layer in layers:
        layer.synchronized = True
    try:
        yield
    finally:
        for layer in layers:
            layer.synchronized = False
