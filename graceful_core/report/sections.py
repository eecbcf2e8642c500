"""What every face says about a comparison, and in which order: its sections.

A result (:class:`~graceful_core.results.comparison.Comparison`) holds values; this module decides
*what* is said about them: :func:`build_sections` returns the ordered :class:`Section`
objects (the headline, the class the update hurts most, the significance verdict, the
recommended remedy, the metric cards, the churn floor, the regression slices, the negative
flips, the embeddings' compatibility), each with its words, its severity and its table rows.
The faces only decide *how* to draw them, like scikit-learn's Display objects draw a result:
the CLI summary as plain lines (:mod:`graceful_core.report.text`), the HTML report through
its template (:mod:`graceful_core.report.html`), the app's Overview page with Streamlit
widgets. A face draws every section it is given, so none can lose one (``tests/report/test_sections_faces.py``).

The verdict sentences are those of :mod:`graceful_core.report.sentences`, with the metric words and
formats of :mod:`graceful_core.vocabulary`; a face adds no word about a metric of its own.

Examples
--------
>>> from graceful_core.results.examples import small_comparison
>>> comp = small_comparison()  # six images, the new model breaks three
>>> [s.key for s in build_sections(comp)]
['headline', 'worst_class', 'significance', 'cards', 'flips', 'compatibility']
>>> build_sections(comp)[0].sentences
('The update fixes 0 images and breaks 3 images of 6 (accuracy 100.00 % → 50.00 %).',)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from graceful_core.comparing.labelfree import UnlabelledComparison, labels_missing_sentence
from graceful_core.report.remedies import whatif_line
from graceful_core.report.sentences import (
    MAX_SLICE_LINES,
    Verdict,
    churn_line,
    churn_verdict,
    classes_hurt,
    compatibility_verdict,
    headline,
    old_head_verdict,
    p_text,
    significance_verdict,
    slice_numbers,
    slice_verdict,
    unlabelled_headline,
    worst_class_sentence,
)
from graceful_core.vocabulary import (
    ALPHA,
    CLI_LINES,
    FLIP_MARKS,
    METRICS,
    MORE_CARDS,
    SLICES_HELP,
    SLICES_TITLE,
    SUMMARY_CARDS,
    WHATIF_LINE_LABEL,
    card,
    compatibility_sentence,
    count,
    images,
    interval,
    p_value,
    percent,
    points,
    probability,
)

if TYPE_CHECKING:
    from graceful_core.results.comparison import Comparison

__all__ = [
    "SECTION_KEYS",
    "LEAD_KEYS",
    "UNLABELLED_KEYS",
    "NO_EMBEDDINGS",
    "Row",
    "Section",
    "build_sections",
    "build_unlabelled_sections",
    "lead_and_body",
    "section_of",
]

SectionKey = Literal[
    "headline",
    "worst_class",
    "significance",
    "remedy",
    "cards",
    "churn_floor",
    "slices",
    "flips",
    "compatibility",
    "churn",
    "confidence",
    "most_changed",
    "churn_slices",
]
#: Every section a comparison can have, in the order every face shows them.
SECTION_KEYS: tuple[SectionKey, ...] = (
    "headline",
    "worst_class",
    "significance",
    "remedy",
    "cards",
    "churn_floor",
    "slices",
    "flips",
    "compatibility",
)
#: The sections read first (the verdicts and the numbers); a face may put its own material (review, label
#: issues, figures, per-class tables) between these and the rest (:func:`lead_and_body`).
LEAD_KEYS: tuple[SectionKey, ...] = SECTION_KEYS[: SECTION_KEYS.index("churn_floor") + 1]

#: The sections of a comparison without labels, in the order every face shows them.
UNLABELLED_KEYS: tuple[SectionKey, ...] = (
    "headline",
    "churn",
    "confidence",
    "churn_floor",
    "most_changed",
    "churn_slices",
    "compatibility",
)

Severity = Literal["better", "worse", "same", "info"]

#: Why there is no cross-test when the comparison gives no reason: no embeddings to compare.
NO_EMBEDDINGS = "one or both models expose no embeddings"


@dataclass(frozen=True)
class Row:
    """One row of a section's table: a metric card, a regression slice, a retrieval score."""

    key: str
    """What the row is about: a metric key of :data:`~graceful_core.vocabulary.METRICS`, a slice's title."""
    label: str
    """The row's short label (a card's title, a slice's title)."""
    value: str
    """The formatted value, or the row's numbers in one line."""
    caption: str = ""
    """What the value counts (a card's caption)."""
    help: str = ""
    """The long help text (hover)."""
    name: str = ""
    """The long name (a metric's ``name``, for the CLI's aligned lines); empty when it is the label."""
    brief: bool = False
    """True for the rows a short face (the CLI summary) shows."""
    more: bool = False
    """True for the rows a face may fold away ("More metrics")."""
    cells: tuple[str, ...] = ()
    """The row as table cells (a slice's size, flips, NFR, … or a retrieval score per pair)."""


