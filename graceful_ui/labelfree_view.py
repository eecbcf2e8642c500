"""The Overview of a comparison without true labels (:class:`graceful_core.comparing.labelfree.UnlabelledComparison`).

It says first that there are no labels and which numbers therefore do not exist, then
shows what does: prediction churn with its interval, the old → new transition matrix,
churn per predicted class, the confidence of the changed predictions, churn slices, the
churn floor and the embedding cross-test by predicted class; and offers the changed
predictions as a CSV (the samples worth labelling first).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from graceful_core.comparing.labelfree import UnlabelledComparison, labels_missing_sentence
from graceful_core.explore.selection import busiest_submatrix
from graceful_core.report.figures import MAX_CLASSES, TRANSITION_TITLE, transition_heatmap
from graceful_core.report.sections import Section, build_unlabelled_sections
from graceful_core.vocabulary import METRICS, images, percent
from graceful_ui.downloads import download_name
from graceful_ui.fmt import md

#: Churn slices listed on the Overview.
MAX_CHURN_SLICES = 5


def unlabelled_note() -> None:
    """The statement every page shows for a comparison without labels."""
    st.warning(labels_missing_sentence(), icon=":material/label_off:")


def needs_labels_note() -> None:
    """A page that only exists with labels: say so and point to the Overview."""
    unlabelled_note()
    st.info(
        "This page compares predictions with true labels, so it has nothing to show for this comparison. "
        "The **Overview** shows what changes between the two models without labels."
    )


def unlabelled_overview(spec, comp: UnlabelledComparison) -> None:
    """The whole Overview of a comparison without labels: its sections (:mod:`graceful_core.report.sections`) in order."""
    st.caption(
        f"{md(spec.label)} · {images(comp.n_samples)} **without labels** · old = {md(comp.old_name)}, "
        f"new = {md(comp.new_name)}"
    )
    cards: list = []  # the churn card and the two confidence cards share one row

    def draw_headline(sec: Section) -> None:
        for w in sec.warnings:
            st.error(md(w), icon=":material/warning:")
        st.subheader(sec.sentences[0])
        st.warning(sec.notes[0], icon=":material/label_off:")  # what does not exist without labels

    def card_row(sec: Section) -> None:
        if not cards:
            cards.extend(st.columns(3))
        for row in sec.rows:
            with cards.pop(0).container(border=True):
                st.metric(row.label, row.value, help=row.help)
                st.caption(row.caption)
        if sec.key == "confidence":  # under the cards: the two models' confidence in one line
            st.caption(md(sec.sentences[0]))

    def draw_churn_floor(sec: Section) -> None:
        with st.container(border=True):
            st.markdown(f"**{sec.title}:** {md(sec.sentences[0])}")

    def draw_most_changed(sec: Section) -> None:
        left, right = st.columns(2)
        with left:
            sub, names = busiest_submatrix(comp.churn.transition_matrix, comp.classes, MAX_CLASSES)
            st.plotly_chart(
                transition_heatmap(sub, names, title=TRANSITION_TITLE),
                key="chart_churn_matrix",
            )
            if len(names) < len(comp.classes):
                st.caption(f"{len(names)} of {len(comp.classes)} classes: those with the most changed predictions.")
        with right:
            m = METRICS["prediction_churn"]
            st.markdown(f"**{sec.title}** (by the old model's prediction)")
            st.caption(md(sec.sentences[0]))
            table = pd.DataFrame(comp.churn.per_class_json(comp.classes)).rename(
                columns={"class": "Old prediction", "support": "Images", "changed": "Changed", "churn": m.label}
            )
            table[m.label] = table[m.label].map(percent)
            st.dataframe(table.sort_values("Changed", ascending=False), hide_index=True, width="stretch")

    def draw_churn_slices(sec: Section) -> None:
        st.markdown(f"**{sec.title}:** {sec.sentences[0]}.")
        for row in sec.rows[:MAX_CHURN_SLICES]:
            st.markdown(f"- {md(row.label)}: {row.value}")

    def draw_compatibility(sec: Section) -> None:
        st.markdown(f"**{sec.title}:** {md(sec.sentences[0])}")

    draw = {
        "headline": draw_headline,
        "churn": card_row,
        "confidence": card_row,
        "churn_floor": draw_churn_floor,
        "most_changed": draw_most_changed,
        "churn_slices": draw_churn_slices,
        "compatibility": draw_compatibility,
    }
    for sec in build_unlabelled_sections(comp):
        draw[sec.key](sec)

    st.download_button(
        "Download the changed predictions (CSV)",
        comp.changed().to_csv(index=False).encode(),
        file_name=download_name(comp.old_name, comp.new_name, "changed-predictions", "csv"),
        mime="text/csv",
        key="dl_changed",
        help="One row per image whose predicted class changes: label a sample of them to measure "
        "which changes are regressions.",
    )
