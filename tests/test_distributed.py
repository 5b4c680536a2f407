"""Distributed training computes AdaDim's batch statistics over the GLOBAL
batch: 4 devices with global batch B give the loss, gradients, probe and
alpha of one device with batch B (JAX ``keras.distribution.DataParallel``,
TensorFlow ``MirroredStrategy``), per-device statistics would be caught, and
PyTorch refuses several devices with a clear error. One step of each other
method (BYOL, SimSiam, Barlow Twins, MoCo v3, NNCLR, MoCo v2+, SwAV, DINO,
ReSSL, DeepCluster v2) gives the one-device loss, gradients and state (EMA
teachers, the queues and memory banks in the same order, DINO's centre,
DeepCluster v2's k-means prototypes), Sinkhorn-Knopp's codes are those of
the global batch, and per-replica statistics would be caught.

Device counts must be set before a backend initialises, so each backend runs
in its own subprocess: this file is also the worker script
(``python tests/test_distributed.py jax``). The module drives all three
backends itself, so it runs only in the TensorFlow pass of the suite.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MARKER = "DISTRIBUTED_JSON:"
DEVICES = 4
B = 32  # global batch (per view): 8 rows per device
STEPS = 10
LR = 0.01
GAMMA = 0.05  # large beta = gamma * alpha, so L_mut shapes the gradients


# ------------------------------------------------------------------ worker
def _data():
    import numpy as np

    rng = np.random.default_rng(7)
    n = B * STEPS
    x1 = rng.normal(size=(n, 8, 8, 1)).astype("float32")
    x2 = (np.roll(x1, 1, axis=2) + 0.3 * rng.normal(size=x1.shape)).astype(
        "float32"
    )
    y = rng.integers(0, 10, size=n).astype("int32")
    return x1, x2, y


def _make_model(**kwargs):
    """Conv-BN encoder + BN projector: batch norm is a batch statistic too."""
    import keras
    from keras import layers

    import keras_adadim as ka

    keras.utils.set_random_seed(0)
    encoder = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            layers.Conv2D(8, 3, padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.GlobalAveragePooling2D(),
        ]
    )
    projector = keras.Sequential(
        [
            layers.Dense(32, use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.Dense(16),
        ]
    )
    if "method" not in kwargs:  # AdaDim (a Method instance takes no gamma)
        kwargs.setdefault("gamma", GAMMA)
    kwargs.setdefault("num_classes", 10)
    model = ka.AdaDimModel(encoder, projector, **kwargs)
    model.compile(optimizer=keras.optimizers.SGD(LR))
    # Build symbolically (inside the caller's strategy scope, if any): an
    # eager forward pass costs seconds on JAX.
    views = [keras.KerasTensor((B, 8, 8, 1)) for _ in range(2)]
    if model.method.needs_index:
        model({"views": views, "index": keras.KerasTensor((B,), dtype="int32")})
    else:
        model(views)
    return model


class _Recorder:
    """Keras callback (built lazily): per-step logs and weights after step 1."""

    @staticmethod
    def make():
        import keras

        class Recorder(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.logs, self.after_first = [], None

            def on_epoch_end(self, epoch, logs=None):
                self.logs.append({k: float(v) for k, v in logs.items()})
                if epoch == 0:
                    self.after_first = _trainable(self.model)

        return Recorder()


def _trainable(model):
    import keras

    return [keras.ops.convert_to_numpy(v) for v in model.trainable_weights]


def _train(model, dataset, initial, steps=STEPS, alpha_every=5):
    """Set the initial weights, fit one step per epoch; return the record."""
    import keras_adadim as ka

    model.set_weights(initial)
    start = _trainable(model)
    rec = _Recorder.make()
    updater = ka.AlphaUpdater(every=alpha_every, batches=2, verbose=0)
    t0, c0 = time.time(), time.process_time()
    model.fit(
        dataset, epochs=steps, steps_per_epoch=1, verbose=0,
        callbacks=[updater, rec],
    )
    print(f"fit {steps} steps: {time.time() - t0:.1f}s wall, "
          f"{time.process_time() - c0:.1f}s CPU", file=sys.stderr)
    return {
        "logs": rec.logs,
        "start": start,
        "after_first": rec.after_first,
        "final": model.get_weights(),
        "alpha_updates": [u["alpha"] for u in updater.updates],
    }


def _compare(single, multi):
    """Max differences of loss, terms, gradients (from one SGD step) and
    every weight (trainable, BN statistics, probe) between two runs."""
    import numpy as np

    def max_diff(a, b):
        return max(float(np.max(np.abs(np.asarray(u) - np.asarray(v))))
                   for u, v in zip(a, b))

    # One SGD step: w1 = w0 - lr * g.
    grads_s = [(w0 - w1) / LR
               for w0, w1 in zip(single["start"], single["after_first"])]
    grads_m = [(w0 - w1) / LR
               for w0, w1 in zip(multi["start"], multi["after_first"])]
    keys = ("loss", "vicreg", "nce", "mut", "alpha", "probe_loss")
    first = {k: (single["logs"][0][k], multi["logs"][0][k]) for k in keys}
    curve = {k: [[s[k], m[k]] for s, m in zip(single["logs"], multi["logs"])]
             for k in ("loss", "alpha")}
    rel = [abs(s - m) / max(abs(s), 1e-6) for s, m in curve["loss"]]
    return {
        "first_step": first,
        "loss_curve": curve["loss"],
        "alpha_curve": curve["alpha"],
        "max_rel_loss_diff_over_steps": max(rel),
        "max_grad_diff": max_diff(grads_s, grads_m),
        "max_grad": max(float(np.max(np.abs(g))) for g in grads_s),
        "max_weight_diff_step1": max_diff(single["after_first"],
                                          multi["after_first"]),
        "max_weight_diff_final": max_diff(single["final"], multi["final"]),
        "alpha_updates": [single["alpha_updates"], multi["alpha_updates"]],
        "steps": len(single["logs"]),
    }


def _per_device_loss(model, initial):
    """Loss of the first batch with its statistics taken per quarter (what a
    per-device implementation would compute), vs over the whole batch."""
    import keras
    import numpy as np
    from keras import ops

    from keras_adadim.losses.adadim import combine_adadim

    x1, x2, _ = _data()
    model.set_weights(initial)
    alpha = float(ops.convert_to_numpy(model.alpha))

    def loss_of(a, b):
        with keras.StatelessScope():
            out = model((a, b), training=True)
        t = model.loss_terms(out)
        return float(combine_adadim(t["vicreg"], t["nce"], t["mut"], alpha,
                                    GAMMA * alpha))

    whole = loss_of(x1[:B], x2[:B])
    q = B // DEVICES
    parts = [loss_of(x1[i:i + q], x2[i:i + q]) for i in range(0, B, q)]
    return {"global": whole, "per_device_mean": float(np.mean(parts))}


def _replica_spread_tf(model, strategy):
    """Largest difference of any variable between the replicas' copies."""
    import numpy as np

    spread = 0.0
    for v in model.weights:
        copies = [np.asarray(t) for t in
                  strategy.experimental_local_results(v.value)]
        spread = max(spread, max(float(np.max(np.abs(c - copies[0])))
                                 for c in copies))
    return spread


