"""Comparisons without labels, checked against independent NumPy/pandas counts on the Fashion sample."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest, norm

import graceful_core
from graceful_core.cli.commands import main
from graceful_core.comparing.labelfree import UnlabelledComparison
from graceful_core.metrics.prediction_churn import churn_against_reference, prediction_churn

ROOT = Path(__file__).resolve().parents[2]
PRED = ROOT / "sample_data" / "fashion" / "predictions"


def _wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson score interval, written out (Wilson 1927)."""
    z = norm.ppf(0.975)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory):
    """The Fashion sample's old/new/old-reseed tables with the label column removed, and one CLI run."""
    d = tmp_path_factory.mktemp("unlabelled")
    for name in ("old", "new", "old-reseed"):
        t = pq.read_table(PRED / f"{name}.parquet")
        pq.write_table(t.drop(["label"]), d / f"{name}.parquet")
    return d


@pytest.fixture(scope="module")
def run(unlabelled):
    d = unlabelled
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(
            [
                "compare",
                str(d / "old.parquet"),
                str(d / "new.parquet"),
                "--json",
                str(d / "r.json"),
                "--max-churn",
                "0.05",
                "--format",
                "github",
                "--junit",
                str(d / "j.xml"),
                "--no-cache",
            ]
        )
    return rc, json.loads((d / "r.json").read_text()), out.getvalue()


def _independent():
    old = pq.read_table(PRED / "old.parquet", columns=["id", "pred"]).to_pandas()
    new = pq.read_table(PRED / "new.parquet", columns=["id", "pred"]).to_pandas()
    both = old.merge(new, on="id", suffixes=("_old", "_new"))
    return both["pred_old"].to_numpy(), both["pred_new"].to_numpy()


def test_churn_equals_an_independent_numpy_count(run):
    rc, rep, _ = run
    o, n = _independent()
    changed = int(np.count_nonzero(o != n))
    assert rep["n_samples"] == len(o) == 10_000
    assert rep["n_changed_predictions"] == changed
    assert rep["prediction_churn"] == changed / len(o)
    assert rep["prediction_churn_ci95"] == pytest.approx(_wilson(changed, len(o)), abs=1e-12)
    k = len(rep["classes"])
    pos = {c: j for j, c in enumerate(rep["classes"])}
    oi, ni = (np.array([pos.get(v, v) for v in a.tolist()]) for a in (o, n))  # class names -> report indices
    expected = np.zeros((k, k), dtype=int)
    np.add.at(expected, (oi, ni), 1)
    assert rep["churn_transition_matrix"] == expected.tolist()
    per = {r["class"]: r for r in rep["churn_per_class"]}
    for a, name in enumerate(rep["classes"]):
        assert per[name]["support"] == int((oi == a).sum())
        assert per[name]["changed"] == int(((oi == a) & (ni != a)).sum())


def test_the_report_says_there_are_no_labels_and_leaves_out_what_needs_them(run):
    rc, rep, out = run
    assert rep["labels"] is False
    for key in (
        "negative_flip_rate",
        "accuracy",
        "backward_trust_compatibility",
        "mcnemar_p_value",
        "negative_flips",
        "per_class",
        "regression_slices",
    ):
        assert key not in rep and key not in rep["old"]
    assert set(rep["not_available_without_labels"]) >= {"accuracy", "negative_flip_rate", "mcnemar_p_value"}
    assert "labels: none" in out.splitlines()[0] and "No true labels" in out.splitlines()[1]
    o, n = _independent()
    ids = pq.read_table(PRED / "old.parquet", columns=["id"]).column("id").to_pylist()
    assert rep["changed_predictions"] == sorted(str(i) for i, a, b in zip(ids, o, n) if a != b)
    # churn slices test "changed" with the slice machinery: every slice's counts recomputed
    assert rep["churn_slices"] and {"changed_predictions", "prediction_churn"} <= set(rep["churn_slices"][0])


