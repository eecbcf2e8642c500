"""Real browser at 800 px and 1,400 px: the sidebar folds on the narrow window, every metric card's value
fits its box, and Back goes one view back (headless Debian Chromium via Playwright).

The app opens on the Fashion-MNIST sample, as a new user sees it; the server uses the test run's
shared cache, so the comparison is computed once per run (see tests/conftest.py).
"""

from __future__ import annotations

import pytest

from tests.browser.harness import (
    COLD_MS,
    WAIT_MS,
    chromium,
    click_centre,
    fresh_page,
    no_exception,
    shot,
    wait_ready,
)
from tests.helpers import needs_fashion

pytestmark = needs_fashion

#: For every metric card, whether its value's text fits: no element inside the value is wider than its
#: box (a cut value shows an ellipsis: its text is wider than the box that clips it).
CARDS_JS = """(() => Array.from(document.querySelectorAll('[data-testid="stMain"] [data-testid="stMetricValue"]'))
  .filter(v => v.offsetParent !== null)
  .map(v => ({text: v.innerText.trim(),
              fits: [v, ...v.querySelectorAll('*')].every(e => e.scrollWidth <= e.clientWidth + 1),
              width: v.getBoundingClientRect().width})))"""
EXPAND = '[data-testid="stExpandSidebarButton"], [data-testid="stSidebarCollapsedControl"] button'
SIDEBAR_FOLDED_JS = """() => document.querySelector('[data-testid="stSidebar"]').getAttribute('data-collapsed')"""


@pytest.fixture(scope="module")
def server(fashion_server):
    return fashion_server


@pytest.fixture(scope="module")
def browser():
    """One Chromium for the module; each test opens its page in a fresh context (a new user's window)."""
    yield from chromium()


def _overview(page, server):
    page.goto(server + "/")
    page.wait_for_selector('[data-testid="stMetric"]', timeout=COLD_MS)
    wait_ready(page, timeout=COLD_MS)


@pytest.mark.parametrize("width", [800, 1400])
def test_metric_card_values_fit_their_boxes(server, browser, width):
    with fresh_page(browser, width, 1400) as page:
        _overview(page, server)
        page.wait_for_function(SIDEBAR_FOLDED_JS + " !== null", timeout=WAIT_MS)
        if width < 1100:  # folded by the page's script, without a click
            page.wait_for_function(SIDEBAR_FOLDED_JS + " === 'true'", timeout=WAIT_MS)
            assert page.locator('[data-testid="stMain"]').bounding_box()["width"] >= width - 20
        else:
            assert page.evaluate(SIDEBAR_FOLDED_JS) == "false"
        page.locator('[data-testid="stExpander"] summary', has_text="More metrics").first.click()  # its cards too
        page.wait_for_function(CARDS_JS + "().every(c => c.text)", timeout=WAIT_MS)
        cards = page.evaluate(CARDS_JS)
        assert len(cards) >= 12, cards
        cut = [c for c in cards if not c["fits"]]
        assert not cut, f"metric values cut at {width} px: {cut}"
        assert all(c["text"] and "…" not in c["text"] for c in cards), [
            c for c in cards if not c["text"] or "…" in c["text"]
        ]
        no_exception(page, f"overview at {width} px")
        shot(page, f"40-overview-{width}px")


def test_back_goes_one_view_back(server, browser):
    with fresh_page(browser, 800, 1400) as page:
        _overview(page, server)
        start = page.url
        page.locator(EXPAND).first.click()  # open the folded sidebar by hand: it stays open
        page.wait_for_function(SIDEBAR_FOLDED_JS + " === 'false'", timeout=WAIT_MS)
        page.locator('[data-testid="stSidebarNav"] a', has_text="Flips").first.click()
        page.wait_for_selector('[data-testid="stMain"] h1:has-text("Flips")', timeout=WAIT_MS)
        wait_ready(page, timeout=COLD_MS)
        flips = page.url
        page.locator('[data-testid="stSidebarNav"] a', has_text="Slices").first.click()
        page.wait_for_selector('[data-testid="stMain"] h1:has-text("Slices")', timeout=WAIT_MS)
        wait_ready(page, timeout=COLD_MS)
        page.go_back()
        page.wait_for_selector('[data-testid="stMain"] h1:has-text("Flips")', timeout=WAIT_MS)
        wait_ready(page)
        assert page.url == flips
        page.go_back()
        page.wait_for_selector('[data-testid="stMain"] h1:has-text("Overview")', timeout=WAIT_MS)
        wait_ready(page)
        assert page.url == start
        no_exception(page, "after Back twice")


def test_back_restores_each_view_with_its_filters(server, browser, report):
    """Overview → Flips → a matrix cell → Slices, then Back three times: each view as it was, filters included."""
    m, k = report["transition_matrix"], len(report["classes"])
    a, b = max(((i, j) for i in range(k) for j in range(k) if i != j), key=lambda ij: m[ij[0]][ij[1]])
    with fresh_page(browser, 1400, 1800) as page:
        page.goto(server + "/overview?cmp=sample:new")
        page.wait_for_selector('[data-testid="stMetric"]', timeout=COLD_MS)
        wait_ready(page, timeout=COLD_MS)
        views = [page.url]
        page.locator('[data-testid="stSidebarNav"] a', has_text="Flips").first.click()
        page.wait_for_selector(".js-plotly-plot .scatterlayer path.point", timeout=WAIT_MS)
        wait_ready(page)
        views.append(page.url)
        click_centre(page, page.locator(".js-plotly-plot").nth(0).locator(".scatterlayer path.point").nth(a * k + b))
        page.wait_for_function("() => location.href.includes('old=')", timeout=WAIT_MS)
        wait_ready(page)
        views.append(page.url)
        page.locator('[data-testid="stSidebarNav"] a', has_text="Slices").first.click()
        page.wait_for_selector('[data-testid="stMain"] h1:has-text("Slices")', timeout=WAIT_MS)
        wait_ready(page)
        assert page.evaluate("history.length") == 1 + 4  # the blank start page and one entry per view
        for want, title in zip(reversed(views), ("Flips", "Flips", "Overview")):
            page.go_back()
            page.wait_for_function(f"() => location.href === {want!r}", timeout=WAIT_MS)
            page.wait_for_selector(f'[data-testid="stMain"] h1:has-text("{title}")', timeout=WAIT_MS)
            wait_ready(page)
            assert page.url == want
        no_exception(page, "after Back three times")
