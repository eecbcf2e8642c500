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
from graceful_core.report.figures import MAX_CLASSES, transition_heatmap
from graceful_core.report.sentences import unlabelled_headline
from graceful_core.vocabulary import ALPHA, METRICS, interval, percent, probability
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
    st.info("This page compares predictions with true labels, so it has nothing to show for this comparison. "
            "The **Overview** shows what changes between the two models without labels.")


def unlabelled_overview(spec, comp: UnlabelledComparison) -> None:
    """The whole Overview of a comparison without labels."""
    ch = comp.churn
    st.caption(f"{md(spec.label)} · {comp.n_samples} images **without labels** · old = {md(comp.old_name)}, "
               f"new = {md(comp.new_name)}")
    if comp.missing is not None and comp.missing.any:
        st.error(md(comp.missing.sentence()), icon=":material/warning:")
    st.subheader(unlabelled_headline(comp))
    unlabelled_note()

    m = METRICS["prediction_churn"]
    conf = comp.changed_confidence()
    cols = st.columns(3)
    with cols[0].container(border=True):
        st.metric(m.label, m.format(ch.rate), help=m.help)
        st.caption(f"{ch.n_changed} of {ch.n_samples} images · 95 % CI {interval(ch.ci95)}")
    with cols[1].container(border=True):
        st.metric("Old model's confidence on changed", probability(conf["old_changed"]),
                  help="Mean top probability of the old model on the images whose prediction changes.")
        st.caption(f"on unchanged images: {probability(conf['old_unchanged'])}")
    with cols[2].container(border=True):
        st.metric("New model's confidence on changed", probability(conf["new_changed"]),
                  help="Mean top probability of the new model on the images whose prediction changes.")
        st.caption(f"on unchanged images: {probability(conf['new_unchanged'])}")

    if comp.reference is not None:
        r = comp.reference
        with st.container(border=True):
            st.markdown(f"**Churn floor:** {percent(r.reference_churn)} of predictions change between the old model "
                        f"and {md(r.reference_name)} (a retrain). The update alone changes {r.update_only}, the retrain "
                        f"alone {r.reference_only} (exact McNemar p {METRICS['churn_p_value'].format(r.p_value)}).")

    left, right = st.columns(2)
    with left:
        sub, names = busiest_submatrix(ch.transition_matrix, comp.classes, MAX_CLASSES)
        st.plotly_chart(transition_heatmap(sub, names, title="Old → new predictions (row = old, column = new)"),
                        key="chart_churn_matrix")
        if len(names) < len(comp.classes):
            st.caption(f"{len(names)} of {len(comp.classes)} classes: those with the most changed predictions.")
    with right:
        st.markdown("**Churn per class** (by the old model's prediction)")
        table = pd.DataFrame(comp.churn.per_class_json(comp.classes)).rename(
            columns={"class": "Old prediction", "support": "Images", "changed": "Changed", "churn": m.label})
        table[m.label] = table[m.label].map(percent)
        st.dataframe(table.sort_values("Changed", ascending=False), hide_index=True, width="stretch")

    if comp.churn_slices is not None:
        sig = comp.significant_churn_slices()
        st.markdown(f"**Churn slices:** {len(sig)} of {len(comp.churn_slices.slices)} slices change significantly "
                    f"more predictions than the rest (Fisher, Benjamini–Hochberg adjusted p < {ALPHA:g}).")
        for s in sig[:MAX_CHURN_SLICES]:
            st.markdown(f"- {md(s.title)}: {s.negative_flips} of {s.size} changed ({percent(s.negative_flip_rate)}; "
                        f"rest {percent(s.rest_negative_flip_rate)})")
    if comp.compatibility is not None:
        st.markdown(f"**Embeddings** (classes = the old model's predictions): {md(comp.compatibility.verdict())}")

    st.download_button("Download the changed predictions (CSV)", comp.changed().to_csv(index=False).encode(),
                       file_name=download_name(comp.old_name, comp.new_name, "changed-predictions", "csv"), mime="text/csv", key="dl_changed",
                       help="One row per image whose predicted class changes: label a sample of them to measure "
                            "which changes are regressions.")
