"""Versions: many models at once (a lineage v1 -> v2 -> ... plus variants) on one dataset.

Pairwise NFR / BTC / cross-test Hit@1 heatmaps (click a cell to open that pair), the
chain's accuracy, NFR and regressions from v1, and a graph of which model can search
which model's index. All numbers come from :func:`graceful_core.lineage.model_matrix_report`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from graceful_core.errors import InputError
from graceful_core.io.datasets import load_dataset
from graceful_core.io.hashing import file_sha256
from graceful_core.lineage import STAGE_PAIRS, model_matrix_report
from graceful_ui import store
from graceful_ui.fmt import pct
from graceful_ui.inputs import MODEL_SUFFIXES, pair_spec, sample_data_dir
from graceful_ui.state import select_comparison
from graceful_ui.widgets import page_comparison

ss = st.session_state
DEFAULT_CHAIN = ("old", "new", "v3", "edge")

HELP_NFR = ("Negative flip rate, row = old model, column = new model: images the old model classifies "
            "correctly and the new one gets wrong, over all images (Yan et al., CVPR 2021). Lower is better; "
            "the diagonal is 0.")
HELP_BTC = ("Backward trust compatibility, row = old, column = new: of the images the old model gets right, the "
            "share the new model still gets right (Bansal et al. AAAI 2019; Srivastava et al. KDD 2020). Higher "
            "is better; the diagonal is 100 %.")
HELP_CROSS = ("Cross-test Hit@1, row = query model, column = gallery model: each image, embedded by the query "
              "model, is searched by cosine similarity among all other images embedded by the gallery model "
              "(leave-one-out); a hit is a nearest neighbour with the same label (BCT protocol, Shen et al. CVPR "
              "2020). The diagonal is each model's self-test. Empty where embedding sizes differ.")
HELP_ACC = "Share of all images the model classifies correctly."
HELP_SELF = "Hit@1 of the model's own queries against its own gallery (leave-one-out)."
HELP_REG = ("Images the first model of the chain got right that this model gets wrong (the negative flips of "
            "v1 → this model).")
HELP_EVER = ("Images the first model got right that at least one model of the chain up to this one got wrong: "
             "regressions users may have seen at some point, even if a later version fixed them.")
HELP_GRAPH = ("An arrow A → B means A's queries, searched against B's existing index, find an image of the "
              "right class more often than B's own queries do: cross-test Hit@1 M(A, B) > self-test M(B, B), "
              "BCT's compatibility criterion.")

st.title("Versions")
spec, comp = page_comparison()
st.caption("Compare a whole set of models on one dataset: every pair's negative flips, trust and embedding "
           "compatibility. The order you pick the models in is the lineage order (v1 first).")


# ------------------------------------------------------------------------ inputs
def model_files() -> dict[str, Path]:
    """Bundled model files by file name."""
    d = sample_data_dir() / "models"
    if not d.is_dir():
        return {}
    return {p.name: p for p in sorted(d.iterdir()) if p.suffix in MODEL_SUFFIXES and p.is_file()}


files = model_files()
if len(files) < 2:
    st.info("Fewer than two bundled models in sample_data/models: nothing to compare.")
    st.stop()
default = [f"{s}.pt" for s in DEFAULT_CHAIN if f"{s}.pt" in files] or list(files)[:2]
ss.setdefault("versions_models", default)


def on_models() -> None:
    ss["versions_models"] = list(ss["w_versions"])


ss["w_versions"] = [m for m in ss["versions_models"] if m in files]
st.multiselect("Models, in lineage order (v1 first)", list(files), key="w_versions", on_change=on_models,
               help="Pick at least two. The order of selection is the lineage order used by the chain charts; "
               "variants (e.g. new-pc.pt, new-bct.pt) can be added anywhere.")
chosen = list(ss["w_versions"])

bundled_data = sample_data_dir() / "digits" / "test"
if spec is not None and comp is not None and spec.data and comp.dataset is not None:
    data_path, dataset = spec.data, comp.dataset
    data_name = spec.display_name(spec.data)
else:
    data_path, dataset, data_name = str(bundled_data), None, "digits/test (bundled)"
bundled = Path(data_path).resolve() == bundled_data.resolve()
if bundled:
    data_name = "digits/test (bundled)"
st.caption(f"Dataset: **{data_name}** (the current comparison's)" if comp is not None
           else f"Dataset: **{data_name}**")
if len(chosen) < 2:
    st.info("Pick at least two models.")
    st.stop()


# ------------------------------------------------------------------------ compute (cached)
def matrix_report(paths: list[str], data: str, ds) -> dict:
    """The model set's report; computed once per (model contents, order, dataset content)."""
    ds = ds if ds is not None else load_dataset(data)
    key = (tuple((Path(p).name, file_sha256(p)) for p in paths), ds.content_hash())
    reports = store.get_matrix_store()
    bar = st.empty()
    wait_text = f"Running the models: {store.WAITING_FOR_OTHER_SESSION}"
    with reports.computing(key, on_wait=lambda: bar.progress(0.0, text=wait_text)):
        hit = reports.get(key)
        if hit is not None:
            bar.empty()
            return hit["report"]

        def cb(stage: str, done: int, total: int) -> None:
            what = "model pairs" if stage == STAGE_PAIRS else "images"
            bar.progress(min(1.0, done / total) if total else 1.0, text=f"{stage}: {done} / {total} {what}")

        bar.progress(0.0, text="Running the models...")
        try:
            report = model_matrix_report(paths, dataset=ds, progress=cb)
        finally:
            bar.empty()
        reports.put(key, {"report": report})
    return report


