"""save_pretrained (and hub.download, zoo publishing) never replace a file
they did not write: a directory with a user's README.md / config.json, or a
run directory, is refused with an error naming the directory and the fix,
and every file stays byte-identical. Their own files (recorded in the
manifest with their sha256) are replaced freely."""

import hashlib
import json
import os

import pytest

from keras_adadim import hub
from keras_adadim.models.small_cnn import small_cnn_encoder

FOREIGN = {
    "README.md": b"# My notes\n\nDo not lose these.\n",
    "config.json": b'{"learning_rate": 0.1, "mine": true}\n',
    "encoder.keras": b"not a keras file, but mine",
    "model.keras": b"also mine",
}


@pytest.fixture(scope="module")
def encoder():
    return small_cnn_encoder((8, 8, 1), width=4)


def _snapshot(directory):
    """relative path -> sha256 of every file under ``directory``."""
    out = {}
    for root, _, files in os.walk(directory):
        for f in files:
            path = os.path.join(root, f)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, directory)] = hashlib.sha256(
                    fh.read()).hexdigest()
    return out


def _refused(encoder, directory, match, **kwargs):
    before = _snapshot(directory)
    with pytest.raises(ValueError, match=match) as e:
        hub.save_pretrained(encoder, directory, **kwargs)
    text = str(e.value)
    assert str(directory) in text and "overwrite=True" in text
    assert _snapshot(directory) == before  # byte-identical, nothing added
    return text


@pytest.mark.parametrize("name", sorted(FOREIGN))
def test_foreign_file_refused_and_untouched(encoder, tmp_path, name):
    d = tmp_path / "dir"
    d.mkdir()
    (d / name).write_bytes(FOREIGN[name])
    (d / "notes.txt").write_text("also mine")
    text = _refused(encoder, d, "did not write")
    assert name in text


def test_all_foreign_files_named(encoder, tmp_path):
    d = tmp_path / "dir"
    d.mkdir()
    for name, data in FOREIGN.items():
        (d / name).write_bytes(data)
    text = _refused(encoder, d, "Refusing to save")
    assert all(name in text for name in FOREIGN)


def test_overwrite_true_replaces_foreign_files(encoder, tmp_path):
    d = tmp_path / "dir"
    d.mkdir()
    (d / "README.md").write_bytes(FOREIGN["README.md"])
    (d / "notes.txt").write_text("kept")
    hub.save_pretrained(encoder, d, overwrite=True)
    assert (d / "README.md").read_bytes() != FOREIGN["README.md"]
    assert (d / "notes.txt").read_text() == "kept"  # never touched
    hub.save_pretrained(encoder, d)  # its own files now


@pytest.fixture
def run_dir(tmp_path):
    """A run directory as `adadim pretrain` leaves it (files only; their
    contents do not matter to the check)."""
    d = tmp_path / "run"
    (d / "checkpoints").mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"epochs": 3, "seed": 0}))
    (d / "history.json").write_text("[]")
    (d / "checkpoints" / "last.json").write_text('{"epoch": 1}')
    (d / "checkpoints" / "step-11.weights.h5").write_bytes(b"\x89HDF")
    (d / "run.lock").write_text("")
    return d


@pytest.mark.parametrize("marker", [
    "history.json", "checkpoints", "run.lock", "results.json", None])
def test_run_directory_refused_and_untouched(encoder, run_dir, marker):
    """Any one of a run's files marks it; a run directory with none of
    them is still refused for its (foreign) config.json."""
    for other in ("history.json", "run.lock"):
        if other != marker:
            os.remove(run_dir / other)
    if marker != "checkpoints":
        for f in os.listdir(run_dir / "checkpoints"):
            os.remove(run_dir / "checkpoints" / f)
        os.rmdir(run_dir / "checkpoints")
    if marker == "results.json":
        (run_dir / "results.json").write_text("{}")
    text = _refused(encoder, run_dir,
                    "run directory" if marker else "did not write")
    if marker:
        assert marker in text and "resumed" in text


def test_saving_twice_into_its_own_directory(encoder, tmp_path):
    d = tmp_path / "pretrained"
    hub.save_pretrained(encoder, d)
    manifest = json.loads((d / hub.MANIFEST_FILE).read_text())
    assert set(manifest["files"]) == {"encoder.keras", "config.json",
                                      "README.md"}
    for f, hashes in manifest["files"].items():
        assert hashes == [hub.sha256_of(d / f)]
    hub.save_pretrained(encoder, d, results={"linear_probe_accuracy": 0.5})
    assert "0.5" in (d / "README.md").read_text()
    # The pretrained directory loads, and pushes without the manifest.
    assert hub.from_pretrained(str(d)).name == encoder.name


