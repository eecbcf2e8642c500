"""Fixtures of the real-browser tests (the functions they share are in :mod:`tests.browser.harness`)."""

from __future__ import annotations

import pytest

from tests.browser.harness import serve_app


@pytest.fixture(scope="session")
def fashion_server(tmp_path_factory, fashion_in_cache):
    """One app server per worker on the run's shared cache, for the tests that open the app as a bare URL does
    (its default: the Fashion sample, already computed by ``fashion_in_cache``). They only read, each in a
    browser session of its own; one server spares a server start and a load of the 10,000-photo comparison."""
    yield from serve_app(tmp_path_factory, "app-fashion", shared_cache=True)
