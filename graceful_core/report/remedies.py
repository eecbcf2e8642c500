"""Words and pictures for the what-if remedies: the terminal text of ``graceful mitigate``, the one-line
summary (Overview, HTML report) and the NFR-against-error figure (Mitigate page)."""

from __future__ import annotations

from graceful_core.metrics.whatif import WhatIfPoint, WhatIfReport
from graceful_core.vocabulary import count, images, percent

__all__ = ["whatif_text", "whatif_line", "whatif_figure", "METHOD_COLOURS"]


def _row(p: WhatIfPoint) -> str:
    lo, hi = p.negative_flip_rate_ci95
    return (
        f"  {p.label():<28} negative flips {p.negative_flips:>6,}  NFR {percent(p.negative_flip_rate):>7} "
        f"[{percent(lo)}, {percent(hi)}]  error {percent(p.error_rate):>7}  models {p.cost}"
    )


def whatif_text(report: WhatIfReport) -> str:
    """The mixing curve, the best gating and interpolation points, and the recommendation."""
    lines = [
        f"What-if remedies on {images(report.n_samples)} (new alone: {count(report.new_negative_flips)} negative "
        f"flips, error {percent(report.new_errors / max(report.n_samples, 1))})",
        "mixing (1 - w)·p_old + w·p_new:",
    ]
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


#: Where the details are: the line is also in the HTML report, which a reader may open without the app.
_SEE = "(details: the Mitigate page of the app, or graceful mitigate)"


def whatif_line(report: WhatIfReport) -> str:
    """One line for the Overview and the HTML report (after ``WHATIF_LINE_LABEL``): what it would change."""
    r = report.recommended
    p, n = r.point, r.new
    if p.method == "mixing" and p.params["w_new"] == 1.0:
        return f"none lowers the negative flips within the error allowance {_SEE}."
    if p.negative_flips >= n.negative_flips:
        return (
            f"none helps: the rule's choice, {p.label()} (chosen by {r.chosen_on}), leaves {p.negative_flips:,} "
            f"negative flips against the new model's {n.negative_flips:,} on held-out images {_SEE}."
        )
    # When the halves chose other settings than the deployed one, the held-out counts are theirs, not its.
    held = (
        "on held-out images"
        if r.folds_agree
        else (
            "on held-out images, measuring the setting each half chose ("
            + "; ".join(f.point.label() for f in r.folds)
            + ") on the other half"
        )
    )
    return (
        f"{p.label()} (chosen by {r.chosen_on}): {p.negative_flips:,} negative flips instead of "
        f"{n.negative_flips:,} {held}, error {(p.error_rate - n.error_rate) * 100:+.2f} points; "
        f"cost: {'both models at inference' if p.cost == 2 else 'none'} {_SEE}."
    )


#: Colours of the remedy curves (one per method).
METHOD_COLOURS = {"mixing": "#2ca02c", "gating": "#9467bd", "interpolation": "#8c564b"}


def whatif_figure(report: WhatIfReport):
    """Plotly figure: NFR against error rate, one trace per remedy, the two models and the recommended setting marked.

    The points are the whole evaluation set's numbers; the recommended setting is marked
    where it lies on its curve (its held-out numbers are in the sentence, not the picture).
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    groups = [
        ("mixing", report.mixing, "lines+markers"),
        ("gating", report.gating, "markers"),
        ("interpolation", report.interpolation or (), "lines+markers"),
    ]
    for method, pts, mode in groups:
        if not pts:
            continue
        fig.add_trace(
            go.Scatter(
                x=[p.error_rate * 100 for p in pts],
                y=[p.negative_flip_rate * 100 for p in pts],
                mode=mode,
                name=method,
                marker={"color": METHOD_COLOURS[method], "size": 7},
                line={"color": METHOD_COLOURS[method]},
                text=[p.label() for p in pts],
                customdata=[[p.negative_flips, p.positive_flips, p.cost] for p in pts],
                hovertemplate="%{text}<br>error %{x:.2f} %<br>NFR %{y:.2f} % (%{customdata[0]} negative flips, "
                "%{customdata[1]} positive)<br>models at inference: %{customdata[2]}<extra></extra>",
            )
        )
    ends = [("old", report.mixing[0]), ("new", report.mixing[-1])]
    fig.add_trace(
        go.Scatter(
            x=[p.error_rate * 100 for _, p in ends],
            y=[p.negative_flip_rate * 100 for _, p in ends],
            mode="markers+text",
            text=[n for n, _ in ends],
            textposition="top right",
            marker={"color": "#444", "size": 11, "symbol": "circle-open"},
            name="old / new",
            hoverinfo="skip",
        )
    )
    rec = report.recommended
    on_curve = next((p for p in report.points() if p.method == rec.method and dict(p.params) == dict(rec.params)), None)
    if on_curve is not None:
        fig.add_trace(
            go.Scatter(
                x=[on_curve.error_rate * 100],
                y=[on_curve.negative_flip_rate * 100],
                mode="markers",
                name="recommended",
                marker={"color": "#d62728", "size": 18, "symbol": "star"},
                text=[on_curve.label()],
                hovertemplate="recommended: %{text}<extra></extra>",
            )
        )
    new_err = report.new_errors / max(report.n_samples, 1) * 100
    fig.add_vline(
        x=new_err + rec.max_error_increase * 100,
        line_dash="dot",
        line_color="#888",
        annotation_text="new's error + allowance",
        annotation_position="bottom right",
    )
    fig.update_layout(
        xaxis_title="error rate of the remedy (%)",
        yaxis_title="negative flip rate (%)",
        height=420,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig
