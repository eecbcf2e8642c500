"""One self-contained HTML report of a comparison (issue 6, item 4).

The file opens offline and makes no request of any kind: Plotly's JavaScript is inlined
once in ``<head>``, thumbnails are small PNG (or, for photos, JPEG) ``data:`` URIs, and
there are no web fonts, stylesheets or scripts from elsewhere. Its size is Plotly's
bundle (about 4.8 MB) plus a few kB of tables and figures plus one thumbnail per shown
negative flip: it grows with ``max_flips`` (the cap is stated in the report: "Showing
60 of 123"), not with the dataset size. The transition matrix and the per-class chart
show at most :data:`MAX_CLASSES` classes (the busiest), so a 1000-class label set
stays small too. A print stylesheet hides Plotly's toolbar and keeps cards, table rows
and thumbnails whole across page breaks.

Every user-controlled string (model names, sample ids, class names, review notes and
authors) goes through :func:`html.escape`; strings inside the Plotly figures are
JSON-encoded by Plotly, which escapes ``<`` and ``/`` (no ``</script>`` break-out).
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import time

import numpy as np
import plotly.io as pio
from PIL import Image
from plotly.offline import get_plotlyjs

from graceful_core.cache import atomic_write_bytes
from graceful_core.comparison import Comparison
from graceful_core.errors import InputError
from graceful_core.figures import per_class_flip_bars, transition_heatmap
from graceful_core.summary import fmt_num, fmt_pct, headline, old_head_verdict, significance_verdict
from graceful_core.views import busiest_classes

#: Longer side of a thumbnail in the negative-flips grid, in pixels.
THUMB_PX = 64
#: Default cap on the negative flips shown as thumbnails.
DEFAULT_MAX_FLIPS = 60
#: At most this many classes in the transition matrix and the per-class chart.
MAX_CLASSES = 40
#: Width of every figure while printing, in CSS pixels (fits A4 and Letter with default margins).
PRINT_PLOT_WIDTH = 680
#: A PNG thumbnail larger than this (photos) is re-encoded as JPEG if that is smaller.
_PNG_BUDGET = 4096

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1100px;
 padding:0 16px;color:#222}
h1{margin-bottom:4px} .sub{color:#555;margin-top:0}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:10px;margin:16px 0}
.card{border:1px solid #ddd;border-radius:8px;padding:10px 12px;break-inside:avoid;page-break-inside:avoid}
.card .v{font-size:1.5em;font-weight:600} .card .l{color:#555;font-size:.85em}
.verdict{padding:10px 14px;border-radius:8px;margin:8px 0;font-weight:600}
.better{background:#e6f4ea;color:#1e6b34} .worse{background:#fce8e6;color:#a52714}
.same{background:#f1f3f4;color:#333}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:8px}
.tile{border:2px solid #d62728;border-radius:6px;padding:6px;font-size:.8em;break-inside:avoid;
 page-break-inside:avoid;overflow-wrap:anywhere}
.tile img{image-rendering:pixelated;width:64px;height:64px;object-fit:contain;display:block;margin:0 auto 4px}
table{border-collapse:collapse;margin:8px 0} td,th{border:1px solid #ddd;padding:4px 10px;text-align:right}
th:first-child,td:first-child{text-align:left}
tr{break-inside:avoid;page-break-inside:avoid}
.note{color:#555;font-size:.9em}
.notes li{margin:4px 0;white-space:pre-wrap}
.plot{break-inside:avoid;page-break-inside:avoid;max-width:100%;overflow:hidden}
@media print{
  body{margin:0;max-width:none;padding:0;font-size:11pt}
  .modebar,.modebar-container{display:none!important}
  h2{break-after:avoid;page-break-after:avoid}
  .grid{grid-template-columns:repeat(5,1fr)}
  .verdict,.card,.tile{-webkit-print-color-adjust:exact;print-color-adjust:exact}
  a{color:inherit;text-decoration:none}
}
"""


