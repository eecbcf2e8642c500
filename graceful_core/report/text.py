"""The command line's summary of a comparison: its sections (:mod:`graceful_core.report.sections`) as plain lines.

The face decides only how the sections look in a terminal: one aligned line per metric and
verdict, and the short (``brief``) metric cards only. The order is the sections' own, the one
every face follows (:data:`~graceful_core.report.sections.SECTION_KEYS`,
:data:`~graceful_core.report.sections.UNLABELLED_KEYS`); like the HTML report's label review, the
label issues and the flip verdicts (``extra_lines``) come between the lead and the rest
(:func:`~graceful_core.report.sections.lead_and_body`).
"""

from __future__ import annotations

from collections.abc import Iterable

from graceful_core.comparing.labelfree import UnlabelledComparison
from graceful_core.report.sections import (
    Section,
    build_sections,
    build_unlabelled_sections,
    lead_and_body,
    section_of,
)
from graceful_core.report.sentences import MAX_SLICE_LINES
from graceful_core.results.comparison import Comparison
from graceful_core.vocabulary import METRICS, count

__all__ = ["text_summary", "unlabelled_summary"]

#: Width of the label column of the summary without labels.
UNLABELLED_WIDTH = 22


def _lines(sec: Section, width: int, head: str) -> list[str]:
    """One section as lines; ``width`` is the aligned label column's, ``head`` names the two models."""
    key, v = sec.key, sec.values
    if key == "headline":  # a subset is said first, before any number
        return [f"WARNING: {w}" for w in sec.warnings] + [head, *sec.sentences]
    if key == "worst_class":
        return list(sec.sentences)
    if key == "cards":
        return [f"{r.name:<{width}}{r.value:>9}   {r.caption}" for r in sec.rows if r.brief]
    if key == "significance":
        return [f"{'significance':<{width}}{sec.lead}"]
    if key == "churn_floor":
        return [f"{METRICS['churn_floor'].name:<{width}}{sec.sentences[0]}", f"{'':<{width}}{sec.lead}"]
    if key == "compatibility":
        lines = [f"{'embeddings':<{width}}{sec.sentences[0]}"]
        if "overlap" in v:
            lines.append(
                f"{v['overlap_name']:<{width}}{v['overlap']:>9}   of the new embeddings' nearest old "
                "embeddings are the same image"
            )
        return lines
    if key == "slices":
        lines = [f"{sec.title.lower():<{width}}{sec.lead}"]
        lines.extend(f"  {r.label}: {r.value}" for r in sec.rows[:MAX_SLICE_LINES])
        if len(sec.rows) > MAX_SLICE_LINES:
            lines.append(f"  … and {len(sec.rows) - MAX_SLICE_LINES} more (all in the JSON report's regression_slices)")
        return lines
    if key == "flips":
        return [
            f"{'negative flips':<{width}}{sec.lead.rstrip('.')} (ids: the JSON report; images: the HTML report or "
            "the app)"
        ]
    if key == "remedy":
        return [f"{sec.title.lower()}: {sec.lead}"]
    raise ValueError(f"the CLI summary has no way to draw the section {key!r}")


def text_summary(c: Comparison, sections: tuple[Section, ...] | None = None, extra_lines: Iterable[str] = ()) -> str:
    """The CLI's human summary of ``c``: every section of ``sections`` (default :func:`build_sections`).

    ``extra_lines`` (the label issues and the flip verdicts) come between the lead and the rest, as the
    HTML report's label review does.
    """
    sections = build_sections(c) if sections is None else sections
    s = c.summary
    cards = section_of(sections, "cards")
    width = 2 + max((len(r.name) for r in cards.rows if r.brief), default=0) if cards is not None else 2
    head = f"old: {c.old_name}   new: {c.new_name}   samples: {count(s.n_samples)}"
    lead, body = lead_and_body(sections)
    lines = [line for sec in lead for line in _lines(sec, width, head)]
    lines.extend(line for line in extra_lines if line)
    lines.extend(line for sec in body for line in _lines(sec, width, head))
    return "\n".join(lines)


def _unlabelled_lines(sec: Section, head: str) -> list[str]:
    """One section of a comparison without labels as lines."""
    w = UNLABELLED_WIDTH
    if sec.key == "headline":  # a subset first, then that there are no labels, before any number
        return [f"WARNING: {w}" for w in sec.warnings] + [head, *sec.notes, *sec.sentences]
    if sec.key == "churn":
        r = sec.rows[0]
        return [f"{r.name:<{w}}{r.value:>9}   {r.caption}"]
    label = {
        "most_changed": "most changed",
        "confidence": "changed predictions",
        "churn_floor": "churn floor",
        "compatibility": "embeddings",
        "churn_slices": "churn slices",
    }.get(sec.key)
    if label is None:
        raise ValueError(f"the CLI summary has no way to draw the section {sec.key!r}")
    lines = [f"{label:<{w}}{sec.lead}"]
    if sec.key == "churn_slices":
        lines.extend(f"  {r.label}: {r.value}" for r in sec.rows[:MAX_SLICE_LINES])
    return lines


def unlabelled_summary(u: UnlabelledComparison, sections: tuple[Section, ...] | None = None) -> str:
    """The CLI's summary of a comparison without labels: what is known, and what does not exist."""
    sections = build_unlabelled_sections(u) if sections is None else sections
    head = f"old: {u.old_name}   new: {u.new_name}   samples: {count(u.n_samples)}   labels: none"
    return "\n".join(line for sec in sections for line in _unlabelled_lines(sec, head))
