"""bench_step.py's command line (the benchmark itself runs on demand)."""

import os
import runpy

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def bench():
    return runpy.run_path(os.path.join(ROOT, "benchmarks", "bench_step.py"))


def test_projector_widths_default_and_paper_head(bench):
    assert bench["parse_args"]([]).projector_widths == [512, 256]
    args = bench["parse_args"](["--projector", "2048,2048", "--batch", "256"])
    assert args.projector_widths == [2048, 2048]
    assert bench["settings_of"](args)["projector"] == [2048, 2048]


@pytest.mark.parametrize("bad", ["2048", "a,b", "0,16", "16,16,16", "-1,4"])
def test_bad_projector_widths_are_refused_by_name(bench, bad, capsys):
    with pytest.raises(SystemExit) as e:
        bench["parse_args"](["--projector", bad])
    assert e.value.code == 2
    assert "--projector" in capsys.readouterr().err
