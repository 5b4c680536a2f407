"""The ``adadim`` command line.

    adadim pretrain [--dataset digits] [--preset baseline|expanded|...] ...
    adadim evaluate RUN_DIR_OR_ENCODER [--dataset D] ...
    adadim analyze RUN_DIR [RUN_DIR ...] [--output DIR] [--format md|html]
    adadim zoo list
    adadim zoo info NAME
    adadim zoo download NAME [--output DIR] [--revision REV] [--full-model]
    adadim zoo push DIR REPO_ID [--private] [--token T] [--message M]
    adadim zoo train NAME [--output DIR]

Each top-level command is a function ``add_<command>_parser(subparsers)``
listed in ``COMMANDS``. Handlers return an exit status; ``ValueError`` and
``OSError`` raised by the library are printed as ``error: ...`` (status 2).
"""

import argparse
import os
import sys

from keras_adadim import config_checks


# --------------------------------------------------------------------- zoo
def _zoo_list(args):
    from keras_adadim import zoo

    entries = zoo.load_registry()
    print(f"{'name':<36}{'status':<11}{'dataset':<17}{'backbone'}")
    for name in sorted(entries):
        e = entries[name]
        backbone = (e.get("backbone") or "").split(" (")[0]
        print(f"{name:<36}{e['status']:<11}{e.get('dataset', ''):<17}{backbone}")
    print(
        "\n`adadim zoo info NAME` for the recipe and metrics; "
        "`keras_adadim.from_pretrained(NAME)` to load a published one."
    )
    return 0


def _zoo_info(args):
    from keras_adadim import zoo

    print(zoo.describe(zoo.get(args.name)))
    return 0


def _zoo_download(args):
    _quiet_tensorflow(args, needs_tensorflow=False)
    from keras_adadim import hub

    path = hub.download(
        args.name,
        directory=args.output,
        revision=args.revision,
        full_model=args.full_model,
        cache_dir=args.cache_dir,
        overwrite=args.overwrite,
    )
    print(path)
    return 0


def _zoo_push(args):
    _quiet_tensorflow(args, needs_tensorflow=False)
    from keras_adadim import hub

    info = hub.push_to_hub(
        args.directory,
        args.repo_id,
        token=args.token,
        private=args.private,
        commit_message=args.message,
    )
    print(getattr(info, "commit_url", info))
    return 0


def _zoo_train(args):
    _quiet_tensorflow(args, needs_tensorflow=False)
    from keras_adadim import zoo

    out = args.output or f"runs/{args.name}"
    directory, results = zoo.train(args.name, out, overwrite=args.overwrite)
    acc = results.get("linear_probe_accuracy")
    print(f"\nSaved {args.name} to {directory} (linear-probe top-1 {acc}).")
    return 0


