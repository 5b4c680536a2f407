"""The run directory of ``adadim pretrain`` as an object: its file names,
the keys of its ``results.json``, atomic writes, the lock held for the life
of a run, and its checks (settings and training data on resume, foreign
files, left-over partial files).

Every writer of the package writes through :func:`atomic_write_json`,
:func:`atomic_write_text` or :func:`atomic_save` (a temporary file in the
same directory, then one ``os.replace``), so a kill at any moment leaves
either the old file or the new one under the final name, never half of
one. A kill can leave the temporary file itself; :meth:`RunDirectory.
remove_partial_files` deletes those (and checkpoint weights no state
points at) when the run resumes, under the run's lock.

No Keras import: the hub, the zoo and the command line read these names
without loading a backend.
"""

import json
import os
import time
import warnings

CONFIG = "config.json"
HISTORY = "history.json"
HISTORY_CSV = "history.csv"
RESULTS = "results.json"
CHECKPOINTS = "checkpoints"
CHECKPOINT_STATE = "last.json"  # inside CHECKPOINTS
LOCK = "run.lock"
ENCODER_FILE = "encoder.keras"
MODEL_FILE = "model.keras"
SAMPLE_VIEWS = "sample_views.png"
TENSORBOARD = "tensorboard"
# Files that mark a directory as a run (hub.save_pretrained refuses one).
RUN_MARKERS = (HISTORY, RESULTS, CHECKPOINTS, LOCK)

# Keys of results.json's "evaluation": the pre-trained encoder and the
# baselines it is compared with (the zoo, the report and the benchmarks
# read them).
ENCODER_KEY = "AdaDim encoder"
RANDOM_INIT_KEY = "random-init encoder"
RAW_PIXELS_KEY = "raw pixels"
BASELINE_KEYS = (RANDOM_INIT_KEY, RAW_PIXELS_KEY)

# What config.json records besides the settings (not compared on resume;
# the data's fingerprint is checked once the data is loaded).
RECORDED = ("versions", "data_fingerprint")
# Settings that may change when resuming a run without changing what it
# trains: evaluation settings, where the data lives, how often it is
# checkpointed, and on how many devices (the numbers equal one device's
# up to round-off).
RESUME_FREE = frozenset({
    "data_dir", "eval", "eval_baselines", "probe_epochs", "few_labels",
    "knn_k", "checkpoint_every_steps", "devices"})

# Suffixes of the temporary files the atomic writers use.
_PARTIAL = (".tmp", ".partial.keras", ".partial.weights.h5")


# ------------------------------------------------------------ atomic writes
def _json_default(value):
    # NumPy scalars and arrays, without importing NumPy here.
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def atomic_write_text(path, text):
    """Write ``text`` to ``path`` through ``<path>.tmp`` and one rename."""
    path = os.fspath(path)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def atomic_write_json(path, data):
    """``data`` as indented JSON (NumPy values converted), atomically."""
    atomic_write_text(
        path, json.dumps(data, indent=2, default=_json_default) + "\n")


def atomic_save(save, path):
    """Call ``save(tmp_path)`` then rename to ``path``. The temporary name
    keeps the suffix Keras checks (``x.partial.keras`` for ``x.keras``,
    ``x.partial.weights.h5`` for ``x.weights.h5``)."""
    path = os.fspath(path)
    for suffix in (".weights.h5", ".keras"):
        if path.endswith(suffix):
            tmp = path[: -len(suffix)] + ".partial" + suffix
            break
    else:
        tmp = f"{path}.tmp"
    save(tmp)
    os.replace(tmp, path)


