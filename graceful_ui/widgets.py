"""Streamlit building blocks shared by the pages: the active comparison, progress, cards, sidebar."""

from __future__ import annotations

import logging
import time

import streamlit as st

from graceful_core.comparison import Comparison
from graceful_core.errors import InputError
from graceful_core.lineage import STAGE_PAIRS
from graceful_core.metrics.summary import FlipSummary
from graceful_core.vocabulary import GROUP_COLUMNS, PCT_DIGITS, STREAMED_NO_SAMPLES, StageProgress, card
from graceful_ui import store
from graceful_ui.fmt import md
from graceful_ui.inputs import Spec, user_message
from graceful_ui.review_ui import html_report_button
from graceful_ui.state import current_spec

log = logging.getLogger("graceful_ui")


def progress_bar(label: str = "Running the models") -> tuple[st.delta_generator.DeltaGenerator, StageProgress]:
    """An ``st.progress`` bar and the ``progress(stage, done, total)`` callback that moves it.

    The bar is redrawn at most every 0.1 s and per whole percent, so a cached computation
    that draws it (Streamlit replays its elements on a cache hit) records few updates.
    """
    bar = st.progress(0.0, text=f"{label}...")
    last = {"t": 0.0, "pct": -1, "stage": None}

    def cb(stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        pct = int(100 * done / total) if total else 0
        if stage == last["stage"] and done < total and (now - last["t"] < 0.1 or pct == last["pct"]):
            return
        last.update(t=now, pct=pct, stage=stage)
        if total == 0:  # a stage without counts
            bar.progress(0.0, text=f"{label}: {stage}")
            return
        units = "model pairs" if stage == STAGE_PAIRS else "images"
        bar.progress(min(1.0, done / total), text=f"{label}: {stage}, {done} / {total} {units}")

    return bar, cb


def compute(spec: Spec) -> Comparison:
    """The comparison of ``spec`` (a spinner, and a progress bar while the models run).

    The files' fingerprint is taken once per session and spec, so a rerun does not stat
    every file of the dataset again.
    """
    fps = st.session_state.setdefault("_fingerprints", {})
    if spec.id not in fps:
        fps[spec.id] = store.fingerprint(spec)
    return store.load_comparison(spec, fps[spec.id])


def active_comparison() -> tuple[Spec | None, Comparison | None]:
    """The selected spec and its comparison; shows an error (and returns Nones) if it fails."""
    bad = st.session_state.pop("_bad_link", None)
    if bad:
        st.warning(f"The link names a comparison this server does not know ({md(bad)}); "
                   "showing the selected one instead.")
    spec = current_spec()
    if spec is None:
        st.info("No comparison selected. Go to **Choose inputs** to pick the bundled sample or upload your own.")
        return None, None
    try:
        return spec, compute(spec)
    except InputError as e:
        st.error(user_message(e, spec))
    except Exception as e:  # a core bug on odd input: say so instead of a traceback
        log.exception("comparison failed")
        st.error(f"{md(spec.label)}: could not be compared ({type(e).__name__}: {e})")
    return spec, None


#: Session key of the (spec, comparison) that app.py resolved for the current run.
_ACTIVE = "_active"


def set_page_comparison(spec: Spec | None, comp: Comparison | None) -> None:
    """Hand this run's comparison from app.py to the page it runs."""
    st.session_state[_ACTIVE] = (spec, comp)


def page_comparison() -> tuple[Spec | None, Comparison | None]:
    """This run's (spec, comparison), set by app.py; Nones when there is none."""
    return st.session_state.get(_ACTIVE, (None, None))


def require_comparison() -> tuple[Spec, Comparison]:
    """This run's (spec, comparison); stops the page when there is none (app.py showed why)."""
    spec, comp = page_comparison()
    if comp is None:
        st.stop()
    return spec, comp


def require_per_sample(comp: Comparison) -> None:
    """Stop a page that needs per-sample data, saying why, when the comparison was streamed."""
    if comp.arrays is None:
        st.info(STREAMED_NO_SAMPLES.format(n=f"{comp.n_samples:,}"))
        st.stop()


def metric_card(col, key: str, summary: FlipSummary, delta: str | None = None, delta_color: str = "normal") -> None:
    """One metric of the summary as a bordered card: the vocabulary's label, value, caption and help."""
    label, value, caption, help_text = card(key, summary)
    with col.container(border=True):
        st.metric(label, value, delta=delta, delta_color=delta_color, help=help_text)
        st.caption(caption)  # the vocabulary's words and numbers: no user text


def rates_table(df) -> None:
    """A per-class or per-slice table: the vocabulary's headers, rates as percentages with 2 decimals."""
    shown = df.copy()
    config = {}
    for c in df.columns:
        label, unit = GROUP_COLUMNS.get(c, (c.replace("_", " "), None))
        if unit == "rate":
            shown[c] = 100 * df[c]  # display only; sorting stays numeric
            config[c] = st.column_config.NumberColumn(label, format=f"%.{PCT_DIGITS}f %%")
        else:
            config[c] = st.column_config.Column(label)
    st.dataframe(shown, hide_index=True, width="stretch", column_config=config)


def sidebar(spec: Spec | None, comp: Comparison | None) -> None:
    """Current comparison and downloads (JSON report, per-sample CSV, HTML report) in the sidebar."""
    with st.sidebar:
        if spec is None or comp is None:
            return
        st.caption(f"**Comparing** {md(spec.label)}  \n{comp.n_samples} labelled images, {len(comp.classes)} classes  \n"
                   "The address bar always links to this exact view: copy it to share.")
        st.download_button("Download report (JSON)", store.report_json(comp), file_name="graceful-report.json",
                           mime="application/json", help="The same JSON as `python -m graceful_core compare ... --json`",
                           key="dl_json", width="stretch")
        if comp.arrays is not None:  # a streamed comparison has no per-sample table
            st.download_button("Download per-sample table (CSV)", store.samples_csv(comp),
                               file_name="graceful-samples.csv", mime="text/csv", key="dl_csv", width="stretch",
                               help="One row per image: label, both predictions and confidences, flip type")
        html_report_button(comp)
