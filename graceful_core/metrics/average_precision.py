"""Exact average precision of leave-one-out queries: relevant items sorted, the others counted.

For a query ``i`` with ``P`` relevant gallery items (same label, itself left out) ranked at
``rank(p_1) < … < rank(p_P)`` in its gallery (score descending, index ascending; see
:mod:`graceful_core.metrics.neighbours`):

``AP_i = (1/P) Σ_r r / rank(p_r)``,  ``rank(p_r) = r + #{other items ranked before p_r}``.

Each item ``j`` of a query's row gets one unique integer key that orders the ranking:
``key_j = (2**24 − s_j) · 2N + 2 · sample_j + [j not relevant]`` with ``s_j`` the score on
the ``2**-24`` grid (an integer), so a smaller key ranks higher and equal grid scores are
ordered by sample index: ties are exact.

Only the ``P`` relevant keys of a row are sorted (NumPy's sort, a tenth of the row at ten
labels). Every other item is then *counted*, not sorted: in a histogram over score buckets
that cut the relevant keys' range, and, when its bucket holds a relevant key, placed among
those by binary search. Running sums give how many other items rank before each relevant
one. The k nearest neighbours come from the same pass (a k-slot insertion list). The passes
are compiled (:mod:`graceful_core.metrics.average_precision_kernels`) and read each score
once; sorting whole rows of keys took about twice as long.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["topk_and_average_precision"]


def topk_and_average_precision(
    grid: torch.Tensor, own: np.ndarray, lo: int, hi: int, sample_of_column: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours and AP of a block of queries that share one label.

    Parameters
    ----------
    grid : Tensor float64 [b, N]
        ``2**24 · <q, g>`` (not yet rounded) of the b queries against the gallery, whose
        columns are in label order; read only.
    own : ndarray int64 [b]
        Each query's own column (left out of its ranking).
    lo, hi : int
        The columns ``lo:hi`` are the gallery items with the queries' label (own included);
        at least one besides the own column.
    sample_of_column : ndarray int64 [N]
        The sample index of each column: ties are ranked by it, lower first.
    k : int
        Neighbours to return, ``1 <= k <= N - 1``.

    Returns
    -------
    topk : ndarray int64 [b, k]
        Sample indices of the k nearest, in rank order.
    ap : ndarray float64 [b]

    Notes
    -----
    With ``s = round(grid)`` (half to even, an integer in ``[-2**24, 2**24]``), item j's key
    is ``(2**24 − s) · 2N + 2 · sample_j + [j not relevant]``: unique, below ``2**63``, and
    ascending key = score descending, then sample ascending (the kernels shift the score part
    by enough bits for ``2N`` instead of multiplying: the same order). The relevant keys of
    each row are sorted; every other item is counted in a score bucket over the relevant keys'
    range, and placed among the relevant keys by binary search only when its bucket holds one;
    summed in order, the counts give ``#{others before p_r}`` for every r. The per-query
    precisions ``r / rank(p_r)`` are averaged by NumPy.

    Examples
    --------
    One query (column 0) against three items: the relevant one (column 1) ranks second.

    >>> import torch
    >>> grid = torch.tensor([[2.0**24, 0.5 * 2**24, 0.9 * 2**24, 0.1 * 2**24]], dtype=torch.float64)
    >>> topk, ap = topk_and_average_precision(grid, np.array([0]), 0, 2, np.arange(4), 2)
    >>> topk.tolist(), ap.tolist()
    ([[2, 1]], [0.5])
    """
    b, n = grid.shape
    bits = (2 * n - 1).bit_length()
    if bits > 37:  # the key's score part (up to 2**25) shifted by ``bits`` must stay below 2**63
        raise ValueError(f"exact AP supports galleries below {1 << 36:,} items, got {n:,}")
    # numba loads on first use: importing it costs about a second
    from graceful_core.metrics.average_precision_kernels import count_others, relevant_keys

    g = grid.numpy()
    own = np.ascontiguousarray(own, dtype=np.int64)
    low = 2 * np.asarray(sample_of_column, dtype=np.int64) + 1
    low[lo:hi] -= 1
    rk = np.empty((b, hi - lo - 1), dtype=np.int64)
    relevant_keys(g, own, lo, hi, low, bits, rk)
    rk.sort(axis=1)
    topk = np.empty((b, k), dtype=np.int64)
    precision = np.empty_like(rk, dtype=np.float64)
    count_others(g, lo, hi, low, bits, rk, topk, precision)
    return topk, precision.mean(axis=1)
