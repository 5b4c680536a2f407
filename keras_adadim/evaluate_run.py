"""``adadim evaluate``: the downstream accuracy of a frozen encoder.

The encoder comes from a run directory (its ``encoder.keras`` and the
dataset and image size in its ``config.json``), a ``.keras`` file, a zoo
name or an ``hf://`` URI; features of the dataset's train and test splits
are extracted once and evaluated with the linear probe (all labels and
``few_labels`` per class) and weighted kNN (top-1 and top-5).
"""

import json
import os

import keras

from keras_adadim import _written
from keras_adadim import run_directory

EVALUATION_FILE = "evaluation.json"
WRITER = "adadim evaluate"
_REPORT_KEYS = {"source", "dataset", "settings", "evaluation"}


def _legacy_own(directory, name):
    """An ``evaluation.json`` written before the manifest existed: a JSON
    object with exactly the keys ``evaluate`` writes (``source``,
    ``dataset``, ``settings``, ``evaluation``)."""
    if name != EVALUATION_FILE:
        return False
    try:
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and set(data) == _REPORT_KEYS


def _load_source(source):
    """(encoder, run config or None, run directory or None)."""
    run = run_directory.RunDirectory(source)
    if os.path.isdir(source) and run.has_run():
        path = run.file(run_directory.ENCODER_FILE)
        if not os.path.exists(path):
            raise ValueError(
                f"{source!r} has no encoder.keras yet: the run has not "
                f"finished. Finish it with `adadim pretrain --output {source}`."
            )
        config = run.read_config()
        from keras_adadim import hub

        return hub.from_pretrained(path), config, source
    from keras_adadim import hub

    return hub.from_pretrained(source), None, None


def evaluate(source, dataset=None, data_dir=None, image_size=None,
             eval="all", few_labels=10, probe_epochs=100, knn_k=20, seed=0,
             output=None, log=print, overwrite=False):
    """Evaluate ``source``'s encoder; returns the results dict and writes
    ``evaluation.json`` to ``output`` (default: the run directory).

    ``evaluation.json`` is replaced only when ``evaluate`` wrote it: the
    output directory's ``.keras_adadim_outputs.json`` records its sha256
    (an ``evaluation.json`` from before that manifest existed counts as
    its own when it holds exactly the keys ``evaluate`` writes). Any other
    ``evaluation.json`` there (the user's, or one edited since) is refused
    with a ``ValueError`` naming it, before the encoder is evaluated and
    without changing anything on disk, unless ``overwrite=True``.
    """
    from keras_adadim import data as data_lib
    from keras_adadim import training

    encoder, config, run_dir = _load_source(source)
    output = output or run_dir
    if output:
        _written.check_can_write(output, [EVALUATION_FILE], WRITER,
                                 overwrite, legacy=_legacy_own)
    if dataset is None:
        if config is None:
            raise ValueError(
                f"{source!r} is not a run directory, so its dataset is "
                "unknown: pass --dataset (e.g. --dataset digits)."
            )
        dataset = config["dataset"]
    if config is not None:
        data_dir = data_dir or config.get("data_dir")
    splits = ("train", "test")
    if config is not None:
        # The probe trains on the labelled train split even when the
        # encoder was pre-trained on another (STL-10's 'unlabelled').
        splits = ("train", config.get("test_split", "test"))
    train = data_lib.load_dataset(dataset, split=splits[0], data_dir=data_dir)
    test = data_lib.load_dataset(dataset, split=splits[1], data_dir=data_dir)
    expected = encoder.input_shape
    size = image_size or (config or {}).get("image_size") or expected[1] \
        or train.image_shape[0]
    if expected[-1] is not None and train.image_shape[-1] != expected[-1]:
        train = data_lib.load_dataset(dataset, split=splits[0],
                                      data_dir=data_dir,
                                      channels=int(expected[-1]))
        test = data_lib.load_dataset(dataset, split=splits[1],
                                     data_dir=data_dir,
                                     channels=int(expected[-1]))
    settings = {
        "eval": eval, "few_labels": few_labels, "probe_epochs": probe_epochs,
        "knn_k": knn_k, "seed": seed,
    }
    log(f"Evaluating {source} on {dataset} ({train.num_examples} train / "
        f"{test.num_examples} test images, {size}px), backend "
        f"{keras.backend.backend()}")
    results = training.evaluate_encoders(
        settings, train, test, int(size), {"encoder": encoder}, log=log
    )
    training.print_results({"evaluation": results}, log=log)
    report = {"source": source, "dataset": dataset, "settings": settings,
              "evaluation": results}
    if output:
        # Again: a file may have appeared while the encoder was evaluated.
        _written.check_can_write(output, [EVALUATION_FILE], WRITER,
                                 overwrite, legacy=_legacy_own)
        with _written.staging(output) as stage:
            run_directory.atomic_write_json(
                os.path.join(stage, EVALUATION_FILE), report)
            path, = _written.replace_files(output, stage, WRITER)
        log(f"Wrote {path}")
    return report


__all__ = ["evaluate"]
