"""Streamlit building blocks shared by the pages: the active comparison, progress, sidebar."""

from __future__ import annotations

import logging
import time

import streamlit as st

from graceful_core.comparison import Comparison
from graceful_core.errors import InputError
from graceful_ui import store
from graceful_ui.fmt import md
from graceful_ui.inputs import Spec, user_message
from graceful_ui.review_ui import html_report_button
from graceful_ui.state import current_spec

log = logging.getLogger("graceful_ui")


def progress_bar(label: str = "Running the models"):
    """A ``progress(stage, done, total)`` callback drawing an ``st.progress`` bar with counts."""
    bar = st.progress(0.0, text=f"{label}...")
    last = [0.0]

    def cb(stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if done < total and now - last[0] < 0.1:
            return
        last[0] = now
        if total == 0:  # a stage without counts (e.g. waiting for another session)
            bar.progress(0.0, text=f"{label}: {stage}")
            return
        bar.progress(min(1.0, done / total), text=f"{label}: {stage}, {done} / {total} images")

    return bar, cb


def compute(spec: Spec) -> Comparison:
    """The comparison of ``spec``; a progress bar shows while the models run (if they do)."""
    known = st.session_state.setdefault("_keys", {})
    item = store.get_store().get(known.get(spec.id, ""))
    if item is not None:  # resolved earlier in this session: skip re-stat'ing every file
        return item["comparison"]
    bar, cb = progress_bar()
    try:
        comp = store.load_comparison(spec, progress=cb)
    finally:
        bar.empty()
    known[spec.id] = comp.key
    return comp


def active_comparison() -> tuple[Spec | None, Comparison | None]:
    """The selected spec and its comparison; shows an error (and returns Nones) if it fails."""
    bad = st.session_state.pop("_bad_link", None)
    if bad:
        st.warning(f"The link names a comparison this server does not know ({bad!r}); "
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


def sidebar(spec: Spec | None, comp: Comparison | None) -> None:
    """Current comparison and downloads (JSON report, per-sample CSV) in the sidebar."""
    with st.sidebar:
        if spec is None or comp is None:
            return
        st.caption(f"**Comparing** {md(spec.label)}  \n{comp.n_samples} labelled images, {len(comp.classes)} classes  \n"
                   "The address bar always links to this exact view: copy it to share.")
        st.download_button("Download report (JSON)", store.report_json(comp), file_name="graceful-report.json",
                           mime="application/json", help="The same JSON as `python -m graceful_core compare ... --json`",
                           key="dl_json", width="stretch")
        st.download_button("Download per-sample table (CSV)", store.samples_csv(comp), file_name="graceful-samples.csv",
                           mime="text/csv", key="dl_csv", width="stretch",
                           help="One row per image: label, both predictions and confidences, flip type")
        html_report_button(comp)
