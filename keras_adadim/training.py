"""The pre-training runner behind ``adadim pretrain``: one function that
turns a configuration (``keras_adadim.presets``) into a run directory
(``keras_adadim.run_directory``).

A run directory holds::

    config.json          every setting of the run (+ versions, backend and
                         a fingerprint of the training data)
    history.json/.csv    per-epoch logs: losses, alpha, beta, the online probe,
                         H(R), I(R; Z), ... (RepresentationMonitor epochs)
    checkpoints/         last.json + step-*.weights.h5 (RunCheckpoint)
    tensorboard/         TensorBoard logs
    sample_views.png     what the augmentation makes of a few images
    encoder.keras        the pre-trained encoder (when training is done)
    model.keras          the full AdaDimModel (encoder + projector)
    results.json         evaluation (linear probe, kNN, few-label, baselines),
                         training time over all sessions (train_seconds)
    training_dynamics.png
    run.lock             held by the process that runs it

Calling ``pretrain`` again on the same directory resumes an interrupted run
from its last checkpoint (mid-epoch included) and produces the same steps,
alpha updates and, up to floating-point non-determinism, weights as an
uninterrupted run (the history row of the resumed epoch included); on a
finished run it only reports the results. A resume on other training data
(a changed file, see ``data.fingerprint``) is refused.

``pretrain`` is a sequence of short steps, each a function here:
:func:`configure` (settings checked), :func:`prepare_data` (splits loaded
and checked against the settings), :func:`build_training` (model,
optimizer, on ``devices`` devices), :func:`start_session` (a new run or the
resumed state, and the callbacks), :func:`fit_session`, :func:`save_and_evaluate`
and :func:`report`.
"""

import contextlib
import dataclasses
import os
import platform
import warnings

import keras
import numpy as np

from keras_adadim import presets as presets_lib
from keras_adadim import run_directory as rd
from keras_adadim._source import source_commit
from keras_adadim.run_directory import CHECKPOINTS  # noqa: F401 (re-export)
from keras_adadim.run_directory import CONFIG  # noqa: F401
from keras_adadim.run_directory import HISTORY  # noqa: F401
from keras_adadim.run_directory import LOCK  # noqa: F401
from keras_adadim.run_directory import RESULTS  # noqa: F401
from keras_adadim.run_directory import RUN_MARKERS  # noqa: F401
from keras_adadim.run_directory import RunDirectory
from keras_adadim.run_directory import RunDirectoryLocked  # noqa: F401
from keras_adadim.run_directory import history_columns
from keras_adadim.run_directory import read_run


# ------------------------------------------------------------------ helpers
def _versions():
    import tensorflow as tf

    from keras_adadim import __version__

    return {
        "keras_adadim": __version__,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "backend": keras.backend.backend(),
        "python": platform.python_version(),
        "keras_adadim_commit": source_commit(),
    }


class _HistoryFile(keras.callbacks.Callback):
    """Per-epoch logs appended to history.json and history.csv (rewritten
    atomically each epoch, so the columns may grow: Keras' CSVLogger fixes
    them at the first epoch of each ``fit`` call)."""

    def __init__(self, run, rows):
        super().__init__()
        self.run = run
        self.rows = rows

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": int(epoch)}
        for key, value in (logs or {}).items():
            try:
                row[key] = float(keras.ops.convert_to_numpy(value))
            except (TypeError, ValueError):
                continue
        self.rows.append(row)
        self.run.write_history(self.rows)


def _tensorboard(run, log):
    try:
        import tensorboard  # noqa: F401 - tf.summary needs it installed
    except ImportError:
        log("TensorBoard is not installed (pip install tensorboard): the run "
            "is logged to history.json/.csv only.")
        return []
    return [keras.callbacks.TensorBoard(
        run.file(rd.TENSORBOARD), write_graph=False)]


# ---------------------------------------------------------------- building
def build_model(config, num_classes=None, image_shape=None,
                augmentation=None, num_images=None):
    """Encoder, projector (and predictor) and the ``AdaDimModel`` of a
    configuration. ``image_shape`` is (H, W, C) of the views;
    ``augmentation``: the model's view layers (``--augment-on device``);
    ``num_images``: the training set's size, for a method with per-image
    state (``needs_index``: DeepCluster v2's memory bank)."""
    from keras_adadim.models import AdaDimModel
    from keras_adadim.models import backbones
    from keras_adadim.models import heads
    from keras_adadim.models.small_cnn import mlp_projector
    from keras_adadim.models.small_cnn import small_cnn_encoder

    if config["backbone"] == "small_cnn":
        encoder = small_cnn_encoder(image_shape, width=int(config["width"]))
    else:
        encoder = backbones.get_backbone(
            config["backbone"],
            input_shape=image_shape,
            width_multiplier=float(config["width_multiplier"]),
            stem=config["stem"],
        )
    if config["projector"] == "small":
        projector = mlp_projector(
            hidden_dim=int(config["projector_hidden_dim"]),
            output_dim=int(config["projector_dim"]),
        )
    else:
        projector = heads.projector(
            kind=config["projector"],
            hidden_dim=int(config["projector_hidden_dim"]),
            output_dim=int(config["projector_dim"]),
        )
    from keras_adadim import methods

    args = presets_lib.method_arguments(config)
    if _needs_index(config) and num_images is not None:
        args["num_images"] = int(num_images)
    if config["predictor"] and "predictor" in \
            presets_lib.METHODS[config["method"]]["uses"]:
        # AdaDim's optional predictor (methods with one build their own).
        hidden = config["predictor_hidden_dim"]
        args["predictor"] = heads.predictor(
            output_dim=int(config["projector_dim"]),
            **({} if hidden is None else {"hidden_dim": int(hidden)}))
    model = AdaDimModel(
        encoder,
        projector,
        method=methods.get_method(config["method"], **args),
        num_classes=num_classes if config["online_probe"] else None,
        probe_learning_rate=float(config["probe_learning_rate"]),
        augmentation=augmentation,
    )
    return model


