"""Backward compatibility of a model update, as seen by a user of the old model (``docs/metrics.md``).

The scores of Bansal et al., "Updates in Human-AI Teams: Understanding and Addressing
the Performance/Compatibility Tradeoff", AAAI 2019, and Srivastava, Nushi, Kamar et al.,
"An Empirical Analysis of Backward Compatibility in Machine Learning Systems", KDD 2020.
All take 1-D integer class-index arrays ``y_true``, ``old_pred``, ``new_pred`` (validated
by :func:`graceful_core.metrics.flips.validate_predictions`) and return ``float("nan")``
when the denominator is zero. Each formula is written once, on the correctness counts
(``*_from_counts``; see :class:`graceful_core.metrics.flips.Correctness`).
"""

from __future__ import annotations

from typing import Any

from graceful_core.metrics.flips import Correctness, _ratio, correctness_counts

__all__ = [
    "backward_trust_compatibility",
    "backward_error_compatibility",
    "old_error_persistence",
    "backward_trust_compatibility_from_counts",
    "backward_error_compatibility_from_counts",
    "old_error_persistence_from_counts",
]


def backward_trust_compatibility_from_counts(c: Correctness) -> float:
    """``BTC = #both right / #old right``; nan when the old model is never right."""
    return _ratio(c.both_correct, c.old_correct)


def backward_error_compatibility_from_counts(c: Correctness) -> float:
    """``BEC = #both wrong / #new wrong``; nan when the new model makes no error."""
    return _ratio(c.both_wrong, c.n_samples - c.new_correct)


def old_error_persistence_from_counts(c: Correctness) -> float:
    """``#both wrong / #old wrong``; nan when the old model makes no error."""
    return _ratio(c.both_wrong, c.n_samples - c.old_correct)


def backward_trust_compatibility(y_true: Any, old_pred: Any, new_pred: Any) -> float:
    """Backward trust compatibility ``BTC = Σ_i 1[o_i = y_i ∧ n_i = y_i] / Σ_i 1[o_i = y_i]``.

    The share of the samples the old model got right that the new model still gets
    right (Bansal et al. 2019; Srivastava et al. 2020; ``docs/metrics.md``). Equals
    ``1 - #negative flips / #old correct``. nan when the old model is never right.

    Examples
    --------
    Old right on samples 0, 1, 2; the new model keeps 1 and 2:

    >>> round(backward_trust_compatibility([0, 1, 1, 0], [0, 1, 1, 1], [1, 1, 1, 1]), 4)
    0.6667
    """
    return backward_trust_compatibility_from_counts(correctness_counts(y_true, old_pred, new_pred))


def backward_error_compatibility(y_true: Any, old_pred: Any, new_pred: Any) -> float:
    """Backward error compatibility ``BEC = Σ_i 1[o_i ≠ y_i ∧ n_i ≠ y_i] / Σ_i 1[n_i ≠ y_i]``.

    The share of the new model's errors that the old model made too, i.e. that are not
    new (Srivastava et al. 2020; ``docs/metrics.md``). Equals ``1 - NFI`` (negative flip
    impact). nan when the new model makes no error.

    Examples
    --------
    The new model errs on samples 0 and 3; the old one erred on 3 too:

    >>> backward_error_compatibility([0, 1, 1, 0], [0, 1, 1, 1], [1, 1, 1, 1])
    0.5
    """
    return backward_error_compatibility_from_counts(correctness_counts(y_true, old_pred, new_pred))


def old_error_persistence(y_true: Any, old_pred: Any, new_pred: Any) -> float:
    """Old-error persistence ``Σ_i 1[o_i ≠ y_i ∧ n_i ≠ y_i] / Σ_i 1[o_i ≠ y_i]``.

    The share of the old model's errors that the new model repeats. This is what
    Microsoft's BackwardCompatibilityML library calls its "error compatibility score";
    note that it is *not* the BEC of Srivastava et al. (whose denominator is the new
    model's errors, see :func:`backward_error_compatibility`). nan when the old model
    makes no error (``docs/metrics.md``).

    Examples
    --------
    >>> old_error_persistence([0, 1, 1, 0], [0, 1, 1, 1], [1, 1, 1, 1])
    1.0
    """
    return old_error_persistence_from_counts(correctness_counts(y_true, old_pred, new_pred))