try:
    rep = matrix_report([str(files[m]) for m in chosen], data_path, dataset)
except InputError as e:
    st.error(e.message)
    st.stop()

names = rep["models"]
n = rep["n_samples"]
k = len(names)


# ------------------------------------------------------------------------ figures
def _z(rows) -> np.ndarray:
    return np.array([[np.nan if x is None else float(x) for x in r] for r in rows], dtype=float)


def matrix_heatmap(rows, row_title: str, col_title: str, colorscale: str, hover: str) -> go.Figure:
    """Annotated heatmap of a k x k matrix of rates, with invisible markers that make cells clickable."""
    z = _z(rows)
    text = [[pct(x) for x in r] for r in rows]
    fig = go.Figure(go.Heatmap(z=z, x=names, y=names, text=text, texttemplate="%{text}", colorscale=colorscale,
                               showscale=False, hoverinfo="skip"))
    # Plotly cannot select heatmap cells; a nearly invisible square marker on each cell makes them clickable.
    fig.add_scatter(x=names * k, y=[r for r in names for _ in range(k)], mode="markers",
                    marker={"symbol": "square", "size": max(8, 300 // k), "opacity": 0.01},
                    text=[t for r in text for t in r], showlegend=False,
                    hovertemplate=hover + "<br>%{text}<extra></extra>")
    fig.update_xaxes(title=col_title, type="category", range=[-0.5, k - 0.5], side="top")
    fig.update_yaxes(title=row_title, type="category", range=[k - 0.5, -0.5], autorange=False)
    fig.update_layout(height=120 + 55 * k, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def lineage_figure() -> go.Figure:
    """Accuracy of each model and NFR of each step (step into model k drawn at k), in %."""
    lin = rep["lineage"]
    fig = go.Figure()
    fig.add_scatter(x=names, y=[100 * a for a in rep["accuracy"]], mode="lines+markers+text", name="accuracy",
                    text=[pct(a) for a in rep["accuracy"]], textposition="top center",
                    hovertemplate="%{x}: accuracy %{text}<extra></extra>")
    nfr = [s["negative_flip_rate"] for s in lin["steps"]]
    fig.add_bar(x=names[1:], y=[100 * x for x in nfr], name="NFR of the step (previous → this)", yaxis="y2",
                text=[pct(x) for x in nfr], opacity=0.6,
                hovertemplate="%{x}: NFR from the previous model %{text}<extra></extra>")
    fig.update_layout(yaxis={"title": "accuracy (%)"},
                      yaxis2={"title": "NFR of the step (%)", "overlaying": "y", "side": "right", "rangemode": "tozero"},
                      xaxis={"title": "lineage (v1 → latest)", "type": "category"}, height=360,
                      legend={"orientation": "h", "y": -0.3}, margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return fig


def regressions_figure() -> go.Figure:
    """Regressions from v1 along the chain: v1 right and this model wrong; and ever wrong since v1."""
    lin = rep["lineage"]
    fig = go.Figure()
    fig.add_scatter(x=names, y=lin["ever_regressed_from_first"], mode="lines+markers", name=f"ever wrong since {names[0]}",
                    line={"dash": "dot"}, hovertemplate="%{x}: %{y} images<extra></extra>")
    fig.add_scatter(x=names, y=lin["regressions_from_first"], mode="lines+markers+text",
                    name=f"{names[0]} right, this model wrong", text=lin["regressions_from_first"],
                    textposition="top center", hovertemplate="%{x}: %{y} images<extra></extra>")
    fig.update_layout(yaxis={"title": "images", "rangemode": "tozero"},
                      xaxis={"title": "lineage (v1 → latest)", "type": "category"}, height=360,
                      legend={"orientation": "h", "y": -0.3}, margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return fig


def compatibility_graph() -> go.Figure:
    """Nodes = models on a circle; an arrow q → g where q's queries can search g's index."""
    ang = [math.pi / 2 - 2 * math.pi * i / k for i in range(k)]
    pos = {nm: (math.cos(a), math.sin(a)) for nm, a in zip(names, ang)}
    fig = go.Figure()
    for e in rep["can_share_index"]:
        (x0, y0), (x1, y1) = pos[e["query"]], pos[e["gallery"]]
        fig.add_scatter(x=[x0, x1], y=[y0, y1], mode="lines", line={"width": 2, "color": "#2e7d32"},
                        showlegend=False, hoverinfo="skip")
        fig.add_annotation(x=x0 + 0.85 * (x1 - x0), y=y0 + 0.85 * (y1 - y0), ax=x0, ay=y0, xref="x", yref="y",
                           axref="x", ayref="y", showarrow=True, arrowhead=3, arrowsize=1.5, arrowcolor="#2e7d32",
                           text="")
    fig.add_scatter(x=[pos[nm][0] for nm in names], y=[pos[nm][1] for nm in names], mode="markers+text",
                    text=names, textposition="top center", marker={"size": 26, "color": "#1f77b4"},
                    customdata=[pct(s) for s in rep["self_top1"]], showlegend=False,
                    hovertemplate="%{text}: self-test Hit@1 %{customdata}<extra></extra>")
    fig.update_xaxes(visible=False, range=[-1.5, 1.5])
    fig.update_yaxes(visible=False, range=[-1.4, 1.5], scaleanchor="x")
    fig.update_layout(height=380, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig


# ------------------------------------------------------------------------ clicks -> Overview
def _on_cell(chart_key: str, query_gallery: bool) -> None:
    points = [p for p in ss[chart_key].selection.points if "x" in p and "y" in p]
    if not points:
        return
    row, col = str(points[0]["y"]), str(points[0]["x"])
    old, new = (col, row) if query_gallery else (row, col)  # cross-test (q, g): new = q searches old = g
    ss["_versions_open"] = (old, new)


st.markdown(f"**{k} models** on **{n} images** · click an off-diagonal cell to open that pair on the Overview"
            + ("" if bundled else " (opening works for the bundled digits/test dataset only)"))
c1, c2, c3 = st.columns(3)
with c1:
    st.subheader("Negative flip rate", help=HELP_NFR)
    st.plotly_chart(matrix_heatmap(rep["negative_flip_rate"], "old model (row)", "new model (column)", "Reds",
                                   "old %{y} → new %{x}<br>NFR"),
                    key="chart_v_nfr", on_select=lambda: _on_cell("chart_v_nfr", False), selection_mode="points")
with c2:
    st.subheader("Backward trust (BTC)", help=HELP_BTC)
    st.plotly_chart(matrix_heatmap(rep["backward_trust_compatibility"], "old model (row)", "new model (column)",
                                   "Greens", "old %{y} → new %{x}<br>BTC"),
                    key="chart_v_btc", on_select=lambda: _on_cell("chart_v_btc", False), selection_mode="points")
with c3:
    st.subheader("Cross-test Hit@1", help=HELP_CROSS)
    st.plotly_chart(matrix_heatmap(rep["cross_top1"], "query model (row)", "gallery model (column)", "Blues",
                                   "queries by %{y}, gallery by %{x}<br>Hit@1"),
                    key="chart_v_cross", on_select=lambda: _on_cell("chart_v_cross", True), selection_mode="points")
    missing = {r for row in rep["cross_top1_reason"] for r in row if r}
    if missing:
        st.caption("Empty cells: " + "; ".join(sorted(missing)) + ".")

st.subheader("Per model", help=f"Accuracy: {HELP_ACC} Self-test: {HELP_SELF} Regressions: {HELP_REG}")
table = pd.DataFrame({
    "model": names,
    "accuracy": [pct(a) for a in rep["accuracy"]],
    "self-test Hit@1": [pct(s) for s in rep["self_top1"]],
    "embedding size": ["none" if d is None else str(d) for d in rep["embedding_dims"]],
    f"{names[0]} right, this wrong": [str(x) for x in rep["lineage"]["regressions_from_first"]],
    f"ever wrong since {names[0]}": [str(x) for x in rep["lineage"]["ever_regressed_from_first"]],
})
st.dataframe(table, hide_index=True, width="stretch", key="table_v_models", column_config={
    "accuracy": st.column_config.TextColumn(help=HELP_ACC),
    "self-test Hit@1": st.column_config.TextColumn(help=HELP_SELF),
    f"{names[0]} right, this wrong": st.column_config.TextColumn(help=HELP_REG),
    f"ever wrong since {names[0]}": st.column_config.TextColumn(help=HELP_EVER)})

st.subheader("Lineage", help="The chosen order as a chain of releases v1 → v2 → …: " + HELP_NFR)
l1, l2 = st.columns(2)
with l1:
    st.plotly_chart(lineage_figure(), key="chart_v_lineage")
    st.caption("Accuracy of each model (line) and the negative flip rate of each step from the previous model (bars).")
with l2:
    st.plotly_chart(regressions_figure(), key="chart_v_regressions")
    last = rep["lineage"]["regressions_from_first"][-1]
    st.caption(f"Regressions from {names[0]}: {last} image{'s' if last != 1 else ''} that {names[0]} got right "
               f"are wrong under {names[-1]}. The dotted line counts images wrong in at least one version so far.")

st.subheader("Compatibility graph", help=HELP_GRAPH)
g1, g2 = st.columns([3, 2])
with g1:
    st.plotly_chart(compatibility_graph(), key="chart_v_graph")
with g2:
    share = rep["can_share_index"]
    if share:
        st.markdown("An arrow **A → B** means you can ship A and keep searching B's existing index: A's queries "
                    "find an image of the right class in B's gallery more often than B's own queries do. "
                    "No re-indexing (backfill) is needed for these switches:")
        st.markdown("\n".join(f"- **{s['query']} → {s['gallery']}**: {pct(s['cross_top1'])} vs "
                              f"{pct(s['gallery_self_top1'])} for {s['gallery']} itself" for s in share))
    else:
        st.markdown("No model can search another model's index as well as that model searches it itself: "
                    "every switch between these models needs the gallery re-indexed (backfilled).")

with st.expander("Numbers as tables"):
    for key, title, rt, ct in (("negative_flip_rate", "Negative flip rate", "old", "new"),
                               ("backward_trust_compatibility", "Backward trust compatibility", "old", "new"),
                               ("cross_top1", "Cross-test Hit@1", "query", "gallery")):
        st.markdown(f"**{title}** (row = {rt} model, column = {ct} model)")
        df = pd.DataFrame([[pct(x) for x in r] for r in rep[key]], columns=names)
        df.insert(0, f"{title}: {rt} \\ {ct}", names)
        st.dataframe(df, hide_index=True, width="stretch", key=f"table_v_{key}")

opened = ss.pop("_versions_open", None)
if opened:
    old, new = opened
    target = pair_spec(Path(old).stem, Path(new).stem) if bundled else None
    if old == new:
        st.toast("That cell compares a model with itself: pick an off-diagonal cell.")
    elif target is None:
        st.toast("Opening a pair works for the bundled models on digits/test.")
    else:
        select_comparison(target.id)
        st.switch_page(ss["_pages"]["overview"])