def _method_label(method):
    """'BYOL' for byol: the registry's reference without its citation."""
    return presets_lib.METHODS[method]["reference"].split(" (")[0]


def build_optimizer(config, steps_per_epoch):
    """The optimizer of a configuration: ``schedule`` "cosine" (warm-up +
    cosine, ``make_optimizer``) or "constant"."""
    from keras_adadim import optimizers

    name = config["optimizer"]
    wd = float(config["weight_decay"])
    momentum = float(config["sgd_momentum"])
    if config["schedule"] == "cosine":
        return optimizers.make_optimizer(
            name,
            base_learning_rate=float(config["learning_rate"]),
            batch_size=int(config["batch_size"]),
            epochs=int(config["epochs"]),
            steps_per_epoch=int(steps_per_epoch),
            weight_decay=wd,
            warmup_epochs=float(config["warmup_epochs"]),
            momentum=momentum,
            scale_by_batch=bool(config["scale_lr_by_batch"]),
        )
    if config["schedule"] != "constant":
        raise ValueError(
            f"Unknown schedule {config['schedule']!r}; use 'cosine' or "
            "'constant'."
        )
    lr = optimizers.scaled_learning_rate(
        config["learning_rate"], config["batch_size"],
        bool(config["scale_lr_by_batch"]),
    )
    if name == "lars":
        return optimizers.LARS(lr, momentum=momentum, weight_decay=wd)
    if name == "sgd":
        return optimizers.SGDW(lr, momentum=momentum, weight_decay=wd)
    if name == "adamw":
        return optimizers.AdamW(lr, weight_decay=wd)
    raise ValueError(
        f"Unknown optimizer {name!r}; choose one of "
        f"{', '.join(optimizers.OPTIMIZER_NAMES)}."
    )


# ------------------------------------------------------------ the steps
def default_output(config):
    """``runs/<dataset>-<backbone>-<method>-seed<seed>``."""
    return os.path.join(
        "runs",
        f"{presets_lib._dataset_key(config['dataset'])}-{config['backbone']}"
        f"-{config['method']}-seed{config['seed']}",
    )


def configure(config=None, overrides=None):
    """Step 1: the full, checked configuration (``presets.resolve`` when
    ``config`` is None; ``overrides`` win over ``config``'s keys). Every
    setting is checked by the command line's rules (``config_checks``)
    before any data is loaded or model built, and ``devices`` against the
    machine."""
    overrides = dict(overrides or {})
    if config is None:
        config = presets_lib.resolve(
            overrides.pop("preset", None), overrides.pop("dataset", None),
            overrides.pop("table9", None), **overrides)
    elif overrides:
        config = {**config, **{k: v for k, v in overrides.items()
                               if v is not None}}
    config = presets_lib.validate(dict(config))
    config["augment_on"] = _augment_on(config)
    _check_multi_crop(config)
    _check_steps_per_execution(config)
    devices = int(config.get("devices") or 1)
    if int(config["batch_size"]) % devices:
        raise ValueError(
            f"`batch_size`={config['batch_size']} does not split into "
            f"`devices`={devices} equal slices: pass a batch size that is "
            f"a multiple of {devices} (--batch-size), or other --devices.")
    return config


def _augment_on(config):
    """``augment_on`` resolved (``auto``: device when the backend has an
    accelerator and the scheme a device version, else host; recorded so
    that a resume makes its views where the run did) and checked."""
    setting = config.get("augment_on") or "host"
    scheme = _scheme_of(config)
    if setting == "auto":
        from keras_adadim import _backend

        setting = ("device" if scheme != "digits"
                   and _backend.has_accelerator() else "host")
    if setting == "device" and scheme == "digits":
        raise ValueError(
            "`augment_on`='device' (--augment-on device) with the 'digits' "
            "scheme: the 8x8 digits views are made on the host only. Pass "
            "--augment-on host, or another scheme (--augmentation "
            "asymmetric, ressl or symmetric).")
    if setting == "device" and int(config.get("devices") or 1) > 1:
        # Under tf.distribute every replica would draw the same parameters
        # for its slice of the batch.
        raise ValueError(
            f"`augment_on`='device' (--augment-on device) with `devices`="
            f"{config['devices']}: device augmentation runs on one device. "
            "Pass --augment-on host for a multi-device run, or --devices 1.")
    return setting


