"""Words for the what-if remedies: the terminal text of ``graceful mitigate`` and the one-line summary."""

from __future__ import annotations

from graceful_core.metrics.whatif import WhatIfPoint, WhatIfReport

__all__ = ["whatif_text", "whatif_line"]


def _row(p: WhatIfPoint) -> str:
    lo, hi = p.negative_flip_rate_ci95
    return (f"  {p.label():<28} negative flips {p.negative_flips:>6,}  NFR {p.negative_flip_rate:6.2%} "
            f"[{lo:.2%}, {hi:.2%}]  error {p.error_rate:6.2%}  models {p.cost}")


def whatif_text(report: WhatIfReport) -> str:
    """The mixing curve, the best gating and interpolation points, and the recommendation."""
    lines = [f"What-if remedies on {report.n_samples:,} images (new alone: {report.new_negative_flips:,} negative "
             f"flips, error {report.new_errors / max(report.n_samples, 1):.2%})", "mixing (1 - w)·p_old + w·p_new:"]
    lines += [_row(p) for p in report.mixing]
    best_g = sorted(report.gating, key=lambda p: (p.negative_flips, p.errors))[:3]
    lines.append(f"gating ({len(report.gating)} settings; the three with fewest negative flips):")
    lines += [_row(p) for p in best_g]
    if report.interpolation is None:
        lines.append(f"interpolation: not available ({report.interpolation_reason})")
    else:
        lines.append("interpolation (1 - alpha)·θ_old + alpha·θ_new:")
        lines += [_row(p) for p in report.interpolation]
    lines.append("recommended: " + report.recommended.sentence())
    return "\n".join(lines)


def whatif_line(report: WhatIfReport) -> str:
    """One line for the Overview and the HTML report: what the recommended remedy would change."""
    r = report.recommended
    p, n = r.point, r.new
    if p.method == "mixing" and p.params["w_new"] == 1.0:
        return ("Remedies without training: none lowers the negative flips within the error allowance "
                "(see Mitigate).")
    return (f"Recommended remedy ({p.label()}, chosen by {r.chosen_on}): {p.negative_flips:,} negative flips "
            f"instead of {n.negative_flips:,} on held-out images, error {(p.error_rate - n.error_rate) * 100:+.2f} "
            f"points; cost: {'two models at inference' if p.cost == 2 else 'none'}.")
