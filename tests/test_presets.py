"""Presets encode the paper's Tables 7-10; flags override them; the zoo's
recipe commands parse with the `adadim pretrain` command line."""

import json
import shlex

import pytest

from keras_adadim import cli
from keras_adadim import presets
from keras_adadim import zoo


def test_baseline_is_table_7():
    c = presets.resolve("baseline", "cifar100")
    assert c["optimizer"] == "lars"
    assert c["batch_size"] == 256
    assert c["learning_rate"] == 0.4
    assert c["weight_decay"] == 1e-4
    assert c["warmup_epochs"] == 10
    assert c["temperature"] == 0.1
    assert c["projector"] == "baseline" and c["projector_dim"] == 2048
    assert c["alpha_every"] == 20
    assert c["gamma"] == 1e-4
    assert c["augmentation"] == "asymmetric"
    assert c["online_probe"] and c["probe_learning_rate"] == 0.1
    assert c["backbone"] == "resnet50" and c["epochs"] == 400
    assert c["momentum_encoder"] is None


def test_expanded_is_tables_7_and_8():
    c = presets.resolve("expanded", "cifar100")
    assert c["optimizer"] == "sgd" and c["sgd_momentum"] == 0.9
    assert c["warmup_epochs"] == 2
    assert c["momentum_encoder"] == 0.996
    assert c["projector"] == "expanded" and c["projector_dim"] == 512
    assert c["augmentation"] == "ressl"
    assert not c["online_probe"] and c["probe_epochs"] == 500


@pytest.mark.parametrize(
    "dataset,preset,key,value",
    [
        ("stl10", "baseline", "gamma", 1e-2),
        ("stl10", "expanded", "gamma", 1e-4),
        ("cinic10", "baseline", "gamma", 1e-2),
        ("organamnist", "baseline", "gamma", 1e-1),
        ("organcmnist", "baseline", "gamma", 1e-2),
        ("bloodmnist", "baseline", "gamma", 1e-4),
        ("imagenet100", "expanded", "batch_size", 128),
        ("imagenet100", "expanded", "weight_decay", 2.5e-5),
        ("imagenet2012", "expanded", "predictor", True),
        ("imagenet2012", "expanded", "epochs", 100),
        ("cifar10", "baseline", "backbone", "resnet18"),
        ("cifar10", "baseline", "epochs", 1000),
    ],
)
def test_table_9_rows(dataset, preset, key, value):
    assert presets.resolve(preset, dataset)[key] == value


def test_table_9_row_for_a_file_dataset_and_resnet18_cifar100():
    c = presets.resolve("baseline", "/data/organamnist.npz", table9="organamnist")
    assert c["gamma"] == 1e-1 and c["dataset"] == "/data/organamnist.npz"
    assert presets.resolve("baseline", "cifar100", backbone="resnet18")[
        "epochs"] == 1000
    # An explicit flag still wins over the Table 9 row.
    assert presets.resolve(
        "baseline", "cifar100", backbone="resnet18", epochs=3)["epochs"] == 3


def test_comparison_presets_are_table_10():
    s = presets.resolve("simclr", "cifar100")
    assert s["method"] == "simclr" and s["projector_dim"] == 128
    assert s["augmentation"] == "symmetric" and s["optimizer"] == "lars"
    v = presets.resolve("vicreg", "cifar100")
    assert v["method"] == "vicreg" and v["projector_dim"] == 2048


def test_defaults_overrides_and_errors():
    d = presets.resolve()
    assert d["preset"] == "digits" and d["dataset"] == "digits"
    assert d["backbone"] == "small_cnn"
    assert presets.resolve(dataset="cifar10")["preset"] == "baseline"
    assert presets.resolve(epochs=None)["epochs"] == d["epochs"]
    assert set(presets.resolve("baseline", "cifar10")) == set(
        presets.DEFAULTS)
    with pytest.raises(ValueError, match="Did you mean 'baseline'"):
        presets.resolve("baseline2")
    with pytest.raises(ValueError, match="Unknown configuration key"):
        presets.resolve(epoch=3)


def test_cli_print_config(capsys):
    assert cli.main([
        "pretrain", "--dataset", "cifar100", "--preset", "expanded",
        "--epochs", "2", "--alpha", "0.5", "--no-online-probe",
        "--print-config",
    ]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["epochs"] == 2 and config["alpha"] == 0.5
    assert config["optimizer"] == "sgd" and not config["online_probe"]
    assert config["momentum_encoder"] == 0.996


def test_zoo_recipe_commands_parse():
    """Every `adadim pretrain` command in the zoo registry is accepted by
    the command line, so the recipes cannot rot."""
    parser = cli.build_parser()
    checked = 0
    for name in zoo.names():
        command = zoo.get(name)["command"]
        words = shlex.split(command)
        while words and words[0] != "adadim":
            words.pop(0)  # environment assignments
        if words[1:2] != ["pretrain"]:
            continue
        args = parser.parse_args(words[1:])
        config = cli.pretrain_config(args)
        assert config["epochs"] > 0
        checked += 1
    assert checked >= 3


def test_readme_method_table_is_the_registry():
    """The README's method table has one row per registered method, in
    registry order, with the registry's reference, views, teacher, queue,
    predictor, defaults and source (a new method needs its row)."""
    import pathlib

    readme = pathlib.Path(__file__).resolve().parent.parent / "README.md"
    lines = readme.read_text().splitlines()
    header = "| method | reference | views | teacher | queue | predictor | defaults | source |"
    start = lines.index(header) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    fields = ("reference", "views", "teacher", "queue", "predictor", "defaults",
              "source")
    expected = [[f"`{name}`", *(str(entry[k]) for k in fields)]
                for name, entry in presets.METHODS.items()]
    assert rows == expected


def test_ressl_gets_its_weak_and_strong_views_by_default():
    """A method's own scheme (ReSSL: weak teacher view, strong student
    view) replaces the preset's and `"auto"`, except on the 8x8 digits; a
    scheme the user names is kept."""
    assert presets.resolve(method="ressl", dataset="cifar10")[
        "augmentation"] == "ressl"  # the baseline preset says "asymmetric"
    assert presets.resolve(method="ressl", dataset="cifar10",
                           augmentation="auto")["augmentation"] == "ressl"
    assert presets.resolve(method="ressl", dataset="digits")[
        "augmentation"] == "auto"
    assert presets.resolve(method="ressl", dataset="cifar10",
                           augmentation="symmetric")["augmentation"] == "symmetric"
    assert presets.resolve(method="simclr", dataset="cifar10")[
        "augmentation"] != "ressl"
