"""The app's caches (Streamlit's own): two sessions asking for one comparison at once compute it once."""

from __future__ import annotations

import threading
import time

import pytest


def test_two_sessions_asking_for_one_comparison_compute_it_once(sample_spec, monkeypatch):
    """Streamlit's per-key lock: the second caller waits for the first one's result instead of computing."""
    import streamlit as st

    from graceful_ui import store

    started, release = threading.Event(), threading.Event()
    calls: list[str] = []
    result = object()

    def slow_compare(*args, **kwargs):
        calls.append(threading.current_thread().name)
        started.set()
        assert release.wait(10)
        return result

    monkeypatch.setattr(store, "compare_sources", slow_compare)
    st.cache_resource.clear()
    got: dict[str, object] = {}

    def session(name: str) -> None:
        got[name] = store.load_comparison(sample_spec)

    first = threading.Thread(target=session, args=("a",), name="a")
    first.start()
    assert started.wait(10)
    second = threading.Thread(target=session, args=("b",), name="b")
    second.start()
    time.sleep(0.3)
    assert second.is_alive() and "b" not in got  # b waits while a computes
    release.set()
    first.join(10)
    second.join(10)
    assert calls == ["a"]  # computed once
    assert got["a"] is result and got["b"] is result
    st.cache_resource.clear()


def test_a_changed_file_is_compared_again(sample_spec, tmp_path, monkeypatch):
    """The cache key includes the files' fingerprint: the same spec with a changed file is recomputed."""
    import dataclasses
    import os
    import shutil

    import streamlit as st

    from graceful_ui import store

    calls = []
    monkeypatch.setattr(store, "compare_sources", lambda *a, **k: calls.append(a) or len(calls))
    st.cache_resource.clear()
    new = tmp_path / "new.pt"
    shutil.copy(sample_spec.new, new)
    spec = dataclasses.replace(sample_spec, new=str(new))
    assert store.load_comparison(spec) == 1 and store.load_comparison(spec) == 1
    os.utime(new, ns=(1, 1))
    assert store.load_comparison(spec) == 2
    st.cache_resource.clear()


def test_missing_file_is_an_input_error(sample_spec, tmp_path):
    import dataclasses

    from graceful_core.errors import InputError
    from graceful_ui import store

    with pytest.raises(InputError, match="no such file"):
        store.load_comparison(dataclasses.replace(sample_spec, new=str(tmp_path / "gone.pt")))