@dataclass(frozen=True)
class Section:
    """One section of what is said about a comparison: built by :func:`build_sections`, drawn by the faces."""

    key: SectionKey
    """Which section (one of :data:`SECTION_KEYS`)."""
    title: str
    """Its title, e.g. "Significance" or "Regression slices"."""
    sentences: tuple[str, ...] = ()
    """Its sentences, in the vocabulary's words (the first one leads)."""
    severity: Severity = "info"
    """``"better"``, ``"worse"``, ``"same"`` (a verdict's kind, for colour) or ``"info"``."""
    verdict: Verdict | None = None
    """Its verdict, when it has one (words and the number behind them)."""
    rows: tuple[Row, ...] = ()
    """Its table rows (cards, slices, retrieval scores), in order."""
    header: tuple[str, ...] = ()
    """Column labels of the rows' cells."""
    notes: tuple[str, ...] = ()
    """Smaller print: help, caveats, what was left out."""
    warnings: tuple[str, ...] = ()
    """What a face says before anything else (e.g. that only a subset of the rows was compared)."""
    values: Mapping[str, str] = field(default_factory=dict)
    """Formatted numbers and names a rich face places in its own layout (e.g. the churn floor's interval)."""
    more: tuple[Verdict, ...] = ()
    """Further verdicts of the section (the old classifier head on the new embeddings)."""
    figure: str | None = None
    """Key of the figure a face may draw with it, or None."""

    @property
    def lead(self) -> str:
        """What a face must show at the least: the verdict's text, else the first sentence, else the title."""
        if self.verdict is not None:
            return self.verdict.text
        return self.sentences[0] if self.sentences else self.title


def _headline(c: Comparison) -> Section:
    warning = c.missing.sentence() if c.missing is not None and c.missing.any else None
    return Section("headline", "Headline", (headline(c),), "info", warnings=() if warning is None else (warning,))


def _worst_class(c: Comparison) -> Section | None:
    worst = worst_class_sentence(c)
    if worst is None:
        return None
    return Section(
        "worst_class", "Where the update hurts most", (worst,), "worse", values={"class": classes_hurt(c)[0].name}
    )


def _significance(c: Comparison) -> Section:
    v = significance_verdict(c.summary)
    return Section("significance", "Significance", (v.text,), v.kind, verdict=v)


def _remedy(c: Comparison) -> Section | None:
    if c.mitigation_whatif is None:
        return None
    return Section("remedy", WHATIF_LINE_LABEL, (whatif_line(c.mitigation_whatif),), "info", figure="whatif")


def _cards(c: Comparison) -> Section:
    s = c.summary
    rows = []
    for key in SUMMARY_CARDS + MORE_CARDS:
        label, value, caption, help_text = card(key, s)
        rows.append(
            Row(
                key,
                label,
                value,
                caption,
                help_text,
                name=METRICS[key].name,
                brief=key in CLI_LINES,
                more=key in MORE_CARDS,
            )
        )
    return Section(
        "cards",
        "Summary",
        (),
        "info",
        rows=tuple(rows),
        values={"new_accuracy_delta": points(s.new_accuracy - s.old_accuracy)},
    )


def _churn_floor(c: Comparison) -> Section | None:
    cf = c.churn_floor
    if cf is None:
        return None
    m, nfr = METRICS["churn_floor"], METRICS["negative_flip_rate"]
    v = churn_verdict(cf)
    values = {
        "reference_name": cf.reference_name,
        "value": m.format(cf.negative_flip_rate),
        "ci": interval(cf.negative_flip_rate_ci95),
        "flips": images(cf.n_negative_flips),
        "n_samples": str(cf.n_samples),
        "nfr": nfr.format(cf.update_negative_flip_rate),
        "excess": points(cf.excess),
    }
    why = (
        f"The update's NFR {values['nfr']} − the churn floor {values['value']} = {values['excess']}. The churn "
        f"floor is the NFR of {cf.reference_name} (the old model retrained with another seed) against the old "
        f"model. {METRICS['churn_p_value'].help}"
    )
    return Section("churn_floor", m.label, (churn_line(cf),), v.kind, verdict=v, notes=(m.help, why), values=values)


