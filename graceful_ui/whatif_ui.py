"""The what-if remedies of the comparison on screen (top of the Mitigate page): curves, sentence, download.

Everything shown comes from ``comp.mitigation_whatif`` (computed with the comparison, no
model runs). "Download this model" exports the recommended setting as one ``.pt2`` file
(:func:`graceful_core.remedies.transition.export_remedy`) from the compared model files,
or, for the bundled sample's predictions tables, from the sample's model files of the
same names (the tables were made by them).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import streamlit as st

from graceful_core.comparing.sources import is_table
from graceful_core.errors import InputError
from graceful_core.io.samples import bundled_samples, sample_of_path
from graceful_core.report.remedies import whatif_figure
from graceful_core.results.comparison import Comparison
from graceful_core.vocabulary import WHATIF_TITLE, images
from graceful_ui.bundled_specs import sample_data_dir
from graceful_ui.fmt import md
from graceful_ui.store import labelled
from graceful_ui.widgets import page_comparison

__all__ = ["whatif_section", "model_files_of"]

_EXPORTS = "_whatif_exports"


def model_files_of(comp: Comparison) -> tuple[str, str] | None:
    """The model files of the comparison's two sides (for tables of a bundled sample: its models), or None."""
    inputs = comp.inputs
    if inputs is None or inputs.old is None or inputs.new is None:
        return None
    if not is_table(inputs.old) and not is_table(inputs.new):
        return inputs.old, inputs.new
    sample = sample_of_path(inputs.old, bundled_samples(sample_data_dir()))
    if sample is None:
        return None
    by_stem = {p.stem: p for p in sample.models() if p.suffix in (".pt", ".pt2")}
    old, new = (
        str(by_stem[Path(p).stem]) if is_table(p) and Path(p).stem in by_stem else (None if is_table(p) else p)
        for p in (inputs.old, inputs.new)
    )
    return (old, new) if old and new else None


@st.cache_data(show_spinner=False, max_entries=8)
def _export_bytes(old: str, new: str, method: str, params: tuple[tuple[str, float], ...]) -> bytes:
    # both import torch: only when a remedy is exported
    from graceful_core.models.loader import load_model
    from graceful_core.remedies.transition import export_remedy

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "transition.pt2")
        export_remedy(load_model(old), load_model(new), method, dict(params), out)
        return Path(out).read_bytes()


def whatif_section() -> None:
    """The what-if curves, the recommendation in one sentence and "Download this model"."""
    _, comp = page_comparison()
    st.subheader(WHATIF_TITLE)
    if comp is None:
        st.info("Open a comparison (Inputs) to see what mixing or gating its two models would change.")
        return
    if not labelled(comp):
        st.info(
            "No what-if remedies for a comparison without labels: each remedy is chosen and scored by its "
            "negative flips and error rate, which need true labels."
        )
        return
    report = comp.mitigation_whatif
    if report is None:
        st.info(
            "No what-if remedies for this comparison: they need both models' class scores (logits or "
            "probabilities) and per-image results (not a streamed comparison)."
        )
        return
    rec = report.recommended
    st.markdown(f"**{md(rec.sentence())}**")
    st.plotly_chart(whatif_figure(report), key="chart_whatif")
    st.caption(
        f"Each point: the remedy on all {images(report.n_samples)} of {md(comp.old_name)} → "
        f"{md(comp.new_name)}. Mixing averages the two models' class probabilities; gating keeps the old "
        "answer where the old model is confident and the new one is not. The recommended setting was "
        "chosen on one half of the images and measured on the other (both ways); the sentence gives those "
        "held-out numbers. Weight interpolation needs two model files of one architecture: "
        "`graceful mitigate OLD NEW --data DATA` adds it."
    )
    files = model_files_of(comp)
    if files is None:
        st.caption(
            "Download: the comparison was made from predictions tables, which cannot be deployed; run "
            "`graceful mitigate OLD NEW --data DATA --export transition.pt2` on the model files."
        )
        return
    params = tuple(sorted((k, float(v)) for k, v in rec.params.items()))
    key = (files, rec.method, params)
    ready = st.session_state.setdefault(_EXPORTS, {})
    if key not in ready and st.button(
        "Prepare the model file",
        key="whatif_prepare",
        help="Export the recommended setting as one torch.export .pt2 file (a few seconds).",
    ):
        try:
            with st.spinner("Exporting the recommended setting…"):
                ready[key] = _export_bytes(files[0], files[1], rec.method, params)
        except InputError as e:
            st.error(e.message)
    if key in ready:
        st.download_button(
            "Download this model",
            ready[key],
            file_name="transition.pt2",
            mime="application/octet-stream",
            key="whatif_download",
            help="One .pt2 file: graceful predict on it gives the recommended setting's predictions "
            "(for mixing and gating it runs both models; its embedding is the new model's).",
        )
