"""Versions: many models at once (a lineage v1 -> v2 -> ... plus variants) on one dataset.

Pairwise NFR / BTC / cross-test Hit@1 heatmaps (click a cell to open that pair), the
chain's accuracy, NFR and regressions from v1, and a graph of which model can search
which model's index. The model set is :func:`graceful_core.comparing.lineage.model_matrix_report`'s,
its figures are :mod:`graceful_core.report.figures`'.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from graceful_core.errors import InputError
from graceful_core.io.datasets import load_dataset
from graceful_core.io.samples import bundled_samples, sample_of_classes
from graceful_core.report import figures
from graceful_core.results.comparison import Comparison
from graceful_core.vocabulary import METRICS, MODEL_SUFFIXES, images, percent
from graceful_ui import store
from graceful_ui.bundled_specs import pair_spec, sample_data_dir, spec_sample
from graceful_ui.fmt import md
from graceful_ui.spec import user_message
from graceful_ui.trained_specs import trained_models_dir
from graceful_ui.upload_specs import pair_spec_of_files
from graceful_ui.uploaded_files import StoredFile, server_file, uploads_dir
from graceful_ui.uploads import session_models
from graceful_ui.widgets import open_comparison, page_comparison

ss = st.session_state
DEFAULT_CHAIN = ("old", "new", "v3", "edge")
#: The matrices in the order drawn: key of the model set -> (title, metric, (row, column), chart key).
MATRICES = {
    "negative_flip_rate": ("Negative flip rate", "negative_flip_rate", ("old", "new"), "chart_v_nfr"),
    "backward_trust_compatibility": (
        "Backward trust compatibility",
        "backward_trust_compatibility",
        ("old", "new"),
        "chart_v_btc",
    ),
    "cross_top1": ("Cross-test Hit@1", "hit_at_1", ("query", "gallery"), "chart_v_cross"),
}
HELP_GRAPH = (
    "An arrow A → B means A's queries, searched against B's existing index, find an image of the "
    "right class more often than B's own queries do: cross-test Hit@1 M(A, B) > self-test M(B, B), "
    "BCT's compatibility criterion."
)

st.title("Versions")
spec, comp = page_comparison()
#: The bundled sample whose models are offered: the current comparison's, else the default (Fashion-MNIST first).
_samples = bundled_samples(sample_data_dir())
#: (an uploaded comparison: the sample with the same classes, e.g. digits models uploaded with a zip of digits)
sample = (
    spec_sample(spec)
    or (sample_of_classes(comp.classes, _samples) if comp is not None else None)
    or (_samples[0] if _samples else None)
)
st.caption(
    "Compare a whole set of models on one dataset: every pair's negative flips, trust and embedding "
    "compatibility. The order you pick the models in is the lineage order (v1 first)."
)


# ------------------------------------------------------------------------ inputs
def bundled_models() -> dict[str, Path]:
    """The bundled sample's model files by file name."""
    if sample is None:
        return {}
    return {p.name: p for p in sorted(sample.models(), key=lambda p: p.name)}


def origin(path: str) -> str:
    """Where a model file that is not bundled comes from, in a word or two."""
    p = Path(path).resolve()
    if p.is_relative_to(uploads_dir().resolve()):
        return "uploaded"
    if p.is_relative_to(trained_models_dir().resolve()):
        return "trained"
    return "this comparison"


def model_options() -> dict[str, StoredFile]:
    """Every model on offer by its name in the set: the bundled ones, this session's uploads, the comparison's.

    Names are unique: an uploaded ``old.pt`` is ``old.pt (uploaded)``, a second upload of
    that name with other content ``old.pt (uploaded 2)``.
    """
    opts: dict[str, StoredFile] = {name: StoredFile(name, str(p), "", 0) for name, p in bundled_models().items()}
    by_path = {f.path: name for name, f in opts.items()}
    extra = list(session_models())
    if spec is not None:
        for path in (spec.old, spec.new):
            if Path(path).suffix.lower() in MODEL_SUFFIXES and path not in by_path and Path(path).is_file():
                extra.append(StoredFile(Path(spec.display_name(path)).name, path, "", 0))
    for f in extra:
        if f.path in by_path:
            continue
        base = f"{f.name} ({origin(f.path)})"
        name, i = base, 2
        while name in opts:
            name, i = f"{base[:-1]} {i})", i + 1
        opts[name] = f
        by_path[f.path] = name
    return opts


