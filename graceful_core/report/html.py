"""One self-contained HTML report of a comparison, rendered from a Jinja2 template.

The template (``graceful_core/report/templates/report.html.j2``) is rendered with autoescape
on, so every user-controlled string (model names, sample ids, class names, review
notes and authors) is escaped by the template engine; only markup built here (Plotly's
figure divs, the inlined plotly.js, the stylesheet) is passed as :class:`markupsafe.Markup`.
Strings inside the Plotly figures are JSON-encoded by Plotly, which escapes ``<`` and
``/`` (no ``</script>`` break-out).

The file opens offline and makes no request of any kind: Plotly's JavaScript is inlined
once in ``<head>``, thumbnails are small PNG (or, for photos, JPEG) ``data:`` URIs, and
there are no web fonts, stylesheets or scripts from elsewhere. Its size is Plotly's
bundle (about 4.8 MB) plus a few kB of tables and figures plus one thumbnail per shown
negative flip: it grows with ``max_flips`` (the cap is stated in the report: "Showing
60 of 123"), not with the dataset size. The transition matrix and the per-class chart
show at most :data:`MAX_CLASSES` classes (the busiest), so a 1000-class label set
stays small too. A print stylesheet hides Plotly's toolbar and keeps cards, table rows
and thumbnails whole across page breaks; before printing, the figures are redrawn at
the paper's width.
"""

from __future__ import annotations

import os
import time
from functools import cache
from importlib import resources
from typing import Any

import jinja2
import numpy as np
import plotly.io as pio
from markupsafe import Markup

from graceful_core.cache import atomic_write_bytes
from graceful_core.comparing.labelfree import UnlabelledComparison
from graceful_core.errors import InputError
from graceful_core.explore.selection import busiest_submatrix, grid_page, negative_flip_order, slice_examples
from graceful_core.explore.thumbnails import THUMB_PX, thumbnail_data_uri
from graceful_core.report.figures import MAX_CLASSES, TRANSITION_TITLE, per_class_flip_bars, transition_heatmap
from graceful_core.report.label_review import html_context as label_review_context
from graceful_core.report.sections import (
    SLICE_COLUMNS,
    Section,
    build_sections,
    build_unlabelled_sections,
    lead_and_body,
)
from graceful_core.results.comparison import Comparison
from graceful_core.vocabulary import (
    FLIP_MARKS,
    FLIP_TYPES,
    METRICS,
    RETRIEVAL_PAIRS,
    RETRIEVAL_SCORES,
    SLICE_KINDS,
    count,
    is_undefined,
    negative_flips,
    percent,
    update_gain_value,
)

__all__ = [
    "render_html_report",
    "render_unlabelled_html_report",
    "write_html_report",
    "DEFAULT_MAX_FLIPS",
    "MAX_CLASSES",
    "PRINT_PLOT_WIDTH",
    "THUMB_PX",
    "thumbnail_data_uri",
]

#: Default cap on the negative flips shown as thumbnails.
DEFAULT_MAX_FLIPS = 60
#: At most this many significant regression slices are shown (each with its example images).
MAX_REPORT_SLICES = 10
#: Width of every figure while printing, in CSS pixels (fits A4 and Letter with default margins).
PRINT_PLOT_WIDTH = 680

#: Plotly draws at the screen width; before printing, the figures are redrawn at the
#: paper's width (and restored afterwards) so they are not cut off at the page edge.
_PRINT_JS = (
    "(function(){function fit(p){document.querySelectorAll('.js-plotly-plot').forEach(function(g){"
    "Plotly.relayout(g,{width:p?" + str(PRINT_PLOT_WIDTH) + ":null,autosize:!p});});}"
    "window.addEventListener('beforeprint',function(){fit(true);});"
    "window.addEventListener('afterprint',function(){fit(false);});})();"
)


