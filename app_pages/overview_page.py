"""Overview: the headline, the metric cards and the significance verdict."""

import streamlit as st

from graceful_core.remedies.report import whatif_line
from graceful_core.summary import (
    churn_verdict,
    classes_hurt,
    compatibility_verdict,
    headline,
    significance_verdict,
    slice_numbers,
    slice_verdict,
    worst_class_sentence,
)
from graceful_core.vocabulary import (
    FLIP_TYPES,
    METRICS,
    MORE_CARDS,
    SLICES_TITLE,
    SUMMARY_CARDS,
    WHATIF_LINE_LABEL,
    images,
    interval,
    points,
)
from graceful_ui.fmt import md
from graceful_ui.label_ui import overview_block
from graceful_ui.review_ui import review_section
from graceful_ui.state import request_page
from graceful_ui.store import labelled
from graceful_ui.widgets import VERDICT_COLOURS, metric_card, rates_table, require_comparison, verdict_markdown

#: Significant regression slices listed on the Overview (all of them on the Slices page).
MAX_SLICES = 3

st.title("Overview")
spec, comp = require_comparison(without_labels=True)
if not labelled(comp):  # no labels: what can be known, in its own view
    from graceful_ui.labelfree_view import unlabelled_overview

    unlabelled_overview(spec, comp)
    st.stop()

s = comp.summary
st.caption(f"{md(spec.label)} · {s.n_samples} labelled images · old = {md(comp.old_name)}, new = {md(comp.new_name)}")
st.subheader(headline(comp))
overview_block(comp)  # the NFR without doubtful labels, and the flip verdicts
worst = worst_class_sentence(comp)
if worst is not None:  # the class where the update hurts most leads
    st.markdown(f":red-background[{md(worst)}]")
    worst_name = classes_hurt(comp)[0].name

    def show_worst() -> None:
        """The Flips grid on the worst class's negative flips."""
        ss = st.session_state
        ss["classes"], ss["flips"], ss["cell"], ss["slice"], ss["grid_page"] = [worst_name], [FLIP_TYPES[0]], None, None, 1
        request_page("flips")

    st.button(f"Show the {worst_name} images that break", on_click=show_worst, key="ov_worst",
              icon=":material/arrow_forward:", help="Opens the Flips grid on this class's negative flips.")

verdict = significance_verdict(s)
st.markdown(f"**Significance:** :{VERDICT_COLOURS[verdict.kind]}-background[{verdict.text}]")
if comp.mitigation_whatif is not None:  # what the recommended training-free remedy would change (Mitigate page)
    st.markdown(f"**{WHATIF_LINE_LABEL}:** {md(whatif_line(comp.mitigation_whatif))}")

deltas = {"new_accuracy": points(s.new_accuracy - s.old_accuracy)}


def churn_floor_row(cf) -> None:
    """The churn floor next to NFR: its card (the vocabulary's label and help) and the verdict."""
    m = METRICS["churn_floor"]
    left, right = st.columns([1, 3])
    with left.container(border=True):
        st.metric(m.label, m.format(cf.negative_flip_rate), help=m.help)
        st.caption(f"{md(cf.reference_name)} breaks {images(cf.n_negative_flips)} of {cf.n_samples} · 95 % CI "
                   f"{interval(cf.negative_flip_rate_ci95)}")
    with right.container(border=True):
        st.markdown(f"**Beyond retraining noise?** {verdict_markdown(churn_verdict(cf))}")
        st.caption(f"The update's NFR {METRICS['negative_flip_rate'].format(cf.update_negative_flip_rate)} − the "
                   f"churn floor {m.format(cf.negative_flip_rate)} = {points(cf.excess)}. The churn floor is the NFR "
                   f"of {md(cf.reference_name)} (the old model retrained with another seed) against the old model. "
                   f"{METRICS['churn_p_value'].help}")


for i, row in enumerate((SUMMARY_CARDS[:4], SUMMARY_CARDS[4:])):
    for col, key in zip(st.columns(4), row):
        metric_card(col, key, s, delta=deltas.get(key))
    if i == 0 and comp.churn_floor is not None:  # right under the row with NFR
        churn_floor_row(comp.churn_floor)

with st.expander("More metrics"):
    for col, key in zip(st.columns(4), MORE_CARDS):
        metric_card(col, key, s)

st.markdown("#### Per class")
st.caption("Rates are of the images whose true label is that class.")
rates_table(comp.per_class.to_frame())

if comp.per_slice is not None:
    st.markdown("#### Per slice")
    st.caption("Rates are of the images in that slice.")
    rates_table(comp.per_slice.to_frame())

rep = comp.regression_slices
if rep is not None:
    st.markdown(f"#### {SLICES_TITLE}")
    st.markdown(verdict_markdown(slice_verdict(rep)))
    for sl in rep.significant()[:MAX_SLICES]:
        st.markdown(f"- **{md(sl.title)}**: {slice_numbers(sl)}")
    pages = st.session_state.get("_pages", {})
    if "slices" in pages:
        st.page_link(pages["slices"], label="See every slice, its images and its flips", icon=":material/arrow_forward:")

if comp.compatibility is not None:
    st.markdown("#### Embeddings")
    ct_verdict = compatibility_verdict(comp.compatibility)
    st.markdown(f"BCT cross-test: :{VERDICT_COLOURS[ct_verdict.kind]}-background[{ct_verdict.text}]")
    if comp.embedding_overlap is not None:
        m = METRICS["embedding_overlap"]
        st.caption(f"{m.name[0].upper()}{m.name[1:]}: {m.format(comp.embedding_overlap)}. {m.help}")
    pages = st.session_state.get("_pages", {})
    if "retrieval" in pages:
        st.page_link(pages["retrieval"], label="See the retrieval cross-test and retrieval flips",
                     icon=":material/arrow_forward:")

elif comp.compatibility_reason is not None:
    st.markdown("#### Embeddings")
    st.caption(f"No cross-test: {comp.compatibility_reason}")

review_section(comp)
