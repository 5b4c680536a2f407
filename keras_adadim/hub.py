"""Pretrained encoders: ``from_pretrained``, ``save_pretrained``, ``push_to_hub``.

A pretrained model is a directory (locally, or a Hugging Face Hub repo)::

    encoder.keras   the pre-trained encoder (images -> R)
    model.keras     optional: the full AdaDimModel (encoder + projector + state)
    config.json     library version, backend, recipe, results, sha256 of files
    README.md       model card (YAML metadata + recipe + measured metrics)

``from_pretrained`` accepts a zoo name (``keras_adadim.zoo``), an
``hf://org/repo[@revision]`` URI, or a local directory or ``.keras`` file.
Downloads go through ``huggingface_hub.hf_hub_download`` (its cache, resumed
downloads and ``HF_HUB_OFFLINE`` apply; ``HF_ENDPOINT`` is read at call time).
Files are checked against the sha256 pinned in the registry (or recorded in
the repo's ``config.json``) before Keras reads them, and Keras loads them with
``safe_mode`` on: no arbitrary code (``Lambda`` layers) unless asked.
"""

import datetime
import json
import os
import re
import shutil
import tempfile
import zipfile

import keras

from keras_adadim import zoo
from keras_adadim._written import sha256_of  # noqa: F401 (hub.sha256_of)

ENCODER_FILE = "encoder.keras"
MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
CARD_TEMPLATE = "model_card_template.md"
HF_PREFIX = "hf://"
CONFIG_FORMAT = 1
# What save_pretrained wrote (file -> sha256s), so that it recognises its
# own files and never replaces anyone else's. Not uploaded to the Hub.
MANIFEST_FILE = ".keras_adadim_manifest.json"
MANIFEST_WRITER = "keras_adadim.save_pretrained"
# The files save_pretrained writes (or removes: a stale model.keras).
WRITTEN_FILES = (ENCODER_FILE, MODEL_FILE, CONFIG_FILE, CARD_FILE)


# ------------------------------------------------------------------ helpers
def _version():
    from keras_adadim import __version__

    return __version__


def _read_json(path):
    if not path or not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}).") from e
    files = data.get("files", {}) if isinstance(data, dict) else None
    if not isinstance(files, dict) or not all(
            isinstance(v, dict) for v in files.values()):
        raise ValueError(
            f"{path} is not a keras-adadim config.json (a JSON object whose "
            "`files` maps file names to {\"sha256\": ...}); write the "
            "directory again with `keras_adadim.save_pretrained`."
        )
    return data


def _recorded_sha(config, filename):
    files = (config or {}).get("files") or {}
    return (files.get(filename) or {}).get("sha256")


def verify_file(path, expected_sha256, what=None):
    """Refuse ``path`` unless its sha256 is ``expected_sha256`` (if given)
    and it is an intact zip archive (``.keras``)."""
    what = what or path
    if not os.path.isfile(path):
        raise ValueError(f"{what}: no such file ({path}).")
    if expected_sha256:
        actual = sha256_of(path)
        if actual != expected_sha256.lower():
            raise ValueError(
                f"{what}: sha256 mismatch, refusing to load it. Expected "
                f"{expected_sha256}, got {actual} ({os.path.getsize(path)} "
                "bytes). The file is truncated or corrupted, or is not the "
                f"published one. Delete {path} and download it again."
            )
    if path.endswith(".keras"):
        bad = None
        try:
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            bad = str(e)
        if bad is not None:
            raise ValueError(
                f"{what}: the file is truncated or corrupted (not a valid "
                f".keras archive: {bad}). Delete {path} and download or save "
                "it again."
            )