def _tf_dataset(with_index=False):
    """The batches ``((x1, x2), y)``; with image indices
    ``({"views": (x1, x2), "index": i}, y)``."""
    import numpy as np
    import tensorflow as tf

    x1, x2, y = _data()
    x = (x1, x2)
    if with_index:
        x = {"views": x, "index": np.arange(len(x1), dtype="int64")}
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    return ds.batch(B, drop_remainder=True).repeat()


def _predictor():
    import keras

    return keras.Sequential([keras.layers.Dense(16)])


def _check_gather_packing(strategy):
    """``gather_rows`` on rows of every kind a method's forward pass and
    target branch produce (online, predictor and teacher outputs ``r1t``..,
    matrices and a rank-3 row, an integer row), the labels and the validity
    flag: the gathered tensors equal the replicas' rows concatenated in
    replica order, dtypes and trailing shapes kept; ``valid`` is "every
    replica's batch was fine" (True, then False when replica 2 alone had a
    bad batch)."""
    import numpy as np
    import tensorflow as tf

    from keras_adadim import distribute

    b, n = 3, strategy.num_replicas_in_sync
    keys = ("r1", "r2", "z1", "z2", "p1", "p2", "r1t", "r2t", "z1t", "z2t")

    def local(i):
        i = tf.cast(i, tf.float32)
        rows = tf.range(b, dtype=tf.float32)[:, None]
        out = {k: tf.fill((b, 2 + j), 100.0 * i + j) + rows
               for j, k in enumerate(keys)}
        out["crops"] = 100.0 * i + rows[:, :, None] + tf.zeros((b, 2, 3))
        out["index"] = tf.cast(10 * i, tf.int32) + tf.range(b)
        return out, tf.cast(10 * i + tf.range(b, dtype=tf.float32), tf.int32)

    def step():
        ctx = tf.distribute.get_replica_context()
        i = ctx.replica_id_in_sync_group
        rows, y = local(i)
        got_rows, got_y, ok = distribute.gather_rows(
            rows, y, tf.constant(True))
        _, _, one_bad = distribute.gather_rows(rows, y, tf.not_equal(i, 2))
        return got_rows, got_y, ok, one_bad

    got = strategy.run(tf.function(step))
    got_rows, got_y, ok_valid, bad_valid = [
        tf.nest.map_structure(
            lambda v: strategy.experimental_local_results(v)[0].numpy(), g)
        for g in got]
    parts = [local(i) for i in range(n)]
    ok = bool(np.array_equal(got_y, np.concatenate([p[1] for p in parts])))
    ok = ok and got_y.dtype == np.int32
    ok = ok and set(got_rows) == set(parts[0][0])
    for k, v in got_rows.items():
        want = np.concatenate([p[0][k].numpy() for p in parts])
        ok = ok and v.dtype == want.dtype and np.array_equal(v, want)
    return bool(ok and ok_valid and not bad_valid)


def _sinkhorn_scores():
    import numpy as np

    rng = np.random.default_rng(3)
    return rng.uniform(-1, 1, size=(B, 16)).astype("float32")


def _sinkhorn_diffs(global_codes, per_replica_codes):
    """Max differences of codes computed over the global batch by the
    distributed path, and by replicas on their own rows, from one device's."""
    import numpy as np

    from keras_adadim.losses.sinkhorn import sinkhorn_knopp

    one = np.asarray(sinkhorn_knopp(_sinkhorn_scores()))
    return {"global": float(np.max(np.abs(np.asarray(global_codes) - one))),
            "per_replica": float(np.max(np.abs(np.asarray(per_replica_codes)
                                               - one)))}


def _sinkhorn_tf(strategy):
    """Sinkhorn-Knopp's codes of B score rows split over the replicas: each
    replica gathers the global batch's scores (what the model does) and
    gets the one-device codes of its rows; on its own rows alone it would
    not."""
    import tensorflow as tf

    from keras_adadim import distribute
    from keras_adadim.losses.sinkhorn import sinkhorn_knopp

    scores = tf.constant(_sinkhorn_scores())
    n = strategy.num_replicas_in_sync
    rows = B // n

    def step():
        i = tf.distribute.get_replica_context().replica_id_in_sync_group
        mine = scores[i * rows:(i + 1) * rows]
        codes = sinkhorn_knopp(distribute.gather(mine))
        return codes[i * rows:(i + 1) * rows], sinkhorn_knopp(mine)

    got = strategy.run(tf.function(step))
    glob, local = (tf.concat([t.numpy() for t in
                              strategy.experimental_local_results(g)], 0)
                   for g in got)
    return _sinkhorn_diffs(glob, local)


