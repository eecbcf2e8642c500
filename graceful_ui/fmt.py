"""Display formats of the app (percentages say "n/a" when undefined)."""

from __future__ import annotations

import math

from graceful_core.summary import fmt_num, fmt_pct

PCT_DIGITS = 2


def pct(x: float | None) -> str:
    """A rate as a percentage with two decimals, ``'n/a'`` when undefined."""
    return fmt_pct(x, PCT_DIGITS)


def num(x: float | None) -> str:
    """A plain ratio with three decimals, ``'n/a'`` when undefined."""
    return fmt_num(x, 3)


def p_value(p: float | None) -> str:
    """A p-value with three significant digits."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    return f"{p:.3g}"


def interval(ci) -> str:
    """``'0.81 % – 3.13 %'`` for a (low, high) pair of rates."""
    lo, hi = ci
    return f"{pct(lo)} – {pct(hi)}"


def md(text: object) -> str:
    """``text`` with the characters that make Markdown links, images, code, emphasis, HTML,
    headings, Streamlit colour/icon directives or LaTeX backslash-escaped, so user-controlled
    strings (file names, class names, ids, URL values) are shown literally."""
    import re

    return re.sub(r"([\\`*_\[\]()!<>#|~$:])", r"\\\1", str(text))


def code(text: object) -> str:
    """``text`` as a Markdown code span (shown literally; a backtick inside becomes ')."""
    return "`" + str(text).replace("`", "'") + "`"