@cache
def _environment() -> jinja2.Environment:
    """The template environment: templates from the package, autoescape always on."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("graceful_core.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
    )


@cache
def _static() -> dict[str, Markup]:
    """The stylesheet and plotly.js, read once (trusted: shipped with the package and Plotly)."""
    from plotly.offline import get_plotlyjs

    css = resources.files("graceful_core.report").joinpath("templates/report.css").read_text(encoding="utf-8")
    return {"css": Markup(css), "plotly_js": Markup(get_plotlyjs()), "print_js": Markup(_PRINT_JS)}


def _fig_div(fig) -> Markup:
    fig.update_layout(template="plotly_white")  # a white page: no grey plot background
    return Markup(
        pio.to_html(fig, full_html=False, include_plotlyjs=False, config={"displaylogo": False, "responsive": True})
    )


def _utc(t: float | None) -> str:
    return "" if t is None else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


# ------------------------------------------------------------------ sections
def _review(review) -> dict[str, Any] | None:
    if review is None:
        return None
    return {
        "status": review.status,
        "status_by": review.status_by,
        "status_at": _utc(review.status_at),
        "notes": [{"at": _utc(n.at), "author": n.author, "text": n.text} for n in review.notes],
    }


def _figures(comp: Comparison) -> dict[str, Any]:
    """Transition matrix and per-class bars, at most :data:`MAX_CLASSES` classes each."""
    sub, names = busiest_submatrix(comp.transition_matrix, comp.classes, MAX_CLASSES)
    out: dict[str, Any] = {
        "matrix_figure": _fig_div(transition_heatmap(sub, names)),
        "matrix_note": "",
        "bars_note": "",
    }
    if len(names) < len(comp.classes):
        out["matrix_note"] = (
            f"The matrix shows {len(names)} of {len(comp.classes)} classes: those with the most changed predictions."
        )
    pc = comp.per_class.to_frame()
    if len(pc) > MAX_CLASSES:
        busy = (pc["negative_flips"] + pc["positive_flips"]).to_numpy()
        keep = np.sort(np.lexsort((np.arange(len(pc)), -busy))[:MAX_CLASSES])
        pc = pc.iloc[keep]
        out["bars_note"] = f"The chart shows {len(pc)} of {len(comp.classes)} classes: those with the most flips."
    out["bars_figure"] = _fig_div(per_class_flip_bars(pc))
    return out


def _thumbnail(ds, pos: dict[str, int], sid: str) -> tuple[str, bool]:
    """A sample's thumbnail as a data URI ("" without one) and whether its image was unreadable."""
    if sid not in pos:
        return "", False
    try:
        return thumbnail_data_uri(ds.load_image(pos[sid])), False
    except (InputError, OSError, ValueError):  # a broken image must not break the report
        return "", True


def _flip_tiles(comp: Comparison, cap: int) -> dict[str, Any]:
    """The capped grid of negative flips, largest confidence drop first.

    A streamed comparison (no per-sample arrays) reads them from its flip-id file
    (:func:`graceful_core.explore.selection.grid_page`); without the file only the first ids are known.
    """
    a = comp.arrays
    ds = comp.dataset
    pos = {str(sid): i for i, sid in enumerate(ds.ids)} if ds is not None else {}
    if a is None:
        total = comp.summary.n_negative_flips
        rows = grid_page(comp, flip_types=[FLIP_TYPES[0]], per_page=cap).rows.to_dict("records") if cap else []
        tiles = []
        for r in rows:
            src, unreadable = _thumbnail(ds, pos, str(r["id"]))
            tiles.append(
                {
                    "id": str(r["id"]),
                    "src": src,
                    "unreadable": unreadable,
                    "true": r["label"],
                    "old": r["old_pred"],
                    "new": r["new_pred"],
                    "old_conf": "" if is_undefined(r["old_conf"]) else f" ({percent(float(r['old_conf']), 0)})",
                    "new_conf": "",
                }
            )
        ordered = bool(rows) and not all(is_undefined(r["confidence_drop"]) for r in rows)
        return {
            "shown": len(tiles),
            "total": total,
            "capped": total > cap,
            "cap": cap,
            "ordered": ordered,
            "tiles": tiles,
        }
    idx = negative_flip_order(comp)
    total = int(idx.size)
    shown = idx[:cap]
    tiles = []
    for i in shown:
        sid = str(a.ids[i])
        src, unreadable = _thumbnail(ds, pos, sid)
        tiles.append(
            {
                "id": sid,
                "src": src,
                "unreadable": unreadable,
                "true": comp.classes[a.labels[i]],
                "old": comp.classes[a.old_pred[i]],
                "new": comp.classes[a.new_pred[i]],
                "old_conf": "" if a.old_conf is None else f" ({percent(float(a.old_conf[i]), 0)})",
                "new_conf": "" if a.new_conf is None else f" ({percent(float(a.new_conf[i]), 0)})",
            }
        )
    return {
        "shown": int(shown.size),
        "total": total,
        "capped": total > cap,
        "cap": cap,
        "ordered": a.old_p_true is not None and a.new_p_true is not None,
        "tiles": tiles,
    }


