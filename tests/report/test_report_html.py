"""The self-contained HTML report: numbers, cap, size, offline-ness, escaping, browser, CLI.

Expected values come from the core's JSON report (``to_report()``) and are formatted
here, in the test, independently of the report's own formatting helpers; the
transition matrix and per-class bars are decoded back from the Plotly JSON embedded
in the page. The browser part opens the file in Debian's headless Chromium (never
``playwright install``) and records every request the page makes.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.stats import binomtest

from tests.browser.harness import ARTIFACTS, chromium, fresh_page, need_browser
from tests.helpers import parse, run_cli

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
OLD, NEW = SAMPLE / "models" / "old.pt", SAMPLE / "models" / "new.pt"
TEST_DATA = SAMPLE / "digits" / "test"
FIXED_TIME = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
HOSTILE = "</script><img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def comp():
    if not (OLD.exists() and NEW.exists() and TEST_DATA.is_dir()):
        pytest.skip("bundled sample data is missing")
    from graceful_core.comparing.sources import compare_sources

    return compare_sources(OLD, NEW, TEST_DATA)


@pytest.fixture(scope="module")
def report(comp) -> dict:
    return comp.to_report()


@pytest.fixture(scope="module")
def page(comp) -> str:
    from graceful_core.report.html import render_html_report

    return render_html_report(comp, generated_at=FIXED_TIME)


# ------------------------------------------------------------------ helpers
def pct2(x: float) -> str:
    return f"{100 * x:.2f} %"


def plotly_traces(doc: str) -> list[dict]:
    """The data arrays of every ``Plotly.newPlot(id, data, layout, config)`` call."""
    dec = json.JSONDecoder()
    traces = []
    for m in re.finditer(r"Plotly\.newPlot\(\s*\"[^\"]+\",\s*", doc):
        data, _end = dec.raw_decode(doc, m.end())
        traces.extend(data)
    return traces


def array(v) -> np.ndarray:
    """A Plotly JSON array: a plain list or a typed array ``{"dtype", "bdata"[, "shape"]}``."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        if "shape" in v:
            a = a.reshape([int(s) for s in str(v["shape"]).split(",")])
        return a
    return np.asarray(v)


def without_plotly_js(doc: str) -> str:
    """The document with the inlined plotly.js bundle (the first <script> in <head>) removed."""
    start = doc.index("<script type='text/javascript'>")
    end = doc.index("</script>", start)
    assert "plotly.js" in doc[start:end][:2000].lower()
    return doc[:start] + doc[end:]


# ------------------------------------------------------------------ numbers
def test_overview_numbers_match_the_json_report(page, report):
    text = " ".join(parse(page).text)
    for value in (
        report["old"]["accuracy"],
        report["new"]["accuracy"],
        report["negative_flip_rate"],
        report["positive_flip_rate"],
        report["backward_trust_compatibility"],
        report["backward_error_compatibility"],
        *report["negative_flip_rate_ci95"],
    ):
        assert pct2(value) in text, pct2(value)
    assert f"{report['relative_negative_flip_rate']:.3f}" in text
    assert f"{report['mcnemar_p_value']:.3g}" in text
    nf, pf, n = report["n_negative_flips"], report["n_positive_flips"], report["n_samples"]
    assert f"fixes {pf} images and breaks {nf} images of {n}" in text
    assert f"of all {n} images: {nf} go old ✓ → new ✗" in text


def test_mcnemar_verdict_in_plain_words(page, report):
    nf, pf = report["n_negative_flips"], report["n_positive_flips"]
    p = binomtest(nf, nf + pf, 0.5).pvalue  # exact two-sided McNemar, independently
    assert report["mcnemar_p_value"] == pytest.approx(p, rel=1e-9)
    if p < 0.05:
        words = "significantly better" if pf > nf else "significantly worse"
    else:
        words = "not distinguishable"
    verdicts = [s for s in parse(page).text if "McNemar p =" in s and not s.startswith("McNemar exact")]
    assert verdicts and all(words in s and s.endswith(f"(McNemar p = {p:.2g})") for s in verdicts), verdicts


