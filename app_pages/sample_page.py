"""Sample: one image large, both models' top-5 probabilities, same-class neighbours."""

import streamlit as st

from graceful_core.explore.selection import default_sample
from graceful_core.report.figures import top_k_bars
from graceful_core.vocabulary import SAMPLE_IMAGE_PX, is_undefined, percent, points, probability
from graceful_ui import store
from graceful_ui.fmt import md
from graceful_ui.grid import FLIP_BADGES, image_grid
from graceful_ui.label_ui import sample_verdict, why_label
from graceful_ui.widgets import require_comparison, require_per_sample

LARGE_PX = SAMPLE_IMAGE_PX
MAX_SELECT = 5000
ss = st.session_state

st.title("Sample")
spec, comp = require_comparison()
require_per_sample(comp)

samples = store.samples_table(comp)
ids = samples["id"].tolist()
if ss.get("sample") not in set(ids):
    if ss.get("sample"):
        st.caption(f"No sample {md(ss['sample'])} in this comparison: showing the most confident negative flip.")
    ss["sample"] = default_sample(samples)


def on_pick() -> None:
    ss["sample"] = ss["w_sample"]


def inspect(sample_id: str) -> None:
    ss["sample"] = sample_id


ss["w_sample"] = ss["sample"]
if len(ids) <= MAX_SELECT:
    st.selectbox("Sample id", ids, key="w_sample", on_change=on_pick)
else:
    st.text_input("Sample id", key="w_sample", on_change=on_pick)

row_idx = comp.require_arrays().row_of[ss["sample"]]
row = samples.iloc[row_idx].to_dict()
left, right = st.columns([1, 2])
with left:
    png = store.image_png(comp, row["id"], LARGE_PX)
    if png is not None:
        st.image(png, width="content", caption=f"{row['id']} (upscaled, no smoothing)")
    else:
        st.info("No image for this sample (the comparison was made from tables without a dataset).")
    st.markdown(f"**True label:** {md(row['label'])}  \n{FLIP_BADGES.get(row['flip'], row['flip'])}")

    def conf(x):
        return "" if is_undefined(x) else f" (p = {probability(x)} for its prediction)"

    st.markdown(
        f"**Old** predicts **{md(row['old_pred'])}**{conf(row['old_conf'])}  \n"
        f"**New** predicts **{md(row['new_pred'])}**{conf(row['new_conf'])}"
    )
    if not is_undefined(row["confidence_drop"]):
        st.caption(
            f"p(true class): old {percent(row['old_p_true'], 1)}, new {percent(row['new_p_true'], 1)} "
            f"(change {points(-row['confidence_drop'])})"
        )
with right:
    try:
        with st.spinner("Loading both models' class probabilities (from the inference cache)..."):
            old_probs, new_probs = store.probabilities(comp)
    except Exception as e:  # e.g. the files changed on disk since the comparison was made
        st.warning(f"Class probabilities unavailable: {e}")
        old_probs = new_probs = None
    if old_probs is not None and new_probs is not None:
        st.markdown("**Top-5 class probabilities**")
        st.plotly_chart(top_k_bars(comp.classes, old_probs[row_idx], new_probs[row_idx], k=5), key="chart_topk")
    else:
        st.info("Top-5 probabilities need class scores from both sides (a table with only `pred` has none).")

why_label(comp, row_idx, samples, old_probs, new_probs, inspect)
sample_verdict(comp, row_idx, row["flip"])

st.markdown("#### Nearest neighbours of the same class")
if comp.dataset is None:
    st.caption("No dataset images to show.")
else:
    with st.spinner("Finding the nearest images of this class..."):
        nb = store.neighbours(comp, row_idx)
    if nb.subsampled:
        st.caption(f"Searched a fixed random {nb.searched} images of this class.")
    st.caption(f"The {len(nb.indices)} images of class {md(row['label'])} nearest to this one, by {nb.how}.")
    image_grid(comp, samples.iloc[nb.indices], on_inspect=inspect, key="nn")
