"""Negative and positive flips between an old and a new classifier (DESIGN §2).

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
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = [
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


def validate_predictions(
    y_true: Any, old_pred: Any, new_pred: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
        raise ValueError(
            f"{name} has class indices outside [0, {n_classes}): min {arr.min()}, max {arr.max()}"
        )


def _check_n_classes(n_classes: Any) -> int:
    if isinstance(n_classes, (bool, np.bool_)) or not isinstance(n_classes, (int, np.integer)):
        raise ValueError(f"n_classes must be an integer, got {n_classes!r}")
    if n_classes < 1:
        raise ValueError(f"n_classes must be at least 1, got {n_classes}")
    return int(n_classes)


def _ratio(num: float, den: float) -> float:
    """``num / den`` as a float, nan when ``den`` is 0."""
    return float(num) / float(den) if den else float("nan")


# ------------------------------------------------------------------ error rates
def error_rate(y_true: Any, pred: Any) -> float:
    """Error rate ``ER = (1/N) sum_i 1[pred_i != y_i]``; nan when N = 0."""
    y, p = _validate_pair(y_true, pred)
    return _ratio(np.count_nonzero(p != y), y.shape[0])


def accuracy(y_true: Any, pred: Any) -> float:
    """Accuracy ``(1/N) sum_i 1[pred_i = y_i] = 1 - ER``; nan when N = 0."""
    y, p = _validate_pair(y_true, pred)
    return _ratio(np.count_nonzero(p == y), y.shape[0])


# ------------------------------------------------------------------------ masks
def negative_flip_mask(y_true: Any, old_pred: Any, new_pred: Any) -> np.ndarray:
    """Boolean mask of negative flips, ``o_i = y_i and n_i != y_i``."""
    y, o, n = validate_predictions(y_true, old_pred, new_pred)
    return (o == y) & (n != y)


def positive_flip_mask(y_true: Any, old_pred: Any, new_pred: Any) -> np.ndarray:
    """Boolean mask of positive flips, ``o_i != y_i and n_i = y_i``."""
    y, o, n = validate_predictions(y_true, old_pred, new_pred)
    return (o != y) & (n == y)


# ------------------------------------------------------------------------ rates
def negative_flip_rate(y_true: Any, old_pred: Any, new_pred: Any) -> float:
    """Negative flip rate ``NFR = (1/N) sum_i 1[o_i = y_i and n_i != y_i]``.

    Over all N samples, as defined by Yan et al., "Positive-Congruent Training",
    CVPR 2021. nan when N = 0.
    """
    mask = negative_flip_mask(y_true, old_pred, new_pred)
    return _ratio(np.count_nonzero(mask), mask.shape[0])


def positive_flip_rate(y_true: Any, old_pred: Any, new_pred: Any) -> float:
    """Positive flip rate ``PFR = (1/N) sum_i 1[o_i != y_i and n_i = y_i]``; nan when N = 0.

    Identity: ``ER_new - ER_old = NFR - PFR``.
    """
    mask = positive_flip_mask(y_true, old_pred, new_pred)
    return _ratio(np.count_nonzero(mask), mask.shape[0])


def _flip_counts(y: np.ndarray, o: np.ndarray, n: np.ndarray) -> tuple[int, int, int]:
    """(#negative flips, #old correct, #new errors) of validated arrays."""
    old_ok = o == y
    new_wrong = n != y
    nf = int(np.count_nonzero(old_ok & new_wrong))
    return nf, int(np.count_nonzero(old_ok)), int(np.count_nonzero(new_wrong))


def relative_negative_flip_rate(y_true: Any, old_pred: Any, new_pred: Any) -> float:
    """Relative negative flip rate ``NFR / ((1 - ER_old) * ER_new)``.

    The NFR that two models with *independent* errors would show is
    ``(1 - ER_old) * ER_new``; the ratio says how far the update is from that (Yan et al.,
    CVPR 2021). nan when N = 0, the old model is always wrong or the new model never is.
    """
    y, o, n = validate_predictions(y_true, old_pred, new_pred)
    nf, old_ok, new_wrong = _flip_counts(y, o, n)
    big_n = y.shape[0]
    # NFR / ((old_ok/N) * (new_wrong/N)) = NF * N / (old_ok * new_wrong), in exact integers.
    return _ratio(nf * big_n, old_ok * new_wrong)


def negative_flip_impact(y_true: Any, old_pred: Any, new_pred: Any) -> float:
    """Negative flip impact ``NFI = NFR / ER_new = #negative flips / #new errors``.

    The share of the new model's errors that are regressions. nan when the new model
    makes no error (or N = 0).
    """
    y, o, n = validate_predictions(y_true, old_pred, new_pred)
    nf, _, new_wrong = _flip_counts(y, o, n)
    return _ratio(nf, new_wrong)


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


def _grouped_flips(
    groups: np.ndarray, n_groups: int, y: np.ndarray, o: np.ndarray, n: np.ndarray
) -> dict[str, np.ndarray]:
    """Flip counts and rates per group (``groups`` are validated indices in ``[0, n_groups)``)."""
    old_ok = o == y
    new_ok = n == y
    support = np.bincount(groups, minlength=n_groups).astype(np.int64, copy=False)

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(groups[mask], minlength=n_groups).astype(np.int64, copy=False)

    neg = count(old_ok & ~new_ok)
    pos = count(~old_ok & new_ok)
    old_correct = count(old_ok)
    new_correct = count(new_ok)
    den = np.where(support > 0, support, 1).astype(np.float64)

    def rate(c: np.ndarray) -> np.ndarray:
        return np.where(support > 0, c / den, np.nan)

    return {
        "support": support,
        "negative_flips": neg,
        "positive_flips": pos,
        "negative_flip_rate": rate(neg),
        "positive_flip_rate": rate(pos),
        "old_accuracy": rate(old_correct),
        "new_accuracy": rate(new_correct),
    }


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
