"""The one place where keras-adadim touches backend-specific APIs.

Everything else in the library is written against ``keras.ops``. The helper
here answers a question ``keras.ops`` cannot: whether a tensor holds concrete
values (so a data-dependent check can raise a Python error) or is symbolic /
traced (inside ``tf.function`` or ``jax.jit``), where such a check must be
skipped and the compiled-step guard in ``AdaDimModel`` takes over.
"""

import contextlib

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


def no_grad():
    """A context in which forward passes record no autograd graph: PyTorch
    records one for every op on parameters unless told not to (TensorFlow
    and JAX only differentiate inside a tape or ``jax.grad``). For passes
    outside the training step (AlphaUpdater, RepresentationMonitor)."""
    if keras.backend.backend() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


def has_accelerator():
    """Whether the backend trains on an accelerator (GPU / TPU) rather
    than the CPU: ``--augment-on auto`` makes the views there when it
    does."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU")
                    or tf.config.list_physical_devices("TPU"))
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if backend == "torch":
        import torch

        return bool(torch.cuda.is_available())
    return False


# --------------------------------------------------------------------------
# Hot-path ops: the few ``keras.ops`` reductions and reshuffles of AdaDim's
# training-step loss (keras_adadim/losses), called on PyTorch tensors
# directly. Keras's PyTorch wrappers convert and re-type every argument on
# every call: 5-30 us against a 3-5 us kernel launch, on eager PyTorch, and
# the step calls ~25 of them (benchmarks/README.md, issue 14). Under
# TensorFlow and JAX the step is traced once, so ``keras.ops`` costs
# nothing per step and is used as is. Same results as ``keras.ops`` for the
# float tensors the losses pass (tests/test_backend_hot_ops.py).
# --------------------------------------------------------------------------


_torch = None


def _on_torch():
    """The torch module when the backend is PyTorch, else None."""
    global _torch
    if keras.backend.backend() != "torch":
        return None
    if _torch is None:
        import torch

        _torch = torch
    return _torch


def _tensor(x, torch):
    # NumPy arrays and Python numbers (public helpers accept them) go
    # through Keras's conversion; tensors pass as they are.
    return x if isinstance(x, torch.Tensor) else keras.ops.convert_to_tensor(x)


def hot_sum(x, axis=None, keepdims=False):
    """``keras.ops.sum`` of a float tensor."""
    torch = _on_torch()
    if torch is None:
        return keras.ops.sum(x, axis=axis, keepdims=keepdims)
    x = _tensor(x, torch)
    if axis is None:
        return torch.sum(x)
    return torch.sum(x, dim=axis, keepdim=keepdims)


def hot_stack(xs, axis=0):
    """``keras.ops.stack`` of float tensors."""
    torch = _on_torch()
    if torch is None:
        return keras.ops.stack(xs, axis=axis)
    return torch.stack([_tensor(x, torch) for x in xs], dim=axis)


def hot_swapaxes(x, axis1, axis2):
    """``keras.ops.swapaxes``."""
    torch = _on_torch()
    if torch is None:
        return keras.ops.swapaxes(x, axis1, axis2)
    return torch.swapaxes(_tensor(x, torch), axis1, axis2)


def hot_trace(x, axis1=-2, axis2=-1):
    """``keras.ops.trace`` of a float tensor (offset 0)."""
    torch = _on_torch()
    if torch is None:
        return keras.ops.trace(x, axis1=axis1, axis2=axis2)
    return torch.sum(torch.diagonal(_tensor(x, torch), 0, axis1, axis2), dim=-1)


def hot_logsumexp(x, axis):
    """``keras.ops.logsumexp`` of a float tensor over ``axis``."""
    torch = _on_torch()
    if torch is None:
        return keras.ops.logsumexp(x, axis=axis)
    return torch.logsumexp(_tensor(x, torch), dim=axis)


# --------------------------------------------------------------------------
# Distribution (see keras_adadim/distribute.py and docs/distributed.md).
#
# Only TensorFlow needs code here: under tf.distribute each replica runs the
# step on its slice of the batch, so batch statistics must be gathered.
# JAX (keras.distribution) jits the step over sharded global arrays, whose
# ops are already global; PyTorch training is single-process only.
# --------------------------------------------------------------------------


def _tf_replica_context():
    """The tf.distribute replica context of a step running on more than one
    replica, else None (no strategy, one replica, or cross-replica code)."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return None
    return ctx


def replicas_in_step():
    """Replicas whose per-replica gradients the optimizer sums (1 if none)."""
    ctx = _tf_replica_context()
    return 1 if ctx is None else ctx.num_replicas_in_sync


def all_gather(x):
    """Concatenate ``x`` over the replicas along axis 0, in replica order.
    TF's gradient of all_gather all-reduces (SUM) the incoming gradient and
    hands each replica the slice of its own rows."""
    ctx = _tf_replica_context()
    if ctx is None:
        return x
    import tensorflow as tf

    # all_gather drops the static shape; keep every axis but the batch's.
    return tf.ensure_shape(ctx.all_gather(x, axis=0), [None, *x.shape[1:]])


