"""Is a difference real? Paired test and interval for the flip metrics (``docs/metrics.md``).

- :func:`mcnemar_p_value`: exact two-sided McNemar test on the discordant pairs
  (negative flips vs positive flips) of the paired old/new predictions.
- :func:`wilson_interval`: Wilson score interval for a binomial proportion, used for the
  negative and positive flip rates and for backward trust compatibility.

``scipy.stats`` is imported inside the functions so that importing
:mod:`graceful_core.metrics` stays light.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["mcnemar_p_value", "wilson_interval"]


def _non_negative_int(value: Any, name: str) -> int:
    """``value`` as a Python int, or ValueError unless it is a non-negative integer."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    v = int(value.__index__())
    if v < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {v}")
    return v


def mcnemar_p_value(n_negative_flips: int, n_positive_flips: int) -> float:
    """Exact two-sided McNemar test of "old and new are equally accurate".

    Under the null hypothesis each discordant sample (a negative flip ``b`` or a positive
    flip ``c``) is equally likely to go either way, so ``b ~ Binomial(b + c, 1/2)``. The
    exact (binomial) two-sided p-value is

    .. math:: p = \\min\\bigl(1,\\; 2\\,F(\\min(b, c);\\, b + c,\\, 1/2)\\bigr)

    with F the binomial CDF; ``p = 1`` when ``b + c = 0``. Because the null distribution
    is symmetric this equals ``scipy.stats.binomtest(min(b, c), b + c, 0.5).pvalue``.
    McNemar, "Note on the sampling error of the difference between correlated
    proportions or percentages", Psychometrika 12, 1947.

    Parameters
    ----------
    n_negative_flips, n_positive_flips : int
        The discordant counts b and c (non-negative). Any size: the CDF is evaluated in
        closed form (regularised incomplete beta), not by summation.

    Returns
    -------
    float
        The p-value in ``[0, 1]``.

    Examples
    --------
    >>> mcnemar_p_value(0, 0)
    1.0
    >>> round(mcnemar_p_value(2, 10), 4)  # = scipy.stats.binomtest(2, 12, 0.5).pvalue
    0.0386
    """
    b = _non_negative_int(n_negative_flips, "n_negative_flips")
    c = _non_negative_int(n_positive_flips, "n_positive_flips")
    total = b + c
    if total == 0:
        return 1.0
    from scipy.special import betainc  # lighter to import than scipy.stats

    k = min(b, c)
    # F(k; n, 1/2) = I_{1/2}(n - k, k + 1), the regularised incomplete beta function
    return float(min(1.0, 2.0 * float(betainc(total - k, k + 1, 0.5))))


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / n``.

    With ``p = k / n`` and ``z`` the ``1 - (1 - confidence) / 2`` quantile of the standard
    normal distribution,

    .. math::

        \\text{centre} = \\frac{p + z^2 / (2n)}{1 + z^2 / n}, \\qquad
        \\text{half-width} = \\frac{z}{1 + z^2 / n}\\sqrt{\\frac{p(1 - p)}{n} + \\frac{z^2}{4n^2}}

    and the interval is ``centre -/+ half-width`` (exactly 0 at ``k = 0``, exactly 1 at ``k = n``).
    Unlike the normal ("Wald") interval it stays inside ``[0, 1]`` and is not degenerate at
    ``k = 0`` or ``k = n``. Wilson, "Probable inference, the law of succession, and
    statistical inference", JASA 22, 1927.

    Parameters
    ----------
    k : int
        Successes, ``0 <= k <= n``.
    n : int
        Trials, ``n >= 0``.
    confidence : float
        Coverage, strictly between 0 and 1.

    Returns
    -------
    (low, high) : tuple of float
        ``(nan, nan)`` when ``n == 0``.

    Examples
    --------
    >>> lo, hi = wilson_interval(3, 540)
    >>> round(lo, 5), round(hi, 5)
    (0.00189, 0.01621)
    >>> wilson_interval(0, 10)[0]
    0.0
    """
    k = _non_negative_int(k, "k")
    n = _non_negative_int(n, "n")
    if k > n:
        raise ValueError(f"k must not exceed n, got k={k}, n={n}")
    conf = float(confidence)
    if not (0.0 < conf < 1.0):
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    if n == 0:
        return (float("nan"), float("nan"))
    from scipy.special import ndtri  # the standard normal quantile

    z = float(ndtri(1.0 - (1.0 - conf) / 2.0))
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denom
    half = (z / denom) * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    # The bounds are exactly 0 at k = 0 and exactly 1 at k = n; do not leave rounding noise.
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return (low, high)
