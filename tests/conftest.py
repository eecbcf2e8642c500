"""Fixtures shared by the test modules."""

from __future__ import annotations

import os
import sys

import pytest


def pytest_addoption(parser):
    parser.addoption(
        "--reverse",
        action="store_true",
        help="run the collected tests in reverse order (a test that needs the one before it then fails)",
    )


#: Test files scheduled before the others, in this order (scripts/test.sh runs ``-n 2 --dist loadfile
#: --no-loadscope-reorder``, so the workers take the files as ordered here). The browser files are the longest
#: work units (an app server, Chromium, the Fashion sample): started first, the many short files then fill both
#: workers up to the end, instead of one worker running a long file last while the other idles. pytest-xdist
#: hands one file to each worker and a second one at once to a worker with at most two tests queued, so the
#: one-test Fashion file and the Fashion narrow-window file (3rd) share a worker and its ``fashion_server``
#: (one server, one load of the 10,000-photo comparison); test_browser.py (2nd) runs beside them on the other.
SCHEDULED_FIRST = (
    "tests/browser/test_browser_fashion.py",
    "tests/browser/test_browser.py",
    "tests/browser/test_browser_narrow.py",
    "tests/browser/",
)


def _scheduled_first(item) -> int:
    """The item's place in :data:`SCHEDULED_FIRST` (``len`` of it when it is not there)."""
    return next((i for i, prefix in enumerate(SCHEDULED_FIRST) if item.nodeid.startswith(prefix)), len(SCHEDULED_FIRST))


def pytest_collection_modifyitems(config, items):
    items.sort(key=_scheduled_first)  # stable: otherwise as collected
    if config.getoption("--reverse"):
        items.reverse()


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory, request):
    """One disk cache per test run, never the user's (set GRACEFUL_CACHE_DIR to reuse one).

    Under pytest-xdist every worker of one run shares it (a folder named by the run's
    ``testrunuid`` next to the workers' own temporary folders), so a heavy result such as
    the Fashion sample's comparison is computed once per run, not once per worker; cache
    writes are atomic (:func:`graceful_core.cache.atomic_output`), so workers can fill it
    side by side.
    """
    if not os.environ.get("GRACEFUL_CACHE_DIR"):
        uid = getattr(request.config, "workerinput", {}).get("testrunuid")
        if uid:
            shared = tmp_path_factory.getbasetemp().parent / f"graceful-cache-{uid}"
            shared.mkdir(parents=True, exist_ok=True)
            os.environ["GRACEFUL_CACHE_DIR"] = str(shared)
        else:
            os.environ["GRACEFUL_CACHE_DIR"] = str(tmp_path_factory.mktemp("graceful-cache"))
    yield


#: The process's own ``__main__``, taken when this file is imported: before any test or fixture ran AppTest.
_REAL_MAIN = sys.modules.get("__main__")


@pytest.fixture(autouse=True)
def _keep_main_module():
    """Streamlit's AppTest runs app.py as ``__main__`` and leaves it in ``sys.modules``; put the real one back.

    Otherwise a later test that starts a process with the "spawn" method re-runs app.py in the child.
    Before and after each test: a module- or session-scoped fixture that runs AppTest is set up before
    this fixture, so the ``__main__`` seen here at a test's start is not always the real one.
    """
    if _REAL_MAIN is not None:
        sys.modules["__main__"] = _REAL_MAIN
    yield
    if _REAL_MAIN is not None:
        sys.modules["__main__"] = _REAL_MAIN


@pytest.fixture(scope="session")
def sample_spec():
    """The bundled digits comparison (old.pt vs new.pt on digits/test, id ``sample:new``), or skip without it.

    The app opens on Fashion-MNIST; most app tests open this smaller pair explicitly
    (:func:`tests.apptest.run_app` does by default).
    """
    from graceful_ui.bundled_specs import bundled_specs

    spec = next((s for s in bundled_specs() if s.id == "sample:new"), None)
    if spec is None:
        pytest.skip("bundled sample data (sample_data/models/old.pt, new.pt, digits/test) is missing")
    return spec


@pytest.fixture(scope="session")
def report(sample_spec):
    """The core's JSON report of the bundled comparison, computed independently of the app."""
    from graceful_core.comparing.sources import compare_sources

    return compare_sources(sample_spec.old, sample_spec.new, sample_spec.data).to_report()


@pytest.fixture(scope="session")
def fashion_in_cache(_cache_dir):
    """The Fashion sample's comparison (the app's default, ``fashion:new``) in the run's cache, computed once per run.

    Its predictions (both models on the 10,000 test photos) and cached analyses are the suite's heaviest
    result. The first worker to ask computes them under a lock file in the shared cache folder (see
    :func:`_cache_dir`); the other waits for it and finds them there, instead of computing them a second
    time side by side. The app (AppTest or a served app on this cache) then reads them as a warm cache.
    Yields the spec, or skips without the sample.
    """
    import fcntl
    from pathlib import Path

    from graceful_core.comparing.sources import compare_sources
    from graceful_ui.bundled_specs import bundled_specs

    spec = next((s for s in bundled_specs() if s.id == "fashion:new"), None)
    if spec is None:
        pytest.skip("the Fashion-MNIST sample (sample_data/fashion) is missing")
    lock = Path(os.environ["GRACEFUL_CACHE_DIR"]) / "fashion-sample.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # released when the file closes, also if this worker dies
        try:
            compare_sources(spec.old, spec.new, spec.data, allow_missing=True).to_report()
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)
    return spec
