"""Plotly figures shared by the app and the HTML report (pure: data in, figure out).

Every figure lays itself out for a page of any width: axes use ``automargin`` (Plotly
grows the margin to fit the tick labels and the axis title instead of cutting them),
count axes tick at whole numbers, and colours come from :mod:`graceful_core.vocabulary`.
Heatmaps whose cells the app lets the user click get their clickable layer from one
helper, :func:`add_clickable_cells` (Plotly cannot select heatmap cells).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from graceful_core.explore.selection import top_k
from graceful_core.vocabulary import (
    EMBEDDING_COLOURINGS,
    FLIP_COLOURS,
    FLIP_MARKS,
    METRICS,
    MODEL_COLOURS,
    images,
    percent,
)

if TYPE_CHECKING:
    from graceful_core.explore.projection import ProjectionResult
    from graceful_core.metrics.slices import RegressionSlice
    from graceful_core.results.comparison import GroupFlips
    from graceful_core.results.lineage import ModelSet

NEG_COLOUR = FLIP_COLOURS["negative flip"]
POS_COLOUR = FLIP_COLOURS["positive flip"]
#: Space around every plot area, in px; axes add what their labels need on top (automargin).
MARGIN = {"l": 16, "r": 16, "t": 56, "b": 16}
#: At most this many classes in a transition matrix or a per-class chart (the busiest ones).
MAX_CLASSES = 40
#: The title of the old -> new prediction matrix wherever it is drawn (app pages, HTML report).
TRANSITION_TITLE = "Old → new predictions (row = old, column = new)"
#: Colour of the "can search that index" arrows of the compatibility graph.
COMPATIBLE_COLOUR = "#2e7d32"


def _axes_fit(fig: go.Figure) -> go.Figure:
    """Every axis grows its margin to fit its tick labels and title (no clipping)."""
    return fig.update_xaxes(automargin=True).update_yaxes(automargin=True)


def _count_axis(max_count: float) -> dict[str, Any]:
    """A y axis for counts: whole-number ticks only (no "0.5 images")."""
    axis: dict[str, Any] = {"rangemode": "tozero", "tickformat": ",d"}
    if max_count <= 10:
        axis["dtick"] = 1
    return axis


def add_clickable_cells(
    fig: go.Figure, x: Sequence[str], y: Sequence[str], *, customdata: Sequence[Any], hovertemplate: str, size: int
) -> go.Figure:
    """Make every cell of a heatmap clickable: a nearly invisible square marker on each.

    ``x`` and ``y`` are the heatmap's column and row labels; markers go row by row (the
    marker of row i, column j is point ``i * len(x) + j``) and carry ``customdata[i * len(x) + j]``,
    which the app reads from the selection event.
    """
    k_x, k_y = len(x), len(y)
    fig.add_scatter(
        x=list(x) * k_y,
        y=[r for r in y for _ in range(k_x)],
        mode="markers",
        marker={"symbol": "square", "size": size, "opacity": 0.01},
        customdata=list(customdata),
        showlegend=False,
        hovertemplate=hovertemplate,
    )
    fig.update_xaxes(range=[-0.5, k_x - 0.5]).update_yaxes(range=[k_y - 0.5, -0.5], autorange=False)
    return fig


def transition_heatmap(
    matrix: np.ndarray, classes: Sequence[str], *, title: str | None = None, clickable: bool = False
) -> go.Figure:
    """Old -> new prediction counts; row = old prediction, column = new prediction.

    The diagonal (unchanged predictions) dwarfs everything else, so colour uses
    log(1 + count) while hover and labels show the raw count. With ``clickable`` every
    cell carries ``customdata = [old class, new class, count]`` for the app's selection.
    """
    m = np.asarray(matrix)
    x, y = [f"new: {c}" for c in classes], [f"old: {c}" for c in classes]
    fig = go.Figure(
        go.Heatmap(
            z=np.log1p(m),
            x=x,
            y=y,
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
        yaxis={"autorange": "reversed", "type": "category"},
        # tilted when the column labels would not fit side by side (e.g. "new: T-shirt/top" x 10)
        xaxis={
            "type": "category",
            "tickangle": -45 if len(classes) > 12 or len(x) * max((len(s) for s in x), default=0) > 80 else 0,
        },
        margin=MARGIN,
        height=460,
    )
    if clickable:
        k = len(classes)
        cd = [[str(a), str(b), int(m[i, j])] for i, a in enumerate(classes) for j, b in enumerate(classes)]
        add_clickable_cells(
            fig,
            x,
            y,
            customdata=cd,
            size=max(4, 340 // max(k, 1)),
            hovertemplate="%{y} → %{x}<br>%{customdata[2]} samples<extra></extra>",
        )
    return _axes_fit(fig)


def per_class_flip_bars(per_class: GroupFlips | pd.DataFrame) -> go.Figure:
    """Negative and positive flips per true class (grouped bars; trace 0 = negative flips).

    ``per_class`` is a comparison's per-class table (or a DataFrame with the columns
    ``class``, ``negative_flips`` and ``positive_flips``). The x axis is categorical, so
    class names such as ``"0"``..``"9"`` are not read as numbers.
    """
    df = per_class if isinstance(per_class, pd.DataFrame) else per_class.to_frame()
    missing = {"class", "negative_flips", "positive_flips"} - set(df.columns)
    if missing:
        raise ValueError(f"per_class lacks the columns {sorted(missing)}")
    x = df["class"].astype(str)
    fig = go.Figure()
    fig.add_bar(
        x=x, y=df["negative_flips"], name=f"negative flips ({FLIP_MARKS['negative flip']})", marker_color=NEG_COLOUR
    )
    fig.add_bar(
        x=x, y=df["positive_flips"], name=f"positive flips ({FLIP_MARKS['positive flip']})", marker_color=POS_COLOUR
    )
    top = float(max(df["negative_flips"].to_numpy().max(), df["positive_flips"].to_numpy().max())) if len(df) else 0.0
    fig.update_layout(
        barmode="group",
        title="Flips per true class",
        xaxis={"title": {"text": "true class"}, "type": "category"},
        yaxis={"title": {"text": "images"}, **_count_axis(top)},
        margin={**MARGIN, "t": 88},  # room for the legend's two rows under the title in a half-width column
        height=400,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
    )
    return _axes_fit(fig)


def top_k_bars(classes: Sequence[str], old_probs: np.ndarray, new_probs: np.ndarray, k: int = 5) -> go.Figure:
    """Both models' top-k class probabilities for one sample, side by side.

    Each panel shows that model's ``k`` most probable classes (:func:`graceful_core.explore.selection.top_k`:
    ties to the lower class index), the most probable on top; the y axes are categorical.
    """
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("old model", "new model"))
    for col, probs in ((1, old_probs), (2, new_probs)):
        top = top_k(probs, classes, k)[::-1]
        fig.add_bar(
            x=[p for _, p in top],
            y=[c for c, _ in top],
            orientation="h",
            row=1,
            col=col,
            showlegend=False,
            text=[percent(p, 1) for _, p in top],
            textposition="auto",
        )
    fig.update_xaxes(range=[0, 1], title_text="probability")
    fig.update_yaxes(type="category")
    fig.update_layout(height=300, margin=MARGIN)
    return _axes_fit(fig)


# --------------------------------------------------------------------------- embeddings
#: The Embeddings page's colourings: widget label -> column of :func:`embedding_points`
#: (read off :data:`~graceful_core.vocabulary.EMBEDDING_COLOURINGS`).
COLOUR_BY = {c.label: c.column for c in EMBEDDING_COLOURINGS}


def embedding_points(
    proj: ProjectionResult, samples: pd.DataFrame, cluster_names: Mapping[int, str] | None = None
) -> pd.DataFrame:
    """One row per (sample, model) point of a projection: x, y, model, id, true class, flip, and
    ``cluster`` (the old embeddings' cluster, named by ``cluster_names``) when ``samples`` has one."""
    rows = samples.iloc[proj.indices]
    parts = []
    for model, xy in (("old", proj.old_xy), ("new", proj.new_xy)):
        part = pd.DataFrame(
            {
                "x": xy[:, 0],
                "y": xy[:, 1],
                "model": model,
                "id": rows["id"].to_numpy(),
                "true class": rows["label"].astype(str).to_numpy(),
                "flip": rows["flip"].to_numpy(),
            }
        )
        if "cluster" in rows.columns:
            names = cluster_names or {}
            part["cluster"] = [names.get(int(c), str(c)) for c in rows["cluster"].to_numpy()]
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


#: Drawing order of the flip kinds in the embedding maps: later ones are drawn on top, so the
#: negative flips (what the maps are looked at for) are never hidden under other points.
FLIP_DRAW_ORDER = ("both correct", "both wrong", "positive flip", "negative flip")


def _category_order(colour: str, df: pd.DataFrame, cluster_names: Mapping[int, str] | None) -> list[str]:
    """Legend and drawing order: flip kinds by :data:`FLIP_DRAW_ORDER`, clusters by number, the rest as text."""
    if colour == "flip":
        present = set(df[colour])
        return [f for f in FLIP_DRAW_ORDER if f in present] + sorted(present - set(FLIP_DRAW_ORDER), key=str)
    if colour == "cluster" and cluster_names:
        present = set(df[colour])
        return [n for _, n in sorted(cluster_names.items()) if n in present]
    return sorted(df[colour].unique(), key=str)


def _colour_map(colour: str) -> Mapping[str, str] | None:
    return {"model": MODEL_COLOURS, "flip": FLIP_COLOURS}.get(colour)


def _cluster_colours(colour: str, df: pd.DataFrame, cluster_names: Mapping[int, str] | None) -> dict[str, Any]:
    """plotly.express options of the cluster colouring: legend by cluster number, 36 distinct colours."""
    if colour != "cluster":
        return {}
    import plotly.express as px

    return {
        "category_orders": {colour: _category_order(colour, df, cluster_names)},
        "color_discrete_sequence": px.colors.qualitative.D3 + px.colors.qualitative.Alphabet,
    }


#: The maps' hover labels: dark text on white. Plotly's default fills a label with its point's colour,
#: which the maps draw translucent, and the text came out light grey on near white.
MAP_HOVER_LABEL = {"bgcolor": "white", "font": {"color": "#262730"}}

#: The facts a point of the joint map shows on hover, besides the colouring's own value: in this order.
HOVER_FACTS = ("model", "id", "true class", "flip")
#: Render maps with more points than this with WebGL (an SVG map of 20,000 points redraws slowly).
WEBGL_ABOVE = 6000
#: At most this many marker traces in the joint map: its points are split into one trace per value of
#: the hover facts as long as that keeps the count under this, so those facts are written once per
#: trace (in its hover template) instead of once per point; the others stay in each point's data.
#: Few, because Plotly's drawing time grows with the traces: in headless Chromium the 20,000-point
#: Fashion map drew about 100 ms slower as 80 traces (every fact in the templates, 0.81 MB) than as
#: 8 (the class per point, 0.98 MB), which drew as fast as the single-trace-per-entry map (1.40 MB).
MAX_MAP_TRACES = 24


def _facts_per_trace(df: pd.DataFrame, keys: list[str], facts: Sequence[str]) -> list[str]:
    """The hover facts to split the traces by: the fewest-valued first, each while the traces stay few."""
    chosen: list[str] = []
    for fact in sorted(facts, key=lambda f: df[f].nunique()):
        if df.groupby(keys + chosen + [fact], sort=False).ngroups <= MAX_MAP_TRACES:
            chosen.append(fact)
    return chosen


def _split_points(part: pd.DataFrame, facts: list[str]) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """``part`` split by the values of ``facts`` (sorted): each group's values and rows; all of it without facts."""
    if not facts:
        return [({}, part)]
    return [
        (dict(zip(facts, key if isinstance(key, tuple) else (key,))), g) for key, g in part.groupby(facts, sort=True)
    ]


def joint_embedding_figure(
    proj: ProjectionResult,
    samples: pd.DataFrame,
    colour_by: str,
    lines: bool,
    cluster_names: Mapping[int, str] | None = None,
) -> go.Figure:
    """Old (circles) and new (crosses) points in one shared map; optional old→new segments.

    One legend entry per colour value and model (``"negative flip, old"``; ``"old"`` when coloured
    by model); each point's hover shows the colour value, its model, id, true class and flip kind.
    What is the same for many points is written once: the points are split into more traces than
    legend entries (by flip kind or true class while there are at most :data:`MAX_MAP_TRACES`),
    each entry's traces share a legend group, and the facts that are the same for a whole trace are
    text of its hover template. Each point carries only ``customdata = [id, <facts not fixed by its
    trace>]``: the map of all 10,000 Fashion-MNIST images (20,000 points, coloured by model or flip
    kind) is 0.98 MB instead of 1.40 MB with every fact per point. Colours and draw order are those
    of the side-by-side map.
    """
    import plotly.express as px

    colour = COLOUR_BY[colour_by]
    df = embedding_points(proj, samples, cluster_names)
    values = _category_order(colour, df, cluster_names)
    cmap = _colour_map(colour) or {}
    palette = (
        px.colors.qualitative.D3 + px.colors.qualitative.Alphabet
        if colour == "cluster"
        else px.colors.qualitative.Plotly
    )
    keys = [colour] if colour == "model" else [colour, "model"]
    hover = [colour] + [f for f in HOVER_FACTS if f != colour]
    split = _facts_per_trace(df, keys, [f for f in hover if f not in keys and f != "id"])
    per_point = ["id"] + [f for f in hover if f not in keys and f not in split and f != "id"]
    trace = go.Scattergl if len(df) > WEBGL_ABOVE else go.Scatter
    models = [m for m in ("old", "new") if m in set(df["model"])]
    fig = go.Figure()
    for i, v in enumerate(values):
        for model in [v] if colour == "model" else models:
            part = df.loc[(df[colour] == v) & (df["model"] == model)]
            name = str(v) if colour == "model" else f"{v}, {model}"
            for n, (fixed, g) in enumerate(_split_points(part, split)):
                known = {**dict(zip(keys, [v, model])), **fixed}
                lines_of = [
                    f"{f}=%{{customdata[{per_point.index(f)}]}}" if f in per_point else f"{f}={known[f]}" for f in hover
                ]
                fig.add_trace(
                    trace(
                        x=np.asarray(g["x"], np.float32),
                        y=np.asarray(g["y"], np.float32),
                        mode="markers",
                        name=name,
                        legendgroup=name,
                        showlegend=n == 0,
                        marker={
                            "color": cmap.get(v, palette[i % len(palette)]),
                            "symbol": "circle" if model == "old" else "x",
                            "size": 6,
                            "opacity": 0.8,
                        },
                        customdata=np.asarray(g[per_point], object),
                        hovertemplate="<br>".join(lines_of) + "<extra></extra>",
                    )
                )
    if lines:
        m = len(proj.indices)
        gap = np.full(m, np.nan, np.float32)  # float32 like the points: half the bytes of float64, same drawing
        xs = np.column_stack([proj.old_xy[:, 0], proj.new_xy[:, 0], gap]).astype(np.float32).ravel()
        ys = np.column_stack([proj.old_xy[:, 1], proj.new_xy[:, 1], gap]).astype(np.float32).ravel()
        fig.add_scatter(
            x=xs,
            y=ys,
            mode="lines",
            line={"width": 0.6, "color": "rgba(120,120,120,0.45)"},
            hoverinfo="skip",
            name="old → new",
            showlegend=True,
        )
    fig.update_layout(
        height=560,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        dragmode="lasso",
        xaxis={"visible": False},
        yaxis={"visible": False},
        legend={"title": None, "tracegroupgap": 0},  # one legend group per entry: no gap between them
        hoverlabel=MAP_HOVER_LABEL,
    )
    return fig


def side_by_side_embedding_figure(
    proj: ProjectionResult, samples: pd.DataFrame, colour_by: str, cluster_names: Mapping[int, str] | None = None
) -> go.Figure:
    """Each model's own layout; the new one Procrustes-aligned to the old one for orientation."""
    import plotly.express as px
    from plotly.subplots import make_subplots

    colour = COLOUR_BY[colour_by]
    df = embedding_points(proj, samples, cluster_names)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("old model alone", "new model alone"))
    cmap = _colour_map(colour) or {}
    values = _category_order(colour, df, cluster_names)
    palette = px.colors.qualitative.D3 + px.colors.qualitative.Alphabet
    in_legend: set[str] = set()  # each value once, from the first panel that has its points ("new": the second)
    for col, model in ((1, "old"), (2, "new")):
        sub = df.loc[df["model"] == model]
        for i, v in enumerate(values):
            part = sub[sub[colour] == v]
            show = str(v) not in in_legend and (len(part) > 0 or col == 2)
            if show:
                in_legend.add(str(v))
            fig.add_scatter(
                x=part["x"],
                y=part["y"],
                mode="markers",
                name=str(v),
                legendgroup=str(v),
                showlegend=show,
                marker={"size": 6, "color": cmap.get(v, palette[i % len(palette)]), "opacity": 0.8},
                customdata=part[["id"]].to_numpy(),  # the model is the panel's: not repeated per point
                hovertemplate="%{customdata[0]}<extra>" + str(v) + "</extra>",
                row=1,
                col=col,
            )
    fig.update_xaxes(visible=False).update_yaxes(visible=False)
    fig.update_layout(
        height=480, margin={"l": 10, "r": 10, "t": 40, "b": 10}, dragmode="lasso", hoverlabel=MAP_HOVER_LABEL
    )
    return fig