#: The columns of the regression-slices table, in order (every face that tabulates slices uses these).
SLICE_COLUMNS = tuple(
    METRICS[k]
    for k in (
        "slice_size",
        "n_negative_flips",
        "slice_negative_flip_rate",
        "rest_negative_flip_rate",
        "slice_p_value",
        "slice_p_adjusted",
    )
)


def _slices(c: Comparison) -> Section | None:
    rep = c.regression_slices
    if rep is None:
        return None
    v = slice_verdict(rep)
    cols = SLICE_COLUMNS
    rows = tuple(
        Row(
            s.title,
            s.title,
            slice_numbers(s),
            cells=(
                cols[0].format(s.size),
                cols[1].format(s.negative_flips),
                f"{cols[2].format(s.negative_flip_rate)} ({interval(s.negative_flip_rate_ci95)})",
                cols[3].format(s.rest_negative_flip_rate),
                cols[4].format(s.p_value),
                cols[5].format(s.p_adjusted),
            ),
        )
        for s in rep.significant()
    )
    return Section(
        "slices",
        SLICES_TITLE,
        (v.text,),
        v.kind,
        verdict=v,
        rows=rows,
        header=tuple(col.label for col in cols),
        notes=(SLICES_HELP,),
    )


def _flips(c: Comparison) -> Section:
    n = c.summary.n_negative_flips
    marks = FLIP_MARKS["negative flip"]
    return Section(
        "flips",
        f"Negative flips ({marks})",
        (f"{images(n)} of {count(c.n_samples)} go {marks}.",),
        "worse" if n else "same",
        values={"total": str(n)},
        figure="flip_grid",
    )


def _compatibility(c: Comparison) -> Section:
    ct = c.compatibility
    overlap: dict[str, str] = {}
    if c.embedding_overlap is not None:
        m = METRICS["embedding_overlap"]
        overlap = {
            "overlap_name": m.name,
            "overlap_label": m.name[0].upper() + m.name[1:],
            "overlap": m.format(c.embedding_overlap),
            "overlap_help": m.help,
        }
    if ct is None:
        reason = c.compatibility_reason or NO_EMBEDDINGS
        return Section(
            "compatibility", "Embedding compatibility", (reason,), "same", values={"reason": reason, **overlap}
        )
    v = compatibility_verdict(ct)
    head = old_head_verdict(c)
    return Section(
        "compatibility",
        "Embedding compatibility (BCT cross-test)",
        (v.text,),
        v.kind,
        verdict=v,
        values=overlap,
        more=() if head is None else (head,),
        figure="retrieval",
    )


def build_sections(c: Comparison) -> tuple[Section, ...]:
    """The sections every face shows for ``c``, in the order of :data:`SECTION_KEYS`.

    A section that does not apply is left out: the class the update hurts most when it
    breaks no image, the remedy without a what-if analysis (no class scores), the churn floor
    without a reference model, the regression slices when none were searched. The headline,
    significance, cards, flips and compatibility (or why there is no cross-test) are always there.
    """
    built = (
        _headline(c),
        _worst_class(c),
        _significance(c),
        _remedy(c),
        _cards(c),
        _churn_floor(c),
        _slices(c),
        _flips(c),
        _compatibility(c),
    )
    return tuple(s for s in built if s is not None)


def section_of(sections: tuple[Section, ...], key: SectionKey) -> Section | None:
    """The section with ``key``, or None when it does not apply."""
    return next((s for s in sections if s.key == key), None)


def lead_and_body(sections: tuple[Section, ...]) -> tuple[tuple[Section, ...], tuple[Section, ...]]:
    """``sections`` split into the lead (keys in :data:`LEAD_KEYS`) and the rest, each in order."""
    return (tuple(s for s in sections if s.key in LEAD_KEYS), tuple(s for s in sections if s.key not in LEAD_KEYS))


# --------------------------------------------------------------------------- without labels
#: Classes named in the "most changed" sentence of a comparison without labels.
MOST_CHANGED_CLASSES = 3


def _u_headline(u: UnlabelledComparison) -> Section:
    warning = u.missing.sentence() if u.missing is not None and u.missing.any else None
    return Section(
        "headline",
        "Headline",
        (unlabelled_headline(u),),
        "info",
        notes=(labels_missing_sentence(),),
        warnings=() if warning is None else (warning,),
    )


