"""Which code a run was made with: the git commit of the checkout the
package is imported from, recorded in every run's ``config.json``
(``versions.keras_adadim_commit``). A version number alone does not say
it: two runs of one release made from different commits of a checkout may
differ by round-off, and round-off changes a training run's numbers."""

import os
import subprocess

_HERE = os.path.dirname(os.path.abspath(__file__))


def source_commit(directory=_HERE):
    """``"<sha>"`` of the git checkout holding ``directory`` (the package by
    default), ``"<sha>+dirty"`` when tracked files under ``directory``
    differ from it, or None when ``directory`` is not tracked by git (a pip
    install, also one inside another project's repository) or git is
    missing."""
    def git(*args):
        return subprocess.run(
            ["git", "-C", directory, *args], capture_output=True, text=True,
            timeout=10, check=False)

    try:
        # Tracked here, not merely inside some repository (a virtualenv in
        # a project's git-ignored folder would report the project's HEAD).
        if git("ls-files", "--error-unmatch", ".").returncode != 0:
            return None
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return None
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ".")
    except (OSError, subprocess.SubprocessError):
        return None
    dirty = changed.returncode != 0 or changed.stdout.strip()
    return head.stdout.strip() + ("+dirty" if dirty else "")
