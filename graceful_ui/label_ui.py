"""Label issues and flip verdicts in the app: the Overview's second number and verdict counts, the
Flips grid's label filter, badges and verdict pop-overs, the Sample page's "why the label looks
wrong" and verdict form, and the downloads that carry the verdicts.

Verdicts are read from the review store (:mod:`graceful_core.review.verdicts`) on every run of a
page, so a verdict saved in one browser shows in every other that opens the same
comparison at its next interaction; they are written in widget callbacks, one row each.
"""

from __future__ import annotations

import json
import logging
import time
from functools import partial

import numpy as np
import pandas as pd
import streamlit as st

from graceful_core.explore.selection import LABEL_QUALITY_ORDER, nearest_neighbours
from graceful_core.report import label_review as lr
from graceful_core.results.comparison import Comparison
from graceful_core.review import verdicts as vd
from graceful_core.vocabulary import (
    AMBIGUOUS_MARK,
    FLIP_VERDICT_COLOURS,
    FLIP_VERDICTS,
    LABEL_FILTERS,
    LABEL_ISSUE_HELP,
    LABEL_ISSUE_MARK,
    negative_flips,
    percent,
    probability,
)
from graceful_ui import store
from graceful_ui.downloads import download_name
from graceful_ui.fmt import md
from graceful_ui.grid import image_grid

log = logging.getLogger("graceful_ui")

#: The verdict select's first option: no verdict (choosing it withdraws one).
NO_VERDICT = "— no verdict —"
#: Images of each of the suggested classes shown on the Sample page.
N_CLASS_NEIGHBOURS = 6


def verdicts_of(comp: Comparison) -> dict[str, vd.FlipVerdict]:
    """The comparison's current verdicts ({} without a content key or when the store cannot be read)."""
    if not comp.key:
        return {}
    try:
        return lr.load_verdicts(comp)
    except Exception:  # an unreadable cache folder must not take the page down: say so where it is shown
        log.exception("reading the flip verdicts failed")
        st.warning("The flip verdicts could not be read from the cache folder (see the server log).")
        return {}


def verdict_badge(v: vd.FlipVerdict | None) -> str:
    """Markdown badge of a verdict ("" without one)."""
    return "" if v is None else f":{FLIP_VERDICT_COLOURS[v.verdict]}-background[verdict: {v.verdict}]"


# ------------------------------------------------------------------ Overview
def overview_block(comp: Comparison) -> None:
    """Under the headline: the NFR without doubtful labels, and the verdict counts with their NFR."""
    second = lr.headline_excluding_flagged(comp)
    if second is not None:
        st.markdown(f"**{md(second)}**", help=LABEL_ISSUE_HELP)
    elif comp.label_issues_reason:
        st.caption(f"No label issues: {md(comp.label_issues_reason)}.")
    if not comp.key:
        return
    v = verdicts_of(comp)
    c = lr.counts_of(comp, v)
    if c.reviewed or v:
        st.markdown(
            f'**Flip verdicts:** {md(c.sentence())}. NFR counting only what is not "label wrong": '
            f"**{percent(c.negative_flip_rate_excluding_label_wrong)}**."
        )
        if c.label_wrong:
            st.download_button(
                f"Download corrected labels (CSV, {c.label_wrong})",
                partial(corrected_csv, comp),
                file_name=download_name(comp.old_name, comp.new_name, "corrected-labels", "csv"),
                mime="text/csv",
                on_click="ignore",
                key="dl_corrected",
                help="id, given label, corrected label, note and author of every "
                'image marked "label wrong", for the dataset\'s owners',
            )
    else:
        st.caption(
            f"Flip verdicts: none yet on the {negative_flips(c.n_negative_flips)}. Mark images in the Flips grid "
            "or on the Sample page: real regression, label wrong, ambiguous or acceptable."
        )


def corrected_csv(comp: Comparison) -> bytes:
    """:func:`graceful_core.review.verdicts.corrected_labels_csv` with the given and suggested labels."""
    v = verdicts_of(comp)
    a = comp.require_arrays()
    names = np.asarray(comp.classes, dtype=object)
    given, suggested = {}, {}
    for sid in v:
        r = a.row_of.get(sid)
        if r is not None:
            given[sid] = names[a.labels[r]]
            if comp.label_issues is not None:
                suggested[sid] = names[comp.label_issues.suggested[r]]
    return vd.corrected_labels_csv(v, given, suggested)


# ------------------------------------------------------------------ downloads
def report_json_bytes(comp: Comparison) -> bytes:
    """The JSON report with the current ``flip_verdicts`` (as ``compare --json`` writes it)."""
    rep = json.loads(store.report_json(comp))
    v = verdicts_of(comp)
    if v:  # as compare --json: only when someone gave a verdict
        rep["flip_verdicts"] = vd.verdicts_to_json(v, lr.counts_of(comp, v))
    return json.dumps(rep, indent=2).encode()


