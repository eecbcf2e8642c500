"""Embeddings: where old and new embeddings put each image, jointly and side by side."""

from pathlib import Path

import streamlit as st

from graceful_core.explore.projection_store import SAMPLED_POINTS
from graceful_core.report.figures import COLOUR_BY, selected_ids
from graceful_core.vocabulary import METRICS, count, images
from graceful_ui import store
from graceful_ui.bundled_specs import spec_sample
from graceful_ui.fmt import md
from graceful_ui.grid import image_grid
from graceful_ui.state import EMB_COLOURS, EMB_LAYOUTS
from graceful_ui.widgets import require_comparison, require_per_sample

ss = st.session_state
MAX_SELECTED = 24

st.title("Embeddings")
spec, comp = require_comparison()
require_per_sample(comp)
a = comp.arrays
if a is None or a.old_embedding is None or a.new_embedding is None:
    st.info(
        "This view needs embeddings from both models (a TorchScript `embed` method, an ONNX `embedding` "
        "output, or an embedding column in the tables)."
    )
    st.stop()

d_old, d_new = a.old_embedding.shape[1], a.new_embedding.shape[1]
same_dim = d_old == d_new
st.caption(f"{md(spec.label)} · old embeddings {d_old}-D, new {d_new}-D · each point is one image under one model")
bundled = spec_sample(spec)
if bundled is not None and {Path(spec.old).stem, Path(spec.new).stem} == {bundled.old, bundled.new}:
    st.info(
        "The bundled old and new models were trained independently, so their embedding spaces are unrelated: "
        "expect them to be incompatible (old and new points of an image land far apart in the joint map)."
    )

if comp.n_samples < 3:
    st.info(f"Only {images(comp.n_samples)}: too few for a 2-D map of the embeddings.")
    st.stop()

overlap = METRICS["embedding_overlap"]
c1, c2 = st.columns([1, 3])
c1.metric(overlap.label, overlap.format(comp.embedding_overlap), help=overlap.help)
c2.caption(
    f"of all {images(comp.n_samples)}: the new embedding's nearest old embedding is the image itself. "
    "Near 100 %: the new space lines up with the old one sample by sample."
)


def _keep(widget_key: str, state_key: str, codes: dict[str, str]) -> None:
    """Copy a radio's choice to the state that survives page switches (as its URL code)."""
    ss[state_key] = next(code for code, label in codes.items() if label == ss[widget_key])


def _keep_lines() -> None:
    ss["emb_lines"] = bool(ss["w_emb_lines"])


layouts = list(EMB_LAYOUTS.values()) if same_dim else [EMB_LAYOUTS["side"]]
# the widgets show the kept choices (Streamlit drops widget state when the page is left)
ss["w_emb_layout"] = EMB_LAYOUTS.get(ss.get("emb_layout", ""), layouts[0])
if ss["w_emb_layout"] not in layouts:
    ss["w_emb_layout"] = layouts[0]
clustering = comp.regression_slices.clustering if comp.regression_slices is not None else None
colours = [c for c in COLOUR_BY if c != "cluster" or clustering is not None]
ss["w_emb_colour"] = EMB_COLOURS.get(ss.get("emb_colour", ""), "model")
if ss["w_emb_colour"] not in colours:  # e.g. a link asking for clusters on a comparison without them
    ss["w_emb_colour"] = "model"
ss["w_emb_lines"] = bool(ss.get("emb_lines"))
o1, o2, o3 = st.columns([2, 2, 1])
layout = o1.radio(
    "Layout",
    layouts,
    horizontal=True,
    key="w_emb_layout",
    on_change=_keep,
    args=("w_emb_layout", "emb_layout", EMB_LAYOUTS),
    help="Joint: one UMAP fitted on old and new embeddings together. Side by side: each model "
    "projected alone (meaningful even when the spaces are unrelated or their sizes differ).",
)
colour_by = o2.radio(
    "Colour by",
    colours,
    horizontal=True,
    key="w_emb_colour",
    on_change=_keep,
    args=("w_emb_colour", "emb_colour", EMB_COLOURS),
    help="cluster: the k-means clusters of the old model's embeddings that the Slices page tests "
    "(the same clusters in both panels: they come from the old embeddings)."
    if clustering is not None
    else None,
)
joint = layout == EMB_LAYOUTS["joint"]
lines = o3.toggle("old → new lines", key="w_emb_lines", disabled=not joint, on_change=_keep_lines)
if not same_dim:
    st.caption(f"No joint map: the embedding sizes differ ({d_old} vs {d_new}), so there is no shared space.")

kind = "joint" if joint else "separate"
large = 2 * comp.n_samples > SAMPLED_POINTS
show_all = large and st.toggle(
    f"Show all {images(comp.n_samples)}",
    key="w_emb_all",
    value=bool(ss.get("emb_all")),
    on_change=lambda: ss.update(emb_all=bool(ss["w_emb_all"])),
    help=f"The map shows a fixed random sample of {images(SAMPLED_POINTS // 2)} so that it "
    "is drawn quickly. All images: one slower UMAP fit (about a minute on 2 cores for "
    "10,000 images), then cached.",
)
with st.spinner(
    "Drawing the map... (the bundled pair's maps are precomputed; another pair's first UMAP fit takes "
    "up to a minute or two on 2 cores, then it is cached)"
):
    proj = store.projection(comp, kind, None if show_all or not large else SAMPLED_POINTS)
if proj.subsampled:
    st.caption(
        f"A fixed random sample of {count(len(proj.indices))} of the {images(comp.n_samples)} is shown"
        + ("" if show_all else ' (switch on "Show all" above for every image)')
        + "."
    )

samples = store.samples_table(comp)
fig = store.embedding_figure(
    comp, kind, None if show_all or not large else SAMPLED_POINTS, colour_by, joint and lines, proj
)
event = st.plotly_chart(fig, key=f"chart_emb_{kind}", on_select="rerun", selection_mode=("box", "lasso", "points"))

ids = selected_ids(event.selection.points if event else [])
if ids:
    st.markdown(
        f"**{images(len(ids))} selected**"
        + (f" (first {count(MAX_SELECTED)} shown)" if len(ids) > MAX_SELECTED else "")
    )
    rows = samples.set_index("id", drop=False).loc[ids[:MAX_SELECTED]]
    image_grid(comp, rows, key="emb")
else:
    st.caption("Draw a box or lasso around points to see their images here.")