def _load_keras(path, what, safe_mode, full_model):
    # The package imports lazily: register its layers, losses and
    # optimizers (LARS, ...) before Keras reads a file that names them.
    from keras_adadim import register_serializables
    from keras_adadim.models import AdaDimModel

    register_serializables()

    try:
        obj = keras.saving.load_model(
            path, safe_mode=safe_mode, compile=bool(full_model)
        )
    except Exception as e:  # noqa: BLE001 - re-raised with context
        text = str(e)
        if safe_mode and ("safe_mode" in text or "Lambda" in text):
            raise ValueError(
                f"{what} contains a `Lambda` layer (or other arbitrary Python "
                "code), which Keras refuses to deserialise under safe mode. "
                "If you trust its source, opt in with "
                "`from_pretrained(..., safe_mode=False)`."
            ) from e
        raise ValueError(
            f"{what} could not be loaded: it is truncated or corrupted, or "
            f"was saved by an incompatible version ({type(e).__name__}: "
            f"{text[:300]})."
        ) from e
    if full_model and not isinstance(obj, AdaDimModel):
        raise ValueError(
            f"{what} holds a {type(obj).__name__}, not a full AdaDimModel; "
            "load it without `full_model=True`."
        )
    if not full_model and isinstance(obj, AdaDimModel):
        return obj.encoder
    return obj


