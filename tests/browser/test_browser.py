"""Real-browser test: headless Chromium (Debian's) via Playwright against `streamlit run app.py`.

Opens the app, checks the overview's NFR against the CLI's JSON, visits every page,
clicks a matrix cell and a bar, follows deep links, uploads a bad file, and asserts
that no Streamlit exception box appears anywhere. Screenshots go to test-artifacts/.
Never runs `playwright install`: it uses /usr/bin/chromium.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
EXCEPTION = '[data-testid="stException"]'
WAIT_MS = 60_000


def _need(condition: bool, reason: str) -> None:
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (required when CI is set)")
        pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(cache_dir: Path, port: int) -> subprocess.Popen:
    """The app (``python -m graceful_ui.serve``, as scripts/run.sh starts it) on ``port``; returns once healthy."""
    env = dict(os.environ, GRACEFUL_CACHE_DIR=str(cache_dir))
    env.setdefault("GRACEFUL_WARM_UMAP", "0")  # many short-lived servers: no background UMAP compilation each
    log = open(cache_dir.parent / f"streamlit-{port}.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "graceful_ui.serve",
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
    stop_server(proc)
    raise RuntimeError("streamlit did not become healthy within 90 s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def launch(p):
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def metric_value(page, label: str) -> str:
    card = page.locator('[data-testid="stMetric"]', has_text=label).first
    return card.locator('[data-testid="stMetricValue"]').inner_text(timeout=WAIT_MS).strip()


READY_JS = (
    "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
    " && !!document.querySelector('[data-testid=\"stMain\"] h1')"
)


def wait_ready(page, timeout: int = WAIT_MS, settle_ms: int = 1000) -> None:
    """Wait until the script run finished and stayed finished for ``settle_ms``.

    Streamlit shows its running indicator only after a short delay, so one look right after an
    event can see "not running" before the rerun has started: the page must look ready for
    ``settle_ms`` in a row.
    """
    deadline = time.monotonic() + timeout / 1000
    ready_since = None
    while True:
        if page.evaluate(READY_JS):
            ready_since = ready_since or time.monotonic()
            if time.monotonic() - ready_since >= settle_ms / 1000:
                return
        else:
            ready_since = None
            remaining = max(1, int(1000 * (deadline - time.monotonic())))
            page.wait_for_function(READY_JS, timeout=remaining)
            continue
        if time.monotonic() > deadline:
            raise TimeoutError(f"page not settled within {timeout} ms")
        page.wait_for_timeout(100)


def wait_until(page, probe, expected, timeout: int = WAIT_MS):
    """Poll ``probe()`` until it returns ``expected`` (or the timeout); return its last value."""
    deadline = time.monotonic() + timeout / 1000
    value = probe()
    while value != expected and time.monotonic() < deadline:
        page.wait_for_timeout(200)
        value = probe()
    return value


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def no_exception(page, where: str) -> None:
    assert page.locator(EXCEPTION).count() == 0, f"Streamlit exception box on {where}"
    assert page.get_by_text("Page not found").count() == 0, f"'Page not found' dialog on {where}"


@pytest.fixture(scope="module")
def cli_report(sample_spec, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "report.json"
    env = dict(os.environ, GRACEFUL_CACHE_DIR=str(tmp_path_factory.mktemp("cli-cache")))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "graceful_core",
            "compare",
            sample_spec.old,
            sample_spec.new,
            "--data",
            sample_spec.data,
            "--json",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return json.loads(out.read_text())


def serve_app(tmp_path_factory, name: str, shared_cache: bool = False):
    """Generator for a module fixture: the app on a free port with its own cache; yields its URL.

    ``shared_cache``: the test run's cache instead (tests/conftest.py; shared by the xdist
    workers), for servers whose tests only read results, so a heavy comparison is computed
    once per run.
    """
    _need(Path(CHROMIUM).exists(), f"{CHROMIUM} is not installed (Debian package chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _need(False, "the playwright Python package is not installed")
    cache = tmp_path_factory.mktemp(name) / "cache"
    if shared_cache and os.environ.get("GRACEFUL_CACHE_DIR"):
        cache = Path(os.environ["GRACEFUL_CACHE_DIR"])
    cache.mkdir(exist_ok=True)
    port = free_port()
    proc = start_server(cache, port)
    yield f"http://127.0.0.1:{port}"
    stop_server(proc)


def browser_page(width: int, height: int):
    """Generator for a module fixture: one Chromium page of that size (Streamlit scrolls inside: tall shows more)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        yield browser.new_page(viewport={"width": width, "height": height})
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, sample_spec):
    yield from serve_app(tmp_path_factory, "app")