def read_json(path, what="file"):
    """The JSON in ``path``; ``ValueError`` naming the file when it is
    unreadable, truncated or not JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"Cannot read the {what} {path}: {e}") from e


# --------------------------------------------------------------- the lock
class RunDirectoryLocked(ValueError):
    """Another process is running ``pretrain`` in the same run directory."""


class RunLock:
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


# ---------------------------------------------------------- the directory
class RunDirectory:
    """The files of one run, and what may be done with them.

    Args:
        path: the directory (need not exist yet).
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self._lock = None
        self._created = False  # whether lock() made the directory

    def __repr__(self):
        return f"RunDirectory({self.path!r})"

    def file(self, name):
        """The path of ``name`` inside the run directory."""
        return os.path.join(self.path, name)

    @property
    def checkpoints(self):
        return self.file(CHECKPOINTS)

    # ---- what is there
    def has_run(self):
        """Whether a run was started here (its config.json exists)."""
        return os.path.exists(self.file(CONFIG))

    def is_finished(self):
        return (os.path.exists(self.file(ENCODER_FILE))
                and os.path.exists(self.file(RESULTS)))

    def foreign_entries(self):
        """What the directory holds when it holds no run (the lock file
        aside): a non-empty list means it belongs to someone else."""
        if not os.path.isdir(self.path) or self.has_run():
            return []
        return sorted(f for f in os.listdir(self.path) if f != LOCK)

    def refuse_foreign(self):
        """Raise when the directory exists, is not empty and holds no run:
        a run must not write among the user's own files."""
        if self.foreign_entries():
            raise ValueError(
                f"{self.path!r} exists and is not empty, but holds no run "
                f"({CONFIG} missing); pick an empty or new directory so "
                "nothing in it is overwritten."
            )

    # ---- the lock
    def lock(self):
        """Create the directory if needed and take its lock (see
        :class:`RunLock`); ``unlock(failed)`` gives it back."""
        self._created = not os.path.isdir(self.path)
        os.makedirs(self.path, exist_ok=True)
        self._lock = RunLock(self.path).acquire()
        return self

    def unlock(self, failed=False):
        """Release the lock; after a failure in a directory this run
        created, leave no trace of it (only when nothing else was
        written)."""
        if self._lock is None:
            return
        try:
            if failed and self._created and os.listdir(self.path) == [LOCK]:
                self._lock.remove()
        finally:
            self._lock.release()
            self._lock = None

    # ---- reading
    def read_config(self):
        config = read_json(self.file(CONFIG), "run configuration")
        if not isinstance(config, dict):
            raise ValueError(
                f"{self.file(CONFIG)} does not hold a run configuration "
                "(a JSON object); it is not a run made by `adadim "
                "pretrain`.")
        return config

    def read_history(self, before_epoch=None):
        """The per-epoch rows of history.json (``[]`` if there are none),
        those of epochs < ``before_epoch`` only when given."""
        if not os.path.exists(self.file(HISTORY)):
            return []
        rows = read_json(self.file(HISTORY), "training history")
        if not isinstance(rows, list) or not all(
                isinstance(r, dict) and "epoch" in r for r in rows):
            raise ValueError(
                f"{self.file(HISTORY)} is not a list of per-epoch rows; "
                "delete it to rebuild it from the next epochs, or start a "
                "new run.")
        if before_epoch is not None:
            rows = [r for r in rows if r["epoch"] < before_epoch]
        return rows

    def read(self):
        """``config``, ``history`` (list of per-epoch dicts) and ``results``
        of a finished or running run; ``ValueError`` with a clear message
        when it is not one."""
        if not os.path.isdir(self.path):
            raise ValueError(f"{self.path!r} is not a directory.")
        if not self.has_run():
            raise ValueError(
                f"{self.path!r} has no {CONFIG}: it is not a run directory "
                "made by `adadim pretrain`."
            )
        if not os.path.exists(self.file(HISTORY)):
            raise ValueError(
                f"{self.path!r} has no {HISTORY}: the run never finished an "
                "epoch (or was not made by `adadim pretrain`). Resume it "
                f"with `adadim pretrain --output {self.path}`."
            )
        history = self.read_history()
        if not history:
            raise ValueError(f"{self.file(HISTORY)} holds no epochs.")
        results = None
        if os.path.exists(self.file(RESULTS)):
            results = read_json(self.file(RESULTS), "run results")
        return {"directory": self.path, "config": self.read_config(),
                "history": history, "results": results}

    # ---- writing
    def write_config(self, config, versions, data_fingerprint):
        atomic_write_json(self.file(CONFIG), {
            **config, "versions": versions,
            "data_fingerprint": data_fingerprint})

    def write_history(self, rows):
        """history.json and history.csv (all columns any row has; NaN
        where a row lacks one)."""
        atomic_write_json(self.file(HISTORY), rows)
        columns = history_columns(rows)
        lines = [",".join(columns)]
        lines += [",".join(f"{columns[k][i]}" for k in columns)
                  for i in range(len(rows))]
        atomic_write_text(self.file(HISTORY_CSV), "\n".join(lines) + "\n")

    def write_results(self, results):
        atomic_write_json(self.file(RESULTS), results)

    def remove_partial_files(self):
        """Delete what a killed session can leave: temporary files of the
        atomic writers and checkpoint weights that no saved state points
        at. Returns the removed paths. Call it holding the lock."""
        removed = []
        state = _checkpoint_weights(self.checkpoints)
        for folder in (self.path, self.checkpoints):
            if not os.path.isdir(folder):
                continue
            for name in sorted(os.listdir(folder)):
                path = os.path.join(folder, name)
                orphan = (folder == self.checkpoints
                          and name.endswith(".weights.h5")
                          and state is not _UNKNOWN and name != state)
                if name.endswith(_PARTIAL) or orphan:
                    if os.path.isfile(path):
                        os.remove(path)
                        removed.append(path)
        return removed

    # ---- checks on resume
    def check_settings(self, config):
        """Refuse to resume with settings that change what the run trains
        (any setting outside ``RESUME_FREE``)."""
        saved = {k: v for k, v in self.read_config().items()
                 if k not in RECORDED}
        changed = sorted(
            k for k in set(saved) | set(config)
            if k not in RESUME_FREE and saved.get(k) != config.get(k))
        if changed:
            details = ", ".join(
                f"{k}: {saved.get(k)!r} -> {config.get(k)!r}"
                for k in changed)
            raise ValueError(
                f"{self.path!r} holds a run with different settings "
                f"({details}). Resuming it with these would mix two runs: "
                "pass a new `--output` directory, or the same settings to "
                "resume."
            )

    def check_data(self, found, config):
        """Refuse to resume on training data other than the run's own (its
        fingerprint in config.json; runs made before fingerprints pass)."""
        recorded = self.read_config().get("data_fingerprint")
        if not isinstance(recorded, dict) or recorded.get("sha256") is None:
            return
        if (recorded.get("kind"), recorded["sha256"]) == (found["kind"],
                                                         found["sha256"]):
            return
        raise ValueError(
            f"The training data of the run in {self.path!r} changed since "
            f"it started: {config['dataset']!r} split "
            f"{config['train_split']!r} now has {found['num_examples']} "
            f"images with fingerprint {found['sha256'][:12]} "
            f"({found['kind']}), the run was started on "
            f"{recorded.get('num_examples')} images with fingerprint "
            f"{recorded['sha256'][:12]} ({recorded.get('kind')}). Resuming "
            "would train one model on two datasets: restore the original "
            "data to resume, or pass a new `--output` directory to start a "
            "new run."
        )


