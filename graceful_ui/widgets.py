"""Streamlit building blocks shared by the pages: the active comparison, progress, cards, sidebar."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Literal, overload

import streamlit as st

from graceful_core.errors import InputError
from graceful_core.metrics.summary import FlipSummary
from graceful_core.results.comparison import Comparison
from graceful_core.vocabulary import GROUP_COLUMNS, MODEL_SUFFIXES, PCT_DIGITS, STREAMED_NO_SAMPLES, card, count, images
from graceful_ui import label_ui, store
from graceful_ui.downloads import download_name
from graceful_ui.fmt import md
from graceful_ui.jobs import ComparisonCancelled, Job, JobState
from graceful_ui.labelfree_view import needs_labels_note
from graceful_ui.progress import progress_bar  # noqa: F401  (kept importable from here for pages)
from graceful_ui.review_ui import html_report_button
from graceful_ui.spec import Spec, user_message
from graceful_ui.spec_ids import resolve_spec
from graceful_ui.state import current_spec, request_page, select_comparison

log = logging.getLogger("graceful_ui")

#: Streamlit's colour of each verdict kind.
VERDICT_COLOURS = {"better": "green", "worse": "red", "same": "orange"}


def verdict_markdown(verdict) -> str:
    """A :class:`~graceful_core.report.sentences.Verdict` as a coloured Markdown span (core words only: no user text)."""
    return f":{VERDICT_COLOURS[verdict.kind]}-background[{verdict.text}]"


def _fingerprint(spec: Spec) -> tuple:
    """The files' fingerprint, taken once per session and spec (a rerun does not stat every file again)."""
    fps = st.session_state.setdefault("_fingerprints", {})
    if spec.id not in fps:
        fps[spec.id] = store.fingerprint(spec)
    return fps[spec.id]


def start_comparison(spec: Spec) -> Job[store.AnyComparison]:
    """Start computing ``spec`` on the server (or join the job that does) without waiting."""
    return store.comparison_job(spec, _fingerprint(spec))


def _cancel(spec: Spec, fp: tuple) -> None:
    job = store.comparison_job(spec, fp)
    if not job.finished:
        job.cancel()


def _progress_text(spec: Spec, state: JobState) -> tuple[float, str]:
    """The progress bar of a comparison job: fraction done and what runs now."""
    n_models = sum(Path(p).suffix.lower() in MODEL_SUFFIXES for p in (spec.old, spec.new, spec.reference) if p)
    if state.cancel_requested:
        return 0.0, "Cancelling (after the current batch of images)..."
    if not state.stages:
        return 0.0, "Loading the dataset and the models..." if n_models else "Reading the tables..."
    within = state.done / state.total if state.total else 0.0
    fraction = min(1.0, (len(state.stages) - 1 + within) / max(1, n_models))
    if len(state.stages) >= n_models and state.total and state.done >= state.total:
        return 1.0, "Computing the metrics and the embedding cross-test..."
    return fraction, f"Running {state.stage}: {count(state.done)} / {images(state.total)}"


def _wait(spec: Spec, job: Job[store.AnyComparison]) -> None:
    """Draw the job's progress (and a Cancel button) until it finishes.

    Only the waiting belongs to this script run: when the user switches pages, Streamlit
    stops the run at the next ``bar.progress`` call and the job goes on; the next page
    waits for the same job.
    """
    box = st.empty()
    with box.container(border=True):
        st.markdown(f"**Comparing** {md(spec.label)}")
        fraction, text = _progress_text(spec, job.state())
        bar = st.progress(fraction, text=text)
        st.button(
            "Cancel",
            key="cmp_cancel",
            on_click=_cancel,
            args=(spec, _fingerprint(spec)),
            help="Stops the comparison after the current batch of images (for every session waiting for it).",
        )
        st.caption("You can switch pages meanwhile: the comparison goes on, and every page shows it when it is ready.")
    while not job.wait(0.25):
        fraction, text = _progress_text(spec, job.state())
        bar.progress(fraction, text=text)  # also where Streamlit stops this run when the user leaves the page
    box.empty()


def compute(spec: Spec) -> store.AnyComparison:
    """The comparison of ``spec``, computed by the server; shows its progress while it runs.

    Raises
    ------
    InputError
        A problem with the files.
    ComparisonCancelled
        Someone pressed Cancel while it ran.
    """
    job = start_comparison(spec)
    if not job.finished:
        _wait(spec, job)
    return job.result()


#: Session key: comparison id -> the comparison shown before it was opened (to go back to if it fails).
_PREVIOUS = "_previous_cmp"
#: Session key of a message for the next run (kind, text): e.g. why the previous comparison is back.
_FLASH = "_flash"


def open_comparison(spec_id: str, page: str | None = None) -> None:
    """Show the comparison ``spec_id`` (on ``page``, e.g. ``"overview"``), remembering the one on screen.

    If the new comparison fails or is cancelled, the app goes back to the remembered one
    and says why (:func:`active_comparison`). Works in widget callbacks.
    """
    ss = st.session_state
    previous = ss.get("cmp")
    if previous and previous != spec_id:
        ss.setdefault(_PREVIOUS, {})[spec_id] = previous
    select_comparison(spec_id)
    if page:
        request_page(page)


def _go_back(spec: Spec, kind: str, message: str) -> None:
    """After ``spec`` failed or was cancelled: back to the comparison shown before it, if any."""
    ss = st.session_state
    previous = ss.get(_PREVIOUS, {}).pop(spec.id, None)
    back = resolve_spec(previous) if previous else None
    if back is None:
        return
    ss[_FLASH] = (kind, f"{message}  \nShowing the previous comparison again: {md(back.label)}.")
    select_comparison(back.id)
    st.rerun()


