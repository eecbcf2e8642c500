"""Real browser (Debian's Chromium via Playwright): clicking a regression slice filters the Flips grid.

The app is started as ``graceful app OLD NEW --data MANIFEST`` would start it, on the committed old
predictions table, a new table whose flips are planted at one site, and a manifest of the digits test
images with a ``site`` column (one site is named like a script tag: it must show as text).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from playwright.sync_api import expect

from tests.browser.harness import (
    EXCEPTION,
    FIRST_MS,
    WAIT_MS,
    browser_page,
    click_centre,
    free_port,
    grid_count,
    need_browser,
    shot,
    start_server,
    stop_server,
    wait_ready,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
TEST_DATA = SAMPLE / "digits" / "test"
OLD_CSV = SAMPLE / "predictions" / "old.csv"
HOSTILE_SITE = "<script>alert(1)</script>"


def planted_inputs(folder: Path) -> dict:
    """Manifest (site per image) and a new table that breaks 30 % of the old model's right answers at site "b"."""
    from graceful_core.io.datasets import load_dataset

    ds = load_dataset(TEST_DATA)
    (folder / "images").symlink_to(TEST_DATA, target_is_directory=True)
    rng = np.random.default_rng(4)
    site = rng.choice(["a", "b", HOSTILE_SITE], len(ds))
    pd.DataFrame(
        {
            "id": ds.ids,
            "path": [f"images/{i}" for i in ds.ids],
            "label": [ds.classes[i] for i in ds.labels],
            "site": site,
        }
    ).to_csv(folder / "manifest.csv", index=False)
    old = pd.read_csv(OLD_CSV, dtype={"id": str, "label": str, "pred": str})
    at_b = old["id"].map(dict(zip(ds.ids, site))) == "b"
    hit = (old["pred"] == old["label"]) & at_b & (rng.random(len(old)) < 0.3)
    new = old[["id", "label", "pred"]].copy()
    new.loc[hit, "pred"] = ((new.loc[hit, "pred"].astype(int) + 1) % 10).astype(str)
    new.to_csv(folder / "new.csv", index=False)
    return {
        "old": str(OLD_CSV),
        "new": str(folder / "new.csv"),
        "data": str(folder / "manifest.csv"),
        "b_flips": int(hit.sum()),
    }


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return planted_inputs(tmp_path_factory.mktemp("browser-slices"))


@pytest.fixture(scope="module")
def server(tmp_path_factory, planted):
    need_browser()
    cache = tmp_path_factory.mktemp("slices-app") / "cache"
    cache.mkdir()
    port = free_port()
    with pytest.MonkeyPatch.context() as mp:  # the server process keeps the environment it starts with
        mp.setenv("GRACEFUL_APP_OLD", planted["old"])
        mp.setenv("GRACEFUL_APP_NEW", planted["new"])
        mp.setenv("GRACEFUL_APP_DATA", planted["data"])
        proc = start_server(cache, port)
    yield f"http://127.0.0.1:{port}"
    stop_server(proc)


@pytest.fixture(scope="module")
def page(server):
    yield from browser_page(1400, 2000)


def test_clicking_a_slice_filters_the_flips_grid(page, server, planted):
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(server + "/slices")
    page.wait_for_selector(".js-plotly-plot g.point path", timeout=FIRST_MS)
    wait_ready(page)
    assert "site = b" in page.evaluate("Array.from(document.querySelectorAll('.ytick text')).map(t => t.textContent)")
    click_centre(page, page.locator(".js-plotly-plot g.point path").first)  # the first bar: the top slice
    page.wait_for_function("() => location.href.includes('slice=site%3Db')", timeout=WAIT_MS)
    wait_ready(page)
    page.get_by_role("button", name="Show its images in Flips").wait_for(timeout=WAIT_MS)
    # its first flips: images render after the button, so wait for them rather than count at once
    expect(page.locator('[data-testid="stMain"] [data-testid="stImage"]')).to_have_count(6, timeout=WAIT_MS)
    shot(page, "20-slices-selected")
    page.get_by_role("button", name="Show its images in Flips").click()
    page.wait_for_selector('[data-testid="stMain"] h1:has-text("Flips")', timeout=WAIT_MS)
    wait_ready(page)
    assert "/flips" in page.url and "slice=site%3Db" in page.url
    assert grid_count(page) == planted["b_flips"]
    assert page.locator(EXCEPTION).count() == 0
    shot(page, "21-flips-slice")
    # the filter is part of the link: a fresh load of it shows the same grid
    page.goto(page.url)
    page.get_by_text("matching images").first.wait_for(timeout=WAIT_MS)
    wait_ready(page)
    assert grid_count(page) == planted["b_flips"]
    assert dialogs == []


def test_a_hostile_site_name_is_text_on_the_slices_page(page, server):
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(server + "/slices")
    page.wait_for_selector('[data-testid="stDataFrame"] [role="gridcell"]', state="attached", timeout=FIRST_MS)
    wait_ready(page)
    cells = page.evaluate(
        'Array.from(document.querySelectorAll(\'[data-testid="stDataFrame"] [role="gridcell"]\'))'
        ".map(c => c.textContent)"
    )
    ticks = page.evaluate("Array.from(document.querySelectorAll('.ytick text')).map(t => t.textContent)")
    assert f"site = {HOSTILE_SITE}" in cells + ticks
    assert page.locator(EXCEPTION).count() == 0 and dialogs == []
