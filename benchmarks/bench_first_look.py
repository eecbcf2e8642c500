"""The app's first look on Fashion-MNIST in a real browser: Embeddings first map, "Show all", Versions first draw,
warm page switches; each beside a baseline measured in the same run on the same server.

One fresh server (``python -m graceful_ui.serve``, UMAP warm-up on as in production) on an empty cache:

1. cold Overview (the comparison old.pt -> new.pt computed: models run);
2. baseline: the Overview in a new browser session on that server (warm: the comparison is held) -- the
   cost of drawing a page on this machine at this load;
3. Embeddings first map (a sidebar click; no projection cached; the bundled pair's maps are precomputed in
   ``sample_data/fashion/maps``) -- goal <= 10 s;
4. "Show all 10,000" (the toggle; until the sampled map's caption is gone and the run ended) -- goal <= 30 s;
5. Versions first draw (a sidebar click; old and new already ran, v3.onnx and edge.pt2 run now, then every
   pair's counts and cross-tests) -- goal <= 15 s;
6. warm page switches, Overview -> Flips -> Overview and Overview -> Embeddings -> Versions (a click until
   the page's own content shows) -- goal <= 1 s.

Each line prints seconds and the ratio to the warm Overview of step 2. Say the load (``uptime``) with the
figures: the machine is shared. Usage: ``python benchmarks/bench_first_look.py [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_app import NFR, time_overview  # noqa: E402
from tests.browser.harness import free_port, launch, start_server, stop_server, wait_ready  # noqa: E402

NAV = '[data-testid="stSidebarNav"] a'
#: Each page's own content, by its chart keys (Streamlit's ``st-key-<key>`` class), so that an element left
#: over from the page before cannot end a measurement.
MAP = ".st-key-chart_emb_joint .js-plotly-plot .scatterlayer path.point"
VERSIONS = ".st-key-chart_v_nfr .js-plotly-plot"
FLIPS = ".st-key-chart_matrix .js-plotly-plot"


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip().split("load average:")[-1]


def click_and_wait(page, link: str, selector: str, timeout: int = 900_000, ready: bool = True) -> float:
    """Seconds from a sidebar click on ``link`` until ``selector`` is visible (and, with ``ready``, the run ended)."""
    page.wait_for_timeout(300)
    t0 = time.perf_counter()
    page.locator(NAV, has_text=link).first.click()
    page.locator(selector).first.wait_for(timeout=timeout)
    dt = time.perf_counter() - t0
    if ready:
        wait_ready(page, timeout=timeout, settle_ms=300)
        dt = time.perf_counter() - t0 - 0.3
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("GRACEFUL_WARM_UMAP", "1")  # as a production server starts
    rows: list[tuple[str, float, str]] = []
    print(f"load at start: {load()}")
    with tempfile.TemporaryDirectory(prefix="graceful-bench-") as tmp, sync_playwright() as p:
        cache = Path(tmp) / "cache"
        cache.mkdir()
        browser = launch(p)
        port = free_port()
        proc = start_server(cache, port)
        url = f"http://127.0.0.1:{port}/"
        try:
            cold = time_overview(browser, url)
            rows.append(("cold Overview (empty cache, models run)", cold, ""))
            base = statistics.median(time_overview(browser, url) for _ in range(args.repeat))
            rows.append(("BASELINE warm Overview, new session (median)", base, ""))
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.wait_for_selector(NFR, timeout=300_000)
            wait_ready(page, timeout=300_000, settle_ms=300)
            rows.append(
                ("Embeddings first map (click -> map drawn)", click_and_wait(page, "Embeddings", MAP), "<= 10 s")
            )
            page.wait_for_timeout(300)
            t0 = time.perf_counter()
            page.get_by_text("Show all 10,000 images").click()
            page.get_by_text("A fixed random sample").first.wait_for(state="detached", timeout=900_000)
            page.locator(MAP).first.wait_for(timeout=900_000)
            wait_ready(page, timeout=900_000, settle_ms=300)
            rows.append(('"Show all 10,000" (toggle -> full map drawn)', time.perf_counter() - t0 - 0.3, "<= 30 s"))
            versions = VERSIONS
            rows.append(
                ("Versions first draw (click -> heatmaps drawn)", click_and_wait(page, "Versions", versions), "<= 15 s")
            )
            switches: dict[str, list[float]] = {}
            for _ in range(args.repeat):
                for link, sel in (
                    ("Overview", NFR),
                    ("Flips", FLIPS),
                    ("Overview", NFR),
                    ("Embeddings", MAP),
                    ("Versions", versions),
                ):
                    switches.setdefault(f"-> {link}", []).append(click_and_wait(page, link, sel, 120_000, False))
            for name, vals in switches.items():
                rows.append(
                    (
                        f"warm page switch {name} (median of {len(vals)}, max {max(vals):.2f})",
                        statistics.median(vals),
                        "<= 1 s",
                    )
                )
            page.close()
        finally:
            stop_server(proc)
            browser.close()
    print(f"load at end: {load()}")
    for name, sec, goal in rows:
        print(f"{name:62s} {sec:8.2f} s  {sec / base:6.2f}x baseline  {goal}")


if __name__ == "__main__":
    main()
