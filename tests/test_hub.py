"""The model zoo and Hub loading: from_pretrained / save_pretrained / download.

Never touches the network: the Hub download path runs against a local HTTP
server (started here) that imitates the Hub's file-resolve endpoint, with
huggingface_hub pointed at it through HF_ENDPOINT and a temporary cache.
Runs on every backend (KERAS_BACKEND=tensorflow|jax|torch).
"""

import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_adadim as ka
from keras_adadim import hub
from keras_adadim import zoo
from keras_adadim.data import load_digits
from keras_adadim.evaluation import extract_features
from keras_adadim.evaluation import linear_probe
from keras_adadim.models.small_cnn import mlp_projector
from keras_adadim.models.small_cnn import small_cnn_encoder

REPO = Path(__file__).resolve().parent.parent
SHIPPED = "adadim-smallcnn-digits"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


# ---------------------------------------------------------------- helpers
def _tiny_model(width=4):
    model = ka.AdaDimModel(
        small_cnn_encoder((8, 8, 1), width=width),
        mlp_projector(hidden_dim=16, output_dim=8),
        num_classes=10,
    )
    model(np.zeros((2, 8, 8, 1), "float32"))  # build
    return model


def _images(n=6, seed=1):
    return np.random.default_rng(seed).random((n, 8, 8, 1)).astype("float32")


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class _HubHandler(http.server.BaseHTTPRequestHandler):
    """``/{org}/{repo}/resolve/{revision}/{filename}`` -> ``root/org/repo/filename``
    with the headers ``hf_hub_download`` reads (X-Repo-Commit, ETag,
    Content-Length; Range for resumed downloads; X-Error-Code on 404)."""

    root = None
    requests = []

    def log_message(self, *args):
        pass

    def _resolve(self):
        parts = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        parts = parts.strip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return None
        org, repo, _, _revision = parts[:4]
        return Path(self.root, org, repo, *parts[4:])

    def _respond(self, body):
        path = self._resolve()
        type(self).requests.append((self.command, self.path))
        if path is None or not path.is_file():
            self.send_response(404)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = path.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0] or 0)
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header(
                "Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}"
            )
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if body:
            self.wfile.write(data[start:])

    def do_HEAD(self):
        self._respond(body=False)

    def do_GET(self):
        self._respond(body=True)


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """A local 'Hub' serving tmp_path/hub/<org>/<repo>/<file>; HF_ENDPOINT
    points at it and the HF cache is a fresh temporary directory."""
    root = tmp_path / "hub"
    root.mkdir()
    handler = type("Handler", (_HubHandler,), {"root": str(root), "requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    cache = tmp_path / "hf_cache"
    try:
        yield root, handler, str(cache), server
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------- the shipped encoder
def test_registry_is_packaged_and_consistent():
    entries = zoo.load_registry()
    assert {"adadim-resnet18-cifar10", "adadim-resnet18-cifar100",
            "adadim-resnet50-cifar100", SHIPPED} <= set(entries)
    shipped = entries[SHIPPED]
    assert shipped["status"] == "published"
    directory = zoo.shipped_dir(shipped)
    assert directory and directory.startswith(zoo.package_dir())
    config = json.loads(Path(directory, "config.json").read_text())
    for fname, digest in shipped["sha256"].items():
        assert _sha(Path(directory, fname)) == digest
        assert config["files"][fname]["sha256"] == digest
    assert os.path.getsize(Path(directory, "encoder.keras")) < 5e6
    card = Path(directory, "README.md").read_text()
    assert card.startswith("---\nlibrary_name: keras\n")
    assert "{{" not in card
    acc = shipped["metrics"]["linear_probe_accuracy"]
    assert f"{acc:.3f}".rstrip("0") in card
    for entry in entries.values():
        assert entry["command"] and entry["dataset"] and entry["backbone"]


def test_model_card_template_in_sync():
    template = Path(hub.card_template_path()).read_text()
    assert "{{model_name}}" in template
    if (REPO / "MODEL_CARD.md").exists():
        assert (REPO / "MODEL_CARD.md").read_text() == template


def test_shipped_encoder_reproduces_card_accuracy(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may be downloaded
    entry = zoo.get(SHIPPED)
    encoder = ka.from_pretrained(SHIPPED)
    assert isinstance(encoder, keras.Model)
    settings = entry["evaluation"]["settings"]
    data = load_digits(seed=settings["split_seed"])
    ftr = extract_features(encoder, data["train_images"])
    fte = extract_features(encoder, data["test_images"])
    acc = linear_probe(
        ftr, data["train_labels"], fte, data["test_labels"],
        epochs=settings["epochs"], seed=settings["seed"],
    )
    # Same data, features and probe seed; across backends the features and
    # the probe's optimiser differ by float round-off only (seed noise).
    assert acc == pytest.approx(entry["metrics"]["linear_probe_accuracy"], abs=0.02)
    full = ka.from_pretrained(SHIPPED, full_model=True)
    assert isinstance(full, ka.AdaDimModel)
    np.testing.assert_allclose(
        full.encoder.predict(data["test_images"][:16], verbose=0),
        fte[:16], rtol=1e-4, atol=1e-4,
    )


# ------------------------------------------------------------ the errors
def test_recipe_name_says_how_to_train_it():
    with pytest.raises(ValueError, match="not published yet") as info:
        ka.from_pretrained("adadim-resnet50-cifar100")
    assert zoo.get("adadim-resnet50-cifar100")["command"] in str(info.value)
    assert "adadim pretrain" in str(info.value)


def test_unknown_name_suggests_close_names():
    with pytest.raises(ValueError, match="Unknown model") as info:
        ka.from_pretrained("adadim-resnet50-cifar10")
    assert "Did you mean 'adadim-resnet50-cifar100'" in str(info.value)
    with pytest.raises(ValueError, match="adadim-smallcnn-digits"):
        ka.from_pretrained("adadim-smalcnn-digit")


def test_truncated_or_corrupted_file_is_refused(tmp_path):
    good = hub.save_pretrained(small_cnn_encoder((8, 8, 1), width=4), tmp_path / "good")
    # Recorded hash in config.json: a truncated copy is refused up front.
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    data = (bad / "encoder.keras").read_bytes()
    (bad / "encoder.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        ka.from_pretrained(bad)
    # No hash to check against: the archive check catches it.
    lone = tmp_path / "lone.keras"
    lone.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        ka.from_pretrained(lone)
    # A flipped byte inside a member: CRC check.
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF
    lone.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="truncated or corrupted"):
        ka.from_pretrained(lone)


def test_lambda_refused_under_safe_mode_unless_opted_in(tmp_path):
    encoder = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Lambda(lambda x: 2.0 * x),
         keras.layers.Flatten()]
    )
    hub.save_pretrained(encoder, tmp_path / "lam")
    with pytest.raises(ValueError, match=r"Lambda.*safe_mode=False"):
        ka.from_pretrained(tmp_path / "lam")
    loaded = ka.from_pretrained(tmp_path / "lam", safe_mode=False)
    x = _images(2)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x)), 2.0 * x.reshape(2, -1), rtol=1e-6
    )


