"""The Comparison object on synthetic predictions, checked against direct NumPy counts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import binomtest

from graceful_core.comparison import compare_predictions
from graceful_core.errors import InputError
from graceful_core.types import Predictions


def _preds(ids, pred, classes, labels=None, scores=None, emb=None, source="x.csv"):
    return Predictions(ids=np.asarray(ids, dtype=object), pred=np.asarray(pred, dtype=np.int64), classes=list(classes),
                       labels=None if labels is None else np.asarray(labels, dtype=np.int64),
                       scores=scores, score_kind=None if scores is None else "logits", embedding=emb, source=source)


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
    c = compare_predictions(_preds(ids, [0, 0, 1], "xy", y, scores=old_logits),
                            _preds(ids, [1, 1, 1], "xy", scores=new_logits))
    s = c.summary
    assert s.n_negative_flips == 2
    assert s.negative_flips_near_boundary == 1  # drop 0.06 < 0.1
    assert s.negative_flips_confident == 1  # drop 0.94 >= 0.5
    df = c.samples()
    assert list(df["flip"]) == ["negative flip", "negative flip", "both correct"]
    assert df["old_p_true"].to_numpy() == pytest.approx([0.55, 0.99, 0.8], abs=1e-5)
