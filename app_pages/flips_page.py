"""Flips: where the predictions moved (matrix, per class) and the images behind them, optionally
restricted to one regression slice (chosen here or on the Slices page; ``?slice=`` in the URL)."""

import numpy as np
import streamlit as st

from graceful_core.explore.selection import SORT_ORDERS, busiest_submatrix
from graceful_core.report.figures import (
    MAX_CLASSES,
    TRANSITION_TITLE,
    per_class_flip_bars,
    selected_cell,
    transition_heatmap,
)
from graceful_core.vocabulary import (
    FLIP_MARKS,
    FLIP_TYPES,
    LABEL_FILTERS,
    LABEL_ISSUE_HELP,
    METRICS,
    count,
    images,
    negative_flips,
)
from graceful_ui import store
from graceful_ui.fmt import md
from graceful_ui.grid import image_grid
from graceful_ui.label_ui import flash, grid_card_extra, label_filter_rows, sort_orders, verdicts_of
from graceful_ui.state import request_page
from graceful_ui.widgets import require_comparison

PER_PAGE = 24
ss = st.session_state

st.title("Flips")
spec, comp = require_comparison()
st.caption(f"{md(spec.label)} · click a matrix cell or a bar to filter the images below")


def on_heatmap() -> None:
    cell = selected_cell(ss["chart_matrix"].selection.points)
    if cell:
        ss["cell"] = cell
        ss["classes"], ss["flips"], ss["grid_page"] = [], [], 1


def on_bars() -> None:
    points = ss["chart_bars"].selection.points
    if points:
        p = points[0]
        ss["classes"] = [str(p["x"])]
        ss["flips"] = [FLIP_TYPES[0] if p.get("curve_number", 0) == 0 else FLIP_TYPES[1]]
        ss["cell"], ss["grid_page"] = None, 1


def on_filter() -> None:
    ss["classes"], ss["flips"], ss["grid_page"] = list(ss["w_classes"]), list(ss["w_flips"]), 1


def on_sort() -> None:
    ss["sort"] = None if ss["w_sort"] == SORT_ORDERS[0] else ss["w_sort"]  # default order: not in the URL
    ss["grid_page"] = 1


def on_label_filter() -> None:
    ss["label_filter"], ss["grid_page"] = ss["w_label"], 1


def on_page() -> None:
    ss["grid_page"] = int(ss["w_page"])


def on_slice() -> None:
    ss["slice"], ss["grid_page"] = ss["w_slice"] or None, 1


def clear_slice() -> None:
    ss["slice"], ss["grid_page"] = None, 1


def clear_cell() -> None:
    ss["cell"], ss["grid_page"] = None, 1


def inspect(sample_id: str) -> None:
    ss["sample"] = sample_id
    request_page("sample")


left, right = st.columns(2)
with left:
    sub, names = busiest_submatrix(comp.transition_matrix, comp.classes, MAX_CLASSES)
    heat = transition_heatmap(sub, names, clickable=True, title=TRANSITION_TITLE)
    st.plotly_chart(heat, key="chart_matrix", on_select=on_heatmap, selection_mode="points")
    if len(names) < len(comp.classes):
        st.caption(f"{len(names)} of {len(comp.classes)} classes: those with the most changed predictions.")
with right:
    st.plotly_chart(per_class_flip_bars(comp.per_class), key="chart_bars", on_select=on_bars, selection_mode="points")

ss["w_classes"] = [c for c in ss.get("classes", []) if c in comp.classes]
ss["w_flips"] = [f for f in ss.get("flips", []) if f in FLIP_TYPES]
rep = comp.regression_slices
chosen = rep.by_key(ss.get("slice")) if rep is not None else None
if ss.get("slice") and chosen is None:  # e.g. a hand-edited link, or a comparison without that slice
    ss["slice"] = None