def samples_csv_bytes(comp: Comparison) -> bytes:
    """The per-sample CSV with ``verdict``, ``verdict_note`` and ``corrected_label`` columns."""
    df = store.samples_table(comp).copy()
    v = verdicts_of(comp)
    ids = df["id"].astype(str)
    df["verdict"] = ids.map(lambda s: v[s].verdict if s in v else "")
    df["verdict_note"] = ids.map(lambda s: v[s].note if s in v else "")
    df["corrected_label"] = ids.map(lambda s: v[s].corrected_label if s in v else "")
    return df.to_csv(index=False).encode()


# ------------------------------------------------------------------ Flips grid
def label_filter_rows(comp: Comparison, choice: str) -> np.ndarray | None:
    """Rows kept by the grid's label filter (None: no filter)."""
    li = comp.label_issues
    if li is None or choice == LABEL_FILTERS[0]:
        return None
    mask = {
        LABEL_FILTERS[1]: li.flagged,
        LABEL_FILTERS[2]: li.ambiguous,
        LABEL_FILTERS[3]: ~li.flagged & ~li.ambiguous,
    }[choice]
    return np.flatnonzero(mask)


def sort_orders(comp: Comparison, base: tuple[str, ...]) -> tuple[str, ...]:
    """The grid's sort orders: ``base`` plus label quality when the comparison has label issues."""
    return (*base, LABEL_QUALITY_ORDER) if comp.label_issues is not None else base


def _save(comp_key: str, sample_id: str, keys: tuple[str, str, str]) -> None:
    ss = st.session_state
    k_verdict, k_note, k_corrected = keys
    choice = ss.get(k_verdict) or ""  # no choice: set_verdict refuses it with its own message
    try:
        if choice == NO_VERDICT:
            vd.clear_verdict(comp_key, sample_id, author=ss.get("review_author", "").strip())
            ss["_verdict_flash"] = ("success", f"Verdict on {sample_id} withdrawn.")
        else:
            vd.set_verdict(
                comp_key,
                sample_id,
                choice,
                note=ss.get(k_note, ""),
                corrected_label=ss.get(k_corrected, "") or "",
                author=ss.get("review_author", "").strip(),
            )
            ss["_verdict_flash"] = ("success", f"Verdict saved on {sample_id}: {choice}.")
    except ValueError as e:
        ss["_verdict_flash"] = ("warning", f"Verdict not saved: {e}.")
    except Exception as e:  # a locked or unwritable cache folder: say so, keep the app alive
        log.exception("saving a flip verdict failed")
        ss["_verdict_flash"] = ("error", f"The verdict could not be saved ({type(e).__name__}: {e}).")


def verdict_form(
    comp: Comparison, sample_id: str, current: vd.FlipVerdict | None, *, prefix: str, suggested: str | None = None
) -> None:
    """Verdict select, note, corrected label (for "label wrong") and a Save button for one image.

    The widgets' keys carry the stored verdict's time, so when anyone saves a new verdict
    on this image the form starts again from the stored one (no stale widget state).
    """
    ss = st.session_state
    options = (NO_VERDICT, *FLIP_VERDICTS)
    stamp = "none" if current is None else f"{current.at:.6f}"
    keys = (f"{prefix}_v_{stamp}", f"{prefix}_n_{stamp}", f"{prefix}_c_{stamp}")
    st.selectbox("Verdict", options, key=keys[0], index=0 if current is None else options.index(current.verdict))
    if ss.get(keys[0]) == "label wrong":
        classes = list(comp.classes)
        default = current.corrected_label if current is not None and current.corrected_label else suggested
        st.selectbox(
            "Corrected label",
            classes,
            key=keys[2],
            index=classes.index(default) if default in classes else 0,
            help="Goes to the corrected-labels CSV (Overview); default: the class both models prefer.",
        )
    st.text_input(
        "Note (optional)", key=keys[1], value="" if current is None else current.note, max_chars=vd.MAX_NOTE_CHARS
    )
    st.button("Save verdict", key=f"{prefix}_save", on_click=_save, args=(comp.key, sample_id, keys), type="primary")
    if current is not None:
        st.caption(
            f"Saved {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(current.at))}"
            + (f" by {md(current.author)}" if current.author else "")
        )


def flash() -> None:
    """The last verdict save's message, once."""
    f = st.session_state.pop("_verdict_flash", None)
    if f:
        getattr(st, f[0])(f[1])


