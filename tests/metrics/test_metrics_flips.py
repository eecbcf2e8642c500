"""Tests of graceful_core.metrics.flips and graceful_core.metrics.compatibility.

Expected values are counted by hand (the 10-sample example below), derived from the
identities of docs/metrics.md, or brute-forced with plain Python loops.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graceful_core.metrics import compatibility as cm
from graceful_core.metrics import flips as fm

# ----------------------------------------------------------------------------------
# The hand example. Per sample (y, o, n) and its status:
#  i0 (0,0,0) both correct     i5 (2,0,0) both wrong
#  i1 (1,1,2) NEGATIVE flip    i6 (0,0,1) NEGATIVE flip
#  i2 (2,2,2) both correct     i7 (1,2,1) positive flip
#  i3 (0,1,0) positive flip    i8 (2,2,0) NEGATIVE flip
#  i4 (1,1,1) both correct     i9 (0,1,2) both wrong
# NF = 3, PF = 2, both correct = 3, both wrong = 2.
# old correct = 6 (ER_old = 0.4), new correct = 5 (ER_new = 0.5).
Y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
O = np.array([0, 1, 2, 1, 1, 0, 0, 2, 2, 1])
N = np.array([0, 2, 2, 0, 1, 0, 1, 1, 0, 2])
SLICES = np.array(["day", "night", "day", "day", "night", "night", "day", "night", "day", "day"])


def test_hand_example_scalars():
    assert fm.error_rate(Y, O) == pytest.approx(0.4)
    assert fm.error_rate(Y, N) == pytest.approx(0.5)
    assert fm.accuracy(Y, O) == pytest.approx(0.6)
    assert fm.accuracy(Y, N) == pytest.approx(0.5)
    assert fm.negative_flip_rate(Y, O, N) == pytest.approx(0.3)
    assert fm.positive_flip_rate(Y, O, N) == pytest.approx(0.2)
    # 0.3 / (0.6 * 0.5)
    assert fm.relative_negative_flip_rate(Y, O, N) == pytest.approx(1.0)
    # 0.3 / 0.5
    assert fm.negative_flip_impact(Y, O, N) == pytest.approx(0.6)
    # both correct 3 / old correct 6
    assert cm.backward_trust_compatibility(Y, O, N) == pytest.approx(0.5)
    # both wrong 2 / new wrong 5
    assert cm.backward_error_compatibility(Y, O, N) == pytest.approx(0.4)
    # both wrong 2 / old wrong 4
    assert cm.old_error_persistence(Y, O, N) == pytest.approx(0.5)


def test_hand_example_masks():
    assert np.flatnonzero(fm.negative_flip_mask(Y, O, N)).tolist() == [1, 6, 8]
    assert np.flatnonzero(fm.positive_flip_mask(Y, O, N)).tolist() == [3, 7]
    assert fm.negative_flip_mask(Y, O, N).dtype == np.bool_


def test_hand_example_transition_matrix():
    # (o, n) pairs: (0,0) (1,2) (2,2) (1,0) (1,1) (0,0) (0,1) (2,1) (2,0) (1,2)
    expected = np.array([[2, 1, 0], [1, 1, 2], [1, 1, 1]])
    t = fm.transition_matrix(O, N, 3)
    assert t.dtype == np.int64
    np.testing.assert_array_equal(t, expected)
    assert t.sum() == 10
    assert np.trace(t) == int(np.sum(O == N))  # agreements: i0, i2, i4, i5
    assert t.sum() - np.trace(t) == int(np.sum(O != N))
    # restricted to old-correct samples i0 i1 i2 i4 i6 i8: (0,0) (1,2) (2,2) (1,1) (0,1) (2,0)
    t_ok = fm.transition_matrix(O, N, 3, y_true=Y, where=O == Y)
    np.testing.assert_array_equal(t_ok, [[1, 1, 0], [0, 1, 1], [1, 0, 1]])
    # y_true alone does not restrict
    np.testing.assert_array_equal(fm.transition_matrix(O, N, 3, y_true=Y), expected)
    # split by old-correct adds up to the whole
    np.testing.assert_array_equal(t_ok + fm.transition_matrix(O, N, 3, where=O != Y), expected)


def test_hand_example_per_class():
    d = fm.per_class_flips(Y, O, N, 3)
    np.testing.assert_array_equal(d["support"], [4, 3, 3])
    np.testing.assert_array_equal(d["negative_flips"], [1, 1, 1])
    np.testing.assert_array_equal(d["positive_flips"], [1, 1, 0])
    np.testing.assert_allclose(d["negative_flip_rate"], [1 / 4, 1 / 3, 1 / 3])
    np.testing.assert_allclose(d["positive_flip_rate"], [1 / 4, 1 / 3, 0])
    np.testing.assert_allclose(d["old_accuracy"], [2 / 4, 2 / 3, 2 / 3])
    np.testing.assert_allclose(d["new_accuracy"], [2 / 4, 2 / 3, 1 / 3])
    for key in ("support", "negative_flips", "positive_flips"):
        assert d[key].dtype == np.int64


def test_per_class_empty_class_is_nan():
    d = fm.per_class_flips(Y, O, N, 4)  # class 3 has no samples
    assert d["support"][3] == 0 and d["negative_flips"][3] == 0
    for key in ("negative_flip_rate", "positive_flip_rate", "old_accuracy", "new_accuracy"):
        assert len(d[key]) == 4
        assert math.isnan(d[key][3])
        assert not np.isnan(d[key][:3]).any()


def test_hand_example_per_slice():
    d = fm.per_slice_flips(Y, O, N, SLICES)
    assert list(d["slice"]) == ["day", "night"]
    # day: i0 i2 i3 i6 i8 i9; night: i1 i4 i5 i7
    np.testing.assert_array_equal(d["support"], [6, 4])
    np.testing.assert_array_equal(d["negative_flips"], [2, 1])
    np.testing.assert_array_equal(d["positive_flips"], [1, 1])
    np.testing.assert_allclose(d["negative_flip_rate"], [2 / 6, 1 / 4])
    np.testing.assert_allclose(d["old_accuracy"], [4 / 6, 2 / 4])
    np.testing.assert_allclose(d["new_accuracy"], [3 / 6, 2 / 4])


def test_per_slice_integer_slices_sorted():
    s = np.array([5, 2, 5, 2, 9, 9, 2, 5, 9, 2])
    d = fm.per_slice_flips(Y, O, N, s)
    assert list(d["slice"]) == [2, 5, 9]
    # slice 2: i1 i3 i6 i9 -> NF i1 i6, PF i3; slice 5: i0 i2 i7 -> PF i7; slice 9: i4 i5 i8 -> NF i8
    np.testing.assert_array_equal(d["support"], [4, 3, 3])
    np.testing.assert_array_equal(d["negative_flips"], [2, 0, 1])
    np.testing.assert_array_equal(d["positive_flips"], [1, 1, 0])


def test_per_slice_missing_values_form_own_group():
    s = np.array(["a", None, "a", "a", None, "b", "a", "b", "a", "a"], dtype=object)
    d = fm.per_slice_flips(Y, O, N, s)
    assert list(d["slice"][:2]) == ["a", "b"]
    assert len(d["slice"]) == 3
    assert d["support"].tolist() == [6, 2, 2]


def test_identities_hand_example():
    er_old, er_new = fm.error_rate(Y, O), fm.error_rate(Y, N)
    nfr, pfr = fm.negative_flip_rate(Y, O, N), fm.positive_flip_rate(Y, O, N)
    assert er_new - er_old == pytest.approx(nfr - pfr)
    assert cm.backward_error_compatibility(Y, O, N) == pytest.approx(1 - fm.negative_flip_impact(Y, O, N))


def test_undefined_ratios_are_nan():
    e = np.array([], dtype=np.int64)
    for f in (
        fm.negative_flip_rate,
        fm.positive_flip_rate,
        fm.relative_negative_flip_rate,
        fm.negative_flip_impact,
        cm.backward_trust_compatibility,
        cm.backward_error_compatibility,
        cm.old_error_persistence,
    ):
        assert math.isnan(f(e, e, e))
    assert math.isnan(fm.error_rate(e, e)) and math.isnan(fm.accuracy(e, e))
    y = np.array([0, 1, 1])
    perfect = y.copy()
    wrong = 1 - y
    # new never wrong: NFI, BEC, relative NFR undefined
    assert math.isnan(fm.negative_flip_impact(y, wrong, perfect))
    assert math.isnan(cm.backward_error_compatibility(y, wrong, perfect))
    assert math.isnan(fm.relative_negative_flip_rate(y, wrong, perfect))
    # old never right: BTC undefined; old never wrong: persistence undefined
    assert math.isnan(cm.backward_trust_compatibility(y, wrong, perfect))
    assert math.isnan(cm.old_error_persistence(y, perfect, wrong))
    assert fm.transition_matrix(e, e, 2).tolist() == [[0, 0], [0, 0]]


# ----------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "y, o, n, match",
    [
        (np.zeros((2, 2), int), np.zeros(4, int), np.zeros(4, int), "1-D"),
        (np.zeros(3, int), np.zeros(4, int), np.zeros(4, int), "equal length"),
        (np.array([0.5, 1.0]), np.zeros(2, int), np.zeros(2, int), "non-integer"),
        (np.array([np.nan, 1.0]), np.zeros(2, int), np.zeros(2, int), "NaN"),
        (np.array(["a", "b"]), np.zeros(2, int), np.zeros(2, int), "integer class indices"),
    ],
)
def test_validation_errors(y, o, n, match):
    with pytest.raises(ValueError, match=match):
        fm.negative_flip_rate(y, o, n)
    with pytest.raises(ValueError, match=match):
        cm.backward_trust_compatibility(y, o, n)


def test_integral_floats_and_small_ints_accepted():
    assert fm.negative_flip_rate(Y.astype(float), O.astype(np.int8), N.astype(np.uint16)) == pytest.approx(0.3)
    assert fm.negative_flip_rate(Y.tolist(), O.tolist(), N.tolist()) == pytest.approx(0.3)


def test_index_range_validation():
    with pytest.raises(ValueError, match=r"outside \[0, 2\)"):
        fm.transition_matrix(O, N, 2)
    with pytest.raises(ValueError, match="outside"):
        fm.transition_matrix(np.array([-1]), np.array([0]), 2)
    with pytest.raises(ValueError, match="outside"):
        fm.per_class_flips(Y, O, N, 2)
    with pytest.raises(ValueError, match="n_classes"):
        fm.transition_matrix(O, N, 0)
    with pytest.raises(ValueError, match="where"):
        fm.transition_matrix(O, N, 3, where=np.ones(3, bool))
    with pytest.raises(ValueError, match="slices"):
        fm.per_slice_flips(Y, O, N, SLICES[:5])


# ---------------------------------------------------------------- property tests
def _brute(y, o, n, k):
    """Plain-Python reference for every count."""
    nf = pf = old_ok = new_ok = both_ok = both_wrong = 0
    t = [[0] * k for _ in range(k)]
    per = {c: dict(s=0, nf=0, pf=0) for c in range(k)}
    for yi, oi, ni in zip(y, o, n):
        t[oi][ni] += 1
        per[yi]["s"] += 1
        if oi == yi:
            old_ok += 1
        if ni == yi:
            new_ok += 1
        if oi == yi and ni != yi:
            nf += 1
            per[yi]["nf"] += 1
        if oi != yi and ni == yi:
            pf += 1
            per[yi]["pf"] += 1
        if oi == yi and ni == yi:
            both_ok += 1
        if oi != yi and ni != yi:
            both_wrong += 1
    return dict(nf=nf, pf=pf, old_ok=old_ok, new_ok=new_ok, both_ok=both_ok, both_wrong=both_wrong, t=t, per=per)


def _div(a, b):
    return a / b if b else math.nan


def _same(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b)


@st.composite
def label_triples(draw):
    k = draw(st.integers(1, 5))
    size = draw(st.integers(0, 30))
    lab = st.lists(st.integers(0, k - 1), min_size=size, max_size=size)
    return k, draw(lab), draw(lab), draw(lab)


@settings(max_examples=200, deadline=None)
@given(label_triples())
def test_against_brute_force(triple):
    k, y, o, n = triple
    b = _brute(y, o, n, k)
    size = len(y)
    ya, oa, na = (np.array(v, dtype=np.int64) for v in (y, o, n))
    assert _same(fm.negative_flip_rate(ya, oa, na), _div(b["nf"], size))
    assert _same(fm.positive_flip_rate(ya, oa, na), _div(b["pf"], size))
    assert _same(fm.error_rate(ya, oa), _div(size - b["old_ok"], size))
    assert _same(fm.accuracy(ya, na), _div(b["new_ok"], size))
    er_old, er_new = _div(size - b["old_ok"], size), _div(size - b["new_ok"], size)
    assert _same(fm.negative_flip_impact(ya, oa, na), _div(_div(b["nf"], size), er_new))
    assert _same(
        fm.relative_negative_flip_rate(ya, oa, na),
        _div(_div(b["nf"], size), (1 - er_old) * er_new) if size else math.nan,
    )
    assert _same(cm.backward_trust_compatibility(ya, oa, na), _div(b["both_ok"], b["old_ok"]))
    assert _same(cm.backward_error_compatibility(ya, oa, na), _div(b["both_wrong"], size - b["new_ok"]))
    assert _same(cm.old_error_persistence(ya, oa, na), _div(b["both_wrong"], size - b["old_ok"]))
    np.testing.assert_array_equal(fm.transition_matrix(oa, na, k), np.array(b["t"], dtype=np.int64).reshape(k, k))
    d = fm.per_class_flips(ya, oa, na, k)
    assert d["support"].tolist() == [b["per"][c]["s"] for c in range(k)]
    assert d["negative_flips"].tolist() == [b["per"][c]["nf"] for c in range(k)]
    assert d["positive_flips"].tolist() == [b["per"][c]["pf"] for c in range(k)]
    for c in range(k):
        assert _same(d["negative_flip_rate"][c], _div(b["per"][c]["nf"], b["per"][c]["s"]))


@settings(max_examples=200, deadline=None)
@given(label_triples())
def test_identities(triple):
    k, y, o, n = triple
    ya, oa, na = (np.array(v, dtype=np.int64) for v in (y, o, n))
    size = len(y)
    if size:
        lhs = fm.error_rate(ya, na) - fm.error_rate(ya, oa)
        rhs = fm.negative_flip_rate(ya, oa, na) - fm.positive_flip_rate(ya, oa, na)
        assert lhs == pytest.approx(rhs, abs=1e-12)
    nf = int(fm.negative_flip_mask(ya, oa, na).sum())
    old_ok = int((oa == ya).sum())
    btc = cm.backward_trust_compatibility(ya, oa, na)
    assert _same(btc, 1 - nf / old_ok if old_ok else math.nan)
    nfi = fm.negative_flip_impact(ya, oa, na)
    bec = cm.backward_error_compatibility(ya, oa, na)
    assert _same(bec, 1 - nfi)
    d = fm.per_class_flips(ya, oa, na, k)
    assert d["negative_flips"].sum() == nf
    assert d["positive_flips"].sum() == int(fm.positive_flip_mask(ya, oa, na).sum())
    assert d["support"].sum() == size
    t = fm.transition_matrix(oa, na, k, y_true=ya)
    assert t.sum() == size
    assert np.trace(t) == sum(1 for a, b in zip(o, n) if a == b)


@settings(max_examples=100, deadline=None)
@given(label_triples(), st.data())
def test_per_slice_against_brute_force(triple, data):
    k, y, o, n = triple
    s = data.draw(st.lists(st.sampled_from(["x", "y", "z"]), min_size=len(y), max_size=len(y)))
    d = fm.per_slice_flips(
        np.array(y, dtype=np.int64), np.array(o, dtype=np.int64), np.array(n, dtype=np.int64), np.array(s)
    )
    names = sorted(set(s))
    assert list(d["slice"]) == names
    for j, name in enumerate(names):
        idx = [i for i in range(len(y)) if s[i] == name]
        assert d["support"][j] == len(idx)
        assert d["negative_flips"][j] == sum(1 for i in idx if o[i] == y[i] and n[i] != y[i])
        assert d["positive_flips"][j] == sum(1 for i in idx if o[i] != y[i] and n[i] == y[i])
        assert d["new_accuracy"][j] == pytest.approx(sum(1 for i in idx if n[i] == y[i]) / len(idx))


# --------------------------------------------------------------------------- scale
def test_ten_million_rows():
    """NFR on 10**7 rows, where the flips are placed by construction.

    First half: old correct; second half: old wrong. Every third sample: new wrong.
    Negative flips are the samples i < N/2 with i % 3 == 0: ceil((N/2) / 3) of them.
    """
    size, k = 10**7, 10
    rng = np.random.default_rng(0)
    y = rng.integers(0, k, size=size)
    wrong = (y + 1) % k
    i = np.arange(size)
    o = np.where(i < size // 2, y, wrong)
    n = np.where(i % 3 == 0, wrong, y)
    expected_nf = -(-(size // 2) // 3)
    assert fm.negative_flip_rate(y, o, n) == pytest.approx(expected_nf / size, rel=1e-12)
    assert fm.transition_matrix(o, n, k).sum() == size
