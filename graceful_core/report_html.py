"""One self-contained HTML report of a comparison.

Opens offline: Plotly's JavaScript is inlined once, thumbnails are small PNG data URIs,
no external request of any kind. Its size grows with the number of thumbnails shown
(capped by ``max_flips``, and the cap is stated), not with the dataset size. A print
stylesheet makes it print cleanly to PDF from a browser.
"""

from __future__ import annotations

import base64
import html
import io
import os
import time

import numpy as np
import plotly.io as pio
from plotly.offline import get_plotlyjs
from PIL import Image

from graceful_core.cache import atomic_write_bytes
from graceful_core.comparison import Comparison
from graceful_core.figures import per_class_flip_bars, transition_heatmap
from graceful_core.summary import fmt_num, fmt_pct, headline, significance_verdict

THUMB_PX = 64

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{margin-bottom:4px} .sub{color:#555;margin-top:0}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:10px;margin:16px 0}
.card{border:1px solid #ddd;border-radius:8px;padding:10px 12px;break-inside:avoid}
.card .v{font-size:1.5em;font-weight:600} .card .l{color:#555;font-size:.85em}
.verdict{padding:10px 14px;border-radius:8px;margin:8px 0;font-weight:600}
.better{background:#e6f4ea;color:#1e6b34} .worse{background:#fce8e6;color:#a52714} .same{background:#f1f3f4;color:#333}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:8px}
.tile{border:2px solid #d62728;border-radius:6px;padding:6px;font-size:.8em;break-inside:avoid}
.tile img{image-rendering:pixelated;width:64px;height:64px;display:block;margin:0 auto 4px}
table{border-collapse:collapse;margin:8px 0} td,th{border:1px solid #ddd;padding:4px 10px;text-align:right}
th:first-child,td:first-child{text-align:left}
.note{color:#555;font-size:.9em}
@media print{
  body{margin:0;max-width:none;font-size:11pt}
  .plot{break-inside:avoid;page-break-inside:avoid}
  h2{break-after:avoid;page-break-after:avoid}
  .grid{grid-template-columns:repeat(5,1fr)}
  a{color:inherit;text-decoration:none}
}
"""


def _thumb_data_uri(img: Image.Image) -> str:
    img = img.convert("L" if img.mode in ("L", "1", "I", "I;16", "F") else "RGB")
    img.thumbnail((THUMB_PX, THUMB_PX), Image.Resampling.NEAREST)
    if max(img.size) < THUMB_PX:  # tiny images (8x8 digits): upscale without smoothing
        s = THUMB_PX // max(img.size)
        img = img.resize((img.width * s, img.height * s), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _card(value: str, label: str) -> str:
    return f'<div class="card"><div class="v">{html.escape(value)}</div><div class="l">{html.escape(label)}</div></div>'


def _fig_div(fig) -> str:
    return '<div class="plot">' + pio.to_html(fig, full_html=False, include_plotlyjs=False,
                                              config={"displaylogo": False}) + "</div>"


def render_html_report(comp: Comparison, *, max_flips: int = 60, review=None) -> str:
    """The report as one HTML string (see module docstring).

    Parameters
    ----------
    comp : Comparison
        The comparison; thumbnails need ``comp.dataset`` (else the grid lists ids).
    max_flips : int
        Cap on the negative flips shown as thumbnails (most confident regressions first).
    review : graceful_core.review.Review, optional
        Review status and notes to include.
    """
    s = comp.summary
    lo, hi = s["negative_flip_rate_ci95"]
    kind, words = significance_verdict(s["n_negative_flips"], s["n_positive_flips"], s["mcnemar_p_value"])
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>graceful report: {html.escape(comp.old_name)} → {html.escape(comp.new_name)}</title>",
        f"<style>{_CSS}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script>",
        "</head><body>",
        f"<h1>Model update report: {html.escape(comp.old_name)} → {html.escape(comp.new_name)}</h1>",
        f"<p class='sub'>{s['n_samples']} labelled samples · generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        " by graceful</p>",
        f"<p><b>{html.escape(headline(comp))}</b></p>",
        f"<div class='verdict {kind}'>{html.escape(words)}</div>",
    ]
    if review is not None:
        parts.append(f"<h2>Review</h2><p>Status: <b>{html.escape(review.status)}</b>"
                     + (f" (by {html.escape(review.status_by)})" if review.status_by else "") + "</p>")
        if review.notes:
            parts.append("<ul>" + "".join(
                f"<li>{html.escape(n.text)}" + (f" — {html.escape(n.author)}" if n.author else "")
                + f" <span class='note'>{time.strftime('%Y-%m-%d %H:%M', time.gmtime(n.at))}</span></li>"
                for n in review.notes) + "</ul>")
    parts += [
        "<h2>Summary</h2><div class='cards'>",
        _card(fmt_pct(s["old_accuracy"]), "old accuracy (of all samples)"),
        _card(fmt_pct(s["new_accuracy"]), "new accuracy (of all samples)"),
        _card(fmt_pct(s["negative_flip_rate"], 2),
              f"negative flip rate, of all samples (95 % CI {fmt_pct(lo, 2)}–{fmt_pct(hi, 2)})"),
        _card(fmt_pct(s["positive_flip_rate"], 2), "positive flip rate, of all samples"),
        _card(fmt_num(s["relative_negative_flip_rate"]), "relative NFR (1 = as many flips as independent errors)"),
        _card(fmt_pct(s["backward_trust_compatibility"], 2), "backward trust compatibility: old-correct samples still correct"),
        _card(fmt_pct(s["backward_error_compatibility"], 2), "backward error compatibility: new errors the old model also made"),
        _card(fmt_num(s["mcnemar_p_value"]), "McNemar exact p-value (paired)"),
        "</div>",
        "<h2>Where the predictions move</h2>",
        _fig_div(transition_heatmap(comp.transition_matrix, comp.classes)),
        _fig_div(per_class_flip_bars(comp.per_class)),
    ]
    parts.append(_flip_grid(comp, max_flips))
    parts.append(_compat_section(comp))
    parts.append("</body></html>")
    return "".join(parts)


def _flip_grid(comp: Comparison, cap: int) -> str:
    idx = np.flatnonzero(comp.negative_flip_mask)
    total = idx.size
    if comp.old_p_true is not None and comp.new_p_true is not None and total:
        drop = comp.old_p_true[idx] - comp.new_p_true[idx]
        idx = idx[np.argsort(-drop, kind="stable")]
    shown = idx[:cap]
    head = (f"<h2>Negative flips (old ✓ → new ✗)</h2><p class='note'>Showing {shown.size} of {total}"
            + (f" (capped at {cap}; largest confidence drop first)" if total > cap else
               " (largest confidence drop first)" if total else "") + ".</p>")
    if not total:
        return head
    pos = {}
    ds = comp.dataset
    if ds is not None:
        pos = {sid: i for i, sid in enumerate(ds.ids)}
    tiles = []
    for i in shown:
        sid = str(comp.ids[i])
        img = ""
        if sid in pos:
            try:
                img = f"<img alt='{html.escape(sid)}' src='{_thumb_data_uri(ds.load_image(pos[sid]))}'>"
            except Exception:  # a broken image must not break the report
                img = ""
        oc = "" if comp.old_conf is None else f" ({fmt_pct(float(comp.old_conf[i]), 0)})"
        nc = "" if comp.new_conf is None else f" ({fmt_pct(float(comp.new_conf[i]), 0)})"
        tiles.append(
            f"<div class='tile'>{img}<div><b>{html.escape(sid)}</b></div>"
            f"<div>true: {html.escape(comp.classes[comp.labels[i]])}</div>"
            f"<div>old: {html.escape(comp.classes[comp.old_pred[i]])}{oc} ✓</div>"
            f"<div>new: {html.escape(comp.classes[comp.new_pred[i]])}{nc} ✗</div></div>"
        )
    return head + "<div class='grid'>" + "".join(tiles) + "</div>"


def _compat_section(comp: Comparison) -> str:
    c = comp.compatibility
    if c is None:
        return ("<h2>Embedding compatibility</h2><p class='note'>Not computed: one or both models expose no "
                "embeddings.</p>")
    j = c.to_json()
    rows = []
    for metric, label in (("top1", "Hit@1"), ("top5", "Hit@5"), ("map", "mAP")):
        m = j[metric]
        rows.append(f"<tr><td>{label}</td>" + "".join(
            f"<td>{fmt_pct(m.get(k), 1)}</td>" for k in ("old_old", "new_new", "new_old")) + "</tr>")
    return (
        "<h2>Embedding compatibility (BCT cross-test)</h2>"
        f"<div class='verdict {'better' if j.get('compatible') else 'worse'}'>{html.escape(c.verdict())}</div>"
        "<table><tr><th>metric</th><th>old → old</th><th>new → new</th><th>new query → old gallery</th></tr>"
        + "".join(rows) + "</table>"
        f"<p class='note'>Update gain (top-1): {fmt_num(j.get('update_gain'))}. Retrieval negative flips "
        f"(top-1 right under old→old, wrong under new→old): {j.get('retrieval_negative_flips')}.</p>"
    )


def write_html_report(comp: Comparison, path: str | os.PathLike, **kw) -> None:
    """Render and write the report atomically (no partial file on failure)."""
    atomic_write_bytes(path, render_html_report(comp, **kw).encode("utf-8"))