def _sinkhorn_jax(distribution):
    """Sinkhorn-Knopp jitted on scores sharded over the devices as
    DataParallel shards a batch: XLA keeps its sums global."""
    import jax
    import numpy as np

    from keras_adadim.losses.sinkhorn import sinkhorn_knopp

    scores = _sinkhorn_scores()
    layout = distribution.get_data_layout(scores.shape).backend_layout
    sharded = jax.device_put(scores, layout)
    codes = jax.jit(sinkhorn_knopp)(sharded)
    local = np.concatenate([np.asarray(sinkhorn_knopp(part))
                            for part in np.split(scores, len(jax.devices()))])
    out = _sinkhorn_diffs(np.asarray(codes), local)
    out["shards"] = len(sharded.sharding.device_set)
    return out


# The methods of keras_adadim.methods besides AdaDim: ONE step each (tracing
# a 4-replica step is the cost), single device vs 4 devices.
NEW_METHODS = ("byol", "simsiam", "barlow_twins", "mocov3", "nnclr",
               "mocov2plus", "swav", "dino", "ressl", "deepclusterv2")
# FeatureQueue state: queues and support sets (how many).
QUEUE_METHODS = {"nnclr": 1, "mocov2plus": 2, "swav": 2, "ressl": 1}
QUEUE = 2 * B  # the queues: the pushed global batch + older rows


def _method_model(name):
    """The tiny networks of ``_make_model`` trained by method ``name``
    (predictor hidden width 32 where the method has one, queues of 2
    global batches)."""
    import keras_adadim as ka

    uses = ka.METHODS[name]["uses"]
    kwargs = {}
    if "predictor_hidden_dim" in uses:
        kwargs["predictor_hidden_dim"] = 32
    if "queue_size" in uses:
        kwargs[uses["queue_size"]] = QUEUE
    # Small heads; no frozen epoch (every part gets its gradient in the one
    # step) and SwAV's queue in use from the start (its rows enter
    # Sinkhorn-Knopp's sums with the global batch's).
    kwargs.update({
        "swav": {"num_prototypes": 16, "freeze_prototypes_epochs": 0,
                 "queue_start_epoch": 0},
        "dino": {"num_prototypes": 16, "freeze_last_layer_epochs": 0,
                 "base_momentum": 0.9},
        "deepclusterv2": {"num_prototypes": (8, 6), "num_images": B * STEPS},
    }.get(name, {}))
    model = _make_model(method=ka.methods.get_method(name, **kwargs))
    if model.method.needs_index:
        _fill_banks(model)
    return model


def _fill_banks(model):
    """DeepCluster v2's memory banks as after an epoch (seeded unit rows,
    every image embedded), so that the k-means before the step gives every
    image a cluster and the step has a loss and gradients (with empty
    banks the first epoch's loss is 0)."""
    import numpy as np

    from keras_adadim.methods.clustering import MemoryBank

    rng = np.random.default_rng(11)
    for layer in model.method._flatten_layers():
        if isinstance(layer, MemoryBank):
            rows = rng.normal(size=tuple(layer.rows.shape))
            layer.rows.assign((rows / np.linalg.norm(rows, axis=1, keepdims=True)
                               ).astype("float32"))
            layer.filled.assign(np.ones(tuple(layer.filled.shape), "float32"))


def _banks(model):
    """The method's MemoryBanks' rows, stacked (banks, N, F), or None."""
    import keras
    import numpy as np

    from keras_adadim.methods.clustering import MemoryBank

    banks = [keras.ops.convert_to_numpy(layer.rows)
             for layer in model.method._flatten_layers()
             if isinstance(layer, MemoryBank)]
    return np.stack(banks) if banks else None


def _queue(model):
    """The method's FeatureQueues' rows, stacked (queues, QUEUE, F), in
    layer order (NNCLR: its support set; MoCo v2+: queue1, queue2)."""
    import keras
    import numpy as np

    from keras_adadim.methods.components import FeatureQueue

    queues = [keras.ops.convert_to_numpy(layer.queue)
              for layer in model.method._flatten_layers()
              if isinstance(layer, FeatureQueue)]
    return np.stack(queues) if queues else None


def _one_step(model, initial):
    """Set the initial weights and fit ONE step on the first batch: logs,
    trainable weights before and after, every weight after (teacher, BN
    statistics, queue, probe) and NNCLR's queue before and after."""
    import keras

    model.set_weights(initial)
    start, queue0, banks0 = _trainable(model), _queue(model), _banks(model)
    t0, c0 = time.time(), time.process_time()
    history = model.fit(_tf_dataset(model.method.needs_index), epochs=1,
                        steps_per_epoch=1, verbose=0)
    print(f"{model.method.name} 1 step: {time.time() - t0:.1f}s wall, "
          f"{time.process_time() - c0:.1f}s CPU", file=sys.stderr)
    return {
        "logs": {k: float(v[-1]) for k, v in history.history.items()},
        "start": start,
        "after": _trainable(model),
        "weights": [keras.ops.convert_to_numpy(w) for w in model.weights],
        "queue0": queue0,
        "queue": _queue(model),
        "banks0": banks0,
        "banks": _banks(model),
        "center": (keras.ops.convert_to_numpy(model.method.center)
                   if model.method.name == "dino" else None),
    }


