"""Prediction churn: what changes between two models where no true label exists.

In production most traffic is unlabelled: whether a prediction is right cannot be known,
but whether it *changed* can. The prediction churn of an update (Milani Fard et al.,
"Launch and Iterate: Reducing Prediction Churn", NeurIPS 2016) is the share of samples
whose predicted class changes,

    churn = C / N,   C = #{i : o_i ≠ n_i},

with its Wilson 95 % interval (:func:`~graceful_core.metrics.significance.wilson_interval`).
Every negative flip is a changed prediction (``o_i = y_i ≠ n_i`` implies ``o_i ≠ n_i``), so
churn bounds NFR + PFR from above: churn = NFR + PFR + (both wrong, differently). Without
labels, NFR, PFR, accuracy, BTC and McNemar's test do not exist; churn, the old → new
transition matrix and churn per predicted class do.

All are functions of the K x K transition matrix ``T[a, b] = #{i: o_i = a, n_i = b}``
(additive: matrices of disjoint samples add), so a streamed comparison gets them from its
counts too. Formulas: ``docs/metrics.md``, section Prediction churn.

Examples
--------
>>> pc = prediction_churn([0, 0, 1, 2, 2], [0, 1, 1, 2, 0], 3)
>>> pc.n_changed, pc.n_samples, pc.rate
(2, 5, 0.4)
>>> pc.per_class["changed"].tolist(), pc.per_class["support"].tolist()
([1, 0, 1], [2, 1, 2])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from graceful_core.jsonable import json_clean
from graceful_core.metrics.flips import as_label_array
from graceful_core.metrics.significance import mcnemar_p_value, wilson_interval

__all__ = [
    "ChurnAgainstReference",
    "PredictionChurn",
    "churn_against_reference",
    "prediction_churn",
    "prediction_churn_from_matrix",
]


@dataclass(frozen=True, eq=False)
class PredictionChurn:
    """Prediction churn of an update, from its old → new transition matrix.

    Attributes
    ----------
    transition_matrix : np.ndarray
        int64 ``[K, K]``, row = old prediction, column = new prediction (read-only).
    n_samples, n_changed : int
        N and C = N − trace(T).
    rate : float
        C / N (nan when N = 0).
    ci95 : (float, float)
        Wilson 95 % interval of ``rate``.
    per_class : dict of np.ndarray
        Per **old predicted** class a: ``support`` = Σ_b T[a, b], ``changed`` = support − T[a, a],
        ``churn`` = changed / support (nan where support is 0).
    """

    transition_matrix: np.ndarray
    n_samples: int
    n_changed: int
    rate: float
    ci95: tuple[float, float]
    per_class: dict[str, np.ndarray]

    def to_json(self) -> dict[str, Any]:
        """``prediction_churn``, ``prediction_churn_ci95``, ``n_changed_predictions``, ``churn_transition_matrix``."""
        rate = json_clean(self.rate)
        return {
            "prediction_churn": rate,
            "prediction_churn_ci95": [float(x) for x in self.ci95] if rate is not None else [None, None],
            "n_changed_predictions": int(self.n_changed),
            "churn_transition_matrix": self.transition_matrix.tolist(),
        }

    def per_class_json(self, classes: list[str] | tuple[str, ...]) -> list[dict[str, Any]]:
        """One object per old predicted class: ``class``, ``support``, ``changed``, ``churn`` (None for nan)."""
        pc = self.per_class
        return [
            {
                "class": str(c),
                "support": int(pc["support"][j]),
                "changed": int(pc["changed"][j]),
                "churn": json_clean(pc["churn"][j]),
            }
            for j, c in enumerate(classes)
        ]


def prediction_churn_from_matrix(matrix: Any) -> PredictionChurn:
    """:class:`PredictionChurn` of a transition matrix ``T[old prediction, new prediction]``.

    >>> prediction_churn_from_matrix([[3, 1], [0, 4]]).rate
    0.125
    """
    t = np.asarray(matrix, dtype=np.int64)
    if t.ndim != 2 or t.shape[0] != t.shape[1]:
        raise ValueError(f"a transition matrix must be square [K, K], got shape {t.shape}")
    if t.size and t.min() < 0:
        raise ValueError("a transition matrix holds counts >= 0")
    t = t.copy()
    t.setflags(write=False)
    n = int(t.sum())
    same = int(np.trace(t))
    changed = n - same
    support = t.sum(axis=1)
    changed_c = support - np.diag(t)
    with np.errstate(invalid="ignore", divide="ignore"):
        churn_c = np.where(support > 0, changed_c / np.maximum(support, 1), np.nan)
    rate = changed / n if n else float("nan")
    ci = wilson_interval(changed, n) if n else (float("nan"), float("nan"))
    return PredictionChurn(t, n, changed, rate, ci, {"support": support, "changed": changed_c, "churn": churn_c})


def prediction_churn(old_pred: Any, new_pred: Any, n_classes: int) -> PredictionChurn:
    """:class:`PredictionChurn` of two prediction arrays (class indices in ``[0, n_classes)``).

    Raises
    ------
    ValueError
        Arrays of different lengths, or an index outside ``[0, n_classes)``.
    """
    o = as_label_array(old_pred, "old_pred")
    n = as_label_array(new_pred, "new_pred")
    if o.shape != n.shape:
        raise ValueError(f"old_pred has {o.shape[0]} entries, new_pred {n.shape[0]}")
    for a, name in ((o, "old_pred"), (n, "new_pred")):
        if a.size and (a.min() < 0 or a.max() >= n_classes):
            raise ValueError(f"{name} holds class indices outside [0, {n_classes})")
    t = np.bincount(o * n_classes + n, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    return prediction_churn_from_matrix(t)


@dataclass(frozen=True)
class ChurnAgainstReference:
    """Prediction churn of NEW against OLD next to that of a retrain OLD2 against OLD (the floor).

    ``update_only`` counts samples whose prediction NEW changes and OLD2 keeps,
    ``reference_only`` the reverse; churn_new − churn_ref = (update_only − reference_only) / N,
    and the exact McNemar test on the two is the paired test (as for the labelled churn floor,
    :mod:`graceful_core.metrics.churn`).
    """

    reference_name: str
    n_samples: int
    reference_churn: float
    reference_churn_ci95: tuple[float, float]
    update_only: int
    reference_only: int
    p_value: float

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference_name,
            "reference_prediction_churn": self.reference_churn,
            "reference_prediction_churn_ci95": list(self.reference_churn_ci95),
            "changed_by_update_only": self.update_only,
            "changed_by_reference_only": self.reference_only,
            "p_value": self.p_value,
        }


def churn_against_reference(
    old_pred: Any, new_pred: Any, reference_pred: Any, *, reference_name: str
) -> ChurnAgainstReference:
    """The label-free churn floor: OLD2's churn against OLD, and whether NEW changes more predictions.

    >>> c = churn_against_reference([0, 0, 1, 1], [1, 0, 0, 1], [0, 0, 1, 0], reference_name="r")
    >>> c.reference_churn, c.update_only, c.reference_only
    (0.25, 2, 1)
    """
    o = as_label_array(old_pred, "old_pred")
    n = as_label_array(new_pred, "new_pred")
    r = as_label_array(reference_pred, "reference_pred")
    if not (o.shape == n.shape == r.shape):
        raise ValueError("old, new and reference predictions must have the same length")
    new_changes, ref_changes = o != n, o != r
    k, total = int(ref_changes.sum()), int(o.shape[0])
    b = int((new_changes & ~ref_changes).sum())
    c = int((~new_changes & ref_changes).sum())
    return ChurnAgainstReference(
        reference_name,
        total,
        k / total if total else float("nan"),
        wilson_interval(k, total) if total else (float("nan"), float("nan")),
        b,
        c,
        mcnemar_p_value(b, c),
    )
