"""Plain-words verdicts and summaries shared by the CLI, the app and the HTML report."""

from __future__ import annotations

import math

from graceful_core.comparison import Comparison

#: Significance level of the McNemar verdict.
ALPHA = 0.05


def fmt_pct(x: float | None, digits: int = 1) -> str:
    """``0.1234 -> '12.3 %'``; undefined (None/nan) -> ``'n/a'``."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{100 * x:.{digits}f} %"


def fmt_num(x: float | None, digits: int = 3) -> str:
    """A plain number, or ``'n/a'`` when undefined."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}g}" if abs(x) < 1e-3 and x != 0 else f"{x:.{digits}f}"


def significance_verdict(n_negative_flips: int, n_positive_flips: int, p_value: float) -> tuple[str, str]:
    """Verdict of the exact McNemar test at :data:`ALPHA`.

    Returns ``(kind, words)`` with kind in ``{"better", "worse", "same"}``.
    """
    if p_value < ALPHA and n_positive_flips > n_negative_flips:
        return "better", f"new is significantly better (McNemar p = {p_value:.2g})"
    if p_value < ALPHA and n_negative_flips > n_positive_flips:
        return "worse", f"new is significantly worse (McNemar p = {p_value:.2g})"
    return "same", f"old and new are not distinguishable on this data (McNemar p = {p_value:.2g})"


#: How much accuracy the old classifier head may lose on the new embeddings and still "work".
OLD_HEAD_TOLERANCE = 0.01


def old_head_verdict(c: Comparison) -> tuple[str, str] | None:
    """("better"|"worse", words) on the old classifier head applied to the new embeddings.

    It "keeps working" when its accuracy on the new embeddings is at most
    :data:`OLD_HEAD_TOLERANCE` below the old model's own accuracy. None when there is no
    such measurement (the old side has no exported head, or no comparable embeddings).
    """
    acc = c.old_head_on_new_accuracy
    if acc is None:
        return None
    own = c.summary["old_accuracy"]
    head = (f"Old classifier head on new embeddings: {fmt_pct(acc, 2)} of all {c.n_samples} images right "
            f"(the old model itself: {fmt_pct(own, 2)}).")
    if acc >= own - OLD_HEAD_TOLERANCE:
        return "better", head + " Classifiers and other post-processing built on the old embedding keep working."
    return "worse", head + (" Anything built on the old embedding (classifiers, thresholds, clusters) breaks with "
                            "the new model and must be rebuilt.")


def headline(c: Comparison) -> str:
    """One line a stakeholder can read: what the update fixes and what it breaks."""
    s = c.summary
    fix, brk = s["n_positive_flips"], s["n_negative_flips"]
    img = lambda k: "image" if k == 1 else "images"  # noqa: E731
    return (
        f"The update fixes {fix} {img(fix)} and breaks {brk} {img(brk)} of {s['n_samples']} "
        f"(accuracy {fmt_pct(s['old_accuracy'])} → {fmt_pct(s['new_accuracy'])})."
    )


def text_summary(c: Comparison) -> str:
    """The CLI's human summary (several lines)."""
    s = c.summary
    lo, hi = s["negative_flip_rate_ci95"]
    kind, words = significance_verdict(s["n_negative_flips"], s["n_positive_flips"], s["mcnemar_p_value"])
    lines = [
        f"old: {c.old_name}   new: {c.new_name}   samples: {s['n_samples']}",
        headline(c),
        f"negative flip rate  {fmt_pct(s['negative_flip_rate'], 2)} of all samples "
        f"(95 % CI {fmt_pct(lo, 2)} to {fmt_pct(hi, 2)})",
        f"positive flip rate  {fmt_pct(s['positive_flip_rate'], 2)} of all samples",
        f"relative NFR        {fmt_num(s['relative_negative_flip_rate'])}",
        f"backward trust      {fmt_pct(s['backward_trust_compatibility'], 2)} of old-correct samples stay correct",
        f"backward error      {fmt_pct(s['backward_error_compatibility'], 2)} of new errors were old errors too",
        f"significance        {words}",
    ]
    if c.compatibility is not None:
        lines.append(f"embeddings          {c.compatibility.verdict()}")
    return "\n".join(lines)