# ----------------------------------------------------------------- download
def _hub_download(repo_id, filename, revision, cache_dir, token, optional=False):
    """``hf_hub_download`` with readable errors; ``None`` for a missing
    optional file."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub import errors

    kwargs = dict(
        repo_id=repo_id,
        filename=filename,
        revision=revision,
        cache_dir=cache_dir,
        token=token,
        library_name="keras-adadim",
        library_version=_version(),
    )
    endpoint = os.environ.get("HF_ENDPOINT")
    if endpoint:  # read at call time, not only when huggingface_hub is imported
        kwargs["endpoint"] = endpoint.rstrip("/")
    where = f"hf://{repo_id}" + (f"@{revision}" if revision else "")
    try:
        return hf_hub_download(**kwargs)
    except errors.LocalEntryNotFoundError as e:
        if optional:
            return None
        raise OSError(
            f"{where}/{filename} is not in the local Hugging Face cache and "
            "the Hub cannot be reached (offline, HF_HUB_OFFLINE=1, or no "
            "network). Download it once with network access "
            "(`adadim zoo download ...`), or pass a local directory."
        ) from e
    except errors.EntryNotFoundError as e:
        if optional:
            return None
        hint = (
            " The repo publishes only the encoder; load it without "
            "`full_model=True`."
            if filename == MODEL_FILE
            else ""
        )
        raise ValueError(f"{where} has no file {filename!r}.{hint}") from e
    except errors.RevisionNotFoundError as e:
        raise ValueError(f"{where}: revision {revision!r} not found.") from e
    except errors.RepositoryNotFoundError as e:
        raise ValueError(
            f"{where}: repository not found (or private: pass `token=`)."
        ) from e


def _parse_hf_uri(uri):
    rest = uri[len(HF_PREFIX):].strip("/")
    revision = None
    if "@" in rest:
        rest, revision = rest.split("@", 1)
    if rest.count("/") != 1 or not all(rest.split("/")):
        raise ValueError(
            f"{uri!r} is not a Hub model URI; expected `hf://org/repo` or "
            "`hf://org/repo@revision`."
        )
    return rest, revision or None


def resolve(name_or_path, revision=None, full_model=False, cache_dir=None,
            token=None):
    """Locate the model file without loading it.

    Returns ``(path, expected_sha256 or None, description)``; raises
    ``ValueError`` for unknown names, recipe-only names and missing files.
    """
    filename = MODEL_FILE if full_model else ENCODER_FILE
    name = os.fspath(name_or_path)
    if name.startswith(HF_PREFIX):
        repo_id, uri_rev = _parse_hf_uri(name)
        rev = revision or uri_rev
        config = _read_json(
            _hub_download(repo_id, CONFIG_FILE, rev, cache_dir, token, True)
        )
        path = _hub_download(repo_id, filename, rev, cache_dir, token)
        return path, _recorded_sha(config, filename), f"hf://{repo_id}/{filename}"

    if os.path.exists(name):
        if os.path.isdir(name):
            path = os.path.join(name, filename)
            if not os.path.isfile(path):
                if full_model and os.path.isfile(
                    os.path.join(name, ENCODER_FILE)
                ):
                    raise ValueError(
                        f"{name} holds only the encoder ({ENCODER_FILE}), "
                        f"no full model ({MODEL_FILE}); load it without "
                        "`full_model=True`."
                    )
                raise ValueError(
                    f"{name} has no {filename}: not a directory written by "
                    "`keras_adadim.save_pretrained`."
                )
            config = _read_json(os.path.join(name, CONFIG_FILE))
            return path, _recorded_sha(config, filename), path
        if not name.endswith(".keras"):
            raise ValueError(
                f"{name} is not a .keras file or a pretrained directory."
            )
        config = _read_json(os.path.join(os.path.dirname(name), CONFIG_FILE))
        return name, _recorded_sha(config, os.path.basename(name)), name

    if os.sep in name or name.endswith(".keras"):
        raise ValueError(f"{name}: no such file or directory.")

    entry = zoo.get(name)  # ValueError with close names if unknown
    if entry["status"] != "published":
        raise zoo.recipe_error(entry)
    pinned = (entry.get("sha256") or {}).get(filename)
    if full_model and not pinned:
        raise ValueError(
            f"{name!r} publishes only the encoder ({ENCODER_FILE}); load it "
            "without `full_model=True`."
        )
    pinned_rev = entry.get("revision")
    shipped = zoo.shipped_dir(entry)
    if shipped and revision in (None, pinned_rev):
        path = os.path.join(shipped, filename)
        return path, pinned, f"{name} ({path})"
    if not entry.get("repo_id"):
        raise ValueError(f"{name!r} has no Hub repo and no shipped weights.")
    rev = revision or pinned_rev
    path = _hub_download(entry["repo_id"], filename, rev, cache_dir, token)
    if rev != pinned_rev:
        # The registry pins the hash of its own revision only; fall back on
        # the hash the repo records for itself.
        config = _read_json(
            _hub_download(entry["repo_id"], CONFIG_FILE, rev, cache_dir,
                          token, True)
        )
        pinned = _recorded_sha(config, filename)
    return path, pinned, f"{name} (hf://{entry['repo_id']}@{rev})"


def from_pretrained(name_or_path, revision=None, full_model=False,
                    safe_mode=True, cache_dir=None, token=None):
    """Load a pre-trained encoder (or the full ``AdaDimModel``).

    Args:
        name_or_path: a zoo name (``adadim zoo list``), ``hf://org/repo``
            (optionally ``@revision``), or a local directory written by
            ``save_pretrained`` or a ``.keras`` file.
        revision: Hub branch, tag or commit (the registry's pin by default).
        full_model: return the ``AdaDimModel`` (encoder + projector + alpha
            state) instead of the encoder; the repo must hold ``model.keras``.
        safe_mode: Keras safe mode. A model with a ``Lambda`` layer (arbitrary
            Python code) is refused unless ``safe_mode=False``.
        cache_dir: Hugging Face cache directory (``HF_HOME``/hub by default).
        token: Hub token for private repos.

    Raises:
        ValueError: unknown name (with the closest names), a recipe-only name
            (with the command that trains it), a truncated/corrupted file, a
            sha256 that differs from the registry's, a refused ``Lambda``.
        OSError: the file must be downloaded but the Hub cannot be reached.
    """
    path, expected, what = resolve(
        name_or_path, revision, full_model, cache_dir, token
    )
    verify_file(path, expected, what)
    return _load_keras(path, what, safe_mode, full_model)


def download(name_or_path, directory=None, revision=None, full_model=False,
             cache_dir=None, token=None, overwrite=False):
    """Fetch and verify a model file; with ``directory``, copy it there.

    The copy goes to a temporary file in ``directory`` that is verified
    (sha256, archive integrity) before it replaces ``directory/<file>``, so a
    bad download never overwrites a good file. A different file already
    there is replaced only with ``overwrite=True`` (else ``ValueError``,
    nothing changed). Returns the file's path.
    """
    path, expected, what = resolve(
        name_or_path, revision, full_model, cache_dir, token
    )
    if directory is None:
        verify_file(path, expected, what)
        return path
    os.makedirs(directory, exist_ok=True)
    target = os.path.join(directory, os.path.basename(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".partial-",
                               suffix=".keras")
    os.close(fd)
    try:
        shutil.copyfile(path, tmp)
        verify_file(tmp, expected, what)
        if (not overwrite and os.path.lexists(target)
                and (not os.path.isfile(target)
                     or sha256_of(target) != sha256_of(tmp))):
            raise ValueError(
                f"Refusing to replace {target}: it holds a different file. "
                "Download into another directory, move it away, or pass "
                "overwrite=True (`--overwrite` on the command line)."
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


# -------------------------------------------------------------- measurement
def measure(model, images, batch_size=256):
    """H(R) (effective rank of the encoder's features) and, when ``model``
    is an ``AdaDimModel``, I(R; Z) (Renyi order 2, matrix-based) on
    ``images`` (the test split), with ``keras_adadim.metrics``."""
    import numpy as np

    from keras_adadim import metrics
    from keras_adadim.evaluation import extract_features
    from keras_adadim.models import AdaDimModel

    encoder = model.encoder if isinstance(model, AdaDimModel) else model
    r = extract_features(encoder, images, batch_size)
    out = {"effective_rank": float(metrics.effective_rank(r))}
    if isinstance(model, AdaDimModel):
        z = model.projector.predict(r, batch_size=batch_size, verbose=0)
        z = np.asarray(z, "float32").reshape(len(r), -1)
        out["mutual_information"] = float(
            metrics.matrix_mutual_information(r, z)
        )
    return out


# ------------------------------------------------------------------- cards
def _fmt(value, digits=4):
    if value is None:
        return "not measured"
    if isinstance(value, float):
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else str(value)
    return str(value)


def _alphas(history):
    history = history or {}
    # Keras logs the AdaDimModel tracker as "alpha_value" or "alpha".
    return history.get("alpha_value") or history.get("alpha")


def _alpha_trajectory(history, every):
    alphas = _alphas(history)
    if not alphas:
        return None
    every = max(1, int(every or 1))
    points = [(e, a) for e, a in enumerate(alphas) if e % every == 0]
    return " → ".join(f"{a:.3f} (epoch {e})" for e, a in points)


def _method_description(vals):
    """The card's method line, from the method registry: its reference, and
    alpha's settings for the AdaDim family or the defaults' source else."""
    from keras_adadim import presets

    entry = presets.METHODS.get(vals["method"])
    if entry is None:
        return str(vals["method"])
    text = f"`{vals['method']}`: {entry['reference']}"
    if "alpha" in entry["uses"]:
        return (f"{text} (α {vals['alpha_mode']}, e_α = {vals['alpha_every']}"
                f", γ = {vals['gamma']})")
    return f"{text}; {entry['defaults']} ({entry['source']})"


def card_values(config, results):
    """The values that fill ``MODEL_CARD.md``'s placeholders."""
    recipe = dict(config.get("recipe") or {})
    res = dict(results or {})
    vals = {
        "model_name": config.get("model_name") or "adadim-encoder",
        "library_version": config.get("library_version"),
        "backend": config.get("backend"),
        "dataset": recipe.get("dataset", "unknown"),
        "dataset_id": recipe.get("dataset_id", recipe.get("dataset", "unknown")),
        "dataset_description": recipe.get(
            "dataset_description", "Not recorded."
        ),
        "image_size": recipe.get("image_size", "unknown"),
        "backbone": recipe.get("backbone", config.get("encoder", {}).get("name")),
        "projector": recipe.get("projector", "not recorded"),
        "method": recipe.get("method", "adadim"),
        "alpha_mode": recipe.get("alpha_mode", "adaptive"),
        "alpha_every": recipe.get("alpha_every", "n/a"),
        "gamma": recipe.get("gamma", "1e-4"),
        "epochs": recipe.get("epochs", "n/a"),
        "batch_size": recipe.get("batch_size", "n/a"),
        "optimizer": recipe.get("optimizer", "not recorded"),
        "augmentation": recipe.get("augmentation", "not recorded"),
        "hardware": recipe.get("hardware", "not recorded"),
        "command": recipe.get("command", "not recorded"),
        "seeds": recipe.get("seeds", 1),
        "limitations": recipe.get("limitations", "No further known limitations."),
        "eval_split": res.get("eval_split", "test split"),
        "few_labels": res.get("few_labels", 10),
        "linear_probe_accuracy": _fmt(res.get("linear_probe_accuracy")),
        "few_label_accuracy": _fmt(res.get("few_label_accuracy")),
        "effective_rank": _fmt(res.get("effective_rank")),
        "mutual_information": _fmt(res.get("mutual_information")),
        "alpha_trajectory": res.get("alpha_trajectory") or "not recorded",
    }
    vals["method_description"] = _method_description(vals)
    acc = res.get("linear_probe_accuracy")
    vals["model_index"] = (
        ""
        if acc is None
        else (
            "model-index:\n"
            f"  - name: {vals['model_name']}\n"
            "    results:\n"
            "      - task:\n"
            "          type: image-classification\n"
            "          name: Linear probe on frozen features\n"
            "        dataset:\n"
            f"          name: {vals['dataset']}\n"
            f"          type: {vals['dataset_id']}\n"
            f"          split: {vals['eval_split']}\n"
            "        metrics:\n"
            "          - type: accuracy\n"
            f"            value: {float(acc):.4f}\n"
            "            name: linear-probe top-1\n"
        )
    )
    return {k: ("n/a" if v is None else str(v)) for k, v in vals.items()}


def card_template_path():
    return os.path.join(zoo.package_dir(), CARD_TEMPLATE)


def render_card(config, results, template=None):
    """``MODEL_CARD.md`` with every ``{{placeholder}}`` filled."""
    if template is None:
        with open(card_template_path(), encoding="utf-8") as f:
            template = f.read()
    values = card_values(config, results)
    missing = sorted(set(re.findall(r"{{(\w+)}}", template)) - set(values))
    if missing:
        raise ValueError(f"Model card template has unknown placeholders {missing}.")
    template = re.sub(r"<!--.*?-->\n*", "", template, flags=re.S)
    text = re.sub(r"{{(\w+)}}", lambda m: values[m.group(1)], template)
    return re.sub(r"\n{3,}", "\n\n", text)


def normalise_results(results):
    """Flat metrics, plus a Keras history (``history``: per-epoch lists,
    ``args.alpha_every``) summarised as the alpha trajectory. (A run
    directory's results are flattened by ``zoo.publish_run``.)"""
    if not results:
        return {}
    res = dict(results)
    out = {k: v for k, v in res.items() if k not in ("history", "args")}
    history = res.get("history")
    if history and "alpha_trajectory" not in out:
        every = (res.get("args") or {}).get("alpha_every", 1)
        out["alpha_trajectory"] = _alpha_trajectory(history, every)
        if _alphas(history):
            out["alpha_values"] = [float(a) for a in _alphas(history)]
    return out


# --------------------------------------------------------------------- save
def _read_manifest(directory):
    """``{file: [sha256, ...]}`` that save_pretrained recorded in
    ``directory``; ``None`` when there is no manifest, ``False`` when there
    is a file of that name that is not one."""
    path = os.path.join(directory, MANIFEST_FILE)
    if not os.path.lexists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        files = data["files"] if data.get("writer") == MANIFEST_WRITER \
            else None
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        files = None
    if not isinstance(files, dict):
        return False
    return {k: list(v) for k, v in files.items() if isinstance(v, list)}


def _write_manifest(directory, files):
    path = os.path.join(directory, MANIFEST_FILE)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"writer": MANIFEST_WRITER, "format": 1, "files": files},
                  f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def _run_directory_files(directory):
    """The files that mark ``directory`` as an ``adadim pretrain`` run."""
    from keras_adadim.run_directory import RUN_MARKERS

    return [f for f in RUN_MARKERS
            if os.path.lexists(os.path.join(directory, f))]


def check_can_write(directory, overwrite=False):
    """Raise ``ValueError``, changing nothing, unless ``save_pretrained``
    may write into ``directory``: it must be new or empty, or hold only
    files that ``save_pretrained`` itself wrote there, unchanged since (its
    manifest, ``.keras_adadim_manifest.json``, records their sha256), and
    it must not be a run directory. Other files (a ``run/`` subdirectory,
    notes) are left alone. ``overwrite=True`` skips the check."""
    directory = os.fspath(directory)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ValueError(f"{directory} is a file, not a directory.")
    if overwrite or not os.path.isdir(directory):
        return
    run_files = _run_directory_files(directory)
    if run_files:
        raise ValueError(
            f"Refusing to save into {directory}: it is an `adadim pretrain` "
            f"run directory (it holds {', '.join(run_files)}); saving there "
            "would replace the run's config.json and encoder, and the run "
            "could no longer be resumed or evaluated. Save into another "
            f"directory (e.g. {os.path.join(directory, 'pretrained')}), or "
            "pass overwrite=True to replace its files anyway."
        )
    manifest = _read_manifest(directory)
    foreign = [MANIFEST_FILE] if manifest is False else []
    for name in WRITTEN_FILES:
        path = os.path.join(directory, name)
        if not os.path.lexists(path):
            continue
        if (not manifest or os.path.isdir(path)
                or sha256_of(path) not in manifest.get(name, ())):
            foreign.append(name)
    if foreign:
        raise ValueError(
            f"Refusing to save into {directory}: it holds "
            f"{', '.join(foreign)}, which save_pretrained did not write "
            "there (or which changed since it did); saving would replace "
            f"{'it' if len(foreign) == 1 else 'them'}. Save into a new or "
            "empty directory, move those files away, or pass "
            "overwrite=True (`--overwrite` on the command line)."
        )


def save_pretrained(model, directory, results=None, config=None,
                    overwrite=False):
    """Write ``model`` as a pretrained directory that ``from_pretrained`` reads.

    Args:
        model: an ``AdaDimModel`` (writes ``encoder.keras`` and the full
            ``model.keras``) or an encoder ``keras.Model`` (``encoder.keras``).
        directory: created if needed; existing files are replaced only once
            every new file has been written (temp dir, then move).
        results: measured results: flat keys ``linear_probe_accuracy``,
            ``few_label_accuracy``, ``effective_rank``, ``mutual_information``,
            ``alpha_trajectory``, ... (see ``measure``), optionally with a
            Keras ``history`` dict (alpha trajectory derived from it).
        config: the recipe (``model_name``, ``dataset``, ``backbone``,
            ``command``, ``epochs``, ... as in the zoo registry); goes into
            ``config.json`` under ``recipe`` and into the card.
        overwrite: replace files that save_pretrained did not write (a
            user's README.md or config.json), or write into a run
            directory. Without it such a directory is refused with a
            ``ValueError`` and nothing on disk changes (``check_can_write``);
            files it wrote itself (recorded in ``.keras_adadim_manifest.json``
            with their sha256) are replaced freely.

    Returns:
        The directory.
    """
    from keras_adadim.models import AdaDimModel

    if isinstance(model, AdaDimModel):
        encoder, full = model.encoder, model
    elif isinstance(model, keras.Model):
        encoder, full = model, None
    else:
        raise ValueError(
            "save_pretrained takes an AdaDimModel or an encoder keras.Model; "
            f"got {type(model).__name__}."
        )
    if not isinstance(encoder, keras.Model):
        raise ValueError(
            "The encoder must be a keras.Model (functional, Sequential or "
            f"subclassed) to be saved on its own; got {type(encoder).__name__}."
        )
    recipe = dict(config or {})
    model_name = recipe.pop("model_name", None) or recipe.get("name") or os.path.basename(
        os.path.normpath(directory)
    )
    res = normalise_results(results)
    check_can_write(directory, overwrite)
    created = not os.path.isdir(directory)
    os.makedirs(directory, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=directory, prefix=".partial-")
    try:
        written = [ENCODER_FILE]
        encoder.save(os.path.join(tmp, ENCODER_FILE))
        if full is not None:
            full.save(os.path.join(tmp, MODEL_FILE))
            written.append(MODEL_FILE)
        files = {
            f: {
                "sha256": sha256_of(os.path.join(tmp, f)),
                "bytes": os.path.getsize(os.path.join(tmp, f)),
            }
            for f in written
        }
        out_shape = encoder.outputs[0].shape if getattr(encoder, "outputs", None) else None
        in_shape = encoder.inputs[0].shape if getattr(encoder, "inputs", None) else None
        cfg = {
            "format": CONFIG_FORMAT,
            "library": "keras-adadim",
            "library_version": _version(),
            "keras_version": keras.__version__,
            "backend": keras.backend.backend(),
            "model_name": model_name,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"
            ),
            "files": files,
            "encoder": {
                "name": encoder.name,
                "input_shape": None if in_shape is None else list(in_shape),
                "output_shape": None if out_shape is None else list(out_shape),
                "params": int(encoder.count_params()),
            },
            "recipe": recipe,
            "results": res,
        }
        with open(os.path.join(tmp, CONFIG_FILE), "w", encoding="utf-8") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
        with open(os.path.join(tmp, CARD_FILE), "w", encoding="utf-8") as f:
            f.write(render_card(cfg, res))
        new = [*written, CONFIG_FILE, CARD_FILE]
        hashes = {f: sha256_of(os.path.join(tmp, f)) for f in new}
        # The manifest lists the old and the new hash of each file while the
        # files are replaced, so an interrupted save is still recognised as
        # ours; then only the new ones.
        during = {f: [hashes[f]] for f in new}
        for f in WRITTEN_FILES:
            old = os.path.join(directory, f)
            if os.path.isfile(old):
                during.setdefault(f, []).append(sha256_of(old))
        _write_manifest(directory, during)
        if full is None and os.path.exists(os.path.join(directory, MODEL_FILE)):
            os.remove(os.path.join(directory, MODEL_FILE))  # stale full model
        for f in new:
            os.replace(os.path.join(tmp, f), os.path.join(directory, f))
        _write_manifest(directory, {f: [h] for f, h in hashes.items()})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if created and not os.listdir(directory):  # failed before writing
            os.rmdir(directory)
    return directory


