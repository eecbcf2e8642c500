"""leave_one_out_hit_at_1 against brute-force NumPy and against retrieval_metrics' Hit@1."""

from __future__ import annotations

import math

import numpy as np
import pytest

from graceful_core.metrics.hit_at_1 import leave_one_out_hit_at_1, prepare
from graceful_core.metrics.retrieval import retrieval_metrics
from tests.helpers import brute_force_hit1


def case(seed: int, n: int = 600, d: int = 8):
    """Random embeddings with exact duplicates, zero rows, a label seen once and near ties."""
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, d)).astype(np.float32)
    g = q + rng.normal(scale=0.3, size=(n, d)).astype(np.float32)
    y = rng.integers(0, 5, size=n)
    y[7] = 99  # a label occurring once: not a valid query
    g[20:40] = g[0]  # duplicates across labels: exact ties broken by index
    q[50] = 0.0
    g[51] = 0.0  # zero vectors score 0 against everything
    q[60:70] = np.round(q[60:70], 1)
    g[60:70] = np.round(q[60:70] * 2, 1)  # scaled copies: equal cosines
    return q, g, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hit_at_1_equals_brute_force_and_retrieval_metrics(seed):
    q, g, y = case(seed)
    got = leave_one_out_hit_at_1(q, g, y)
    assert got == brute_force_hit1(q, g, y, grid=True)
    assert got == retrieval_metrics(q, g, y, ks=(1,), compute_map=False).hit_at[1]
    assert leave_one_out_hit_at_1(prepare(q), prepare(g), y) == got  # prepared once, same answer


def test_all_ties_go_to_the_lowest_index():
    # every gallery row identical: the nearest other sample is index 0 (or 1 for query 0)
    g = np.ones((4, 3), np.float32)
    q = np.eye(4, 3, dtype=np.float32) + 1
    y = np.array([0, 1, 1, 0])
    # queries 1, 2, 3 find index 0 (label 0): only query 3 is a hit; query 0 finds index 1 (label 1): a miss
    assert leave_one_out_hit_at_1(q, g, y) == 0.25 == brute_force_hit1(q, g, y, grid=True)


def test_small_blocks_give_the_same_answer(monkeypatch):
    import graceful_core.metrics.hit_at_1 as h

    q, g, y = case(3, n=300)
    whole = leave_one_out_hit_at_1(q, g, y)
    monkeypatch.setattr(h, "_BLOCK_ELEMENTS", 300 * 7)
    assert leave_one_out_hit_at_1(q, g, y) == whole == brute_force_hit1(q, g, y, grid=True)


def test_no_valid_query_gives_nan_and_bad_input_is_refused():
    e = np.eye(3, dtype=np.float32)
    assert math.isnan(leave_one_out_hit_at_1(e, e, [0, 1, 2]))
    with pytest.raises(ValueError, match="embedding sizes differ"):
        leave_one_out_hit_at_1(e, np.ones((3, 2)), [0, 0, 1])
    with pytest.raises(ValueError, match="same samples"):
        leave_one_out_hit_at_1(e, np.ones((4, 3)), [0, 0, 1])
    with pytest.raises(ValueError, match="NaN"):
        leave_one_out_hit_at_1(np.full((3, 3), np.nan), e, [0, 0, 1])


def test_matrix_equals_each_pair_searched_alone():
    from graceful_core.metrics.hit_at_1 import hit_at_1_matrix

    q, g, y = case(4, n=400)
    h = g.copy()
    h[100:110] = q[100:110]  # a third model sharing some rows exactly with the first
    embs = [q, g, None, h, np.ones((400, 3), np.float32)]
    seen = []
    got = hit_at_1_matrix(embs, y, progress=lambda stage, done, total: seen.append((done, total)))
    pairs = {(a, b) for a in (0, 1, 3) for b in (0, 1, 3)} | {(4, 4)}
    assert set(got) == pairs
    for a, b in pairs:
        assert got[a, b] == brute_force_hit1(embs[a], embs[b], y, grid=True), (a, b)
        assert got[a, b] == retrieval_metrics(embs[a], embs[b], y, ks=(1,), compute_map=False).hit_at[1]
    assert seen[-1] == (25, 25) and [d for d, _ in seen] == sorted(d for d, _ in seen)