options = model_options()
name_of = {f.path: name for name, f in options.items()}
if len(options) < 2:
    st.info("Fewer than two models (bundled in the sample data or uploaded on Choose inputs): nothing to compare.")
    st.stop()

# Start from the comparison on screen: its two models (inside the default chain when both are in it).
bundled_names = {p.stem: name for name, p in bundled_models().items()}
chain = [bundled_names[s] for s in DEFAULT_CHAIN if s in bundled_names] or list(options)[:2]
pair = [name_of.get(p) for p in (spec.old, spec.new)] if spec is not None else []
if ss.get("versions_for") != ss.get("cmp"):
    ss["versions_for"] = ss.get("cmp")
    if len(pair) == 2 and all(pair) and pair[0] != pair[1] and not set(pair) <= set(ss.get("versions_models", [])):
        ss["versions_models"] = chain if set(pair) <= set(chain) else pair
ss.setdefault("versions_models", chain)


def on_models() -> None:
    ss["versions_models"] = list(ss["w_versions"])


ss["w_versions"] = [m for m in ss["versions_models"] if m in options]
st.multiselect(
    "Models, in lineage order (v1 first)",
    list(options),
    key="w_versions",
    on_change=on_models,
    help="Pick at least two. The order of selection is the lineage order used by the chain charts; "
    "variants (e.g. new-pc.pt, new-bct.pt) can be added anywhere. Models you uploaded on Choose inputs "
    "are offered too.",
)
chosen = list(ss["w_versions"])

bundled_data = None if sample is None else sample.test_data
bundled_name = "" if sample is None else f"{sample.data_label} ({sample.title}, bundled)"
#: The current comparison's dataset (a comparison of tables without images, or without labels, has none).
comp_dataset = comp.dataset if isinstance(comp, Comparison) else None
#: Whether the dataset is the current comparison's.
data_of_comparison = spec is not None and bool(spec.data) and comp_dataset is not None
if spec is not None and spec.data and comp_dataset is not None:
    data_path, dataset = spec.data, comp_dataset
    data_name = spec.display_name(spec.data)
    data_names = tuple(n for n in spec.names if n[0] not in (spec.old, spec.new))
elif bundled_data is not None:
    data_path, dataset, data_name, data_names = str(bundled_data), None, bundled_name, ()
else:
    st.info("No dataset: open a comparison with a dataset on Choose inputs first.")
    st.stop()
bundled = bundled_data is not None and Path(data_path).resolve() == bundled_data.resolve()
if bundled:
    data_name = bundled_name
st.caption(
    f"Dataset: **{md(data_name)}** (the current comparison's)"
    if data_of_comparison
    else f"Dataset: **{md(data_name)}**"
)
if len(chosen) < 2:
    st.info("Pick at least two models.")
    st.stop()

try:
    ms, seeded = store.model_set_and_sources(
        [options[m].path for m in chosen], dataset if dataset is not None else load_dataset(data_path), names=chosen
    )
except InputError as e:
    st.error(user_message(e, spec) if spec is not None else e.message)
    st.stop()

names = list(ms.models)
k = len(names)
if seeded.used:
    st.caption(
        f"Outputs of {', '.join(seeded.used)} read from the sample's predictions tables, which are on record as "
        "written by these very model files on these very images (no model run for them)."
    )
for model_file, why in seeded.stale.items():
    st.warning(f"{model_file} ran on the images: its bundled table was not used ({why}).")


# ------------------------------------------------------------------------ clicks -> Overview
def pair_to_open(old: str, new: str):
    """The spec of the pair ``old`` -> ``new`` (names in the set) on this page's dataset."""
    a, b = options[old], options[new]
    if sample is not None and bundled and old in bundled_models() and new in bundled_models():
        return pair_spec(Path(a.path).stem, Path(b.path).stem, sample=sample.name)
    return pair_spec_of_files(
        server_file(a.path, a.name), server_file(b.path, b.name), data_path, data_name, data_names
    )


def _on_cell(chart_key: str, query_gallery: bool) -> None:
    """Open the clicked pair on the Overview (a cross-test cell (q, g) is the update old = g -> new = q)."""
    cell = figures.selected_cell(ss[chart_key].selection.points)
    if cell is None:
        return
    row, col = cell
    old, new = (col, row) if query_gallery else (row, col)
    if old == new:
        st.toast("That cell compares a model with itself: pick an off-diagonal cell.")
        return
    target = pair_to_open(old, new)
    if target is None:
        st.toast("That pair cannot be opened: a model file is missing.")
    else:
        open_comparison(target.id, page="overview")


