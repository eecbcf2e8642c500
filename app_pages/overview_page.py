"""Overview: the headline, the metric cards and the significance verdict."""

import streamlit as st

from graceful_core.summary import headline, significance_verdict
from graceful_ui.fmt import interval, md, num, p_value, pct
from graceful_ui.review_ui import review_section
from graceful_ui.widgets import require_comparison

st.title("Overview")
spec, comp = require_comparison()

s = comp.summary
n = s["n_samples"]
st.caption(f"{md(spec.label)} · {n} labelled images · old = {md(comp.old_name)}, new = {md(comp.new_name)}")
st.subheader(headline(comp))

kind, words = significance_verdict(s["n_negative_flips"], s["n_positive_flips"], s["mcnemar_p_value"])
colour = {"better": "green", "worse": "red", "same": "orange"}[kind]
st.markdown(f"**Significance:** :{colour}-background[{words}]")


def card(col, label: str, value: str, caption: str, help: str, delta: str | None = None) -> None:
    with col.container(border=True):
        st.metric(label, value, delta=delta, help=help)
        st.caption(caption)


row1 = st.columns(4)
card(row1[0], "Old accuracy", pct(s["old_accuracy"]), f"of all {n} images", "Share of images the old model classifies correctly.")
card(row1[1], "New accuracy", pct(s["new_accuracy"]), f"of all {n} images",
     "Share of images the new model classifies correctly. The delta is new − old in percentage points.",
     delta=f"{100 * (s['new_accuracy'] - s['old_accuracy']):+.2f} pp")
card(row1[2], "Negative flip rate (NFR)", pct(s["negative_flip_rate"]),
     f"of all {n} images: {s['n_negative_flips']} go old ✓ → new ✗ · 95 % CI {interval(s['negative_flip_rate_ci95'])}",
     "Images the old model got right and the new one gets wrong, over all images (Yan et al., CVPR 2021). "
     "The interval is the Wilson 95 % score interval.")
card(row1[3], "Positive flip rate (PFR)", pct(s["positive_flip_rate"]),
     f"of all {n} images: {s['n_positive_flips']} go old ✗ → new ✓ · 95 % CI {interval(s['positive_flip_rate_ci95'])}",
     "Images the old model got wrong and the new one gets right, over all images. "
     "New error rate − old error rate = NFR − PFR.")

row2 = st.columns(4)
card(row2[0], "Relative NFR", num(s["relative_negative_flip_rate"]),
     "NFR ÷ (old accuracy × new error rate); below 1 means fewer flips than independent errors would give",
     "Positive-congruent training (Yan et al., CVPR 2021). n/a when the new model makes no error or the old "
     "model gets nothing right.")
card(row2[1], "Backward trust (BTC)", pct(s["backward_trust_compatibility"]),
     f"of the {s['n_old_correct']} images the old model got right, still right · 95 % CI "
     f"{interval(s['backward_trust_compatibility_ci95'])}",
     "Backward trust compatibility: Bansal et al. AAAI 2019; Srivastava et al. KDD 2020. Trust users built on the old model's right answers.")
card(row2[2], "Backward error (BEC)", pct(s["backward_error_compatibility"]),
     "of the images the new model gets wrong, ones the old model got wrong too (= 1 − NFI)",
     "Backward error compatibility: share of the new model's errors that are not new. n/a when the new model makes no error.")
card(row2[3], "McNemar p-value", p_value(s["mcnemar_p_value"]),
     f"exact two-sided test on {s['n_negative_flips']} negative vs {s['n_positive_flips']} positive flips",
     "Paired test: is the new model really better or worse on these images, or is the difference noise? "
     "Significant below 0.05.")

with st.expander("More metrics"):
    cols = st.columns(4)
    card(cols[0], "Old-error persistence", pct(s["old_error_persistence"]),
         "of the images the old model got wrong, still wrong under the new model",
         "What Microsoft's BackwardCompatibilityML calls its error compatibility score. n/a when the old model "
         "makes no error.")
    card(cols[1], "Negative flip impact (NFI)", pct(s["negative_flip_impact"]),
         "of the images the new model gets wrong, regressions (old got them right)", "NFR ÷ new error rate.")
    near, conf = s.get("negative_flips_near_boundary"), s.get("negative_flips_confident")
    card(cols[2], "Negative flips near the boundary", "n/a" if near is None else str(near),
         f"of {s['n_negative_flips']} negative flips: p(true class) dropped by less than 0.1",
         "Flips where the old model was barely right or the new one barely wrong. n/a without class scores.")
    card(cols[3], "Confident negative flips", "n/a" if conf is None else str(conf),
         f"of {s['n_negative_flips']} negative flips: p(true class) dropped by 0.5 or more",
         "Flips where the new model is confidently wrong where the old one was right. n/a without class scores.")

def rates_table(df) -> None:
    """A per-group table: readable headers, rates and accuracies as percentages with 2 decimals."""
    shown = df.copy()
    config = {}
    for c in df.columns:
        label = c.replace("_", " ")
        if c.endswith(("_rate", "accuracy")):
            shown[c] = 100 * df[c]  # display only; sorting stays numeric
            config[c] = st.column_config.NumberColumn(label, format="%.2f %%")
        else:
            config[c] = st.column_config.Column(label)
    st.dataframe(shown, hide_index=True, width="stretch", column_config=config)


st.markdown("#### Per class")
st.caption("Rates are of the images whose true label is that class.")
rates_table(comp.per_class)

if comp.per_slice is not None:
    st.markdown("#### Per slice")
    st.caption("Rates are of the images in that slice.")
    rates_table(comp.per_slice)

if comp.compatibility is not None:
    st.markdown("#### Embeddings")
    st.markdown(f"BCT cross-test: {comp.compatibility.verdict()}")
    pages = st.session_state.get("_pages", {})
    if "retrieval" in pages:
        st.page_link(pages["retrieval"], label="See the retrieval cross-test and retrieval flips",
                     icon=":material/arrow_forward:")

review_section(comp)
