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


def _load_source(source):
    """(encoder, run config or None, run directory or None)."""
    from keras_adadim import training

    if os.path.isdir(source) and os.path.exists(
        os.path.join(source, training.CONFIG)
    ):
        path = os.path.join(source, "encoder.keras")
        if not os.path.exists(path):
            raise ValueError(
                f"{source!r} has no encoder.keras yet: the run has not "
                f"finished. Finish it with `adadim pretrain --output {source}`."
            )
        with open(os.path.join(source, training.CONFIG), encoding="utf-8") as f:
            config = json.load(f)
        from keras_adadim import hub

        return hub.from_pretrained(path), config, source
    from keras_adadim import hub

    return hub.from_pretrained(source), None, None


def evaluate(source, dataset=None, data_dir=None, image_size=None,
             eval="all", few_labels=10, probe_epochs=100, knn_k=20, seed=0,
             output=None, log=print):
    """Evaluate ``source``'s encoder; returns the results dict and writes
    ``evaluation.json`` to ``output`` (default: the run directory)."""
    from keras_adadim import data as data_lib
    from keras_adadim import training

    encoder, config, run_dir = _load_source(source)
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
    output = output or run_dir
    if output:
        os.makedirs(output, exist_ok=True)
        path = os.path.join(output, "evaluation.json")
        training._atomic_json(path, report)
        log(f"Wrote {path}")
    return report


__all__ = ["evaluate"]
