"""The command line's shared argument blocks (graceful_core.cli.options) and its start-up cost."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from graceful_core.cli.commands import COMMANDS, build_parser
from graceful_core.cli.options import percentage_points, positive_int, rate

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("text, value", [("0", 0.0), ("1", 1.0), ("0.02", 0.02), ("1e-3", 0.001)])
def test_rate_takes_a_share_between_0_and_1(text, value):
    assert rate(text) == value


@pytest.mark.parametrize("text", ["-0.01", "1.0001", "nan", "inf", "2%", ""])
def test_rate_refuses_anything_else_naming_the_text(text):
    with pytest.raises(argparse.ArgumentTypeError, match=r"expected a number between 0 and 1, got"):
        rate(text)


def test_percentage_points_exclude_100_and_nan():
    assert percentage_points("0") == 0.0 and percentage_points("99.9") == 99.9
    for bad in ("100", "-1", "nan", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected percentage points between 0 and 100"):
            percentage_points(bad)


def test_positive_int():
    assert positive_int("1") == 1 and positive_int("256") == 256
    for bad in ("0", "-3", "1.5", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected a positive whole number"):
            positive_int(bad)


def test_compare_mitigate_and_app_share_the_pair_arguments():
    """OLD, NEW and --data are one block: the same names, metavars and kinds in every command that takes a pair."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("compare", "mitigate", "app"):
        actions = {a.dest: a for a in sub.choices[name]._actions}
        assert (actions["old"].metavar, actions["new"].metavar, actions["data"].metavar) == ("OLD", "NEW", "DATA")
        assert actions["old"].help.startswith("deployed model file or predictions table")
        assert actions["new"].help.startswith("proposed model file or predictions table")
    assert list(sub.choices) == list(COMMANDS)


def test_building_the_parser_loads_no_torch():
    """`graceful --help` and a comparison of two tables start without importing torch (only model runs need it)."""
    code = (
        "import sys; from graceful_core.cli.commands import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'ray', 'umap', 'duckdb', 'onnxruntime') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
