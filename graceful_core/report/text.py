"""The command line's summary of a comparison: its sections (:mod:`graceful_core.report.sections`) as plain lines.

The face decides only how the sections look in a terminal: one aligned line per metric and
verdict, the short (``brief``) metric cards only, and its own order (:data:`TEXT_ORDER`: the
numbers as one aligned table first, the remedy last, after the label issues).
"""

from __future__ import annotations

from collections.abc import Iterable

from graceful_core.comparing.labelfree import UnlabelledComparison
from graceful_core.report.sections import (
    SECTION_KEYS,
    UNLABELLED_KEYS,
    Section,
    build_sections,
    build_unlabelled_sections,
    section_of,
)
from graceful_core.report.sentences import MAX_SLICE_LINES
from graceful_core.results.comparison import Comparison
from graceful_core.vocabulary import METRICS

__all__ = ["TEXT_ORDER", "UNLABELLED_TEXT_ORDER", "text_summary", "unlabelled_summary"]

#: The order of the sections in the CLI summary (every key of :data:`~graceful_core.report.sections.SECTION_KEYS`).
TEXT_ORDER = (
    "headline",
    "worst_class",
    "cards",
    "significance",
    "churn_floor",
    "compatibility",
    "slices",
    "flips",
    "remedy",
)
#: The order of the sections in the CLI summary of a comparison without labels.
UNLABELLED_TEXT_ORDER = (
    "headline",
    "churn",
    "most_changed",
    "confidence",
    "churn_floor",
    "compatibility",
    "churn_slices",
)
assert sorted(TEXT_ORDER) == sorted(SECTION_KEYS) and sorted(UNLABELLED_TEXT_ORDER) == sorted(UNLABELLED_KEYS)
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

    ``extra_lines`` (the label issues and the flip verdicts) come before the remedy.
    """
    sections = build_sections(c) if sections is None else sections
    s = c.summary
    cards = section_of(sections, "cards")
    width = 2 + max((len(r.name) for r in cards.rows if r.brief), default=0) if cards is not None else 2
    head = f"old: {c.old_name}   new: {c.new_name}   samples: {s.n_samples}"
    lines: list[str] = []
    for key in TEXT_ORDER:
        if key == "remedy":
            lines.extend(line for line in extra_lines if line)
        sec = section_of(sections, key)
        if sec is None:
            continue
        lines.extend(_lines(sec, width, head))
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
    head = f"old: {u.old_name}   new: {u.new_name}   samples: {u.n_samples}   labels: none"
    lines: list[str] = []
    for key in UNLABELLED_TEXT_ORDER:
        sec = section_of(sections, key)
        if sec is not None:
            lines.extend(_unlabelled_lines(sec, head))
    return "\n".join(lines)
