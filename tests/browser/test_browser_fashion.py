"""Real browser (headless Debian Chromium via Playwright): a bare URL opens on Fashion-MNIST old → new.

The Overview names the regression (how many photos break, the class that loses most) and
its button opens the Flips grid on that class's photos. Expected numbers are brute-force
NumPy over the committed predictions tables of the sample. Cold: the server runs both
models on the 10,000 test photos first (minutes on a busy 2-core machine).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.harness import COLD_MS, WAIT_MS, browser_page, no_exception, shot, wait_ready
from tests.helpers import fashion_flips_brute_force, needs_fashion

pytestmark = needs_fashion


@pytest.fixture(scope="module")
def expected():
    """Negative flips per class by brute force from the committed tables."""
    return fashion_flips_brute_force()


@pytest.fixture(scope="module")
def server(fashion_server):
    return fashion_server


@pytest.fixture(scope="module")
def page(server):
    yield from browser_page(1400, 1800)


def test_a_bare_url_opens_on_fashion_and_names_the_regression(page, server, expected):
    page.goto(server + "/")
    page.wait_for_selector('[data-testid="stMetric"]', timeout=COLD_MS)
    wait_ready(page, timeout=COLD_MS)
    href = page.evaluate("location.href")
    assert "cmp=fashion%3Anew" in href or "cmp=fashion:new" in href
    main = page.locator('[data-testid="stMain"]')
    assert f"breaks {expected['neg']:,} images of {expected['n']:,}" in main.inner_text()
    worst = expected["order"][0]
    neg, support = expected["per_class"][worst]
    assert f"The update hurts {worst} most: {neg:,} of its {support:,} images break" in main.inner_text()
    no_exception(page, "overview on Fashion-MNIST")
    shot(page, "30-fashion-overview")

    page.get_by_role("button", name=f"Show the {worst} images that break").click()
    page.wait_for_selector('[data-testid="stMain"] h1:has-text("Flips")', timeout=WAIT_MS)
    page.wait_for_selector('[data-testid="stMain"] [data-testid="stImage"] img', timeout=WAIT_MS)
    wait_ready(page)
    expect(page.locator('[data-testid="stMain"] [data-testid="stImage"]')).to_have_count(min(24, neg), timeout=WAIT_MS)
    size = page.locator('[data-testid="stMain"] [data-testid="stImage"] img').first.bounding_box()
    assert size["width"] >= 100  # 28×28 photos shown at least 4× (nearest neighbour)
    no_exception(page, "flips on Fashion-MNIST")
    shot(page, "31-fashion-flips-worst-class")
