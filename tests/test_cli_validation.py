"""`adadim pretrain` / `adadim evaluate` refuse a bad flag value while the
command line is parsed (no data loaded, nothing trained, nothing written),
with an error that names the flag and what it accepts."""

import math

import pytest

from keras_adadim import cli

WRONG_TYPE = ("abc", "", "1e400x")

# flag -> (values refused, values accepted at the edges of the range)
PRETRAIN = {
    "--epochs": (["0", "-1", "1.5"], ["1"]),
    "--batch-size": (["1", "0", "-8"], ["2"]),
    "--learning-rate": (["0", "-0.1", "nan", "inf"], ["1e-9"]),
    "--probe-learning-rate": (["0", "-1", "nan"], ["0.1"]),
    "--knn-k": (["0", "-5"], ["1"]),
    "--probe-epochs": (["0", "-2"], ["1"]),
    "--few-labels": (["-1"], ["0"]),
    "--seed": (["-1", str(2**32), "0.5"], ["0", str(2**32 - 1)]),
    "--temperature": (["0", "-0.5", "inf"], ["1e-3"]),
    "--gamma": (["1", "1.5", "-1e-4", "nan"], ["0", "0.999"]),
    "--momentum-encoder": (["-0.1", "1.01", "nan"], ["0", "1", "0.996"]),
    "--weight-decay": (["-1e-6", "inf"], ["0"]),
    "--warmup-epochs": (["-1", "2.5"], ["0"]),
    "--monitor-every": (["-1"], ["0"]),
    "--monitor-samples": (["1", "0"], ["2"]),
    "--image-size": (["1", "0", "-32"], ["2"]),
    "--channels": (["0", "2", "4"], ["1", "3"]),
    "--width": (["0", "-4"], ["1"]),
    "--width-multiplier": (["0", "-1"], ["0.5"]),
    "--projector-dim": (["0"], ["1"]),
    "--projector-hidden-dim": (["0"], ["1"]),
    "--alpha-every": (["0"], ["1"]),
    "--alpha-batches": (["0"], ["1"]),
    "--checkpoint-every": (["-1"], ["0"]),
    "--devices": (["0", "-2", "1.5"], ["1", "8"]),
    "--alpha": (["1.5", "-0.1", "nan", "adaptivee"],
                ["adaptive", "cosine", "linear", "0", "1", "0.3"]),
    "--eval": (["foo", "ALL", "knn,linear"], ["none", "linear", "knn", "all"]),
}
# Flags whose values are words: the wrong-type values are the bad values.
WORDS = {"--alpha", "--eval"}

EVALUATE = {
    "--knn-k": ["0", "-1"],
    "--probe-epochs": ["0"],
    "--few-labels": ["-1"],
    "--seed": ["-1"],
    "--image-size": ["1"],
}


def _bad(table):
    for flag, (bad, _) in table.items():
        values = bad if flag in WORDS else [*bad, *WRONG_TYPE]
        for value in values:
            yield pytest.param(flag, value, id=f"{flag}={value!r}")


def _refused(argv, flag, capsys):
    with pytest.raises(SystemExit) as e:
        cli.build_parser().parse_args(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}:" in err, err
    assert "must be" in err or "invalid choice" in err, err
    return err


@pytest.mark.parametrize("flag,value", list(_bad(PRETRAIN)))
def test_pretrain_flag_refused_at_parse_time(flag, value, capsys):
    # `--flag=value`: argparse would read "-1e-4" as an option otherwise.
    err = _refused(["pretrain", f"{flag}={value}"], flag, capsys)
    assert repr(value) in err  # the value the user typed


@pytest.mark.parametrize("flag,value", [
    pytest.param(f, v, id=f"{f}={v!r}") for f, (_, good) in PRETRAIN.items()
    for v in good])
def test_pretrain_flag_edges_accepted(flag, value):
    args = cli.build_parser().parse_args(["pretrain", f"{flag}={value}"])
    key = next(k for f, k, _, _ in cli._PRETRAIN_FLAGS if f == flag)
    got = getattr(args, key)
    if flag in WORDS and not value[0].isdigit():
        assert got == value
    else:
        assert math.isclose(float(got), float(value))


@pytest.mark.parametrize("flag,value", [
    pytest.param(f, v, id=f"{f}={v!r}") for f, bad in EVALUATE.items()
    for v in [*bad, "x"]])
def test_evaluate_flag_refused_at_parse_time(flag, value, capsys):
    _refused(["evaluate", "runs/x", f"{flag}={value}"], flag, capsys)


# Text flags: an empty or blank value is refused (it used to reach the
# library as '' and fail with e.g. "[Errno 2] No such file or directory: ''").
TEXT_FLAGS = {
    "pretrain": ["--dataset", "--output", "--table9", "--data-dir",
                 "--train-split", "--test-split", "--backbone", "--stem",
                 "--projector", "--augmentation", "--optimizer",
                 "--schedule"],
    "evaluate": ["--dataset", "--data-dir", "--output"],
    "analyze": ["--output"],
}


@pytest.mark.parametrize("command,flag,value", [
    pytest.param(c, f, v, id=f"{c}{f}={v!r}")
    for c, flags in TEXT_FLAGS.items() for f in flags for v in ("", "  ")])
def test_empty_text_flag_refused(command, flag, value, capsys):
    extra = {"evaluate": ["runs/x"], "analyze": ["runs/x"]}.get(command, [])
    with pytest.raises(SystemExit) as e:
        cli.build_parser().parse_args([command, *extra, f"{flag}={value}"])
    assert e.value.code == 2
    assert f"argument {flag}: must not be empty" in capsys.readouterr().err


@pytest.mark.parametrize("argv,flag", [
    (["zoo", "download", "x", "--output="], "--output"),
    (["zoo", "download", "x", "--revision="], "--revision"),
    (["zoo", "download", "x", "--cache-dir= "], "--cache-dir"),
    (["zoo", "train", "x", "--output="], "--output"),
])
def test_empty_zoo_flag_refused(argv, flag, capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(argv)
    assert f"argument {flag}: must not be empty" in capsys.readouterr().err


def test_every_numeric_pretrain_flag_is_range_checked():
    """A numeric flag added to _PRETRAIN_FLAGS without a range check (a
    plain int/float type) fails here."""
    plain = [flag for flag, _, kind, _ in cli._PRETRAIN_FLAGS
             if kind in (int, float)]
    assert plain == []
    typed = {flag for flag, _, kind, _ in cli._PRETRAIN_FLAGS
             if kind is not str}
    assert set(PRETRAIN) <= typed


def test_bad_flag_runs_nothing_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit):
        cli.main(["pretrain", "--epochs", "0", "--output", str(out)])
    assert "argument --epochs: must be an integer >= 1; got '0'" in \
        capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