def _check_steps_per_execution(config, steps_per_epoch=None):
    """``steps_per_execution`` > 1 needs a backend whose trainer runs
    several steps per call, and must divide the epoch's steps: the run's
    stream of batches runs on into the next epoch, so a call crossing an
    epoch's end would take its batches."""
    k = int(config.get("steps_per_execution") or 1)
    if k == 1:
        return
    if keras.backend.backend() == "torch":
        raise ValueError(
            f"`steps_per_execution`={k} (--steps-per-execution {k}): Keras' "
            "PyTorch trainer runs one step per call. Pass 1 (on PyTorch the "
            "model's loss checks read the logs in Keras' callback threads, "
            "off the training loop), or use KERAS_BACKEND=tensorflow / jax.")
    if steps_per_epoch is not None and steps_per_epoch % k:
        divisors = [d for d in range(1, steps_per_epoch + 1)
                    if steps_per_epoch % d == 0]
        raise ValueError(
            f"`steps_per_execution`={k} (--steps-per-execution {k}) does not "
            f"divide the {steps_per_epoch} steps of an epoch, so a call would "
            "run into the next epoch's batches. Pass a divisor of "
            f"{steps_per_epoch}: {', '.join(map(str, divisors[:12]))}"
            f"{', ...' if len(divisors) > 12 else ''} (or change "
            "--batch-size).")


def _scheme_of(config):
    """The augmentation scheme, ``auto`` resolved as
    ``data.resolve_scheme`` does, before the data loads."""
    scheme = config["augmentation"]
    if scheme == "auto":
        digits = str(config["dataset"]).lower() == "digits"
        scheme = "digits" if digits else "asymmetric"
    return scheme


def _local_crops(config):
    return int(config.get("local_crops") or 0)


def _check_multi_crop(config):
    """Refuse multi-crop (``local_crops`` > 0) where it cannot work, before
    any data is loaded: a method without local crops, device views, a
    scheme without crops, a backbone of one input size."""
    from keras_adadim.config_checks import MULTI_CROP_METHODS

    k = _local_crops(config)
    if not k:
        if config.get("local_crop_size") is not None:
            raise ValueError(
                f"`local_crop_size`={config['local_crop_size']} "
                "(--local-crop-size) without local crops: pass "
                "--local-crops K (local_crops=K) too, or drop it.")
        return
    if config["method"] not in MULTI_CROP_METHODS:
        raise ValueError(
            f"`local_crops`={k} (--local-crops {k}) with method "
            f"{config['method']!r}, which trains on two views only. Pass "
            "--local-crops 0, or a multi-crop method (--method "
            f"{' / '.join(MULTI_CROP_METHODS)}).")
    if _scheme_of(config) == "digits":
        raise ValueError(
            f"`local_crops`={k} (--local-crops {k}) with the 'digits' "
            "scheme, which makes no crops (8x8 images). Pass --augmentation "
            "asymmetric (or ressl, symmetric), or --local-crops 0.")
    if str(config["backbone"]).startswith("vit"):
        raise ValueError(
            f"`local_crops`={k} (--local-crops {k}) with backbone "
            f"{config['backbone']!r}, whose position embeddings fix one "
            "input size. Pass a ResNet or small_cnn backbone (--backbone), "
            "or --local-crops 0.")
    size, local = config.get("image_size"), config.get("local_crop_size")
    if size is not None and local is not None and int(local) > int(size):
        raise ValueError(
            f"`local_crop_size`={local} (--local-crop-size) is larger than "
            f"the global views' `image_size`={size}: local crops are the "
            "small ones. Pass a smaller --local-crop-size.")