def _compare_step(single, multi):
    """Max differences of every logged value, the gradients (from the SGD
    step), every weight and the queues (NNCLR, MoCo v2+) after one step."""
    import numpy as np

    def max_diff(a, b):
        return max(float(np.max(np.abs(np.asarray(u) - np.asarray(v))))
                   for u, v in zip(a, b))

    grads_s = [(w0 - w1) / LR for w0, w1 in zip(single["start"],
                                                single["after"])]
    grads_m = [(w0 - w1) / LR for w0, w1 in zip(multi["start"],
                                                multi["after"])]
    keys = sorted(set(single["logs"]) | set(multi["logs"]))
    cmp = {
        "first_step": {k: (single["logs"].get(k), multi["logs"].get(k))
                       for k in keys},
        "max_grad_diff": max_diff(grads_s, grads_m),
        "max_grad": max(float(np.max(np.abs(g))) for g in grads_s),
        "max_weight_diff": max_diff(single["weights"], multi["weights"]),
        "weights": [len(single["weights"]), len(multi["weights"])],
    }
    if single["center"] is not None:  # DINO's: EMA of the teacher's mean
        cmp["center_diff"] = float(np.max(np.abs(single["center"]
                                                 - multi["center"])))
        cmp["center_max"] = float(np.max(np.abs(single["center"])))
    if single["queue"] is not None:
        q0, qs, qm = single["queue0"], single["queue"], multi["queue"]
        cmp["queue_diff"] = float(np.max(np.abs(qs - qm)))
        cmp["queue_max"] = float(np.max(np.abs(qs)))
        cmp["queues"] = len(qs)
        same, pushed = True, True
        for q0_, qs_, qm_ in zip(q0, qs, qm):  # each queue of the method
            # Row i of the 4-device queue is nearest to row i of the
            # 1-device one: the same rows in the same order (float noise
            # aside).
            dist = np.sum(np.square(qm_[:, None, :] - qs_[None, :, :]),
                          axis=-1)
            same = same and np.array_equal(np.argmin(dist, axis=1),
                                           np.arange(QUEUE))
            # On one device the step pushed exactly B new rows in front.
            pushed = pushed and np.array_equal(qs_[B:], q0_[:QUEUE - B]) \
                and bool(np.all(np.any(qs_[:B] != q0_[:B], axis=1)))
        cmp["queue_same_order"] = bool(same)
        cmp["queue_pushed_global_batch"] = bool(pushed)
    if single["banks"] is not None:
        b0, bs, bm = single["banks0"], single["banks"], multi["banks"]
        cmp["bank_diff"] = float(np.max(np.abs(bs - bm)))
        cmp["bank_max"] = float(np.max(np.abs(bs)))
        # Rows written by the step, per bank: on one device exactly the
        # first batch's images 0 .. B-1.
        cmp["bank_rows_written"] = [
            np.flatnonzero(np.any(after != before, axis=1)).tolist()
            for after, before in zip(bs, b0)]
        cmp["bank_rows_written_multi"] = [
            np.flatnonzero(np.any(after != before, axis=1)).tolist()
            for after, before in zip(bm, b0)]
    return cmp


def _methods_single():
    """One step of each new method on one device: {name: (initial, run)}."""
    out = {}
    for name in NEW_METHODS:
        model = _method_model(name)
        weights = model.get_weights()
        out[name] = (weights, _one_step(model, weights))
    return out


