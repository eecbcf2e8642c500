"""Retrieval metrics against an independent brute force (full float64 matrix, lexsort per row)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import ortho_group

from graceful_core.metrics.retrieval import (
    cross_test,
    head_accuracy,
    nearest_neighbour_overlap,
    retrieval_metrics,
)
from graceful_core.vocabulary import compatibility_sentence

# ----------------------------------------------------------------------------- reference


def _unit(a):
    a = np.asarray(a, dtype=np.float64)
    n = np.linalg.norm(a, axis=1, keepdims=True)
    return a / np.where(n > 0, n, 1.0)


def brute_force(q, g, y, ks=(1, 5)):
    """Full N x N float64 cosine matrix on the 2**-24 grid; each row ranked by lexsort."""
    s = np.round((_unit(q) @ _unit(g).T) * 2.0**24) / 2.0**24
    n = len(y)
    hits = {k: [] for k in ks}
    ap = np.full(n, np.nan)
    top1 = np.zeros(n, dtype=bool)
    ranked_all = []
    for i in range(n):
        others = np.delete(np.arange(n), i)
        ranked = others[np.lexsort((others, -s[i, others]))]
        ranked_all.append(ranked)
        rel = y[ranked] == y[i]
        if not rel.any():
            continue
        for k in ks:
            hits[k].append(rel[:k].any())
        top1[i] = rel[0]
        r = np.flatnonzero(rel) + 1
        ap[i] = np.mean(np.arange(1, r.size + 1) / r)
    return {k: float(np.mean(v)) for k, v in hits.items()}, ap, top1, ranked_all


def clustered(n, d, k, seed, noise=1.0, quantise=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    centres = rng.normal(size=(k, d)) * 2
    x = centres[y] + rng.normal(size=(n, d)) * noise
    if quantise:
        x = np.round(x)
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def tricky():
    """Quantised vectors (many exact ties), duplicates, a zero vector, singleton classes."""
    q, y = clustered(160, 8, 6, seed=3, noise=1.5, quantise=True)
    g, _ = clustered(160, 8, 6, seed=4, noise=1.5, quantise=True)
    g[10:20] = g[0]  # exact duplicates in the gallery
    q[30:34] = q[40]
    q[5] = 0.0
    g[7] = 0.0
    y = y.copy()
    y[[1, 2, 3]] = [100, 101, 102]  # classes with one sample
    return q, g, y


# ----------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("block", [1, 7, 160])
def test_matches_brute_force_with_ties_and_singletons(tricky, block):
    q, g, y = tricky
    hit, ap, top1, ranked = brute_force(q, g, y)
    r = retrieval_metrics(q, g, y, block_size=block)
    assert r.hit_at == pytest.approx(hit, abs=1e-12)
    np.testing.assert_allclose(r.average_precision, ap, atol=1e-12)
    assert r.map == pytest.approx(np.nanmean(ap), abs=1e-12)
    assert r.n_queries == 157 and not r.valid[[1, 2, 3]].any()
    np.testing.assert_array_equal(r.top1_correct, top1)
    np.testing.assert_array_equal(r.topk_indices, np.stack([x[:5] for x in ranked]))
    assert r.map_queries == 157 and r.map_ci95 is None


def test_hit_only_path_gives_same_neighbours(tricky):
    q, g, y = tricky
    full = retrieval_metrics(q, g, y, ks=(1, 3), block_size=13)
    fast = retrieval_metrics(q, g, y, ks=(1, 3), block_size=13, compute_map=False)
    np.testing.assert_array_equal(fast.topk_indices, full.topk_indices)
    assert fast.hit_at == full.hit_at and fast.map is None and fast.map_queries == 0


def test_continuous_embeddings_match_brute_force():
    q, y = clustered(300, 16, 10, seed=0)
    g, _ = clustered(300, 16, 10, seed=1)
    hit, ap, _, ranked = brute_force(q, g, y, ks=(1, 5, 10))
    r = retrieval_metrics(q, g, y, ks=(1, 5, 10), block_size=64, compute_map=False)
    assert r.hit_at == pytest.approx(hit, abs=1e-12)
    np.testing.assert_array_equal(r.topk_indices, np.stack([x[:10] for x in ranked]))


def test_hand_computed_case():
    # 1-D embeddings: cosines are +1/-1 only, so the ranking is decided by index on ties.
    q = np.array([[1.0], [1.0], [-1.0], [1.0]])
    y = np.array([0, 1, 0, 1])
    r = retrieval_metrics(q, q, y, ks=(1, 2))
    # query 0: others 1 (+1), 3 (+1), 2 (-1) -> [1, 3, 2]; relevant = 2 at rank 3
    # query 1: [0, 3, 2]; relevant 3 at rank 2.  query 2: [0, 1, 3]... cos(-1, 1) = -1 for all: [0, 1, 3]
    # query 3: [0, 1, 2]; relevant 1 at rank 2.
    np.testing.assert_array_equal(r.topk_indices, [[1, 3], [0, 3], [0, 1], [0, 1]])
    assert r.hit_at == {1: 0.25, 2: 0.75}
    np.testing.assert_allclose(r.average_precision, [1 / 3, 1 / 2, 1.0, 1 / 2])


def test_k_larger_than_gallery_and_tiny_inputs():
    q = np.eye(3)
    r = retrieval_metrics(q, q, [0, 0, 1], ks=(1, 5))
    assert r.topk_indices.shape == (3, 5) and (r.topk_indices[:, 2:] == -1).all()
    assert r.hit_at[5] == 1.0 and r.n_queries == 2
    none = retrieval_metrics(np.ones((2, 3)), np.ones((2, 3)), [0, 1])
    assert none.n_queries == 0 and math.isnan(none.hit_at[1]) and math.isnan(none.map)


def test_input_validation():
    with pytest.raises(ValueError, match="sizes differ"):
        retrieval_metrics(np.ones((4, 3)), np.ones((4, 2)), [0, 0, 1, 1])
    with pytest.raises(ValueError, match="labels"):
        retrieval_metrics(np.ones((4, 3)), np.ones((4, 3)), [0, 0, 1])
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics(np.full((4, 3), np.nan), np.ones((4, 3)), [0, 0, 1, 1])
    with pytest.raises(ValueError, match="ks"):
        retrieval_metrics(np.ones((4, 3)), np.ones((4, 3)), [0, 0, 1, 1], ks=(0,))


# ----------------------------------------------------------------------------- mAP sampling


def test_map_sampling_path():
    q, y = clustered(400, 8, 5, seed=7)
    exact = retrieval_metrics(q, q, y)
    est = retrieval_metrics(q, q, y, max_map_queries=60, seed=1)
    assert exact.map_ci95 is None and exact.map_queries == 400
    assert est.map_queries == 60 and (~np.isnan(est.average_precision)).sum() == 60
    lo, hi = est.map_ci95
    assert lo < est.map < hi
    # the sampled APs equal the exact ones for those queries, and the mean is theirs
    sel = ~np.isnan(est.average_precision)
    np.testing.assert_allclose(est.average_precision[sel], exact.average_precision[sel], atol=1e-12)
    assert est.map == pytest.approx(exact.average_precision[sel].mean())
    # normal interval with finite-population correction, recomputed here
    a = exact.average_precision[sel]
    half = 1.96 * a.std(ddof=1) / math.sqrt(60) * math.sqrt(1 - 60 / 400)
    assert (lo, hi) == pytest.approx((a.mean() - half, a.mean() + half))
    # over 20 seeds the interval covers the exact mAP most of the time (deterministic)
    cover = sum(
        (lambda c: c[0] <= exact.map <= c[1])(retrieval_metrics(q, q, y, max_map_queries=60, seed=s).map_ci95)
        for s in range(20)
    )
    assert cover >= 15
    assert est.hit_at == exact.hit_at  # Hit@k is always over every query


def _reference_map(q, g, y):
    """Exact mAP by brute force: the full float64 grid matrix, a lexsort per row."""
    s = np.round((_unit(q) @ _unit(g).T) * 2.0**24)
    n = len(y)
    aps = []
    for i in range(n):
        others = np.delete(np.arange(n), i)
        rel = y[others[np.lexsort((others, -s[i, others]))]] == y[i]
        if rel.any():
            r = np.flatnonzero(rel) + 1
            aps.append(np.mean(np.arange(1, r.size + 1) / r))
    return float(np.mean(aps))


def test_cross_test_map_is_exact_beyond_two_thousand_queries():
    # 2,400 queries (the mAP used to be sampled beyond 2,000), quantised so exact ties
    # between relevant and irrelevant items are frequent, and a duplicated block
    old, y = clustered(2400, 6, 7, seed=21, noise=1.5, quantise=True)
    new, _ = clustered(2400, 6, 7, seed=22, noise=1.5, quantise=True)
    new = new + old
    new[100:140] = new[200]
    ct = cross_test(old, new, y, block_size=500)
    emb = {"old": old, "new": new}
    for pair in ("old_old", "new_new", "new_old", "old_new"):
        q, g = pair.split("_")
        assert ct.scores["map"][pair] == pytest.approx(_reference_map(emb[q], emb[g], y), abs=1e-12), pair
    assert ct.map_queries == ct.n_queries == 2400 and ct.map_ci95 is None
    assert ct.to_json()["map_ci95"] is None
    # the overlap read off the same search equals the standalone search and a brute force
    s = np.round((_unit(new) @ _unit(old).T) * 2.0**24)
    expected = np.mean(np.argmax(s, axis=1) == np.arange(2400))  # argmax: ties to the lowest index
    assert ct.embedding_overlap == pytest.approx(expected, abs=1e-12)
    assert ct.embedding_overlap == nearest_neighbour_overlap(old, new)


# ----------------------------------------------------------------------------- cross-test


def test_identical_embeddings_cross_equals_self():
    e, y = clustered(200, 16, 8, seed=2)
    ct = cross_test(e, e.copy(), y)
    for m in ("top1", "top5", "map"):
        v = ct.scores[m]
        assert v["old_old"] == v["new_new"] == v["new_old"] == v["old_new"]
    assert ct.retrieval_negative_flips == 0 and ct.retrieval_positive_flips == 0
    assert ct.update_gain is None and ct.compatible is False  # equal, not greater
    j = ct.to_json()
    assert j["reason"] is None and j["top1"]["new_old"] == ct.scores["top1"]["old_old"]


def test_rotation_keeps_self_test_and_breaks_cross_test():
    old, y = clustered(600, 32, 10, seed=5, noise=0.8)
    rot = ortho_group.rvs(32, random_state=0)
    new = old @ rot
    ct = cross_test(old, new, y)
    s = ct.scores["top1"]
    assert s["new_new"] == pytest.approx(s["old_old"], abs=1e-12)  # cosine is rotation invariant
    assert s["old_old"] > 0.9
    assert s["new_old"] < 0.25 and s["old_new"] < 0.25  # near chance (0.1)
    assert ct.compatible is False and ct.update_gain is None
    assert ct.retrieval_negative_flips > 400


def test_cross_test_flips_against_brute_force():
    old, y = clustered(150, 8, 5, seed=11, noise=1.5)
    new, _ = clustered(150, 8, 5, seed=12, noise=1.5)
    new = new + old * 0.5
    _, _, top1_oo, _ = brute_force(old, old, y)
    hit_no, _, top1_no, _ = brute_force(new, old, y)
    hit_nn, _, _, _ = brute_force(new, new, y)
    hit_oo, _, _, _ = brute_force(old, old, y)
    ct = cross_test(old, new, y, class_names=[f"c{i}" for i in range(5)], block_size=9)
    neg = np.flatnonzero(top1_oo & ~top1_no)
    pos = np.flatnonzero(~top1_oo & top1_no)
    np.testing.assert_array_equal(ct.negative_flip_indices, neg)
    np.testing.assert_array_equal(ct.positive_flip_indices, pos)
    assert ct.retrieval_negative_flips == neg.size
    assert ct.compatible == (hit_no[1] > hit_oo[1])
    assert ct.update_gain == pytest.approx((hit_no[1] - hit_oo[1]) / (hit_nn[1] - hit_oo[1]))
    assert [c["negative_flips"] for c in ct.per_class] == [int((y[neg] == c).sum()) for c in range(5)]
    assert ct.per_class[0]["class"] == "c0"
    assert sum(c["queries"] for c in ct.per_class) == 150
    # Wilson interval, textbook form: (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)
    z, n, p = 1.959963984540054, 150, neg.size / 150
    c, h = (
        (p + z * z / (2 * n)) / (1 + z * z / n),
        z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n),
    )
    assert ct.negative_flip_rate_ci95 == pytest.approx((c - h, c + h))


def test_unequal_dims_give_reason_and_no_cross_test():
    old, y = clustered(80, 64, 4, seed=1)
    new, _ = clustered(80, 128, 4, seed=2)
    ct = cross_test(old, new, y)
    j = ct.to_json()
    assert j["reason"] == "embedding sizes differ: old 64, new 128; no cross-test possible"
    for m in ("top1", "top5", "map"):
        assert j[m]["new_old"] is None and j[m]["old_new"] is None
        assert j[m]["old_old"] is not None and j[m]["new_new"] is not None
    assert j["compatible"] is False and j["update_gain"] is None and j["retrieval_negative_flips"] is None
    assert "differ" in compatibility_sentence(ct)


def test_json_is_plain():
    import json

    old, y = clustered(60, 8, 3, seed=1)
    j = cross_test(old, old[:, ::-1].copy(), y).to_json()
    json.dumps(j, allow_nan=False)
    assert isinstance(j["compatible"], bool)


# ----------------------------------------------------------------------------- small helpers


def test_head_accuracy_ties_to_lowest_class():
    z = np.array([[1.0, 1.0], [0.0, 2.0], [3.0, 0.0]])
    assert head_accuracy(z, [0, 1, 1]) == pytest.approx(2 / 3)


def test_nearest_neighbour_overlap():
    old, _ = clustered(120, 8, 4, seed=9, noise=1.0)
    assert nearest_neighbour_overlap(old, old * 3.0) == 1.0
    rng = np.random.default_rng(0)
    new = old + rng.normal(size=old.shape) * 0.5
    s = _unit(new) @ _unit(old).T
    expected = np.mean(np.argmax(np.round(s * 2.0**24), axis=1) == np.arange(120))
    assert nearest_neighbour_overlap(old, new) == pytest.approx(expected)
    assert math.isnan(nearest_neighbour_overlap(old, new[:, :4]))
    dup = np.repeat(old[:1], 3, axis=0)  # all equal: nearest is index 0 for everyone
    assert nearest_neighbour_overlap(dup, dup) == pytest.approx(1 / 3)


def test_reduced_precision_matmul_setting_does_not_change_results(tricky):
    import torch

    q, g, y = tricky
    ref = retrieval_metrics(q, g, y, compute_map=False)
    old = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")
        r = retrieval_metrics(q, g, y, compute_map=False)
    finally:
        torch.set_float32_matmul_precision(old)
    np.testing.assert_array_equal(r.topk_indices, ref.topk_indices)