# --------------------------------------------------------------------------- regression slices
#: Colour of a slice that is not significant (a significant one is drawn in the negative-flip red).
SLICE_GREY = "#9e9e9e"


def slice_bars(slices: Sequence[RegressionSlice], *, selected: str | None = None) -> go.Figure:
    """Each slice's NFR (bar, Wilson 95 % interval as error bar) against the rest's NFR (a black mark).

    Slices in the given (rank) order from the top; significant ones (adjusted p < 0.05) in red,
    the others grey, the ``selected`` key outlined. Every bar and mark carries
    ``customdata = [key, title]``, so a click selects the slice (:func:`selected_slice`).
    The y axis holds positions with the titles as tick labels (two slices may share a title).
    """
    n = len(slices)
    y = list(range(n))
    pct = [100 * s.negative_flip_rate for s in slices]
    lo = [100 * (s.negative_flip_rate - s.negative_flip_rate_ci95[0]) for s in slices]
    hi = [100 * (s.negative_flip_rate_ci95[1] - s.negative_flip_rate) for s in slices]
    rest = [100 * s.rest_negative_flip_rate if not math.isnan(s.rest_negative_flip_rate) else None for s in slices]
    cd = [[s.key, s.title] for s in slices]
    p_raw, p_adj = METRICS["slice_p_value"], METRICS["slice_p_adjusted"]
    hover = [
        f"{percent(s.negative_flip_rate)} of {images(s.size)} (rest {percent(s.rest_negative_flip_rate)})"
        f"<br>{p_raw.label} {p_raw.format(s.p_value)} · {p_adj.label} {p_adj.format(s.p_adjusted)}"
        for s in slices
    ]
    fig = go.Figure()
    fig.add_bar(
        x=pct,
        y=y,
        orientation="h",
        name=METRICS["slice_negative_flip_rate"].label,
        marker={
            "color": [NEG_COLOUR if s.is_significant else SLICE_GREY for s in slices],
            "line": {"color": ["#222" if s.key == selected else "rgba(0,0,0,0)" for s in slices], "width": 2},
        },
        error_x={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo, "color": "#555", "thickness": 1},
        customdata=cd,
        hovertext=hover,
        hovertemplate="%{customdata[1]}<br>%{hovertext}<extra></extra>",
    )
    fig.add_scatter(
        x=rest,
        y=y,
        mode="markers",
        name=METRICS["rest_negative_flip_rate"].label,
        marker={"symbol": "line-ns", "size": 18, "line": {"width": 3, "color": "#222"}},
        customdata=cd,
        hovertemplate="%{customdata[1]}<br>rest: %{x:.2f} %<extra></extra>",
    )
    fig.update_layout(
        barmode="overlay",
        height=max(220, 60 + 28 * n),
        margin=MARGIN,
        dragmode=False,
        xaxis={"title": {"text": f"{METRICS['negative_flip_rate'].name} (%)"}, "rangemode": "tozero"},
        yaxis={"tickmode": "array", "tickvals": y, "ticktext": [s.title for s in slices], "autorange": "reversed"},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
    )
    return _axes_fit(fig)