def mean_over_replicas(value, model):
    """Python float ``value`` averaged over every replica of ``model``'s
    tf.distribute strategy, or over the processes of a multi-process JAX
    run, outside a step (workers may have computed different values)."""
    if keras.backend.backend() == "jax":
        import jax

        if jax.process_count() == 1:
            return value
        from jax.experimental import multihost_utils

        values = multihost_utils.process_allgather(np.float32(value))
        return float(np.mean(values))
    strategy = getattr(model, "_distribute_strategy", None)
    if strategy is None or strategy.num_replicas_in_sync == 1:
        return value
    import tensorflow as tf

    with strategy.scope():
        per_replica = strategy.run(
            lambda v: tf.distribute.get_replica_context().all_reduce("MEAN", v),
            args=(tf.constant(value, tf.float32),),
        )
    return float(strategy.experimental_local_results(per_replica)[0])


def globalize_batch(x):
    """JAX with several processes feeding their own slices of each batch
    (``auto_shard_dataset = False``): this process's rows -> the global
    batch, sharded as Keras shards training data. Identity otherwise (with
    auto-sharding, the data given to ``fit`` holds global batches)."""
    if keras.backend.backend() != "jax":
        return x
    import jax

    dist = keras.distribution.distribution()
    if dist is None or jax.process_count() == 1 or dist.auto_shard_dataset:
        return x

    def to_global(a):
        a = np.asarray(a)
        global_shape = (a.shape[0] * jax.process_count(), *a.shape[1:])
        layout = dist.get_data_layout(global_shape).backend_layout
        return jax.make_array_from_process_local_data(layout, a, global_shape)

    return keras.tree.map_structure(to_global, x)


def torch_world_size():
    """World size of an initialised torch.distributed process group, else 1."""
    if keras.backend.backend() != "torch":
        return 1
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


# --------------------------------------------------------------------------
# Data-parallel devices for `pretrain(devices=N)` / `adadim pretrain
# --devices N`: the strategy or distribution the model is built under.
# --------------------------------------------------------------------------
_DEVICES_FIX = (
    "pass --devices with at most that many (`devices` in Python), or run "
    "on a machine with more accelerators")


@contextlib.contextmanager
def data_parallel(n):
    """Build and train under ``n`` data-parallel devices: the machine's
    GPUs, or ``n`` virtual CPU devices on a machine without one (the same
    numbers as ``n`` GPUs, no speed-up: a way to check a multi-device run
    before renting the GPUs). Yields a description of the devices.
    ``ValueError`` naming ``devices`` when the backend cannot."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        with _tf_mirrored(n) as description:
            yield description
    elif backend == "jax":
        with _jax_data_parallel(n) as description:
            yield description
    else:
        raise ValueError(
            f"`devices`={n}: the {backend} backend trains on one device "
            "here (its batch statistics would be computed per device; see "
            "docs/distributed.md). Use --devices 1, or KERAS_BACKEND=jax or "
            "tensorflow for several devices.")


@contextlib.contextmanager
def _tf_mirrored(n):
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        if len(gpus) < n:
            raise ValueError(
                f"`devices`={n}, but TensorFlow sees {len(gpus)} GPU(s): "
                + _DEVICES_FIX + ".")
        names = [f"/gpu:{i}" for i in range(n)]
        kind = "GPUs"
    else:
        cpu = tf.config.list_physical_devices("CPU")[0]
        configured = tf.config.get_logical_device_configuration(cpu) or []
        if len(configured) < n:
            try:
                tf.config.set_logical_device_configuration(
                    cpu, [tf.config.LogicalDeviceConfiguration()] * n)
            except RuntimeError as e:
                raise ValueError(
                    f"`devices`={n}: TensorFlow has already started with "
                    f"{max(1, len(configured))} CPU device(s) in this "
                    "process, and virtual devices can only be made before "
                    "it starts. Run `adadim pretrain --devices "
                    f"{n}` in a new process (or call pretrain before any "
                    f"TensorFlow work). ({e})") from None
        names = [f"/cpu:{i}" for i in range(n)]
        kind = "virtual CPU devices (no GPU)"
    strategy = tf.distribute.MirroredStrategy(names)
    with strategy.scope():
        yield f"{n} {kind}, TensorFlow MirroredStrategy"


@contextlib.contextmanager
def _jax_data_parallel(n):
    import jax

    devices = jax.devices()
    if len(devices) < n:
        hint = ""
        if devices[0].platform == "cpu":
            hint = (
                f" Without a GPU, JAX makes {n} CPU devices when "
                f"XLA_FLAGS=--xla_force_host_platform_device_count={n} is "
                "set before it starts (`adadim pretrain --devices` sets it).")
        raise ValueError(
            f"`devices`={n}, but JAX sees {len(devices)} "
            f"{devices[0].platform} device(s): " + _DEVICES_FIX + "." + hint)
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=devices[:n]))
    try:
        kind = ("virtual CPU devices (no GPU)"
                if devices[0].platform == "cpu" else
                f"{devices[0].platform.upper()} devices")
        yield f"{n} {kind}, JAX DataParallel"
    finally:
        keras.distribution.set_distribution(previous)
