"""Multi-crop through the runner and the command line: ``--local-crops`` /
``--local-crop-size`` are settings like the others (recorded, checked on
resume), refused before any training where they cannot work, and a
multi-crop SwAV run killed mid-epoch resumes to the uninterrupted run's
weights."""

import json
import os

import keras
import numpy as np
import pytest

from keras_adadim import cli
from keras_adadim import training
from simulated_kill import KillAfter  # tests/simulated_kill.py
from simulated_kill import saved_weights

FLAGS = ["pretrain", "--method", "swav", "--augmentation", "asymmetric",
         "--local-crops", "2", "--epochs", "2", "--batch-size", "256",
         "--width", "4", "--projector-hidden-dim", "16", "--projector-dim",
         "8", "--eval", "none", "--monitor-every", "0", "--no-online-probe",
         "--checkpoint-every", "2", "--seed", "0"]


@pytest.mark.parametrize("overrides, match", [
    ({"method": "simclr"}, r"--local-crops 2\) with method 'simclr'.*"
                           r"--local-crops 0.*--method swav / dino"),
    ({"method": "swav"}, r"'digits' scheme.*--augmentation asymmetric"),
    ({"method": "swav", "augmentation": "ressl", "backbone": "vit_tiny"},
     r"backbone 'vit_tiny'.*--backbone"),
    ({"method": "swav", "augmentation": "ressl", "image_size": 16,
      "local_crop_size": 20}, r"larger than.*--local-crop-size"),
    ({"method": "swav", "local_crops": 0, "local_crop_size": 6},
     r"--local-crop-size\) without local crops.*--local-crops K"),
])
def test_refused_before_any_data_is_loaded(overrides, match):
    overrides = {"local_crops": 2, **overrides}
    with pytest.raises(ValueError, match=match):
        training.configure(overrides=overrides)


def test_cli_flags_resolve_and_refuse(capsys):
    assert cli.main([*FLAGS, "--local-crop-size", "3", "--print-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert (config["local_crops"], config["local_crop_size"]) == (2, 3)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["pretrain", "--local-crops", "-1"])
    assert exit_.value.code == 2
    assert "--local-crops" in capsys.readouterr().err
    assert cli.main(["pretrain", "--method", "byol", "--local-crops", "2",
                     "--augmentation", "asymmetric", "--output", "x"]) == 2
    assert "--local-crops 0" in capsys.readouterr().err


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the runner's code path is the same on every "
                    "backend (the multi-crop methods are trained on all "
                    "three in tests/methods); one end-to-end run, in the "
                    "TF pass")
def test_multi_crop_run_resumes_mid_epoch_to_the_same_weights(tmp_path):
    """SwAV with 2 global 8x8 and 2 local 3x3 crops on digits (5 steps an
    epoch): killed at epoch 1, step 3 (checkpoint at step 2) and resumed,
    it sees the same views and ends with the uninterrupted run's weights;
    the settings are recorded and a resume with other local crops is
    refused."""
    full, killed = str(tmp_path / "full"), str(tmp_path / "killed")
    assert cli.main([*FLAGS, "--output", full, "--verbose", "0"]) == 0
    config = json.load(open(os.path.join(full, "config.json")))
    assert (config["local_crops"], config["local_crop_size"]) == (2, None)
    history = json.load(open(os.path.join(full, "history.json")))
    assert len(history) == 2 and all(np.isfinite(r["swav"]) for r in history)
    # sample_views.png: original, 2 global and 2 local rows.
    from PIL import Image

    picture = Image.open(os.path.join(full, "sample_views.png"))
    assert picture.size[1] == int(round((1.5 * 5 + 0.1) * 100))
    with pytest.raises(KeyboardInterrupt):
        config = cli.pretrain_config(
            cli.build_parser().parse_args([*FLAGS, "--output", killed]))
        training.pretrain(config, output=killed, verbose=0,
                          log=lambda *a: None, callbacks=[KillAfter(8)])
    other = [*FLAGS[:FLAGS.index("--local-crops") + 1], "3",
             *FLAGS[FLAGS.index("--local-crops") + 2:]]
    assert cli.main([*other, "--output", killed, "--verbose", "0"]) == 2
    assert cli.main([*FLAGS, "--output", killed, "--verbose", "0"]) == 0
    (w_full, m_full), (w_res, _) = saved_weights(full), saved_weights(killed)
    assert len(w_full) == len(w_res)
    for a, b in zip(w_full, w_res):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    # Prototypes and encoder moved: the comparison is not of two inits.
    assert int(np.asarray(m_full.method.epoch)) == 1


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="one end-to-end run of the runner, in the TF pass; "
                    "the device multi-crop layers train on all three backends "
                    "in tests/data/test_device_augment.py")
def test_multi_crop_on_the_device_through_the_runner(tmp_path):
    """`--augment-on device --local-crops 2`: the stream holds the images
    and the model makes 2 global 8x8 and 2 local 3x3 crops in the step."""
    out = str(tmp_path / "device")
    flags = [*FLAGS, "--augment-on", "device", "--epochs", "1"]
    assert cli.main([*flags, "--output", out, "--verbose", "0"]) == 0
    config = json.load(open(os.path.join(out, "config.json")))
    assert (config["augment_on"], config["local_crops"]) == ("device", 2)
    history = json.load(open(os.path.join(out, "history.json")))
    assert len(history) == 1 and np.isfinite(history[0]["swav"])
    model = keras.saving.load_model(os.path.join(out, "model.keras"))
    sizes = [layer.image_size for layer in model.augmentation]
    assert sizes == [8, 8, 3, 3]
