"""The on-disk cache: round trip, atomic writes, and distrust of bad files."""

import os

import numpy as np
import pytest

from graceful_core import cache


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRACEFUL_CACHE_DIR", str(tmp_path / "c"))


def test_cache_dir_follows_env(tmp_path):
    assert cache.cache_dir() == tmp_path / "c"
    assert (tmp_path / "c").is_dir()


def test_round_trip():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    cache.save_arrays("k", "abc", {"a": a})
    got = cache.load_arrays("k", "abc")
    assert got is not None and np.array_equal(got["a"], a) and got["a"].dtype == np.float32


def test_missing_entry_is_none():
    assert cache.load_arrays("k", "nothing-here") is None


def test_truncated_file_is_ignored():
    path = cache.save_arrays("k", "abc", {"a": np.ones(1000)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert cache.load_arrays("k", "abc") is None


def test_foreign_file_is_ignored():
    path = cache.save_arrays("k", "abc", {"a": np.ones(3)})
    path.write_bytes(b"not a cache file at all")
    assert cache.load_arrays("k", "abc") is None


def test_entry_for_another_key_is_ignored():
    src = cache.save_arrays("k", "abc", {"a": np.ones(3)})
    dst = src.with_name("def.npz")
    os.replace(src, dst)
    assert cache.load_arrays("k", "def") is None


def test_pickled_payload_is_never_loaded():
    # An .npz holding an object array needs pickle to load; the cache refuses it.
    path = cache.cache_dir() / "k" / "evil.npz"
    path.parent.mkdir(parents=True)
    np.savez(
        path, __format__=np.array(cache.CACHE_FORMAT), __key__=np.array("evil"), a=np.array([{"x": 1}], dtype=object)
    )
    assert cache.load_arrays("k", "evil") is None


def test_atomic_write_leaves_no_temp_on_failure(tmp_path):
    target = tmp_path / "out" / "x.bin"

    with pytest.raises(TypeError):
        cache.atomic_write_bytes(target, 12345)  # not bytes: write fails
    assert not target.exists()
    assert list((tmp_path / "out").iterdir()) == []


def test_keys_differ_by_parts():
    assert cache.make_key("a", "b") != cache.make_key("ab")
    assert cache.make_key("a", "b") == cache.make_key("a", "b")
