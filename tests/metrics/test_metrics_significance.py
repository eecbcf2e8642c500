"""Tests of graceful_core.metrics.significance against hand values and scipy."""

from __future__ import annotations

import math
from fractions import Fraction
from math import comb

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest, norm

from graceful_core.metrics.significance import mcnemar_p_value, wilson_interval


# ------------------------------------------------------------------------ McNemar
def _exact_mcnemar(b: int, c: int) -> float:
    """Exact rational reference: min(1, 2 * sum_{i <= min(b,c)} C(b+c, i) / 2^(b+c))."""
    total = b + c
    if total == 0:
        return 1.0
    tail = Fraction(sum(comb(total, i) for i in range(min(b, c) + 1)), 2**total)
    return float(min(Fraction(1), 2 * tail))


def test_mcnemar_hand_values():
    assert mcnemar_p_value(0, 0) == 1.0
    assert mcnemar_p_value(0, 5) == pytest.approx(2 / 32)  # 2 * (1/2)^5
    assert mcnemar_p_value(5, 0) == pytest.approx(2 / 32)
    assert mcnemar_p_value(1, 9) == pytest.approx(2 * 11 / 1024)  # 2 * (1 + 10) / 2^10
    assert mcnemar_p_value(3, 2) == 1.0  # 2 * (1 + 5 + 10) / 32 = 1
    assert mcnemar_p_value(7, 7) == 1.0
    assert mcnemar_p_value(0, 1) == 1.0


@pytest.mark.parametrize(
    "b, c",
    [
        (0, 0),
        (0, 1),
        (1, 0),
        (0, 20),
        (3, 17),
        (10, 10),
        (50, 80),
        (123, 100),
        (400, 1000),
        (2000, 2100),
        (0, 10_000),
        (49_000, 51_000),
        (4_990_000, 5_010_000),
        (5_000_000, 5_000_000),
        (3_000_000, 7_000_000),
    ],
)
def test_mcnemar_matches_scipy_binomtest(b, c):
    expected = 1.0 if b + c == 0 else binomtest(min(b, c), b + c, 0.5).pvalue
    got = mcnemar_p_value(b, c)
    assert 0.0 <= got <= 1.0
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-300)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 300), st.integers(0, 300))
def test_mcnemar_matches_exact_rational(b, c):
    assert mcnemar_p_value(b, c) == pytest.approx(_exact_mcnemar(b, c), rel=1e-9, abs=1e-300)
    assert mcnemar_p_value(b, c) == mcnemar_p_value(c, b)


def test_mcnemar_accepts_numpy_ints_and_rejects_bad_input():
    assert mcnemar_p_value(np.int64(0), np.int32(5)) == pytest.approx(2 / 32)
    for bad in ((-1, 3), (1.5, 3), ("3", 4), (None, 1)):
        with pytest.raises(ValueError):
            mcnemar_p_value(*bad)


# ------------------------------------------------------------------------- Wilson
def _wilson_reference(k: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson (1927) as the roots of (p_hat - p)^2 = z^2 p (1 - p) / n, a quadratic in p."""
    z = norm.ppf(1 - (1 - confidence) / 2)
    p_hat = k / n
    # (1 + z^2/n) p^2 - (2 p_hat + z^2/n) p + p_hat^2 = 0
    a = 1 + z * z / n
    b = -(2 * p_hat + z * z / n)
    c = p_hat * p_hat
    disc = math.sqrt(max(0.0, b * b - 4 * a * c))
    return ((-b - disc) / (2 * a), (-b + disc) / (2 * a))


def test_wilson_hand_value():
    low, high = wilson_interval(5, 100)
    assert low == pytest.approx(0.02154, abs=5e-6)
    assert high == pytest.approx(0.11175, abs=5e-6)
    # the same by the textbook formula, z = 1.959964 from scipy
    z = norm.ppf(0.975)
    p = 0.05
    centre = (p + z**2 / 200) / (1 + z**2 / 100)
    half = z / (1 + z**2 / 100) * math.sqrt(p * (1 - p) / 100 + z**2 / (4 * 100**2))
    assert (low, high) == pytest.approx((centre - half, centre + half), rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10_000), st.data(), st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_wilson_matches_quadratic_roots(n, data, confidence):
    k = data.draw(st.integers(0, n))
    low, high = wilson_interval(k, n, confidence)
    ref_low, ref_high = _wilson_reference(k, n, confidence)
    assert low == pytest.approx(ref_low, abs=1e-9)
    assert high == pytest.approx(ref_high, abs=1e-9)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_edges():
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and 0 < high < 1
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and 0 < low < 1
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    # wider at higher confidence
    assert wilson_interval(5, 100, 0.99)[0] < wilson_interval(5, 100, 0.95)[0]


@pytest.mark.parametrize(
    "k, n, conf", [(5, 4, 0.95), (-1, 4, 0.95), (1, -1, 0.95), (1, 4, 1.0), (1, 4, 0.0), (1.0, 4, 0.95)]
)
def test_wilson_rejects_bad_input(k, n, conf):
    with pytest.raises(ValueError):
        wilson_interval(k, n, conf)
