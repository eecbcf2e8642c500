"""Overview: the sections of :mod:`graceful_core.report.sections` in their order, drawn with Streamlit widgets."""

import streamlit as st

from graceful_core.report.sections import Row, Section, build_sections, lead_and_body
from graceful_core.results.comparison import Comparison
from graceful_core.vocabulary import FLIP_TYPES, count
from graceful_ui.fmt import md
from graceful_ui.label_ui import overview_block
from graceful_ui.labelfree_view import unlabelled_overview
from graceful_ui.review_ui import review_section
from graceful_ui.state import request_page
from graceful_ui.store import labelled
from graceful_ui.widgets import VERDICT_COLOURS, rates_table, require_comparison, verdict_markdown

#: Significant regression slices listed on the Overview (all of them on the Slices page).
MAX_SLICES = 3

st.title("Overview")
spec, shown = require_comparison(without_labels=True)
if not labelled(shown):  # no labels: what can be known, in its own view
    unlabelled_overview(spec, shown)
    st.stop()
comp: Comparison = shown

s = comp.summary
st.caption(
    f"{md(spec.label)} · {count(s.n_samples)} labelled images · old = {md(comp.old_name)}, new = {md(comp.new_name)}"
)
pages = st.session_state.get("_pages", {})


def draw_headline(sec: Section) -> None:
    """The headline (a subset's warning is the page header's), then the label issues under it."""
    st.subheader(sec.sentences[0])
    overview_block(comp)  # the NFR without doubtful labels, and the flip verdicts


def draw_worst_class(sec: Section) -> None:
    """The class where the update hurts most, and a button to its negative flips."""
    st.markdown(f":red-background[{md(sec.sentences[0])}]")
    worst_name = sec.values["class"]

    def show_worst() -> None:
        """The Flips grid on the worst class's negative flips."""
        ss = st.session_state
        ss["classes"], ss["flips"], ss["cell"], ss["slice"], ss["grid_page"] = (
            [worst_name],
            [FLIP_TYPES[0]],
            None,
            None,
            1,
        )
        request_page("flips")

    st.button(
        f"Show the {worst_name} images that break",
        on_click=show_worst,
        key="ov_worst",
        icon=":material/arrow_forward:",
        help="Opens the Flips grid on this class's negative flips.",
    )


def draw_significance(sec: Section) -> None:
    st.markdown(f"**{sec.title}:** {verdict_markdown(sec.verdict)}")


def draw_remedy(sec: Section) -> None:
    """What the recommended training-free remedy would change (Mitigate page)."""
    st.markdown(f"**{sec.title}:** {md(sec.sentences[0])}")


def row_card(col, row: Row, delta: str | None = None) -> None:
    """One metric card of the section: its label, value, caption and help."""
    with col.container(border=True):
        st.metric(row.label, row.value, delta=delta, help=row.help)
        st.caption(row.caption)  # the vocabulary's words and numbers: no user text


def draw_cards(sec: Section) -> None:
    """The main cards in rows of four; the others under "More metrics" (drawn after the churn floor)."""
    main = [r for r in sec.rows if not r.more]
    for start in range(0, len(main), 4):
        for col, row in zip(st.columns(4), main[start : start + 4]):
            row_card(col, row, delta=sec.values["new_accuracy_delta"] if row.key == "new_accuracy" else None)


def draw_more_cards(sec: Section) -> None:
    with st.expander("More metrics"):
        for col, row in zip(st.columns(4), [r for r in sec.rows if r.more]):
            row_card(col, row)


def draw_churn_floor(sec: Section) -> None:
    """The churn floor next to NFR: its card (the vocabulary's label and help) and the verdict."""
    v = sec.values
    left, right = st.columns([1, 3])
    with left.container(border=True):
        st.metric(sec.title, v["value"], help=sec.notes[0])
        st.caption(f"{md(v['reference_name'])} breaks {v['flips']} of {v['n_samples']} · 95 % CI {v['ci']}")
    with right.container(border=True):
        st.markdown(f"**Beyond retraining noise?** {verdict_markdown(sec.verdict)}")
        st.caption(md(sec.notes[1]))


def draw_slices(sec: Section) -> None:
    st.markdown(f"#### {sec.title}")
    st.markdown(verdict_markdown(sec.verdict))
    for row in sec.rows[:MAX_SLICES]:
        st.markdown(f"- **{md(row.label)}**: {row.value}")
    if "slices" in pages:
        st.page_link(
            pages["slices"], label="See every slice, its images and its flips", icon=":material/arrow_forward:"
        )


def draw_flips(sec: Section) -> None:
    st.markdown(f"#### {sec.title}")
    st.caption(sec.sentences[0])
    if "flips" in pages and sec.values["total"] != "0":
        st.page_link(pages["flips"], label="See them in the Flips grid", icon=":material/arrow_forward:")


def draw_compatibility(sec: Section) -> None:
    st.markdown("#### Embeddings")
    if sec.verdict is None:
        st.caption(f"No cross-test: {md(sec.sentences[0])}")
        return
    st.markdown(f"BCT cross-test: :{VERDICT_COLOURS[sec.verdict.kind]}-background[{sec.verdict.text}]")
    if "overlap" in sec.values:
        st.caption(f"{sec.values['overlap_label']}: {sec.values['overlap']}. {sec.values['overlap_help']}")
    for v in sec.more:
        st.markdown(verdict_markdown(v))
    if "retrieval" in pages:
        st.page_link(
            pages["retrieval"],
            label="See the retrieval cross-test and retrieval flips",
            icon=":material/arrow_forward:",
        )


DRAW = {
    "headline": draw_headline,
    "worst_class": draw_worst_class,
    "significance": draw_significance,
    "remedy": draw_remedy,
    "cards": draw_cards,
    "churn_floor": draw_churn_floor,
    "slices": draw_slices,
    "flips": draw_flips,
    "compatibility": draw_compatibility,
}

lead, body = lead_and_body(build_sections(comp))
for sec in lead:
    DRAW[sec.key](sec)
cards = next(sec for sec in lead if sec.key == "cards")
draw_more_cards(cards)

st.markdown("#### Per class")
st.caption("Rates are of the images whose true label is that class.")
rates_table(comp.per_class.to_frame())

if comp.per_slice is not None:
    st.markdown("#### Per slice")
    st.caption("Rates are of the images in that slice.")
    rates_table(comp.per_slice.to_frame())

for sec in body:
    DRAW[sec.key](sec)

review_section(comp)
