"""The app's server start: UMAP is compiled in the background only when asked (``GRACEFUL_WARM_UMAP=1``); what a
comparison imports is imported before the first visitor."""

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


def test_a_first_comparison_imports_no_heavy_library_after_the_server_start(tmp_path):
    """What a comparison needs (torch, scipy.stats, scikit-learn's k-means, cleanlab) is imported by
    ``warm_imports`` at server start, not inside the first visitor's comparison: a fresh interpreter
    compares the digits sample after ``warm_imports`` and lists the heavy packages imported meanwhile."""
    import json
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = """
import json, sys
from graceful_ui.serve import warm_imports
warm_imports()
before = set(sys.modules)
from graceful_core.comparing.sources import compare_sources
compare_sources("sample_data/models/old.pt", "sample_data/models/new.pt", "sample_data/digits/test", allow_missing=True)
new = {m.split(".")[0] for m in set(sys.modules) - before}
print(json.dumps(sorted(new & {"torch", "scipy", "sklearn", "cleanlab", "plotly", "pandas", "numpy"})))
"""
    env = dict(os.environ, PYTHONPATH=str(root), GRACEFUL_CACHE_DIR=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
