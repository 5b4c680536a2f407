"""The model zoo registry: names, Hub repos, pinned hashes, recipes, metrics.

The registry ships inside the package (``keras_adadim/zoo_registry.json``) so
that it is found from an editable install and from a wheel alike; weights
published with the package live under ``keras_adadim/pretrained/<name>/``.
Extra registries (a private zoo, or tests) can be layered on top with the
``KERAS_ADADIM_ZOO_REGISTRY`` environment variable: a list of JSON files in
the same format, separated by ``os.pathsep``; their entries add to or replace
the shipped ones by name.

Each entry has: ``name``, ``status`` (``"published"`` or ``"recipe"``),
``repo_id`` and ``revision`` on the Hugging Face Hub, ``sha256`` (file name ->
hex digest, pinned for published weights), ``package_path`` (weights shipped
in the package, optional), ``dataset``, ``backbone``, ``command`` (the exact
command that trains it), ``requires`` (what that command still needs, for
recipes), ``metrics`` (measured, for published weights).
"""

import difflib
import json
import os
from importlib import resources

REGISTRY_FILE = "zoo_registry.json"
REGISTRY_ENV = "KERAS_ADADIM_ZOO_REGISTRY"
STATUSES = ("published", "recipe")


def package_dir():
    """The installed ``keras_adadim`` package directory."""
    return str(resources.files("keras_adadim"))


def registry_path():
    """Path of the registry shipped with the package."""
    return os.path.join(package_dir(), REGISTRY_FILE)


def _read(path):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list):
        raise ValueError(
            f"Zoo registry {path} has no `models` list; see "
            f"{registry_path()} for the format."
        )
    for entry in models:
        if "name" not in entry or entry.get("status") not in STATUSES:
            raise ValueError(
                f"Zoo registry {path}: every entry needs a `name` and a "
                f"`status` in {STATUSES}; got {entry!r:.200}."
            )
    return models


def load_registry():
    """All entries, by name (shipped registry, then ``$KERAS_ADADIM_ZOO_REGISTRY``)."""
    entries = {}
    paths = [registry_path()]
    extra = os.environ.get(REGISTRY_ENV, "")
    paths += [p for p in extra.split(os.pathsep) if p]
    for path in paths:
        for entry in _read(path):
            entry = dict(entry)
            entry["_registry"] = path
            entries[entry["name"]] = entry
    return entries


def names():
    return sorted(load_registry())


def close_names(name, n=3):
    known = names()
    close = difflib.get_close_matches(name, known, n=n, cutoff=0.5)
    if not close:  # fall back on substrings ("cifar100", "resnet50")
        close = [k for k in known if name.lower() in k][:n]
    return close


def get(name):
    """The registry entry for ``name``; a ``ValueError`` naming the closest
    known names when there is none."""
    entries = load_registry()
    if name in entries:
        return entries[name]
    close = close_names(name)
    hint = (
        f" Did you mean {', '.join(repr(c) for c in close)}?"
        if close
        else ""
    )
    raise ValueError(
        f"Unknown model {name!r}: not a zoo name, an existing path, or an "
        f"`hf://org/repo` URI.{hint} Known names: {', '.join(sorted(entries))} "
        "(`adadim zoo list`)."
    )


def recipe_error(entry):
    """The error for a name whose weights are not published yet."""
    msg = (
        f"{entry['name']!r} is a recipe: its weights are not published yet. "
        f"Train them with:\n\n    {entry['command']}\n"
    )
    if entry.get("requires"):
        msg += f"\n(that command requires {entry['requires']}.)"
    return ValueError(msg)


def shipped_dir(entry):
    """Directory of the weights shipped inside the package, or ``None``."""
    rel = entry.get("package_path")
    if not rel:
        return None
    path = os.path.join(package_dir(), *rel.split("/"))
    return path if os.path.isdir(path) else None


def describe(entry):
    """A human-readable multi-line description of an entry."""
    lines = [f"{entry['name']}  [{entry['status']}]"]
    if entry.get("description"):
        lines.append(f"  {entry['description']}")
    for key in ("dataset", "backbone", "projector", "method"):
        if entry.get(key):
            lines.append(f"  {key + ':':<11}{entry[key]}")
    if entry.get("repo_id"):
        rev = entry.get("revision") or "-"
        lines.append(f"  {'hub:':<11}hf://{entry['repo_id']} (revision {rev})")
    shipped = shipped_dir(entry)
    if shipped:
        lines.append(f"  {'shipped:':<11}{shipped}")
    for fname, digest in sorted((entry.get("sha256") or {}).items()):
        lines.append(f"  {'sha256:':<11}{digest}  {fname}")
    if entry.get("metrics"):
        for key, value in entry["metrics"].items():
            lines.append(f"  {'metric:':<11}{key} = {value}")
    lines.append(f"  {'command:':<11}{entry['command']}")
    if entry.get("requires"):
        lines.append(f"  {'requires:':<11}{entry['requires']}")
    return "\n".join(lines)


def _command_words(command):
    """The words of a recipe command, without leading VAR=value settings."""
    import shlex

    words = shlex.split(command)
    while words and "=" in words[0] and not words[0].startswith("-"):
        words.pop(0)
    return words