# --------------------------------------------------------------------- push
def push_to_hub(model_or_directory, repo_id, token=None, private=False,
                commit_message="Upload AdaDim encoder (keras-adadim)",
                results=None, config=None, revision=None):
    """Upload a pretrained directory (or a model, saved first with
    ``save_pretrained``) to the Hugging Face Hub with ``create_repo`` +
    ``upload_folder``. Returns the commit info."""
    from huggingface_hub import HfApi

    tmp = None
    if isinstance(model_or_directory, (str, os.PathLike)):
        directory = os.fspath(model_or_directory)
        if not os.path.isfile(os.path.join(directory, ENCODER_FILE)):
            raise ValueError(
                f"{directory} has no {ENCODER_FILE}; write it with "
                "`keras_adadim.save_pretrained(model, directory)` first."
            )
        for f in (CONFIG_FILE, CARD_FILE):
            if not os.path.isfile(os.path.join(directory, f)):
                raise ValueError(
                    f"{directory} has no {f} (config and model card); write "
                    "it with `keras_adadim.save_pretrained` first."
                )
        config_json = _read_json(os.path.join(directory, CONFIG_FILE))
        for fname, meta in (config_json.get("files") or {}).items():
            verify_file(os.path.join(directory, fname), meta.get("sha256"))
    else:
        tmp = tempfile.mkdtemp(prefix="adadim-push-")
    try:
        if tmp:
            recipe = dict(config or {})
            if not (recipe.get("model_name") or recipe.get("name")):
                # Named after the repo, not after the temporary directory.
                recipe["model_name"] = repo_id.rsplit("/", 1)[-1]
            directory = save_pretrained(model_or_directory, tmp, results, recipe)
        endpoint = os.environ.get("HF_ENDPOINT")
        api = HfApi(endpoint=endpoint.rstrip("/") if endpoint else None,
                    token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision and not revision.startswith("refs/pr/"):
            # upload_folder does not create a missing branch (the Hub answers
            # "Invalid rev id").
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=directory,
            commit_message=commit_message,
            revision=revision,
            allow_patterns=[ENCODER_FILE, MODEL_FILE, CONFIG_FILE, CARD_FILE],
            # An encoder-only push must not leave an earlier push's full model
            # behind (as save_pretrained does locally); dropped when
            # model.keras is uploaded.
            delete_patterns=[MODEL_FILE],
        )
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