# ---------------------------------------------------------- round trips
def test_save_from_pretrained_round_trip(tmp_path):
    model = _tiny_model()
    model.set_alpha(0.4)
    results = {"linear_probe_accuracy": 0.5, "effective_rank": 3.0,
               "history": {"alpha_value": [0.1, 0.2, 0.3]},
               "args": {"alpha_every": 2}}
    hub.save_pretrained(model, tmp_path / "m", results=results,
                        config={"dataset": "digits", "command": "echo hi"})
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert files == ["README.md", "config.json", "encoder.keras", "model.keras"]
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["backend"] == keras.backend.backend()
    assert config["library_version"] == ka.__version__
    card = (tmp_path / "m" / "README.md").read_text()
    assert "0.100 (epoch 0) → 0.300 (epoch 2)" in card and "echo hi" in card
    assert "  - digits\n" in card and "value: 0.5000" in card
    x = _images()
    encoder = ka.from_pretrained(tmp_path / "m")
    np.testing.assert_allclose(
        encoder.predict(x, verbose=0), model.encoder.predict(x, verbose=0),
        rtol=1e-5, atol=1e-5,
    )
    full = ka.from_pretrained(tmp_path / "m", full_model=True)
    assert isinstance(full, ka.AdaDimModel)
    assert float(keras.ops.convert_to_numpy(full.alpha)) == pytest.approx(0.4)
    out, ref = full(x), model(x)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(out["z1"]),
        keras.ops.convert_to_numpy(ref["z1"]), rtol=1e-5, atol=1e-5,
    )
    # Encoder only: no model.keras, and full_model=True says so.
    hub.save_pretrained(model.encoder, tmp_path / "e")
    with pytest.raises(ValueError, match="only the encoder"):
        ka.from_pretrained(tmp_path / "e", full_model=True)


SAVE_OTHER_BACKEND = """
import sys, numpy as np, keras_adadim as ka
from keras_adadim import hub
from keras_adadim.models.small_cnn import small_cnn_encoder, mlp_projector
import keras
keras.utils.set_random_seed(3)
m = ka.AdaDimModel(small_cnn_encoder((8, 8, 1), width=4),
                   mlp_projector(hidden_dim=16, output_dim=8))
x = np.random.default_rng(1).random((6, 8, 8, 1)).astype("float32")
m(x)
hub.save_pretrained(m, sys.argv[1])
np.save(sys.argv[1] + "/expected.npy", m.encoder.predict(x, verbose=0))
print(keras.backend.backend())
"""


