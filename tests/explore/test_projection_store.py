"""Precomputed maps: found by content (exact or within float noise), refused otherwise, used before UMAP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from graceful_core.explore import projection_store as ps
from graceful_core.explore.projection import ProjectionResult

ROOT = Path(__file__).resolve().parents[2]


def _emb(seed: int, n: int = 60, d: int = 6) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _map(n: int = 60) -> ProjectionResult:
    xy = np.random.default_rng(9).normal(size=(n, 2)).astype(np.float32)
    return ProjectionResult(old_xy=xy, new_xy=xy + 1, indices=np.arange(n), subsampled=False, aligned=True)


def test_a_stored_map_is_found_for_its_embeddings_and_for_float_noise_only(tmp_path):
    old, new = _emb(0), _emb(1)
    settings = ps.projection_settings("separate", old, new)
    ps.write_map(tmp_path, settings, old, new, _map())
    got = ps.find_map(settings, old, new, [tmp_path])
    assert got is not None and got.aligned and not got.subsampled
    np.testing.assert_array_equal(got.new_xy, _map().new_xy)
    # inference in another thread count: the same embeddings up to ~1e-6
    noisy = ps.find_map(settings, old + np.float32(2e-6), new - np.float32(2e-6), [tmp_path])
    assert noisy is not None
    # another model, another row order, other settings: no map
    assert ps.find_map(settings, old, _emb(2), [tmp_path]) is None
    assert ps.find_map(settings, old[::-1].copy(), new[::-1].copy(), [tmp_path]) is None
    assert ps.find_map(ps.projection_settings("separate", old, new, max_points=40), old, new, [tmp_path]) is None
    assert ps.find_map(ps.projection_settings("joint", old, new), old, new, [tmp_path]) is None


def test_a_damaged_map_file_is_ignored(tmp_path):
    old, new = _emb(0), _emb(1)
    settings = ps.projection_settings("joint", old, new)
    path = ps.write_map(tmp_path, settings, old, new, _map())
    path.write_bytes(path.read_bytes()[:100])
    assert ps.find_map(settings, old, new, [tmp_path]) is None
    bad = _map()
    ps.write_map(tmp_path, settings, old, new, ProjectionResult(bad.old_xy, bad.new_xy, bad.indices + 5, False))
    assert ps.find_map(settings, old, new, [tmp_path]) is None  # indices beyond the samples


def test_lazy_projection_uses_a_precomputed_map_before_fitting(tmp_path, monkeypatch):
    import graceful_core.explore.projection as proj
    from graceful_core.comparing.predictions import compare_predictions
    from graceful_core.explore import on_demand as lazy
    from graceful_core.types import Predictions

    old, new = _emb(3, n=40), _emb(4, n=40)
    labels = np.arange(40) % 2
    classes = ["a", "b"]
    ids = [f"s{i}" for i in range(40)]
    comp = compare_predictions(
        Predictions(ids=ids, pred=labels, classes=classes, labels=labels, embedding=old),
        Predictions(ids=ids, pred=labels, classes=classes, labels=labels, embedding=new),
    )
    sample = tmp_path / "sample" / ps.MAPS_DIR
    sample.mkdir(parents=True)
    ps.write_map(sample, ps.projection_settings("joint", old, new), old, new, _map(40))
    monkeypatch.setenv("GRACEFUL_SAMPLE_DATA", str(tmp_path))
    monkeypatch.setattr(lazy, "PROJECTION_DISK_CACHE", False)

    def no_umap(*_a, **_k):
        raise AssertionError("UMAP fitted although a map was stored")

    monkeypatch.setattr(proj, "_umap", no_umap)
    got = lazy.projection(comp, "joint")
    np.testing.assert_array_equal(got.old_xy, _map(40).old_xy)
    with pytest.raises(AssertionError, match="UMAP fitted"):  # control: no map for the side-by-side layout
        lazy.projection(comp, "separate")


def test_the_committed_fashion_maps_belong_to_the_bundled_pair():
    """The maps shipped under sample_data/fashion/maps match old.pt -> new.pt's embeddings (from the committed
    predictions tables, in the test manifest's order): a rebuilt model without rebuilt maps fails here."""
    import pyarrow.parquet as pq

    from graceful_core.io.datasets import load_dataset

    maps = ROOT / "sample_data" / "fashion" / ps.MAPS_DIR
    ids = list(load_dataset(ROOT / "sample_data" / "fashion" / "test.csv").ids)
    emb = {}
    for side in ("old", "new"):
        t = pq.read_table(
            ROOT / "sample_data" / "fashion" / "predictions" / f"{side}.parquet", columns=["id", "embedding"]
        ).to_pydict()
        row = {sid: i for i, sid in enumerate(t["id"])}
        emb[side] = np.asarray([t["embedding"][row[sid]] for sid in ids], dtype=np.float32)
    for kind in ("joint", "separate"):
        for cap in (ps.SAMPLED_POINTS, None):
            got = ps.precomputed_projection(kind, emb["old"], emb["new"], cap, [maps])
            assert got is not None, (kind, cap)
            assert len(got.indices) == (cap // 2 if cap else len(ids))


def test_the_default_map_folder_is_the_repositorys_sample_data(monkeypatch):
    """Without $GRACEFUL_SAMPLE_DATA the maps come from the repository's sample_data (the committed Fashion maps)."""
    monkeypatch.delenv("GRACEFUL_SAMPLE_DATA", raising=False)
    root = Path(__file__).resolve().parents[2] / "sample_data"
    assert root / "fashion" / ps.MAPS_DIR in ps.map_dirs()
