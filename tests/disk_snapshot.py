"""``snapshot(root)``: what is on disk under ``root``, to assert that a
refused call changed nothing (shared by the bad-input tests)."""

import hashlib
import os


def snapshot(root):
    """``{relative path: (kind, sha256, mtime_ns)}`` of every file and
    folder under ``root`` (folders: kind "dir", no hash)."""
    out = {}
    for base, dirs, files in os.walk(root):
        for d in dirs:
            path = os.path.join(base, d)
            out[os.path.relpath(path, root)] = ("dir", None, None)
        for f in files:
            path = os.path.join(base, f)
            with open(path, "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()
            out[os.path.relpath(path, root)] = (
                "file", digest, os.stat(path).st_mtime_ns)
    return out
