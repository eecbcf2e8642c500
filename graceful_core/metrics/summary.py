"""The summary numbers of a comparison, as a function of its joint counts.

:func:`flip_summary` turns :class:`~graceful_core.metrics.counts.FlipCounts` (the counts
of (label, old prediction, new prediction) triples, plus the flip-confidence split) into
a :class:`FlipSummary`: every scalar of ``docs/metrics.md``. It calls the same count
formulas as the array metrics (``*_from_counts`` in :mod:`~graceful_core.metrics.flips`
and :mod:`~graceful_core.metrics.compatibility`), so a comparison computed from arrays in
memory and one whose counts were accumulated by streaming a table give the same summary.

Examples
--------
>>> from graceful_core.metrics.counts import FlipCounts
>>> s = flip_summary(FlipCounts.from_predictions([0, 1, 1, 0], [0, 1, 0, 0], [1, 1, 1, 0], n_classes=2))
>>> s.n_negative_flips, s.negative_flip_rate, s.backward_trust_compatibility
(1, 0.25, 0.6666666666666666)
"""

from __future__ import annotations

from dataclasses import dataclass

from graceful_core.metrics import compatibility as cm
from graceful_core.metrics import flips as fm
from graceful_core.metrics.counts import FlipCounts
from graceful_core.metrics.significance import mcnemar_p_value, wilson_interval

__all__ = ["FlipSummary", "flip_summary"]


@dataclass(frozen=True)
class FlipSummary:
    """Every summary number of a comparison (``docs/metrics.md``); nan where undefined.

    The JSON report nests the accuracies as ``old.accuracy`` / ``new.accuracy`` and keeps
    every other name as its key.
    """

    n_samples: int
    """N, the labelled samples both models were compared on."""
    n_old_correct: int
    """Samples the old model classifies correctly."""
    n_new_correct: int
    """Samples the new model classifies correctly."""
    n_negative_flips: int
    """Samples with ``o_i = y_i ∧ n_i ≠ y_i`` (old right, new wrong)."""
    n_positive_flips: int
    """Samples with ``o_i ≠ y_i ∧ n_i = y_i`` (old wrong, new right)."""
    old_accuracy: float
    """``(1/N) Σ 1[o_i = y_i]``."""
    old_error_rate: float
    """``1 - old_accuracy``."""
    new_accuracy: float
    """``(1/N) Σ 1[n_i = y_i]``."""
    new_error_rate: float
    """``1 - new_accuracy``."""
    negative_flip_rate: float
    """NFR = negative flips / N (Yan et al., CVPR 2021)."""
    positive_flip_rate: float
    """PFR = positive flips / N; ``ER_new - ER_old = NFR - PFR``."""
    relative_negative_flip_rate: float
    """NFR / ((1 - ER_old) · ER_new): NFR against what independent errors would give."""
    negative_flip_impact: float
    """NFI = NFR / ER_new: the share of the new model's errors that are regressions."""
    backward_trust_compatibility: float
    """BTC = both right / old right (Bansal et al. 2019; Srivastava et al. 2020)."""
    backward_error_compatibility: float
    """BEC = both wrong / new wrong = 1 - NFI (Srivastava et al. 2020)."""
    old_error_persistence: float
    """Both wrong / old wrong (BackwardCompatibilityML's "error compatibility score")."""
    mcnemar_p_value: float
    """Exact two-sided McNemar test on (negative flips, positive flips)."""
    negative_flip_rate_ci95: tuple[float, float]
    """Wilson 95 % interval of NFR."""
    positive_flip_rate_ci95: tuple[float, float]
    """Wilson 95 % interval of PFR."""
    backward_trust_compatibility_ci95: tuple[float, float]
    """Wilson 95 % interval of BTC (over the old model's right answers)."""
    negative_flips_near_boundary: int | None
    """Negative flips whose p(true class) dropped by less than 0.1; None without class scores."""
    negative_flips_confident: int | None
    """Negative flips whose p(true class) dropped by 0.5 or more; None without class scores."""


def flip_summary(counts: FlipCounts) -> FlipSummary:
    """The :class:`FlipSummary` of a comparison's joint counts.

    Parameters
    ----------
    counts : FlipCounts
        Joint counts of (label, old, new) and the flip-confidence split, e.g. from
        :meth:`FlipCounts.from_predictions` or summed over streamed pieces.

    Returns
    -------
    FlipSummary
    """
    n = counts.n_samples
    nf, pf = counts.negative_flips, counts.positive_flips
    old_ok, new_ok = counts.old_correct, counts.new_correct
    return FlipSummary(
        n_samples=n,
        n_old_correct=old_ok,
        n_new_correct=new_ok,
        n_negative_flips=nf,
        n_positive_flips=pf,
        old_accuracy=fm.accuracy_from_counts(old_ok, n),
        old_error_rate=fm.error_rate_from_counts(old_ok, n),
        new_accuracy=fm.accuracy_from_counts(new_ok, n),
        new_error_rate=fm.error_rate_from_counts(new_ok, n),
        negative_flip_rate=fm.negative_flip_rate_from_counts(counts),
        positive_flip_rate=fm.positive_flip_rate_from_counts(counts),
        relative_negative_flip_rate=fm.relative_negative_flip_rate_from_counts(counts),
        negative_flip_impact=fm.negative_flip_impact_from_counts(counts),
        backward_trust_compatibility=cm.backward_trust_compatibility_from_counts(counts),
        backward_error_compatibility=cm.backward_error_compatibility_from_counts(counts),
        old_error_persistence=cm.old_error_persistence_from_counts(counts),
        mcnemar_p_value=mcnemar_p_value(nf, pf),
        negative_flip_rate_ci95=wilson_interval(nf, n),
        positive_flip_rate_ci95=wilson_interval(pf, n),
        backward_trust_compatibility_ci95=wilson_interval(old_ok - nf, old_ok),
        negative_flips_near_boundary=counts.negative_flips_near_boundary,
        negative_flips_confident=counts.negative_flips_confident,
    )