_UNKNOWN = object()


def _checkpoint_weights(directory):
    """The weights file the checkpoint state points at; ``None`` when there
    is no state, ``_UNKNOWN`` when the state is unreadable (then nothing is
    deleted: the resume reports the broken file)."""
    path = os.path.join(directory, CHECKPOINT_STATE)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            name = json.load(f).get("weights")
    except (OSError, ValueError, AttributeError):
        return _UNKNOWN
    return name if isinstance(name, str) else _UNKNOWN


def history_columns(rows):
    """A list of per-epoch dicts as a dict of equal-length lists (NaN where
    an epoch lacks a key, e.g. the monitor's statistics)."""
    keys = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    return {k: [row.get(k, float("nan")) for row in rows] for k in keys}


def read_run(directory):
    """``RunDirectory(directory).read()``."""
    return RunDirectory(directory).read()


__all__ = [
    "BASELINE_KEYS", "CHECKPOINTS", "CONFIG", "ENCODER_KEY", "HISTORY",
    "RANDOM_INIT_KEY", "RAW_PIXELS_KEY", "RESULTS", "RUN_MARKERS",
    "RunDirectory", "RunDirectoryLocked", "RunLock", "atomic_save",
    "atomic_write_json", "atomic_write_text", "history_columns", "read_json",
    "read_run",
]