def test_max_churn_gates(run, unlabelled, capsys):
    rc, rep, out = run
    assert rc == 1
    assert rep["gates"] == [
        {
            "gate": "max-churn",
            "passed": False,
            "detail": f"prediction churn {100 * rep['prediction_churn']:.2f} % > 5.00 %",
        }
    ]
    d = unlabelled
    assert main(["compare", str(d / "old.parquet"), str(d / "new.parquet"), "--max-churn", "0.10", "--quiet"]) == 0
    assert capsys.readouterr().out == ""  # --quiet: a passing run prints nothing


def test_a_gate_that_needs_labels_fails_and_says_why(unlabelled, capsys):
    d = unlabelled
    rc = main(["compare", str(d / "old.parquet"), str(d / "new.parquet"), "--max-nfr", "0.5", "--quiet"])
    assert rc == 1
    assert (
        "gate max-nfr: FAILED (negative flip rate (NFR) cannot be checked: no true labels)" in capsys.readouterr().out
    )


def test_churn_floor_without_labels(unlabelled):
    d = unlabelled
    u = graceful_core.compare(d / "old.parquet", d / "new.parquet", reference=d / "old-reseed.parquet")
    assert isinstance(u, UnlabelledComparison)
    o, n = _independent()
    r = pq.read_table(PRED / "old-reseed.parquet", columns=["pred"]).column("pred").to_numpy()
    assert u.reference.reference_churn == np.mean(o != r)
    b, c = int(((o != n) & (o == r)).sum()), int(((o == n) & (o != r)).sum())
    assert (u.reference.update_only, u.reference.reference_only) == (b, c)
    assert u.reference.p_value == pytest.approx(binomtest(b, b + c, 0.5).pvalue, rel=1e-9)


def test_labelled_reports_carry_the_churn_keys_too():
    rep = graceful_core.compare(
        ROOT / "sample_data/predictions/old.csv", ROOT / "sample_data/predictions/new.csv"
    ).to_report()
    old = pd.read_csv(ROOT / "sample_data/predictions/old.csv", usecols=["id", "pred"], dtype={"id": str})
    new = pd.read_csv(ROOT / "sample_data/predictions/new.csv", usecols=["id", "pred"], dtype={"id": str})
    both = old.merge(new, on="id")
    assert rep["labels"] is True
    assert rep["n_changed_predictions"] == int((both["pred_x"] != both["pred_y"]).sum())
    assert rep["churn_transition_matrix"] == rep["transition_matrix"]  # rows old prediction, columns new
    # every negative and positive flip changes the prediction
    assert rep["n_changed_predictions"] >= rep["n_negative_flips"] + rep["n_positive_flips"]


def test_api_arrays_without_data_are_compared_without_labels():
    rng = np.random.default_rng(3)
    lo, ln = rng.normal(size=(50, 4)).astype(np.float32), rng.normal(size=(50, 4)).astype(np.float32)
    stages = []
    u = graceful_core.compare(lo, ln, progress=lambda s, d, t: stages.append(s))
    assert isinstance(u, UnlabelledComparison)
    assert u.churn.n_changed == int((lo.argmax(1) != ln.argmax(1)).sum())
    p_old = np.exp(lo) / np.exp(lo).sum(1, keepdims=True)
    assert u.samples()["old_conf"].to_numpy() == pytest.approx(p_old.max(1), rel=1e-5)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=60))
def test_churn_matches_brute_force(rows):
    o, n, r = (np.array(c) for c in zip(*rows))
    pc = prediction_churn(o, n, 4)
    assert pc.n_changed == sum(a != b for a, b in zip(o, n))
    for a in range(4):
        assert pc.per_class["changed"][a] == sum(x == a and y != a for x, y in zip(o, n))
    c = churn_against_reference(o, n, r, reference_name="r")
    assert c.update_only == sum(x != y and x == z for x, y, z in zip(o, n, r))
    assert c.reference_only == sum(x == y and x != z for x, y, z in zip(o, n, r))


def test_a_streamed_comparison_without_labels_says_how_to_get_one(unlabelled):
    from graceful_core.errors import InputError

    d = unlabelled
    with pytest.raises(InputError, match=r"no true labels.*--stream never"):
        graceful_core.compare(d / "old.parquet", d / "new.parquet", stream=True)
