"""Plotly figures shared by the app and the HTML report (pure: data in, figure out)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

NEG_COLOUR = "#d62728"  # old right -> new wrong
POS_COLOUR = "#2ca02c"  # old wrong -> new right


def transition_heatmap(matrix: np.ndarray, classes: list[str], *, title: str | None = None) -> go.Figure:
    """Old -> new prediction counts; row = old prediction, column = new prediction.

    The diagonal (unchanged predictions) dwarfs everything else, so colour uses
    log(1 + count) while hover and labels show the raw count.
    """
    m = np.asarray(matrix)
    fig = go.Figure(
        go.Heatmap(
            z=np.log1p(m),
            x=[f"new: {c}" for c in classes],
            y=[f"old: {c}" for c in classes],
            text=m,
            texttemplate="%{text}",
            customdata=m,
            hovertemplate="old predicted %{y}<br>new predicts %{x}<br>%{customdata} samples<extra></extra>",
            colorscale="Blues",
            showscale=False,
        )
    )
    fig.update_layout(
        title=title or "Old → new predictions (row = old prediction, column = new prediction)",
        yaxis={"autorange": "reversed"},
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        height=460,
    )
    return fig


def per_class_flip_bars(per_class: pd.DataFrame) -> go.Figure:
    """Negative and positive flips per true class (grouped bars).

    ``per_class`` needs the columns ``class``, ``negative_flips`` and ``positive_flips``
    (as :attr:`graceful_core.comparison.Comparison.per_class`). The x axis is
    categorical, so class names such as ``"0"``..``"9"`` are not read as numbers.
    """
    missing = {"class", "negative_flips", "positive_flips"} - set(per_class.columns)
    if missing:
        raise ValueError(f"per_class lacks the columns {sorted(missing)}")
    fig = go.Figure()
    fig.add_bar(x=per_class["class"].astype(str), y=per_class["negative_flips"], name="negative flips (old ✓ → new ✗)",
                marker_color=NEG_COLOUR)
    fig.add_bar(x=per_class["class"].astype(str), y=per_class["positive_flips"], name="positive flips (old ✗ → new ✓)",
                marker_color=POS_COLOUR)
    fig.update_layout(
        barmode="group",
        title="Flips per true class",
        xaxis={"title": {"text": "true class"}, "type": "category"},
        yaxis_title="images",
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        height=360,
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def top_k_bars(classes: list[str], old_probs: np.ndarray, new_probs: np.ndarray, k: int = 5) -> go.Figure:
    """Both models' top-k class probabilities for one sample, side by side.

    Each panel shows that model's ``k`` most probable classes (ties to the lower class
    index), the most probable on top; the y axes are categorical.
    """
    old_probs, new_probs = np.asarray(old_probs, dtype=float), np.asarray(new_probs, dtype=float)
    if old_probs.shape != (len(classes),) or new_probs.shape != (len(classes),):
        raise ValueError(f"probabilities must have shape ({len(classes)},), got {old_probs.shape} and {new_probs.shape}")
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("old model", "new model"))
    for col, probs in ((1, old_probs), (2, new_probs)):
        order = np.argsort(-probs, kind="stable")[:k]
        fig.add_bar(x=[float(probs[i]) for i in order][::-1], y=[str(classes[i]) for i in order][::-1],
                    orientation="h", row=1, col=col, showlegend=False,
                    text=[f"{100 * probs[i]:.1f} %" for i in order][::-1], textposition="auto")
    fig.update_xaxes(range=[0, 1], title_text="probability")
    fig.update_yaxes(type="category")
    fig.update_layout(height=300, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig
