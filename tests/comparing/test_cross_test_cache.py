"""The comparison's cross-test cached on disk reads back as the cross-test computed afresh."""

from __future__ import annotations

import numpy as np

from graceful_core import cache
from graceful_core.comparing.analyses import CROSS_TEST_CACHE, _cross_test_cached
from graceful_core.metrics.retrieval import cross_test


def _same(a, b) -> None:
    assert a.to_json() == b.to_json()
    assert a.per_class == b.per_class
    assert np.array_equal(a.negative_flip_indices, b.negative_flip_indices)
    assert np.array_equal(a.positive_flip_indices, b.positive_flip_indices)
    assert set(a.results) == set(b.results)
    for p, r in a.results.items():
        s = b.results[p]
        assert r.hit_at == s.hit_at and r.n_queries == s.n_queries and r.map_queries == s.map_queries
        assert np.array_equal(r.topk_indices, s.topk_indices) and np.array_equal(r.valid, s.valid)
        assert np.array_equal(r.top1_correct, s.top1_correct)
        assert np.allclose(r.average_precision, s.average_precision, equal_nan=True)


def test_cross_test_from_the_disk_cache_equals_a_fresh_one(tmp_path, monkeypatch):
    monkeypatch.setenv("GRACEFUL_CACHE_DIR", str(tmp_path))
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 80)
    old = rng.normal(size=(80, 6)) + labels[:, None]
    new = rng.normal(size=(80, 6)) - labels[:, None]
    ids = [f"i{k}" for k in range(80)]
    fresh = cross_test(old, new, labels)
    first = _cross_test_cached(old, new, labels, "k1", ids)
    assert list((tmp_path / CROSS_TEST_CACHE).glob("*.npz")), "nothing written to the cache"
    again = _cross_test_cached(old, new, labels, "k1", ids)  # read back from the file
    _same(fresh, first)
    _same(fresh, again)
    # the same content key with the rows in another order is another entry (its indices are per row)
    order = np.random.default_rng(5).permutation(80)
    shuffled = _cross_test_cached(old[order], new[order], labels[order], "k1", [ids[i] for i in order])
    _same(cross_test(old[order], new[order], labels[order]), shuffled)


def test_a_damaged_entry_is_computed_again(tmp_path, monkeypatch):
    monkeypatch.setenv("GRACEFUL_CACHE_DIR", str(tmp_path))
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, 40)
    old, new = rng.normal(size=(40, 5)), rng.normal(size=(40, 5))
    import hashlib

    entry = cache.make_key(CROSS_TEST_CACHE, cache.make_key("k2", "rows", hashlib.sha256(b"").hexdigest()))
    cache.save_arrays(
        CROSS_TEST_CACHE,
        entry,
        {"meta": np.array("{not json"), "negative_flip_indices": np.zeros(0), "positive_flip_indices": np.zeros(0)},
    )
    _same(cross_test(old, new, labels), _cross_test_cached(old, new, labels, "k2"))
