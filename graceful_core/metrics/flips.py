"""Negative and positive flips between an old and a new classifier (``docs/metrics.md``).

Functional API in the style of ``sklearn.metrics``: every function takes 1-D integer
class-index arrays ``y_true``, ``old_pred`` and ``new_pred`` of equal length and returns a
number, a mask or a table of counts. Everything is vectorised (masks, ``np.count_nonzero``,
``np.bincount``), so 10 million samples take well under a second per metric.

Notation: N samples, labels ``y_i``, old predictions ``o_i``, new predictions ``n_i``.
A *negative flip* is a sample the old model classified correctly and the new one does
not (``o_i = y_i and n_i != y_i``); a *positive flip* is the reverse. Flip rates are
taken over all N samples, as in Yan et al., "Positive-Congruent Training: Towards
Regression-Free Model Updates", CVPR 2021.

A ratio whose denominator is zero (including N = 0) is undefined and returned as
``float("nan")``.

Each pairwise formula is written once, as a function of the 2x2 correctness counts
(``*_from_counts``, taking any :class:`Correctness`); the array functions count and call
it, and :func:`graceful_core.metrics.summary.flip_summary` calls it on the joint counts
of :class:`graceful_core.metrics.counts.FlipCounts`, so the in-memory and the streamed
comparison cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

__all__ = [
    "Correctness",
    "CorrectnessCounts",
    "correctness_counts",
    "accuracy",
    "error_rate",
    "negative_flip_mask",
    "positive_flip_mask",
    "negative_flip_rate",
    "positive_flip_rate",
    "relative_negative_flip_rate",
    "negative_flip_impact",
    "transition_matrix",
    "per_class_flips",
    "per_slice_flips",
    "per_class_from_counts",
]


# --------------------------------------------------------------------- validation
def as_label_array(values: Any, name: str) -> np.ndarray:
    """Return ``values`` as a 1-D int64 array of class indices (no copy when already int64).

    Parameters
    ----------
    values : array_like
        1-D array of class indices: any integer or boolean dtype, or floats whose values
        are all whole numbers (e.g. labels read from a CSV column with a float dtype).
    name : str
        Name of the argument, used in error messages.

    Raises
    ------
    ValueError
        If ``values`` is not 1-D, or is not integer-valued.
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {arr.shape}")
    kind = arr.dtype.kind
    if kind in "iub":
        if kind == "u" and arr.dtype.itemsize >= 8 and arr.size and arr.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{name} has class indices too large for int64")
        return arr.astype(np.int64, copy=False)
    if kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinite values; class indices must be integers")
        as_int = arr.astype(np.int64)
        if not np.array_equal(as_int, arr):
            raise ValueError(f"{name} contains non-integer values; class indices must be integers")
        return as_int
    raise ValueError(f"{name} must contain integer class indices, got dtype {arr.dtype}")


