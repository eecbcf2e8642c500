"""The churn floor: how many images a mere retrain of the old model breaks, and whether an update breaks more.

Retraining the same architecture on the same data with another random seed already
flips predictions (Bansal et al., AAAI 2019; Yan et al., "Positive-Congruent Training",
CVPR 2021, measure it between seeds). A *reference* model OLD2 (the old model's
architecture and data, another seed) gives that floor: the negative flip rate of OLD2
against OLD on the compared samples, with its Wilson 95 % interval.

Whether the update NEW regresses more than that is a paired question: NEW and OLD2 are
run on the same samples, and both can only flip samples OLD got right. On those, each
sample is one of four cases (NEW flips it or not, OLD2 flips it or not); the two negative
flip rates differ by the discordant ones only,

    NFR_new − NFR_ref = (b − c) / N,
    b = #{i: o_i = y_i, n_i ≠ y_i, r_i = y_i}   (only the update breaks it)
    c = #{i: o_i = y_i, n_i = y_i, r_i ≠ y_i}   (only the retrain breaks it)

and the exact McNemar test on (b, c) (:func:`~graceful_core.metrics.significance.mcnemar_p_value`,
two-sided: ``b ~ Binomial(b + c, 1/2)`` under "the update and the retrain break these
images equally often") says whether the difference is more than chance. This is sharper
than asking whether the two Wilson intervals overlap: the same hard images flip under
both models, so the two rates are positively correlated, and the samples both break (or
both keep) carry no information about the difference. Formulas: ``docs/metrics.md``,
section Churn floor.

The test takes OLD2 as given: it asks whether NEW breaks more images than *this* retrain
does on *these* images. How much the floor itself varies from seed to seed needs several
retrains (the PCT paper reports means over seeds).

Examples
--------
>>> y = [0, 0, 0, 0, 1, 1]
>>> cf = churn_floor(y, old_pred=[0, 0, 0, 0, 1, 0], new_pred=[1, 1, 0, 0, 0, 0],
...                  reference_pred=[0, 1, 0, 0, 1, 0], reference_name="old-reseed.pt")
>>> cf.n_negative_flips, cf.negative_flip_rate, cf.update_only_flips, cf.reference_only_flips
(1, 0.16666666666666666, 2, 0)
>>> cf.verdict, round(cf.p_value, 2)
('within', 0.5)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from graceful_core.metrics.flips import (
    CorrectnessCounts,
    negative_flip_rate_from_counts,
    validate_predictions,
)
from graceful_core.metrics.significance import mcnemar_p_value, wilson_interval
from graceful_core.vocabulary import ALPHA

__all__ = ["ChurnCounts", "ChurnFloor", "ChurnVerdict", "churn_floor", "churn_floor_from_counts"]

#: Where the update stands against the floor: significantly above, not distinguishable, significantly below.
ChurnVerdict = Literal["above", "within", "below"]


@dataclass(frozen=True, eq=False)
class ChurnCounts:
    """Additive counts of (old right?, new right?, reference right?) over the compared samples.

    ``table[a, b, c]`` counts the samples with ``1[o_i = y_i] = a``, ``1[n_i = y_i] = b``
    and ``1[r_i = y_i] = c`` (int64 ``[2, 2, 2]``, read-only). Pieces of disjoint samples
    merge by ``+`` (a streamed comparison could accumulate them).

    Examples
    --------
    >>> c = ChurnCounts.from_predictions([0, 1, 1], [0, 1, 0], [1, 1, 1], [0, 0, 1])
    >>> c.n_samples, c.update_only_flips, c.reference_only_flips, c.both_flip
    (3, 1, 1, 0)
    """

    table: np.ndarray

    def __post_init__(self) -> None:
        t = np.asarray(self.table)
        if t.shape != (2, 2, 2) or t.dtype.kind not in "iu" or (t.size and t.min() < 0):
            raise ValueError(f"table must be non-negative integer counts of shape (2, 2, 2), got {t.shape} {t.dtype}")
        t = np.array(t, dtype=np.int64, copy=True)
        t.setflags(write=False)
        object.__setattr__(self, "table", t)

    @classmethod
    def from_predictions(cls, y_true: Any, old_pred: Any, new_pred: Any, reference_pred: Any) -> ChurnCounts:
        """Count the four class-index arrays (validated: 1-D integers of one length)."""
        y, o, n = validate_predictions(y_true, old_pred, new_pred)
        _, _, r = validate_predictions(y, o, reference_pred)
        cell = 4 * (o == y) + 2 * (n == y) + (r == y)
        return cls(np.bincount(cell.astype(np.int64), minlength=8).reshape(2, 2, 2))

    def __add__(self, other: ChurnCounts) -> ChurnCounts:
        """Merge the counts of two disjoint sets of samples (exact)."""
        return ChurnCounts(self.table + other.table)

    @property
    def n_samples(self) -> int:
        return int(self.table.sum())

    def against_old(self, side: Literal["new", "reference"]) -> CorrectnessCounts:
        """The 2x2 correctness table of OLD against NEW or against the reference."""
        t = self.table.sum(axis=2 if side == "new" else 1)  # [old right?, side right?]
        return CorrectnessCounts(
            both_correct=int(t[1, 1]), negative_flips=int(t[1, 0]), positive_flips=int(t[0, 1]), both_wrong=int(t[0, 0])
        )

    @property
    def update_only_flips(self) -> int:
        """b: old right, new wrong, reference right."""
        return int(self.table[1, 0, 1])

    @property
    def reference_only_flips(self) -> int:
        """c: old right, new right, reference wrong."""
        return int(self.table[1, 1, 0])

    @property
    def both_flip(self) -> int:
        """Old right, new and reference wrong."""
        return int(self.table[1, 0, 0])


@dataclass(frozen=True)
class ChurnFloor:
    """The churn floor of a reference retrain and where the update stands against it (frozen).

    Attributes
    ----------
    reference_name : str
        The reference model's display name (OLD2).
    n_samples : int
        N, the samples all three models were compared on.
    negative_flip_rate : float
        The churn floor: NFR of OLD2 against OLD, ``(1/N) Σ 1[o_i = y_i ∧ r_i ≠ y_i]``.
    negative_flip_rate_ci95 : (float, float)
        Its Wilson 95 % interval.
    n_negative_flips : int
        The reference's negative flips against OLD.
    update_negative_flip_rate : float
        NFR of NEW against OLD on the same samples (the comparison's own NFR).
    update_only_flips, reference_only_flips : int
        The discordant counts b (only NEW breaks the sample) and c (only OLD2 breaks it).
    p_value : float
        Exact two-sided McNemar p-value on (b, c).
    """

    reference_name: str
    n_samples: int
    negative_flip_rate: float
    negative_flip_rate_ci95: tuple[float, float]
    n_negative_flips: int
    update_negative_flip_rate: float
    update_only_flips: int
    reference_only_flips: int
    p_value: float

    @property
    def excess(self) -> float:
        """``NFR_new − churn floor = (b − c) / N``: what the update breaks beyond a retrain."""
        return self.update_negative_flip_rate - self.negative_flip_rate

    @property
    def verdict(self) -> ChurnVerdict:
        """``"above"`` when p < ALPHA and b > c, ``"below"`` when p < ALPHA and b < c, else ``"within"``."""
        if self.p_value < ALPHA and self.update_only_flips != self.reference_only_flips:
            return "above" if self.update_only_flips > self.reference_only_flips else "below"
        return "within"

    @property
    def regresses_beyond_churn(self) -> bool:
        """True when the update breaks significantly more images than the retrain (:attr:`verdict` "above")."""
        return self.verdict == "above"

    def to_json(self) -> dict[str, Any]:
        """The report's churn keys (``docs/metrics.md``, section Churn floor)."""
        return {
            "churn_floor": self.negative_flip_rate,
            "churn_floor_ci95": list(self.negative_flip_rate_ci95),
            "churn_floor_reference": self.reference_name,
            "churn_floor_negative_flips": self.n_negative_flips,
            "churn_excess": self.excess,
            "churn_update_only_flips": self.update_only_flips,
            "churn_reference_only_flips": self.reference_only_flips,
            "churn_p_value": self.p_value,
            "churn_verdict": self.verdict,
            "regresses_beyond_churn": self.regresses_beyond_churn,
        }


def churn_floor_from_counts(counts: ChurnCounts, reference_name: str) -> ChurnFloor:
    """The :class:`ChurnFloor` of 2x2x2 correctness counts (:func:`churn_floor` counts the arrays).

    The floor is :func:`~graceful_core.metrics.flips.negative_flip_rate_from_counts` of OLD
    against OLD2 with :func:`~graceful_core.metrics.significance.wilson_interval`; the test
    :func:`~graceful_core.metrics.significance.mcnemar_p_value` on (b, c).
    """
    ref, new = counts.against_old("reference"), counts.against_old("new")
    return ChurnFloor(
        reference_name=str(reference_name),
        n_samples=counts.n_samples,
        negative_flip_rate=negative_flip_rate_from_counts(ref),
        negative_flip_rate_ci95=wilson_interval(ref.negative_flips, ref.n_samples),
        n_negative_flips=ref.negative_flips,
        update_negative_flip_rate=negative_flip_rate_from_counts(new),
        update_only_flips=counts.update_only_flips,
        reference_only_flips=counts.reference_only_flips,
        p_value=mcnemar_p_value(counts.update_only_flips, counts.reference_only_flips),
    )


def churn_floor(
    y_true: Any, old_pred: Any, new_pred: Any, reference_pred: Any, *, reference_name: str = "reference"
) -> ChurnFloor:
    """The churn floor of a reference retrain OLD2, and whether the update NEW regresses beyond it.

    .. math::

        \\text{floor} = \\frac{1}{N}\\sum_i 1[o_i = y_i \\wedge r_i \\neq y_i], \\qquad
        p = \\text{McNemar}(b, c)

    with b = #{old right, new wrong, reference right} and c = #{old right, new right,
    reference wrong}, so that ``NFR_new − floor = (b − c) / N``; the interval is Wilson's
    (``docs/metrics.md``, section Churn floor; Yan et al., CVPR 2021; Bansal et al., AAAI 2019;
    McNemar, Psychometrika 1947).

    Parameters
    ----------
    y_true, old_pred, new_pred, reference_pred : array-like of int, shape (N,)
        True labels and the three models' predictions on the same samples, in one order,
        as class indices.
    reference_name : str
        The reference's display name.

    Returns
    -------
    ChurnFloor
        Its ``verdict`` is "above" when the update breaks significantly more images than
        the retrain (exact two-sided McNemar p < 0.05 and b > c), "below" when
        significantly fewer, else "within"; rates are nan when N = 0.

    Raises
    ------
    ValueError
        An array that is not 1-D integer class indices, or arrays of different lengths.

    Examples
    --------
    >>> cf = churn_floor([0, 1, 1, 0], [0, 1, 1, 0], [1, 0, 1, 0], [0, 1, 1, 1])
    >>> cf.negative_flip_rate, cf.update_negative_flip_rate, cf.excess
    (0.25, 0.5, 0.25)
    """
    return churn_floor_from_counts(
        ChurnCounts.from_predictions(y_true, old_pred, new_pred, reference_pred), reference_name
    )