def _slice_tile(comp: Comparison, row: int, pos: dict[str, int]) -> dict[str, Any]:
    """One small tile of sample ``row``: its image (when the dataset is there), id, true class and predictions."""
    a = comp.require_arrays()
    sid = str(a.ids[row])
    src, unreadable = _thumbnail(comp.dataset, pos, sid)
    return {
        "id": sid,
        "src": src,
        "unreadable": unreadable,
        "true": comp.classes[a.labels[row]],
        "old": comp.classes[a.old_pred[row]],
        "new": comp.classes[a.new_pred[row]],
        "flip": bool(a.negative_flip_mask[row]),
    }


def _slices(comp: Comparison, cap: int = MAX_REPORT_SLICES) -> dict[str, Any] | None:
    """The significant regression slices (at most ``cap``), each with its numbers and example images.

    Examples (:func:`graceful_core.explore.selection.slice_examples`): an embedding cluster's central
    images (nearest the centre first); a metadata slice's negative flips, largest
    confidence drop first.
    """
    rep = comp.regression_slices
    if rep is None or comp.arrays is None:
        return None
    sig = rep.significant()
    ds = comp.dataset
    pos = {str(sid): i for i, sid in enumerate(ds.ids)} if ds is not None else {}
    cols = SLICE_COLUMNS
    items = []
    for s in sig[:cap]:
        rows = slice_examples(comp, s).tolist()
        if s.cluster is not None:
            what = f"the {len(rows)} images nearest the cluster's centre"
        else:
            what = f"{len(rows)} of its {negative_flips(s.negative_flips)} ({FLIP_MARKS['negative flip']})"
        items.append(
            {
                "title": s.title,
                "kind": SLICE_KINDS[s.kind],
                "examples": what,
                "tiles": [_slice_tile(comp, r, pos) for r in rows],
            }
        )
    closest = None
    if not sig and rep.slices:
        top = rep.slices[0]
        closest = {
            "title": top.title,
            "p_adjusted": cols[5].format(top.p_adjusted),
            "nfr": cols[2].format(top.negative_flip_rate),
            "rest": cols[3].format(top.rest_negative_flip_rate),
        }
    return {
        "help_of": {c.label: c.help for c in cols},
        "entries": items,
        "shown": len(items),
        "total": len(sig),
        "capped": len(sig) > cap,
        "closest": closest,
        "skipped": [f"{c} ({why})" for c, why in rep.skipped_columns],
    }


def _compat(comp: Comparison) -> dict[str, Any] | None:
    ct = comp.compatibility
    if ct is None:
        return None
    pairs = ("old_old", "new_new", "new_old")
    rows = [
        [METRICS[m].label] + [METRICS[m].format(ct.scores[key][p]) for p in pairs]
        for key, m in RETRIEVAL_SCORES.items()
    ]
    return {
        "header": [RETRIEVAL_PAIRS[p] for p in pairs],
        "rows": rows,
        "reason": ct.reason,
        "gain_label": METRICS["update_gain"].label,
        "gain": update_gain_value(ct.update_gain),
        "flips_label": METRICS["retrieval_negative_flips"].label,
        "flips": count(ct.retrieval_negative_flips),
    }


