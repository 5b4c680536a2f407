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
  :func:`gather_outputs` all-gathers embeddings, representations and labels
  before the loss, so every replica computes the loss of the global batch;
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

# Outputs of ``AdaDimModel.call`` with one row per image of a view; the
# probe logits hold 2b rows (view 1, then view 2).
_ROW_KEYS = ("r1", "r2", "z1", "z2", "p1", "p2", "r1m", "r2m", "z1m", "z2m")

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


def gather_outputs(out, y=None):
    """The outputs of ``AdaDimModel.call`` (and labels ``y``) of the global
    batch: ``(out, y)`` with every per-image tensor gathered over replicas.
    The step is valid only if every replica's slice is valid.

    Everything travels in ONE all-gather (columns of a float32 matrix):
    each collective costs a cross-replica synchronisation, in the step and
    in its gradient."""
    if num_replicas() == 1 or not _global_statistics:
        return out, y
    out = dict(out)
    columns = []  # (key, original dtype, width) in packing order
    pieces = []

    def add(key, x):
        x = ops.convert_to_tensor(x)
        if len(x.shape) == 1:
            x = ops.expand_dims(x, 1)
        columns.append((key, x.dtype, x.shape[1]))
        pieces.append(ops.cast(x, "float32"))

    for key in _ROW_KEYS:
        if key in out:
            add(key, out[key])
    if "probe_logits" in out:
        # 2b local rows (view 1 then view 2): each view's half travels as
        # its own columns, so the global rows stay (all view 1, all view 2).
        first, second = ops.split(out["probe_logits"], 2, axis=0)
        add("probe_logits_1", first)
        add("probe_logits_2", second)
    b = ops.shape(pieces[0])[0]
    valid = ops.cast(out["valid"], "float32") * ops.ones((b, 1), "float32")
    add("valid", valid)
    if y is not None:
        y_shape = tuple(ops.convert_to_tensor(y).shape)
        add("y", ops.reshape(y, (-1, 1)))  # integer class ids: exact in f32
    gathered = gather(ops.concatenate(pieces, axis=1))
    at = 0
    parts = {}
    for key, dtype, width in columns:
        parts[key] = ops.cast(gathered[:, at : at + width], dtype)
        at += width
    for key in _ROW_KEYS:
        if key in out:
            parts[key] = ops.reshape(parts[key], (-1, *out[key].shape[1:]))
            out[key] = parts[key]
    if "probe_logits" in out:
        out["probe_logits"] = ops.concatenate(
            [parts["probe_logits_1"], parts["probe_logits_2"]], axis=0
        )
    out["valid"] = ops.min(parts["valid"]) > 0.5
    if y is not None:
        y = ops.reshape(parts["y"], (-1, *y_shape[1:]))
    return out, y


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
