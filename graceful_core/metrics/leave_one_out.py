"""Leave-one-out retrieval of one (query model, gallery model) pair: Hit@k and exact mAP.

Every sample is a query embedded by the query model, searched against all *other*
samples embedded by the gallery model (``docs/metrics.md``; the BCT protocol of Shen et
al., "Towards Backward-Compatible Representation Learning", CVPR 2020, on a labelled set
with leave-one-out instead of a query/gallery split). Scores and ranking are those of
:mod:`graceful_core.metrics.retrieval_inputs` and :mod:`graceful_core.metrics.neighbours`.

Nothing here holds an ``N x N`` matrix: queries are processed in blocks of rows
(memory ``O(block x N)``). Queries that need an AP are taken one label at a time, the
gallery in label order, and get their top-k and AP from one float64 GEMM
(:func:`~graceful_core.metrics.average_precision.topk_and_average_precision`); the
others get their top-k from a float32 GEMM checked against its error bound
(:func:`~graceful_core.metrics.neighbours.topk_fast`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from graceful_core.metrics.average_precision import topk_and_average_precision
from graceful_core.metrics.neighbours import topk_fast, topk_from_rank_keys
from graceful_core.metrics.retrieval_inputs import (
    GRID,
    MAX_BLOCK_ELEMENTS,
    as_embedding,
    check_ks,
    label_codes,
    unit_rows,
)

if TYPE_CHECKING:
    import torch

#: Scores per block of the search with AP (4 MiB of float64): small enough to stay in cache between the GEMM
#: that writes them and the counting pass that reads them. On the 2-core benchmark machine (2 MiB of L2 per
#: core) the cross-test at 10,000 x 64 took 15-20 % less time than with 2**23-score blocks.
_AP_BLOCK_ELEMENTS = 1 << 19

__all__ = ["RetrievalResult", "retrieval_metrics"]


@dataclass(frozen=True)
class RetrievalResult:
    """Leave-one-out retrieval scores of one (query model, gallery model) pair.

    Attributes
    ----------
    hit_at : dict of int to float
        Hit@k for each requested k, over the valid queries (nan if there are none).
    map : float or None
        Mean average precision (exact, or estimated from a sample; see ``map_queries``);
        None when ``compute_map=False``; nan when there are no valid queries.
    map_queries : int
        Number of queries whose AP was computed (0 when ``compute_map=False``).
    map_ci95 : tuple of float or None
        95 % interval for mAP when it was estimated from a sample of queries, else None.
    n_queries : int
        Number of valid queries (label shared with at least one other sample).
    valid : ndarray of bool, shape (N,)
        Which samples are valid queries.
    top1_correct : ndarray of bool, shape (N,)
        Top-1 neighbour has the query's label (False where ``valid`` is False).
    topk_indices : ndarray of int64, shape (N, max(ks))
        Gallery indices of the nearest neighbours of every query, in rank order
        (ties by index); -1 where the gallery has fewer than ``max(ks)`` other samples.
    average_precision : ndarray of float64, shape (N,) or None
        AP of each query whose AP was computed, nan elsewhere.
    """

    hit_at: dict[int, float]
    map: float | None
    map_queries: int
    map_ci95: tuple[float, float] | None
    n_queries: int
    valid: np.ndarray = field(repr=False)
    top1_correct: np.ndarray = field(repr=False)
    topk_indices: np.ndarray = field(repr=False)
    average_precision: np.ndarray | None = field(default=None, repr=False)


def retrieval_metrics(
    query_emb: Any,
    gallery_emb: Any,
    labels: Any,
    *,
    ks: Sequence[int] = (1, 5),
    block_size: int = 1024,
    max_map_queries: int | None = None,
    seed: int = 0,
    compute_map: bool = True,
) -> RetrievalResult:
    """Leave-one-out cosine retrieval of ``query_emb`` against ``gallery_emb``.

    Sample i, embedded by the query model, is searched against every other sample j ≠ i
    embedded by the gallery model, by cosine similarity
    ``s_ij = <q_i / ||q_i||, g_j / ||g_j||>`` (normalised and multiplied in float64; a zero
    vector scores 0 against everything), rounded to a multiple of 2**-24 (exact in float32). Ranking is by (s_ij descending,
    j ascending): exact and deterministic.

    * Hit@k = ``(1/|V|) Σ_{i∈V} 1[∃ j among the k best: y_j = y_i]``;
    * ``AP_i = (1/P_i) Σ_{p: y_p = y_i, p ≠ i} #{relevant r: rank(r) ≤ rank(p)} / rank(p)``,
      ``rank(p) = 1 + #{j ≠ i: s_ij > s_ip or (s_ij = s_ip and j < p)}``; mAP = mean of AP_i.

    ``V`` = the valid queries: samples whose label occurs at least twice. This is the
    BCT protocol of Shen et al., "Towards Backward-Compatible Representation Learning",
    CVPR 2020, on a labelled set with leave-one-out instead of a query/gallery split.

    Parameters
    ----------
    query_emb, gallery_emb : array-like, shape (N, D)
        Embeddings of the same samples, in the same order, by the query and gallery
        models. Same D required.
    labels : array-like, shape (N,)
        True labels (any comparable values).
    ks : sequence of int
        The k of Hit@k. A k of at least N - 1 is a hit for every valid query.
    block_size : int
        Queries per block (capped so a block holds at most 2**23 scores, 2**19 when it
        also gets APs). Does not
        change the result.
    max_map_queries : int, optional
        None (the default): mAP is exact, over every valid query. An int asks for a quick
        estimate instead when there are more valid queries than that: the mean AP of a
        uniform random sample (fixed ``seed``, without replacement) of this many valid
        queries, each AP still exact over the whole gallery. The 95 % interval is the
        normal approximation ``mean ± 1.96 · sd / sqrt(m) · sqrt(1 − m / |V|)`` (sd with
        ddof=1; finite-population correction for sampling without replacement).
    seed : int
        Seed of that sample.
    compute_map : bool
        Skip mAP (Hit@k only, cheaper).

    Returns
    -------
    RetrievalResult

    Examples
    --------
    Two tight pairs of the same label: every query's nearest other sample shares its label.

    >>> r = retrieval_metrics([[1, 0], [1, 0.1], [0, 1], [0.1, 1]], [[1, 0], [1, 0.1], [0, 1], [0.1, 1]],
    ...                       [0, 0, 1, 1], ks=(1,))
    >>> r.hit_at[1], r.map
    (1.0, 1.0)
    """
    q = as_embedding(query_emb, "query_emb")
    g = as_embedding(gallery_emb, "gallery_emb")
    if q.shape[0] != g.shape[0]:
        raise ValueError(f"query_emb and gallery_emb must embed the same samples: {q.shape[0]} vs {g.shape[0]} rows")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"embedding sizes differ: query {q.shape[1]}, gallery {g.shape[1]}")
    ks = check_ks(ks)
    if int(block_size) < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if max_map_queries is not None and int(max_map_queries) < 2:
        raise ValueError(f"max_map_queries must be >= 2, got {max_map_queries}")
    n = q.shape[0]
    _, codes = label_codes(labels, n)
    counts = np.bincount(codes) if n else np.zeros(0, dtype=np.int64)
    valid = counts[codes] >= 2 if n else np.zeros(0, dtype=bool)
    n_valid = int(valid.sum())
    ap_mask = _queries_with_ap(valid, compute_map, max_map_queries, seed)
    kmax = max(ks)
    topk = np.full((n, kmax), -1, dtype=np.int64)
    ap = np.full(n, np.nan) if compute_map else None
    if n >= 2:
        q64, g64 = unit_rows(q), unit_rows(g)
        rows = max(1, min(int(block_size), MAX_BLOCK_ELEMENTS // n))
        k_eff = min(kmax, n - 1)
        _search_without_ap(q64, g64, np.flatnonzero(~ap_mask), k_eff, rows, topk)
        if ap is not None:
            ap_rows = max(1, min(int(block_size), _AP_BLOCK_ELEMENTS // n))
            _search_with_ap(q64, g64, codes, counts, ap_mask, k_eff, ap_rows, topk, ap)

    # Hit@k from the exact top-k lists.
    nb_labels = np.where(topk >= 0, codes[np.clip(topk, 0, None)], -1) if n else np.zeros((0, kmax), np.int64)
    match = nb_labels == codes[:, None]
    hit_at = {k: (float((match[:, :k].any(axis=1) & valid)[valid].mean()) if n_valid else math.nan) for k in ks}
    top1 = (match[:, 0] & valid) if n else np.zeros(0, dtype=bool)
    map_value: float | None = None
    map_ci: tuple[float, float] | None = None
    m = int(ap_mask.sum())
    if ap is not None:
        vals = ap[ap_mask]
        map_value = float(vals.mean()) if m else math.nan
        if m < n_valid:
            half = 1.96 * float(vals.std(ddof=1)) / math.sqrt(m) * math.sqrt(1.0 - m / n_valid)
            map_ci = (max(0.0, map_value - half), min(1.0, map_value + half))
    return RetrievalResult(
        hit_at=hit_at,
        map=map_value,
        map_queries=m,
        map_ci95=map_ci,
        n_queries=n_valid,
        valid=valid,
        top1_correct=top1,
        topk_indices=topk,
        average_precision=ap,
    )


def _queries_with_ap(valid: np.ndarray, compute_map: bool, max_map_queries: int | None, seed: int) -> np.ndarray:
    """Which queries get an AP: every valid one, or a seeded uniform sample of ``max_map_queries`` of them."""
    mask = np.zeros(valid.shape[0], dtype=bool)
    if not compute_map:
        return mask
    valid_idx = np.flatnonzero(valid)
    if max_map_queries is not None and valid_idx.size > max_map_queries:
        mask[np.random.default_rng(seed).choice(valid_idx, size=int(max_map_queries), replace=False)] = True
    else:
        mask[valid_idx] = True
    return mask


def _search_without_ap(
    q64: torch.Tensor, g64: torch.Tensor, queries: np.ndarray, k: int, rows: int, topk: np.ndarray
) -> None:
    """The top-k of ``queries`` into ``topk``, from a float32 GEMM checked against its error bound."""
    import torch

    if not queries.size:
        return
    q32, g32_t, g64_t = q64.to(torch.float32), g64.T.contiguous().to(torch.float32), g64.T.contiguous()
    fp32_exact = torch.get_float32_matmul_precision() == "highest"
    for start in range(0, queries.size, rows):
        qi = queries[start : start + rows]
        q_t = torch.from_numpy(qi.copy())
        if fp32_exact:
            nb = topk_fast(q32.index_select(0, q_t), g32_t, q64.index_select(0, q_t), g64, q_t, k)
        else:  # reduced-precision float32 matmul (e.g. bf16): the error bound does not hold
            nb = topk_from_rank_keys(q64.index_select(0, q_t), g64_t, q_t, k)
        topk[qi, :k] = nb.numpy()


def _search_with_ap(
    q64: torch.Tensor,
    g64: torch.Tensor,
    codes: np.ndarray,
    counts: np.ndarray,
    ap_mask: np.ndarray,
    k: int,
    rows: int,
    topk: np.ndarray,
    ap: np.ndarray,
) -> None:
    """Top-k and exact AP of the queries in ``ap_mask``, one label at a time against the label-ordered gallery.

    Blocks run on ``torch.get_num_threads()`` threads: the sort and the element-wise
    NumPy work of a block release the GIL, so both cores work while one block sorts.
    Blocks write disjoint rows of ``topk`` and ``ap``, so the result does not depend on
    the threads.
    """
    import torch

    order = np.argsort(codes, kind="stable")  # columns in label order, by index within a label
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    g_t = g64.index_select(0, torch.from_numpy(order)).T.contiguous()
    q_grid = q64 * GRID  # scaling by a power of two is exact: q_grid @ g = 2**24 · s, bit for bit
    blocks: list[tuple[np.ndarray, int, int]] = []
    for c in np.flatnonzero(counts >= 2):
        lo, hi = int(bounds[c]), int(bounds[c + 1])
        members = order[lo:hi]
        queries = members[ap_mask[members]]
        blocks.extend((queries[s : s + rows], lo, hi) for s in range(0, queries.size, rows))

    local = threading.local()

    def run(block: tuple[np.ndarray, int, int]) -> None:
        qi, lo, hi = block
        # One score buffer per thread, reused by every block: a fresh [rows, N] float64 array per block costs
        # as much in first-touch page faults as the GEMM that fills it.
        if getattr(local, "grid", None) is None:
            local.grid = torch.empty((rows, g_t.shape[1]), dtype=torch.float64)
        grid = local.grid[: qi.size]
        torch.matmul(q_grid.index_select(0, torch.from_numpy(qi.copy())), g_t, out=grid)
        topk[qi, :k], ap[qi] = topk_and_average_precision(grid, position[qi], lo, hi, order, k)

    workers = max(1, min(torch.get_num_threads(), len(blocks)))
    if workers == 1:
        for block in blocks:
            run(block)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(run, blocks):
            pass
