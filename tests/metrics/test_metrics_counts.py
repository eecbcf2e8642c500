"""FlipCounts against brute-force loops and the array metrics, and exact merging."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graceful_core.metrics import flips as fm
from graceful_core.metrics.counts import FlipCounts


@st.composite
def predictions(draw):
    k = draw(st.integers(1, 5))
    rows = draw(st.lists(st.tuples(st.integers(0, k - 1), st.integers(0, k - 1), st.integers(0, k - 1)), max_size=60))
    arr = np.array(rows, dtype=np.int64).reshape(-1, 3)
    return k, arr[:, 0], arr[:, 1], arr[:, 2]


@settings(max_examples=150, deadline=None)
@given(predictions())
def test_counts_equal_brute_force_loops(case):
    k, y, o, n = case
    c = FlipCounts.from_predictions(y, o, n, k)
    nf = sum(1 for yi, oi, ni in zip(y, o, n) if oi == yi and ni != yi)
    pf = sum(1 for yi, oi, ni in zip(y, o, n) if oi != yi and ni == yi)
    bw = sum(1 for yi, oi, ni in zip(y, o, n) if oi != yi and ni != yi)
    assert (c.n_samples, c.negative_flips, c.positive_flips, c.both_wrong) == (len(y), nf, pf, bw)
    assert c.old_correct == int(np.sum(o == y)) and c.new_correct == int(np.sum(n == y))
    np.testing.assert_array_equal(c.transition_matrix, fm.transition_matrix(o, n, k))
    assert c.both_correct == sum(1 for yi, oi, ni in zip(y, o, n) if oi == yi and ni == yi)
    if len(y):
        pc = fm.per_class_flips(y, o, n, k)
        np.testing.assert_array_equal(c.support_per_class, pc["support"])
        np.testing.assert_array_equal(c.negative_flips_per_class, pc["negative_flips"])
        np.testing.assert_array_equal(c.positive_flips_per_class, pc["positive_flips"])


@settings(max_examples=100, deadline=None)
@given(predictions(), st.integers(0, 60))
def test_counts_of_two_pieces_add_to_the_counts_of_the_whole(case, cut):
    k, y, o, n = case
    cut = min(cut, len(y))
    whole = FlipCounts.from_predictions(y, o, n, k)
    a = FlipCounts.from_predictions(y[:cut], o[:cut], n[:cut], k)
    b = FlipCounts.from_predictions(y[cut:], o[cut:], n[cut:], k)
    assert a + b == whole
    assert FlipCounts.zeros(k) + whole == whole


def test_storage_stays_quadratic_in_the_number_of_classes():
    k = 1000
    y = np.arange(5000) % k
    c = FlipCounts.from_predictions(y, y, (y + 1) % k, k)
    assert c.transition.nbytes + c.per_class.nbytes <= 8 * (k * k + 4 * k)
    assert c.negative_flips == 5000 and c.positive_flips == 0


def test_confidence_split_adds_and_none_absorbs():
    a = FlipCounts.zeros(2, with_confidence=True)
    b = FlipCounts(np.zeros((2, 2), dtype=np.int64), np.zeros((4, 2), dtype=np.int64), 3, 1)
    assert (a + b).negative_flips_near_boundary == 3 and (a + b).negative_flips_confident == 1
    assert (FlipCounts.zeros(2) + b).negative_flips_near_boundary is None


def test_counts_are_read_only_and_checked():
    c = FlipCounts.from_predictions([0, 1], [0, 0], [1, 1], 2)
    with pytest.raises(ValueError):
        c.transition[0, 0] = 5
    with pytest.raises(ValueError):
        c.per_class[0, 0] = 5
    with pytest.raises(ValueError, match="shape"):
        FlipCounts(np.zeros((2, 3), dtype=np.int64), np.zeros((4, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="shape"):
        FlipCounts(np.zeros((2, 2), dtype=np.int64), np.zeros((4, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="inconsistent"):
        FlipCounts(np.array([[1, 0], [0, 0]]), np.array([[1, 0], [2, 0], [0, 0], [0, 0]]))
    with pytest.raises(ValueError, match="different numbers"):
        FlipCounts(np.array([[1, 0], [0, 1]]), np.array([[1, 0], [0, 0], [0, 0], [0, 0]]))
    with pytest.raises(ValueError, match="outside"):
        FlipCounts.from_predictions([0, 2], [0, 0], [1, 1], 2)
    with pytest.raises(ValueError, match="cannot add"):
        c + FlipCounts.zeros(3)
