"""The cross-test's mAP is exact: equal to scikit-learn's average precision of every query, beyond 2,000 queries.

The reference ranks each query's gallery by brute force (the full float64 matrix on the
2**-24 grid, then ``np.lexsort`` by score descending and index ascending, the definition
in ``docs/metrics.md``) and hands that ranking to ``sklearn.metrics.average_precision_score``
as strictly decreasing scores, so scikit-learn's tie grouping never applies: the AP
formula comes from scikit-learn, the ranking from the definition.
"""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score

from graceful_core.metrics.retrieval import cross_test, retrieval_metrics


def _unit(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    n = np.linalg.norm(a, axis=1, keepdims=True)
    return a / np.where(n > 0, n, 1.0)


def _sklearn_average_precisions(q: np.ndarray, g: np.ndarray, y: np.ndarray) -> np.ndarray:
    grid = np.round((_unit(q) @ _unit(g).T) * 2.0**24)
    n = len(y)
    ap = np.full(n, np.nan)
    for i in range(n):
        others = np.delete(np.arange(n), i)
        ranked = others[np.lexsort((others, -grid[i, others]))]
        relevant = y[ranked] == y[i]
        if relevant.any():
            ap[i] = average_precision_score(relevant, -np.arange(n - 1, dtype=np.float64))
    return ap


def _case(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quantised clustered embeddings (exact ties between relevant and other items are frequent),
    duplicated rows, a zero row and a label with one sample."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 9, n)
    centres = rng.normal(size=(9, 5)) * 2
    old = np.round(centres[y] + rng.normal(size=(n, 5)) * 1.5).astype(np.float32)
    new = (old + np.round(rng.normal(size=(n, 5)))).astype(np.float32)
    new[50:90] = new[300]
    old[7] = 0.0
    y[11] = 99
    return old, new, y


def test_cross_test_map_equals_sklearn_on_2100_queries_with_ties():
    old, new, y = _case(2100, seed=5)
    ct = cross_test(old, new, y, block_size=333)
    emb = {"old": old, "new": new}
    # a self-test and a cross-test pair (tests/metrics/test_retrieval.py checks all four against a second reference)
    for pair in ("old_old", "new_old"):
        q, g = (emb[s] for s in pair.split("_"))
        ref = _sklearn_average_precisions(q, g, y)
        got = ct.results[pair].average_precision
        assert got is not None
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12, err_msg=pair)
        assert ct.scores["map"][pair] == pytest.approx(float(np.nanmean(ref)), abs=1e-12)
    assert ct.map_queries == ct.n_queries == 2099 and ct.map_ci95 is None


def test_the_block_size_and_the_threads_do_not_change_the_average_precisions():
    import torch

    old, new, y = _case(700, seed=8)
    ref = retrieval_metrics(new, old, y, block_size=700)
    threads = torch.get_num_threads()
    try:
        for block, t in ((1, 1), (13, 2), (64, 1)):
            torch.set_num_threads(t)
            r = retrieval_metrics(new, old, y, block_size=block)
            assert r.average_precision is not None and ref.average_precision is not None
            np.testing.assert_array_equal(r.average_precision, ref.average_precision)
            np.testing.assert_array_equal(r.topk_indices, ref.topk_indices)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize(
    "module",
    [
        "graceful_core.metrics.retrieval",
        "graceful_core.metrics.retrieval_inputs",
        "graceful_core.metrics.average_precision",
        "graceful_core.metrics.leave_one_out",
        "graceful_core.metrics.cross_test",
        "graceful_core.metrics.embedding_overlap",
        "graceful_core.metrics.hit_at_1",
    ],
)
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def _brute_force_topk(q: np.ndarray, g: np.ndarray, k: int) -> np.ndarray:
    grid = np.round((_unit(q) @ _unit(g).T) * 2.0**24)
    n = len(q)
    out = np.empty((n, k), dtype=np.int64)
    for i in range(n):
        others = np.delete(np.arange(n), i)
        out[i] = others[np.lexsort((others, -grid[i, others]))][:k]
    return out


@pytest.mark.parametrize(
    "case",
    ["clustered, a two-member label", "every score tied", "two distinct rows", "a single relevant item"],
)
def test_the_counting_pass_gives_the_brute_force_answer_on_hard_rows(case):
    """The counting pass sends each item to a score bucket; these rows put many items in one bucket
    (all scores equal, or two values only), and give labels fewer members than the neighbours asked for."""
    old, new, y = _case(400, seed=12)
    if case == "clustered, a two-member label":
        y[20:23] = [70, 70, 71]  # a label with two samples: fewer relevant items than neighbours asked for
        y[23] = 71
    elif case == "every score tied":
        old[:] = 1.0
        new[:] = 1.0
    elif case == "two distinct rows":
        old[::2], old[1::2] = [1, 0, 0, 0, 0], [0, 1, 0, 0, 0]
        new[:] = old[::-1]
    else:
        y = np.arange(400) // 2  # 200 labels of two: one relevant item per query
    r = retrieval_metrics(new, old, y, ks=(1, 5), block_size=37)
    assert r.average_precision is not None
    np.testing.assert_allclose(r.average_precision, _sklearn_average_precisions(new, old, y), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(r.topk_indices, _brute_force_topk(new, old, 5))


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(3, 40),
    dim=st.integers(1, 4),
    labels=st.integers(1, 5),
    levels=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1),
)
def test_any_small_case_equals_the_brute_force_ranking(n, dim, labels, levels, seed):
    """Few quantisation levels make most scores tie; few labels make some queries' relevant items many, others none."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, labels, n)
    q = rng.integers(-levels, levels + 1, size=(n, dim)).astype(np.float32)
    g = rng.integers(-levels, levels + 1, size=(n, dim)).astype(np.float32)
    k = min(5, n - 1)
    r = retrieval_metrics(q, g, y, ks=(1, k), block_size=int(rng.integers(1, n + 1)))
    assert r.average_precision is not None
    ref = _sklearn_average_precisions(q, g, y)
    np.testing.assert_allclose(r.average_precision, ref, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(r.topk_indices[:, :k], _brute_force_topk(q, g, k))
