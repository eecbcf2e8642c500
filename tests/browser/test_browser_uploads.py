"""Real-browser test of the upload flow: files that stay, Compare -> Overview, Versions.

Headless Debian Chromium via Playwright against the app, with the helpers of tests/browser/harness.py.
Uploads old.pt, new.pt and a zip of the test digits, switches pages, comes back (the files are still
loaded), replaces only the new model by new.onnx, compares, lands on the Overview (NFR from the core run
directly on the same files), opens Versions with both uploaded models in the set and clicks a cell of
that pair (its Overview opens). Then a second
comparison whose user clicks another page right after Compare: the comparison still arrives.
Every wait is for the page's own content (a title, a card, the URL), never a fixed sleep.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.browser.harness import (
    WAIT_MS,
    browser_page,
    click_centre,
    metric_value,
    no_exception,
    serve_app,
    shot,
    wait_ready,
)
from tests.helpers import DIGITS_TEST as DATA
from tests.helpers import SAMPLE

MODELS = SAMPLE / "models"
#: A long wait: the first comparison of a fresh server runs both models on a busy 2-core machine (in the suite the
#: other worker may be running the Fashion sample's cold 10,000-image comparison at the same time).
SLOW_MS = 900_000


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """old.pt, new.pt, edge.pt (copies of the bundled ones), new.onnx (new.pt exported) and digits.zip."""
    import shutil

    from graceful_core.training.export import convert_model_file

    if not all((MODELS / m).is_file() for m in ("old.pt", "new.pt", "edge.pt")) or not DATA.is_dir():
        pytest.skip("bundled sample models/digits are missing")
    d = tmp_path_factory.mktemp("uploads")
    for name in ("old.pt", "new.pt", "edge.pt"):
        shutil.copy(MODELS / name, d / name)
    convert_model_file(MODELS / "new.pt", "onnx", d / "new.onnx")
    with zipfile.ZipFile(d / "digits.zip", "w") as z:
        for p in sorted(DATA.rglob("*.png")):
            z.write(p, p.relative_to(DATA).as_posix())
    return d


@pytest.fixture(scope="module")
def expected(files):
    """The core's comparisons of the uploaded files, run directly (not through the app)."""
    from graceful_core.comparing.sources import compare_sources

    out = {
        new: compare_sources(files / "old.pt", files / new, files / "digits.zip").summary
        for new in ("new.onnx", "edge.pt")
    }
    out["new.onnx→old.pt"] = compare_sources(files / "new.onnx", files / "old.pt", files / "digits.zip").summary
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serve_app(tmp_path_factory, "app-uploads")


@pytest.fixture(scope="module")
def page(server):
    yield from browser_page(1400, 2000)


def slot(page, label: str):
    """The bordered box of one upload slot (by its label)."""
    return page.locator('[data-testid="stVerticalBlock"]', has_text=label).last  # the innermost block with it


def upload(page, label: str, path: Path, kind: str) -> None:
    """Upload ``path`` into the slot ``label`` and wait until the slot shows it loaded (``kind`` in words)."""
    page.locator('[data-testid="stFileUploader"]', has_text=label).first.locator('input[type="file"]').set_input_files(
        str(path)
    )
    box = slot(page, label)
    box.get_by_text(path.name, exact=False).first.wait_for(timeout=WAIT_MS)
    box.get_by_text(kind, exact=False).first.wait_for(timeout=WAIT_MS)
    wait_ready(page)


def sidebar_to(page, title: str, timeout: int = WAIT_MS) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.wait_for_selector(f'[data-testid="stMain"] h1:has-text("{title}")', timeout=timeout)


OLD, NEW, DATASET = "Old (deployed) model or table", "New (proposed) model or table", "Dataset (.zip"


