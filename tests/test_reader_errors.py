"""Every file the zoo and the hub read — registries, pretrained
directories' config.json and .keras files — that is missing, empty,
truncated, of the wrong format or shape gives a ValueError naming that
file (never a bare KeyError/AttributeError/JSONDecodeError)."""

import json

import pytest

from keras_adadim import hub
from keras_adadim import zoo
from keras_adadim.models.small_cnn import small_cnn_encoder

REGISTRIES = {
    "missing": None,
    "empty": "",
    "truncated": '{"models": [{"name": "a", "status": "pub',
    "not JSON": "models:\n  - name: a\n",
    "a list": '[{"name": "a", "status": "published"}]',
    "no models": '{"entries": []}',
    "models not a list": '{"models": {"a": {}}}',
    "entry not an object": '{"models": ["adadim-x"]}',
    "entry without name": '{"models": [{"status": "recipe"}]}',
    "name not a string": '{"models": [{"name": 3, "status": "recipe"}]}',
    "bad status": '{"models": [{"name": "a", "status": "done"}]}',
    "binary": b"\xff\xfe\x00garbage",
}


@pytest.mark.parametrize("case", sorted(REGISTRIES))
def test_bad_registry_named(case, tmp_path, monkeypatch):
    path = tmp_path / "registry.json"
    content = REGISTRIES[case]
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    monkeypatch.setenv(zoo.REGISTRY_ENV, str(path))
    with pytest.raises(ValueError) as e:
        zoo.load_registry()
    assert str(path) in str(e.value)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("pretrained") / "enc"
    hub.save_pretrained(small_cnn_encoder((8, 8, 1), width=4), d)
    return d


def _broken_copy(saved, tmp_path, name, content):
    d = tmp_path / "copy"
    d.mkdir()
    for f in ("encoder.keras", "config.json", "README.md"):
        (d / f).write_bytes((saved / f).read_bytes())
    if content is None:
        (d / name).unlink()
    else:
        (d / name).write_bytes(content)
    return d


CONFIGS = {
    "empty": b"",
    "truncated": b'{"format": 1, "files": {"encoder.keras": {"sha',
    "not JSON": b"format: 1\n",
    "a list": b"[1, 2]",
    "files a list": b'{"files": ["encoder.keras"]}',
    "file entry a string": b'{"files": {"encoder.keras": "abc"}}',
}


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_bad_config_json_named(saved, tmp_path, case):
    d = _broken_copy(saved, tmp_path, "config.json", CONFIGS[case])
    with pytest.raises(ValueError) as e:
        hub.from_pretrained(str(d))
    assert str(d / "config.json") in str(e.value)


def _encoder_bytes(saved):
    return (saved / "encoder.keras").read_bytes()


@pytest.mark.parametrize("case", [
    "missing", "empty", "truncated", "text", "zip of something else"])
def test_bad_encoder_file_named(saved, tmp_path, case):
    good = _encoder_bytes(saved)
    content = {
        "missing": None, "empty": b"", "truncated": good[: len(good) // 2],
        "text": b"this is not a model",
    }.get(case)
    if case == "zip of something else":
        import io
        import zipfile

        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("hello.txt", "hi")
        content = buf.getvalue()
    d = _broken_copy(saved, tmp_path, "encoder.keras", content)
    if content is not None:  # the recorded sha256 would refuse it first
        config = json.loads((d / "config.json").read_text())
        config["files"] = {}
        (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError) as e:
        hub.from_pretrained(str(d))
    assert str(d) in str(e.value)


def test_sha256_mismatch_named(saved, tmp_path):
    good = _encoder_bytes(saved)
    d = _broken_copy(saved, tmp_path, "encoder.keras", good[:-10])
    with pytest.raises(ValueError, match="sha256 mismatch") as e:
        hub.from_pretrained(str(d))
    assert str(d / "encoder.keras") in str(e.value)


@pytest.mark.parametrize("name", ["nowhere/encoder.keras", "nowhere.keras"])
def test_missing_path_named(tmp_path, name):
    path = str(tmp_path / name)
    with pytest.raises(ValueError, match="no such file") as e:
        hub.from_pretrained(path)
    assert path in str(e.value)


def test_empty_directory_named(tmp_path):
    with pytest.raises(ValueError, match="has no encoder.keras") as e:
        hub.from_pretrained(str(tmp_path))
    assert str(tmp_path) in str(e.value)