def grid_card_extra(comp: Comparison, v: dict[str, vd.FlipVerdict]):
    """The Flips grid's per-card addition: label badges, the verdict badge and a verdict pop-over."""
    li = comp.label_issues
    a = comp.arrays
    names = np.asarray(comp.classes, dtype=object)

    def extra(row: dict) -> None:
        sid = str(row["id"])
        r = None if a is None else a.row_of.get(sid)
        badges = []
        if li is not None and r is not None:
            if li.flagged[r]:
                badges.append(f":violet-background[{LABEL_ISSUE_MARK}] → {md(names[li.suggested[r]])}?")
            if li.ambiguous[r]:
                badges.append(f":orange-background[{AMBIGUOUS_MARK}]")
        if sid in v:
            badges.append(verdict_badge(v[sid]))
        if badges:
            st.markdown("  \n".join(badges))
        if li is not None and r is not None:
            st.caption(f"label quality {probability(li.quality[r])}")
        if comp.key and row.get("flip") in ("negative flip", "positive flip"):
            with st.popover(
                ":material/rate_review:",
                width="stretch",
                help="Your verdict on this flip: real "
                "regression, label wrong, ambiguous or acceptable (shared with everyone)",
            ):
                suggested = None if li is None or r is None else str(names[li.suggested[r]])
                verdict_form(comp, sid, v.get(sid), prefix=f"vg-{comp.key[:12]}-{sid}", suggested=suggested)

    return extra


# ------------------------------------------------------------------ Sample page
def _class_neighbours(comp: Comparison, row: int, cls: int, k: int) -> np.ndarray:
    """The ``k`` images labelled ``cls`` nearest to ``row`` (cosine of the old embeddings)."""
    a = comp.require_arrays()
    cand = np.union1d(np.flatnonzero(np.asarray(a.labels) == cls), [row])
    feats = np.asarray(a.old_embedding)[cand]
    q = int(np.searchsorted(cand, row))
    return cand[nearest_neighbours(feats, q, np.arange(len(cand)), k=k, metric="cosine")]


def why_label(comp: Comparison, row: int, samples: pd.DataFrame, old_probs, new_probs, on_inspect) -> None:
    """The Sample page's "Is the label right?": quality, flags, the classes both models prefer and
    images labelled with each of those classes nearest to this one."""
    li = comp.label_issues
    st.markdown("#### Is the label right?")
    if li is None:
        st.caption(f"No label issues: {md(comp.label_issues_reason or 'not computed')}.")
        return
    names = np.asarray(comp.classes, dtype=object)
    a = comp.require_arrays()
    given = int(a.labels[row])
    top = [int(c) for c in li.likely[row]]
    verdict_words = []
    if li.flagged[row]:
        verdict_words.append(
            f":violet-background[{LABEL_ISSUE_MARK}]: both models prefer **{md(names[top[0]])}** "
            f"to the given **{md(names[given])}**."
        )
    if li.ambiguous[row]:
        verdict_words.append(
            f":orange-background[{AMBIGUOUS_MARK}]: both models split between "
            f"**{md(names[top[0]])}** and **{md(names[top[1]])}**."
        )
    if not verdict_words and top[0] != given:
        verdict_words.append(
            f"Not flagged: on average the two models prefer **{md(names[top[0]])}**, but not "
            "clearly enough against what images of the given class usually get; they disagree "
            "with each other more than with the label."
        )
    elif not verdict_words:
        verdict_words.append(
            "The label looks fine: both models prefer it on average, it is not flagged by "
            "confident learning and the image is not ambiguous."
        )
    st.markdown("  \n".join(verdict_words), help=LABEL_ISSUE_HELP)
    rows = []
    for c in dict.fromkeys([given, *top]):
        p_old = None if old_probs is None else float(old_probs[row, c])
        p_new = None if new_probs is None else float(new_probs[row, c])
        rows.append(
            {
                "class": str(names[c]) + (" (given label)" if c == given else ""),
                "old model": probability(p_old),
                "new model": probability(p_new),
                "mean": probability(None if p_old is None or p_new is None else (p_old + p_new) / 2),
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    st.caption(
        f"Label quality {probability(li.quality[row])} (the mean probability of the given label; the "
        f"median over all images is {probability(float(np.median(li.quality)))})."
    )
    if a.old_embedding is None or comp.dataset is None:
        st.caption("No images of the preferred classes to compare with (needs embeddings and a dataset).")
        return
    for c in [t for t in top if t != given][:2]:
        st.caption(
            f"Images labelled **{md(names[c])}** nearest to this one (cosine similarity of the old "
            "model's embeddings): does this image look like them?"
        )
        nb = _class_neighbours(comp, row, c, N_CLASS_NEIGHBOURS)
        image_grid(comp, samples.iloc[nb], on_inspect=on_inspect, key=f"cls{c}")


def sample_verdict(comp: Comparison, row: int, flip: str) -> None:
    """The Sample page's verdict form (flipped images of a comparison with a content key)."""
    if not comp.key or flip not in ("negative flip", "positive flip"):
        return
    st.markdown("#### Verdict")
    st.caption("Shared with everyone who opens this comparison (kept with its review, in the cache folder).")
    v = verdicts_of(comp)
    a = comp.require_arrays()
    sid = str(a.ids[row])
    li = comp.label_issues
    suggested = None if li is None else str(comp.classes[int(li.suggested[row])])
    flash()
    with st.columns([2, 3])[0]:
        verdict_form(comp, sid, v.get(sid), prefix=f"vs-{comp.key[:12]}-{sid}", suggested=suggested)