def test_uploads_stay_one_is_replaced_compare_opens_the_overview_and_versions(page, server, files, expected):
    page.goto(server + "/inputs?cmp=sample:new")
    page.wait_for_selector('[data-testid="stFileUploader"]', timeout=SLOW_MS)
    wait_ready(page, timeout=SLOW_MS)
    upload(page, OLD, files / "old.pt", "TorchScript model")
    upload(page, NEW, files / "new.pt", "TorchScript model")
    upload(page, DATASET, files / "digits.zip", "540 images")
    assert page.locator('[data-testid="stFileUploader"]').count() == 2  # the manifest's images, the reference: empty
    shot(page, "30-uploads-loaded")

    # another page and back: the three files are still loaded
    sidebar_to(page, "Flips")
    wait_ready(page)
    sidebar_to(page, "Choose inputs")
    wait_ready(page)
    for label, name in ((OLD, "old.pt"), (NEW, "new.pt"), (DATASET, "digits.zip")):
        slot(page, label).get_by_text(name).first.wait_for(timeout=WAIT_MS)
    assert page.locator('[data-testid="stFileUploader"]').count() == 2
    no_exception(page, "inputs after a page switch")

    # replace only the new model
    slot(page, NEW).get_by_role("button", name="Replace").click()
    page.locator('[data-testid="stFileUploader"]', has_text=NEW).first.wait_for(timeout=WAIT_MS)
    wait_ready(page)
    upload(page, NEW, files / "new.onnx", "ONNX model")
    slot(page, OLD).get_by_text("old.pt").first.wait_for(timeout=WAIT_MS)
    slot(page, DATASET).get_by_text("digits.zip").first.wait_for(timeout=WAIT_MS)
    shot(page, "31-uploads-new-replaced")

    # Compare: the app goes to the new comparison's Overview
    page.get_by_role("button", name="Compare the uploaded files").click()
    page.wait_for_function(
        "() => location.pathname.endsWith('/overview') && location.href.includes('cmp=upload')", timeout=SLOW_MS
    )
    page.wait_for_selector('[data-testid="stMetric"]', timeout=SLOW_MS)
    wait_ready(page, timeout=SLOW_MS)
    s = expected["new.onnx"]
    assert metric_value(page, "Negative flip rate (NFR)") == f"{100 * s.negative_flip_rate:.2f} %"
    assert metric_value(page, "New accuracy") == f"{100 * s.new_accuracy:.2f} %"
    assert "old.pt → new.onnx on digits.zip" in page.locator('[data-testid="stSidebar"]').inner_text()
    no_exception(page, "overview of the uploaded pair")
    shot(page, "32-uploads-overview")

    # Versions starts from the comparison on screen: the two uploaded models, on the uploaded zip
    sidebar_to(page, "Versions", timeout=SLOW_MS)
    page.wait_for_selector(".js-plotly-plot .scatterlayer path.point", timeout=SLOW_MS)
    wait_ready(page, timeout=SLOW_MS)
    chosen = page.locator('[data-testid="stMultiSelect"]').first.inner_text()
    assert "old.pt (uploaded)" in chosen and "new.onnx (uploaded)" in chosen, chosen
    ticks = page.evaluate(
        "Array.from(document.querySelectorAll('.js-plotly-plot .xtick text')).map(t => t.textContent)"
    )
    assert "new.onnx (uploaded)" in ticks and "old.pt (uploaded)" in ticks, ticks
    assert page.get_by_text("digits.zip").count() >= 1  # the comparison's dataset
    # the picker offers every model uploaded in this session (also the replaced new.pt) next to the bundled ones
    page.locator('[data-testid="stMultiSelect"]').first.click()
    options = page.locator('[role="option"]').all_inner_texts()
    page.keyboard.press("Escape")
    assert "new.pt (uploaded)" in options and "v3.pt" in options, options
    no_exception(page, "versions with uploaded models")
    shot(page, "33-uploads-versions")

    # a cell of the uploaded pair opens it on the Overview: row new.onnx (old model) -> column old.pt (new model)
    cells = page.locator(".js-plotly-plot").nth(0).locator(".scatterlayer path.point")
    click_centre(page, cells.nth(1 * 2 + 0))
    page.wait_for_selector('[data-testid="stMain"] h1:has-text("Overview")', timeout=SLOW_MS)
    page.wait_for_selector('[data-testid="stMetric"]', timeout=SLOW_MS)
    wait_ready(page, timeout=SLOW_MS)
    s = expected["new.onnx→old.pt"]
    assert metric_value(page, "Negative flip rate (NFR)") == f"{100 * s.negative_flip_rate:.2f} %"
    assert "new.onnx → old.pt on digits.zip" in page.locator('[data-testid="stSidebar"]').inner_text()
    no_exception(page, "overview of a pair opened from versions")


@pytest.fixture
def fresh_page(page):
    """A page of its own (a new browser context and session, nothing uploaded) in the module's browser: the
    test does not depend on another's uploads."""
    ctx = page.context.browser.new_context(viewport={"width": 1400, "height": 2000})
    yield ctx.new_page()
    ctx.close()


def test_a_page_switch_right_after_compare_does_not_lose_the_comparison(fresh_page, server, files, expected):
    """Clicking another page right after Compare (within about 0.3 s) still shows the comparison.

    The page shown is the one clicked (Flips) or, when the click reaches the server inside the few
    milliseconds in which Compare's own switch to the Overview is being sent, the Overview:
    ``st.switch_page`` sleeps two message-flush intervals before it asks for its rerun, and Streamlit
    merges two pending reruns into the later one. Either way the comparison must be the new one.
    """
    page = fresh_page
    page.goto(server + "/inputs?cmp=sample:new")
    page.wait_for_selector('[data-testid="stFileUploader"]', timeout=SLOW_MS)
    wait_ready(page, timeout=SLOW_MS)
    upload(page, OLD, files / "old.pt", "TorchScript model")
    upload(page, NEW, files / "edge.pt", "TorchScript model")
    upload(page, DATASET, files / "digits.zip", "540 images")
    before = page.url
    page.get_by_role("button", name="Compare the uploaded files").click()
    page.locator('[data-testid="stSidebarNav"] a', has_text="Flips").first.click()  # no wait in between
    title = '[data-testid="stMain"] h1:has-text("Flips"), [data-testid="stMain"] h1:has-text("Overview")'
    try:
        page.wait_for_selector(title, timeout=SLOW_MS)
    except Exception:
        shot(page, "34-uploads-switch-during-compare-failed")
        raise
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stSidebar\"]').innerText"
        ".includes('old.pt → edge.pt on digits.zip')",
        timeout=SLOW_MS,
    )
    wait_ready(page, timeout=SLOW_MS)
    assert "cmp=upload" in page.url and page.url != before
    sidebar_to(page, "Overview")
    page.wait_for_selector('[data-testid="stMetric"]', timeout=SLOW_MS)
    wait_ready(page)
    s = expected["edge.pt"]
    assert metric_value(page, "Negative flip rate (NFR)") == f"{100 * s.negative_flip_rate:.2f} %"
    no_exception(page, "overview after a page switch during Compare")
    shot(page, "34-uploads-switch-during-compare")