def worker_tensorflow():
    """MirroredStrategy over 4 logical CPUs vs no strategy. Tracing a
    4-replica step is what costs time here, so the end-to-end runs use the
    plain model (10 steps; then one step with the all-gather off), each
    other method runs ONE step (Barlow Twins also with the all-gather off)
    and the gathering of teacher/predictor outputs is checked directly;
    KERAS_ADADIM_SLOW_TESTS=1 adds a 2-step momentum + predictor run."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * DEVICES
    )
    from keras_adadim import distribute

    strategy = tf.distribute.MirroredStrategy(
        [f"/cpu:{i}" for i in range(DEVICES)]
    )
    res = {"replicas": strategy.num_replicas_in_sync,
           "gather_packing_ok": _check_gather_packing(strategy),
           "sinkhorn": _sinkhorn_tf(strategy)}

    model = _make_model()
    initial = model.get_weights()
    res["per_device_loss"] = _per_device_loss(model, initial)
    single = _train(model, _tf_dataset(), initial)
    with strategy.scope():
        multi_model = _make_model()
    multi = _train(multi_model, _tf_dataset(), initial)
    res["tensorflow"] = _compare(single, multi)
    res["replica_spread"] = _replica_spread_tf(multi_model, strategy)

    if os.environ.get("KERAS_ADADIM_SLOW_TESTS") == "1":

        def momentum_model():
            return _make_model(momentum=0.99, predictor=_predictor())

        model = momentum_model()
        m_initial = model.get_weights()
        m_single = _train(model, _tf_dataset(), m_initial, steps=2)
        with strategy.scope():
            model = momentum_model()
        res["momentum"] = _compare(
            m_single, _train(model, _tf_dataset(), m_initial, steps=2))

    # The new methods: one step each, single device vs 4 replicas.
    res["methods"] = {}
    singles = _methods_single()
    for name, (m_initial, m_single) in singles.items():
        with strategy.scope():
            model = _method_model(name)
        cmp = _compare_step(m_single, _one_step(model, m_initial))
        cmp["replica_spread"] = _replica_spread_tf(model, strategy)
        res["methods"][name] = cmp

    # The all-gather switched off: per-replica statistics, one step.
    distribute.set_global_batch_statistics(False)
    with strategy.scope():
        local_model = _make_model()
    local = _train(local_model, _tf_dataset(), initial, steps=1)
    res["without_gather"] = _compare(single, local)
    # The same for a new method: Barlow Twins' cross-correlation per replica.
    bt_initial, bt_single = singles["barlow_twins"]
    with strategy.scope():
        model = _method_model("barlow_twins")
    res["barlow_twins_without_gather"] = _compare_step(
        bt_single, _one_step(model, bt_initial))
    # And for the statistics of the clustering methods: SwAV's
    # Sinkhorn-Knopp sums and DINO's centre per replica.
    for name in ("swav", "dino"):
        m_initial, m_single = singles[name]
        with strategy.scope():
            model = _method_model(name)
        res[f"{name}_without_gather"] = _compare_step(
            m_single, _one_step(model, m_initial))
    distribute.set_global_batch_statistics(True)
    return res


def worker_jax():
    """keras.distribution.DataParallel over 4 host devices vs none."""
    import jax
    import keras

    model = _make_model()
    initial = model.get_weights()
    single = _train(model, _tf_dataset(), initial)
    singles = _methods_single()  # before the distribution is set

    devices = jax.devices()
    distribution = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(distribution)
    multi_model = _make_model()
    multi = _train(multi_model, _tf_dataset(), initial)
    methods = {name: _compare_step(m_single, _one_step(_method_model(name),
                                                       m_initial))
               for name, (m_initial, m_single) in singles.items()}
    sinkhorn = _sinkhorn_jax(distribution)
    kernel = multi_model.encoder.weights[0].value
    data_layout = distribution.get_data_layout((B, 8, 8, 1)).backend_layout
    return {"jax": _compare(single, multi),
            "devices": len(devices),
            # Variables replicated on, and batches split over, all devices.
            "variable_devices": len(kernel.sharding.device_set),
            "batch_shards": len(data_layout.addressable_devices_indices_map(
                (B, 8, 8, 1))),
            "batch_shard_rows": data_layout.shard_shape((B, 8, 8, 1))[0],
            "methods": methods, "sinkhorn": sinkhorn}


def worker_torch():
    """Two gloo ranks (world_size 2) try to fit: each must get the error,
    also for a model built before the process group was initialised."""
    import torch.distributed as dist

    x1, x2, _ = _data()
    model = _make_model(num_classes=None, alpha=0.5)
    dist.init_process_group("gloo")
    try:
        model.fit((x1[:B], x2[:B]), batch_size=B, epochs=1, verbose=0)
        error = None
    except RuntimeError as e:
        error = str(e)
    dist.destroy_process_group()
    # torch.nn.DataParallel marks its per-GPU copies with `_is_replica`
    # (torch.nn.parallel.replicate); there are no GPUs here, so mark one.
    model._is_replica = True
    try:
        model((x1[:B], x2[:B]))
        replica_error = None
    except RuntimeError as e:
        replica_error = str(e)
    return {"error": error, "replica_error": replica_error,
            "rank": int(os.environ["RANK"])}


# ------------------------------------------------- multi-host (opt-in, slow)
# Two processes on this machine stand in for two hosts: JAX processes joined
# by keras.distribution.initialize (gloo CPU collectives, 2 devices each, so
# 4 in all), and TF MultiWorkerMirroredStrategy workers (TF_CONFIG, gRPC).
# A reference process trains the same model on one device with the global
# batch; it runs first and leaves the initial weights in MH_DIR.
MH_STEPS = 3


def _mh_rows(part, parts):
    """Rows of process ``part``'s slice of each of the MH_STEPS batches."""
    import numpy as np

    h = B // parts
    return np.concatenate([np.arange(k * B + part * h, k * B + (part + 1) * h)
                           for k in range(MH_STEPS)])


def _mh_save(res, weights):
    import numpy as np

    res["weights_file"] = os.path.join(
        os.environ["MH_DIR"], f"{os.environ['MH_NAME']}.npz")
    np.savez(res["weights_file"], *weights)
    return res


def _mh_initial(model):
    import numpy as np

    path = os.path.join(os.environ["MH_DIR"], "initial.npz")
    if os.environ.get("MH_PART", "ref") == "ref":
        np.savez(path, *model.get_weights())
    d = np.load(path)
    model.set_weights([d[f"arr_{i}"] for i in range(len(d.files))])


def worker_jax_multihost():
    """Reference (MH_PART=ref) or one of two JAX processes, each feeding its
    half of every batch (auto_shard_dataset = False), alpha included."""
    import jax
    import keras
    import numpy as np

    import keras_adadim as ka

    part = os.environ["MH_PART"]
    parts = 1 if part == "ref" else 2
    if part != "ref":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        keras.distribution.initialize(
            job_addresses=f"localhost:{os.environ['MH_PORT']}",
            num_processes=2, process_id=int(part))
        dist = keras.distribution.DataParallel(devices=jax.devices())
        dist.auto_shard_dataset = False
        keras.distribution.set_distribution(dist)
    model = _make_model()
    _mh_initial(model)
    x1, x2, y = _data()
    rows = _mh_rows(0 if part == "ref" else int(part), parts)
    first = rows[: B // parts]
    updater = ka.AlphaUpdater(every=1, batches=1, verbose=0,
                              data=[((x1[first], x2[first]),)])
    means = []
    cb = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda b, logs: means.append(float(logs["loss"])))
    model.fit((x1[rows], x2[rows]), y[rows], batch_size=B // parts,
              shuffle=False, verbose=0, callbacks=[updater, cb])
    # The logged loss is the running mean over the epoch: undo it.
    losses = [(k + 1) * m - k * p for k, (m, p) in
              enumerate(zip(means, [0.0] + means[:-1]))]
    return _mh_save({"losses": losses, "alpha": updater.updates[0]["alpha"],
                     "processes": jax.process_count(),
                     "devices": jax.device_count()},
                    [np.asarray(w) for w in model.get_weights()])


