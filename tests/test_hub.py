"""The model zoo and the Hub: from_pretrained / save_pretrained / download /
push_to_hub.

Never touches the network: the Hub paths run against a local HTTP server
(tests/fake_hub.py, started by the ``fake_hub`` fixture) that imitates the
Hub's download, repo-creation, branch, preupload and commit endpoints, with
huggingface_hub pointed at it through HF_ENDPOINT and a temporary cache.
Runs on every backend (KERAS_BACKEND=tensorflow|jax|torch).
"""

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
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

from fake_hub import COMMIT
from fake_hub import TOKEN
from fake_hub import make_server

REPO = Path(__file__).resolve().parent.parent
SHIPPED = "adadim-smallcnn-digits"


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


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """A local 'Hub' (tests/fake_hub.py) serving and storing
    tmp_path/hub/<org>/<repo>/<file>; HF_ENDPOINT points at it (hub.py reads
    it at call time, so huggingface_hub's import-time constant does not
    matter) and the HF cache is a fresh temporary directory."""
    root = tmp_path / "hub"
    root.mkdir()
    server, handler = make_server(root, token=TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    # hf_xet (upload_folder's pipeline) writes its logs here, not in ~/.cache.
    monkeypatch.setenv("HF_XET_CACHE", str(tmp_path / "xet"))
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    # What huggingface_hub builds from its import-time ENDPOINT (file URLs,
    # the agent-harness registry it fetches once for its user agent) goes to
    # this fake Hub too, and nothing is cached under the real HF_HOME.
    endpoint = os.environ["HF_ENDPOINT"]
    monkeypatch.setattr(hf_constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                        endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(hf_constants, "AGENT_HARNESSES_PATH",
                        str(tmp_path / "agent_harnesses.json"), raising=False)
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
    # The card prints metrics with 4 decimals (hub._fmt).
    assert f"| {acc:.4f} |" in card
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
    # Saved before methods were layers: alpha and beta (then the model's own
    # variables) land in the AdaDim method; the step counters stay.
    assert isinstance(full.method, ka.methods.AdaDim)
    # The card's alpha trajectory ends "→ 0.346 (epoch 50)".
    last = entry["metrics"]["alpha_trajectory"].split("→")[-1].split()[0]
    alpha = float(keras.ops.convert_to_numpy(full.alpha))
    assert alpha == pytest.approx(float(last), abs=5e-4)
    assert float(keras.ops.convert_to_numpy(full.beta)) == pytest.approx(1e-4 * alpha, rel=1e-4)
    steps = int(keras.ops.convert_to_numpy(full.train_steps))
    assert steps == int(keras.ops.convert_to_numpy(full.planned_steps)) == 660


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
    # (+ the manifest by which save_pretrained recognises its own files)
    assert files == [hub.MANIFEST_FILE, "README.md", "config.json",
                     "encoder.keras", "model.keras"]
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


# ---------------------------------------------------------- push_to_hub
PUSHED = ["README.md", "config.json", "encoder.keras", "model.keras"]


@pytest.fixture(scope="module")
def trained():
    """A tiny AdaDimModel after a few SGD steps on two noisy views (weights,
    batch-norm statistics, optimizer state and alpha moved), then alpha set
    to 0.3 so that the loaded value is known."""
    keras.utils.set_random_seed(5)
    x = _images(32, seed=2)
    noisy = x + 0.05 * np.random.default_rng(3).standard_normal(x.shape)
    model = _tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    model.fit((x, noisy.astype("float32")), np.arange(32) % 10,
              batch_size=16, epochs=1, callbacks=[ka.AlphaUpdater()],
              verbose=0)
    model.set_alpha(0.3)
    return model


def _served(root, repo_id, branch="main"):
    """What the fake Hub holds for ``repo_id`` at ``branch``: {name: bytes}."""
    where = root / (repo_id if branch == "main" else f"{repo_id}@{branch}")
    if not where.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in where.iterdir() if p.is_file()}


def _np(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("upload", ["pipeline", "create_commit"])
def test_push_to_hub_round_trip(fake_hub, trained, tmp_path, monkeypatch,
                                upload):
    """save_pretrained -> push_to_hub -> the Hub holds byte-identical files
    -> from_pretrained("hf://...") gives identical outputs. With hf_xet
    installed, upload_folder streams through its upload pipeline; without it
    (HF_HUB_DISABLE_XET) it calls create_commit: both paths run."""
    import huggingface_hub.constants as hf_constants

    root, handler, cache, _ = fake_hub
    if upload == "create_commit":
        monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_XET", True)
    elif importlib.util.find_spec("hf_xet") is None:
        pytest.skip("hf_xet is not installed: upload_folder has only the "
                    "create_commit path")
    local = tmp_path / "local"
    hub.save_pretrained(trained, local, results={"linear_probe_accuracy": 0.5},
                        config={"dataset": "digits"})
    (local / "notes.txt").write_text("not part of the model")

    info = hub.push_to_hub(local, "org/adadim-pushed", token=TOKEN)
    served = _served(root, "org/adadim-pushed")
    assert sorted(served) == PUSHED  # notes.txt is not uploaded
    for name, data in served.items():
        assert data == (local / name).read_bytes(), name
    [commit] = handler.commits
    assert commit["summary"] == "Upload AdaDim encoder (keras-adadim)"
    assert commit["authorization"] == f"Bearer {TOKEN}"
    assert commit["deleted"] == []
    assert info.oid == commit["oid"]
    assert info.commit_url.endswith(f"/org/adadim-pushed/commit/{info.oid}")
    posts = [p for m, p in handler.requests if m == "POST"]
    assert posts[0] == "/api/repos/create"
    assert "/api/validate-yaml" in posts  # the model card's metadata is valid
    assert posts[-1] == "/api/models/org/adadim-pushed/commit/main"

    x = _images()
    encoder = ka.from_pretrained("hf://org/adadim-pushed", cache_dir=cache)
    np.testing.assert_array_equal(encoder.predict(x, verbose=0),
                                  trained.encoder.predict(x, verbose=0))
    full = ka.from_pretrained("hf://org/adadim-pushed", full_model=True,
                              cache_dir=cache)
    assert isinstance(full, ka.AdaDimModel)
    assert float(_np(full.alpha)) == pytest.approx(0.3)
    np.testing.assert_array_equal(_np(full(x)["z1"]), _np(trained(x)["z1"]))

    # Unchanged files are not committed again (the preupload reports their
    # oids); push_to_hub then returns the head commit.
    again = hub.push_to_hub(local, "org/adadim-pushed", token=TOKEN)
    assert len(handler.commits) == 1
    assert again.oid == commit["oid"]


def test_push_model_object_then_encoder_only(fake_hub, trained, tmp_path,
                                             monkeypatch):
    """A model object is saved to a temporary directory (removed afterwards)
    named after the repo; a later encoder-only push removes the repo's stale
    model.keras, as save_pretrained does locally."""
    root, handler, cache, _ = fake_hub
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    hub.push_to_hub(trained, "org/adadim-obj", token=TOKEN,
                    results={"linear_probe_accuracy": 0.5},
                    config={"dataset": "digits"})
    assert list(scratch.iterdir()) == []
    served = _served(root, "org/adadim-obj")
    assert sorted(served) == PUSHED
    config = json.loads(served["config.json"])
    assert config["model_name"] == "adadim-obj"  # not "adadim-push-<random>"
    assert config["recipe"] == {"dataset": "digits"}
    for fname, meta in config["files"].items():
        assert hashlib.sha256(served[fname]).hexdigest() == meta["sha256"]
    card = served["README.md"].decode()
    assert "adadim-obj" in card and "value: 0.5000" in card
    x = _images()
    full = ka.from_pretrained("hf://org/adadim-obj", full_model=True,
                              cache_dir=cache)
    np.testing.assert_array_equal(_np(full(x)["z1"]), _np(trained(x)["z1"]))

    other = small_cnn_encoder((8, 8, 1), width=2)
    hub.push_to_hub(other, "org/adadim-obj", token=TOKEN)
    assert sorted(_served(root, "org/adadim-obj")) == [
        "README.md", "config.json", "encoder.keras"]
    assert handler.commits[-1]["deleted"] == ["model.keras"]
    encoder = ka.from_pretrained("hf://org/adadim-obj", cache_dir=cache)
    np.testing.assert_array_equal(encoder.predict(x, verbose=0),
                                  other.predict(x, verbose=0))
    with pytest.raises(ValueError, match="publishes only the encoder"):
        ka.from_pretrained("hf://org/adadim-obj", full_model=True,
                           cache_dir=cache)


def test_push_to_a_new_branch(fake_hub, trained, tmp_path):
    root, handler, cache, _ = fake_hub
    local = tmp_path / "local"
    hub.save_pretrained(trained.encoder, local)
    hub.push_to_hub(local, "org/adadim-branch", token=TOKEN, revision="dev")
    assert _served(root, "org/adadim-branch") == {}  # main is untouched
    served = _served(root, "org/adadim-branch", "dev")
    assert sorted(served) == ["README.md", "config.json", "encoder.keras"]
    assert all(data == (local / n).read_bytes() for n, data in served.items())
    assert handler.commits[-1]["branch"] == "dev"
    x = _images()
    encoder = ka.from_pretrained("hf://org/adadim-branch@dev", cache_dir=cache)
    np.testing.assert_array_equal(encoder.predict(x, verbose=0),
                                  trained.encoder.predict(x, verbose=0))
    with pytest.raises(ValueError, match="no file 'encoder.keras'"):
        ka.from_pretrained("hf://org/adadim-branch", cache_dir=cache)
    # The branch exists now: pushing to it again just commits.
    other = small_cnn_encoder((8, 8, 1), width=2)
    hub.push_to_hub(other, "org/adadim-branch", token=TOKEN, revision="dev")
    assert len(handler.commits) == 2
    again = ka.from_pretrained("hf://org/adadim-branch@dev", cache_dir=cache)
    np.testing.assert_array_equal(again.predict(x, verbose=0),
                                  other.predict(x, verbose=0))


def test_push_to_hub_refuses_bad_input_before_any_request(fake_hub, tmp_path,
                                                         monkeypatch):
    from huggingface_hub.errors import HfHubHTTPError

    root, handler, _, _ = fake_hub
    with pytest.raises(ValueError, match="has no encoder.keras.*save_pretrained"):
        hub.push_to_hub(tmp_path / "nowhere", "org/x", token=TOKEN)
    local = tmp_path / "local"
    encoder = small_cnn_encoder((8, 8, 1), width=4)
    hub.save_pretrained(encoder, local)
    (local / "README.md").unlink()
    with pytest.raises(ValueError, match="has no README.md"):
        hub.push_to_hub(local, "org/x", token=TOKEN)
    hub.save_pretrained(encoder, local)
    good = (local / "encoder.keras").read_bytes()
    (local / "encoder.keras").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="sha256 mismatch"):
        hub.push_to_hub(local, "org/x", token=TOKEN)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with pytest.raises(ValueError, match="takes an AdaDimModel or an encoder"):
        hub.push_to_hub(np.zeros(3), "org/x", token=TOKEN)
    assert list(scratch.iterdir()) == []  # the temporary directory is removed
    assert handler.requests == [] and not (root / "org").exists()

    # A token the Hub refuses: its 401 comes through and nothing is stored.
    (local / "encoder.keras").write_bytes(good)
    with pytest.raises(HfHubHTTPError, match="401"):
        hub.push_to_hub(local, "org/x", token="not-the-token")
    assert not (root / "org" / "x").exists() and handler.commits == []


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
    # Recipes are trainable (`zoo train` runs their `adadim pretrain`
    # command: tests/test_pretrain.py); a misspelt name gets the closest.
    assert cli.main(["zoo", "train", "adadim-resnet50-cifar1000"]) == 2
    assert "adadim-resnet50-cifar100" in capsys.readouterr().err
    assert cli.main(["zoo", "push", str(tmp_path / "nowhere"), "org/x"]) == 2
    assert "save_pretrained" in capsys.readouterr().err


def test_cli_zoo_push(fake_hub, tmp_path, capsys):
    from keras_adadim import cli

    root, handler, _, _ = fake_hub
    hub.save_pretrained(small_cnn_encoder((8, 8, 1), width=4), tmp_path / "enc")
    assert cli.main(["zoo", "push", str(tmp_path / "enc"), "org/cli-pushed",
                     "--token", TOKEN, "--private",
                     "--message", "From the CLI"]) == 0
    [commit] = handler.commits
    assert commit["summary"] == "From the CLI"
    assert commit["oid"] in capsys.readouterr().out
    assert handler.repos["org/cli-pushed"]["private"] is True
    assert sorted(_served(root, "org/cli-pushed")) == [
        "README.md", "config.json", "encoder.keras"]


def test_model_card_describes_the_method_from_the_registry():
    adadim = hub.card_values({"recipe": {"method": "adadim", "alpha_every": 20}}, {})
    assert adadim["method_description"].startswith("`adadim`: AdaDim")
    assert "e_α = 20" in adadim["method_description"]
    byol = hub.card_values({"recipe": {"method": "byol"}}, {})
    assert "BYOL (Grill et al., 2020)" in byol["method_description"]
    assert "α" not in byol["method_description"]
    assert "byol.yaml" in byol["method_description"]