def _train_pretrain(entry, argv, output, extra_args):
    """Run an `adadim pretrain ...` recipe into ``output/run`` and publish
    the result into ``output`` with ``save_pretrained``."""
    import keras

    from keras_adadim import cli
    from keras_adadim import hub
    from keras_adadim import training

    args = cli.build_parser().parse_args(
        ["pretrain", *argv, *extra_args, "--output",
         os.path.join(output, "run")]
    )
    config = cli.pretrain_config(args)
    run = training.pretrain(config, output=args.output, verbose=args.verbose)
    model = keras.saving.load_model(
        os.path.join(args.output, "model.keras"), compile=False
    )
    results = {}
    evaluation = (run["results"] or {}).get("evaluation") or {}
    main = evaluation.get("AdaDim encoder")
    if main:
        results["linear_probe_accuracy"] = main["all_labels"]["linear_top1"]
        if main["all_labels"].get("knn_top1") is not None:
            results["knn_accuracy"] = main["all_labels"]["knn_top1"]
        if main.get("few_label"):
            n = main["few_label"]["per_class"]
            results[f"few_label_accuracy_{n}_per_class"] = main[
                "few_label"]["linear_top1"]
    stats = (run["results"] or {}).get("final_statistics") or {}
    if "r_effective_rank" in stats:
        results["effective_rank_R"] = stats["r_effective_rank"]
    if "mutual_information" in stats:
        results["mutual_information_R_Z"] = stats["mutual_information"]
    updates = (run["results"] or {}).get("alpha_updates") or []
    if updates:
        results["alpha_trajectory"] = " → ".join(
            f"{u['alpha']:.3f} (epoch {u['epoch']})" for u in updates)
    recipe = {
        **{k: v for k, v in config.items() if v is not None},
        "model_name": entry["name"],
        "command": entry["command"],
        "backend": keras.backend.backend(),
    }
    hub.save_pretrained(model, output, results=results, config=recipe)
    return output, results


def train(name, output, extra_args=()):
    """Train a zoo entry with its recorded recipe and write the result with
    ``save_pretrained`` into ``output`` (encoder, full model, config, card
    with measured metrics). Recipe-only entries whose command needs parts of
    the library that are not there yet raise ``ValueError`` with the command.

    Returns ``(directory, results)``.
    """
    entry = get(name)
    if entry.get("requires"):
        raise recipe_error(entry)
    words = _command_words(entry["command"])
    if words[:2] == ["adadim", "pretrain"]:
        return _train_pretrain(entry, words[2:], output, extra_args)
    spec = entry.get("train")
    if not spec:
        raise recipe_error(entry)
    if spec.get("module") != "keras_adadim.quickstart":
        raise ValueError(
            f"{name!r}: don't know how to run training module "
            f"{spec.get('module')!r}; run its command instead:\n\n    "
            f"{entry['command']}"
        )
    import tempfile

    import keras

    from keras_adadim import hub
    from keras_adadim import quickstart
    from keras_adadim.data import load_digits
    from keras_adadim.models import AdaDimModel

    args = [*spec.get("args", []), *extra_args]
    parsed = quickstart.parse_args(args)
    # The quickstart keeps its AdaDimModel to itself (it saves the encoder
    # only); note the model it trains so that the full model, with its
    # projector, is saved and I(R; Z) can be measured.
    trained = []
    original_fit = AdaDimModel.fit

    def fit(self, *a, **k):
        trained.append(self)
        return original_fit(self, *a, **k)

    with tempfile.TemporaryDirectory() as tmp:
        AdaDimModel.fit = fit
        try:
            quickstart.main([*args, "--output", tmp])
        finally:
            AdaDimModel.fit = original_fit
        with open(os.path.join(tmp, "results.json"), encoding="utf-8") as f:
            run = json.load(f)
    model = trained[-1]
    data = load_digits(seed=parsed.seed)
    results = hub.normalise_results(run)
    results.update(hub.measure(model, data["test_images"]))
    results["eval_split"] = f"digits test split, {len(data['test_images'])} images"
    results["probe_settings"] = {
        "epochs": parsed.probe_epochs, "seed": parsed.seed,
        "split_seed": parsed.seed, "few_label_seed": parsed.seed,
    }
    results["baselines"] = {
        k: v for k, v in run["probe"].items() if k != "AdaDim encoder"
    }
    recipe = {
        k: entry[k]
        for k in ("name", "dataset", "dataset_description", "image_size",
                  "backbone", "projector", "method")
        if entry.get(k)
    }
    recipe.update(
        model_name=name,
        dataset_id=entry.get("dataset_id", entry.get("dataset")),
        command=entry["command"],
        train_args=args,
        epochs=parsed.epochs,
        batch_size=parsed.batch_size,
        alpha_every=parsed.alpha_every,
        alpha_mode=model.alpha_mode,
        gamma=model.gamma,
        seed=parsed.seed,
        optimizer=f"AdamW (lr {parsed.learning_rate}, weight decay 1e-4)",
        augmentation="digits_views(): 1-px translation, contrast, brightness, "
        "Gaussian noise, 3x3 erasing (tf.data)",
        hardware="CPU",
        seeds=1,
        limitations="A CPU-sized demonstration model on 8x8 digits, not a "
        "reproduction of the paper's ResNet results.",
    )
    recipe["backend"] = keras.backend.backend()
    hub.save_pretrained(model, output, results=results, config=recipe)
    return output, results
