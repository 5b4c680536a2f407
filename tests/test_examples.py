"""Every example runs at a tiny size, so none rots."""

import os
import runpy
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_example(name, args, monkeypatch):
    path = os.path.join(ROOT, "examples", name)
    monkeypatch.setattr(sys, "argv", [path, *args])
    return runpy.run_path(path, run_name="__main__")


def test_pretrain_digits_example(tmp_path, monkeypatch, capsys):
    run_example(
        "pretrain_digits.py",
        ["--epochs", "1", "--alpha-every", "1", "--width", "4",
         "--output", str(tmp_path)],
        monkeypatch,
    )
    assert (tmp_path / "adadim.keras").exists()
    assert (tmp_path / "encoder.keras").exists()
    assert "linear-probe accuracy" in capsys.readouterr().out
