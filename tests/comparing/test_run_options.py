"""The run options shared by the comparing entry points: one declaration, the old keywords still accepted."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest

from graceful_core.comparing.labelfree import compare_unlabelled
from graceful_core.comparing.lineage import model_matrix_report
from graceful_core.comparing.options import CompareKeywords, RunKeywords, RunOptions, run_options
from graceful_core.comparing.predictions import compare_predictions
from graceful_core.comparing.sources import compare_sources, predictions_for
from graceful_core.results.comparison import Comparison

PREDS = Path(__file__).resolve().parents[2] / "sample_data" / "fashion" / "predictions"


def test_the_keywords_are_the_fields_of_the_options():
    assert set(RunKeywords.__annotations__) == {f.name for f in dataclasses.fields(RunOptions)}


def test_the_compare_keywords_are_parameters_of_both_builders():
    for fn in (compare_predictions, compare_unlabelled):
        assert set(CompareKeywords.__annotations__) <= set(inspect.signature(fn).parameters), fn.__name__


def test_defaults_and_a_misspelt_option():
    assert run_options() == RunOptions(progress=None, use_cache=True, device="auto", batch_size=256)
    with pytest.raises(TypeError, match="'use_cahce'"):
        run_options(use_cahce=False)  # pyright: ignore[reportCallIssue]  # the misspelling is the test
    with pytest.raises(TypeError, match="'use_cahce'"):
        compare_sources(PREDS / "old.parquet", PREDS / "new.parquet", use_cahce=False)  # pyright: ignore[reportCallIssue]


def test_stage_binds_the_stage_name():
    heard = []
    stage = RunOptions(progress=lambda *a: heard.append(a)).stage("old.pt")
    assert stage is not None
    stage(3, 10)
    assert heard == [("old.pt", 3, 10)]
    assert RunOptions().stage("old.pt") is None


def test_the_old_keywords_still_run_a_comparison_and_a_model_set():
    heard = []
    kw = {"progress": lambda *a: heard.append(a), "use_cache": False, "device": "cpu", "batch_size": 7}
    comp = compare_sources(PREDS / "old.parquet", PREDS / "new.parquet", **kw)
    assert isinstance(comp, Comparison)  # the tables have labels
    # the same numbers as without the options (a table is read as it is: no option changes it)
    plain = compare_sources(PREDS / "old.parquet", PREDS / "new.parquet")
    assert comp.to_report() == plain.to_report()
    assert heard, "progress heard the long stages (cross-test, clustering)"
    p = predictions_for(PREDS / "old.parquet", None, **kw)
    assert len(p.ids) == comp.summary.n_samples
    ms = model_matrix_report([PREDS / "old.parquet", PREDS / "new.parquet"], **kw)
    assert ms.negative_flips[0][1] == comp.summary.n_negative_flips
