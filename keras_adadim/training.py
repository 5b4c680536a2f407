"""The pre-training runner behind ``adadim pretrain``: one function that
turns a configuration (``keras_adadim.presets``) into a run directory.

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

Calling ``pretrain`` again on the same directory resumes an interrupted run
from its last checkpoint (mid-epoch included) and produces the same steps,
alpha updates and, up to floating-point non-determinism, weights as an
uninterrupted run (the history row of the resumed epoch included); on a
finished run it only reports the results. A resume on other training data
(a changed file, see ``data.fingerprint``) is refused.
"""

import json
import os
import platform
import time
import warnings

import keras
import numpy as np

from keras_adadim import presets as presets_lib

CONFIG = "config.json"
HISTORY = "history.json"
RESULTS = "results.json"
CHECKPOINTS = "checkpoints"
LOCK = "run.lock"
# Files that mark a directory as a run (hub.save_pretrained refuses one).
RUN_MARKERS = (HISTORY, RESULTS, CHECKPOINTS, LOCK)

# What config.json records besides the settings (not compared on resume;
# the data's fingerprint is checked once the data is loaded).
_RECORDED = ("versions", "data_fingerprint")
# Settings that may change when resuming a run without changing its result.
_RESUME_FREE = {"data_dir", "eval", "eval_baselines", "probe_epochs",
                "few_labels", "knn_k", "checkpoint_every_steps"}


# ------------------------------------------------------------------ helpers
def _atomic_json(path, data):
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, default=_json_default)
    os.replace(tmp, path)


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _save_keras(model, path):
    """Save next to ``path`` and rename, so a kill never leaves half a file
    under the final name."""
    tmp = path[: -len(".keras")] + ".partial.keras"
    model.save(tmp)
    os.replace(tmp, path)


def _versions():
    import tensorflow as tf

    from keras_adadim import __version__

    return {
        "keras_adadim": __version__,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "backend": keras.backend.backend(),
        "python": platform.python_version(),
    }


def read_run(directory):
    """``config``, ``history`` (list of per-epoch dicts) and ``results`` of a
    run directory; raises ``ValueError`` with a clear message when it is not
    one."""
    if not os.path.isdir(directory):
        raise ValueError(f"{directory!r} is not a directory.")
    config_path = os.path.join(directory, CONFIG)
    history_path = os.path.join(directory, HISTORY)
    if not os.path.exists(config_path):
        raise ValueError(
            f"{directory!r} has no {CONFIG}: it is not a run directory made "
            "by `adadim pretrain`."
        )
    if not os.path.exists(history_path):
        raise ValueError(
            f"{directory!r} has no {HISTORY}: the run never finished an "
            "epoch (or was not made by `adadim pretrain`). Resume it with "
            f"`adadim pretrain --output {directory}`."
        )
    out = {"directory": directory}
    for key, name in (("config", CONFIG), ("history", HISTORY),
                      ("results", RESULTS)):
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            out[key] = None
            continue
        try:
            with open(path, encoding="utf-8") as f:
                out[key] = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"Cannot read {path}: {e}") from e
    if not isinstance(out["history"], list) or not out["history"]:
        raise ValueError(f"{history_path} holds no epochs.")
    return out


def history_columns(rows):
    """A list of per-epoch dicts as a dict of equal-length lists (NaN where
    an epoch lacks a key, e.g. the monitor's statistics)."""
    keys = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    return {k: [row.get(k, float("nan")) for row in rows] for k in keys}