def test_figures_carry_the_matrix_and_per_class_counts(page, report):
    traces = plotly_traces(page)
    heat = [t for t in traces if t.get("type") == "heatmap"]
    assert len(heat) == 1
    shown = array(heat[0]["customdata"]).reshape(len(report["classes"]), -1)
    np.testing.assert_array_equal(shown, np.asarray(report["transition_matrix"]))
    neg = [t for t in traces if t.get("type") == "bar" and str(t.get("name", "")).startswith("negative")]
    assert len(neg) == 1
    assert [str(x) for x in array(neg[0]["x"])] == [str(r["class"]) for r in report["per_class"]]
    np.testing.assert_array_equal(array(neg[0]["y"]), [r["negative_flips"] for r in report["per_class"]])


def test_compatibility_table_matches_the_json_report(page, report):
    c = report.get("compatibility")
    text = " ".join(parse(page).text)
    if c is None:
        assert "No cross-test" in text
        return
    for metric in ("top1", "top5", "map"):
        for pair in ("old_old", "new_new", "new_old"):
            v = c[metric][pair]
            assert ("n/a" if v is None else pct2(v)) in text, (metric, pair)
    assert ("not compatible" in text) == (not c["compatible"])


# ------------------------------------------------------------------ cap and size
def test_cap_is_stated(comp, report):
    from graceful_core.report.html import render_html_report

    nf = report["n_negative_flips"]
    assert nf >= 2, "the sample pair should have a few negative flips"
    full = render_html_report(comp, generated_at=FIXED_TIME)
    assert f"Showing {nf} of {nf}" in full and "capped" not in full
    one = render_html_report(comp, max_flips=1, generated_at=FIXED_TIME)
    assert f"Showing 1 of {nf}; capped at 1" in one
    imgs = [a for t, a in parse(one).tags if t == "img"]
    assert len(imgs) == 1
    # the shown flip is the one with the largest drop in p(true class), computed here with NumPy
    s = comp.samples()
    neg = s[s["flip"] == "negative flip"]
    top = neg.iloc[int(np.argmax((neg["old_p_true"] - neg["new_p_true"]).to_numpy()))]["id"]
    assert imgs[0]["alt"] == top


def test_size_limit_and_growth_with_the_cap_only(comp, report, tmp_path):
    from graceful_core.comparing.sources import compare_sources
    from graceful_core.report.html import render_html_report

    nf = report["n_negative_flips"]
    sizes = {cap: len(render_html_report(comp, max_flips=cap, generated_at=FIXED_TIME).encode()) for cap in (0, 1, nf)}
    assert sizes[nf] < 5_000_000
    assert sizes[0] < sizes[1] < sizes[nf]
    # each extra thumbnail costs at least its data URI
    one = render_html_report(comp, max_flips=1, generated_at=FIXED_TIME)
    uri = [a["src"] for t, a in parse(one).tags if t == "img"][0]
    assert sizes[1] - sizes[0] >= len(uri)

    # twice the dataset (every image twice), same cap: about the same size
    big = tmp_path / "big"
    for cls in sorted(p for p in TEST_DATA.iterdir() if p.is_dir()):
        (big / cls.name).mkdir(parents=True)
        for f in cls.iterdir():
            shutil.copy(f, big / cls.name / f"a_{f.name}")
            shutil.copy(f, big / cls.name / f"b_{f.name}")
    comp2 = compare_sources(OLD, NEW, big)
    assert comp2.n_samples == 2 * comp.n_samples
    assert int(comp2.arrays.negative_flip_mask.sum()) == 2 * nf
    small = len(render_html_report(comp, max_flips=2, generated_at=FIXED_TIME).encode())
    large = len(render_html_report(comp2, max_flips=2, generated_at=FIXED_TIME).encode())
    assert abs(large - small) < 1_000, (small, large)


# ------------------------------------------------------------------ offline
def test_every_image_is_a_data_uri_and_nothing_links_out(page):
    tags = parse(page).tags
    imgs = [a for t, a in tags if t == "img"]
    assert imgs and all(a["src"].startswith("data:image/") for a in imgs)
    for tag, attrs in tags:
        for name in ("src", "href"):
            v = (attrs.get(name) or "").strip().lower()
            assert not v.startswith(("http://", "https://", "//")), (tag, name, v)
    # plotly.js inlined exactly once, one script per figure, one print helper
    assert page.count("<script") == 2 + page.count("Plotly.newPlot(")
    rest = without_plotly_js(page)
    assert "http://" not in rest and "https://" not in rest
    assert "@import" not in rest and "@font-face" not in rest


