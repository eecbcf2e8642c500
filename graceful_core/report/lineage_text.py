"""A model set in the terminal: the matrices, index sharing and the lineage as plain text."""

from __future__ import annotations

from graceful_core.results.lineage import ModelSet
from graceful_core.vocabulary import METRICS, count, percent


def _cell(x: float | None, w: int) -> str:
    return percent(x).replace(" %", "%").rjust(w)


def matrix_text(ms: ModelSet) -> str:
    """A terminal rendering: accuracy, NFR, BTC and cross-test matrices, index sharing, chain."""
    names = ms.models
    w = max(9, *(len(n) for n in names)) + 1
    lines = [f"{count(ms.n_samples)} samples, {len(names)} models", f"{METRICS['accuracy'].name}:"]
    lines += [f"  {n:<{w}}{_cell(a, w)}" for n, a in zip(names, ms.accuracy)]
    for rows, title in (
        (ms.negative_flip_rate, f"{METRICS['negative_flip_rate'].name} (row = old, column = new)"),
        (ms.backward_trust_compatibility, f"{METRICS['backward_trust_compatibility'].name} (row = old, column = new)"),
        (ms.cross_top1, f"{METRICS['cross_test_hit_at_1'].name} (row = query model, column = gallery model)"),
    ):
        reasons = {r for row in ms.cross_top1_reason for r in row}
        if rows is ms.cross_top1 and all(x is None for row in rows for x in row) and len(reasons) == 1:
            lines.append(f"{title}: none, {reasons.pop()}")  # e.g. a streamed model set
            continue
        lines.append(title + ":")
        lines.append(" " * (w + 2) + "".join(n.rjust(w) for n in names))
        for n, row in zip(names, rows):
            lines.append(f"  {n:<{w}}" + "".join(_cell(x, w) for x in row))
    share = ms.can_share_index
    lines.append(
        "can share an index (queries of the first search the second's gallery better than it "
        "searches itself): " + (", ".join(f"{s.query} -> {s.gallery}" for s in share) or "none")
    )
    lin = ms.lineage
    chain = " -> ".join(names)
    lines.append(f"lineage {chain}:")
    for st, reg, ever in zip(lin.steps, lin.regressions_from_first[1:], lin.ever_regressed_from_first[1:]):
        lines.append(
            f"  {st.old} -> {st.new}: accuracy {_cell(st.new_accuracy, 0)}, "
            f"NFR {_cell(st.negative_flip_rate, 0)} ({count(st.negative_flips)} flips); "
            f"{names[0]} right but {st.new} wrong: {reg} (ever wrong since {names[0]}: {ever})"
        )
    return "\n".join(lines)