class _HistoryFile(keras.callbacks.Callback):
    """Per-epoch logs appended to history.json and history.csv (rewritten
    atomically each epoch, so the columns may grow: Keras' CSVLogger fixes
    them at the first epoch of each ``fit`` call)."""

    def __init__(self, directory, rows):
        super().__init__()
        self.directory = directory
        self.rows = rows

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": int(epoch)}
        for key, value in (logs or {}).items():
            try:
                row[key] = float(keras.ops.convert_to_numpy(value))
            except (TypeError, ValueError):
                continue
        self.rows.append(row)
        _atomic_json(os.path.join(self.directory, HISTORY), self.rows)
        columns = history_columns(self.rows)
        tmp = os.path.join(self.directory, "history.csv.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(",".join(columns) + "\n")
            for i in range(len(self.rows)):
                f.write(",".join(f"{columns[k][i]}" for k in columns) + "\n")
        os.replace(tmp, os.path.join(self.directory, "history.csv"))


def _tensorboard(directory, log):
    try:
        import tensorboard  # noqa: F401 - tf.summary needs it installed
    except ImportError:
        log("TensorBoard is not installed (pip install tensorboard): the run "
            "is logged to history.json/.csv only.")
        return []
    return [keras.callbacks.TensorBoard(
        os.path.join(directory, "tensorboard"), write_graph=False)]


# ---------------------------------------------------------------- building
def build_model(config, num_classes=None, image_shape=None):
    """Encoder, projector (and predictor) and the ``AdaDimModel`` of a
    configuration. ``image_shape`` is (H, W, C) of the pipeline's views."""
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


# ------------------------------------------------------- run-directory lock
class RunDirectoryLocked(ValueError):
    """Another process is running ``pretrain`` in the same run directory."""


class _RunLock:
    """An exclusive ``fcntl.flock`` on ``<run directory>/run.lock``, held
    for the life of a run: two processes in one run directory would delete
    each other's checkpoints. The file records the holder (PID, host,
    start, command) so that a refused process can name it; the OS drops the
    lock when the holder dies (``kill -9`` included), so a left-over file
    never blocks a resume."""

    def __init__(self, directory):
        self.path = os.path.join(directory, LOCK)
        self._fd = None

    def acquire(self):
        try:
            import fcntl
        except ImportError:  # pragma: no cover - no flock (Windows)
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(fd)
            os.close(fd)
            raise RunDirectoryLocked(
                f"{os.path.dirname(self.path)!r} is in use by another "
                f"`adadim pretrain` ({holder}); two runs in one directory "
                "would delete each other's checkpoints. Wait for it to "
                "finish or stop it, or pass another `--output` directory."
            ) from None
        except OSError as e:  # a file system without flock (some NFS)
            os.close(fd)
            warnings.warn(f"Cannot lock {self.path} ({e}); running without "
                          "protection against a second process.")
            return self
        import socket
        import sys

        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                  "command": " ".join(sys.argv)[:300]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        self._fd = fd
        return self

    def remove(self):
        """Delete the lock file and its (empty) directory while still
        holding the lock (a process that opened it meanwhile is refused)."""
        if self._fd is None:
            return
        try:
            os.remove(self.path)
            os.rmdir(os.path.dirname(self.path))
        except OSError:  # another process added a file: leave it
            pass

    def release(self):
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # no stale holder in the file
        finally:
            os.close(self._fd)  # closing drops the lock
            self._fd = None


def _lock_holder(fd):
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "a process that is starting"
    text = f"PID {info['pid']} on {info.get('host', '?')}"
    if info.get("started"):
        text += f", since {info['started']}"
    if info.get("command"):
        text += f": {info['command']}"
    return text


def _not_a_run(directory):
    return ValueError(
        f"{directory!r} exists and is not empty, but holds no run "
        f"({CONFIG} missing); pick an empty or new directory so nothing "
        "in it is overwritten."
    )


def _foreign_entries(directory):
    """What a directory without a run's config holds (the lock aside)."""
    if not os.path.isdir(directory):
        return []
    return [f for f in os.listdir(directory) if f != LOCK]


# --------------------------------------------------------------- the run
def _check_resumable(directory, config):
    with open(os.path.join(directory, CONFIG), encoding="utf-8") as f:
        saved = json.load(f)
    saved = {k: v for k, v in saved.items() if k not in _RECORDED}
    changed = sorted(
        k
        for k in set(saved) | set(config)
        if k not in _RESUME_FREE and saved.get(k) != config.get(k)
    )
    if changed:
        details = ", ".join(
            f"{k}: {saved.get(k)!r} -> {config.get(k)!r}" for k in changed
        )
        raise ValueError(
            f"{directory!r} holds a run with different settings ({details}). "
            "Resuming it with these would mix two runs: pass a new "
            "`--output` directory, or the same settings to resume."
        )


def _check_same_data(directory, recorded, found, config):
    """Refuse to resume on training data other than the run's own (its
    fingerprint in config.json; runs made before fingerprints pass)."""
    if not isinstance(recorded, dict) or recorded.get("sha256") is None:
        return
    if (recorded.get("kind"), recorded["sha256"]) == (found["kind"],
                                                     found["sha256"]):
        return
    raise ValueError(
        f"The training data of the run in {directory!r} changed since it "
        f"started: {config['dataset']!r} split {config['train_split']!r} "
        f"now has {found['num_examples']} images with fingerprint "
        f"{found['sha256'][:12]} ({found['kind']}), the run was started on "
        f"{recorded.get('num_examples')} images with fingerprint "
        f"{recorded['sha256'][:12]} ({recorded.get('kind')}). Resuming "
        "would train one model on two datasets: restore the original data "
        "to resume, or pass a new `--output` directory to start a new run."
    )


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
    """
    if config is None:
        config = presets_lib.resolve(
            overrides.pop("preset", None),
            overrides.pop("dataset", None),
            overrides.pop("table9", None),
            **overrides,
        )
    elif overrides:
        config = {**config, **{k: v for k, v in overrides.items()
                               if v is not None}}
    # Every setting checked before any data is loaded or model built (the
    # rules of the command line's flags, config_checks.RULES).
    config = presets_lib.validate(dict(config))
    if output is None:
        output = os.path.join(
            "runs",
            f"{presets_lib._dataset_key(config['dataset'])}-"
            f"{config['backbone']}-{config['method']}-seed{config['seed']}",
        )
    directory = os.fspath(output)
    if (not os.path.exists(os.path.join(directory, CONFIG))
            and _foreign_entries(directory)):
        raise _not_a_run(directory)  # before a lock file is added to it
    created = not os.path.isdir(directory)
    os.makedirs(directory, exist_ok=True)
    lock = _RunLock(directory).acquire()
    try:
        return _pretrain_locked(config, directory, resume, verbose,
                                callbacks, log)
    except BaseException:
        if created and os.listdir(directory) == [LOCK]:
            lock.remove()  # refused before writing anything: leave no trace
        raise
    finally:
        lock.release()


def _pretrain_locked(config, directory, resume, verbose, callbacks, log):
    """``pretrain`` once the run directory is locked."""
    from keras_adadim import data as data_lib
    from keras_adadim.callbacks import AlphaUpdater
    from keras_adadim.callbacks import RepresentationMonitor
    from keras_adadim.callbacks import RunCheckpoint
    from keras_adadim.callbacks.run_checkpoint import EpochLogs
    from keras_adadim.callbacks.run_checkpoint import read_state

    ckpt_dir = os.path.join(directory, CHECKPOINTS)
    existing = os.path.exists(os.path.join(directory, CONFIG))
    if existing:
        if not resume:
            raise ValueError(
                f"{directory!r} already holds a run; pass another output "
                "directory (or resume=True to continue it)."
            )
        _check_resumable(directory, config)
        with open(os.path.join(directory, CONFIG), encoding="utf-8") as f:
            recorded_data = json.load(f).get("data_fingerprint")
    elif _foreign_entries(directory):
        raise _not_a_run(directory)
    os.makedirs(directory, exist_ok=True)
    if os.path.exists(os.path.join(directory, "encoder.keras")) and \
            os.path.exists(os.path.join(directory, RESULTS)):
        run = read_run(directory)
        log(f"{directory} is a finished run; its results:")
        print_results(run["results"], log=log)
        return {**run, "resumed_from": None}

    seed = int(config["seed"])
    keras.utils.set_random_seed(seed)

    # ---- data
    train = data_lib.load_dataset(
        config["dataset"], split=config["train_split"],
        data_dir=config["data_dir"], channels=config["channels"],
    )
    test = None
    if config["eval"] != "none" or config["monitor_every"]:
        try:
            test = data_lib.load_dataset(
                config["dataset"], split=config["test_split"],
                data_dir=config["data_dir"], channels=config["channels"],
            )
        except (ValueError, FileNotFoundError, KeyError) as e:
            log(f"No test split {config['test_split']!r} ({e}); the run "
                "will not be evaluated or monitored.")
    _check_data_size(train, test, config)
    data_fingerprint = data_lib.fingerprint(train)
    if existing:
        _check_same_data(directory, recorded_data, data_fingerprint, config)
    image_size = config["image_size"] or train.image_shape[0]
    if image_size is None:
        raise ValueError(
            f"The images of {config['dataset']!r} have different sizes; "
            "pass `image_size` (e.g. --image-size 224)."
        )
    image_size = int(image_size)
    channels = int(train.image_shape[-1])
    batch_size = int(config["batch_size"])
    epochs = int(config["epochs"])
    spe = data_lib.steps_per_epoch(train, batch_size)
    labelled = bool(
        config["online_probe"] and train.num_classes
        and config["train_split"] != "unlabelled"
    )

    def stream(epoch, step=0):
        # Batches are a function of (seed, epoch, step) only, so a resumed
        # run sees exactly the batches an uninterrupted one would.
        return data_lib.pretraining_dataset(
            train, augmentation=config["augmentation"],
            image_size=image_size, batch_size=batch_size, seed=seed,
            with_labels=labelled, epoch=epoch, step=step,
        )

    # ---- model
    model = build_model(
        config, num_classes=train.num_classes if labelled else None,
        image_shape=(image_size, image_size, channels),
    )
    random_encoder = keras.models.clone_model(model.encoder)
    model.compile(optimizer=build_optimizer(config, spe))
    first = next(iter(stream(0).take(1)))
    model(tuple(np.asarray(v) for v in first[0]))
    model.optimizer.build(model.trainable_variables)

    # ---- callbacks and resume
    history_rows = []
    stateful = {}
    cbs = []
    if model.alpha_mode == "adaptive":
        updater = AlphaUpdater(
            every=int(config["alpha_every"]),
            batches=int(config["alpha_batches"]),
            data=stream, verbose=1 if verbose else 0,
        )
        stateful["alpha_updater"] = updater
        cbs.append(updater)
    if test is not None and config["monitor_every"]:
        held_out, _ = data_lib.to_numpy(
            test, image_size=image_size,
            max_examples=int(config["monitor_samples"]),
        )
        monitor = RepresentationMonitor(
            held_out, every=int(config["monitor_every"]),
            max_samples=int(config["monitor_samples"]), seed=seed,
        )
        stateful["monitor"] = monitor
        cbs.append(monitor)

    state = read_state(ckpt_dir) if existing else None
    start_epoch, start_step = 0, 0
    epoch_logs = EpochLogs()
    if state is not None:
        if state["steps_per_epoch"] != spe:
            raise ValueError(
                f"The checkpoint in {ckpt_dir} was made with "
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
        start_epoch, start_step = state["epoch"], state["step_in_epoch"]
        if start_step:
            # The resumed epoch logs the means over all its steps.
            epoch_logs = EpochLogs(state.get("epoch_logs"))
        for name, cb in stateful.items():
            if name in state.get("callbacks", {}):
                cb.set_state(
                    state["callbacks"][name],
                    resumed_epoch=start_epoch if start_step else None,
                )
        if os.path.exists(os.path.join(directory, HISTORY)):
            with open(os.path.join(directory, HISTORY), encoding="utf-8") as f:
                history_rows = [
                    r for r in json.load(f) if r["epoch"] < start_epoch
                ]
        log(f"Resuming {directory} at epoch {start_epoch + 1}, step "
            f"{start_step}/{spe} (optimizer step {state['optimizer_step']}).")
    else:
        _atomic_json(
            os.path.join(directory, CONFIG),
            {**config, "versions": _versions(),
             "data_fingerprint": data_fingerprint},
        )
        try:
            data_lib.save_sample_views(
                train, os.path.join(directory, "sample_views.png"),
                scheme=config["augmentation"], image_size=image_size,
                seed=seed,
            )
        except ImportError:
            log("install matplotlib to save sample views")

    checkpoint = RunCheckpoint(
        ckpt_dir, spe, every_steps=int(config["checkpoint_every_steps"]),
        stateful_callbacks=stateful, epoch_offset_step=start_step,
        epoch_logs=epoch_logs,
        train_seconds=(state or {}).get("train_seconds", 0.0),
    )
    # The epoch's logs are merged across sessions before anything reads
    # them (the monitor's epoch-end statistics are added after).
    cbs.insert(0, epoch_logs)
    cbs += [
        # History before checkpoint: a kill between the two leaves a row
        # that the resumed run drops (rows of epochs >= the resume epoch).
        _HistoryFile(directory, history_rows),
        checkpoint,
        *_tensorboard(directory, log),
        *callbacks,
    ]
    log(
        f"{_method_label(config['method'])} pre-training: {config['dataset']} ({train.num_examples} "
        f"images, {image_size}x{image_size}x{channels}), {config['backbone']}"
        f", method {config['method']}, preset {config['preset']}, "
        f"{epochs} epochs x {spe} steps of batch {batch_size}, backend "
        f"{keras.backend.backend()}; run directory {directory}"
    )
    # Keras warns that `shuffle` is ignored for tf.data; our pipeline
    # shuffles (seeded per epoch), so the warning is noise here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*shuffle.*tf.data")
        if start_step:
            model.fit(
                stream(start_epoch, start_step),
                initial_epoch=start_epoch, epochs=start_epoch + 1,
                steps_per_epoch=spe - start_step, callbacks=cbs,
                verbose=verbose, planned_steps=epochs * spe,
            )
            start_epoch += 1
        if start_epoch < epochs:
            model.fit(
                stream(start_epoch), initial_epoch=start_epoch,
                epochs=epochs, steps_per_epoch=spe, callbacks=cbs,
                verbose=verbose, planned_steps=epochs * spe,
            )
    # Cumulative over every session of the run, each up to its last
    # checkpoint (steps run after it were lost with the kill and redone,
    # so they count once, in the session that kept them).
    session = checkpoint.session_seconds()
    results = {"train_seconds": checkpoint.previous_seconds + session,
               "session_train_seconds": session}

    _save_keras(model.encoder, os.path.join(directory, "encoder.keras"))
    _save_keras(model, os.path.join(directory, "model.keras"))
    if "alpha_updater" in stateful:
        results["alpha_updates"] = stateful["alpha_updater"].updates
    if "monitor" in stateful and stateful["monitor"].records:
        results["final_statistics"] = stateful["monitor"].records[-1]
    if test is not None and config["eval"] != "none":
        probe_train = train
        if not train.num_classes or config["train_split"] == "unlabelled":
            probe_train = data_lib.load_dataset(
                config["dataset"], split="train",
                data_dir=config["data_dir"], channels=config["channels"],
            )
        results["evaluation"] = evaluate_encoders(
            config, probe_train, test, image_size,
            {"AdaDim encoder": model.encoder, "random-init encoder":
             random_encoder} if config["eval_baselines"]
            else {"AdaDim encoder": model.encoder},
            raw_pixels=bool(config["eval_baselines"]), log=log,
        )
    _atomic_json(os.path.join(directory, RESULTS), results)
    _plot_dynamics(directory, history_rows, log)
    print_results(results, log=log)
    return {
        "directory": directory, "config": config, "history": history_rows,
        "results": results,
        "resumed_from": None if state is None else (
            state["epoch"], state["step_in_epoch"]),
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
    feats = encoder.predict(ds.map(_images_only), verbose=verbose)
    labels = np.concatenate([y for _, y in ds.as_numpy_iterator()])
    feats = np.asarray(feats, "float32")
    return feats.reshape(len(feats), -1), labels.astype("int64")


def evaluate_encoders(config, train, test, image_size, encoders,
                      raw_pixels=False, log=print):
    """Linear probe (all labels and ``few_labels`` per class) and, for
    ``eval`` = knn / all, weighted kNN, for each encoder (and raw pixels).
    Returns ``{name: evaluate_features(...) with all labels, plus
    few-label results under 'few_label'}``."""
    from keras_adadim import data as data_lib
    from keras_adadim.evaluation import evaluate_features

    mode = config["eval"]
    out = {}
    features = {}
    for name, encoder in encoders.items():
        log(f"Extracting {name} features ...")
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
        smallest = int(np.bincount(ytr[ytr >= 0]).min()) if len(ytr) else 0
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
    for name, r in evaluation.items():
        line = f"{name:<22}{r['all_labels']['linear_top1']:>9.3f}"
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


__all__ = ["build_model", "build_optimizer", "evaluate_encoders", "extract",
           "history_columns", "pretrain", "print_results", "read_run"]