def worker_tf_multiworker():
    """Reference or one of two MultiWorkerMirroredStrategy workers (one CPU
    replica each), trained by a custom loop with ``strategy.run``: Keras 3's
    ``fit`` fails under this strategy for every model (upstream,
    tensorflow/tensorflow#72388)."""
    import tensorflow as tf

    part = os.environ["MH_PART"]
    if part == "ref":
        strategy = tf.distribute.get_strategy()
    else:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    import keras
    import numpy as np

    from keras_adadim import distribute

    with strategy.scope():
        model = _make_model()
    _mh_initial(model)
    n = strategy.num_replicas_in_sync
    x1, x2, y = _data()

    def dataset_fn(ctx=None):
        rows = _mh_rows(0 if ctx is None else ctx.input_pipeline_id, n)
        ds = tf.data.Dataset.from_tensor_slices(
            ((x1[rows], x2[rows]), y[rows]))
        return ds.batch(B // n)

    data = (dataset_fn() if part == "ref"
            else strategy.distribute_datasets_from_function(dataset_fn))
    # alpha: every worker estimates it on the global first batch (drawn from
    # the unsharded data, as AlphaUpdater does); the mean over replicas keeps
    # workers identical even if their draws differed.
    ratio = model.embedding_rank_ratio((x1[:B], x2[:B]))
    model.set_alpha(distribute.mean_over_replicas(ratio, model))
    spread_check = distribute.mean_over_replicas(
        float(0 if part == "ref" else part), model)

    @tf.function
    def step(batch):
        def replica_step(batch):
            (a, b), labels = batch
            with tf.GradientTape() as tape:
                out = model((a, b), training=True)
                loss = model.compute_loss(y=labels, y_pred=out)
            grads = tape.gradient(loss, model.trainable_variables)
            model.optimizer.apply_gradients(
                zip(grads, model.trainable_variables))
            return loss * distribute.num_replicas()  # global-batch loss

        out = strategy.run(replica_step, args=(batch,))
        return strategy.experimental_local_results(out)[0]

    with distribute.synchronized_batch_norm(model):
        losses = [float(step(batch)) for batch in data]
    return _mh_save({"losses": losses, "alpha": float(model.alpha.numpy()),
                     "mean_of_worker_ids": spread_check, "replicas": n},
                    [keras.ops.convert_to_numpy(w) for w in model.weights])


def _main(backend):
    if backend == "jax":
        flags = os.environ.get("XLA_FLAGS", "")
        assert f"device_count={DEVICES}" in flags, "set XLA_FLAGS first"
    t0 = time.time()
    res = {"tensorflow": worker_tensorflow, "jax": worker_jax,
           "torch": worker_torch, "jax-multihost": worker_jax_multihost,
           "tf-multiworker": worker_tf_multiworker}[backend]()
    res["seconds"] = round(time.time() - t0, 1)
    print(MARKER + json.dumps(res))


# ------------------------------------------------------------------ tests
def _env(backend, **extra):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
               JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="")
    env.pop("XLA_FLAGS", None)
    env.update(extra)
    return env


def _launch(worker, **extra):
    backend = {"jax-multihost": "jax", "tf-multiworker": "tensorflow"}.get(
        worker, worker)
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), worker], cwd=REPO,
        env=_env(backend, **extra), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )


def _collect(name, proc, deadline):
    try:
        stdout, stderr = proc.communicate(
            timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"{name} subprocess timed out")
    lines = [ln for ln in stdout.splitlines() if ln.startswith(MARKER)]
    assert proc.returncode == 0 and lines, (
        f"{name} failed (rc {proc.returncode}):\n{stderr[-4000:]}")
    return json.loads(lines[-1][len(MARKER):])


if __name__ != "__main__":
    import keras

    pytestmark = pytest.mark.skipif(
        keras.backend.backend() != "tensorflow",
        reason="drives all three backends itself in subprocesses; run once, "
        "in the TensorFlow pass",
    )