@dataclasses.dataclass
class PreparedData:
    """Step 2's result: the loaded splits and what the run derives from
    them. ``stream(epoch, step)`` gives the pre-training batches from that
    position on (a function of (seed, epoch, step) only, so a resumed run
    sees exactly the batches of an uninterrupted one)."""

    train: object
    test: object  # None: no evaluation or monitoring
    probe_train: object  # the labelled split the evaluation trains on
    image_size: int
    channels: int
    batch_size: int
    steps_per_epoch: int
    labelled: bool  # the online probe has labels
    fingerprint: dict
    augmentation: str
    seed: int
    augment_on: str = "host"  # "device": the stream holds plain images
    local_crops: int = 0  # multi-crop: local views besides the two
    local_crop_size: object = None  # their side (None: 3/7 of image_size)
    with_index: bool = False  # batches carry image indices (needs_index)

    def stream(self, epoch, step=0):
        from keras_adadim import data as data_lib

        return data_lib.pretraining_dataset(
            self.train, augmentation=self.augmentation,
            image_size=self.image_size, batch_size=self.batch_size,
            seed=self.seed, with_labels=self.labelled, epoch=epoch,
            step=step, augment_on=self.augment_on,
            # On the device path the model makes the local crops.
            local_crops=self.local_crops if self.augment_on == "host" else 0,
            local_crop_size=self.local_crop_size,
            with_index=self.with_index,
        )

    def device_augmentation(self):
        """The model's view layers for ``augment_on='device'`` (None on
        the host path)."""
        if self.augment_on != "device":
            return None
        from keras_adadim.data import resolve_scheme
        from keras_adadim.data.device_augment import device_augmentations

        return device_augmentations(
            resolve_scheme(self.train, self.augmentation), self.image_size,
            seed=self.seed, local_crops=self.local_crops,
            local_size=self.local_crop_size)


def _load_split(config, split):
    from keras_adadim import data as data_lib

    return data_lib.load_dataset(
        config["dataset"], split=split, data_dir=config["data_dir"],
        channels=config["channels"])


def prepare_data(config, log=print):
    """Step 2: load the training split (and the test split and the probe's
    labelled split when the run evaluates or monitors) and check them
    against the settings; every problem is reported here, before a model
    is built."""
    from keras_adadim import data as data_lib

    train = _load_split(config, config["train_split"])
    test = None
    if config["eval"] != "none" or config["monitor_every"]:
        try:
            test = _load_split(config, config["test_split"])
        except (ValueError, FileNotFoundError, KeyError) as e:
            # Refused now rather than a run that silently skips its
            # evaluation (or fails after training).
            raise ValueError(
                f"The run evaluates or monitors on `test_split`="
                f"{config['test_split']!r}, which cannot be loaded: {e} "
                "Fix: pass a split that exists (--test-split), or eval="
                "'none' and monitor_every=0 (--eval none --monitor-every 0)"
                " to train without one.") from e
    _check_data_size(train, test, config)
    probe_train = None
    if test is not None and config["eval"] != "none":
        probe_train = train
        if not train.num_classes or config["train_split"] == "unlabelled":
            probe_train = _load_split(config, "train")
        _check_evaluation_settings(probe_train, config)
    image_size = config["image_size"] or train.image_shape[0]
    if image_size is None:
        raise ValueError(
            f"The images of {config['dataset']!r} have different sizes; "
            "pass `image_size` (e.g. --image-size 224)."
        )
    batch_size = int(config["batch_size"])
    _check_steps_per_execution(
        config, data_lib.steps_per_epoch(train, batch_size))
    return PreparedData(
        train=train, test=test, probe_train=probe_train,
        image_size=int(image_size), channels=int(train.image_shape[-1]),
        batch_size=batch_size,
        steps_per_epoch=data_lib.steps_per_epoch(train, batch_size),
        labelled=bool(config["online_probe"] and train.num_classes
                      and config["train_split"] != "unlabelled"),
        fingerprint=data_lib.fingerprint(train),
        augmentation=config["augmentation"], seed=int(config["seed"]),
        augment_on=config.get("augment_on", "host"),
        local_crops=_local_crops(config),
        local_crop_size=config.get("local_crop_size"),
        with_index=_needs_index(config),
    )


def _needs_index(config):
    from keras_adadim import methods

    return bool(methods.method_class(config["method"]).needs_index)


def _check_data_size(train, test, config):
    """An empty or too small split fails here, before a model is built,
    naming the split and its source."""
    def where(data, split):
        return (f"{config['dataset']!r} split {split!r} ({data.source})")

    if train.num_examples == 0:
        raise ValueError(
            f"{where(train, config['train_split'])} has no images: there is "
            "nothing to pre-train on. Check the dataset (an empty folder or "
            ".npz array, an empty slice such as 'train[:0]') or pass another "
            "`train_split` (--train-split)."
        )
    if int(config["batch_size"]) > train.num_examples:
        raise ValueError(
            f"{where(train, config['train_split'])} has "
            f"{train.num_examples} images, fewer than `batch_size`="
            f"{config['batch_size']}, so no full batch can be formed: pass "
            f"batch_size <= {train.num_examples} (--batch-size)."
        )
    if test is not None and test.num_examples == 0:
        raise ValueError(
            f"{where(test, config['test_split'])} has no images, so the run "
            "could not be evaluated or monitored after training. Pass "
            "another `test_split` (--test-split), or eval='none' and "
            "monitor_every=0 (--eval none --monitor-every 0)."
        )


