"""What the real-browser tests share: start the app, open a Chromium page, wait for the page's own content.

Headless Debian Chromium (``/usr/bin/chromium``) via Playwright against ``python -m graceful_ui.serve`` (as
scripts/run.sh starts it); never ``playwright install``. Every wait is for a condition (the server's health
answer, a title, a card, the URL, the script run finished), with a generous limit that only a hung process
reaches: a loaded 2-core machine makes things slow, not wrong. Screenshots go to test-artifacts/.
The benchmarks (benchmarks/bench_app.py, bench_first_look.py) start the app through the same functions.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
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
#: Milliseconds one step on a warm page may take (a rerun, a click's answer). Every wait ends when its condition
#: holds: the limits below only stop a hung page, so they are far above what a loaded machine needs.
WAIT_MS = 180_000
#: Milliseconds a first page of a fresh server may take (it runs the models of a small sample, or fits a UMAP).
FIRST_MS = 600_000
#: Milliseconds a first page of the Fashion sample may take on a cold cache (both models on 10,000 photos).
COLD_MS = 900_000
#: Seconds a starting server may take to answer its health check. The wait ends as soon as it answers (or the
#: process exits); the limit only stops a hung server, so it is far above a loaded machine's 10-40 s.
SERVER_START_S = 600


def need(condition: bool, reason: str) -> None:
    """Skip (fail when ``CI`` is set) unless ``condition``: the browser tests need Chromium and Playwright."""
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (required when CI is set)")
        pytest.skip(reason)


def need_browser() -> None:
    need(Path(CHROMIUM).exists(), f"{CHROMIUM} is not installed (Debian package chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        need(False, "the playwright Python package is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(cache_dir: Path, port: int, timeout_s: float = SERVER_START_S) -> subprocess.Popen:
    """The app (``python -m graceful_ui.serve``, as scripts/run.sh starts it) on ``port``; returns once healthy.

    Waits for the health answer or the process's exit, whichever comes first; ``timeout_s`` only ends a
    server that neither answers nor exits.
    """
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
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=5) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
    stop_server(proc)
    raise RuntimeError(
        f"streamlit neither answered its health check nor exited within {timeout_s:.0f} s; see {log.name}"
    )


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def launch(p):
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def serve_app(tmp_path_factory, name: str, shared_cache: bool = False):
    """Generator for a fixture: the app on a free port with its own cache; yields its URL.

    ``shared_cache``: the test run's cache instead (tests/conftest.py; shared by the xdist
    workers), for servers whose tests only read results, so a heavy comparison is computed
    once per run.
    """
    need_browser()
    cache = tmp_path_factory.mktemp(name) / "cache"
    if shared_cache and os.environ.get("GRACEFUL_CACHE_DIR"):
        cache = Path(os.environ["GRACEFUL_CACHE_DIR"])
    cache.mkdir(exist_ok=True)
    port = free_port()
    proc = start_server(cache, port)
    yield f"http://127.0.0.1:{port}"
    stop_server(proc)


def browser_page(width: int, height: int):
    """Generator for a fixture: one Chromium page of that size (Streamlit scrolls inside: tall shows more)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        yield browser.new_page(viewport={"width": width, "height": height})
        browser.close()


def chromium():
    """Generator for a fixture: one Chromium for a module whose tests each open a page with :func:`fresh_page`.

    A launch costs seconds on a busy machine; a new context a fraction of one.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        yield browser
        browser.close()


@contextlib.contextmanager
def fresh_page(browser, width: int, height: int):
    """A page in a new context of ``browser``: its own cookies, storage, history and app session, as in a new browser."""
    context = browser.new_context(viewport={"width": width, "height": height})
    try:
        yield context.new_page()
    finally:
        context.close()


# --------------------------------------------------------------------------- reading and waiting
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


def grid_count(page) -> int:
    """The Flips grid's "of N matching images" count."""
    text = page.get_by_text("matching images").first.inner_text(timeout=WAIT_MS)
    return int(text.split(" of ")[1].split()[0].replace(",", ""))  # "1,234": counts have separators


def click_centre(page, locator) -> None:
    bb = locator.bounding_box()
    page.mouse.click(bb["x"] + bb["width"] / 2, bb["y"] + bb["height"] / 2)


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def no_exception(page, where: str) -> None:
    assert page.locator(EXCEPTION).count() == 0, f"Streamlit exception box on {where}"
    assert page.get_by_text("Page not found").count() == 0, f"'Page not found' dialog on {where}"