#: Plotly draws at the screen width; before printing, the figures are redrawn at the
#: paper's width (and restored afterwards) so they are not cut off at the page edge.
_PRINT_JS = (
    "(function(){function fit(p){document.querySelectorAll('.js-plotly-plot').forEach(function(g){"
    "Plotly.relayout(g,{width:p?" + str(PRINT_PLOT_WIDTH) + ":null,autosize:!p});});}"
    "window.addEventListener('beforeprint',function(){fit(true);});"
    "window.addEventListener('afterprint',function(){fit(false);});})();"
)


# ------------------------------------------------------------------ pieces
def thumbnail_data_uri(img: Image.Image, px: int = THUMB_PX) -> str:
    """A small ``data:`` URI of ``img``, the longer side scaled to at most ``px`` pixels.

    Images smaller than ``px`` (8x8 digits) are enlarged by an integer factor with
    nearest-neighbour sampling (no smoothing); larger ones are shrunk. Grey images
    stay single-channel PNG; a colour thumbnail whose PNG exceeds a few kB is sent as
    JPEG when that is smaller, so the report stays small for photographs too.
    """
    if px < 1:
        raise ValueError(f"px must be >= 1, got {px}")
    img = img.convert("L" if img.mode in ("L", "1", "I", "I;16", "F", "LA") else "RGB")
    img.thumbnail((px, px), Image.Resampling.BILINEAR)
    if max(img.size) < px:
        s = px // max(img.size)
        if s > 1:
            img = img.resize((img.width * s, img.height * s), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    data, mime = buf.getvalue(), "image/png"
    if img.mode == "RGB" and len(data) > _PNG_BUDGET:
        jbuf = io.BytesIO()
        img.save(jbuf, format="JPEG", quality=85)
        if len(jbuf.getvalue()) < len(data):
            data, mime = jbuf.getvalue(), "image/jpeg"
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def _card(value: str, label: str) -> str:
    return f"<div class='card'><div class='v'>{_esc(value)}</div><div class='l'>{_esc(label)}</div></div>"


def _fig_div(fig) -> str:
    return "<div class='plot'>" + pio.to_html(fig, full_html=False, include_plotlyjs=False,
                                              config={"displaylogo": False, "responsive": True}) + "</div>"


def _utc(t: float | None) -> str:
    return "" if t is None else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


def _overview_cards(s: dict) -> str:
    """The metric cards of the Overview page (same quantities, DESIGN §2)."""
    n = s["n_samples"]
    lo, hi = s["negative_flip_rate_ci95"]
    _kind, words = significance_verdict(s["n_negative_flips"], s["n_positive_flips"], s["mcnemar_p_value"])
    p = s["mcnemar_p_value"]
    return "".join([
        "<div class='cards'>",
        _card(fmt_pct(s["old_accuracy"], 2), f"old accuracy, of all {n} samples"),
        _card(fmt_pct(s["new_accuracy"], 2), f"new accuracy, of all {n} samples"),
        _card(fmt_pct(s["negative_flip_rate"], 2),
              f"negative flip rate (NFR): {s['n_negative_flips']} of {n} samples go old ✓ → new ✗ "
              f"(95 % CI {fmt_pct(lo, 2)} – {fmt_pct(hi, 2)})"),
        _card(fmt_pct(s["positive_flip_rate"], 2),
              f"positive flip rate (PFR): {s['n_positive_flips']} of {n} samples go old ✗ → new ✓"),
        _card(fmt_num(s["relative_negative_flip_rate"]),
              "relative NFR = NFR ÷ (old accuracy × new error rate); below 1: fewer flips than independent errors"),
        _card(fmt_pct(s["backward_trust_compatibility"], 2),
              f"backward trust compatibility (BTC): of the {s['n_old_correct']} samples the old model got right, "
              "still right"),
        _card(fmt_pct(s["backward_error_compatibility"], 2),
              "backward error compatibility (BEC): of the new model's errors, ones the old model made too"),
        _card("n/a" if p is None or (isinstance(p, float) and math.isnan(p)) else f"{p:.3g}",
              f"McNemar exact p-value, paired, on {s['n_negative_flips']} negative vs {s['n_positive_flips']} "
              f"positive flips: {words.split(' (McNemar')[0]}"),
        "</div>",
    ])


def _review_section(review) -> str:
    """Review status and every note with its UTC timestamp (all text escaped)."""
    if review is None:
        return ""
    by = f" by {_esc(review.status_by)}" if review.status_by else ""
    when = f" on {_utc(review.status_at)}" if review.status_at is not None else " (never set)"
    out = [f"<h2>Review</h2><p>Status: <b>{_esc(review.status)}</b>{by}<span class='note'>{when}</span></p>"]
    if review.notes:
        out.append("<ul class='notes'>" + "".join(
            f"<li><span class='note'>{_utc(n.at)}{' · ' + _esc(n.author) if n.author else ''}</span><br>"
            f"{_esc(n.text)}</li>" for n in review.notes) + "</ul>")
    else:
        out.append("<p class='note'>No notes.</p>")
    return "".join(out)


def _figures(comp: Comparison) -> str:
    """Transition matrix and per-class bars, at most :data:`MAX_CLASSES` classes each."""
    shown = busiest_classes(comp.transition_matrix, MAX_CLASSES)
    names = [comp.classes[i] for i in shown]
    sub = comp.transition_matrix[np.ix_(shown, shown)]
    out = ["<h2>Where the predictions move</h2>", _fig_div(transition_heatmap(sub, names))]
    if len(shown) < len(comp.classes):
        out.append(f"<p class='note'>The matrix shows {len(shown)} of {len(comp.classes)} classes: those with the "
                   "most changed predictions.</p>")
    pc = comp.per_class
    if len(pc) > MAX_CLASSES:
        busy = (pc["negative_flips"] + pc["positive_flips"]).to_numpy()
        keep = np.sort(np.lexsort((np.arange(len(pc)), -busy))[:MAX_CLASSES])
        pc = pc.iloc[keep]
        out.append(_fig_div(per_class_flip_bars(pc)))
        out.append(f"<p class='note'>The chart shows {len(pc)} of {len(comp.per_class)} classes: those with the "
                   "most flips.</p>")
    else:
        out.append(_fig_div(per_class_flip_bars(pc)))
    return "".join(out)


def negative_flip_order(comp: Comparison) -> np.ndarray:
    """Indices of the negative flips, largest drop in p(true class) first (stable).

    The drop is ``p_true(old) − p_true(new)``; without class scores on both sides the
    flips keep the comparison's sample order.
    """
    idx = np.flatnonzero(comp.negative_flip_mask)
    if comp.old_p_true is not None and comp.new_p_true is not None and idx.size:
        drop = np.asarray(comp.old_p_true, dtype=np.float64)[idx] - np.asarray(comp.new_p_true, dtype=np.float64)[idx]
        idx = idx[np.argsort(-np.nan_to_num(drop, nan=-np.inf), kind="stable")]
    return idx


def _flip_grid(comp: Comparison, cap: int) -> str:
    idx = negative_flip_order(comp)
    total = int(idx.size)
    shown = idx[:cap]
    order = " (largest drop in the true class's probability first)" if comp.old_p_true is not None else ""
    capped = f"; capped at {cap}" if total > cap else ""
    head = (f"<h2>Negative flips (old ✓ → new ✗)</h2><p class='note cap'>Showing {shown.size} of {total}"
            f"{capped}{order}.</p>")
    if not total or not shown.size:
        return head
    ds = comp.dataset
    pos = {str(sid): i for i, sid in enumerate(ds.ids)} if ds is not None else {}
    tiles = []
    for i in shown:
        sid = str(comp.ids[i])
        img = ""
        if sid in pos:
            try:
                img = f"<img alt='{_esc(sid)}' src='{thumbnail_data_uri(ds.load_image(pos[sid]))}'>"
            except (InputError, OSError, ValueError):  # a broken image must not break the report
                img = "<div class='note'>(image unreadable)</div>"
        oc = "" if comp.old_conf is None else f" ({fmt_pct(float(comp.old_conf[i]), 0)})"
        nc = "" if comp.new_conf is None else f" ({fmt_pct(float(comp.new_conf[i]), 0)})"
        tiles.append(
            f"<div class='tile'>{img}<div><b>{_esc(sid)}</b></div>"
            f"<div>true: {_esc(comp.classes[comp.labels[i]])}</div>"
            f"<div>old: {_esc(comp.classes[comp.old_pred[i]])}{oc} ✓</div>"
            f"<div>new: {_esc(comp.classes[comp.new_pred[i]])}{nc} ✗</div></div>"
        )
    return head + "<div class='grid'>" + "".join(tiles) + "</div>"


def _compat_section(comp: Comparison) -> str:
    c = comp.compatibility
    if c is None:
        return ("<h2>Embedding compatibility</h2><p class='note'>No cross-test: one or both models expose no "
                "embeddings.</p>")
    j = c.to_json()
    kind = "same" if j.get("reason") else ("better" if j.get("compatible") else "worse")
    rows = []
    for metric, label in (("top1", "Hit@1"), ("top5", "Hit@5"), ("map", "mAP")):
        m = j[metric]
        rows.append(f"<tr><td>{label}</td>" + "".join(
            f"<td>{fmt_pct(m.get(k), 2)}</td>" for k in ("old_old", "new_new", "new_old")) + "</tr>")
    tail = (f"<p class='note'>Update gain (top-1): {fmt_num(j.get('update_gain'))}. Retrieval negative flips "
            f"(top-1 right under old→old, wrong under new→old): {j.get('retrieval_negative_flips')}.</p>"
            if not j.get("reason") else f"<p class='note'>No cross-test: {_esc(j['reason'])}.</p>")
    head = old_head_verdict(comp)
    if head is not None:
        tail += f"<div class='verdict {head[0]}'>{_esc(head[1])}</div>"
    return (
        "<h2>Embedding compatibility (BCT cross-test)</h2>"
        f"<div class='verdict {kind}'>{_esc(c.verdict())}</div>"
        "<table><tr><th>metric</th><th>old → old</th><th>new → new</th><th>new query → old gallery</th></tr>"
        + "".join(rows) + "</table>" + tail
    )


# ------------------------------------------------------------------ public
def render_html_report(comp: Comparison, *, max_flips: int = DEFAULT_MAX_FLIPS, review=None,
                       generated_at: float | None = None) -> str:
    """The report as one self-contained HTML string (see the module docstring).

    Parameters
    ----------
    comp : Comparison
        The comparison; thumbnails need ``comp.dataset`` (else the grid lists ids only).
    max_flips : int
        Cap on the negative flips shown as thumbnails, largest confidence drop first.
    review : graceful_core.review.Review, optional
        Review status and notes to include.
    generated_at : float, optional
        POSIX time stated as the generation time (default: now).

    Returns
    -------
    str
        ``<!DOCTYPE html>...``: overview cards, the one-line summary, the significance
        verdict, the review, the transition matrix, per-class flips, the capped
        negative-flip grid and the embedding cross-test.
    """
    if isinstance(max_flips, bool) or not isinstance(max_flips, (int, np.integer)) or max_flips < 0:
        raise ValueError(f"max_flips must be a non-negative integer, got {max_flips!r}")
    s = comp.summary
    kind, words = significance_verdict(s["n_negative_flips"], s["n_positive_flips"], s["mcnemar_p_value"])
    title = f"{comp.old_name} → {comp.new_name}"
    stamp = _utc(time.time() if generated_at is None else generated_at)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>graceful report: {_esc(title)}</title>",
        f"<style>{_CSS}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script>",
        "</head><body>",
        f"<h1>Model update report: {_esc(title)}</h1>",
        f"<p class='sub'>{s['n_samples']} labelled samples · {len(comp.classes)} classes · generated {stamp} "
        "by graceful</p>",
        f"<p class='headline'><b>{_esc(headline(comp))}</b></p>",
        f"<div class='verdict {kind}'>{_esc(words)}</div>",
        "<h2>Summary</h2>",
        _overview_cards(s),
        _review_section(review),
        _figures(comp),
        _flip_grid(comp, int(max_flips)),
        _compat_section(comp),
        f"<script>{_PRINT_JS}</script>",
        "</body></html>",
    ]
    return "".join(parts)


def write_html_report(comp: Comparison, path: str | os.PathLike, **kw) -> None:
    """Render the report (keywords as :func:`render_html_report`) and write it atomically.

    Everything is rendered before the file is opened, and the write goes through a
    temporary file and a rename: a failure leaves no partial file behind.
    """
    atomic_write_bytes(path, render_html_report(comp, **kw).encode("utf-8"))
