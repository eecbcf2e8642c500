"""Review state in the app (status + notes) and the sidebar's HTML-report download.

The review of a comparison lives in the cache folder's SQLite file
(:mod:`graceful_core.review.store`), keyed by the comparison's content key, so every session
that opens the same two models on the same data sees the same status and notes, also
after a server restart. Widgets are keyed by that content key too, so switching the
comparison never shows one comparison's status on another.
"""

from __future__ import annotations

import logging
import time
from functools import partial

import streamlit as st

from graceful_core.comparing.labelfree import UnlabelledComparison
from graceful_core.report.html import DEFAULT_MAX_FLIPS, render_html_report, render_unlabelled_html_report
from graceful_core.results.comparison import Comparison
from graceful_core.review import store as rv
from graceful_core.review.verdicts import get_verdicts, verdict_signature
from graceful_ui.downloads import download_name
from graceful_ui.fmt import md

log = logging.getLogger("graceful_ui")


def _review_signature(r: rv.Review) -> tuple:
    """What makes a rendered report stale: the status row and the notes."""
    return (r.status, r.status_by, r.status_at, len(r.notes), r.notes[-1].at if r.notes else None)


@st.cache_resource(
    max_entries=16,
    show_spinner=False,
    hash_funcs={Comparison: lambda c: (c.key or id(c), c.old_name, c.new_name, repr(c.churn_floor))},
)
def _html(comp: Comparison, signature: tuple | None) -> bytes:
    r = rv.get_review(comp.key) if comp.key else None
    verdicts = get_verdicts(comp.key) if comp.key else None
    return render_html_report(comp, max_flips=DEFAULT_MAX_FLIPS, review=r, verdicts=verdicts).encode("utf-8")


def html_report_bytes(comp: Comparison) -> bytes:
    """The HTML report of ``comp`` with its current review, UTF-8 encoded.

    Rendered once per (comparison, review state) and server: the bytes are reused until
    a status, a note or a flip verdict changes.
    """
    sig = (*_review_signature(rv.get_review(comp.key)), verdict_signature(comp.key)) if comp.key else None
    return _html(comp, sig)


def html_report_button(comp: Comparison | UnlabelledComparison) -> None:
    """Sidebar button "Download report (HTML)"; the file is rendered only when clicked.

    Without labels the file holds the label-free sections, as ``graceful compare --html`` writes them.
    """
    if isinstance(comp, UnlabelledComparison):
        render = partial(_unlabelled_html_bytes, comp)
        holds = (
            "prediction churn, the changed predictions' confidence, churn per class with the old → new matrix, "
            "churn slices, the cross-test"
        )
    else:
        render = partial(html_report_bytes, comp)
        holds = (
            f"the overview, the matrix, up to {DEFAULT_MAX_FLIPS} negative flips with thumbnails, the cross-test "
            "and the review notes"
        )
    st.download_button(
        "Download report (HTML)",
        render,
        file_name=download_name(comp.old_name, comp.new_name, "report", "html"),
        mime="text/html",
        key="dl_html",
        width="stretch",
        on_click="ignore",
        help="One self-contained HTML file (opens offline, prints to PDF): " + holds,
    )


def _unlabelled_html_bytes(comp: UnlabelledComparison) -> bytes:
    """The HTML report of a comparison without labels, UTF-8 encoded (rendered when the button is pressed)."""
    return render_unlabelled_html_report(comp).encode("utf-8")


def _md_escape(text: str) -> str:
    """``text`` shown literally in Markdown (:func:`graceful_ui.fmt.md`)."""
    return md(text)


def _utc(t: float | None) -> str:
    return "never" if t is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def _on_status(comp_key: str, widget_key: str) -> None:
    ss = st.session_state
    try:
        rv.set_status(comp_key, ss[widget_key], author=ss.get("review_author", "").strip())
        ss["_review_flash"] = ("success", f"Status saved: {ss[widget_key]}.")
    except Exception as e:  # a locked or unwritable cache folder: say so, keep the app alive
        log.exception("saving the review status failed")
        ss["_review_flash"] = ("error", f"The status could not be saved ({type(e).__name__}: {e}).")


def _on_add_note(comp_key: str, widget_key: str) -> None:
    ss = st.session_state
    text = ss.get(widget_key, "")
    try:
        rv.add_note(comp_key, text, author=ss.get("review_author", "").strip())
    except ValueError as e:
        ss["_review_flash"] = ("warning", f"Note not added: {e}.")
        return
    except Exception as e:
        log.exception("saving a review note failed")
        ss["_review_flash"] = ("error", f"The note could not be saved ({type(e).__name__}: {e}).")
        return
    ss[widget_key] = ""  # allowed in a callback: runs before the widget is drawn again
    ss["_review_flash"] = ("success", "Note added.")


def review_section(comp: Comparison) -> None:
    """The "Review" section: status select, note area, "Add note" button, every note."""
    st.markdown("#### Review")
    if not comp.key:
        st.info("This comparison has no content key, so a review cannot be saved for it.")
        return
    st.caption(
        "Saved on this server (in the cache folder) for these two models on this data, shared with "
        "everyone who opens the same comparison, and included in the HTML report."
    )
    r = rv.get_review(comp.key)
    k = comp.key[:16]
    status_key, note_key = f"review_status_{k}", f"review_note_{k}"
    left, right = st.columns([1, 2])
    with left:
        st.selectbox(
            "Review status",
            rv.STATUSES,
            index=rv.STATUSES.index(r.status),
            key=status_key,
            on_change=_on_status,
            args=(comp.key, status_key),
            help="needs review → approved or rejected; every change is kept with its time",
        )
        st.caption(f"Set {_utc(r.status_at)}" + (f" by {_md_escape(r.status_by)}" if r.status_by else ""))
        st.text_input("Your name (optional)", key="review_author", max_chars=80)
    with right:
        st.text_area(
            "Note",
            key=note_key,
            max_chars=rv.MAX_NOTE_CHARS,
            height=100,
            placeholder="e.g. the flips in class 8 are all smudged scans",
        )
        st.button("Add note", key=f"review_add_{k}", on_click=_on_add_note, args=(comp.key, note_key))
    flash = st.session_state.pop("_review_flash", None)
    if flash:
        getattr(st, flash[0])(flash[1])
    st.markdown(f"**Notes** ({len(r.notes)})")
    if not r.notes:
        st.caption("No notes yet.")
    for n in r.notes:  # plain text: a note is never interpreted as Markdown or HTML
        with st.container(border=True):
            st.caption(_utc(n.at))
            st.text(n.text if not n.author else f"{n.text}\n— {n.author}")
