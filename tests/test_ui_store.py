"""The app's result store: one computation per key across sessions, bounded size."""

from __future__ import annotations

import threading
import time

from graceful_ui.store import ComparisonStore


def _wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_two_sessions_asking_for_one_key_compute_it_once_and_the_second_is_told():
    store = ComparisonStore()
    started, release = threading.Event(), threading.Event()
    computed, waited, got = [], [], {}

    def session(name: str) -> None:
        with store.computing("k", on_wait=lambda: waited.append(name)):
            item = store.get("k")
            if item is None:
                computed.append(name)
                started.set()
                release.wait(10)
                item = {"value": f"computed by {name}"}
                store.put("k", item)
        got[name] = item["value"]

    first = threading.Thread(target=session, args=("a",))
    first.start()
    assert started.wait(10)
    second = threading.Thread(target=session, args=("b",))
    second.start()
    assert _wait_for(lambda: waited == ["b"])
    assert second.is_alive() and not got  # b waits while a computes
    with store.computing("other key", on_wait=lambda: waited.append("other")):
        pass  # another key never waits for "k"
    release.set()
    first.join(10)
    second.join(10)
    assert computed == ["a"] and waited == ["b"]
    assert got == {"a": "computed by a", "b": "computed by a"}


def test_the_store_is_bounded_and_idle_key_locks_are_forgotten():
    store = ComparisonStore(max_items=2)
    for k in range(20):
        with store.computing(k):
            store.put(k, {"v": k})
    assert list(store.items) == [18, 19]
    assert len(store._key_locks) <= 4 * 2 + 1
    assert store.get(0) is None and store.get(19) == {"v": 19}