def test_a_file_it_wrote_but_the_user_edited_is_refused(encoder, tmp_path):
    d = tmp_path / "pretrained"
    hub.save_pretrained(encoder, d)
    with open(d / "README.md", "a") as f:
        f.write("\nMy own section.\n")
    text = _refused(encoder, d, "changed since")
    assert "README.md" in text


def test_a_corrupt_manifest_protects_everything(encoder, tmp_path):
    d = tmp_path / "pretrained"
    hub.save_pretrained(encoder, d)
    (d / hub.MANIFEST_FILE).write_text("{not json")
    _refused(encoder, d, "did not write")


def test_a_file_instead_of_a_directory(encoder, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        hub.save_pretrained(encoder, f)
    assert f.read_text() == "x"


def test_interrupted_save_is_still_its_own(encoder, tmp_path, monkeypatch):
    """Killed while replacing its files: the next save is not refused (the
    manifest held old and new hashes while they were replaced)."""
    d = tmp_path / "pretrained"
    hub.save_pretrained(encoder, d)
    real_replace = os.replace
    calls = []

    def dies_on_second_file(src, dst):
        calls.append(dst)
        if len(calls) == 3:  # manifest, encoder.keras, then config.json
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dies_on_second_file)
    with pytest.raises(KeyboardInterrupt):
        hub.save_pretrained(encoder, d, results={"linear_probe_accuracy": 1})
    monkeypatch.setattr(os, "replace", real_replace)
    hub.save_pretrained(encoder, d)


def test_download_refuses_a_different_file(encoder, tmp_path):
    src = tmp_path / "src"
    hub.save_pretrained(encoder, src)
    out = tmp_path / "out"
    out.mkdir()
    (out / "encoder.keras").write_bytes(b"mine")
    before = _snapshot(out)
    with pytest.raises(ValueError, match="Refusing to replace.*overwrite"):
        hub.download(str(src), directory=str(out))
    assert _snapshot(out) == before
    hub.download(str(src), directory=str(out), overwrite=True)
    hub.download(str(src), directory=str(out))  # the same file: fine
    assert hub.sha256_of(out / "encoder.keras") == hub.sha256_of(
        src / "encoder.keras")


def test_zoo_publish_refuses_before_loading_the_run(tmp_path):
    from keras_adadim import zoo

    out = tmp_path / "published"
    out.mkdir()
    (out / "README.md").write_bytes(FOREIGN["README.md"])
    before = _snapshot(out)
    with pytest.raises(ValueError, match="did not write"):
        zoo.publish_run(str(tmp_path / "no-run"), str(out),
                        {"name": "x", "command": "adadim pretrain"})
    assert _snapshot(out) == before


def test_zoo_train_refuses_before_training(tmp_path, monkeypatch):
    """`adadim zoo train NAME --output DIR` with a user's file in DIR stops
    before its recipe runs (no run directory, nothing changed)."""
    from keras_adadim import zoo

    reg = tmp_path / "registry.json"
    reg.write_text(json.dumps({"models": [{
        "name": "adadim-tiny-recipe", "status": "recipe", "sha256": {},
        "command": "adadim pretrain --epochs 1 --verbose 0"}]}))
    monkeypatch.setenv(zoo.REGISTRY_ENV, str(reg))
    out = tmp_path / "published"
    out.mkdir()
    (out / "config.json").write_bytes(FOREIGN["config.json"])
    before = _snapshot(out)
    with pytest.raises(ValueError, match="config.json.*did not write"):
        zoo.train("adadim-tiny-recipe", str(out))
    assert _snapshot(out) == before and not (out / "run").exists()


def test_a_failed_save_leaves_no_new_directory(tmp_path, monkeypatch):
    import keras

    def broken_save(self, path, *args, **kwargs):
        raise OSError("disk full")

    encoder = small_cnn_encoder((8, 8, 1), width=4)
    monkeypatch.setattr(keras.Model, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        hub.save_pretrained(encoder, tmp_path / "new")
    assert list(tmp_path.iterdir()) == []