def add_zoo_parser(subparsers):
    zoo_p = subparsers.add_parser(
        "zoo", help="the model zoo: list, inspect, download, push, train"
    )
    sub = zoo_p.add_subparsers(dest="zoo_command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("list", help="list the zoo's models")
    p.set_defaults(handler=_zoo_list)

    p = sub.add_parser("info", help="recipe, hashes and metrics of one model")
    p.add_argument("name")
    p.set_defaults(handler=_zoo_info)

    p = sub.add_parser(
        "download",
        help="fetch and verify a model file (into the HF cache, or --output)",
    )
    p.add_argument("name", help="zoo name, hf://org/repo, or a local path")
    p.add_argument("--output", type=_TEXT,
                   help="copy the verified file into this directory")
    p.add_argument("--revision", type=_TEXT)
    p.add_argument("--full-model", action="store_true",
                   help="the full AdaDimModel (model.keras), not the encoder")
    p.add_argument("--cache-dir", type=_TEXT)
    p.add_argument("--overwrite", action="store_true",
                   help="replace a different file already in --output")
    p.set_defaults(handler=_zoo_download)

    p = sub.add_parser(
        "push", help="upload a save_pretrained directory to the Hub"
    )
    p.add_argument("directory")
    p.add_argument("repo_id")
    p.add_argument("--token")
    p.add_argument("--private", action="store_true")
    p.add_argument("--message", default="Upload AdaDim encoder (keras-adadim)")
    p.set_defaults(handler=_zoo_push)

    p = sub.add_parser(
        "train", help="train a zoo model with its recorded recipe"
    )
    p.add_argument("name")
    p.add_argument("--output", type=_TEXT,
                   help="directory to write (runs/NAME)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files in --output that save_pretrained "
                   "did not write")
    p.set_defaults(handler=_zoo_train)
    return zoo_p


# ---------------------------------------------------------------- pretrain
# --------------------------------------------------------- start-up noise
# Imports stay inside the command functions: `adadim --help`, `adadim zoo
# list` and argument errors never import Keras or TensorFlow.
_GPU_DEVICES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def _has_gpu():
    """Whether the machine shows a GPU (NVIDIA, ROCm or WSL device node)
    that is not hidden with ``CUDA_VISIBLE_DEVICES``."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return False
    return any(os.path.exists(p) for p in _GPU_DEVICES)


def _quiet_native_logs(verbose):
    """On a machine without a GPU, hide TensorFlow's C++ / absl start-up
    logs (oneDNN notes, "could not find cuda drivers", cuInit failures):
    they are noise there. ``--verbose 2`` (or a ``TF_CPP_MIN_LOG_LEVEL`` the
    user set) keeps them. Returns whether the logs are hidden."""
    if (verbose >= 2 or "tensorflow" in sys.modules  # too late to matter
            or "TF_CPP_MIN_LOG_LEVEL" in os.environ or _has_gpu()):
        return False
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return True


def _import_tensorflow_quietly():
    """Import TensorFlow with the process's stderr (fd 2) captured: TF 2.2x
    logs through absl before ``TF_CPP_MIN_LOG_LEVEL`` applies. What it
    wrote is shown if the import fails."""
    import tempfile

    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            capture.seek(0)
            sys.stderr.write(capture.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _quiet_tensorflow(args=None, needs_tensorflow=True):
    """Before a command imports the library: hide start-up noise (see
    ``_quiet_native_logs``) and TensorFlow's Python logger's retracing
    notices for every model the evaluation predicts on (the command line
    prints its own progress). ``needs_tensorflow=False``: the command uses
    Keras only, so TensorFlow is imported only on its backend."""
    quiet = getattr(args, "quiet", False)
    if not needs_tensorflow and os.environ.get(
            "KERAS_BACKEND", "tensorflow") != "tensorflow":
        return
    try:
        if quiet:
            _import_tensorflow_quietly()
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
    except ImportError:  # pragma: no cover - tensorflow is a dependency
        return
    if quiet:
        try:
            from absl import logging as absl_logging

            absl_logging.set_verbosity(absl_logging.ERROR)
        except ImportError:  # pragma: no cover - TensorFlow requires absl
            pass


# Range-checked argparse types: a bad value is refused while the command
# line is parsed (argparse prefixes "argument --flag:"), never after hours
# of training. The rules are the library's own (config_checks.RULES, which
# `presets.resolve` / `training.pretrain` apply to Python callers), so the
# command line and the API cannot drift apart.
def _setting(key):
    """The argparse type of the flag that sets configuration ``key``."""
    rule = config_checks.RULES[key]

    def parse(value):
        try:
            return config_checks.parse_text(key, value)
        except config_checks.SettingError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = config_checks.describe(rule)
    return parse


def _text(value):
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value


_TEXT = _text
_TEXT.__name__ = "non-empty text"


def _names(key):
    return ", ".join(config_checks.RULES[key].choices)


# flag -> (config key, type, help). Unset flags keep the preset's value.
def _method_names():
    from keras_adadim import presets  # data only: no Keras import

    return presets.method_names()


def _method_arg(value):
    import difflib

    names = _method_names()
    if value not in names:
        close = difflib.get_close_matches(value, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise argparse.ArgumentTypeError(
            f"unknown method {value!r}{hint}; choose one of "
            f"{', '.join(names)}")
    return value


_PRETRAIN_FLAGS = [
    ("--data-dir", "data_dir", _setting("data_dir"),
     "tensorflow-datasets data_dir (prepared data / manual downloads)"),
    ("--train-split", "train_split", _setting("train_split"),
     "split to pre-train on"),
    ("--test-split", "test_split", _setting("test_split"),
     "split to evaluate and monitor on"),
    ("--image-size", "image_size", _setting("image_size"),
     "crop size of the views (px)"),
    ("--channels", "channels", _setting("channels"),
     "1 or 3: convert the images"),
    ("--backbone", "backbone", _setting("backbone"), _names("backbone")),
    ("--width-multiplier", "width_multiplier", _setting("width_multiplier"),
     "ResNet/ViT width"),
    ("--width", "width", _setting("width"), "small_cnn width"),
    ("--stem", "stem", _setting("stem"),
     _names("stem") + " (ResNet)"),
    ("--method", "method", _method_arg,
     "the self-supervised method: " + ", ".join(_method_names())),
    ("--projector", "projector", _setting("projector"),
     _names("projector")),
    ("--projector-dim", "projector_dim", _setting("projector_dim"),
     "projector output size"),
    ("--projector-hidden-dim", "projector_hidden_dim",
     _setting("projector_hidden_dim"), "projector hidden size"),
    ("--momentum-encoder", "momentum_encoder", _setting("momentum_encoder"),
     "EMA momentum of a momentum encoder (e.g. 0.996); BYOL / MoCo v3 / "
     "MoCo v2+: the teacher's base momentum"),
    ("--predictor-hidden-dim", "predictor_hidden_dim",
     _setting("predictor_hidden_dim"),
     "hidden width of the predictor (BYOL, SimSiam, MoCo v3, NNCLR, "
     "AdaDim's --predictor)"),
    ("--num-prototypes", "num_prototypes", _setting("num_prototypes"),
     "prototypes of SwAV and DINO, and of each DeepCluster v2 head "
     "(default: the method's, 3000 / 4096 / 3 x 3000; fewer for a small "
     "dataset)"),
    ("--queue-size", "queue_size", _setting("queue_size"),
     "rows of NNCLR's support set / each of MoCo v2+'s negative queues"),
    ("--temperature", "temperature", _setting("temperature"),
     "InfoNCE temperature"),
    ("--gamma", "gamma", _setting("gamma"),
     "beta = gamma * alpha (0: no L_mut)"),
    ("--alpha", "alpha", _setting("alpha"),
     "adaptive (effective rank), cosine, linear or a fixed number"),
    ("--alpha-every", "alpha_every", _setting("alpha_every"),
     "epochs between alpha updates"),
    ("--alpha-batches", "alpha_batches", _setting("alpha_batches"),
     "batches per alpha update"),
    ("--augmentation", "augmentation", _setting("augmentation"),
     _names("augmentation")),
    ("--augment-on", "augment_on", _setting("augment_on"),
     "where the views are made: host (tf.data, the default), device "
     "(inside the compiled step, every sample its own parameters; not the "
     "digits scheme, one device) or auto (device when the backend has an "
     "accelerator)"),
    ("--local-crops", "local_crops", _setting("local_crops"),
     "multi-crop: K small local views besides the two global ones "
     "(SwAV, DINO; made where --augment-on says; 0: off)"),
    ("--local-crop-size", "local_crop_size", _setting("local_crop_size"),
     "side of the local views (px; default 3/7 of --image-size)"),
    ("--epochs", "epochs", _setting("epochs"), "training epochs"),
    ("--batch-size", "batch_size", _setting("batch_size"),
     "images per view per step"),
    ("--optimizer", "optimizer", _setting("optimizer"),
     _names("optimizer")),
    ("--learning-rate", "learning_rate", _setting("learning_rate"),
     "base learning rate (x batch/256 when the preset scales it)"),
    ("--weight-decay", "weight_decay", _setting("weight_decay"),
     "weight decay"),
    ("--warmup-epochs", "warmup_epochs", _setting("warmup_epochs"),
     "linear warm-up epochs"),
    ("--schedule", "schedule", _setting("schedule"),
     "cosine (with warm-up) or constant"),
    ("--probe-learning-rate", "probe_learning_rate",
     _setting("probe_learning_rate"), "online linear probe's learning rate"),
    ("--monitor-every", "monitor_every", _setting("monitor_every"),
     "epochs between H(R) / I(R; Z) measurements (0: off)"),
    ("--monitor-samples", "monitor_samples", _setting("monitor_samples"),
     "held-out images the monitor uses"),
    ("--eval", "eval", _setting("eval"), _names("eval")),
    ("--probe-epochs", "probe_epochs", _setting("probe_epochs"),
     "offline linear-probe epochs"),
    ("--few-labels", "few_labels", _setting("few_labels"),
     "labels per class of the few-label probe (0: off)"),
    ("--knn-k", "knn_k", _setting("knn_k"),
     "neighbours of the kNN evaluation"),
    ("--checkpoint-every", "checkpoint_every_steps",
     _setting("checkpoint_every_steps"),
     "steps between mid-epoch checkpoints (0: epoch ends only)"),
    ("--devices", "devices", _setting("devices"),
     "data-parallel devices: GPUs, or virtual CPU devices on a machine "
     "without one (TensorFlow MirroredStrategy / JAX DataParallel; the "
     "batch is split, the losses are the one-device losses)"),
    ("--steps-per-execution", "steps_per_execution",
     _setting("steps_per_execution"),
     "training steps per call of the compiled step (TensorFlow, JAX; a "
     "divisor of the epoch's steps): Keras reads the logs on the host once "
     "per call, so on a GPU e.g. 10 keeps its queue of steps full"),
    ("--seed", "seed", _setting("seed"),
     "seed of data order, augmentation and init"),
]


def pretrain_config(args):
    """The resolved configuration of parsed ``adadim pretrain`` flags."""
    from keras_adadim import presets

    overrides = {key: getattr(args, key) for _, key, _, _ in _PRETRAIN_FLAGS}
    if args.predictor is not None:
        overrides["predictor"] = args.predictor
    if args.online_probe is not None:
        overrides["online_probe"] = args.online_probe
    if args.baselines is not None:
        overrides["eval_baselines"] = args.baselines
    return presets.resolve(
        args.preset, args.dataset, table9=args.table9, **overrides
    )


def _virtual_cpu_devices(n):
    """``--devices N`` on a machine without a GPU: JAX makes its N CPU
    devices only if told before it starts (TensorFlow's are configured by
    the library, ``_backend.data_parallel``)."""
    if n <= 1 or _has_gpu() or "jax" in sys.modules:
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = (
            f"{flags} --xla_force_host_platform_device_count={n}").strip()


def _pretrain(args):
    import json

    config = pretrain_config(args)
    if args.print_config:
        print(json.dumps(config, indent=2))
        return 0
    _virtual_cpu_devices(int(config["devices"]))
    _quiet_tensorflow(args)
    from keras_adadim import training

    training.pretrain(
        config, output=args.output, resume=not args.no_resume,
        verbose=args.verbose,
    )
    return 0


def add_pretrain_parser(subparsers):
    from keras_adadim import presets

    p = subparsers.add_parser(
        "pretrain",
        help="pre-train an encoder with AdaDim (or a comparison method)",
        description=(
            "Pre-train an encoder and write a run directory (config, "
            "history, checkpoints, TensorBoard logs, encoder.keras, "
            "results). Running it again on the same --output resumes an "
            "interrupted run. Presets encode the paper's Tables 7-10; "
            "flags override them (see --print-config)."
        ),
    )
    p.add_argument(
        "--dataset", default="digits", type=_TEXT,
        help="digits (bundled), a tensorflow-datasets name (cifar10, "
        "cifar100, stl10, imagenet2012, ...), a class-per-folder image "
        "directory or a MedMNIST-style .npz file",
    )
    p.add_argument("--preset", choices=sorted(presets.PRESETS),
                   help="digits (default for digits), baseline (default "
                   "otherwise), expanded, simclr, vicreg")
    p.add_argument("--table9", type=_TEXT,
                   help="the paper's dataset row (Table 9) to "
                   "use for a folder / .npz dataset, e.g. bloodmnist")
    for flag, key, kind, text in _PRETRAIN_FLAGS:
        p.add_argument(flag, dest=key, type=kind, help=text)
    p.add_argument("--predictor", dest="predictor", action="store_true",
                   default=None, help="add a predictor head")
    p.add_argument("--no-predictor", dest="predictor", action="store_false")
    p.add_argument("--online-probe", dest="online_probe",
                   action="store_true", default=None,
                   help="train a linear probe alongside (needs labels)")
    p.add_argument("--no-online-probe", dest="online_probe",
                   action="store_false")
    p.add_argument("--baselines", dest="baselines", action="store_true",
                   default=None, help="also evaluate a random-init encoder "
                   "and raw pixels")
    p.add_argument("--no-baselines", dest="baselines", action="store_false")
    p.add_argument("--output", type=_TEXT,
                   help="run directory (default runs/<dataset>-"
                   "<backbone>-<method>-seed<seed>)")
    p.add_argument("--no-resume", action="store_true",
                   help="refuse to continue an existing run directory")
    p.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                   help="Keras progress: 0 silent, 1 bar, 2 line per epoch")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved configuration and exit")
    p.set_defaults(handler=_pretrain)
    return p


# ---------------------------------------------------------------- evaluate
def _evaluate(args):
    _quiet_tensorflow(args)
    from keras_adadim import evaluate_run

    evaluate_run.evaluate(
        args.source, dataset=args.dataset, data_dir=args.data_dir,
        image_size=args.image_size, eval=args.eval,
        few_labels=args.few_labels, probe_epochs=args.probe_epochs,
        knn_k=args.knn_k, seed=args.seed, output=args.output,
        overwrite=args.overwrite,
    )
    return 0


def add_evaluate_parser(subparsers):
    p = subparsers.add_parser(
        "evaluate",
        help="linear probe, kNN and few-label accuracy of a frozen encoder",
        description=(
            "Evaluate a run directory's encoder (or any .keras encoder, "
            "zoo name or hf:// URI) on a dataset's train/test splits: "
            "linear probe (Adam 1e-2 -> 1e-6, wd 5e-6), weighted kNN "
            "(k=20, cosine) and the few-label probe, top-1 and top-5."
        ),
    )
    p.add_argument("source", help="run directory, .keras file, zoo name "
                   "or hf://org/repo")
    p.add_argument("--dataset", type=_TEXT,
                   help="default: the run's dataset")
    p.add_argument("--data-dir", type=_TEXT)
    p.add_argument("--image-size", type=_setting("image_size"))
    p.add_argument("--eval", default="all", choices=("linear", "knn", "all"))
    p.add_argument("--few-labels", type=_setting("few_labels"), default=10)
    p.add_argument("--probe-epochs", type=_setting("probe_epochs"),
                   default=100)
    p.add_argument("--knn-k", type=_setting("knn_k"), default=20)
    p.add_argument("--seed", type=_setting("seed"), default=0)
    p.add_argument("--output", type=_TEXT,
                   help="write evaluation.json here (default: "
                   "the run directory, if the source is one)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an evaluation.json that `adadim evaluate` "
                   "did not write (refused by default)")
    p.set_defaults(handler=_evaluate)
    return p


# ----------------------------------------------------------------- analyze
def _analyze(args):
    _quiet_tensorflow(args, needs_tensorflow=False)
    from keras_adadim.analysis import report

    path = report.analyze(
        args.runs, output=args.output, fmt=args.format,
        accuracy_key=args.accuracy, allow_mixed=args.allow_mixed,
        overwrite=args.overwrite,
    )
    print(f"Report written to {path}")
    return 0


def add_analyze_parser(subparsers):
    p = subparsers.add_parser(
        "analyze",
        help="a report (Markdown or HTML, with plots) of one or more runs",
        description=(
            "Training dynamics (H(R), I(R; Z), uniformity, alpha) of each "
            "run, and across runs: H(R) vs I(R; Z) coloured by accuracy and "
            "the |Pearson r| table of accuracy against H(R), I(R; Z) and "
            "I/H (the paper's Table 1; needs >= 3 runs)."
        ),
    )
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--output", default="analysis", type=_TEXT,
                   help="report directory (default ./analysis)")
    p.add_argument("--format", default="md", choices=("md", "html"))
    p.add_argument("--accuracy", default="linear_top1",
                   help="accuracy to correlate: linear_top1, knn_top1, "
                   "few_label")
    p.add_argument("--allow-mixed", action="store_true",
                   help="compare runs on different datasets/backbones")
    p.add_argument("--overwrite", action="store_true",
                   help="replace report files in --output that `adadim "
                   "analyze` did not write (refused by default)")
    p.set_defaults(handler=_analyze)
    return p


# Top-level commands, in the order `adadim --help` lists them.
COMMANDS = [add_pretrain_parser, add_evaluate_parser, add_analyze_parser,
            add_zoo_parser]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="adadim",
        description="keras-adadim: AdaDim self-supervised pre-training.",
    )
    from keras_adadim import __version__

    parser.add_argument("--version", action="version",
                        version=f"keras-adadim {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.quiet = _quiet_native_logs(getattr(args, "verbose", 1))
    try:
        return args.handler(args)
    except BrokenPipeError:  # output piped into `head`: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "\ninterrupted. A pre-training run resumes from its last "
            "checkpoint when you run the same command again.",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