def test_print_stylesheet(page):
    css = page[page.index("<style>") : page.index("</style>")]
    media = css[css.index("@media print") :]
    assert ".modebar" in media and "display:none" in media
    for sel in (".card", ".tile", "tr", ".plot"):
        assert re.search(re.escape(sel) + r"\{[^}]*break-inside:avoid", css), sel


# ------------------------------------------------------------------ escaping
class FakeDataset:
    """Duck-typed dataset: ``ids`` and ``load_image``; the second image is unreadable."""

    def __init__(self, ids):
        self.ids = list(ids)

    def load_image(self, i):
        if i == 1:
            raise OSError("truncated file")
        return Image.fromarray(np.full((8, 8), 200, dtype=np.uint8), mode="L")


def hostile_comparison(classes=(HOSTILE, "b<i>")):
    from graceful_core.comparing.predictions import compare_predictions
    from graceful_core.results.comparison import ComparisonInputs
    from graceful_core.types import Predictions

    ids = np.array([f"{HOSTILE}-{i}" for i in range(4)], dtype=object)
    old = Predictions(ids=ids, pred=np.array([0, 0, 1, 0]), classes=list(classes), labels=np.array([0, 0, 1, 1]))
    new = Predictions(ids=ids, pred=np.array([1, 1, 1, 1]), classes=list(classes))
    return compare_predictions(
        old,
        new,
        old_name=f"old{HOSTILE}",
        new_name="new&'\"",
        key="k",
        inputs=ComparisonInputs(dataset=FakeDataset(ids)),
    )


def test_user_strings_are_escaped():
    from graceful_core.report.html import render_html_report
    from graceful_core.review.store import Note, Review

    rv = Review(
        key="k",
        status="rejected",
        status_by="<b>eve</b>",
        status_at=FIXED_TIME,
        notes=(Note(text=f"note {HOSTILE}", author="a&b", at=FIXED_TIME + 60),),
    )
    doc = render_html_report(hostile_comparison(), review=rv, generated_at=FIXED_TIME)
    assert HOSTILE not in doc and "<b>eve</b>" not in doc and "b<i>" not in doc
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in doc
    tags = parse(doc).tags
    assert [t for t, _ in tags].count("script") == 2 + doc.count("Plotly.newPlot(")
    imgs = [a for t, a in tags if t == "img"]
    assert len(imgs) == 1 and imgs[0]["src"].startswith("data:image/png;base64,")  # one unreadable image skipped
    text = " ".join(parse(doc).text)
    assert "(image unreadable)" in text
    assert "Showing 2 of 2" in text
    assert "No cross-test" in text
    assert "2023-11-14 22:13 UTC" in text and "2023-11-14 22:14 UTC" in text  # status and note times
    assert f"note {HOSTILE}" in text and "a&b" in text  # shown literally


def test_thumbnail_data_uri_scales_and_stays_small():
    from graceful_core.report.html import thumbnail_data_uri

    tiny = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8), mode="L")
    img = Image.open(__import__("io").BytesIO(base64.b64decode(thumbnail_data_uri(tiny).split(",", 1)[1])))
    assert img.size == (64, 64) and img.mode == "L"
    np.testing.assert_array_equal(np.asarray(img)[::8, ::8], np.asarray(tiny))  # nearest, no smoothing
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), mode="RGB")
    uri = thumbnail_data_uri(photo)
    assert len(uri) < 16_000
    head, data = uri.split(",", 1)
    assert max(Image.open(__import__("io").BytesIO(base64.b64decode(data))).size) == 64
    with pytest.raises(ValueError):
        thumbnail_data_uri(tiny, px=0)


def test_bad_cap_is_refused(comp):
    from graceful_core.report.html import render_html_report

    for bad in (-1, 2.5, True, "60"):
        with pytest.raises(ValueError, match="max_flips"):
            render_html_report(comp, max_flips=bad)


