"""Benchmark the app in a real browser (headless Debian Chromium via Playwright) on a bundled sample.

``--sample fashion`` (default): the app's default comparison, Fashion-MNIST old.pt -> new.pt on
10,000 test photos, opened by the bare URL ``/``; ``--sample digits``: ``/?cmp=sample:new``.

Measures, from navigation to the overview's numbers on screen:
- cold: fresh server, empty GRACEFUL_CACHE_DIR (models run, everything computed);
- warm, new server: fresh server process, disk cache filled by the cold run;
- warm, same server: a new browser session on a server that already holds the comparison;
and a page switch (sidebar click until the target page's content is drawn), Overview -> Flips
(matrix, bars, image grid) and Flips -> Overview; and the Embeddings page (its map drawn):
first visit on a server whose disk cache has no projection yet (UMAP fitted), then a new
session on the same server (cached).

Goals: warm < 3 s, page switch < 1 s, cold < 30 s on 2 cores; Embeddings first
draw < 20 s cold, instant when cached.
Usage: python benchmarks/bench_app.py [--sample fashion|digits] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser.harness import free_port, launch, start_server, stop_server  # noqa: E402

NFR = '[data-testid="stMetric"]:has-text("Negative flip rate") [data-testid="stMetricValue"]'
#: The query that opens each sample's default pair ("" = the app's own default, Fashion-MNIST).
SAMPLES = {"fashion": "", "digits": "?cmp=sample:new"}


def time_overview(browser, url: str) -> float:
    """Seconds from navigation start until the NFR value is visible (new browser context)."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    t0 = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_selector(NFR, timeout=300_000)
    dt = time.perf_counter() - t0
    ctx.close()
    return dt


def time_switches(browser, url: str, repeat: int) -> tuple[list[float], list[float]]:
    """Sidebar switches Overview -> Flips (until grid images and charts show) and back."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.wait_for_selector(NFR, timeout=120_000)
    to_flips, to_overview = [], []
    for _ in range(repeat):
        page.wait_for_timeout(300)
        t0 = time.perf_counter()
        page.locator('[data-testid="stSidebarNav"] a', has_text="Flips").first.click()
        page.wait_for_selector('[data-testid="stImage"] img', timeout=60_000)
        page.wait_for_selector(".js-plotly-plot .scatterlayer path.point", timeout=60_000)
        to_flips.append(time.perf_counter() - t0)
        page.wait_for_timeout(300)
        t0 = time.perf_counter()
        page.locator('[data-testid="stSidebarNav"] a', has_text="Overview").first.click()
        page.wait_for_selector(NFR, timeout=60_000)
        to_overview.append(time.perf_counter() - t0)
    page.close()
    return to_flips, to_overview


def time_embeddings(browser, url: str) -> float:
    """Seconds from navigation to the Embeddings page's map drawn and the run finished (new browser context)."""
    from tests.browser.harness import wait_ready

    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    t0 = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.locator(".js-plotly-plot").first.wait_for(timeout=600_000)
    wait_ready(page, timeout=600_000, settle_ms=300)
    dt = time.perf_counter() - t0 - 0.3
    ctx.close()
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", choices=sorted(SAMPLES), default="fashion")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    query = SAMPLES[args.sample]
    print(f"sample: {args.sample} (URL /{query})")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="graceful-bench-") as tmp, sync_playwright() as p:
        cache = Path(tmp) / "cache"
        cache.mkdir()
        browser = launch(p)
        port = free_port()
        t_start = time.perf_counter()
        proc = start_server(cache, port)
        print(f"server start (to /_stcore/health): {time.perf_counter() - t_start:.2f} s")
        url = f"http://127.0.0.1:{port}/{query}"
        try:
            cold = time_overview(browser, url)
            warm_same = [time_overview(browser, url) for _ in range(args.repeat)]
        finally:
            stop_server(proc)
        port = free_port()
        proc = start_server(cache, port)
        url = f"http://127.0.0.1:{port}/{query}"
        emb_url = f"http://127.0.0.1:{port}/embeddings{query}"
        try:
            warm_new = time_overview(browser, url)
            flips, overview = time_switches(browser, url, args.repeat)
            emb_cold = time_embeddings(browser, emb_url)
            emb_warm = [time_embeddings(browser, emb_url) for _ in range(min(args.repeat, 3))]
        finally:
            stop_server(proc)
        browser.close()

    med = statistics.median
    print(f"cold first render (empty cache, fresh server):      {cold:6.2f} s   (goal < 30 s)")
    print(f"warm first render (fresh server, disk cache filled): {warm_new:6.2f} s   (goal < 3 s)")
    print(
        f"warm first render (same server, new session):        {med(warm_same):6.2f} s median of {len(warm_same)}"
        f" (min {min(warm_same):.2f}, max {max(warm_same):.2f})"
    )
    print(
        f"page switch Overview -> Flips (charts + grid):      {med(flips):6.2f} s median of {len(flips)}"
        f" (max {max(flips):.2f})   (goal < 1 s)"
    )
    print(
        f"page switch Flips -> Overview (metrics):             {med(overview):6.2f} s median of {len(overview)}"
        f" (max {max(overview):.2f})   (goal < 1 s)"
    )
    print(f"Embeddings first draw (no projection cached yet):    {emb_cold:6.2f} s   (goal < 20 s)")
    print(f"Embeddings again (new session, projection cached):   {med(emb_warm):6.2f} s median of {len(emb_warm)}")


if __name__ == "__main__":
    main()
