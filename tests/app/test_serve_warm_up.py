"""The app's server start: UMAP is compiled in the background only when asked (``GRACEFUL_WARM_UMAP=1``)."""

from __future__ import annotations

import sys
import threading

import pytest
from streamlit.web import cli as stcli

from graceful_ui import serve


@pytest.fixture
def started(monkeypatch):
    """Run ``serve.main`` with Streamlit's command line and the imports stubbed; return the threads it started."""
    threads: list[str] = []

    class Recorder:
        def __init__(self, target, name, daemon):
            threads.append(name)

        def start(self):
            pass

    monkeypatch.setattr(serve, "warm_imports", lambda: None)
    monkeypatch.setattr(threading, "Thread", Recorder)
    monkeypatch.setattr(stcli, "main", lambda: 0)
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # main() rewrites it for Streamlit
    return threads


def test_no_umap_warm_up_by_default(started, monkeypatch):
    monkeypatch.delenv(serve.WARM_UMAP_ENV, raising=False)
    assert serve.main([]) == 0
    assert started == []


@pytest.mark.parametrize("value, threads", [("1", ["umap-warm-up"]), ("0", []), ("yes", [])])
def test_the_warm_up_runs_only_when_set_to_1(started, monkeypatch, value, threads):
    monkeypatch.setenv(serve.WARM_UMAP_ENV, value)
    assert serve.main([]) == 0
    assert started == threads
