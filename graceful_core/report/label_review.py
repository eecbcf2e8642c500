"""Words and report parts about label issues and flip verdicts (CLI, HTML report, JSON).

The numbers come from :mod:`graceful_core.metrics.label_issues` (on the comparison) and
:mod:`graceful_core.review.verdicts` (the review store); this module only phrases them: the
headline's second number, the CLI lines, the HTML report's section and the JSON
report's ``flip_verdicts``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from graceful_core.metrics.label_issues import negative_flip_rate_excluding
from graceful_core.results.comparison import Comparison
from graceful_core.review import verdicts as vd
from graceful_core.vocabulary import FLIP_VERDICTS, METRICS, count, images, interval, percent

__all__ = [
    "headline_excluding_flagged",
    "label_issue_lines",
    "verdict_line",
    "flip_verdicts_report",
    "load_verdicts",
    "counts_of",
    "verdicts_to_json",
    "html_context",
    "MAX_REPORT_VERDICTS",
]

#: The HTML report lists at most this many verdicts one by one (all are counted).
MAX_REPORT_VERDICTS = 300


def headline_excluding_flagged(comp: Comparison) -> str | None:
    """The headline's second number, e.g. "2.05 % of images break; 2.07 % if the 285 photos whose
    label looks wrong are left out. 76 of the 205 breaking images are ambiguous between two classes."

    None without label issues.
    """
    li, a = comp.label_issues, comp.arrays
    if li is None or a is None:
        return None
    nf = a.negative_flip_mask
    rate, ci, _, _ = negative_flip_rate_excluding(nf, li.flagged)
    fmt = METRICS["negative_flip_rate"].format
    n_amb = int((nf & li.ambiguous).sum())
    text = (
        f"{fmt(comp.summary.negative_flip_rate)} of images break; {fmt(rate)} (95 % CI {interval(ci)}) if the "
        f"{images(li.n_flagged)} whose label looks wrong are left out"
    )
    n_flagged_nf = int((nf & li.flagged).sum())
    text += f" ({n_flagged_nf} of them break)."
    if n_amb:
        text += f" {n_amb} of the breaking images are ambiguous: both models split between the same two classes."
    return text


def label_issue_lines(comp: Comparison) -> list[str]:
    """The CLI summary's lines about label issues (or why there are none)."""
    if comp.label_issues is None:
        return [f"label issues: {comp.label_issues_reason}"] if comp.label_issues_reason else []
    li = comp.label_issues
    return [
        f'label issues: {images(li.n_flagged)} flagged "label may be wrong", {count(li.n_ambiguous)} ambiguous '
        "(confident learning on both models' probabilities)",
        f"  {headline_excluding_flagged(comp)}",
    ]


def load_verdicts(comp: Comparison, db: str | os.PathLike | None = None) -> dict[str, vd.FlipVerdict]:
    """The comparison's verdicts from the review store ({} without a content key)."""
    return vd.get_verdicts(comp.key, db=db) if comp.key else {}


def counts_of(comp: Comparison, verdicts: dict[str, vd.FlipVerdict]) -> vd.VerdictCounts:
    """:func:`graceful_core.review.verdicts.verdict_counts` over the comparison's negative flips."""
    return vd.verdict_counts(verdicts, comp.flip_ids.negative, comp.n_samples)


def verdict_line(comp: Comparison, verdicts: dict[str, vd.FlipVerdict]) -> str | None:
    """e.g. "of 205 negative flips: 120 reviewed: 70 real regression, 38 label wrong; NFR without
    "label wrong": 1.67 %". None when nothing was reviewed."""
    if not verdicts:
        return None
    c = counts_of(comp, verdicts)
    return (
        f'{c.sentence()}; NFR without the images marked "label wrong": '
        f"{percent(c.negative_flip_rate_excluding_label_wrong)} (95 % CI {interval(c.ci95)})"
    )


verdicts_to_json = vd.verdicts_to_json


def flip_verdicts_report(comp: Comparison, db: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The JSON report's ``flip_verdicts`` (``docs/metrics.md``): the API's way to the verdicts of a
    comparison of files; None without a content key or without any verdict (``compare --json`` then
    has no such key either)."""
    v = load_verdicts(comp, db)
    if not v:
        return None
    return vd.verdicts_to_json(v, counts_of(comp, v))


def html_context(comp: Comparison, verdicts: dict[str, vd.FlipVerdict] | None) -> dict[str, Any]:
    """The HTML report's "Label issues and verdicts" section (``label_review`` in the template)."""
    li = comp.label_issues
    out: dict[str, Any] = {
        "headline": headline_excluding_flagged(comp),
        "reason": comp.label_issues_reason,
        "n_flagged": None if li is None else li.n_flagged,
        "n_ambiguous": None if li is None else li.n_ambiguous,
        "verdicts": None,
    }
    if verdicts is not None:
        c = counts_of(comp, verdicts)
        names = np.asarray(comp.classes, dtype=object)
        a = comp.arrays
        rows = []
        for sid in sorted(verdicts)[:MAX_REPORT_VERDICTS]:
            v = verdicts[sid]
            r = None if a is None else a.row_of.get(sid)
            rows.append(
                {
                    "id": sid,
                    "verdict": v.verdict,
                    "label": "" if a is None or r is None else names[a.labels[r]],
                    "corrected": v.corrected_label,
                    "note": v.note,
                    "author": v.author,
                }
            )
        out["verdicts"] = {
            "sentence": c.sentence(),
            "counts": [(k, c.by_verdict.get(k, 0)) for k in FLIP_VERDICTS],
            "nfr": percent(c.negative_flip_rate_excluding_label_wrong),
            "ci": interval(c.ci95),
            "rows": rows,
            "total": len(verdicts),
            "capped": len(verdicts) > MAX_REPORT_VERDICTS,
        }
    return out
