"""Slices: the groups of images (metadata values, clusters of the old embeddings) where the
update's negative flips concentrate; a click on one filters the Flips grid to it."""

import streamlit as st

from graceful_core.explore.selection import slice_examples
from graceful_core.report.figures import selected_slice, slice_bars
from graceful_core.report.sentences import slice_numbers, slice_verdict
from graceful_core.vocabulary import METRICS, PCT_DIGITS, SLICE_KINDS, SLICES_HELP, interval, negative_flips
from graceful_ui import store
from graceful_ui.fmt import md
from graceful_ui.grid import image_grid
from graceful_ui.state import request_page
from graceful_ui.widgets import require_comparison, verdict_markdown

#: Slices in the chart (the most significant); the table lists all.
MAX_BARS = 15
ss = st.session_state

st.title("Slices")
spec, comp = require_comparison()
rep = comp.regression_slices
if rep is None:
    st.info(
        "No candidate slices: this comparison has no metadata columns (extra columns of the dataset manifest "
        "or of the old predictions table) and no old-model embeddings to cluster."
    )
    st.stop()

st.caption(f"{md(spec.label)} · {SLICES_HELP} Click a bar or a row to select a slice.")
st.markdown(verdict_markdown(slice_verdict(rep)))


def on_bars() -> None:
    key = selected_slice(ss["chart_slices"].selection.points)
    if key:
        ss["slice"] = key


def on_table() -> None:
    picked = ss["w_slice_table"].selection.rows
    if picked and rep is not None:  # rep is set: the page stopped above otherwise
        ss["slice"] = rep.slices[picked[0]].key


def show_in_flips() -> None:
    ss["classes"], ss["cell"], ss["grid_page"] = [], None, 1
    request_page("flips")


def clear_slice() -> None:
    ss["slice"] = None


chosen = rep.by_key(ss.get("slice"))
if ss.get("slice") and chosen is None:  # e.g. a hand-edited link
    ss["slice"] = None

shown = rep.slices[:MAX_BARS]
st.plotly_chart(
    slice_bars(shown, selected=chosen.key if chosen else None),
    key="chart_slices",
    on_select=on_bars,
    selection_mode="points",
)
if len(rep.slices) > len(shown):
    st.caption(f"The chart shows the {len(shown)} most significant of {len(rep.slices)} slices; the table lists all.")

if chosen is not None:
    with st.container(border=True):
        c1, c2, c3 = st.columns([6, 2, 1])
        c1.markdown(f"**{md(chosen.title)}** ({SLICE_KINDS[chosen.kind]})  \n{slice_numbers(chosen)}")
        c2.button(
            "Show its images in Flips", on_click=show_in_flips, key="btn_slice_flips", type="primary", width="stretch"
        )
        c3.button("Clear", on_click=clear_slice, key="btn_slice_clear", width="stretch")
        rows = slice_examples(comp, chosen)
        if chosen.cluster is not None:
            st.caption(f"The {len(rows)} images nearest the cluster's centre (in the old model's embedding space).")
        elif len(rows):
            st.caption(
                f"{len(rows)} of its {negative_flips(chosen.negative_flips)}, largest drop in p(true class) first."
            )
        else:
            st.caption("No negative flip in this slice.")
        if len(rows):
            image_grid(comp, store.samples_table(comp).iloc[rows], key="slice-examples")

table = rep.to_frame()
m = {
    k: METRICS[k]
    for k in (
        "slice_size",
        "n_negative_flips",
        "slice_negative_flip_rate",
        "rest_negative_flip_rate",
        "slice_p_adjusted",
    )
}
top = (
    float(max(table["negative_flip_rate"].to_numpy().max(), table["rest_negative_flip_rate"].to_numpy().max(), 1e-9))
    * 100
)
view = table.assign(
    negative_flip_rate=100 * table["negative_flip_rate"],
    rest_negative_flip_rate=100 * table["rest_negative_flip_rate"],
    ci=[interval((lo, hi)) for lo, hi in zip(table["ci_low"], table["ci_high"])],
)[["title", "size", "negative_flips", "negative_flip_rate", "ci", "rest_negative_flip_rate", "p_adjusted"]]


def _bar(metric, colour: str):  # a column config (streamlit does not export its type)
    return st.column_config.ProgressColumn(
        metric.label,
        help=metric.help,
        format=f"%.{PCT_DIGITS}f %%",
        min_value=0.0,
        max_value=top,
        width=115,
        color=colour,
    )


config = {
    "title": st.column_config.TextColumn(
        "slice", width=220, help="column = value (metadata), or cluster n (dominant true classes)"
    ),
    "size": st.column_config.NumberColumn(m["slice_size"].label, help=m["slice_size"].help, width=65),
    "negative_flips": st.column_config.NumberColumn(
        m["n_negative_flips"].label, help=m["n_negative_flips"].help, width=100
    ),
    "negative_flip_rate": _bar(m["slice_negative_flip_rate"], "red"),
    "ci": st.column_config.TextColumn("95 % CI", width=145),
    "rest_negative_flip_rate": _bar(m["rest_negative_flip_rate"], "gray"),
    "p_adjusted": st.column_config.NumberColumn(
        m["slice_p_adjusted"].label, help=m["slice_p_adjusted"].help, format="%.3g", width=110
    ),
}
st.markdown(f"#### All {len(table)} slices, most significant first")
st.dataframe(
    view,
    hide_index=True,
    width="stretch",
    column_config=config,
    key="w_slice_table",
    on_select=on_table,
    selection_mode="single-row",
)
if rep.skipped_columns:
    st.caption(
        "Metadata columns not used: " + "; ".join(f"{md(c)} ({md(why)})" for c, why in rep.skipped_columns) + "."
    )
