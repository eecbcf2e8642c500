"""Real-browser visit of the Versions page (headless Debian Chromium via Playwright).

Reuses the server helpers of tests/browser/harness.py: the page renders without an exception
box, its heatmaps are drawn, a screenshot goes to test-artifacts/, and clicking an NFR cell
opens that pair on the Overview with the core's NFR.
"""

from __future__ import annotations

import pytest

from tests.browser.harness import (
    FIRST_MS,
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
CHAIN = ["old.pt", "new.pt", "v3.pt", "edge.pt"]


@pytest.fixture(scope="module")
def report():
    from graceful_core.comparing.lineage import model_matrix_report

    if not all((MODELS / m).is_file() for m in CHAIN) or not DATA.is_dir():
        pytest.skip("bundled sample models/digits are missing")
    return model_matrix_report([str(MODELS / m) for m in CHAIN], DATA).to_report()


@pytest.fixture(scope="module")
def server(tmp_path_factory, report):
    """The app on the run's cache: the four models' predictions on the digits, run by ``report``, are there."""
    yield from serve_app(tmp_path_factory, "app-versions", shared_cache=True)


@pytest.fixture(scope="module")
def page(server):
    yield from browser_page(1500, 2600)


def test_versions_page_renders_and_a_cell_opens_the_pair(page, server, report):
    page.goto(server + "/versions?cmp=sample:new")
    page.wait_for_selector('[data-testid="stMain"] h1:has-text("Versions")', timeout=FIRST_MS)
    page.wait_for_selector(".js-plotly-plot .scatterlayer path.point", timeout=FIRST_MS)
    wait_ready(page, timeout=FIRST_MS)
    assert page.locator(".js-plotly-plot").count() >= 6  # 3 heatmaps, 2 lineage charts, the graph
    no_exception(page, "versions")
    shot(page, "20-versions")

    assert page.locator('[role="dialog"]').count() == 0  # no "Page not found" notice on a deep link
    i, j = CHAIN.index("new.pt"), CHAIN.index("v3.pt")  # NFR cell: old new.pt (row) -> new v3.pt (column)
    cells = page.locator(".js-plotly-plot").nth(0).locator(".scatterlayer path.point")
    click_centre(page, cells.nth(i * len(CHAIN) + j))
    page.wait_for_function("() => location.href.includes('cmp=pair')", timeout=WAIT_MS)
    page.wait_for_selector('[data-testid="stMain"] h1:has-text("Overview")', timeout=WAIT_MS)
    page.wait_for_selector('[data-testid="stMetric"]', timeout=WAIT_MS)
    wait_ready(page)
    assert "cmp=pair%3Anew%3Av3" in page.url or "cmp=pair:new:v3" in page.url
    assert metric_value(page, "Negative flip rate (NFR)") == f"{100 * report['negative_flip_rate'][i][j]:.2f} %"
    no_exception(page, "overview opened from versions")
    shot(page, "21-versions-cell-opens-overview")