st.markdown(
    f"**{k} models** on **{images(ms.n_samples)}** · click an off-diagonal cell to open that pair on the Overview"
)
# two matrices a row: in three columns a cell is too narrow at 800 px for a readable "100.00 %"
for col, (key, (title, metric, (rt, ct), chart)) in zip(st.columns(2) + st.columns(2), MATRICES.items()):
    with col:
        st.subheader(
            title,
            help=f"{METRICS[metric].help} Here row = {rt} model, column = {ct} model"
            + ("; the diagonal is each model's self-test." if key == "cross_top1" else "."),
        )
        st.plotly_chart(
            figures.model_set_heatmap(ms, key),
            key=chart,
            selection_mode="points",
            on_select=lambda c=chart, q=(key == "cross_top1"): _on_cell(c, q),
        )
        if key == "cross_top1":
            missing = {r for row in ms.cross_top1_reason for r in row if r}
            if missing:
                st.caption("Empty cells: " + "; ".join(sorted(missing)) + ".")

reg, ever = METRICS["regressions_from_first"], METRICS["ever_regressed_from_first"]
acc, self_test = METRICS["accuracy"], METRICS["self_test_hit_at_1"]
reg_col, ever_col = f"{names[0]} right, this wrong", f"ever wrong since {names[0]}"
st.subheader("Per model", help=f"Accuracy: {acc.help} Self-test: {self_test.help} Regressions: {reg.help}")
table = pd.DataFrame(
    {
        "model": names,
        "accuracy": [acc.format(a) for a in ms.accuracy],
        "self-test Hit@1": [self_test.format(s) for s in ms.self_top1],
        "embedding size": ["none" if d is None else str(d) for d in ms.embedding_dims],
        reg_col: [reg.format(x) for x in ms.lineage.regressions_from_first],
        ever_col: [ever.format(x) for x in ms.lineage.ever_regressed_from_first],
    }
)
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    key="table_v_models",
    column_config={
        "accuracy": st.column_config.TextColumn(help=acc.help),
        "self-test Hit@1": st.column_config.TextColumn(help=self_test.help),
        reg_col: st.column_config.TextColumn(help=reg.help),
        ever_col: st.column_config.TextColumn(help=ever.help),
    },
)

st.subheader(
    "Lineage", help="The chosen order as a chain of releases v1 → v2 → …: " + METRICS["negative_flip_rate"].help
)
l1, l2 = st.columns(2)
with l1:
    st.plotly_chart(figures.lineage_figure(ms), key="chart_v_lineage")
    st.caption("Accuracy of each model (line) and the negative flip rate of each step from the previous model (bars).")
with l2:
    st.plotly_chart(figures.regressions_figure(ms), key="chart_v_regressions")
    last = ms.lineage.regressions_from_first[-1]
    st.caption(
        f"Regressions from {names[0]}: {images(last)} that {names[0]} got right "
        f"are wrong under {names[-1]}. The dotted line counts images wrong in at least one version so far."
    )

st.subheader("Compatibility graph", help=HELP_GRAPH)
g1, g2 = st.columns([3, 2])
with g1:
    st.plotly_chart(figures.compatibility_graph(ms), key="chart_v_graph")
with g2:
    if ms.can_share_index:
        st.markdown(
            "An arrow **A → B** means you can ship A and keep searching B's existing index: A's queries "
            "find an image of the right class in B's gallery more often than B's own queries do. "
            "No re-indexing (backfill) is needed for these switches:"
        )
        st.markdown(
            "\n".join(
                f"- **{s.query} → {s.gallery}**: {percent(s.cross_top1)} vs "
                f"{percent(s.gallery_self_top1)} for {s.gallery} itself"
                for s in ms.can_share_index
            )
        )
    else:
        st.markdown(
            "No model can search another model's index as well as that model searches it itself: "
            "every switch between these models needs the gallery re-indexed (backfilled)."
        )

with st.expander("Numbers as tables"):
    for key, (title, metric, (rt, ct), _) in MATRICES.items():
        st.markdown(f"**{title}** (row = {rt} model, column = {ct} model)")
        df = pd.DataFrame([[METRICS[metric].format(x) for x in r] for r in getattr(ms, key)], columns=names)
        df.insert(0, f"{title}: {rt} \\ {ct}", names)
        st.dataframe(df, hide_index=True, width="stretch", key=f"table_v_{key}")
