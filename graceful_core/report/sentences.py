"""Plain-words verdicts and summaries shared by the CLI, the app and the HTML report.

The sentences are built here once, from a :class:`~graceful_core.results.comparison.Comparison`,
with the metric words and formats of :mod:`graceful_core.vocabulary`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from graceful_core.comparing.labelfree import UnlabelledComparison
from graceful_core.metrics.churn import ChurnFloor
from graceful_core.metrics.retrieval import CrossTest
from graceful_core.metrics.slices import RegressionSlice, SliceReport
from graceful_core.metrics.summary import FlipSummary
from graceful_core.results.comparison import Comparison
from graceful_core.vocabulary import (
    ALPHA,
    METRICS,
    compatibility_sentence,
    count,
    images,
    interval,
    negative_flips,
    p_value,
    percent,
)

Kind = Literal["better", "worse", "same"]


@dataclass(frozen=True)
class Verdict:
    """A plain-words verdict: its kind (for colour), its words, and the number behind them."""

    kind: Kind
    """``"better"``, ``"worse"`` or ``"same"``."""
    words: str
    """The verdict without its number, e.g. "new is significantly better"."""
    detail: str = ""
    """The number behind it, e.g. "McNemar p = 0.031" (may be empty)."""

    @property
    def text(self) -> str:
        """``words (detail)``, or just the words."""
        return f"{self.words} ({self.detail})" if self.detail else self.words


def p_text(p: float) -> str:
    """``"= 0.031"`` (two significant digits) or ``"< 1e-300"`` (an underflowing p-value is not 0)."""
    text = p_value(p)
    return text if text.startswith("<") else f"= {p:.2g}"


def significance_verdict(s: FlipSummary) -> Verdict:
    """Verdict of the exact McNemar test at :data:`~graceful_core.vocabulary.ALPHA`."""
    p, nf, pf = s.mcnemar_p_value, s.n_negative_flips, s.n_positive_flips
    detail = f"McNemar p {p_text(p)}"
    if p < ALPHA and pf > nf:
        return Verdict("better", "new is significantly better", detail)
    if p < ALPHA and nf > pf:
        return Verdict("worse", "new is significantly worse", detail)
    return Verdict("same", "old and new are not distinguishable on this data", detail)


#: How much accuracy the old classifier head may lose on the new embeddings and still "work".
OLD_HEAD_TOLERANCE = 0.01


def old_head_verdict(c: Comparison) -> Verdict | None:
    """The old classifier head applied to the new embeddings: does it keep working?

    It "keeps working" when its accuracy on the new embeddings is at most
    :data:`OLD_HEAD_TOLERANCE` below the old model's own accuracy. None when there is no
    such measurement (the old side has no exported head, or no comparable embeddings).
    """
    acc = c.old_head_on_new_accuracy
    if acc is None:
        return None
    own = c.summary.old_accuracy
    head = (
        f"Old classifier head on new embeddings: {percent(acc)} of all {images(c.n_samples)} right "
        f"(the old model itself: {percent(own)})."
    )
    if acc >= own - OLD_HEAD_TOLERANCE:
        return Verdict(
            "better", head + " Classifiers and other post-processing built on the old embedding keep working."
        )
    return Verdict(
        "worse",
        head + " Anything built on the old embedding (classifiers, thresholds, clusters) "
        "breaks with the new model and must be rebuilt.",
    )


def compatibility_verdict(ct: CrossTest) -> Verdict:
    """The BCT verdict of a cross-test: compatible (better), not compatible (worse), or no cross-test (same)."""
    if ct.reason is not None:
        return Verdict("same", compatibility_sentence(ct))
    return Verdict("better" if ct.compatible else "worse", compatibility_sentence(ct))


def churn_verdict(cf: ChurnFloor) -> Verdict:
    """Whether the update breaks more images than a retrain of the old model alone (the churn floor).

    "worse" when it breaks significantly more (:attr:`ChurnFloor.verdict` "above"), "better" when
    significantly fewer ("below"), else "same"; the detail gives both counts and the p-value.
    """
    detail = (
        f"{images(cf.update_only_flips)} only the update breaks vs {count(cf.reference_only_flips)} only "
        f"{cf.reference_name} breaks, McNemar p {p_text(cf.p_value)}"
    )
    if cf.verdict == "above":
        return Verdict(
            "worse",
            f"the update breaks significantly more images than retraining alone "
            f"({METRICS['churn_excess'].format(cf.excess)} of all images above the floor)",
            detail,
        )
    if cf.verdict == "below":
        return Verdict("better", "the update breaks significantly fewer images than retraining alone", detail)
    return Verdict("same", "the update's regressions are within retraining noise", detail)


def churn_line(cf: ChurnFloor) -> str:
    """The churn floor in one line: its value, the reference's flips, the interval."""
    return (
        f"{METRICS['churn_floor'].format(cf.negative_flip_rate)} ({negative_flips(cf.n_negative_flips)} of "
        f"{images(cf.n_samples)} when {cf.reference_name} replaces the old model; 95 % CI "
        f"{interval(cf.negative_flip_rate_ci95)}) against the update's NFR "
        f"{METRICS['negative_flip_rate'].format(cf.update_negative_flip_rate)}"
    )