# ------------------------------------------------------------------ browser
@pytest.fixture(scope="module")
def browser():
    """One Chromium for the module's browser tests; each opens its page in a fresh context (a new window)."""
    _chromium()
    yield from chromium()


def test_opens_offline_in_chromium(page, browser, tmp_path):
    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    url = path.as_uri()
    requests, errors = [], []
    with fresh_page(browser, 1200, 900) as pg:
        pg.on("request", lambda r: requests.append(r.url))
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(url, wait_until="load")
        pg.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 2", timeout=180_000)
        pg.wait_for_timeout(300)
        ARTIFACTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / "report_html.png"), full_page=True)
        assert pg.locator(".grid img").count() >= 1
        assert pg.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        pg.emulate_media(media="print")
        displays = pg.evaluate(
            "Array.from(document.querySelectorAll('.modebar-container')).map(e => getComputedStyle(e).display)"
        )
        assert displays and set(displays) == {"none"}  # no interactive chrome on paper
        widths = "Array.from(document.querySelectorAll('.js-plotly-plot .main-svg')).map(s => s.clientWidth)"
        assert min(pg.evaluate(widths)) > 900  # screen width
        pg.evaluate("window.dispatchEvent(new Event('beforeprint'))")
        pg.wait_for_timeout(300)
        assert set(pg.evaluate(widths)) == {680}  # redrawn at the paper's width
        pg.screenshot(path=str(ARTIFACTS / "report_html_print.png"), full_page=True)
        pdf = pg.pdf(format="A4", print_background=True)
        assert pdf[:5] == b"%PDF-" and len(pdf) > 10_000
        (ARTIFACTS / "report_html.pdf").write_bytes(pdf)
        pg.evaluate("window.dispatchEvent(new Event('afterprint'))")
        pg.wait_for_timeout(300)
        assert min(pg.evaluate(widths)) > 900  # back to the screen width
    assert errors == []
    others = [u for u in requests if u != url and not u.startswith("data:")]
    assert others == [], others
    assert url in requests


