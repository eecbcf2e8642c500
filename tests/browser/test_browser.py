"""Real-browser test: headless Chromium (Debian's) via Playwright against `streamlit run app.py`.

Opens the app, checks the overview's NFR against the CLI's JSON, visits every page,
clicks a matrix cell and a bar, follows deep links, uploads a bad file, and asserts
that no Streamlit exception box appears anywhere. Screenshots go to test-artifacts/.
Never runs `playwright install`: it uses /usr/bin/chromium.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from tests.browser.harness import (
    FIRST_MS,
    WAIT_MS,
    browser_page,
    click_centre,
    grid_count,
    metric_value,
    no_exception,
    serve_app,
    shot,
    wait_ready,
    wait_until,
)
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def cli_report(sample_spec, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "report.json"
    run_cli(
        "compare",
        sample_spec.old,
        sample_spec.new,
        "--data",
        sample_spec.data,
        "--json",
        out,
        cache=tmp_path_factory.mktemp("cli-cache"),
        check=True,
    )
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def server(tmp_path_factory, sample_spec):
    yield from serve_app(tmp_path_factory, "app")


@pytest.fixture(scope="module")
def page(server):
    yield from browser_page(1400, 1800)


def test_overview_nfr_equals_the_cli_json(page, server, cli_report):
    page.goto(server + "/?cmp=sample:new")
    page.wait_for_selector('[data-testid="stMetric"]', timeout=FIRST_MS)
    wait_ready(page)
    assert metric_value(page, "Negative flip rate (NFR)") == f"{100 * cli_report['negative_flip_rate']:.2f} %"
    assert metric_value(page, "Old accuracy") == f"{100 * cli_report['old']['accuracy']:.2f} %"
    assert "cmp=sample" in page.evaluate("location.href")
    no_exception(page, "overview")
    shot(page, "01-overview")


@pytest.mark.parametrize(
    "title, name",
    [
        ("Choose inputs", "02-inputs"),
        ("Flips", "03-flips"),
        ("Sample", "04-sample"),
        ("Embeddings", "04b-embeddings"),
        ("Retrieval", "04c-retrieval"),
        ("Overview", "05-overview-again"),
    ],
)
def test_every_page_via_the_sidebar(page, server, title, name):
    if "localhost" not in page.url and "127.0.0.1" not in page.url:
        page.goto(server + "/?cmp=sample:new")
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.wait_for_selector(f'[data-testid="stMain"] h1:has-text("{title}")', timeout=WAIT_MS)
    # the first UMAP after a server start compiles numba code (a spinner says so meanwhile)
    wait_ready(page, timeout=FIRST_MS if title == "Embeddings" else WAIT_MS)
    if title == "Embeddings":  # the UMAP itself may take minutes when CI's other worker is busy
        page.wait_for_selector(".js-plotly-plot", timeout=FIRST_MS)
    if title == "Flips":
        page.wait_for_selector(".js-plotly-plot", timeout=WAIT_MS)
        page.wait_for_selector('[data-testid="stImage"]', timeout=WAIT_MS)
    assert "cmp=sample" in page.evaluate("location.href"), "comparison lost from the URL on a page switch"
    no_exception(page, title)
    shot(page, name)


def test_clicking_a_cell_and_a_bar_filters_the_grid(page, server, cli_report):
    page.goto(server + "/flips?cmp=sample:new")
    page.wait_for_selector(".js-plotly-plot .scatterlayer path.point", timeout=WAIT_MS)
    wait_ready(page)
    m, classes = cli_report["transition_matrix"], cli_report["classes"]
    k = len(classes)
    a, b = max(((i, j) for i in range(k) for j in range(k) if i != j), key=lambda ij: m[ij[0]][ij[1]])
    cells = page.locator(".js-plotly-plot").nth(0).locator(".scatterlayer path.point")
    click_centre(page, cells.nth(a * k + b))
    page.wait_for_function(f"() => location.href.includes('old={quote(classes[a])}')", timeout=WAIT_MS)
    wait_ready(page)
    assert wait_until(page, lambda: grid_count(page), m[a][b]) == m[a][b]
    shot(page, "06-flips-cell")

    row = max(range(k), key=lambda i: cli_report["per_class"][i]["negative_flips"])
    bars = page.locator(".js-plotly-plot").nth(1).locator("g.point path")  # trace 0 = negative flips
    click_centre(page, bars.nth(row))
    page.wait_for_function(f"() => location.href.includes('cls={quote(classes[row])}')", timeout=WAIT_MS)
    wait_ready(page)
    expected = cli_report["per_class"][row]["negative_flips"]
    assert wait_until(page, lambda: grid_count(page), expected) == expected
    no_exception(page, "flips after clicks")
    shot(page, "07-flips-bar")


def test_deep_links_open_the_same_view(page, server, cli_report):
    cls = cli_report["classes"][0]
    page.goto(f"{server}/flips?cmp=sample:new&cls={quote(cls)}&flip=")
    page.wait_for_selector("text=matching images", timeout=WAIT_MS)
    wait_ready(page)
    support = next(r["support"] for r in cli_report["per_class"] if r["class"] == cls)
    assert grid_count(page) == support
    sid = (cli_report["negative_flips"] or cli_report["positive_flips"])[0]
    page.goto(f"{server}/sample?cmp=sample:new&sample={quote(sid)}")
    page.wait_for_selector('[data-testid="stMain"] h1:has-text("Sample")', timeout=WAIT_MS)
    wait_ready(page)
    page.get_by_text(f"{sid} (upscaled, no smoothing)").wait_for(timeout=WAIT_MS)
    page.wait_for_selector(".js-plotly-plot", timeout=WAIT_MS)
    no_exception(page, "sample deep link")
    shot(page, "08-sample-deep-link")


def test_lasso_on_the_embedding_map_shows_the_selected_images(page, server):
    page.goto(server + "/embeddings?cmp=sample:new")
    wait_ready(page, timeout=FIRST_MS)
    plot = page.locator(".js-plotly-plot").first
    plot.wait_for(timeout=WAIT_MS)
    box = plot.locator(".nsewdrag").first.bounding_box()
    x0, y0 = box["x"] + 0.05 * box["width"], box["y"] + 0.05 * box["height"]
    x1, y1 = box["x"] + 0.95 * box["width"], box["y"] + 0.95 * box["height"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    for x, y in ((x1, y0), (x1, y1), (x0, y1), (x0, y0 + 2)):
        page.mouse.move(x, y, steps=8)
    page.mouse.up()
    page.get_by_text("images selected").first.wait_for(timeout=WAIT_MS)
    page.locator('[data-testid="stMain"] [data-testid="stImage"]').first.wait_for(timeout=WAIT_MS)
    wait_ready(page)
    n_selected = int(page.get_by_text("images selected").first.inner_text().split()[0].replace(",", ""))
    expect(page.locator('[data-testid="stMain"] [data-testid="stImage"]')).to_have_count(
        min(n_selected, 24), timeout=WAIT_MS
    )
    no_exception(page, "embeddings after a lasso")
    shot(page, "10-embeddings-lasso")


def test_bad_upload_shows_the_error_and_keeps_the_result(page, server, cli_report, tmp_path):
    bad = tmp_path / "not-a-model.pt"
    bad.write_bytes(b"this is not a TorchScript archive")
    page.goto(server + "/inputs?cmp=sample:new")
    page.wait_for_selector('[data-testid="stFileUploader"]', timeout=WAIT_MS)
    wait_ready(page)
    page.locator('[data-testid="stFileUploader"]').first.locator('input[type="file"]').set_input_files(str(bad))
    alert = page.locator('[data-testid="stAlertContentError"]', has_text="not-a-model.pt:")
    alert.wait_for(timeout=WAIT_MS)
    assert page.get_by_text("Now showing").count() == 1
    no_exception(page, "inputs after a bad upload")
    shot(page, "09-bad-upload")
    page.locator('[data-testid="stSidebarNav"] a', has_text="Overview").first.click()
    page.wait_for_selector('[data-testid="stMetric"]', timeout=WAIT_MS)
    wait_ready(page)
    assert metric_value(page, "Negative flip rate (NFR)") == f"{100 * cli_report['negative_flip_rate']:.2f} %"
    no_exception(page, "overview after a bad upload")


def test_the_overview_has_its_own_address(page, server):
    """A fresh load of /overview?cmp=... opens the Overview (no "Page not found"); / goes to /overview."""
    page.goto(server + "/overview?cmp=sample:new")
    page.wait_for_selector('[data-testid="stMain"] h1:has-text("Overview")', timeout=WAIT_MS)
    wait_ready(page)
    no_exception(page, "/overview")
    assert "/overview" in page.url and "cmp=sample" in page.url
    page.goto(server + "/?cmp=sample:new")
    page.wait_for_selector('[data-testid="stMain"] h1:has-text("Overview")', timeout=WAIT_MS)
    wait_ready(page)
    page.wait_for_function("() => location.pathname.endsWith('/overview')", timeout=WAIT_MS)
    assert "cmp=sample" in page.url
    no_exception(page, "/ -> /overview")


HOSTILE_CLASSES = ("<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "plain")


def test_hostile_class_names_show_as_text_in_the_app(page, server, tmp_path):
    """Two uploaded tables whose classes are HTML: the app shows the names as text and runs no script."""
    import pandas as pd

    ids = [f"s{i}" for i in range(9)]
    labels = [HOSTILE_CLASSES[i % 3] for i in range(9)]
    old = [HOSTILE_CLASSES[(i + (i == 4)) % 3] for i in range(9)]  # old wrong on s4
    new = [HOSTILE_CLASSES[(i + (i in (0, 1))) % 3] for i in range(9)]  # new wrong on s0, s1: negative flips
    for name, pred in (("old.csv", old), ("new.csv", new)):
        pd.DataFrame({"id": ids, "label": labels, "pred": pred}).to_csv(tmp_path / name, index=False)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(server + "/inputs?cmp=sample:new")
    page.wait_for_selector('[data-testid="stFileUploader"]', timeout=WAIT_MS)
    wait_ready(page)
    for label, name in (("Old (deployed)", "old.csv"), ("New (proposed)", "new.csv")):  # a loaded file leaves its slot
        page.locator('[data-testid="stFileUploader"]', has_text=label).first.locator(
            'input[type="file"]'
        ).set_input_files(str(tmp_path / name))
        page.get_by_text(f"{name} ·").first.wait_for(timeout=WAIT_MS)  # the slot shows the loaded file
        wait_ready(page)
    page.get_by_role("button", name="Compare the uploaded files").click()
    page.wait_for_function("() => location.href.includes('cmp=upload')", timeout=WAIT_MS)
    wait_ready(page)
    for title, url_path in (("Overview", "overview"), ("Flips", "flips")):
        page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
        page.wait_for_selector(f'[data-testid="stMain"] h1:has-text("{title}")', timeout=WAIT_MS)
        wait_ready(page)
        if title == "Flips":
            page.wait_for_selector(".js-plotly-plot .xtick text", timeout=WAIT_MS)
            page.get_by_text("matching images").first.wait_for(timeout=WAIT_MS)
        else:  # the per-class table names the classes (its cells are an accessible grid)
            page.wait_for_selector('[data-testid="stDataFrame"] [role="gridcell"]', state="attached", timeout=WAIT_MS)
        no_exception(page, f"{title} with hostile class names")
        text = page.evaluate("document.body.innerText")
        ticks = page.evaluate(
            "Array.from(document.querySelectorAll('.xtick text, .ytick text')).map(t => t.textContent)"
        )
        cells = page.evaluate(
            'Array.from(document.querySelectorAll(\'[data-testid="stDataFrame"] [role="gridcell"]\'))'
            ".map(c => c.textContent)"
        )
        shown = "\n".join([text, *ticks, *cells])
        for name in HOSTILE_CLASSES[:2]:
            assert name in shown, (title, name)
        assert page.evaluate("Array.from(document.images).filter(i => i.getAttribute('src') === 'x').length") == 0
        shot(page, f"11-hostile-{url_path}")
    assert dialogs == []
