"""The app's first look on Fashion-MNIST in a real browser, each figure beside baselines measured in the same run.

Baselines:

- **bare loop** (``benchmarks/bench_fashion_compare.py``'s): a fresh interpreter decodes the 10,000 PNGs
  of ``sample_data/fashion/test`` once and runs old.pt and new.pt in batches of 256 (timed after imports
  and model loads); measured before the server starts and again at the end (the median is used);
- **warm Overview**: the Overview in a new browser session on the server that already holds the
  comparison (the cost of drawing a page on this machine at this load).

Then, on one fresh server (``python -m graceful_ui.serve``, as it starts by default: no UMAP warm-up;
``--warm-umap`` sets ``GRACEFUL_WARM_UMAP=1``) and an empty cache:

1. cold first render: navigation to the Overview's NFR on screen (old.pt -> new.pt computed: models run)
   -- goal <= 3x the bare loop;
2. Embeddings first map: a sidebar click until the map's points are in the chart (the bundled pair's
   maps are precomputed in ``sample_data/fashion/maps``) -- goal <= 10 s;
3. "Show all 10,000": the toggle until the chart holds the points of all images (20,000: old and new)
   -- goal <= 30 s (the map is WebGL then: its points are counted in Plotly's data, not in the SVG);
4. Versions first draw: a sidebar click until the three heatmaps are drawn (old and new ran for the
   Overview; the other models come from the bundled tables when their record matches, else they run)
   -- goal <= 15 s;
5. warm page switches Overview -> Flips -> Overview -> Embeddings (all 10,000 images) -> Versions, then
   Overview -> Embeddings with the default 2,000-image map, a click until the page's own content shows
   -- goal <= 1 s.

Every wait is bounded (``--step-timeout``, default 300 s): a step that does not finish stops the run with
what it waited for, a screenshot and the end of the server's log. Each row is printed as soon as it is
measured, with the load average (1 min) at its start: the machine is shared. Usage::

    python benchmarks/bench_first_look.py [--repeat 3] [--step-timeout 300] [--warm-umap]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_app import NFR  # noqa: E402
from tests.browser.harness import free_port, launch, start_server, stop_server  # noqa: E402

NAV = '[data-testid="stSidebarNav"] a'
SHOTS = ROOT / "test-artifacts"
N_IMAGES = 10_000
#: Each page's own content, by its chart keys (Streamlit's ``st-key-<key>`` class), so that an element left
#: over from the page before cannot end a measurement.
MAP = ".st-key-chart_emb_joint .js-plotly-plot"
VERSIONS = [f".st-key-chart_v_{k} .js-plotly-plot" for k in ("nfr", "btc", "cross")]
FLIPS = ".st-key-chart_matrix .js-plotly-plot"
#: Points held by the Plotly chart under a selector (SVG or WebGL alike): the sum of each marker trace's length.
POINTS_JS = """sel => {
  const gd = document.querySelector(sel);
  if (!gd || !gd._fullData) return 0;
  return gd._fullData.filter(t => (t.mode || '').includes('markers')).reduce((s, t) => s + (t._length || 0), 0);
}"""
#: The script run ended (no running indicator) and the page has its title.
READY_JS = (
    "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
    " && !!document.querySelector('[data-testid=\"stMain\"] h1')"
)


class StepTimeout(RuntimeError):
    """A benchmark step did not finish in time."""


def load() -> float:
    return os.getloadavg()[0]


def bare_loop() -> float:
    """Wall seconds of bench_fashion_compare.py's bare decode-and-infer loop, in a fresh interpreter."""
    script = ROOT / "benchmarks" / "bench_fashion_compare.py"
    r = subprocess.run(
        [sys.executable, str(script), "--baseline-child"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if r.returncode != 0:
        raise SystemExit(f"the bare loop failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return float(json.loads(r.stdout.strip().splitlines()[-1])["wall"])


class Run:
    """One browser page on the server; every wait bounded by ``timeout_s`` with a clear message."""

    def __init__(self, page, log: Path, timeout_s: float):
        self.page, self.log, self.timeout_s = page, log, timeout_s

    def fail(self, step: str, what: str) -> None:
        SHOTS.mkdir(exist_ok=True)
        shot = SHOTS / "bench-first-look-timeout.png"
        try:
            self.page.screenshot(path=str(shot), full_page=True)
        except Exception as e:  # the page itself may be gone
            shot = Path(f"(no screenshot: {e})")
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else "(no server log)"
        raise StepTimeout(
            f"{step}: not done within {self.timeout_s:.0f} s (load {load():.2f}); waited for {what}.\n"
            f"screenshot: {shot}\nserver log ({self.log}), last lines:\n{tail}"
        )

    def until(self, step: str, what: str, probe, t0: float) -> None:
        """Poll ``probe()`` every 50 ms until true; fail after the step's time limit (from ``t0``)."""
        while not probe():
            if time.perf_counter() - t0 > self.timeout_s:
                self.fail(step, what)
            self.page.wait_for_timeout(50)

    def ready(self) -> bool:
        return bool(self.page.evaluate(READY_JS))

    def settled(self, step: str, t0: float, settle_s: float = 0.3) -> float:
        """Wait until the run ended and stayed ended for ``settle_s``; return the time it ended (perf_counter).

        Streamlit shows its running indicator after a short delay, so one look can see "not running"
        before a rerun started: the page must look ready ``settle_s`` in a row.
        """
        while True:
            self.until(step, "the script run to end (no running indicator)", self.ready, t0)
            since = time.perf_counter()
            while self.ready() and time.perf_counter() - since < settle_s:
                self.page.wait_for_timeout(50)
            if self.ready():
                return since

    def visible(self, sel: str) -> bool:
        loc = self.page.locator(sel)
        return loc.count() > 0 and loc.first.is_visible()

    def points(self, sel: str) -> int:
        return int(self.page.evaluate(POINTS_JS, sel))

    def click_nav(self, link: str) -> float:
        self.page.wait_for_timeout(300)
        t0 = time.perf_counter()
        self.page.locator(NAV, has_text=link).first.click(timeout=self.timeout_s * 1000)
        return t0


def time_overview(browser, url: str, timeout_s: float, log: Path, step: str) -> float:
    """Seconds from navigation start until the NFR value is visible (a new browser context)."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    run = Run(page, log, timeout_s)
    t0 = time.perf_counter()
    page.goto(url, wait_until="commit", timeout=timeout_s * 1000)
    run.until(step, f"the Overview's NFR value ({NFR})", lambda: run.visible(NFR), t0)
    dt = time.perf_counter() - t0
    ctx.close()
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--step-timeout", type=float, default=300.0, help="seconds any one step may take")
    ap.add_argument(
        "--warm-umap", action="store_true", help="start the server with GRACEFUL_WARM_UMAP=1 (UMAP compiled at start)"
    )
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    os.environ["GRACEFUL_WARM_UMAP"] = "1" if args.warm_umap else "0"
    timeout = args.step_timeout
    rows: list[tuple[str, float, float, str]] = []
    bare: list[float] = []

    def row(name: str, sec: float, at_load: float, goal: str = "") -> None:
        rows.append((name, sec, at_load, goal))
        print(f"{name:58s} {sec:8.2f} s  load {at_load:5.2f}  {goal}", flush=True)

    print(f"load at start: {load():.2f}; GRACEFUL_WARM_UMAP={os.environ['GRACEFUL_WARM_UMAP']}", flush=True)
    at = load()
    bare.append(bare_loop())
    row("BASELINE bare loop (decode 10,000 PNGs once, both models)", bare[-1], at)
    with tempfile.TemporaryDirectory(prefix="graceful-bench-") as tmp, sync_playwright() as p:
        cache = Path(tmp) / "cache"
        cache.mkdir()
        browser = launch(p)
        port = free_port()
        at, t0 = load(), time.perf_counter()
        proc = start_server(cache, port)
        log = Path(tmp) / f"streamlit-{port}.log"
        row("server start (to /_stcore/health)", time.perf_counter() - t0, at)
        url = f"http://127.0.0.1:{port}/"
        try:
            at = load()
            cold = time_overview(browser, url, timeout, log, "cold first render")
            row("cold first render (empty cache, models run)", cold, at, "<= 3x bare loop")
            at = load()
            warm = statistics.median(
                time_overview(browser, url, timeout, log, "warm Overview") for _ in range(args.repeat)
            )
            row(f"BASELINE warm Overview, new session (median of {args.repeat})", warm, at)

            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            run = Run(page, log, timeout)
            page.goto(url, timeout=timeout * 1000)
            t0 = time.perf_counter()
            run.until("open the Overview", f"the NFR value ({NFR})", lambda: run.visible(NFR), t0)
            run.settled("open the Overview", t0)

            at = load()
            t0 = run.click_nav("Embeddings")
            run.until("Embeddings first map", f"points in {MAP}", lambda: run.points(MAP) > 0, t0)
            dt = time.perf_counter() - t0
            n_first = run.points(MAP)
            row(f"Embeddings first map (click -> {n_first:,} points drawn)", dt, at, "<= 10 s")
            run.settled("Embeddings first map", t0)

            at = load()
            page.wait_for_timeout(300)
            t0 = time.perf_counter()
            page.get_by_text(f"Show all {N_IMAGES:,} images").click(timeout=timeout * 1000)
            run.until(
                '"Show all"',
                f"{2 * N_IMAGES:,} points (old and new of every image) in {MAP}",
                lambda: run.points(MAP) == 2 * N_IMAGES,
                t0,
            )
            row(
                f'"Show all {N_IMAGES:,}" (toggle -> {2 * N_IMAGES:,} points drawn)',
                time.perf_counter() - t0,
                at,
                "<= 30 s",
            )
            run.settled('"Show all"', t0)

            at = load()
            t0 = run.click_nav("Versions")
            run.until(
                "Versions first draw",
                "the three heatmaps " + ", ".join(VERSIONS),
                lambda: all(run.visible(s) for s in VERSIONS),
                t0,
            )
            row("Versions first draw (click -> 3 heatmaps drawn)", time.perf_counter() - t0, at, "<= 15 s")
            run.settled("Versions first draw", t0)

            switches: dict[str, list[float]] = {}
            loads: list[float] = []
            targets = (
                ("Overview", NFR),
                ("Flips", FLIPS),
                ("Overview", NFR),
                ("Embeddings", MAP),
                ("Versions", VERSIONS[0]),
            )
            for _ in range(args.repeat):
                for link, sel in targets:
                    loads.append(load())
                    t0 = run.click_nav(link)
                    if link == "Embeddings":
                        run.until(f"switch to {link}", f"points in {sel}", lambda s=sel: run.points(s) > 0, t0)
                    else:
                        run.until(f"switch to {link}", sel, lambda s=sel: run.visible(s), t0)
                    switches.setdefault(link, []).append(time.perf_counter() - t0)
                    run.settled(f"switch to {link}", t0)
            # the same switch to the default map (the 2,000-image sample): "Show all" off again
            t0 = run.click_nav("Embeddings")
            run.until("switch to Embeddings", f"points in {MAP}", lambda: run.points(MAP) > 0, t0)
            run.settled("switch to Embeddings", t0)
            t0 = time.perf_counter()
            page.get_by_text(f"Show all {N_IMAGES:,} images").click(timeout=timeout * 1000)
            run.until('"Show all" off', f"{n_first:,} points in {MAP}", lambda: run.points(MAP) == n_first, t0)
            run.settled('"Show all" off', t0)
            for _ in range(args.repeat):
                for link, sel in (("Overview", NFR), ("Embeddings", MAP)):
                    loads.append(load())
                    t0 = run.click_nav(link)
                    if link == "Embeddings":
                        run.until(
                            "switch to Embeddings (sample)",
                            f"{n_first:,} points in {sel}",
                            lambda s=sel: run.points(s) == n_first,
                            t0,
                        )
                        switches.setdefault(f"Embeddings, {n_first:,}-point map", []).append(time.perf_counter() - t0)
                    else:
                        run.until(f"switch to {link}", sel, lambda s=sel: run.visible(s), t0)
                    run.settled(f"switch to {link}", t0)
            for link, vals in switches.items():
                row(
                    f"warm switch -> {link} (median of {len(vals)}, max {max(vals):.2f})",
                    statistics.median(vals),
                    statistics.median(loads),
                    "<= 1 s",
                )
            page.close()
        except StepTimeout as e:
            print(f"STOPPED: {e}", flush=True)
        finally:
            stop_server(proc)
            browser.close()
    at = load()
    bare.append(bare_loop())
    row("BASELINE bare loop again, after the server stopped", bare[-1], at)
    b = statistics.median(bare)
    print(f"\nload at end: {load():.2f}; bare loop median {b:.2f} s; ratios:", flush=True)
    for name, sec, at_load, goal in rows:
        if not name.startswith("BASELINE bare"):
            print(f"{name:58s} {sec:8.2f} s  {sec / b:6.2f}x bare loop  load {at_load:5.2f}  {goal}")


if __name__ == "__main__":
    main()
