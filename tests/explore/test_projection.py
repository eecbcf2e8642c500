"""UMAP projections (few, small calls: numba compiles on the first one)."""

from __future__ import annotations

import numpy as np
import pytest

from graceful_core.explore.projection import joint_umap, procrustes_align, separate_umap


def _clustered(n, d, k, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    return (rng.normal(size=(k, d))[y] * 3 + rng.normal(size=(n, d))).astype(np.float32), y


def test_joint_umap_shared_map_subsample_and_determinism():
    old, _ = _clustered(150, 16, 4, seed=0)
    new = old + np.random.default_rng(1).normal(size=old.shape).astype(np.float32) * 0.01
    a = joint_umap(old, new, seed=3, max_points=200)
    assert a.subsampled and a.indices.size == 100 and np.all(np.diff(a.indices) > 0)
    assert a.old_xy.shape == a.new_xy.shape == (100, 2)
    # a near-identical new embedding lands next to its old point in the shared map
    pair = np.linalg.norm(a.old_xy - a.new_xy, axis=1)
    spread = np.linalg.norm(a.old_xy[:, None] - a.old_xy[None], axis=2)
    assert np.median(pair) < 0.1 * np.median(spread)
    b = joint_umap(old, new, seed=3, max_points=200)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.old_xy, b.old_xy)
    full = joint_umap(old[:40], new[:40], seed=3)
    assert not full.subsampled and full.indices.tolist() == list(range(40))


def test_separate_umap_any_dims():
    old, _ = _clustered(80, 16, 3, seed=2)
    new, _ = _clustered(80, 8, 3, seed=2)
    r = separate_umap(old, new, seed=0)
    assert r.aligned and not r.subsampled
    assert r.old_xy.shape == r.new_xy.shape == (80, 2) and np.isfinite(r.new_xy).all()


def test_joint_umap_refuses_unequal_dims():
    with pytest.raises(ValueError, match="embedding sizes differ: old 16, new 8"):
        joint_umap(np.zeros((10, 16)), np.zeros((10, 8)))


def test_procrustes_recovers_a_similarity_transform():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(50, 2))
    theta = 1.1
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    reflect = np.diag([1.0, -1.0])
    moving = 2.5 * target @ rot @ reflect + np.array([4.0, -7.0])
    np.testing.assert_allclose(procrustes_align(moving, target), target, atol=1e-5)