def _u_churn(u: UnlabelledComparison) -> Section:
    ch, m = u.churn, METRICS["prediction_churn"]
    words = (
        f"{count(ch.n_changed)} of {images(ch.n_samples)} change their predicted class · 95 % CI {interval(ch.ci95)}"
    )
    return Section(
        "churn",
        m.label,
        (words,),
        "info",
        rows=(Row("prediction_churn", m.label, m.format(ch.rate), words, m.help, m.name, brief=True),),
    )


def _u_confidence(u: UnlabelledComparison) -> Section | None:
    conf = u.changed_confidence()
    if conf["old_changed"] is None or conf["new_changed"] is None:
        return None
    words = (
        f"mean top probability old {conf['old_changed']:.2f} → new {conf['new_changed']:.2f} (unchanged: "
        f"{conf['old_unchanged'] or 0:.2f} → {conf['new_unchanged'] or 0:.2f})"
    )
    rows = tuple(
        Row(
            f"{side}_confidence_changed",
            f"{side.capitalize()} model's confidence on changed",
            probability(conf[f"{side}_changed"]),
            f"on unchanged images: {probability(conf[f'{side}_unchanged'])}",
            f"Mean top probability of the {side} model on the images whose prediction changes.",
            brief=True,
        )
        for side in ("old", "new")
    )
    return Section("confidence", "Changed predictions", (words,), "info", rows=rows)


def _u_churn_floor(u: UnlabelledComparison) -> Section | None:
    r = u.reference
    if r is None:
        return None
    words = (
        f"{percent(r.reference_churn)} of predictions change with {r.reference_name}; the update alone changes "
        f"{r.update_only}, the retrain alone {r.reference_only} (McNemar p {p_text(r.p_value)})"
    )
    return Section(
        "churn_floor", METRICS["churn_floor"].label, (words,), "info", values={"reference_name": r.reference_name}
    )


def _u_most_changed(u: UnlabelledComparison) -> Section:
    per = u.churn.per_class
    order = [int(j) for j in np.argsort(-per["changed"], kind="stable") if per["changed"][j] > 0]
    rows = tuple(
        Row(
            str(u.classes[j]),
            str(u.classes[j]),
            f"{per['changed'][j]} of {per['support'][j]}, {percent(per['churn'][j])}",
        )
        for j in order
    )
    words = (
        ", ".join(f"{r.label} ({r.value})" for r in rows[:MOST_CHANGED_CLASSES]) + " (by the old prediction)"
        if rows
        else "no image changes its predicted class"
    )
    return Section("most_changed", "Churn per class", (words,), "info", rows=rows, figure="churn_matrix")


def _u_churn_slices(u: UnlabelledComparison) -> Section | None:
    if u.churn_slices is None:
        return None
    sig = u.significant_churn_slices()
    words = (
        f"{len(sig)} of {len(u.churn_slices.slices)} slices change significantly more predictions than the rest "
        f"(adjusted p < {ALPHA:g})"
    )
    rows = tuple(
        Row(
            sl.title,
            sl.title,
            f"{sl.negative_flips} of {sl.size} changed ({percent(sl.negative_flip_rate)}, "
            f"rest {percent(sl.rest_negative_flip_rate)}), adjusted p {p_value(sl.p_adjusted)}",
        )
        for sl in sig
    )
    return Section(
        "churn_slices",
        "Churn slices",
        (words,),
        "worse" if sig else "same",
        rows=rows,
        values={"max_lines": str(MAX_SLICE_LINES)},
    )


def _u_compatibility(u: UnlabelledComparison) -> Section | None:
    if u.compatibility is None:
        return None
    words = f"{compatibility_sentence(u.compatibility)} (classes: the old model's predictions)"
    return Section("compatibility", "Embeddings", (words,), "info")


def build_unlabelled_sections(u: UnlabelledComparison) -> tuple[Section, ...]:
    """The sections of a comparison without labels, in the order of :data:`UNLABELLED_KEYS`.

    Left out when they do not apply: the changed predictions' confidence without class scores,
    the churn floor without a reference, churn slices when none were searched, the embeddings
    without a cross-test.
    """
    built = (
        _u_headline(u),
        _u_churn(u),
        _u_confidence(u),
        _u_churn_floor(u),
        _u_most_changed(u),
        _u_churn_slices(u),
        _u_compatibility(u),
    )
    return tuple(s for s in built if s is not None)
