"""Can the two-view input pipeline keep up with training?

Measures, in one process and interleaved round by round (so that load from
other processes falls on both alike):

1. the pipeline rate: images/s (each image -> two views) of
   ``pretraining_dataset(from_arrays(x), "asymmetric", image_size=32)`` on
   CIFAR-like random uint8 data (the paper's Table 11 asymmetric scheme,
   tf.data on the CPU cores of this machine);
2. the training rate: images/s of an ``AdaDimModel`` training step
   (``train_on_batch`` on two pre-made views of ``--train-batch`` images,
   no input pipeline) with a ResNet-18 CIFAR backbone
   (``keras_adadim.models.get_backbone("resnet18", (32, 32, 3))``; when that
   is not available, ``small_cnn_encoder((32, 32, 3), width=64)``, and the
   output says so) and the paper's baseline projector (3-layer MLP -> 2048);

and prints both rates and their ratio (pipeline / training; target >= 3,
i.e. the pipeline leaves the training step input-bound-free with margin).
The backend is ``KERAS_BACKEND`` (default TensorFlow); the pipeline is
tf.data for every backend.

With ``--local-crops K`` it also measures, in the same rounds, the
multi-crop pipeline (``pretraining_dataset(..., local_crops=K)``: the two
global views at ``--image-size`` plus K local views at
``--local-crop-size``, default 3/7 of it, SwAV / DINO style) and prints its
images/s (each image -> 2 + K views) beside the two-view rate.

With ``--augment-on device-vs-host`` it instead compares where the views
are made, interleaved round by round in one process, same scheme, size and
batch: images/s (each image -> two views) of the host path above against
the device path (``pretraining_dataset(..., augment_on="device")``, which
yields plain images, then the scheme's two ``DeviceAugmentation`` layers in
one compiled function: XLA on TensorFlow and JAX, eager on PyTorch, as
``AdaDimModel`` trains there), and prints their ratio. With
``--local-crops K`` as well, both sides make the 2 + K multi-crop views
(host: ``pretraining_dataset(..., local_crops=K)``; device:
``device_augmentations(..., local_crops=K)``).

Usage::

    python benchmarks/bench_pipeline.py          # ~5 min on 2 busy CPU cores
    python benchmarks/bench_pipeline.py --quick  # ~3 min (mostly compiling)
    python benchmarks/bench_pipeline.py --scheme ressl --image-size 64
    python benchmarks/bench_pipeline.py --augment-on device-vs-host
    python benchmarks/bench_pipeline.py --local-crops 6  # + multi-crop row
    python benchmarks/bench_pipeline.py --augment-on device-vs-host --local-crops 6
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--quick", action="store_true",
                   help="fewer images, batches and steps (a rough number)")
    p.add_argument("--images", type=int, default=10000,
                   help="random uint8 images in the dataset")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--scheme", default="asymmetric",
                   help="augmentation scheme of the pipeline")
    p.add_argument("--batch", type=int, default=256,
                   help="pipeline batch size")
    p.add_argument("--pipeline-batches", type=int, default=12,
                   help="timed pipeline batches per round")
    p.add_argument("--train-batch", type=int, default=32,
                   help="images per training step (two views each)")
    p.add_argument("--train-steps", type=int, default=3,
                   help="timed training steps per round")
    p.add_argument("--rounds", type=int, default=2,
                   help="rounds of (pipeline, training) measurements")
    p.add_argument("--backbone", default="resnet18",
                   help="get_backbone name ('small_cnn' for a quick look)")
    p.add_argument("--augment-on", choices=("host", "device-vs-host"),
                   default="host",
                   help="host: pipeline vs training step; device-vs-host: "
                   "host vs on-device augmentation throughput")
    p.add_argument("--local-crops", type=int, default=0,
                   help="also time the multi-crop pipeline with this many "
                   "local views (0: two views only)")
    p.add_argument("--local-crop-size", type=int, default=None,
                   help="side of the local views (default 3/7 of "
                   "--image-size)")
    args = p.parse_args(argv)
    if args.local_crops < 0:
        p.error("--local-crops must be >= 0")
    if args.quick:
        args.images = min(args.images, 2048)
        args.pipeline_batches = min(args.pipeline_batches, 6)
        args.train_batch = min(args.train_batch, 16)
        args.train_steps = min(args.train_steps, 2)
        args.rounds = 1
    return args


def build_encoder(name, shape):
    try:
        from keras_adadim.models import get_backbone
    except ImportError:
        get_backbone = None
    if get_backbone is not None:
        return get_backbone(name, shape), f"get_backbone({name!r}, {shape})"
    from keras_adadim.models.small_cnn import small_cnn_encoder

    return (
        small_cnn_encoder(shape, width=64),
        f"small_cnn_encoder({shape}, width=64) (get_backbone is not "
        "available in this checkout)",
    )


def build_projector():
    try:
        from keras_adadim.models.heads import projector

        return projector("baseline"), "projector('baseline') (MLP -> 2048)"
    except ImportError:
        from keras_adadim.models.small_cnn import mlp_projector

        return mlp_projector(2048, 2048), "mlp_projector(2048, 2048)"


def main(argv=None):
    args = parse_args(argv)
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_adadim as ka
    from keras_adadim.data import from_arrays
    from keras_adadim.data import pretraining_dataset

    size = args.image_size
    shape = (size, size, 3)
    print(f"backend {keras.backend.backend()}, keras {keras.__version__}, "
          f"tensorflow {tf.__version__}, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.1f}", flush=True)

    # ---- pipeline
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images,) + shape, dtype=np.uint8)
    data = from_arrays(images, rng.integers(0, 10, args.images),
                       name="cifar-like")
    t0 = time.perf_counter()
    ds = pretraining_dataset(data, args.scheme, image_size=size,
                             batch_size=args.batch, seed=0)
    next(iter(ds))  # traces the augmentations (shared by later iterators)
    print(f"pipeline: {args.scheme} views at {size} px, batch {args.batch}, "
          f"{args.images} images; built and traced in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    skip = 3  # batches that may already wait in the prefetch buffer
    if args.augment_on == "device-vs-host":
        if args.local_crops:
            ds = multi_crop_stream(args, data)[0]
        return compare_augmentation(args, data, ds, skip)
    multi = multi_crop_stream(args, data) if args.local_crops else None

    def time_pipeline(stream):
        # A fresh iterator per round (nothing produced in the background
        # while the training step was timed), 2 warm-up batches, and the
        # rate taken after `skip` more batches, when the prefetch buffer's
        # head start is used up.
        iterator = iter(stream)
        for _ in range(2):
            next(iterator)
        stamps = []
        for _ in range(args.pipeline_batches + skip):
            next(iterator)
            stamps.append(time.perf_counter())
        return args.pipeline_batches * args.batch / (stamps[-1] - stamps[
            skip - 1])

    # ---- training step
    keras.utils.set_random_seed(0)
    encoder, encoder_name = build_encoder(args.backbone, shape)
    head, head_name = build_projector()
    model = ka.AdaDimModel(encoder, head)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    b = args.train_batch
    views = (rng.random((b,) + shape, dtype=np.float32),
             rng.random((b,) + shape, dtype=np.float32))
    t0 = time.perf_counter()
    model.train_on_batch(views)
    model.train_on_batch(views)
    print(f"training: AdaDimModel, encoder {encoder_name} "
          f"({encoder.count_params():,} parameters), {head_name}, batch {b} "
          f"(x2 views); compiled and warmed in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)

    def time_training():
        start = time.perf_counter()
        for _ in range(args.train_steps):
            loss = model.train_on_batch(views)
        float(np.asarray(loss).ravel()[0])
        return args.train_steps * b / (time.perf_counter() - start)

    pipe, train, crops = [], [], []
    for r in range(args.rounds):
        pipe.append(time_pipeline(ds))
        if multi is not None:
            crops.append(time_pipeline(multi[0]))
        train.append(time_training())
        print(f"round {r + 1}/{args.rounds}: pipeline {pipe[-1]:8.1f} "
              f"images/s, training {train[-1]:7.1f} images/s"
              + (f", multi-crop pipeline {crops[-1]:8.1f} images/s"
                 if crops else ""), flush=True)
    p_rate, t_rate = statistics.median(pipe), statistics.median(train)
    ratio = p_rate / t_rate
    print()
    print(f"pipeline ({args.scheme}, two views, {size} px): "
          f"{p_rate:10.1f} images/s")
    if crops:
        m_rate = statistics.median(crops)
        print(f"multi-crop pipeline ({args.scheme}, {multi[1]}): "
              f"{m_rate:10.1f} images/s ({m_rate / p_rate:.2f}x the "
              f"two-view rate; {m_rate * (2 + args.local_crops):.0f} "
              "views/s)")
    label = args.backbone if encoder_name.startswith("get_") else (
        "small_cnn, width 64")
    print(f"training step ({label}, b={b}): {t_rate:10.1f} images/s")
    print(f"ratio pipeline / training: {ratio:.1f}x (target >= 3x: "
          f"{'met' if ratio >= 3 else 'NOT met'}); load "
          f"{os.getloadavg()[0]:.1f}")
    return 0 if ratio >= 3 else 1


def multi_crop_stream(args, data):
    """The multi-crop stream (traced) and its description."""
    from keras_adadim.data import pretraining_dataset

    size = args.image_size
    local = local_side(args)
    t0 = time.perf_counter()
    ds = pretraining_dataset(data, args.scheme, image_size=size,
                             batch_size=args.batch, seed=0,
                             local_crops=args.local_crops,
                             local_crop_size=local)
    next(iter(ds))
    what = f"2x{size} px + {args.local_crops}x{local} px"
    print(f"multi-crop pipeline: {args.scheme}, {what}, batch {args.batch}; "
          f"built and traced in {time.perf_counter() - t0:.1f} s",
          flush=True)
    return ds, what


def local_side(args):
    """Side of the local crops: ``--local-crop-size``, else 3/7 of the
    image (the host pipeline's default)."""
    from keras_adadim.data.augment import local_crop_size

    return args.local_crop_size or local_crop_size(args.image_size)


def _rate(stream, step, batches, batch, skip):
    """images/s of ``step`` over ``batches`` batches of a fresh iterator of
    ``stream``, after 2 warm-up batches and ``skip`` more (the prefetch
    buffer's head start); ``step(batch) -> arrays`` must return host
    arrays (so the device work is done when it returns)."""
    iterator = iter(stream)
    for _ in range(2):
        step(next(iterator))
    stamps = []
    for _ in range(batches + skip):
        step(next(iterator))
        stamps.append(time.perf_counter())
    return batches * batch / (stamps[-1] - stamps[skip - 1])


def compare_augmentation(args, data, host_ds, skip):
    """Host (tf.data) vs device (compiled DeviceAugmentation) views,
    interleaved round by round."""
    import keras
    import numpy as np

    from keras_adadim.data import pretraining_dataset
    from keras_adadim.data.device_augment import device_augmentations

    size = args.image_size
    k = args.local_crops
    local = local_side(args) if k else None
    augs = device_augmentations(args.scheme, size, seed=0, local_crops=k,
                                local_size=local)
    what = f"2x{size} px" + (f" + {k}x{local} px" if k else "")
    inp = keras.Input(data.image_shape, batch_size=args.batch)
    views = keras.Model(inp, [aug(inp) for aug in augs])
    # XLA where Keras has it; PyTorch trains eagerly ("auto") in
    # AdaDimModel (its jit_compile=True is a minutes-long torch.compile).
    jit = keras.backend.backend() != "torch"
    views.compile(jit_compile=True if jit else "auto")
    device_ds = pretraining_dataset(
        data, args.scheme, image_size=size, batch_size=args.batch, seed=0,
        augment_on="device")
    t0 = time.perf_counter()
    x, _ = next(iter(device_ds))
    views.predict_on_batch(np.asarray(x))
    print(f"device: {len(augs)} DeviceAugmentation views ({what}) of "
          f"{data.image_shape} images, batch {args.batch}, jit_compile={jit}; "
          f"compiled in {time.perf_counter() - t0:.1f} s", flush=True)

    def host_step(batch):
        views_, _ = batch
        return [np.asarray(v) for v in views_]

    def device_step(batch):
        x, _ = batch
        return views.predict_on_batch(np.asarray(x))

    host, device = [], []
    for r in range(args.rounds):
        host.append(_rate(host_ds, host_step, args.pipeline_batches,
                          args.batch, skip))
        device.append(_rate(device_ds, device_step, args.pipeline_batches,
                            args.batch, skip))
        print(f"round {r + 1}/{args.rounds}: host {host[-1]:8.1f} images/s, "
              f"device {device[-1]:8.1f} images/s", flush=True)
    h, d = statistics.median(host), statistics.median(device)
    print()
    print(f"host augmentation ({args.scheme}, {what}, "
          f"tf.data): {h:10.1f} images/s")
    print(f"device augmentation ({args.scheme}, {what}, "
          f"{keras.backend.backend()}): {d:10.1f} images/s")
    print(f"ratio device / host: {d / h:.2f}x; load "
          f"{os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
