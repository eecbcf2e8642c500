"""The Comparison object on synthetic predictions, checked against direct NumPy counts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import binomtest

from graceful_core.comparing.predictions import compare_predictions
from graceful_core.errors import InputError
from graceful_core.report.html import write_html_report
from tests.helpers import predictions


def _preds(ids, pred, classes, labels=None, scores=None, emb=None, source="x.csv"):
    return predictions(ids, pred, classes=classes, labels=labels, scores=scores, embedding=emb, source=source)


def test_small_known_case():
    # 8 samples; by hand: old right on 0,1,2,3,4; new right on 0,1,5,6 -> NF = {2,3,4}, PF = {5,6}.
    y = [0, 1, 2, 0, 1, 2, 0, 1]
    o = [0, 1, 2, 0, 1, 0, 1, 2]
    n = [0, 1, 0, 1, 2, 2, 0, 0]
    ids = [f"s{i}" for i in range(8)]
    c = compare_predictions(_preds(ids, o, "abc", y), _preds(ids, n, "abc"))
    s = c.summary
    assert s.n_negative_flips == 3 and s.n_positive_flips == 2
    assert s.negative_flip_rate == pytest.approx(3 / 8)
    assert s.positive_flip_rate == pytest.approx(2 / 8)
    assert s.old_error_rate == pytest.approx(3 / 8) and s.new_error_rate == pytest.approx(4 / 8)
    assert s.relative_negative_flip_rate == pytest.approx((3 / 8) / ((5 / 8) * (4 / 8)))
    assert s.negative_flip_impact == pytest.approx(3 / 4)
    assert s.backward_trust_compatibility == pytest.approx(2 / 5)
    assert s.backward_error_compatibility == pytest.approx(1 / 4)
    assert s.old_error_persistence == pytest.approx(1 / 3)
    assert s.mcnemar_p_value == pytest.approx(binomtest(2, 5, 0.5).pvalue)
    rep = c.to_report()
    assert rep["negative_flips"] == ["s2", "s3", "s4"] and rep["positive_flips"] == ["s5", "s6"]
    tm = np.zeros((3, 3), int)
    for a, b in zip(o, n):
        tm[a, b] += 1
    assert rep["transition_matrix"] == tm.tolist()
    assert rep["negative_flips_near_boundary"] is None  # no scores on either side
    json.dumps(rep, allow_nan=False)  # strict JSON: no NaN anywhere


def test_new_in_other_class_order_and_join_on_id():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    o = np.where(rng.random(200) < 0.8, y, rng.integers(0, 4, 200))
    n = np.where(rng.random(200) < 0.85, y, rng.integers(0, 4, 200))
    ids = np.array([f"id{i}" for i in range(200)], dtype=object)
    classes = ["cat", "dog", "eel", "fox"]
    perm = rng.permutation(200)
    new_classes = ["fox", "eel", "dog", "cat"]  # reversed order
    to_new = {i: new_classes.index(c) for i, c in enumerate(classes)}
    n_re = np.array([to_new[v] for v in n])
    c = compare_predictions(_preds(ids, o, classes, y), _preds(ids[perm], n_re[perm], new_classes, source="n.csv"))
    assert c.summary.negative_flip_rate == pytest.approx(((o == y) & (n != y)).mean())
    assert c.summary.positive_flip_rate == pytest.approx(((o != y) & (n == y)).mean())
    assert list(c.arrays.ids) == list(ids)


def test_disjoint_class_sets_are_an_error():
    with pytest.raises(InputError, match="class names differ"):
        compare_predictions(_preds(["a"], [0], ["x", "y"], [0]), _preds(["a"], [0], ["x", "z"], source="n.csv"))


def test_no_labels_is_an_error():
    with pytest.raises(InputError, match="no true labels"):
        compare_predictions(_preds(["a", "b"], [0, 1], "xy"), _preds(["a", "b"], [1, 1], "xy"))


def test_confidence_split_with_scores():
    # Two negative flips: one with a small drop in p_true, one confident.
    ids = ["a", "b", "c"]
    y = [0, 0, 1]
    old_logits = np.log(np.array([[0.55, 0.45], [0.99, 0.01], [0.2, 0.8]], dtype=np.float32))
    new_logits = np.log(np.array([[0.49, 0.51], [0.05, 0.95], [0.2, 0.8]], dtype=np.float32))
    c = compare_predictions(
        _preds(ids, [0, 0, 1], "xy", y, scores=old_logits), _preds(ids, [1, 1, 1], "xy", scores=new_logits)
    )
    s = c.summary
    assert s.n_negative_flips == 2
    assert s.negative_flips_near_boundary == 1  # drop 0.06 < 0.1
    assert s.negative_flips_confident == 1  # drop 0.94 >= 0.5
    df = c.samples()
    assert list(df["flip"]) == ["negative flip", "negative flip", "both correct"]
    assert df["old_p_true"].to_numpy() == pytest.approx([0.55, 0.99, 0.8], abs=1e-5)


# ------------------------------------------------------------------ the frozen, complete result
def _random_case(seed=0, n=300, k=4, emb_dim=None):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    o = np.where(rng.random(n) < 0.8, y, rng.integers(0, k, n))
    nw = np.where(rng.random(n) < 0.85, y, rng.integers(0, k, n))
    ids = np.array([f"id{i:04d}" for i in range(n)], dtype=object)
    eo = en = None
    if emb_dim:
        eo = rng.normal(size=(n, emb_dim)).astype(np.float32)
        en = (eo + 0.5 * rng.normal(size=(n, emb_dim))).astype(np.float32)
    classes = [f"c{i}" for i in range(k)]
    return y, o, nw, ids, classes, eo, en


def test_the_comparison_is_frozen_and_its_arrays_read_only():
    import dataclasses

    y, o, n, ids, classes, _, _ = _random_case()
    c = compare_predictions(_preds(ids, o, classes, y), _preds(ids, n, classes))
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.old_name = "x"
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.summary.negative_flip_rate = 0.0
    for arr in (
        c.arrays.labels,
        c.arrays.old_pred,
        c.transition_matrix,
        c.per_class.negative_flips,
        c.counts.transition,
        c.counts.per_class,
    ):
        with pytest.raises(ValueError):
            arr[0] = 1
    assert isinstance(c.classes, tuple)


def test_summary_and_tables_equal_brute_force_loops():
    y, o, n, ids, classes, _, _ = _random_case(seed=3)
    c = compare_predictions(_preds(ids, o, classes, y), _preds(ids, n, classes))
    s, N = c.summary, len(y)
    nf = sum(1 for a, b, t in zip(o, n, y) if a == t and b != t)
    pf = sum(1 for a, b, t in zip(o, n, y) if a != t and b == t)
    both = sum(1 for a, b, t in zip(o, n, y) if a == t and b == t)
    old_ok, new_ok = both + nf, both + pf
    assert (s.n_samples, s.n_negative_flips, s.n_positive_flips, s.n_old_correct, s.n_new_correct) == (
        N,
        nf,
        pf,
        old_ok,
        new_ok,
    )
    assert s.relative_negative_flip_rate == pytest.approx((nf / N) / ((old_ok / N) * (1 - new_ok / N)))
    assert s.backward_error_compatibility == pytest.approx((N - old_ok - pf) / (N - new_ok))
    assert s.mcnemar_p_value == pytest.approx(binomtest(min(nf, pf), nf + pf, 0.5).pvalue, rel=1e-9)
    for k, name in enumerate(classes):
        in_k = [i for i in range(N) if y[i] == k]
        row = c.per_class.to_frame().set_index("class").loc[name]
        assert row["support"] == len(in_k)
        assert row["negative_flips"] == sum(1 for i in in_k if o[i] == k and n[i] != k)
        assert row["new_accuracy"] == pytest.approx(sum(1 for i in in_k if n[i] == k) / len(in_k))
    assert c.flip_ids.negative == tuple(sorted(str(ids[i]) for i in range(N) if o[i] == y[i] and n[i] != y[i]))


def test_a_comparison_from_counts_alone_reports_what_the_arrays_report():
    """The streamed path: counts accumulated piece by piece, flip ids, no per-sample arrays."""
    from graceful_core.metrics.counts import FlipCounts
    from graceful_core.results.comparison import Comparison, FlipIds

    y, o, n, ids, classes, _, _ = _random_case(seed=5)
    full = compare_predictions(_preds(ids, o, classes, y), _preds(ids, n, classes), old_name="a", new_name="b")
    pieces = [
        FlipCounts.from_predictions(y[i : i + 64], o[i : i + 64], n[i : i + 64], len(classes))
        for i in range(0, len(y), 64)
    ]
    counts = sum(pieces[1:], pieces[0])
    streamed = Comparison(old_name="a", new_name="b", classes=classes, counts=counts, flip_ids=full.flip_ids)
    assert streamed.arrays is None and streamed.summary == full.summary
    assert streamed.to_report() == full.to_report()
    assert streamed.flips()["id"].tolist() == list(full.flip_ids.negative)
    with pytest.raises(ValueError, match="per-sample arrays"):
        streamed.samples()
    capped = Comparison(
        old_name="a",
        new_name="b",
        classes=classes,
        counts=counts,
        flip_ids=FlipIds(
            full.flip_ids.negative[:2],
            (),
            full.summary.n_negative_flips,
            full.summary.n_positive_flips,
            cap=2,
            parquet="flips.parquet",
        ),
    )
    rep = capped.to_report()
    assert rep["negative_flips"] == list(full.flip_ids.negative[:2]) and rep["flip_ids_cap"] == 2
    assert rep["n_negative_flips"] == full.summary.n_negative_flips


def test_pandas_views_and_the_json_of_to_dict():
    y, o, n, ids, classes, _, _ = _random_case(seed=7)
    c = compare_predictions(_preds(ids, o, classes, y), _preds(ids, n, classes))
    assert c.to_dict() == c.to_report()
    neg = c.flips("negative flip")
    assert neg["id"].tolist() == list(c.flip_ids.negative) and set(neg["flip"]) == {"negative flip"}
    assert (neg["old_pred"] == neg["label"]).all() and (neg["new_pred"] != neg["label"]).all()
    pos = c.flips("positive flip")
    assert pos["id"].tolist() == list(c.flip_ids.positive)
    frame = c.per_class.to_frame()
    frame.loc[0, "support"] = -1  # a copy: the comparison is unchanged
    assert c.per_class.support[0] >= 0
    with pytest.raises(ValueError, match="kind"):
        c.flips("both wrong")


def test_embedding_overlap_equals_brute_force_and_is_in_the_report():
    y, o, n, ids, classes, eo, en = _random_case(seed=11, n=120, emb_dim=8)
    c = compare_predictions(_preds(ids, o, classes, y, emb=eo), _preds(ids, n, classes, emb=en))
    a = eo / np.linalg.norm(eo, axis=1, keepdims=True)
    b = en / np.linalg.norm(en, axis=1, keepdims=True)
    expected = float(np.mean(np.argmax(b @ a.T, axis=1) == np.arange(len(y))))
    assert c.embedding_overlap == pytest.approx(expected, abs=1e-12)
    assert c.to_report()["embedding_overlap"] == pytest.approx(expected, abs=1e-12)
    wide = compare_predictions(_preds(ids, o, classes, y, emb=eo), _preds(ids, n, classes, emb=np.hstack([en, en])))
    assert wide.embedding_overlap is None and wide.to_report()["embedding_overlap"] is None
    none = compare_predictions(_preds(ids, o, classes, y), _preds(ids, n, classes))
    assert none.to_report()["embedding_overlap"] is None and "compatibility" not in none.to_report()


def test_optional_analyses_add_their_keys_and_nothing_else_changes():
    import dataclasses

    from graceful_core.metrics.churn import churn_floor

    y, o, n, ids, classes, _, _ = _random_case(seed=13)
    base = compare_predictions(_preds(ids, o, classes, y), _preds(ids, n, classes))
    cf = churn_floor(y, o, n, o, reference_name="old2.pt")  # a "retrain" identical to old: floor 0

    class Slice:
        def to_json(self):
            return {"kind": "metadata", "column": "site", "value": "a", "size": 10, "p_value": float("nan")}

    more = dataclasses.replace(base, churn_floor=cf, regression_slices=[Slice()])
    rep, plain = more.to_report(), base.to_report()
    assert rep["churn_floor"] == 0.0 and rep["churn_floor_ci95"][0] == 0.0 and rep["churn_floor_reference"] == "old2.pt"
    churn_keys = set(cf.to_json())
    assert rep["regression_slices"] == [
        {"kind": "metadata", "column": "site", "value": "a", "size": 10, "p_value": None}
    ]  # cleaned like every other number
    assert {k: v for k, v in rep.items() if k not in churn_keys | {"churn_floor", "regression_slices"}} == plain
    assert "churn_floor" not in plain and "regression_slices" not in plain


def test_write_html_report_writes_the_report_atomically(tmp_path):
    y, o, n, ids, classes, _, _ = _random_case(seed=17, n=40)
    c = compare_predictions(_preds(ids, o, classes, y), _preds(ids, n, classes), old_name="v1", new_name="v2")
    out = tmp_path / "r.html"
    write_html_report(c, out, max_flips=3)
    doc = out.read_text(encoding="utf-8")
    assert doc.startswith("<!DOCTYPE html>") and "v1 → v2" in doc
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]
    with pytest.raises(ValueError):
        write_html_report(c, tmp_path / "bad.html", max_flips=-1)
    assert not (tmp_path / "bad.html").exists()
