"""Backward compatibility of a model update, as seen by a user of the old model (DESIGN §2).

The scores of Bansal et al., "Updates in Human-AI Teams: Understanding and Addressing
the Performance/Compatibility Tradeoff", AAAI 2019, and Srivastava, Nushi, Kamar et al.,
"An Empirical Analysis of Backward Compatibility in Machine Learning Systems", KDD 2020.
All take 1-D integer class-index arrays ``y_true``, ``old_pred``, ``new_pred`` (validated
by :func:`graceful_core.metrics.flips.validate_predictions`) and return ``float("nan")``
when the denominator is zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graceful_core.metrics.flips import _ratio, validate_predictions

__all__ = [
    "backward_trust_compatibility",
    "backward_error_compatibility",
    "old_error_persistence",
]


def backward_trust_compatibility(y_true: Any, old_pred: Any, new_pred: Any) -> float:
    """Backward trust compatibility ``BTC = sum_i 1[o_i = y_i and n_i = y_i] / sum_i 1[o_i = y_i]``.

    The share of the samples the old model got right that the new model still gets
    right (Bansal et al. 2019; Srivastava et al. 2020). Equals
    ``1 - #negative flips / #old correct``. nan when the old model is never right.
    """
    y, o, n = validate_predictions(y_true, old_pred, new_pred)
    old_ok = o == y
    return _ratio(int(np.count_nonzero(old_ok & (n == y))), int(np.count_nonzero(old_ok)))


def backward_error_compatibility(y_true: Any, old_pred: Any, new_pred: Any) -> float:
    """Backward error compatibility ``BEC = sum_i 1[o_i != y_i and n_i != y_i] / sum_i 1[n_i != y_i]``.

    The share of the new model's errors that the old model made too, i.e. that are not
    new (Srivastava et al. 2020). Equals ``1 - NFI`` (negative flip impact). nan when the
    new model makes no error.
    """
    y, o, n = validate_predictions(y_true, old_pred, new_pred)
    new_wrong = n != y
    return _ratio(int(np.count_nonzero(new_wrong & (o != y))), int(np.count_nonzero(new_wrong)))


def old_error_persistence(y_true: Any, old_pred: Any, new_pred: Any) -> float:
    """Old-error persistence ``sum_i 1[o_i != y_i and n_i != y_i] / sum_i 1[o_i != y_i]``.

    The share of the old model's errors that the new model repeats. This is what
    Microsoft's BackwardCompatibilityML library calls its "error compatibility score";
    note that it is *not* the BEC of Srivastava et al. (whose denominator is the new
    model's errors, see :func:`backward_error_compatibility`). nan when the old model
    makes no error.
    """
    y, o, n = validate_predictions(y_true, old_pred, new_pred)
    old_wrong = o != y
    return _ratio(int(np.count_nonzero(old_wrong & (n != y))), int(np.count_nonzero(old_wrong)))
