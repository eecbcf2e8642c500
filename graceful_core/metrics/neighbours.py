"""Exact nearest neighbours on the score grid: a block of queries' k best gallery items.

The ranking of a query's gallery is by score descending (the grid scores of
:mod:`graceful_core.metrics.retrieval_inputs`), then by gallery index ascending, with the
query's own index left out: exact and deterministic. Two ways to get its first k items:

* :func:`topk_fast`: a float32 GEMM proposes candidates, their exact scores are
  recomputed in float64, and only rows where float32 cannot decide are scored exactly in
  full (the error bound of a float32 dot product of unit vectors).
* :func:`topk_from_rank_keys`: every score exactly (float64), one unique int64 key per
  item; used when float32 matmuls run at reduced precision and the bound does not hold.

Both give what :func:`topk_tie_exact` gives on :func:`exact_scores` (``tests/metrics/test_retrieval.py``
checks them against a brute force that sorts every row).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from graceful_core.metrics.retrieval_inputs import GRID

if TYPE_CHECKING:
    import torch

__all__ = ["exact_scores", "topk_fast", "topk_from_rank_keys", "topk_tie_exact"]


def exact_scores(q: torch.Tensor, g_t: torch.Tensor) -> torch.Tensor:
    """The defined scores: the float64 cosine rounded to a multiple of 2**-24 (float32).

    ``s_ij = round(2**24 · <q_i, g_j>) / 2**24`` with q, g unit vectors in float64 (``g_t``
    is the gallery transposed, ``[D, N]``); every such value is exact in float32. A float32
    GEMM rounds differently depending on the kernel path a row or column takes (and float64
    leaves residues like 1e-17 where the exact cosine is 0), so equal embeddings could score
    differently in different blocks; the absolute grid makes ties exact and the result
    independent of blocking (barring an exact cosine within ~1e-14 of a half-grid point).
    """
    import torch

    s = (q @ g_t).mul_(GRID).round_()
    return s.to(torch.float32).mul_(1.0 / GRID)


def topk_tie_exact(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k best columns per row, ordered by (score desc, index asc), exactly.

    ``torch.topk`` does not say which of several equal scores it keeps; rows where a tie
    straddles the k-th place are redone by taking the equal scores with the lowest
    indices. The result is then sorted by index and stably by score.
    """
    import torch

    vals, idx = torch.topk(scores, k, dim=1, largest=True, sorted=True)
    t = vals[:, -1:]
    eq = scores == t
    straddle = (eq.sum(1) > (vals == t).sum(1)).nonzero().flatten()
    if straddle.numel():
        sub = scores.index_select(0, straddle)
        ts = t.index_select(0, straddle)
        eqs = sub == ts
        need = k - (sub > ts).sum(1, keepdim=True)
        chosen = (sub > ts) | (eqs & (torch.cumsum(eqs, dim=1) <= need))
        cols = chosen.nonzero()[:, 1].view(-1, k)
        idx[straddle] = cols
        vals[straddle] = sub.gather(1, cols)
    idx, order = idx.sort(dim=1)
    vals = vals.gather(1, order)
    _, order = vals.sort(dim=1, descending=True, stable=True)
    return idx.gather(1, order)


def topk_fast(
    q32: torch.Tensor, g32_t: torch.Tensor, q64: torch.Tensor, g64: torch.Tensor, self_cols: torch.Tensor, k: int
) -> torch.Tensor:
    """Exact top-k (as :func:`topk_tie_exact` on :func:`exact_scores`) from a float32 GEMM.

    Candidates are the ``k + 8`` best float32 scores; their exact scores are recomputed
    in float64. For unit vectors the float32 GEMM is within ``(D + 2) · 2**-24`` of the
    exact cosine (Cauchy-Schwarz bounds Σ|q_d g_d| by 1), so any other column scores at
    most ``c + eps`` exactly, with c the lowest candidate float32 score and eps twice
    that bound. Rows whose exact k-th score is not above ``c + eps`` (ties or near-ties
    at the boundary) are recomputed exactly in full.
    """
    import torch

    n = g32_t.shape[1]
    s32 = q32 @ g32_t
    s32.scatter_(1, self_cols.view(-1, 1), -math.inf)
    m = min(k + 8, n - 1)
    c32, cand = torch.topk(s32, m, dim=1, largest=True, sorted=True)
    del s32
    exact = torch.einsum("bd,bmd->bm", q64, g64[cand]).mul_(GRID).round_().to(torch.float32).mul_(1.0 / GRID)
    cand, order = cand.sort(dim=1)
    exact = exact.gather(1, order)
    exact, order = exact.sort(dim=1, descending=True, stable=True)
    cand = cand.gather(1, order)
    out = cand[:, :k].clone()
    if m < n - 1:
        eps = 2.0 * (q32.shape[1] + 2) * 2.0**-24 + 1.0 / GRID
        unsure = (exact[:, k - 1].to(torch.float64) <= c32[:, -1].to(torch.float64) + eps).nonzero().flatten()
        if unsure.numel():
            s = exact_scores(q64.index_select(0, unsure), g64.T)
            s.scatter_(1, self_cols.index_select(0, unsure).view(-1, 1), -math.inf)
            out[unsure] = topk_tie_exact(s, k)
    return out


def topk_from_rank_keys(q: torch.Tensor, g_t: torch.Tensor, self_cols: torch.Tensor, k: int) -> torch.Tensor:
    """Exact top-k from unique int64 keys whose ascending order is the ranking of each row.

    ``key_ij = −round(2**24 · s_ij) · N + j`` (the grid score, then the index): ascending
    key = score descending, index ascending. The query's own column gets the largest
    int64, so it ranks last and is never among the neighbours.
    """
    import torch

    n = g_t.shape[1]
    key = (q @ g_t).mul_(GRID).round_().to(torch.int64)
    key.mul_(-n).add_(torch.arange(n, dtype=torch.int64))
    key.scatter_(1, self_cols.view(-1, 1), torch.iinfo(torch.int64).max)
    return torch.topk(key, k, dim=1, largest=False).indices