def selected_slice(points: Sequence[Mapping[str, Any]]) -> str | None:
    """The key of the first clicked slice of a :func:`slice_bars` figure, or None."""
    for p in points:
        cd = p.get("customdata")
        if isinstance(cd, (list, tuple)) and cd:
            return str(cd[0])
    return None


# --------------------------------------------------------------------------- model sets
#: The model-set matrices: key -> (row axis, column axis, colour scale, hover words).
MODEL_SET_MATRICES: Mapping[str, tuple[str, str, str, str]] = {
    "negative_flip_rate": ("old model (row)", "new model (column)", "Reds", "old %{y} → new %{x}<br>NFR"),
    "backward_trust_compatibility": ("old model (row)", "new model (column)", "Greens", "old %{y} → new %{x}<br>BTC"),
    "cross_top1": ("query model (row)", "gallery model (column)", "Blues", "queries by %{y}, gallery by %{x}<br>Hit@1"),
}


#: Font size (px) of the values written in the model-set matrices' cells.
HEATMAP_TEXT_PX = 13
#: Up to this many models the cells are wide enough for that size (two matrices side by side at 800 px);
#: with more, Plotly sizes the text to fit the cells.
HEATMAP_TEXT_MAX_MODELS = 5


def model_set_heatmap(ms: ModelSet, key: str) -> go.Figure:
    """One matrix of a model set as an annotated heatmap whose cells can be clicked.

    ``key`` is one of :data:`MODEL_SET_MATRICES`. Each cell carries ``customdata =
    [row model, column model, value]``.
    """
    row_title, col_title, colours, hover = MODEL_SET_MATRICES[key]
    rows = getattr(ms, key)
    names = list(ms.models)
    k = len(names)
    z = np.array([[np.nan if x is None else float(x) for x in r] for r in rows], dtype=float)
    text = [[percent(x) for x in r] for r in rows]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=names,
            y=names,
            text=text,
            texttemplate="%{text}",
            # a fixed size: Plotly's automatic one shrinks every cell's text to fit the widest ("100.00 %"
            # on the trust matrix's diagonal), which left it small and faint
            textfont={"size": HEATMAP_TEXT_PX} if k <= HEATMAP_TEXT_MAX_MODELS else None,
            colorscale=colours,
            showscale=False,
            hoverinfo="skip",
        )
    )
    # markers no larger than a cell (55 px a row): a larger one covers its neighbour's centre, and a click there
    # selects the wrong pair (with 2 models, 150 px markers made every off-diagonal click open a diagonal cell)
    add_clickable_cells(
        fig,
        names,
        names,
        size=max(8, min(40, 300 // k)),
        customdata=[[a, b, text[i][j]] for i, a in enumerate(names) for j, b in enumerate(names)],
        hovertemplate=hover + "<br>%{customdata[2]}<extra></extra>",
    )
    fig.update_xaxes(title=col_title, type="category", side="top")
    fig.update_yaxes(title=row_title, type="category")
    fig.update_layout(height=140 + 55 * k, margin=MARGIN)
    return _axes_fit(fig)


def _point_labels(fig: go.Figure, x: Sequence[Any], y: Sequence[float], text: Sequence[str]) -> None:
    """Value labels above the points of a line, on a white box: readable where they cross a line or a bar."""
    for xi, yi, t in zip(x, y, text):
        fig.add_annotation(
            x=xi,
            y=yi,
            text=t,
            showarrow=False,
            yshift=14,
            bgcolor="rgba(255,255,255,0.9)",
            borderpad=1,
            font={"size": 11},
        )


def lineage_figure(ms: ModelSet) -> go.Figure:
    """Accuracy of each model (line) and NFR of each step (bars; the step into model k at k), in %."""
    names = list(ms.models)
    nfr = [s.negative_flip_rate for s in ms.lineage.steps]
    fig = go.Figure()
    fig.add_scatter(
        x=names,
        y=[100 * a for a in ms.accuracy],
        mode="lines+markers",
        name=METRICS["accuracy"].name,
        text=[percent(a) for a in ms.accuracy],
        hovertemplate="%{x}: accuracy %{text}<extra></extra>",
    )
    _point_labels(fig, names, [100 * a for a in ms.accuracy], [percent(a) for a in ms.accuracy])
    fig.add_bar(
        x=names[1:],
        y=[100 * x for x in nfr],
        name="NFR of the step (previous → this)",
        yaxis="y2",
        text=[percent(x) for x in nfr],
        opacity=0.6,
        hovertemplate="%{x}: NFR from the previous model %{text}<extra></extra>",
    )
    fig.update_layout(
        yaxis={"title": "accuracy (%)"},
        yaxis2={
            "title": "NFR of the step (%)",
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
            "automargin": True,
        },
        xaxis={"title": "lineage (v1 → latest)", "type": "category"},
        height=380,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
        margin=MARGIN,
    )
    return _axes_fit(fig)


def regressions_figure(ms: ModelSet) -> go.Figure:
    """Regressions from v1 along the chain: v1 right and this model wrong; and ever wrong since v1."""
    names = list(ms.models)
    lin = ms.lineage
    fig = go.Figure()
    fig.add_scatter(
        x=names,
        y=list(lin.ever_regressed_from_first),
        mode="lines+markers",
        name=f"ever wrong since {names[0]}",
        line={"dash": "dot"},
        hovertemplate="%{x}: %{y} images<extra></extra>",
    )
    fig.add_scatter(
        x=names,
        y=list(lin.regressions_from_first),
        mode="lines+markers",
        name=f"{names[0]} right, this model wrong",
        hovertemplate="%{x}: %{y} images<extra></extra>",
    )
    _point_labels(fig, names, list(lin.regressions_from_first), [str(v) for v in lin.regressions_from_first])
    top = max([*lin.ever_regressed_from_first, 0])
    fig.update_layout(
        yaxis={"title": "images", **_count_axis(top)},
        xaxis={"title": "lineage (v1 → latest)", "type": "category"},
        height=380,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
        margin=MARGIN,
    )
    return _axes_fit(fig)


def compatibility_graph(ms: ModelSet) -> go.Figure:
    """Nodes = models on a circle; an arrow q → g where q's queries can search g's index."""
    names = list(ms.models)
    k = len(names)
    ang = [math.pi / 2 - 2 * math.pi * i / k for i in range(k)]
    pos = {nm: (math.cos(a), math.sin(a)) for nm, a in zip(names, ang)}
    fig = go.Figure()
    for e in ms.can_share_index:
        (x0, y0), (x1, y1) = pos[e.query], pos[e.gallery]
        fig.add_scatter(
            x=[x0, x1],
            y=[y0, y1],
            mode="lines",
            line={"width": 2, "color": COMPATIBLE_COLOUR},
            showlegend=False,
            hoverinfo="skip",
        )
        fig.add_annotation(
            x=x0 + 0.85 * (x1 - x0),
            y=y0 + 0.85 * (y1 - y0),
            ax=x0,
            ay=y0,
            xref="x",
            yref="y",
            axref="x",
            ayref="y",
            showarrow=True,
            arrowhead=3,
            arrowsize=1.5,
            arrowcolor=COMPATIBLE_COLOUR,
            text="",
        )
    fig.add_scatter(
        x=[pos[nm][0] for nm in names],
        y=[pos[nm][1] for nm in names],
        mode="markers+text",
        text=names,
        textposition="top center",
        marker={"size": 26, "color": MODEL_COLOURS["old"]},
        customdata=[percent(s) for s in ms.self_top1],
        showlegend=False,
        hovertemplate="%{text}: self-test Hit@1 %{customdata}<extra></extra>",
    )
    fig.update_xaxes(visible=False, range=[-1.5, 1.5])
    fig.update_yaxes(visible=False, range=[-1.4, 1.5], scaleanchor="x")
    fig.update_layout(height=380, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig


# --------------------------------------------------------------------------- training runs
def tradeoff_figure(
    runs: Sequence[Mapping[str, Any]], methods: Sequence[str], describe: Mapping[str, str]
) -> go.Figure:
    """NFR against the new error rate, one point per trained run, one trace per method.

    ``runs`` are run records (``spec_id``, ``params.method``, ``metrics``); ``describe``
    maps a run's ``spec_id`` to its name. Each point carries ``customdata = [spec_id, name]``.
    """
    fig = go.Figure()
    for meth in methods:
        pts = [r for r in runs if r["params"]["method"] == meth]
        if not pts:
            continue
        fig.add_scatter(
            x=[100 * (r["metrics"]["new_error_rate"] or 0) for r in pts],
            y=[100 * (r["metrics"]["negative_flip_rate"] or 0) for r in pts],
            mode="markers",
            name=meth,
            marker={"size": 11},
            customdata=[[r["spec_id"], describe[r["spec_id"]]] for r in pts],
            hovertemplate="%{customdata[1]}<br>error %{x:.2f} %<br>NFR %{y:.2f} %<extra></extra>",
        )
    fig.update_layout(
        xaxis_title=f"{METRICS['new_error_rate'].name} (%)",
        yaxis_title=f"{METRICS['negative_flip_rate'].name} (%)",
        height=380,
        margin=MARGIN,
    )
    return _axes_fit(fig)


#: Line styles of the series of :func:`epoch_curves`, in order (the trained update first, then its baseline).
EPOCH_DASHES = ("solid", "dash", "dot", "dashdot")


def epoch_curves(series: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]) -> go.Figure:
    """NFR and error rate per epoch (two panels), one line per training run.

    ``series`` are ``(name, history)`` pairs; a history is the list of per-epoch entries of
    :func:`graceful_core.training.update.train_update` with a monitor (``epoch``, ``nfr``,
    ``error_rate``, fractions; None where not measured), as :class:`graceful_core.FlipMonitor`
    measured them. Lines differ in colour and dash (:data:`EPOCH_DASHES`, in order).
    """
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    palette = qualitative.Plotly
    panels = (("nfr", METRICS["negative_flip_rate"].name), ("error_rate", METRICS["new_error_rate"].name))
    fig = make_subplots(rows=1, cols=2, subplot_titles=[f"{title} (%)" for _, title in panels], horizontal_spacing=0.12)
    last_epoch = 1
    for i, (name, history) in enumerate(series):
        epochs = [int(h["epoch"]) for h in history]
        last_epoch = max([last_epoch, *epochs])
        for col, (key, title) in enumerate(panels, start=1):
            ys = [None if h.get(key) is None else 100 * float(h[key]) for h in history]
            fig.add_scatter(
                x=epochs,
                y=ys,
                mode="lines+markers" if len(epochs) <= 40 else "lines",
                name=name,
                legendgroup=name,
                showlegend=col == 1,
                row=1,
                col=col,
                line={"dash": EPOCH_DASHES[i % len(EPOCH_DASHES)], "color": palette[i % len(palette)]},
                marker={"size": 5},
                hovertemplate=f"{name}<br>epoch %{{x}}: {title} %{{y:.2f}} %<extra></extra>",
            )
    fig.update_xaxes(title="epoch", tickformat=",d", dtick=1 if last_epoch <= 12 else None)
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(height=360, margin=MARGIN, legend={"orientation": "h", "yanchor": "top", "y": -0.25, "x": 0})
    return _axes_fit(fig)


def selected_ids(points: Sequence[Mapping[str, Any]]) -> list[str]:
    """Sample ids of selected points (each point's customdata starts with the id), unique, in order."""
    seen: dict[str, None] = {}
    for p in points:
        cd = p.get("customdata")
        if isinstance(cd, (list, tuple)) and cd:
            seen.setdefault(str(cd[0]), None)
    return list(seen)


def selected_cell(points: Sequence[Mapping[str, Any]]) -> tuple[str, str] | None:
    """``(row, column)`` of the first clicked cell of a :func:`add_clickable_cells` heatmap, or None."""
    for p in points:
        cd = p.get("customdata")
        if isinstance(cd, (list, tuple)) and len(cd) >= 2:
            return str(cd[0]), str(cd[1])
    return None