# ------------------------------------------------------------------ command line
def test_cli_writes_the_html_report(tmp_path, report):
    out = tmp_path / "out.html"
    r = run_cli("compare", OLD, NEW, "--data", TEST_DATA, "--html", out, cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    doc = out.read_text(encoding="utf-8")
    assert doc.startswith("<!DOCTYPE html>") and doc.rstrip().endswith("</html>")
    nf = report["n_negative_flips"]
    assert f"Showing {nf} of {nf}" in doc and pct2(report["negative_flip_rate"]) in doc
    assert "Status: <b>needs review</b>" in doc
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_cli_bad_input_leaves_no_html(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a model")
    out = tmp_path / "out.html"
    r = run_cli("compare", OLD, bad, "--data", TEST_DATA, "--html", out, cache=tmp_path / "cache")
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]  # progress lines come first
    assert last.startswith("error: ") and "broken.pt" in last and "Traceback" not in r.stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["broken.pt"]  # no temp file


# ------------------------------------------------------------------ layout and scripts in a browser
def _chromium():
    """Playwright's sync API, once Chromium and Playwright are known to be there (else skip; fail when ``CI`` is set)."""
    need_browser()
    import playwright.sync_api

    return playwright.sync_api


#: Per figure: the SVG's box, and the boxes of every tick label and axis title, in page px.
BOXES_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(plot => {
  const svg = plot.querySelector('.main-svg').getBoundingClientRect();
  const box = el => { const r = el.getBoundingClientRect();
                      return {x0: r.left, y0: r.top, x1: r.right, y1: r.bottom, text: el.textContent}; };
  return {svg: {x0: svg.left, y0: svg.top, x1: svg.right, y1: svg.bottom},
          xticks: Array.from(plot.querySelectorAll('.xtick text')).map(box),
          yticks: Array.from(plot.querySelectorAll('.ytick text')).map(box),
          titles: Array.from(plot.querySelectorAll('.g-xtitle text, .g-ytitle text')).map(box)};
})"""


def _inside(b, svg, tol=1.0) -> bool:
    return (
        b["x0"] >= svg["x0"] - tol
        and b["x1"] <= svg["x1"] + tol
        and b["y0"] >= svg["y0"] - tol
        and b["y1"] <= svg["y1"] + tol
    )


def _overlap(a, b) -> bool:
    return a["x0"] < b["x1"] and b["x0"] < a["x1"] and a["y0"] < b["y1"] and b["y0"] < a["y1"]


@pytest.mark.parametrize("width", [800, 1300, 1920])
def test_charts_keep_their_labels_inside_at_every_width(page, report, browser, tmp_path, width):
    """Every tick label and axis title lies inside its figure and no tick label covers an axis title."""
    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    with fresh_page(browser, width, 900) as pg:
        pg.goto(path.as_uri(), wait_until="load")
        pg.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 2", timeout=180_000)
        pg.wait_for_timeout(300)
        ARTIFACTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / f"report_html_{width}.png"), full_page=True)
        figures = pg.evaluate(BOXES_JS)
    heat, bars = figures[0], figures[1]
    k = len(report["classes"])

    # the heatmap names every row (top to bottom) and column (left to right); the bars name every class
    # and tick whole numbers only
    def order(ticks, key):
        return [t["text"] for t in sorted(ticks, key=lambda t: t[key])]

    assert order(heat["yticks"], "y0") == [f"old: {c}" for c in report["classes"]]
    assert order(heat["xticks"], "x0") == [f"new: {c}" for c in report["classes"]]
    assert order(bars["xticks"], "x0") == [str(c) for c in report["classes"]]
    assert bars["yticks"] and all(t["text"].replace(",", "").isdigit() for t in bars["yticks"]), bars["yticks"]
    assert len(bars["titles"]) == 2 and k >= 2
    for fig in figures:
        for b in fig["xticks"] + fig["yticks"] + fig["titles"]:
            assert _inside(b, fig["svg"]), (width, b, fig["svg"])
        for t in fig["xticks"] + fig["yticks"]:
            for title in fig["titles"]:
                assert not _overlap(t, title), (width, t, title)


def test_hostile_class_names_show_as_text_and_run_no_script(browser, tmp_path):
    """Class names, ids, model names and notes that are HTML stay text, in the page and in the charts."""
    from graceful_core.report.html import write_html_report
    from graceful_core.review.store import Note, Review

    names = ("<script>alert(1)</script>", "<img src=x onerror=alert(1)>")
    rv = Review(
        key="k",
        status="rejected",
        status_by="<img src=x onerror=alert(3)>",
        status_at=FIXED_TIME,
        notes=(Note(text="<script>alert(4)</script>", author="<b>a</b>", at=FIXED_TIME),),
    )
    path = tmp_path / "hostile.html"
    write_html_report(hostile_comparison(classes=names), path, review=rv, generated_at=FIXED_TIME)
    dialogs, errors = [], []
    with fresh_page(browser, 1300, 900) as pg:
        pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(path.as_uri(), wait_until="load")
        pg.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 2", timeout=180_000)
        pg.wait_for_timeout(500)
        text = pg.evaluate("document.body.innerText")
        ticks = pg.evaluate("Array.from(document.querySelectorAll('.xtick text, .ytick text')).map(t => t.textContent)")
        n_scripts = pg.evaluate("document.scripts.length")
        n_plots = pg.evaluate("document.querySelectorAll('.js-plotly-plot').length")
        fake_imgs = pg.evaluate("Array.from(document.images).filter(i => i.getAttribute('src') === 'x').length")
        ARTIFACTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / "report_html_hostile.png"), full_page=True)
    assert dialogs == [] and errors == []
    assert n_scripts == 2 + n_plots and fake_imgs == 0  # plotly.js, one per figure, the print helper
    assert f"true: {names[0]}" in text and f"new: {names[1]}" in text  # the flip tiles
    for name in names:
        assert f"old: {name}" in ticks and f"new: {name}" in ticks and name in ticks  # matrix and bars
    assert "<img src=x onerror=alert(3)>" in text and "<script>alert(4)</script>" in text
    assert "old</script><img src=x onerror=alert(1)>" in text  # the old model's name, in the title
