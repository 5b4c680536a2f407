"""Output files that the library's report writers (``adadim evaluate``,
``adadim analyze``) may replace: their own, and nothing else.

The rule. A writer may replace an existing file only when

1. the directory's manifest, ``.keras_adadim_outputs.json``, records that
   this writer wrote that file with exactly its present sha256 (so a file
   edited since, by hand or by another program, is protected too); or
2. the manifest has no entry for the file and the writer's ``legacy``
   test recognises it as its own output from before manifests existed
   (each writer documents its test); or
3. the caller passes ``overwrite=True``.

Otherwise ``check_can_write`` raises a ``ValueError`` naming every such
file and how to proceed, before anything on disk is touched. Files the
writer does not write are never looked at. ``replace_files`` moves the new
files into place (each with ``os.replace``) and records them in the
manifest; entries of other writers are kept. While it replaces them the
manifest lists each file's old and new hash, so an interrupted write is
still recognised as the writer's own.

(``hub.save_pretrained`` keeps its own manifest, with its own rules, in
``.keras_adadim_manifest.json``.)
"""

import contextlib
import hashlib
import json
import os
import shutil
import tempfile

MANIFEST_FILE = ".keras_adadim_outputs.json"
FORMAT = 1


def sha256_of(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(directory):
    """``{file: {"writer": str, "sha256": [str, ...]}}`` recorded in
    ``directory``; ``{}`` without a manifest, ``None`` when a file of the
    manifest's name is there but is not one (it is then foreign)."""
    path = os.path.join(directory, MANIFEST_FILE)
    if not os.path.lexists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        files = data["files"] if data.get("format") == FORMAT else None
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return None
    if not isinstance(files, dict):
        return None
    return {
        name: {"writer": e["writer"], "sha256": list(e["sha256"])}
        for name, e in files.items()
        if isinstance(e, dict) and isinstance(e.get("writer"), str)
        and isinstance(e.get("sha256"), list)
    }


def foreign_files(directory, names, writer, legacy=None):
    """The files among ``names`` (relative to ``directory``) that exist
    there and that ``writer`` may not replace (see the module's rule);
    the manifest's own name when it is not a manifest."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        return []
    manifest = read_manifest(directory)
    foreign = [MANIFEST_FILE] if manifest is None else []
    manifest = manifest or {}
    for name in dict.fromkeys(names):
        path = os.path.join(directory, name)
        if not os.path.lexists(path):
            continue
        if os.path.isdir(path) or os.path.islink(path):
            foreign.append(name)
            continue
        entry = manifest.get(name)
        if entry is not None:
            ours = (entry["writer"] == writer
                    and sha256_of(path) in entry["sha256"])
        else:
            ours = legacy is not None and bool(legacy(directory, name))
        if not ours:
            foreign.append(name)
    return foreign


def check_can_write(directory, names, writer, overwrite=False, legacy=None,
                    flag="--overwrite"):
    """Raise ``ValueError``, changing nothing, unless ``writer`` may write
    ``names`` into ``directory`` (see the module's rule);
    ``overwrite=True`` skips the check."""
    directory = os.fspath(directory)
    if os.path.lexists(directory) and not os.path.isdir(directory):
        raise ValueError(
            f"{writer}: the output {directory} is a file, not a directory. "
            "Give a directory (new, or one it wrote before).")
    if overwrite:
        return
    foreign = foreign_files(directory, names, writer, legacy)
    if foreign:
        paths = ", ".join(os.path.join(directory, f) for f in foreign)
        one = len(foreign) == 1
        raise ValueError(
            f"{writer} refuses to replace {paths}: "
            f"{'it was' if one else 'they were'} not written by {writer} "
            f"(or changed since it wrote {'it' if one else 'them'}; "
            f"{MANIFEST_FILE} in that directory records what {writer} "
            "wrote). Nothing was written. Write to another directory, move "
            f"{'that file' if one else 'those files'} away, or pass "
            f"overwrite=True ({flag} on the command line) to replace "
            f"{'it' if one else 'them'}."
        )


def _write_manifest(directory, files):
    path = os.path.join(directory, MANIFEST_FILE)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"format": FORMAT,
                   "about": "Files written by keras_adadim's report "
                            "writers (adadim evaluate / analyze), with "
                            "their sha256: they replace only these.",
                   "files": files}, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def staging(directory):
    """A new hidden folder inside ``directory`` (created if needed) to
    write the new files into, so that ``replace_files`` moves them into
    place with ``os.replace``. Removed on exit, and so is ``directory`` if
    it was created here and is still empty (a write that failed)."""
    directory = os.fspath(directory)
    created = not os.path.isdir(directory)
    os.makedirs(directory, exist_ok=True)
    stage = tempfile.mkdtemp(dir=directory, prefix=".partial-")
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if created and os.path.isdir(directory) and not os.listdir(
                directory):
            os.rmdir(directory)


def replace_files(directory, staging, writer):
    """Move every file of ``staging`` into ``directory``, replacing what is
    there, record them as ``writer``'s in the manifest, and remove
    ``staging``. Returns the paths written."""
    directory = os.fspath(directory)
    try:
        names = sorted(f for f in os.listdir(staging)
                       if os.path.isfile(os.path.join(staging, f)))
        new = {f: sha256_of(os.path.join(staging, f)) for f in names}
        manifest = read_manifest(directory) or {}
        # Drop entries of files that are gone (or were replaced by others).
        manifest = {
            name: e for name, e in manifest.items()
            if os.path.isfile(os.path.join(directory, name))
        }
        during = dict(manifest)
        for f, h in new.items():
            hashes = [h]
            old = os.path.join(directory, f)
            if os.path.isfile(old):
                hashes.append(sha256_of(old))
            during[f] = {"writer": writer, "sha256": hashes}
        _write_manifest(directory, during)
        written = []
        for f in names:
            target = os.path.join(directory, f)
            os.replace(os.path.join(staging, f), target)
            written.append(target)
        manifest.update(
            {f: {"writer": writer, "sha256": [h]} for f, h in new.items()})
        _write_manifest(directory, manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written
