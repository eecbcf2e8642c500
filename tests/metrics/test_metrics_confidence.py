"""Tests of graceful_core.metrics.confidence: argmax ties, validation, softmax, flip split."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.special import softmax

from graceful_core.metrics import confidence as cf


# -------------------------------------------------------------------------- argmax
def test_argmax_ties_go_to_lowest_index():
    scores = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [3.0, 3.0, 3.0], [0.0, -1.0, 5.0]], dtype=np.float32)
    out = cf.argmax_lowest(scores)
    assert out.dtype == np.int64
    assert out.tolist() == [0, 1, 0, 2]


@settings(max_examples=100, deadline=None)
@given(
    hnp.arrays(np.int8, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6), elements=st.integers(-2, 2))
)
def test_argmax_matches_first_maximum_loop(scores):
    expected = [min(j for j, v in enumerate(row) if v == max(row)) for row in scores.tolist()]
    assert cf.argmax_lowest(scores).tolist() == expected


def test_argmax_chunked_path(monkeypatch):
    monkeypatch.setattr(cf, "_CHUNK_ENTRIES", 6)  # 2 rows of 3 per chunk
    scores = np.array([[0, 1, 0], [2, 2, 0], [0, 0, 1], [5, 1, 5], [1, 1, 1]], dtype=np.float64)
    assert cf.argmax_lowest(scores).tolist() == [1, 0, 2, 0, 0]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_argmax_rejects_non_finite(bad):
    scores = np.zeros((3, 4))
    scores[2, 1] = bad
    with pytest.raises(ValueError, match="scores contain NaN or infinite values"):
        cf.argmax_lowest(scores)


def test_argmax_rejects_bad_shapes():
    with pytest.raises(ValueError, match="2-D"):
        cf.argmax_lowest(np.zeros(4))
    with pytest.raises(ValueError, match="2-D"):
        cf.argmax_lowest(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="no classes"):
        cf.argmax_lowest(np.zeros((3, 0)))
    assert cf.argmax_lowest(np.zeros((0, 3))).shape == (0,)


# -------------------------------------------------------------------- p_true
def test_true_class_probability_logits_hand():
    # logits (0, ln 3) -> probabilities (1/4, 3/4); logits (0, 0, 0) -> 1/3 each
    scores = np.array([[0.0, math.log(3.0)]])
    p = cf.true_class_probability(scores, "logits", [0])
    assert p.tolist() == pytest.approx([0.25])
    p = cf.true_class_probability(np.zeros((2, 3), np.float32), "logits", [2, 0])
    assert p.tolist() == pytest.approx([1 / 3, 1 / 3])


def test_true_class_probability_stable_for_huge_logits():
    scores = np.array([[1000.0, 0.0], [-1000.0, -1000.0 + math.log(3.0)]])
    p = cf.true_class_probability(scores, "logits", [0, 1])
    assert p == pytest.approx([1.0, 0.75])
    assert np.isfinite(p).all()


def test_true_class_probability_matches_scipy_softmax_and_does_not_mutate(monkeypatch):
    monkeypatch.setattr(cf, "_CHUNK_ENTRIES", 10)  # several chunks of 2 rows
    rng = np.random.default_rng(1)
    scores = rng.normal(scale=4, size=(11, 5))
    before = scores.copy()
    y = rng.integers(0, 5, size=11)
    expected = softmax(scores, axis=1)[np.arange(11), y]
    np.testing.assert_allclose(cf.true_class_probability(scores, "logits", y), expected, rtol=1e-12)
    np.testing.assert_array_equal(scores, before)


def test_true_class_probability_probs_taken_as_is():
    probs = np.array([[0.2, 0.8], [0.6, 0.4]], dtype=np.float32)
    p = cf.true_class_probability(probs, "probs", np.array([1, 1]))
    assert p.dtype == np.float64
    assert p.tolist() == pytest.approx([0.8, 0.4])


def test_true_class_probability_validation():
    with pytest.raises(ValueError, match="kind"):
        cf.true_class_probability(np.zeros((1, 2)), "softmax", [0])
    with pytest.raises(ValueError, match="outside"):
        cf.true_class_probability(np.zeros((1, 2)), "logits", [2])
    with pytest.raises(ValueError, match="one label per row"):
        cf.true_class_probability(np.zeros((2, 2)), "logits", [0])
    with pytest.raises(ValueError, match="NaN or infinite"):
        cf.true_class_probability(np.array([[np.nan, 0.0]]), "logits", [0])


# -------------------------------------------------------------- confidence split
# Same 10 samples as tests/metrics/test_metrics_flips.py; negative flips are i1, i6, i8.
Y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
O = np.array([0, 1, 2, 1, 1, 0, 0, 2, 2, 1])
N = np.array([0, 2, 2, 0, 1, 0, 1, 1, 0, 2])


def test_split_from_true_probs_hand_case():
    old_p = np.full(10, 0.9)
    new_p = np.full(10, 0.1)  # drop 0.8 everywhere: must be ignored outside the flips
    old_p[[1, 6, 8]] = [0.55, 0.75, 0.625]
    new_p[[1, 6, 8]] = [0.50, 0.25, 0.375]
    # drops: i1 0.05 (near), i6 0.5 exactly (confident: >=), i8 0.25 (neither)
    out = cf.flip_confidence_split_from_true_probs(Y, O, N, old_p, new_p)
    assert out == {"negative_flips_near_boundary": 1, "negative_flips_confident": 1}
    assert all(type(v) is int for v in out.values())
    # custom thresholds: near < 0.3 catches i1 and i8; confident >= 0.3 catches i6 only
    out = cf.flip_confidence_split_from_true_probs(Y, O, N, old_p, new_p, near=0.3, confident=0.3)
    assert out == {"negative_flips_near_boundary": 2, "negative_flips_confident": 1}
    # a negative drop (new more sure of the true class, yet wrong) is near the boundary
    new_p[6] = 0.8
    out = cf.flip_confidence_split_from_true_probs(Y, O, N, old_p, new_p)
    assert out == {"negative_flips_near_boundary": 2, "negative_flips_confident": 0}


def test_split_from_scores_hand_case():
    # Two-class logits for a single negative flip: old (0, ln 9) -> p_true(class 1) = 0.9,
    # new (ln 4, 0) -> p_true(class 1) = 0.2; drop 0.7 -> confident.
    y, o, n = np.array([1, 0]), np.array([1, 1]), np.array([0, 1])
    old_logits = np.array([[0.0, math.log(9.0)], [0.0, 0.0]])
    new_logits = np.array([[math.log(4.0), 0.0], [0.0, 0.0]])
    out = cf.flip_confidence_split(y, o, n, old_logits, new_logits)
    assert out == {"negative_flips_near_boundary": 0, "negative_flips_confident": 1}
    # the same from probabilities; drop 0.52 - 0.48 = 0.04 -> near
    old_probs = np.array([[0.48, 0.52], [0.5, 0.5]])
    new_probs = np.array([[0.52, 0.48], [0.5, 0.5]])
    out = cf.flip_confidence_split(y, o, n, old_probs, new_probs, kind="probs")
    assert out == {"negative_flips_near_boundary": 1, "negative_flips_confident": 0}


def test_split_no_flips_and_validation():
    y = np.array([0, 1])
    out = cf.flip_confidence_split_from_true_probs(y, y, y, [0.9, 0.9], [0.1, 0.1])
    assert out == {"negative_flips_near_boundary": 0, "negative_flips_confident": 0}
    with pytest.raises(ValueError, match="length"):
        cf.flip_confidence_split_from_true_probs(y, y, y, [0.9], [0.1, 0.1])
    with pytest.raises(ValueError, match="NaN"):
        cf.flip_confidence_split_from_true_probs(y, y, y, [np.nan, 0.9], [0.1, 0.1])
    with pytest.raises(ValueError, match="near <= confident"):
        cf.flip_confidence_split_from_true_probs(y, y, y, [0.9, 0.9], [0.1, 0.1], near=0.6, confident=0.5)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 25), st.data())
def test_split_against_loop(size, data):
    ints = st.lists(st.integers(0, 2), min_size=size, max_size=size)
    probs = st.lists(st.floats(0, 1), min_size=size, max_size=size)
    y, o, n = data.draw(ints), data.draw(ints), data.draw(ints)
    po, pn = data.draw(probs), data.draw(probs)
    near = confident = 0
    for i in range(size):
        if o[i] == y[i] and n[i] != y[i]:
            d = po[i] - pn[i]
            near += d < 0.1
            confident += d >= 0.5
    out = cf.flip_confidence_split_from_true_probs(
        np.array(y, dtype=np.int64),
        np.array(o, dtype=np.int64),
        np.array(n, dtype=np.int64),
        np.array(po),
        np.array(pn),
    )
    assert out == {"negative_flips_near_boundary": near, "negative_flips_confident": confident}