# ------------------------------------------------------------------ public
def render_html_report(
    comp: Comparison,
    *,
    max_flips: int = DEFAULT_MAX_FLIPS,
    review=None,
    generated_at: float | None = None,
    verdicts=None,
    sections=None,
) -> str:
    """The report as one self-contained HTML string (see the module docstring).

    Parameters
    ----------
    comp : Comparison
        The comparison; thumbnails need its dataset (else the grid lists ids only).
    max_flips : int
        Cap on the negative flips shown as thumbnails, largest confidence drop first.
    review : graceful_core.review.store.Review, optional
        Review status and notes to include.
    generated_at : float, optional
        POSIX time stated as the generation time (default: now).
    verdicts : dict of str to graceful_core.review.verdicts.FlipVerdict, optional
        The reviewers' verdicts on flipped images (counted and listed); None leaves the
        verdicts out (label issues are shown either way).
    sections : tuple of graceful_core.report.sections.Section, optional
        What the report says, in order (default: :func:`graceful_core.report.sections.build_sections`
        of ``comp``); every one is drawn.

    Returns
    -------
    str
        ``<!DOCTYPE html>...``: the one-line summary, the class the update hurts most
        (the CLI's and the app's sentence), the significance verdict, the metric cards, the review, the transition matrix, per-class flips, the capped
        negative-flip grid, the significant regression slices with example images, and
        the embedding cross-test with the embedding overlap.
    """
    if isinstance(max_flips, bool) or not isinstance(max_flips, (int, np.integer)) or max_flips < 0:
        raise ValueError(f"max_flips must be a non-negative integer, got {max_flips!r}")
    lead, body = lead_and_body(build_sections(comp) if sections is None else tuple(sections))
    context = {
        **_static(),
        "title": f"{comp.old_name} → {comp.new_name}",
        "n_samples": comp.n_samples,
        "n_classes": len(comp.classes),
        "generated": _utc(time.time() if generated_at is None else generated_at),
        "lead": lead,
        "body": body,
        "review": _review(review),
        **_figures(comp),
        "flips": _flip_tiles(comp, int(max_flips)),
        "slices": _slices(comp),
        "compat": _compat(comp),
        "label_review": label_review_context(comp, verdicts),
    }
    return _environment().get_template("report.html.j2").render(context)


def render_unlabelled_html_report(
    comp: UnlabelledComparison, *, generated_at: float | None = None, sections: tuple[Section, ...] | None = None
) -> str:
    """The self-contained HTML report of a comparison without true labels.

    It draws the sections of :func:`graceful_core.report.sections.build_unlabelled_sections` in
    their order (what does not exist without labels first, then prediction churn, the changed
    predictions' confidence, the churn floor, churn per class with the old → new matrix, churn
    slices and the embedding cross-test), like the CLI summary and the app's Overview.

    Parameters
    ----------
    comp : UnlabelledComparison
        The comparison.
    generated_at : float, optional
        POSIX time stated as the generation time (default: now).
    sections : tuple of graceful_core.report.sections.Section, optional
        What the report says, in order (default: ``build_unlabelled_sections(comp)``); every one is drawn.
    """
    sub, names = busiest_submatrix(comp.churn.transition_matrix, comp.classes, MAX_CLASSES)
    context = {
        **_static(),
        "title": f"{comp.old_name} → {comp.new_name}",
        "n_samples": comp.n_samples,
        "n_classes": len(comp.classes),
        "generated": _utc(time.time() if generated_at is None else generated_at),
        "sections": build_unlabelled_sections(comp) if sections is None else tuple(sections),
        "matrix_figure": _fig_div(transition_heatmap(sub, names, title=TRANSITION_TITLE)),
        "matrix_note": (
            f"The matrix shows {len(names)} of {len(comp.classes)} classes: those with the most changed predictions."
            if len(names) < len(comp.classes)
            else ""
        ),
    }
    return _environment().get_template("report_unlabelled.html.j2").render(context)


def write_html_report(comp: Comparison | UnlabelledComparison, path: str | os.PathLike, **kw: Any) -> None:
    """Write the report of ``comp`` to ``path`` atomically (everything is rendered before the file is opened).

    Keywords as :func:`render_html_report` (``max_flips``, ``review``, ``generated_at``), or as
    :func:`render_unlabelled_html_report` for a comparison without labels; a failure leaves no
    partial file behind. This is how a notebook writes the report of its comparison (a result
    holds values and never imports its renderer).
    """
    if isinstance(comp, UnlabelledComparison):
        text = render_unlabelled_html_report(comp, **kw)
    else:
        text = render_html_report(comp, **kw)
    atomic_write_bytes(path, text.encode("utf-8"))