def _check_evaluation_settings(probe_train, config):
    """Evaluation settings that cannot work with the data fail before
    training, not after it."""
    if config["eval"] in ("knn", "all") and \
            int(config["knn_k"]) > probe_train.num_examples:
        raise ValueError(
            f"`knn_k`={config['knn_k']} neighbours, but the kNN classifier's "
            f"training split ({config['dataset']!r} "
            f"{probe_train.split!r}, {probe_train.source}) has only "
            f"{probe_train.num_examples} images: pass knn_k <= "
            f"{probe_train.num_examples} (--knn-k), or eval='linear' "
            "(--eval linear).")
    counts = probe_train.label_counts()
    few = int(config["few_labels"])
    if few and counts is not None and counts.any():
        present = counts[counts > 0]
        if present.min() < few:
            smallest = int(np.flatnonzero(counts == present.min())[0])
            raise ValueError(
                f"`few_labels`={few} labels per class, but class "
                f"{smallest} of the probe's training split "
                f"({config['dataset']!r} {probe_train.split!r}, "
                f"{probe_train.source}) has only {int(present.min())} "
                f"labelled images: pass few_labels <= {int(present.min())}"
                " (--few-labels), or 0 to skip the few-label probe.")


@contextlib.contextmanager
def _devices(config, log):
    """Build (and train) under ``devices`` data-parallel devices: TF
    ``MirroredStrategy`` / JAX ``DataParallel`` (``_backend``)."""
    from keras_adadim import _backend

    n = int(config.get("devices") or 1)
    if n == 1:
        yield
        return
    with _backend.data_parallel(n) as description:
        log(f"Training on {description}.")
        yield


def build_training(config, data):
    """Step 3: the model (built on the first batch) with its optimizer, and
    a copy of the untrained encoder (the random-init baseline)."""
    # Multi-crop: the encoder takes the global and the local views' sizes.
    side = None if data.local_crops else data.image_size
    model = build_model(
        config, num_classes=data.train.num_classes if data.labelled else None,
        image_shape=(side, side, data.channels),
        augmentation=data.device_augmentation(),
        num_images=data.train.num_examples,
    )
    random_encoder = keras.models.clone_model(model.encoder)
    model.compile(optimizer=build_optimizer(config, data.steps_per_epoch),
                  steps_per_execution=int(
                      config.get("steps_per_execution") or 1))
    first = next(iter(data.stream(0).take(1)))[0]
    model(_as_numpy(first))
    model.optimizer.build(model.trainable_variables)
    return model, random_encoder