@pytest.fixture(scope="module")
def results():
    """JAX and TF workers side by side (one per core), then two torch ranks.
    About 250 s of CPU in all (measured: TF worker 151 s, JAX worker 93 s,
    side by side; most of it the ten methods' one-step checks, tracing
    4-replica TF steps and compiling JAX steps), 3-5 min on a 2-core
    machine; the deadline is generous because the machine may be shared."""
    deadline = time.monotonic() + 900.0
    procs = {
        "jax": _launch("jax", XLA_FLAGS=(
            f"--xla_force_host_platform_device_count={DEVICES}")),
        "tensorflow": _launch("tensorflow"),
    }
    res = {"jax": _collect("jax", procs.pop("jax"), deadline)}
    port = str(29500 + os.getpid() % 1000)
    for rank in range(2):
        procs[f"torch{rank}"] = _launch(
            "torch", RANK=str(rank), WORLD_SIZE="2",
            MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    res.update({name: _collect(name, p, deadline)
                for name, p in procs.items()})
    return res


# Float32 tolerances: 4 devices sum in a different order than one.
LOSS_RTOL = 1e-5
GRAD_ATOL = 1e-4


def _assert_matches(cmp):
    for key, (single, multi) in cmp["first_step"].items():
        assert abs(single - multi) <= LOSS_RTOL * max(1.0, abs(single)), (
            key, single, multi)
    assert cmp["max_grad_diff"] <= GRAD_ATOL * max(1.0, cmp["max_grad"]), cmp
    assert cmp["max_weight_diff_step1"] <= 1e-5, cmp
    # Ten steps track the single-device run.
    assert cmp["max_rel_loss_diff_over_steps"] < 1e-4, cmp["loss_curve"]
    assert cmp["max_weight_diff_final"] < 1e-4, cmp
    single_alpha, multi_alpha = cmp["alpha_updates"]
    assert len(single_alpha) == len(multi_alpha) >= 1
    assert max(abs(a - b) for a, b in zip(single_alpha, multi_alpha)) < 1e-5


def test_jax_data_parallel_equals_single_device(results):
    res = results["jax"]
    assert res["devices"] == DEVICES and res["variable_devices"] == DEVICES
    # Each device gets B / 4 rows of every batch.
    assert res["batch_shards"] == DEVICES
    assert res["batch_shard_rows"] == B // DEVICES
    _assert_matches(res["jax"])


def test_tensorflow_mirrored_equals_single_device(results):
    res = results["tensorflow"]
    assert res["replicas"] == DEVICES
    _assert_matches(res["tensorflow"])
    # Replicas' copies of every variable (BN statistics, probe, alpha) agree.
    assert res["replica_spread"] == 0.0
    # Momentum-branch, predictor, probe and label rows gather in order.
    assert res["gather_packing_ok"]


@pytest.mark.skipif(os.environ.get("KERAS_ADADIM_SLOW_TESTS") != "1",
                    reason="set KERAS_ADADIM_SLOW_TESTS=1 (about +60 s CPU)")
def test_tensorflow_momentum_variant_equals_single_device(results):
    cmp = results["tensorflow"]["momentum"]
    for key, (single, multi) in cmp["first_step"].items():
        assert abs(single - multi) <= LOSS_RTOL * max(1.0, abs(single)), key
    assert cmp["max_grad_diff"] <= GRAD_ATOL * max(1.0, cmp["max_grad"])
    assert cmp["max_weight_diff_final"] < 1e-4


def test_per_device_statistics_would_be_detected(results):
    """Statistics of each device's quarter of the batch give another loss,
    far outside the tolerance of the equality tests above. (Computed
    explicitly, on TensorFlow, where eager passes are cheap; under JAX there
    is no gather to switch off: GSPMD keeps the step global, which the
    equality test checks with this same tolerance.)"""
    p = results["tensorflow"]["per_device_loss"]
    assert abs(p["global"] - p["per_device_mean"]) > 100 * LOSS_RTOL * abs(
        p["global"]), p


def test_tensorflow_without_gather_fails_the_equality(results):
    """With the all-gather switched off (per-replica statistics) the
    single-device equality asserted above fails: the tests catch it."""
    cmp = results["tensorflow"]["without_gather"]
    single, local = cmp["first_step"]["loss"]
    assert abs(single - local) > 100 * LOSS_RTOL * abs(single), cmp
    assert cmp["max_grad_diff"] > 100 * GRAD_ATOL * max(1.0, cmp["max_grad"])
    with pytest.raises(AssertionError):
        _assert_matches(cmp)


def _assert_step_matches(cmp):
    """One step on 4 devices gives the one-device step: every logged value
    (loss, terms, momentum, probe), the gradients and every weight after it
    (online and teacher networks, BN statistics, the queues, probe)."""
    assert cmp["weights"][0] == cmp["weights"][1], cmp["weights"]
    for key, (single, multi) in cmp["first_step"].items():
        assert single is not None and multi is not None, (key, cmp)
        assert abs(single - multi) <= LOSS_RTOL * max(1.0, abs(single)), (
            key, single, multi)
    assert cmp["max_grad"] > 1e-2, cmp  # the step did train
    assert cmp["max_grad_diff"] <= GRAD_ATOL * max(1.0, cmp["max_grad"]), cmp
    assert cmp["max_weight_diff"] <= 1e-5, cmp


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
@pytest.mark.parametrize("method", NEW_METHODS)
def test_new_method_one_step_equals_single_device(results, backend, method):
    """BYOL, SimSiam, Barlow Twins, MoCo v3, NNCLR, MoCo v2+: one training
    step under JAX DataParallel / TF MirroredStrategy on 4 devices = one
    device."""
    cmp = results[backend]["methods"][method]
    assert {"loss", method, "probe_loss"} <= set(cmp["first_step"]), cmp
    _assert_step_matches(cmp)
    if backend == "tensorflow":
        # Replicas hold identical teachers, queues, BN statistics.
        assert cmp["replica_spread"] == 0.0, cmp


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
@pytest.mark.parametrize("method", list(QUEUE_METHODS))
def test_queue_holds_the_global_batch_in_order(results, backend, method):
    """After one step NNCLR's support set, each of MoCo v2+'s and SwAV's two
    queues and ReSSL's queue hold the B rows of the global batch in front
    (not a replica's B / 4), in the one-device order."""
    cmp = results[backend]["methods"][method]
    assert cmp["queues"] == QUEUE_METHODS[method], cmp
    assert cmp["queue_pushed_global_batch"], cmp  # one device: B rows in
    assert cmp["queue_same_order"], cmp
    # Values: float32 noise only (TF's synchronised batch norm takes the
    # global moments from all-reduced sums: ~1e-6 relative on the
    # embeddings), the weight tolerance of the tests above; a misplaced row
    # would differ by O(queue_max).
    assert cmp["queue_diff"] <= 1e-5 * max(1.0, cmp["queue_max"]), cmp


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_memory_bank_holds_the_global_batch_by_index(results, backend):
    """After one step DeepCluster v2's two memory banks hold the embeddings
    of the global batch's B images under their indices (not a replica's
    B / 4), equal to the one-device rows; a per-replica write would leave
    the other replicas' rows (and TF's replicas would disagree)."""
    cmp = results[backend]["methods"]["deepclusterv2"]
    assert cmp["bank_rows_written"] == [list(range(B))] * 2, cmp
    assert cmp["bank_rows_written_multi"] == [list(range(B))] * 2, cmp
    assert cmp["bank_diff"] <= 1e-5 * max(1.0, cmp["bank_max"]), cmp
    assert cmp["first_step"]["deepclusterv2"][0] > 0.1, cmp  # clusters in use


def test_tensorflow_per_replica_barlow_twins_fails_the_equality(results):
    """Barlow Twins with the all-gather switched off (cross-correlation of
    each replica's 8 rows) gives another first-step loss and gradients: the
    equality test above would catch a per-replica statistic."""
    cmp = results["tensorflow"]["barlow_twins_without_gather"]
    single, local = cmp["first_step"]["loss"]
    assert abs(single - local) > 100 * LOSS_RTOL * max(1.0, abs(single)), cmp
    assert cmp["max_grad_diff"] > 100 * GRAD_ATOL * max(1.0, cmp["max_grad"])
    with pytest.raises(AssertionError):
        _assert_step_matches(cmp)


def test_torch_refuses_several_devices(results):
    for rank in range(2):
        res = results[f"torch{rank}"]
        assert res["rank"] == rank
        assert "world_size=2" in (res["error"] or ""), res
        assert "docs/distributed.md" in res["error"]
        assert "DataParallel" in (res["replica_error"] or ""), res


@pytest.mark.skipif(os.environ.get("KERAS_ADADIM_SLOW_TESTS") != "1",
                    reason="set KERAS_ADADIM_SLOW_TESTS=1 (6 processes, "
                    "about 3 min of CPU)")
def test_multi_host_equals_single_device(tmp_path):
    """Two processes as two hosts, 3 steps: JAX (2 processes x 2 devices)
    and TF MultiWorkerMirroredStrategy (2 workers) give the single-device
    losses, alpha and weights."""
    import numpy as np

    deadline = time.monotonic() + 900.0
    port = 29600 + os.getpid() % 300
    names = {"jax": "jax-multihost", "tf": "tf-multiworker"}
    results = {}
    for key, worker in names.items():  # references first: initial weights
        sub = tmp_path / key
        sub.mkdir()
        proc = _launch(worker, MH_DIR=str(sub), MH_PART="ref",
                       MH_NAME="ref")
        results[key, "ref"] = _collect(f"{key} ref", proc, deadline)
    cluster = json.dumps({"worker": [f"localhost:{port + 1}",
                                     f"localhost:{port + 2}"]})
    procs = {}
    for part in ("0", "1"):
        procs["jax", part] = _launch(
            names["jax"], MH_DIR=str(tmp_path / "jax"), MH_PART=part,
            MH_NAME=part, MH_PORT=str(port),
            XLA_FLAGS="--xla_force_host_platform_device_count=2")
        procs["tf", part] = _launch(
            names["tf"], MH_DIR=str(tmp_path / "tf"), MH_PART=part,
            MH_NAME=part, TF_CONFIG=json.dumps({
                "cluster": json.loads(cluster),
                "task": {"type": "worker", "index": int(part)}}))
    for key, proc in procs.items():
        results[key] = _collect(f"{key}", proc, deadline)

    def weights(res):
        d = np.load(res["weights_file"])
        return [d[f"arr_{i}"] for i in range(len(d.files))]

    for key in ("jax", "tf"):
        ref = results[key, "ref"]
        for part in ("0", "1"):
            got = results[key, part]
            np.testing.assert_allclose(got["losses"], ref["losses"],
                                       rtol=1e-5)
            assert abs(got["alpha"] - ref["alpha"]) < 1e-5
            diff = max(float(np.max(np.abs(a - b)))
                       for a, b in zip(weights(got), weights(ref)))
            print(f"{key} process {part}: losses {got['losses']} vs "
                  f"{ref['losses']}, alpha {got['alpha']} vs {ref['alpha']}, "
                  f"max weight diff {diff:.2e}")
            assert diff < 1e-5, (key, part, diff)
    assert results["jax", "0"]["devices"] == 4
    assert results["jax", "0"]["processes"] == 2
    assert results["tf", "0"]["replicas"] == 2
    assert results["tf", "1"]["mean_of_worker_ids"] == 0.5


if __name__ == "__main__":
    _main(sys.argv[1])


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_dino_centre_is_the_global_batch_mean(results, backend):
    """DINO's centre after one step on 4 devices is the one-device centre
    (the EMA of the teacher's mean over the GLOBAL batch); the equality
    test above checks it with every other weight, this names it."""
    cmp = results[backend]["methods"]["dino"]
    assert cmp["center_max"] > 1e-3, cmp  # the step moved it
    assert cmp["center_diff"] <= 1e-5 * max(1.0, cmp["center_max"]), cmp


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_sinkhorn_codes_are_those_of_the_global_batch(results, backend):
    """Sinkhorn-Knopp on B score rows split over 4 devices gives the
    one-device codes (TF: each replica gathers the scores, as the model
    does; JAX: XLA keeps the sums of a sharded batch global); computed on a
    replica's rows alone they differ, so the check would catch it."""
    res = results[backend]["sinkhorn"]
    assert res["global"] <= 1e-5, res
    assert res["per_replica"] > 1e-2, res
    if backend == "jax":
        assert res["shards"] == DEVICES


@pytest.mark.parametrize("method", ["swav", "dino"])
def test_tensorflow_per_replica_clustering_statistics_fail_the_equality(
        results, method):
    """SwAV with Sinkhorn-Knopp's sums per replica gives another first-step
    loss and gradients; DINO with its centre taken per replica (the first
    loss, with the initial zero centre, is the same) ends the step with
    another centre: the equality test above catches either."""
    cmp = results["tensorflow"][f"{method}_without_gather"]
    with pytest.raises(AssertionError):
        _assert_step_matches(cmp)
    if method == "swav":
        single, local = cmp["first_step"]["loss"]
        assert abs(single - local) > 100 * LOSS_RTOL * max(1.0, abs(single)), cmp
        assert cmp["max_grad_diff"] > 100 * GRAD_ATOL * max(1.0, cmp["max_grad"])
    else:
        assert cmp["center_diff"] > 100 * 1e-5 * max(1.0, cmp["center_max"]), cmp