def validate_predictions(y_true: Any, old_pred: Any, new_pred: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check and convert the three class-index arrays shared by all flip metrics.

    Returns
    -------
    (y_true, old_pred, new_pred) : three 1-D int64 arrays of equal length.

    Raises
    ------
    ValueError
        If an array is not 1-D, not integer-valued, or the lengths differ.
    """
    y = as_label_array(y_true, "y_true")
    o = as_label_array(old_pred, "old_pred")
    n = as_label_array(new_pred, "new_pred")
    if not (y.shape[0] == o.shape[0] == n.shape[0]):
        raise ValueError(
            f"y_true, old_pred and new_pred must have equal length, got {y.shape[0]}, {o.shape[0]}, {n.shape[0]}"
        )
    return y, o, n


def _validate_pair(y_true: Any, pred: Any) -> tuple[np.ndarray, np.ndarray]:
    y = as_label_array(y_true, "y_true")
    p = as_label_array(pred, "pred")
    if y.shape[0] != p.shape[0]:
        raise ValueError(f"y_true and pred must have equal length, got {y.shape[0]} and {p.shape[0]}")
    return y, p


def _check_range(arr: np.ndarray, name: str, n_classes: int) -> None:
    """Raise ValueError unless every entry of ``arr`` lies in ``[0, n_classes)``."""
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise ValueError(f"{name} has class indices outside [0, {n_classes}): min {arr.min()}, max {arr.max()}")


def _check_n_classes(n_classes: Any) -> int:
    if isinstance(n_classes, (bool, np.bool_)) or not isinstance(n_classes, (int, np.integer)):
        raise ValueError(f"n_classes must be an integer, got {n_classes!r}")
    if n_classes < 1:
        raise ValueError(f"n_classes must be at least 1, got {n_classes}")
    return int(n_classes)


def _ratio(num: float, den: float) -> float:
    """``num / den`` as a float, nan when ``den`` is 0."""
    return float(num) / float(den) if den else float("nan")


# ------------------------------------------------------------------------ counts
class Correctness(Protocol):
    """The 2x2 table of old/new correctness every pairwise flip metric is a function of.

    :class:`CorrectnessCounts` (from arrays) and
    :class:`graceful_core.metrics.counts.FlipCounts` (joint counts, mergeable) both
    provide it, so each formula below is written once for both.
    """

    @property
    def n_samples(self) -> int: ...
    @property
    def old_correct(self) -> int: ...
    @property
    def new_correct(self) -> int: ...
    @property
    def both_correct(self) -> int: ...
    @property
    def negative_flips(self) -> int: ...
    @property
    def positive_flips(self) -> int: ...
    @property
    def both_wrong(self) -> int: ...


@dataclass(frozen=True)
class CorrectnessCounts:
    """Counts of the four (old right?, new right?) cells; see :class:`Correctness`.

    Examples
    --------
    >>> c = correctness_counts([0, 1, 1, 0], [0, 1, 0, 0], [1, 1, 1, 0])
    >>> c.both_correct, c.negative_flips, c.positive_flips, c.both_wrong
    (2, 1, 1, 0)
    """

    both_correct: int
    negative_flips: int
    positive_flips: int
    both_wrong: int

    @property
    def n_samples(self) -> int:
        return self.both_correct + self.negative_flips + self.positive_flips + self.both_wrong

    @property
    def old_correct(self) -> int:
        return self.both_correct + self.negative_flips

    @property
    def new_correct(self) -> int:
        return self.both_correct + self.positive_flips


def correctness_counts(y_true: Any, old_pred: Any, new_pred: Any) -> CorrectnessCounts:
    """The 2x2 correctness table of three class-index arrays (validated together).

    Returns
    -------
    CorrectnessCounts
        ``both_correct = Σ 1[o_i = y_i ∧ n_i = y_i]``, ``negative_flips = Σ 1[o_i = y_i ∧ n_i ≠ y_i]``,
        ``positive_flips = Σ 1[o_i ≠ y_i ∧ n_i = y_i]``, ``both_wrong`` the rest.
    """
    y, o, n = validate_predictions(y_true, old_pred, new_pred)
    old_ok = o == y
    new_ok = n == y
    both = int(np.count_nonzero(old_ok & new_ok))
    old_c = int(np.count_nonzero(old_ok))
    new_c = int(np.count_nonzero(new_ok))
    return CorrectnessCounts(both, old_c - both, new_c - both, int(y.shape[0]) - old_c - new_c + both)


# ------------------------------------------------------------------ error rates
def accuracy_from_counts(correct: int, n_samples: int) -> float:
    """Accuracy ``correct / N``; nan when N = 0.

    >>> accuracy_from_counts(3, 4)
    0.75
    """
    return _ratio(correct, n_samples)


def error_rate_from_counts(correct: int, n_samples: int) -> float:
    """Error rate ``ER = (N - correct) / N = 1 - accuracy``; nan when N = 0.

    >>> error_rate_from_counts(3, 4)
    0.25
    """
    return _ratio(n_samples - correct, n_samples)


def error_rate(y_true: Any, pred: Any) -> float:
    """Error rate ``ER = (1/N) Σ_i 1[pred_i ≠ y_i]`` (``docs/metrics.md``); nan when N = 0.

    Parameters
    ----------
    y_true, pred : array-like of int, shape (N,)
        True and predicted class indices.

    Examples
    --------
    >>> error_rate([0, 1, 2, 2], [0, 1, 1, 2])
    0.25
    """
    y, p = _validate_pair(y_true, pred)
    return error_rate_from_counts(int(np.count_nonzero(p == y)), y.shape[0])


def accuracy(y_true: Any, pred: Any) -> float:
    """Accuracy ``(1/N) Σ_i 1[pred_i = y_i] = 1 - ER`` (``docs/metrics.md``); nan when N = 0.

    Examples
    --------
    >>> accuracy([0, 1, 2, 2], [0, 1, 1, 2])
    0.75
    """
    y, p = _validate_pair(y_true, pred)
    return accuracy_from_counts(int(np.count_nonzero(p == y)), y.shape[0])


# ------------------------------------------------------------------------ masks
def negative_flip_mask(y_true: Any, old_pred: Any, new_pred: Any) -> np.ndarray:
    """Boolean mask of negative flips, ``o_i = y_i ∧ n_i ≠ y_i``.

    Examples
    --------
    >>> negative_flip_mask([0, 1, 1, 0], [0, 1, 0, 0], [1, 1, 1, 0]).tolist()
    [True, False, False, False]
    """
    y, o, n = validate_predictions(y_true, old_pred, new_pred)
    return (o == y) & (n != y)


def positive_flip_mask(y_true: Any, old_pred: Any, new_pred: Any) -> np.ndarray:
    """Boolean mask of positive flips, ``o_i ≠ y_i ∧ n_i = y_i``.

    Examples
    --------
    >>> positive_flip_mask([0, 1, 1, 0], [0, 1, 0, 0], [1, 1, 1, 0]).tolist()
    [False, False, True, False]
    """
    y, o, n = validate_predictions(y_true, old_pred, new_pred)
    return (o != y) & (n == y)


# ------------------------------------------------------------------------ rates
def negative_flip_rate_from_counts(c: Correctness) -> float:
    """``NFR = #negative flips / N``; nan when N = 0 (:func:`negative_flip_rate`)."""
    return _ratio(c.negative_flips, c.n_samples)


def positive_flip_rate_from_counts(c: Correctness) -> float:
    """``PFR = #positive flips / N``; nan when N = 0 (:func:`positive_flip_rate`)."""
    return _ratio(c.positive_flips, c.n_samples)


def relative_negative_flip_rate_from_counts(c: Correctness) -> float:
    """``NFR / ((1 - ER_old) · ER_new)`` in exact integers: ``NF · N / (#old right · #new wrong)``."""
    return _ratio(c.negative_flips * c.n_samples, c.old_correct * (c.n_samples - c.new_correct))


def negative_flip_impact_from_counts(c: Correctness) -> float:
    """``NFI = #negative flips / #new errors``; nan when the new model makes no error."""
    return _ratio(c.negative_flips, c.n_samples - c.new_correct)


def negative_flip_rate(y_true: Any, old_pred: Any, new_pred: Any) -> float:
    """Negative flip rate ``NFR = (1/N) Σ_i 1[o_i = y_i ∧ n_i ≠ y_i]``.

    Over all N samples, as defined by Yan et al., "Positive-Congruent Training: Towards
    Regression-Free Model Updates", CVPR 2021 (``docs/metrics.md``). nan when N = 0.

    Parameters
    ----------
    y_true, old_pred, new_pred : array-like of int, shape (N,)
        True labels and both models' predictions, as class indices.

    Examples
    --------
    >>> negative_flip_rate([0, 1, 1, 0], [0, 1, 0, 0], [1, 1, 1, 0])
    0.25
    """
    return negative_flip_rate_from_counts(correctness_counts(y_true, old_pred, new_pred))


def positive_flip_rate(y_true: Any, old_pred: Any, new_pred: Any) -> float:
    """Positive flip rate ``PFR = (1/N) Σ_i 1[o_i ≠ y_i ∧ n_i = y_i]``; nan when N = 0.

    Identity: ``ER_new - ER_old = NFR - PFR`` (``docs/metrics.md``).

    Examples
    --------
    >>> positive_flip_rate([0, 1, 1, 0], [0, 0, 0, 0], [1, 1, 1, 0])
    0.5
    """
    return positive_flip_rate_from_counts(correctness_counts(y_true, old_pred, new_pred))


def relative_negative_flip_rate(y_true: Any, old_pred: Any, new_pred: Any) -> float:
    """Relative negative flip rate ``NFR / ((1 - ER_old) · ER_new)``.

    The NFR that two models with *independent* errors would show is
    ``(1 - ER_old) · ER_new``; the ratio says how far the update is from that (Yan et al.,
    CVPR 2021; ``docs/metrics.md``). nan when N = 0, the old model is always wrong or the
    new model never is.

    Examples
    --------
    Old right on 3 of 4, new wrong on 2 of 4, one negative flip:
    NFR / (3/4 · 2/4) = (1/4) / (3/8).

    >>> round(relative_negative_flip_rate([0, 1, 1, 0], [0, 1, 1, 1], [1, 1, 1, 1]), 4)
    0.6667
    """
    return relative_negative_flip_rate_from_counts(correctness_counts(y_true, old_pred, new_pred))


def negative_flip_impact(y_true: Any, old_pred: Any, new_pred: Any) -> float:
    """Negative flip impact ``NFI = NFR / ER_new = #negative flips / #new errors``.

    The share of the new model's errors that are regressions (``docs/metrics.md``). nan
    when the new model makes no error (or N = 0).

    Examples
    --------
    >>> negative_flip_impact([0, 1, 1, 0], [0, 1, 1, 1], [1, 1, 1, 1])
    0.5
    """
    return negative_flip_impact_from_counts(correctness_counts(y_true, old_pred, new_pred))


# --------------------------------------------------------------------- matrices
def transition_matrix(
    old_pred: Any,
    new_pred: Any,
    n_classes: int,
    *,
    y_true: Any = None,
    where: Any = None,
) -> np.ndarray:
    """Counts of (old prediction, new prediction) pairs: ``T[a, b] = sum_i 1[o_i = a and n_i = b]``.

    Parameters
    ----------
    old_pred, new_pred : array_like of int, shape (N,)
        Class indices in ``[0, n_classes)``.
    n_classes : int
        K, the number of classes.
    y_true : array_like of int, shape (N,), optional
        Accepted for symmetry with the other functions; only validated (shape), it does
        not restrict the count. Pass e.g. ``where=(old_pred == y_true)`` to split by
        whether the old model was right.
    where : array_like of bool, shape (N,), optional
        Count only the samples where this mask is True.

    Returns
    -------
    np.ndarray
        int64 ``[K, K]``; row = old prediction, column = new prediction. It sums to the
        number of counted samples; its trace is the number of samples on which the two
        models agree.

    Examples
    --------
    >>> transition_matrix([0, 0, 1, 2], [0, 1, 1, 0], 3).tolist()
    [[1, 1, 0], [0, 1, 0], [1, 0, 0]]
    """
    k = _check_n_classes(n_classes)
    o = as_label_array(old_pred, "old_pred")
    n = as_label_array(new_pred, "new_pred")
    if o.shape[0] != n.shape[0]:
        raise ValueError(f"old_pred and new_pred must have equal length, got {o.shape[0]} and {n.shape[0]}")
    if y_true is not None:
        y = as_label_array(y_true, "y_true")
        if y.shape[0] != o.shape[0]:
            raise ValueError(f"y_true must have the same length as old_pred, got {y.shape[0]} and {o.shape[0]}")
    _check_range(o, "old_pred", k)
    _check_range(n, "new_pred", k)
    if where is not None:
        mask = np.asarray(where)
        if mask.dtype != np.bool_ or mask.shape != o.shape:
            raise ValueError(f"where must be a boolean array of shape {o.shape}, got {mask.dtype} {mask.shape}")
        o, n = o[mask], n[mask]
    flat = o * k + n
    return np.bincount(flat, minlength=k * k).astype(np.int64, copy=False).reshape(k, k)


def group_rates(
    support: np.ndarray,
    negative_flips: np.ndarray,
    positive_flips: np.ndarray,
    old_correct: np.ndarray,
    new_correct: np.ndarray,
) -> dict[str, np.ndarray]:
    """The per-group table from per-group counts: rates are counts over the group's support.

    ``negative_flip_rate[g] = negative_flips[g] / support[g]`` (likewise for positive
    flips), ``old_accuracy[g] = old_correct[g] / support[g]``; nan where the support is 0.
    The one formula of every per-class and per-slice table (``docs/metrics.md``).
    """
    support = np.asarray(support, dtype=np.int64)
    den = np.where(support > 0, support, 1).astype(np.float64)

    def rate(c: np.ndarray) -> np.ndarray:
        return np.where(support > 0, np.asarray(c) / den, np.nan)

    return {
        "support": support,
        "negative_flips": np.asarray(negative_flips, dtype=np.int64),
        "positive_flips": np.asarray(positive_flips, dtype=np.int64),
        "negative_flip_rate": rate(negative_flips),
        "positive_flip_rate": rate(positive_flips),
        "old_accuracy": rate(old_correct),
        "new_accuracy": rate(new_correct),
    }


def _grouped_flips(
    groups: np.ndarray, n_groups: int, y: np.ndarray, o: np.ndarray, n: np.ndarray
) -> dict[str, np.ndarray]:
    """Flip counts and rates per group (``groups`` are validated indices in ``[0, n_groups)``)."""
    old_ok = o == y
    new_ok = n == y

    def count(mask: np.ndarray | None = None) -> np.ndarray:
        g = groups if mask is None else groups[mask]
        return np.bincount(g, minlength=n_groups).astype(np.int64, copy=False)

    return group_rates(count(), count(old_ok & ~new_ok), count(~old_ok & new_ok), count(old_ok), count(new_ok))


def per_class_from_counts(counts: Any) -> dict[str, np.ndarray]:
    """:func:`per_class_flips` from joint counts (:class:`~graceful_core.metrics.counts.FlipCounts`).

    Examples
    --------
    >>> from graceful_core.metrics.counts import FlipCounts
    >>> c = FlipCounts.from_predictions([0, 0, 1, 1], [0, 0, 0, 1], [1, 0, 1, 1], n_classes=2)
    >>> t = per_class_from_counts(c)
    >>> t["support"].tolist(), t["negative_flips"].tolist(), t["negative_flip_rate"].tolist()
    ([2, 2], [1, 0], [0.5, 0.0])
    """
    return group_rates(
        counts.support_per_class,
        counts.negative_flips_per_class,
        counts.positive_flips_per_class,
        counts.old_correct_per_class,
        counts.new_correct_per_class,
    )


def per_class_flips(y_true: Any, old_pred: Any, new_pred: Any, n_classes: int) -> dict[str, np.ndarray]:
    """Flip counts and rates restricted to the samples of each true class.

    For class c with support ``S_c = sum_i 1[y_i = c]``:
    ``negative_flips[c] = sum_i 1[y_i = c and o_i = c and n_i != c]``,
    ``negative_flip_rate[c] = negative_flips[c] / S_c`` (and likewise for positive flips),
    ``old_accuracy[c] = sum_i 1[y_i = c and o_i = c] / S_c``.

    Returns
    -------
    dict of np.ndarray, each of length K
        ``support``, ``negative_flips``, ``positive_flips`` (int64);
        ``negative_flip_rate``, ``positive_flip_rate``, ``old_accuracy``, ``new_accuracy``
        (float64, nan where the support is 0).

    Examples
    --------
    >>> t = per_class_flips([0, 0, 1, 1], [0, 0, 0, 1], [1, 0, 1, 1], n_classes=2)
    >>> t["negative_flips"].tolist(), t["positive_flips"].tolist()
    ([1, 0], [0, 1])
    """
    k = _check_n_classes(n_classes)
    y, o, n = validate_predictions(y_true, old_pred, new_pred)
    _check_range(y, "y_true", k)
    _check_range(o, "old_pred", k)
    _check_range(n, "new_pred", k)
    return _grouped_flips(y, k, y, o, n)


def per_slice_flips(y_true: Any, old_pred: Any, new_pred: Any, slices: Any) -> dict[str, np.ndarray]:
    """Flip counts and rates restricted to the samples of each slice.

    Parameters
    ----------
    y_true, old_pred, new_pred : array_like of int, shape (N,)
    slices : array_like, shape (N,)
        Any hashable slice value per sample (strings or integers). Missing values
        (None / NaN) form a slice of their own, listed last.

    Returns
    -------
    dict of np.ndarray
        The keys of :func:`per_class_flips`, one entry per distinct slice, plus
        ``slice``: the distinct slice values, sorted.

    Examples
    --------
    >>> t = per_slice_flips([0, 0, 1, 1], [0, 0, 0, 1], [1, 0, 1, 1], ["day", "night", "day", "day"])
    >>> t["slice"].tolist(), t["support"].tolist(), t["negative_flips"].tolist()
    (['day', 'night'], [3, 1], [1, 0])
    """
    y, o, n = validate_predictions(y_true, old_pred, new_pred)
    s = np.asarray(slices)
    if s.ndim != 1 or s.shape[0] != y.shape[0]:
        raise ValueError(f"slices must be a 1-D array of length {y.shape[0]}, got shape {s.shape}")
    try:
        codes, uniques = pd.factorize(s, sort=True, use_na_sentinel=False)
    except TypeError as exc:  # unorderable mix of types, e.g. ints and strings
        raise ValueError(f"slices mix values that cannot be sorted together: {exc}") from exc
    codes = np.asarray(codes, dtype=np.int64)
    out = _grouped_flips(codes, len(uniques), y, o, n)
    return {"slice": np.asarray(uniques), **out}