def _retry(spec: Spec, fp: tuple) -> None:
    store.forget_comparison(spec, fp)


def active_comparison() -> tuple[Spec | None, store.AnyComparison | None]:
    """The selected spec and its comparison (waiting for it with a progress bar while it runs).

    When it fails or is cancelled, the comparison shown before (if this session opened it
    with :func:`open_comparison`) comes back with a message; otherwise the message is shown
    with a button to try again, and Nones are returned for the comparison.
    """
    flash = st.session_state.pop(_FLASH, None)
    if flash:
        (st.error if flash[0] == "error" else st.warning)(flash[1])
    bad = st.session_state.pop("_bad_link", None)
    if bad:
        st.warning(
            f"The link names a comparison this server does not know ({md(bad)}); showing the selected one instead."
        )
    spec = current_spec()
    if spec is None:
        st.info("No comparison selected. Go to **Choose inputs** to pick the bundled sample or upload your own.")
        return None, None
    try:
        return spec, compute(spec)
    except ComparisonCancelled:
        kind, message = "warning", f"The comparison {md(spec.label)} was cancelled."
    except InputError as e:
        kind, message = "error", md(user_message(e, spec))
        st.session_state[COMPARE_FAILURE] = user_message(e, spec)  # the upload page marks the file at fault
    except Exception as e:  # a core bug on odd input: say so instead of a traceback
        log.exception("comparison failed")
        kind, message = "error", f"{md(spec.label)}: could not be compared ({md(type(e).__name__)}: {md(e)})"
    _go_back(spec, kind, message)
    (st.error if kind == "error" else st.warning)(message)
    try:
        fp = _fingerprint(spec)
    except InputError:
        return spec, None
    st.button(
        "Compare again" if kind == "warning" else "Try again",
        key="cmp_retry",
        on_click=_retry,
        args=(spec, fp),
        help="Compute this comparison again.",
    )
    return spec, None


#: Session key of the last failed comparison's message (plain text; read by the upload page).
COMPARE_FAILURE = "_compare_failure"

#: Session key of the (spec, comparison) that app.py resolved for the current run.
_ACTIVE = "_active"


def set_page_comparison(spec: Spec | None, comp: store.AnyComparison | None) -> None:
    """Hand this run's comparison from app.py to the page it runs."""
    st.session_state[_ACTIVE] = (spec, comp)


def page_comparison() -> tuple[Spec | None, store.AnyComparison | None]:
    """This run's (spec, comparison), set by app.py; Nones when there is none."""
    return st.session_state.get(_ACTIVE, (None, None))


@overload
def require_comparison(without_labels: Literal[False] = False) -> tuple[Spec, Comparison]: ...
@overload
def require_comparison(without_labels: Literal[True]) -> tuple[Spec, store.AnyComparison]: ...
def require_comparison(without_labels: bool = False) -> tuple[Spec, store.AnyComparison]:
    """This run's (spec, comparison); stops the page when there is none (app.py showed why).

    A comparison without labels stops the page with a note saying so, unless the page
    draws one itself (``without_labels``: the Overview).
    """
    spec, comp = page_comparison()
    if spec is None or comp is None:  # app.py sets both or neither
        st.stop()
    if not without_labels and not store.labelled(comp):
        needs_labels_note()
        st.stop()
    return spec, comp


def require_per_sample(comp: Comparison) -> None:
    """Stop a page that needs per-sample data, saying why, when the comparison was streamed."""
    if comp.arrays is None:
        st.info(STREAMED_NO_SAMPLES.format(n=count(comp.n_samples)))
        st.stop()


def metric_card(
    col,
    key: str,
    summary: FlipSummary,
    delta: str | None = None,
    delta_color: Literal["normal", "inverse", "off"] = "normal",
) -> None:
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


def sidebar(spec: Spec | None, comp: store.AnyComparison | None) -> None:
    """Current comparison and downloads (JSON report, per-sample CSV, HTML report) in the sidebar."""
    with st.sidebar:
        if spec is None or comp is None:
            return
        labelled = store.labelled(comp)
        st.caption(
            f"**Comparing** {md(spec.label)}  \n{count(comp.n_samples)} {'labelled images' if labelled else 'images, no labels'}, "
            f"{len(comp.classes)} classes  \nThe address bar always links to this exact view: copy it to share."
        )
        if comp.missing is not None and comp.missing.any:
            st.warning(md(comp.missing.sentence()))
        # Labelled comparisons' downloads carry the reviewers' verdicts, read when the button is pressed.
        st.download_button(
            "Download report (JSON)",
            partial(label_ui.report_json_bytes, comp) if labelled else store.report_json(comp),
            file_name=download_name(comp.old_name, comp.new_name, "report", "json"),
            on_click="ignore",
            mime="application/json",
            help="The same JSON as `python -m graceful_core compare ... --json`",
            key="dl_json",
            width="stretch",
        )
        if not labelled:
            st.download_button(
                "Download per-sample table (CSV)",
                store.samples_csv(comp),
                file_name=download_name(comp.old_name, comp.new_name, "samples", "csv"),
                mime="text/csv",
                key="dl_csv",
                width="stretch",
                help="One row per image: both predictions and confidences, whether the prediction changed",
            )
        elif comp.arrays is not None:  # a streamed comparison has no per-sample table
            st.download_button(
                "Download per-sample table (CSV)",
                partial(label_ui.samples_csv_bytes, comp),
                file_name=download_name(comp.old_name, comp.new_name, "samples", "csv"),
                mime="text/csv",
                key="dl_csv",
                width="stretch",
                on_click="ignore",
                help="One row per image: label, both predictions and "
                "confidences, flip type, label quality and the reviewers' verdicts",
            )
        html_report_button(comp)