if rep is not None:
    f1, f2, f4, f3 = st.columns([2, 3, 3, 3])
    keys = [""] + [sl.key for sl in rep.slices]
    titles = {sl.key: sl.title + (" (significant)" if sl.is_significant else "") for sl in rep.slices}
    ss["w_slice"] = chosen.key if chosen else ""
    f4.selectbox(
        "Slice",
        keys,
        key="w_slice",
        on_change=on_slice,
        format_func=lambda k: titles.get(k, "all images"),
        help="A regression slice (a metadata value or a cluster of the old embeddings): see the Slices page.",
    )
else:
    f1, f2, f3 = st.columns([3, 3, 2])
f1.multiselect("True class", list(comp.classes), key="w_classes", on_change=on_filter, placeholder="all classes")
f2.multiselect(
    "Flip type",
    list(FLIP_TYPES),
    key="w_flips",
    on_change=on_filter,
    placeholder="all images",
    help=f"negative flip: {FLIP_MARKS['negative flip']}; positive flip: {FLIP_MARKS['positive flip']}",
)
orders = sort_orders(comp, SORT_ORDERS)  # + label quality when there are label issues
ss["w_sort"] = ss.get("sort") if ss.get("sort") in orders else SORT_ORDERS[0]  # survives page switches
order = f3.selectbox(
    "Sort by",
    orders,
    key="w_sort",
    on_change=on_sort,
    help="Confidence drop = p(true class) under old − under new; largest first shows the "
    "most confident regressions first.",
)
cell = ss.get("cell")
if cell and not (cell[0] in comp.classes and cell[1] in comp.classes):  # e.g. a hand-edited link
    cell = ss["cell"] = None
if cell:
    c1, c2 = st.columns([5, 1])
    c1.info(f"Matrix cell: old predicts **{md(cell[0])}** → new predicts **{md(cell[1])}**")
    c2.button("Clear cell filter", on_click=clear_cell, key="btn_clear_cell")
if chosen is not None:
    c1, c2 = st.columns([5, 1])
    c1.info(
        f"Slice: **{md(chosen.title)}** · {images(chosen.size)}, {negative_flips(chosen.negative_flips)} "
        f"(NFR {METRICS['slice_negative_flip_rate'].format(chosen.negative_flip_rate)})"
    )
    c2.button("Clear slice filter", on_click=clear_slice, key="btn_clear_slice")

rows = chosen.indices if chosen is not None else None
if comp.label_issues is not None:  # filter by label quality (docs/metrics.md, "Label issues")
    ss["w_label"] = ss.get("label_filter") if ss.get("label_filter") in LABEL_FILTERS else LABEL_FILTERS[0]
    st.columns([1, 3])[0].selectbox(
        "Label", LABEL_FILTERS, key="w_label", on_change=on_label_filter, help=LABEL_ISSUE_HELP
    )
    kept = label_filter_rows(comp, ss["w_label"])
    if kept is not None:
        rows = kept if rows is None else np.intersect1d(rows, kept)
grid = store.grid_page(
    comp,
    tuple(ss["w_classes"]),
    tuple(ss["w_flips"]),
    tuple(cell) if cell else None,
    order,
    ss.get("grid_page", 1),
    PER_PAGE,
    rows=rows,
)
ss["grid_page"] = page_no = grid.page
if grid.note:
    st.caption(grid.note)
if grid.n_matching == 0:
    st.info(f"No image matches these filters (of {images(comp.n_samples)}).")
else:
    start, stop = grid.start, grid.start + len(grid.rows)
    st.markdown(
        f"Showing **{count(start + 1)}–{count(stop)}** of **{count(grid.n_matching)}** matching images (of {count(comp.n_samples)})."
    )
    flash()
    image_grid(
        comp,
        grid.rows,
        on_inspect=inspect if comp.arrays is not None else None,  # streamed: no Sample page
        card_extra=grid_card_extra(comp, verdicts_of(comp)),
    )
    if grid.n_pages > 1:
        ss["w_page"] = page_no
        st.pagination(grid.n_pages, key="w_page", on_change=on_page)
