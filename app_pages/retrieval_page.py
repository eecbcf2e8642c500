"""Retrieval: can the new model search the old index (BCT cross-test), and what goes missing."""

import pandas as pd
import streamlit as st

from graceful_core.explore.selection import page_bounds
from graceful_core.report.sentences import old_head_verdict
from graceful_core.vocabulary import (
    METRICS,
    RETRIEVAL_PAIRS,
    RETRIEVAL_SCORES,
    RETRIEVAL_THUMB_PX,
    RIGHT_COLOUR,
    UPDATE_GAIN_UNIT,
    WRONG_COLOUR,
    compatibility_advice,
    compatibility_sentence,
    count,
    interval,
    percent,
    update_gain_value,
)
from graceful_ui import store
from graceful_ui.fmt import code, md
from graceful_ui.widgets import require_comparison, require_per_sample

ss = st.session_state
THUMB = RETRIEVAL_THUMB_PX
PER_PAGE = 8

st.title("Retrieval")
spec, comp = require_comparison()
require_per_sample(comp)
ct = comp.compatibility
if ct is None:
    st.info(
        "The cross-test needs embeddings from both models (a TorchScript `embed` method, an ONNX `embedding` "
        "output, or an embedding column in the tables)."
    )
    st.stop()

st.caption(
    f"{md(spec.label)} · each image is a query, searched by cosine similarity against all other images "
    "(leave-one-out); a hit is a result with the query's label (BCT protocol, Shen et al. CVPR 2020)"
)
if spec.id == "sample:new":
    st.info("The bundled old and new models were trained independently, so they are expected to be incompatible.")

if ct.reason:
    st.warning(f"No cross-test: {ct.reason}")
elif ct.n_queries == 0:
    st.info(f"Cross-test undefined: {md(compatibility_sentence(ct))}.")
else:  # the CLI's and the HTML report's verdict, and what it means for the index
    (st.success if ct.compatible else st.error)(
        f"**{md(compatibility_sentence(ct))}.** {compatibility_advice(ct.compatible)}"
    )

table = pd.DataFrame({"query → gallery": list(RETRIEVAL_PAIRS.values())})
for score, key in RETRIEVAL_SCORES.items():
    m = METRICS[key]
    table[m.label] = [m.format(ct.scores[score][p]) for p in RETRIEVAL_PAIRS]
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    column_config={
        METRICS[k].label: st.column_config.TextColumn(help=METRICS[k].help) for k in RETRIEVAL_SCORES.values()
    },
)
st.caption(
    f"Percentages are of the {count(ct.n_queries)} queries whose label has at least one other image"
    + (f"; mAP estimated from {ct.map_queries} queries" if ct.map_ci95 else "")
    + "."
)

c = st.columns(3)
gain = METRICS["update_gain"]
c[0].metric(gain.label, update_gain_value(ct.update_gain), help=gain.help)
c[0].caption(UPDATE_GAIN_UNIT)
if ct.retrieval_negative_flips is not None:
    for col, key, n, rate, ci in (
        (
            c[1],
            "retrieval_negative_flips",
            ct.retrieval_negative_flips,
            ct.negative_flip_rate,
            ct.negative_flip_rate_ci95,
        ),
        (
            c[2],
            "retrieval_positive_flips",
            ct.retrieval_positive_flips,
            ct.positive_flip_rate,
            ct.positive_flip_rate_ci95,
        ),
    ):
        m = METRICS[key]
        col.metric(m.label, m.format(n), help=m.help)
        col.caption(f"{percent(rate)} of {count(ct.n_queries)} queries · 95 % CI {interval(ci)}")

head = old_head_verdict(comp)
if head is not None:
    (st.success if head.kind == "better" else st.error)(head.text)

if ct.reason or "new_old" not in ct.results or comp.dataset is None:
    st.stop()

st.markdown("#### Retrieval negative flips")
st.caption(
    "Each row: the query, then its top-5 results under old→old and under new→old; "
    "green frame = same label as the query, red = a different label."
)
ids, labels = [str(i) for i in comp.require_arrays().ids.tolist()], comp.require_arrays().labels
flips = ct.negative_flip_indices
if len(flips) == 0:
    st.success("No query loses its top-1 hit under the cross-test.")
    st.stop()
start, stop, n_pages = page_bounds(len(flips), ss.get("w_ret_page", 1), PER_PAGE)
oo, no = ct.results["old_old"].topk_indices, ct.results["new_old"].topk_indices


def strip(q: int, neighbours, title: str) -> None:
    st.caption(title)
    for col, j in zip(st.columns(5), [int(j) for j in neighbours[:5] if j >= 0]):
        right = labels[j] == labels[q]
        png = store.image_png(comp, ids[j], THUMB, RIGHT_COLOUR if right else WRONG_COLOUR)
        if png is not None:
            col.image(png, width=THUMB, caption=f"{'✓' if right else '✗'} {comp.classes[labels[j]]}")


for q in flips[start:stop]:
    q = int(q)
    with st.container(border=True):
        left, a, b = st.columns([1, 3, 3])
        with left:
            png = store.image_png(comp, ids[q], THUMB)
            if png is not None:
                st.image(png, width=THUMB)
            st.markdown(f"{code(ids[q])}  \nlabel **{md(comp.classes[labels[q]])}**")
        with a:
            strip(q, oo[q], "old → old")
        with b:
            strip(q, no[q], "new → old")
if n_pages > 1:
    st.pagination(n_pages, key="w_ret_page")