def slice_verdict(report: SliceReport) -> Verdict:
    """Whether any regression slice is significantly worse than the rest (adjusted p < ALPHA).

    "worse" when at least one is, else "same"; the detail says how many slices were tested.
    """
    m, sig = len(report.slices), report.significant()
    detail = f"{m} slice{'s' if m != 1 else ''} tested, Benjamini–Hochberg adjusted p < {ALPHA:g}"
    if sig:
        verb = "has" if len(sig) == 1 else "have"
        return Verdict(
            "worse", f"{len(sig)} of {m} slices {verb} significantly more negative flips than the rest", detail
        )
    return Verdict("same", "no slice has significantly more negative flips than the rest", detail)


def slice_numbers(s: RegressionSlice) -> str:
    """A slice's numbers in one line: NFR with interval against the rest, size, p and adjusted p."""
    nfr, rest = METRICS["slice_negative_flip_rate"], METRICS["rest_negative_flip_rate"]
    return (
        f"NFR {nfr.format(s.negative_flip_rate)} (95 % CI {interval(s.negative_flip_rate_ci95)}) vs "
        f"{rest.format(s.rest_negative_flip_rate)} in the rest · {negative_flips(s.negative_flips)} in {images(s.size)} · "
        f"p {METRICS['slice_p_value'].format(s.p_value)}, adjusted p {METRICS['slice_p_adjusted'].format(s.p_adjusted)}"
    )


def slice_line(s: RegressionSlice) -> str:
    """``<title>: <numbers>`` (:func:`slice_numbers`), e.g. for the CLI and the gate's message."""
    return f"{s.title}: {slice_numbers(s)}"


#: At most this many significant slices are listed in the CLI summary.
MAX_SLICE_LINES = 10


@dataclass(frozen=True)
class ClassHurt:
    """One class's share of the negative flips (a row of :func:`classes_hurt`)."""

    name: str
    """The class name."""
    negative_flips: int
    """Images of this class the old model got right and the new one gets wrong."""
    support: int
    """Images whose true label is this class."""
    negative_flip_rate: float
    """``negative_flips / support`` (nan when the support is 0)."""
    share: float
    """This class's part of all negative flips, ``negative_flips / n_negative_flips`` (0 when there are none)."""


def classes_hurt(c: Comparison) -> tuple[ClassHurt, ...]:
    """The classes with at least one negative flip, most negative flips first (ties: higher NFR, then name).

    Read from the per-class table (``docs/metrics.md``, "Per-class flips"): class k's
    negative flips are the images with y = k, old = k, new != k.

    Examples
    --------
    >>> from graceful_core.results.examples import small_comparison
    >>> comp = small_comparison()  # one cat and two dogs broken
    >>> [(h.name, h.negative_flips, h.support) for h in classes_hurt(comp)]
    [('dog', 2, 3), ('cat', 1, 2)]
    """
    pc = c.per_class
    total = int(np.sum(pc.negative_flips))
    rows = [
        ClassHurt(
            str(pc.groups[i]),
            int(pc.negative_flips[i]),
            int(pc.support[i]),
            float(pc.negative_flip_rate[i]),
            pc.negative_flips[i] / total if total else 0.0,
        )
        for i in range(len(pc))
        if pc.negative_flips[i] > 0
    ]
    return tuple(sorted(rows, key=lambda h: (-h.negative_flips, -h.negative_flip_rate, h.name)))


#: Classes named after the worst one in :func:`worst_class_sentence`.
MORE_HURT_CLASSES = 3


def worst_class_sentence(c: Comparison, more: int = MORE_HURT_CLASSES) -> str | None:
    """Where the update hurts most, in one sentence; None when it breaks no image.

    E.g. "The update hurts Shirt most: 61 of its 1000 images break (NFR 6.10 %, 30 % of all
    negative flips). Next: Pullover (40), Coat (33), T-shirt/top (25)."
    """
    hurt = classes_hurt(c)
    if not hurt:
        return None
    w = hurt[0]
    text = (
        f"The update hurts {w.name} most: {count(w.negative_flips)} of its {images(w.support)} break "
        f"(NFR {percent(w.negative_flip_rate)}, {100 * w.share:.0f} % of all negative flips)."
    )
    rest = hurt[1 : 1 + more]
    if rest:
        text += " Next: " + ", ".join(f"{h.name} ({count(h.negative_flips)})" for h in rest) + "."
    return text


def headline(c: Comparison) -> str:
    """One line a stakeholder can read: what the update fixes and what it breaks."""
    s = c.summary
    return (
        f"The update fixes {images(s.n_positive_flips)} and breaks {images(s.n_negative_flips)} of {count(s.n_samples)} "
        f"(accuracy {percent(s.old_accuracy)} → {percent(s.new_accuracy)})."
    )


def unlabelled_headline(u: UnlabelledComparison) -> str:
    """One line for a comparison without labels: how many predictions change."""
    ch = u.churn
    return (
        f"The update changes the predicted class of {images(ch.n_changed)} of {count(ch.n_samples)} "
        f"({percent(ch.rate)}); without labels, which of these are regressions is unknown."
    )
