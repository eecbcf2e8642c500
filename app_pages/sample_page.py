"""Sample: one image large, both models' top-5 probabilities, same-class neighbours."""

import numpy as np
import streamlit as st

from graceful_core.figures import top_k_bars
from graceful_core.views import default_sample, nearest_neighbours, neighbour_candidates
from graceful_ui import store
from graceful_ui.fmt import md
from graceful_ui.grid import FLIP_BADGES, image_grid
from graceful_ui.widgets import require_comparison

LARGE_PX = 280
MAX_SELECT = 5000
MAX_PIXEL_CANDIDATES = 2000
ss = st.session_state

st.title("Sample")
spec, comp = require_comparison()

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

row_idx = ids.index(ss["sample"])
row = samples.iloc[row_idx].to_dict()
left, right = st.columns([1, 2])
with left:
    png = store.image_png(comp, row["id"], LARGE_PX)
    if png is not None:
        st.image(png, width=LARGE_PX, caption=f"{row['id']} (upscaled, no smoothing)")
    else:
        st.info("No image for this sample (the comparison was made from tables without a dataset).")
    st.markdown(f"**True label:** {md(row['label'])}  \n{FLIP_BADGES.get(row['flip'], row['flip'])}")
    def conf(x):
        return ("" if np.isnan(x) else f" (p = {x:.3f} for its prediction)")
    st.markdown(f"**Old** predicts **{md(row['old_pred'])}**{conf(row['old_conf'])}  \n"
                f"**New** predicts **{md(row['new_pred'])}**{conf(row['new_conf'])}")
    if not np.isnan(row["confidence_drop"]):
        st.caption(f"p(true class): old {100 * row['old_p_true']:.1f} %, new {100 * row['new_p_true']:.1f} % "
                   f"(drop {100 * row['confidence_drop']:+.1f} points)")
with right:
    try:
        with st.spinner("Loading both models' class probabilities (from the inference cache)..."):
            old_probs, new_probs = store.probabilities(comp, spec)
    except Exception as e:  # e.g. the files changed on disk since the comparison was made
        st.warning(f"Class probabilities unavailable: {e}")
        old_probs = new_probs = None
    if old_probs is not None and new_probs is not None:
        st.markdown("**Top-5 class probabilities**")
        fig = top_k_bars(comp.classes, old_probs[row_idx], new_probs[row_idx], k=5).update_yaxes(type="category")
        st.plotly_chart(fig, key="chart_topk")
    else:
        st.info("Top-5 probabilities need class scores from both sides (a table with only `pred` has none).")

st.markdown("#### Nearest neighbours of the same class")
if comp.dataset is None:
    st.caption("No dataset images to show.")
else:
    # decoding every image of a big class would stall the page: pixels use a fixed random subset
    limit = comp.n_samples if comp.old_embedding is not None else MAX_PIXEL_CANDIDATES
    candidates, subsampled = neighbour_candidates(comp.labels, row_idx, limit)
    if comp.old_embedding is not None:
        feats, how, metric = comp.old_embedding, "cosine similarity of the old model's embeddings", "cosine"
    else:
        if subsampled:
            st.caption(f"Searched a fixed random {MAX_PIXEL_CANDIDATES} images of this class.")
        with st.spinner(f"Decoding {len(candidates)} images of this class..."):
            feats = store.pixel_features(comp, candidates)
        how, metric = "pixel distance (16×16 grey)", "euclidean"
    nn = nearest_neighbours(feats, row_idx, candidates, k=6, metric=metric)
    st.caption(f"The {len(nn)} images of class {row['label']} nearest to this one, by {how}.")
    image_grid(comp, samples.iloc[nn], on_inspect=inspect, key="nn")