def _as_numpy(batch):
    """A batch's tensors as NumPy arrays, in the batch's structure."""
    if isinstance(batch, dict):
        return {k: _as_numpy(v) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return tuple(_as_numpy(v) for v in batch)
    return np.asarray(batch)


@dataclasses.dataclass
class Session:
    """Step 4's result: where this session starts and what it runs with."""

    callbacks: list
    stateful: dict  # name -> callback whose state is checkpointed
    checkpoint: object  # RunCheckpoint
    history_rows: list
    start_epoch: int = 0
    start_step: int = 0
    resumed_from: tuple = None


def _stateful_callbacks(config, model, data, verbose):
    """The callbacks whose state goes into the checkpoint."""
    from keras_adadim import data as data_lib
    from keras_adadim.callbacks import AlphaUpdater
    from keras_adadim.callbacks import RepresentationMonitor

    stateful = {}
    if model.alpha_mode == "adaptive":
        stateful["alpha_updater"] = AlphaUpdater(
            every=int(config["alpha_every"]),
            batches=int(config["alpha_batches"]),
            data=data.stream, verbose=1 if verbose else 0,
        )
    if data.test is not None and config["monitor_every"]:
        held_out, _ = data_lib.to_numpy(
            data.test, image_size=data.image_size,
            max_examples=int(config["monitor_samples"]),
        )
        stateful["monitor"] = RepresentationMonitor(
            held_out, every=int(config["monitor_every"]),
            max_samples=int(config["monitor_samples"]),
            seed=int(config["seed"]),
        )
    return stateful


def _restore(run, state, model, stateful, spe):
    """Load a checkpoint's weights and callback states; returns the epoch
    logs of a partly done epoch (``EpochLogs``)."""
    from keras_adadim.callbacks.run_checkpoint import EpochLogs

    if state["steps_per_epoch"] != spe:
        raise ValueError(
            f"The checkpoint in {run.checkpoints} was made with "
            f"{state['steps_per_epoch']} steps per epoch, this run has "
            f"{spe}: the data changed. Use a new output directory."
        )
    try:
        model.load_weights(state["weights_path"])
    except Exception as e:  # noqa: BLE001 - corrupt file, any backend
        raise ValueError(
            f"Cannot load the checkpoint {state['weights_path']} ({e}). "
            "It is corrupt; delete the checkpoints directory to start "
            "over."
        ) from e
    epoch, step = state["epoch"], state["step_in_epoch"]
    for name, cb in stateful.items():
        if name in state.get("callbacks", {}):
            cb.set_state(state["callbacks"][name],
                         resumed_epoch=epoch if step else None)
    # The resumed epoch logs the means over all its steps.
    return EpochLogs(state.get("epoch_logs") if step else None)


def start_session(run, config, model, data, verbose, callbacks, log):
    """Step 4: resume from the run's checkpoint, or record a new run's
    configuration and sample views; the session's callbacks."""
    from keras_adadim import data as data_lib
    from keras_adadim.callbacks import RunCheckpoint
    from keras_adadim.callbacks.run_checkpoint import EpochLogs
    from keras_adadim.callbacks.run_checkpoint import read_state

    spe = data.steps_per_epoch
    stateful = _stateful_callbacks(config, model, data, verbose)
    state = read_state(run.checkpoints) if run.has_run() else None
    session = Session(callbacks=[], stateful=stateful, checkpoint=None,
                      history_rows=[])
    epoch_logs = EpochLogs()
    if state is not None:
        epoch_logs = _restore(run, state, model, stateful, spe)
        session.start_epoch = state["epoch"]
        session.start_step = state["step_in_epoch"]
        session.resumed_from = (state["epoch"], state["step_in_epoch"])
        session.history_rows = run.read_history(before_epoch=state["epoch"])
        log(f"Resuming {run.path} at epoch {state['epoch'] + 1}, step "
            f"{state['step_in_epoch']}/{spe} (optimizer step "
            f"{state['optimizer_step']}).")
    else:
        run.write_config(config, _versions(), data.fingerprint)
        try:
            data_lib.save_sample_views(
                data.train, run.file(rd.SAMPLE_VIEWS),
                scheme=config["augmentation"], image_size=data.image_size,
                seed=int(config["seed"]), local_crops=data.local_crops,
                local_crop_size=data.local_crop_size,
            )
        except ImportError:
            log("install matplotlib to save sample views")
    session.checkpoint = RunCheckpoint(
        run.checkpoints, spe,
        every_steps=int(config["checkpoint_every_steps"]),
        stateful_callbacks=stateful, epoch_offset_step=session.start_step,
        epoch_logs=epoch_logs,
        train_seconds=(state or {}).get("train_seconds", 0.0),
    )
    # EpochLogs first: the epoch's logs are merged across sessions before
    # anything reads them (the monitor's statistics are added after).
    # History before checkpoint: a kill between the two leaves a row that
    # the resumed run drops (rows of epochs >= the resume epoch).
    session.callbacks = [
        epoch_logs, *stateful.values(),
        _HistoryFile(run, session.history_rows), session.checkpoint,
        *_tensorboard(run, log), *callbacks,
    ]
    return session


def fit_session(model, session, data, config, verbose):
    """Step 5: train from the session's start to the last epoch (the rest
    of a partly done epoch first)."""
    epochs, spe = int(config["epochs"]), data.steps_per_epoch
    start = session.start_epoch
    # Keras warns that `shuffle` is ignored for tf.data; our pipeline
    # shuffles (seeded per epoch), so the warning is noise here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*shuffle.*tf.data")
        if session.start_step:
            model.fit(
                data.stream(start, session.start_step), initial_epoch=start,
                epochs=start + 1, steps_per_epoch=spe - session.start_step,
                callbacks=session.callbacks, verbose=verbose,
                planned_steps=epochs * spe,
            )
            start += 1
        if start < epochs:
            model.fit(
                data.stream(start), initial_epoch=start, epochs=epochs,
                steps_per_epoch=spe, callbacks=session.callbacks,
                verbose=verbose, planned_steps=epochs * spe,
            )


def save_and_evaluate(run, config, data, model, random_encoder, session,
                 log=print):
    """Step 6: save the encoder and the model, and evaluate the encoder
    (and the baselines); returns the run's results."""
    # Cumulative over every session of the run, each up to its last
    # checkpoint (steps run after it were lost with the kill and redone,
    # so they count once, in the session that kept them).
    checkpoint = session.checkpoint
    seconds = checkpoint.session_seconds()
    # `evaluation` keeps the key ENCODER_KEY ("AdaDim encoder") for the
    # trained encoder whatever the method (readers depend on it); the
    # table shows the method's own name.
    results = {"train_seconds": checkpoint.previous_seconds + seconds,
               "session_train_seconds": seconds,
               "encoder_label": f"{_method_label(config['method'])} encoder"}
    rd.atomic_save(model.encoder.save, run.file(rd.ENCODER_FILE))
    rd.atomic_save(model.save, run.file(rd.MODEL_FILE))
    if "alpha_updater" in session.stateful:
        results["alpha_updates"] = session.stateful["alpha_updater"].updates
    monitor = session.stateful.get("monitor")
    if monitor is not None and monitor.records:
        results["final_statistics"] = monitor.records[-1]
    if data.probe_train is not None:
        encoders = {rd.ENCODER_KEY: model.encoder}
        if config["eval_baselines"]:
            encoders[rd.RANDOM_INIT_KEY] = random_encoder
        results["evaluation"] = evaluate_encoders(
            config, data.probe_train, data.test, data.image_size, encoders,
            raw_pixels=bool(config["eval_baselines"]), log=log,
            labels={rd.ENCODER_KEY: results["encoder_label"]},
        )
    return results


def report(run, results, history_rows, log=print):
    """Step 7: write results.json, plot the training dynamics and print
    the results table."""
    run.write_results(results)
    _plot_dynamics(run.path, history_rows, log)
    print_results(results, log=log)


def pretrain(config=None, output=None, resume=True, verbose=1,
             callbacks=(), log=print, **overrides):
    """Pre-train an encoder as configured and write a run directory.

    Args:
        config: a full configuration (``presets.resolve(...)``); default:
            ``presets.resolve(**overrides)``.
        output: the run directory (created; an existing one is resumed).
        resume: resume an existing run directory (``False``: refuse to use
            a directory that already holds a run).
        verbose: Keras progress output (0 silent, 1 progress bar, 2 one line
            per epoch).
        callbacks: extra Keras callbacks.
        log: where the runner's messages go (``print``).
        **overrides: configuration keys (with ``preset`` / ``dataset`` /
            ``table9`` as in ``presets.resolve``) when ``config`` is None.

    Returns:
        dict: ``directory``, ``config``, ``history`` (per-epoch dicts),
        ``results`` (evaluation) and ``resumed_from`` (epoch, step) or None.

    Raises:
        RunDirectoryLocked: another process runs in the same directory.
        ValueError: a setting, the data or the run directory is refused
            (before any training).
    """
    config = configure(config, overrides)
    run = RunDirectory(output if output is not None
                       else default_output(config))
    run.refuse_foreign()  # before a lock file is added to it
    run.lock()
    failed = True
    try:
        out = _pretrain_locked(config, run, resume, verbose, callbacks, log)
        failed = False
        return out
    finally:
        run.unlock(failed=failed)


# Settings added after runs were first recorded, with the value such runs
# had (their absence from an old config.json means that value).
_ADDED_LATER = {"augment_on": "host", "local_crops": 0,
                "local_crop_size": None, "steps_per_execution": 1}


def _pretrain_locked(config, run, resume, verbose, callbacks, log):
    """``pretrain`` once the run directory is locked: the steps."""
    if run.has_run():
        if not resume:
            raise ValueError(
                f"{run.path!r} already holds a run; pass another output "
                "directory (or resume=True to continue it)."
            )
        saved = run.read_config()
        # Runs recorded before a setting existed ran with its default
        # (host views, two views): compared as if it had been recorded.
        run.check_settings({k: v for k, v in config.items()
                            if k in saved or k not in _ADDED_LATER
                            or v != _ADDED_LATER[k]})
        if run.is_finished():
            done = run.read()
            log(f"{run.path} is a finished run; its results:")
            print_results(done["results"], log=log)
            return {**done, "resumed_from": None}
        for path in run.remove_partial_files():
            log(f"Removed {path}, left by an interrupted session.")
    else:
        run.refuse_foreign()
    with _devices(config, log):  # before anything initialises a backend
        keras.utils.set_random_seed(int(config["seed"]))
        data = prepare_data(config, log)
        if run.has_run():
            run.check_data(data.fingerprint, config)
        model, random_encoder = build_training(config, data)
        session = start_session(run, config, model, data, verbose,
                                callbacks, log)
        log(
            f"{_method_label(config['method'])} pre-training: "
            f"{config['dataset']} ({data.train.num_examples} images, "
            f"{data.image_size}x{data.image_size}x{data.channels}), "
            f"{config['backbone']}, method {config['method']}, preset "
            f"{config['preset']}, {config['epochs']} epochs x "
            f"{data.steps_per_epoch} steps of batch {data.batch_size}, "
            f"backend {keras.backend.backend()}; run directory {run.path}"
        )
        fit_session(model, session, data, config, verbose)
        results = save_and_evaluate(run, config, data, model,
                                    random_encoder, session, log)
    report(run, results, session.history_rows, log)
    return {
        "directory": run.path, "config": config,
        "history": session.history_rows, "results": results,
        "resumed_from": session.resumed_from,
    }


# -------------------------------------------------------------- evaluation
def _images_only(x, y):
    # A named function: AutoGraph cannot read a lambda's source in some
    # contexts and warns about it.
    return x


def extract(encoder, data, image_size, batch_size=256, verbose=None):
    """Frozen (inference-mode) features and labels of a whole split, with a
    Keras progress bar for large splits."""
    from keras_adadim import data as data_lib

    ds = data_lib.evaluation_dataset(data, image_size=image_size,
                                     batch_size=batch_size)
    if verbose is None:
        verbose = 1 if data.num_examples > 20 * batch_size else 0
    import tensorflow as tf

    # Not converted by AutoGraph, which would re-read this file's source:
    # an edit of the installed package during a run would change it.
    images = ds.map(tf.autograph.experimental.do_not_convert(_images_only))
    feats = encoder.predict(images, verbose=verbose)
    labels = np.concatenate([y for _, y in ds.as_numpy_iterator()])
    feats = np.asarray(feats, "float32")
    return feats.reshape(len(feats), -1), labels.astype("int64")


def evaluate_encoders(config, train, test, image_size, encoders,
                      raw_pixels=False, log=print, labels=None):
    """Linear probe (all labels and ``few_labels`` per class) and, for
    ``eval`` = knn / all, weighted kNN, for each encoder (and raw pixels).
    Returns ``{name: evaluate_features(...) with all labels, plus
    few-label results under 'few_label'}``; ``labels`` maps names to what
    the progress lines call them."""
    from keras_adadim import data as data_lib
    from keras_adadim.evaluation import evaluate_features

    mode = config["eval"]
    out = {}
    features = {}
    for name, encoder in encoders.items():
        log(f"Extracting {(labels or {}).get(name, name)} features ...")
        features[name] = (extract(encoder, train, image_size),
                          extract(encoder, test, image_size))
    if raw_pixels:
        xtr, ytr = data_lib.to_numpy(train, image_size=image_size)
        xte, yte = data_lib.to_numpy(test, image_size=image_size)
        features["raw pixels"] = ((xtr.reshape(len(xtr), -1), ytr),
                                  (xte.reshape(len(xte), -1), yte))
    for name, ((ftr, ytr), (fte, yte)) in features.items():
        kwargs = dict(probe_epochs=int(config["probe_epochs"]),
                      knn_k=int(config["knn_k"]), seed=int(config["seed"]))
        full = evaluate_features(ftr, ytr, fte, yte, **kwargs)
        if mode == "linear":
            full = {k: v for k, v in full.items() if not k.startswith("knn")}
        full["num_test"] = int(len(yte))
        result = {"all_labels": full}
        counts = np.bincount(ytr[ytr >= 0]) if len(ytr) else np.zeros(1)
        smallest = int(counts[counts > 0].min()) if counts.any() else 0
        if config["few_labels"] and smallest < int(config["few_labels"]):
            log(f"No few-label probe: the smallest class has {smallest} "
                f"labelled images, fewer than {config['few_labels']}.")
        elif config["few_labels"]:
            few = evaluate_features(ftr, ytr, fte, yte,
                                    per_class=int(config["few_labels"]),
                                    **kwargs)
            if mode == "linear":
                few = {k: v for k, v in few.items()
                       if not k.startswith("knn")}
            few["per_class"] = int(config["few_labels"])
            few["num_test"] = int(len(yte))
            result["few_label"] = few
        out[name] = result
    return out


def print_results(results, log=print):
    """The results table of a run."""
    if not results:
        return
    evaluation = results.get("evaluation")
    if results.get("alpha_updates"):
        traj = " -> ".join(
            f"{u['alpha']:.3f}" for u in results["alpha_updates"]
        )
        log(f"\nalpha at its updates: {traj}")
    if results.get("train_seconds") is not None:
        log(f"Pre-training took {results['train_seconds']:.0f} s.")
    if not evaluation:
        return
    any_result = next(iter(evaluation.values()))
    few = any_result.get("few_label") or {}
    n_few = few.get("per_class")
    knn = any_result["all_labels"].get("knn_top1") is not None
    header = f"{'features':<22}{'linear':>9}"
    if n_few:
        header += f"{f'{n_few}/class':>11}"
    if knn:
        header += f"{'kNN':>8}"
    log("\nTop-1 accuracy on the test split "
        f"({any_result['all_labels'].get('num_test', '?')} images)")
    log(header)
    labels = {rd.ENCODER_KEY: results.get("encoder_label", rd.ENCODER_KEY)}
    for name, r in evaluation.items():
        line = (f"{labels.get(name, name):<22}"
                f"{r['all_labels']['linear_top1']:>9.3f}")
        if n_few:
            line += f"{r['few_label']['linear_top1']:>11.3f}"
        if knn:
            line += f"{r['all_labels']['knn_top1']:>8.3f}"
        log(line)


def _plot_dynamics(directory, rows, log):
    if not rows:
        return
    try:
        from keras_adadim.analysis.plots import training_dynamics
    except ImportError:
        log("install matplotlib to plot the training dynamics")
        return
    columns = history_columns(rows)
    plot = {k: columns[k] for k in columns
            if k in ("r_entropy", "mutual_information", "r_uniformity",
                     "alpha")}
    if not plot:
        return
    plot["epoch"] = [e + 1 for e in columns["epoch"]]
    try:
        _, paths = training_dynamics(
            plot, path=os.path.join(directory, "training_dynamics")
        )
        log(f"Training dynamics plotted to {paths[0]}")
    except (ImportError, ValueError) as e:
        log(f"Could not plot the training dynamics: {e}")


__all__ = ["PreparedData", "Session", "build_model", "build_optimizer",
           "build_training", "configure", "default_output",
           "evaluate_encoders", "extract", "fit_session", "history_columns",
           "prepare_data", "pretrain", "print_results", "read_run",
           "report", "save_and_evaluate", "start_session"]
