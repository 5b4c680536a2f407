"""Which code made a run: ``versions.keras_adadim_commit`` in config.json
(keras_adadim._source.source_commit), checked on git repositories the
tests make themselves (and on this checkout when it is one)."""

import os
import shutil
import subprocess

import pytest

from keras_adadim._source import source_commit

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None, reason="needs the git command")


def _git(d, *args):
    return subprocess.run(
        ["git", "-C", str(d), "-c", "user.name=t", "-c", "user.email=t@t",
         *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    pkg = tmp_path / "repo" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    _git(tmp_path / "repo", "init", "-q")
    _git(tmp_path / "repo", "add", "pkg/a.py")
    _git(tmp_path / "repo", "commit", "-q", "-m", "one")
    return tmp_path / "repo"


def test_clean_checkout_gives_its_head(repo):
    assert source_commit(str(repo / "pkg")) == _git(repo, "rev-parse", "HEAD")


def test_changed_tracked_file_marks_it_dirty(repo):
    head = _git(repo, "rev-parse", "HEAD")
    (repo / "pkg" / "a.py").write_text("x = 2\n")
    assert source_commit(str(repo / "pkg")) == head + "+dirty"


def test_untracked_files_and_changes_elsewhere_do_not(repo):
    head = _git(repo, "rev-parse", "HEAD")
    (repo / "pkg" / "new.py").write_text("")
    (repo / "README").write_text("outside the package")
    _git(repo, "add", "README")
    assert source_commit(str(repo / "pkg")) == head


def test_untracked_folder_inside_a_repository_is_not_attributed(repo):
    """A package installed into a git-ignored virtualenv inside someone's
    project is not that project's code."""
    site = repo / ".venv" / "site-packages" / "pkg"
    site.mkdir(parents=True)
    (site / "a.py").write_text("x = 1\n")
    (repo / ".gitignore").write_text(".venv/\n")
    assert source_commit(str(site)) is None


def test_outside_any_repository_is_none(tmp_path):
    (tmp_path / "a.py").write_text("")
    assert source_commit(str(tmp_path)) is None


def test_this_package_when_run_from_a_checkout():
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = _git(here, "rev-parse", "HEAD")
    except subprocess.CalledProcessError:
        pytest.skip("the tests do not run from a git checkout")
    got = source_commit()
    assert got in (head, head + "+dirty")