def test_model_saved_under_another_backend_loads_here(tmp_path):
    here = keras.backend.backend()
    other = {"tensorflow": "jax", "jax": "torch", "torch": "tensorflow"}[here]
    env = {**os.environ, "KERAS_BACKEND": other, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("HF_ENDPOINT", None)
    out = tmp_path / "other"
    proc = subprocess.run(
        [sys.executable, "-c", SAVE_OTHER_BACKEND, str(out)], env=env,
        capture_output=True, text=True, timeout=240, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith(other)
    assert json.loads((out / "config.json").read_text())["backend"] == other
    x = _images()
    expected = np.load(out / "expected.npy")
    encoder = ka.from_pretrained(out)
    np.testing.assert_allclose(encoder.predict(x, verbose=0), expected,
                               rtol=1e-4, atol=1e-4)
    full = ka.from_pretrained(out, full_model=True)
    np.testing.assert_allclose(full.encoder.predict(x, verbose=0), expected,
                               rtol=1e-4, atol=1e-4)


# ------------------------------------------------------- the Hub, locally
def test_hub_download_through_local_endpoint(fake_hub, tmp_path, monkeypatch):
    root, handler, cache, server = fake_hub
    model = _tiny_model()
    hub.save_pretrained(model, root / "org" / "adadim-tiny")
    x = _images()
    expected = model.encoder.predict(x, verbose=0)

    encoder = ka.from_pretrained("hf://org/adadim-tiny", cache_dir=cache)
    np.testing.assert_allclose(encoder.predict(x, verbose=0), expected,
                               rtol=1e-5, atol=1e-5)
    fetched = [p for m, p in handler.requests if m == "GET"]
    assert "/org/adadim-tiny/resolve/main/encoder.keras" in fetched
    assert "/org/adadim-tiny/resolve/main/config.json" in fetched
    snapshot = Path(cache, "models--org--adadim-tiny", "snapshots", COMMIT)
    assert (snapshot / "encoder.keras").is_file()

    full = ka.from_pretrained("hf://org/adadim-tiny@main", full_model=True,
                              cache_dir=cache)
    assert isinstance(full, ka.AdaDimModel)
    with pytest.raises(ValueError, match="no file 'encoder.keras'"):
        ka.from_pretrained("hf://org/missing", cache_dir=cache)

    # The cache serves it again with the Hub offline (HF_HUB_OFFLINE).
    server.shutdown()
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    again = ka.from_pretrained("hf://org/adadim-tiny", cache_dir=cache)
    np.testing.assert_allclose(again.predict(x, verbose=0), expected,
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(OSError, match="not in the local Hugging Face cache"):
        ka.from_pretrained("hf://org/other-repo", cache_dir=cache)


def _private_registry(tmp_path, monkeypatch, sha256):
    reg = tmp_path / "registry.json"
    reg.write_text(json.dumps({"models": [{
        "name": "adadim-tiny-test", "status": "published",
        "repo_id": "org/adadim-tiny", "revision": "main",
        "sha256": {"encoder.keras": sha256}, "dataset": "digits",
        "backbone": "small_cnn", "command": "adadim zoo train adadim-tiny-test",
    }]}))
    monkeypatch.setenv(zoo.REGISTRY_ENV, str(reg))


def test_registry_sha256_mismatch_refused(fake_hub, tmp_path, monkeypatch):
    root, _, cache, _ = fake_hub
    hub.save_pretrained(_tiny_model(), root / "org" / "adadim-tiny")
    real = _sha(root / "org" / "adadim-tiny" / "encoder.keras")
    _private_registry(tmp_path, monkeypatch, "0" * 64)
    with pytest.raises(ValueError, match="sha256 mismatch"):
        ka.from_pretrained("adadim-tiny-test", cache_dir=cache)
    _private_registry(tmp_path, monkeypatch, real)
    assert isinstance(ka.from_pretrained("adadim-tiny-test", cache_dir=cache),
                      keras.Model)


def test_bad_download_never_overwrites_a_good_file(fake_hub, tmp_path,
                                                   monkeypatch):
    root, _, cache, _ = fake_hub
    served = root / "org" / "adadim-tiny"
    hub.save_pretrained(_tiny_model(), served)
    good = (served / "encoder.keras").read_bytes()
    _private_registry(tmp_path, monkeypatch, hashlib.sha256(good).hexdigest())
    target = tmp_path / "weights"
    path = hub.download("adadim-tiny-test", target, cache_dir=cache)
    assert Path(path).read_bytes() == good
    # The Hub now serves a truncated file (new cache: a fresh download).
    (served / "encoder.keras").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="sha256 mismatch"):
        hub.download("adadim-tiny-test", target, cache_dir=str(tmp_path / "c2"))
    assert (target / "encoder.keras").read_bytes() == good
    assert sorted(p.name for p in target.iterdir()) == ["encoder.keras"]


# ------------------------------------------------------------------ CLI
def test_cli_zoo_commands(capsys, tmp_path):
    from keras_adadim import cli

    assert cli.main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert SHIPPED in out and "recipe" in out
    assert cli.main(["zoo", "info", "adadim-resnet18-cifar10"]) == 0
    assert "adadim pretrain" in capsys.readouterr().out
    assert cli.main(["zoo", "download", SHIPPED, "--output", str(tmp_path)]) == 0
    assert _sha(tmp_path / "encoder.keras") == zoo.get(SHIPPED)["sha256"]["encoder.keras"]
    assert cli.main(["zoo", "train", "adadim-resnet50-cifar100"]) == 2
    assert "not published yet" in capsys.readouterr().err
    assert cli.main(["zoo", "push", str(tmp_path / "nowhere"), "org/x"]) == 2
    assert "save_pretrained" in capsys.readouterr().err
