"""Exact average precision of leave-one-out queries: one sort per block, no conversion pass.

For a query ``i`` with ``P`` relevant gallery items (same label, itself left out) ranked at
``rank(p_1) < … < rank(p_P)`` in its gallery (score descending, index ascending; see
:mod:`graceful_core.metrics.neighbours`):

``AP_i = (1/P) Σ_r r / rank(p_r)``

:func:`topk_and_average_precision` turns each score of a block of queries, in place, into
one unique integer key that encodes (score descending, index ascending, relevance) and
sorts the keys: a relevant item's rank is its position in its row, and the first k keys
of a row are the query's k nearest neighbours. Ties are exact: equal grid scores are
ordered by index inside the key.

Only the items ranked at or above the worst relevant one enter any ``rank(p_r)``. When
they are a small share of the block (many labels: each query has few relevant items, and
they rank high), only they are gathered and sorted, all rows in one sort; otherwise whole
rows are sorted.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["topk_and_average_precision"]

#: Keys live in [2**52, 2**53): there float64 holds every integer, and its bits read as an
#: int64 are monotone in the value and end in the integer's lowest bit.
_BINADE = 2.0**52
_LAST = 2.0**53 - 1.0
_BINADE_BITS = int(np.array(_BINADE).view(np.int64))
_LOW_BYTE = 0 if sys.byteorder == "little" else 7
#: Above this share of a block's items ranked at or above the worst relevant one, sorting
#: whole rows beats gathering those items and sorting them (measured: 45 % vs 15 %).
_SORT_ROWS_ABOVE = 0.3


def topk_and_average_precision(
    grid: torch.Tensor, own: np.ndarray, lo: int, hi: int, sample_of_column: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours and AP of a block of queries that share one label.

    Parameters
    ----------
    grid : Tensor float64 [b, N]
        ``2**24 · <q, g>`` (not yet rounded) of the b queries against the gallery, whose
        columns are in label order; overwritten.
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
    With ``s = round(grid)`` (an integer in ``[-2**24, 2**24]``), item j's key is the
    integer ``2**52 + (2**24 − s) · 2N + 2 · sample_j + [j not relevant]``, computed in
    place in float64 (every term an integer, the sum below ``2**53``: exact). Keys are
    unique, ascending key = score descending, then sample ascending, and they all lie in
    ``[2**52, 2**53)``, where consecutive float64 values are 1 apart: there the bits of a
    float64, read as an int64, grow with the value and are ``2**52``'s bits plus the key
    minus ``2**52``. So the block is sorted as int64 without a conversion pass, relevance
    is the lowest bit and the sample index is ``(key − 2**52) // 2 mod N``. The query's
    own column gets ``2**53 − 1`` and never ranks. When gathering, row r's kept keys get
    ``r · 2**27 · N`` added (keys minus ``2**52`` stay below ``2**27 · N``; with
    ``b · N <= 2**23`` the sum stays below ``2**50``), so one sort orders every row.
    """
    import torch

    b, n = grid.shape
    if n >= 1 << 25:
        raise ValueError(f"exact AP supports galleries below {1 << 25:,} items, got {n:,}")
    p = hi - lo - 1
    low = 2.0 * sample_of_column + (_BINADE + 2.0**24 * 2 * n + 1.0)
    low[lo:hi] -= 1.0
    grid.round_().mul_(-2.0 * n).add_(torch.from_numpy(low))
    g = grid.numpy()
    rows = np.arange(b)
    g[rows, own] = 0.0  # below every key: out of the worst relevant key's way
    key = g.view(np.int64)
    worst = key[:, lo:hi].max(axis=1)
    if p < k:  # the k nearest reach beyond the relevant items
        worst = np.maximum(worst, np.partition(key, k, axis=1)[:, k])
    g[rows, own] = _LAST
    # the share of items at or above the worst relevant one, estimated on every 16th column
    if np.count_nonzero(key[:, ::16] <= worst[:, None]) > _SORT_ROWS_ABOVE * b * ((n + 15) // 16):
        key.sort(axis=1)  # most of the block matters: sort whole rows
        lowest = key.view(np.uint8)[:, _LOW_BYTE::8]  # each key's least significant byte, without a copy
        rank0 = np.flatnonzero(((lowest ^ 1) & 1).view(np.bool_)).reshape(b, p) - (rows * n)[:, None]
        topk = ((key[:, :k] - _BINADE_BITS) >> 1) % n
    else:
        keep = key <= worst[:, None]
        counts = np.count_nonzero(keep, axis=1)
        kept = key[keep]
        del keep
        # one sort for the block: each row's kept keys relative to 2**52 (below 2**27 · N) after a row offset
        kept += np.repeat(rows * (n << 27) - _BINADE_BITS, counts)
        kept.sort()
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank0 = np.flatnonzero((kept & 1) == 0).reshape(b, p) - starts[:, None]
        topk = ((kept[starts[:, None] + np.arange(k)] % (n << 27)) >> 1) % n
    ap = (np.arange(1, p + 1, dtype=np.float64) / (rank0 + 1)).mean(axis=1)
    return topk, ap
