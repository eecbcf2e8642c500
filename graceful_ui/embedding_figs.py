"""Plotly figures of the Embeddings page: joint and side-by-side 2-D layouts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

COLOUR_BY = {"model": "model", "class": "true class", "flip status": "flip"}
FLIP_COLOURS = {"negative flip": "#d62728", "positive flip": "#2ca02c", "both correct": "#9e9e9e",
                "both wrong": "#ff7f0e"}
MODEL_COLOURS = {"old": "#1f77b4", "new": "#ff7f0e"}


def _points(proj, samples: pd.DataFrame) -> pd.DataFrame:
    rows = samples.iloc[proj.indices]
    parts = []
    for model, xy in (("old", proj.old_xy), ("new", proj.new_xy)):
        parts.append(pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "model": model, "id": rows["id"].to_numpy(),
                                   "true class": rows["label"].astype(str).to_numpy(),
                                   "flip": rows["flip"].to_numpy()}))
    return pd.concat(parts, ignore_index=True)


def _colour_map(colour: str, df: pd.DataFrame) -> dict | None:
    return {"model": MODEL_COLOURS, "flip": FLIP_COLOURS}.get(colour)


def joint_figure(proj, samples: pd.DataFrame, colour_by: str, lines: bool) -> go.Figure:
    """Old (circles) and new (crosses) points in one shared map; optional old→new segments."""
    colour = COLOUR_BY[colour_by]
    df = _points(proj, samples)
    fig = px.scatter(df, x="x", y="y", color=colour, symbol="model", symbol_map={"old": "circle", "new": "x"},
                     color_discrete_map=_colour_map(colour, df), custom_data=["id", "model"],
                     hover_data={"x": False, "y": False, "id": True, "true class": True, "flip": True},
                     render_mode="svg" if len(df) <= 6000 else "webgl")
    if lines:
        m = len(proj.indices)
        xs = np.column_stack([proj.old_xy[:, 0], proj.new_xy[:, 0], np.full(m, np.nan)]).ravel()
        ys = np.column_stack([proj.old_xy[:, 1], proj.new_xy[:, 1], np.full(m, np.nan)]).ravel()
        fig.add_scatter(x=xs, y=ys, mode="lines", line={"width": 0.6, "color": "rgba(120,120,120,0.45)"},
                        hoverinfo="skip", name="old → new", showlegend=True)
    fig.update_traces(marker={"size": 6, "opacity": 0.8}, selector={"mode": "markers"})
    fig.update_layout(height=560, margin={"l": 10, "r": 10, "t": 30, "b": 10}, dragmode="lasso",
                      xaxis={"visible": False}, yaxis={"visible": False}, legend={"title": None})
    return fig


def side_by_side_figure(proj, samples: pd.DataFrame, colour_by: str) -> go.Figure:
    """Each model's own layout; the new one Procrustes-aligned to the old one for orientation."""
    colour = COLOUR_BY[colour_by]
    df = _points(proj, samples)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("old model alone", "new model alone"))
    cmap = _colour_map(colour, df)
    values = sorted(df[colour].unique(), key=str)
    palette = px.colors.qualitative.D3 + px.colors.qualitative.Alphabet
    for col, model in ((1, "old"), (2, "new")):
        sub = df[df["model"] == model]
        for i, v in enumerate(values):
            part = sub[sub[colour] == v]
            c = (cmap or {}).get(v, palette[i % len(palette)])
            fig.add_scatter(x=part["x"], y=part["y"], mode="markers", name=str(v), legendgroup=str(v),
                            showlegend=col == 1, marker={"size": 6, "color": c, "opacity": 0.8},
                            customdata=part[["id", "model"]].to_numpy(),
                            hovertemplate="%{customdata[0]}<extra>" + str(v) + "</extra>", row=1, col=col)
    fig.update_xaxes(visible=False).update_yaxes(visible=False)
    fig.update_layout(height=480, margin={"l": 10, "r": 10, "t": 40, "b": 10}, dragmode="lasso")
    return fig


def selected_ids(points: list[dict]) -> list[str]:
    """Sample ids of selected points (each point's customdata starts with the id), unique, in order."""
    seen: dict[str, None] = {}
    for p in points:
        cd = p.get("customdata")
        if isinstance(cd, (list, tuple)) and cd:
            seen.setdefault(str(cd[0]), None)
    return list(seen)