@pytest.fixture(scope="module")
def page(server):
    yield from browser_page(1400, 1800)


def test_overview_nfr_equals_the_cli_json(page, server, cli_report):
    page.goto(server + "/?cmp=sample:new")
    page.wait_for_selector('[data-testid="stMetric"]', timeout=120_000)
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
    wait_ready(page, timeout=240_000 if title == "Embeddings" else WAIT_MS)
    if title == "Embeddings":  # the UMAP itself may take minutes when CI's other worker is busy
        page.wait_for_selector(".js-plotly-plot", timeout=240_000)
    if title == "Flips":
        page.wait_for_selector(".js-plotly-plot", timeout=WAIT_MS)
        page.wait_for_selector('[data-testid="stImage"]', timeout=WAIT_MS)
    assert "cmp=sample" in page.evaluate("location.href"), "comparison lost from the URL on a page switch"
    no_exception(page, title)
    shot(page, name)


def _grid_count(page) -> int:
    text = page.get_by_text("matching images").first.inner_text(timeout=WAIT_MS)
    return int(text.split(" of ")[1].split()[0])


def _click_centre(page, locator) -> None:
    bb = locator.bounding_box()
    page.mouse.click(bb["x"] + bb["width"] / 2, bb["y"] + bb["height"] / 2)


def test_clicking_a_cell_and_a_bar_filters_the_grid(page, server, cli_report):
    page.goto(server + "/flips?cmp=sample:new")
    page.wait_for_selector(".js-plotly-plot .scatterlayer path.point", timeout=WAIT_MS)
    wait_ready(page)
    m, classes = cli_report["transition_matrix"], cli_report["classes"]
    k = len(classes)
    a, b = max(((i, j) for i in range(k) for j in range(k) if i != j), key=lambda ij: m[ij[0]][ij[1]])
    cells = page.locator(".js-plotly-plot").nth(0).locator(".scatterlayer path.point")
    _click_centre(page, cells.nth(a * k + b))
    page.wait_for_function(f"() => location.href.includes('old={quote(classes[a])}')", timeout=WAIT_MS)
    wait_ready(page)
    assert wait_until(page, lambda: _grid_count(page), m[a][b]) == m[a][b]
    shot(page, "06-flips-cell")

    row = max(range(k), key=lambda i: cli_report["per_class"][i]["negative_flips"])
    bars = page.locator(".js-plotly-plot").nth(1).locator("g.point path")  # trace 0 = negative flips
    _click_centre(page, bars.nth(row))
    page.wait_for_function(f"() => location.href.includes('cls={quote(classes[row])}')", timeout=WAIT_MS)
    wait_ready(page)
    expected = cli_report["per_class"][row]["negative_flips"]
    assert wait_until(page, lambda: _grid_count(page), expected) == expected
    no_exception(page, "flips after clicks")
    shot(page, "07-flips-bar")


def test_deep_links_open_the_same_view(page, server, cli_report):
    cls = cli_report["classes"][0]
    page.goto(f"{server}/flips?cmp=sample:new&cls={quote(cls)}&flip=")
    page.wait_for_selector("text=matching images", timeout=WAIT_MS)
    wait_ready(page)
    support = next(r["support"] for r in cli_report["per_class"] if r["class"] == cls)
    assert _grid_count(page) == support
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
    wait_ready(page, timeout=240_000)
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
    n_selected = int(page.get_by_text("images selected").first.inner_text().split()[0])
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
