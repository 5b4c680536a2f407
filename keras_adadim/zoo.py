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
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise ValueError(
            f"Cannot read the zoo registry {path} ({e.strerror or e}); "
            f"check the file, or ${REGISTRY_ENV} if you set it."
        ) from e
    except ValueError as e:  # empty, truncated, not JSON, not UTF-8
        raise ValueError(
            f"Zoo registry {path} is not valid JSON ({e}); see "
            f"{registry_path()} for the format."
        ) from e
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list):
        raise ValueError(
            f"Zoo registry {path} has no `models` list; see "
            f"{registry_path()} for the format."
        )
    for entry in models:
        if (not isinstance(entry, dict) or not isinstance(
                entry.get("name"), str) or entry.get("status") not in STATUSES):
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


def _train_pretrain(entry, argv, output, extra_args, overwrite=False):
    """Run an `adadim pretrain ...` recipe into ``output/run`` and publish
    the result into ``output`` with ``save_pretrained``.

    The recipe runs as the command it is (``python -m keras_adadim.cli``,
    in a child process on this process's Keras backend): the library does
    not import its command line, and the flags are parsed and checked
    exactly as when a user types them."""
    import subprocess
    import sys

    import keras

    from keras_adadim import hub

    # Refuse before hours of training, not after.
    hub.check_can_write(output, overwrite)
    run_dir = os.path.join(output, "run")
    package_parent = os.path.dirname(package_dir())
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_parent, env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "keras_adadim.cli", "pretrain", *argv,
               *extra_args, "--output", run_dir]
    child = subprocess.Popen(command, env=env)
    try:
        status = child.wait()
    except KeyboardInterrupt:
        child.wait()  # it got the same Ctrl-C: let it stop at a checkpoint
        raise
    if status != 0:
        raise ValueError(
            f"{entry['name']!r}: its `adadim pretrain` command failed (exit "
            f"status {status}; its error is printed above): "
            f"adadim pretrain {' '.join([*argv, *extra_args])} --output "
            f"{run_dir}"
        )
    return publish_run(run_dir, output, entry, overwrite=overwrite)


def publish_run(run_dir, output, entry, overwrite=False):
    """Write a finished ``adadim pretrain`` run as a pretrained directory
    (``save_pretrained``): the model, and a card with the run's settings
    and measured results (linear probe, few-label probe, kNN, H(R), I(R; Z),
    the alpha trajectory, the baselines). Returns ``(output, results)``.
    ``output`` must not hold files that save_pretrained did not write
    (``hub.check_can_write``) unless ``overwrite``."""
    import keras

    from keras_adadim import hub
    from keras_adadim import register_serializables
    from keras_adadim import run_directory as rd

    hub.check_can_write(output, overwrite)
    register_serializables()  # model.keras names our layers and LARS
    run = rd.read_run(run_dir)
    model = keras.saving.load_model(
        os.path.join(run_dir, rd.MODEL_FILE), compile=False
    )
    config = run["config"]
    run_results = run["results"] or {}
    results = {}
    evaluation = run_results.get("evaluation") or {}
    main = evaluation.get(rd.ENCODER_KEY)
    if main:
        results["linear_probe_accuracy"] = main["all_labels"]["linear_top1"]
        if main["all_labels"].get("knn_top1") is not None:
            results["knn_accuracy"] = main["all_labels"]["knn_top1"]
        if main.get("few_label"):
            results["few_labels"] = main["few_label"]["per_class"]
            results["few_label_accuracy"] = main["few_label"]["linear_top1"]
        results["eval_split"] = (
            f"{config['dataset']} {config['test_split']} split, "
            f"{main['all_labels'].get('num_test')} images")
        results["probe_settings"] = {
            "epochs": config["probe_epochs"], "seed": config["seed"],
            "few_labels": config["few_labels"]}
    baselines = {
        name: {"all_labels": r["all_labels"]["linear_top1"],
               **({f"{r['few_label']['per_class']}_per_class":
                   r["few_label"]["linear_top1"]} if r.get("few_label")
                  else {})}
        for name, r in evaluation.items() if name != rd.ENCODER_KEY
    }
    if baselines:
        results["baselines"] = baselines
    stats = run_results.get("final_statistics") or {}
    for key, name in (("r_effective_rank", "effective_rank"),
                      ("r_entropy", "renyi_entropy"),
                      ("mutual_information", "mutual_information")):
        if key in stats:
            results[name] = stats[key]
    updates = run_results.get("alpha_updates") or []
    if updates:
        results["alpha_trajectory"] = " → ".join(
            f"{u['alpha']:.3f} (epoch {u['epoch']})" for u in updates)
    recipe = {
        **{k: v for k, v in config.items() if v is not None},
        **{k: entry[k] for k in ("dataset_description", "image_size",
                                 "backbone", "projector") if entry.get(k)},
        "model_name": entry["name"],
        "command": entry["command"],
        "optimizer": f"{config['optimizer']} (lr {config['learning_rate']}, "
                     f"{config['schedule']}, weight decay "
                     f"{config['weight_decay']})",
        "augmentation": f"{_scheme(config)} (keras_adadim.data)",
        "alpha_mode": config.get("alpha"),
        "backend": (config.get("versions") or {}).get(
            "backend", keras.backend.backend()),
        "hardware": entry.get("hardware", "CPU"),
        "seeds": 1,
    }
    hub.save_pretrained(model, output, results=results, config=recipe,
                        overwrite=overwrite)
    return output, results


def _scheme(config):
    """The augmentation scheme a run used ('auto' resolved)."""
    if config.get("augmentation") != "auto":
        return config.get("augmentation")
    from keras_adadim.presets import _dataset_key

    return "digits" if _dataset_key(config["dataset"]) == "digits" else (
        "asymmetric")


def train(name, output, extra_args=(), overwrite=False):
    """Train a zoo entry with its recorded ``adadim pretrain`` command (run
    directory ``output/run``) and publish it into ``output`` with
    ``save_pretrained`` (encoder, full model, config, card with the measured
    metrics). Entries whose command is not an ``adadim pretrain`` command,
    or that need something not in this release, raise ``ValueError`` with
    the command. ``output`` holding files that save_pretrained did not
    write is refused before training unless ``overwrite``.

    Returns ``(directory, results)``.
    """
    entry = get(name)
    if entry.get("requires"):
        raise recipe_error(entry)
    words = _command_words(entry["command"])
    if words[:2] != ["adadim", "pretrain"]:
        raise ValueError(
            f"{name!r} is not trained by an `adadim pretrain` command; run "
            f"its command instead:\n\n    {entry['command']}"
        )
    return _train_pretrain(entry, words[2:], output, extra_args, overwrite)

