"""Compiled passes of the exact average precision (numba; imported on first use, cached on disk).

:mod:`graceful_core.metrics.average_precision` states what is computed; this module is how.
Each item ``j`` of a query's row has the integer key ``((2**24 − s_j) << bits) + 2 · sample_j
+ [j not relevant]`` (``s_j`` its grid score, ``bits`` enough for ``2N``): ascending key =
score descending, then sample ascending.

For one row, with its ``P`` relevant keys sorted:

1. the relevant keys' score range is cut into at most ``2P + 1`` buckets of ``2**shift``
   grid steps (:func:`_buckets`); a bucket holding a relevant key is *hot*;
2. one pass over the other items (:func:`_scan`) rounds each score, counts the item in its
   bucket (items ranked above the best relevant key go to bucket 0, those below the worst
   to a last bucket of their own), keeps the k best keys, and lists the items that fall in
   a hot bucket, without a branch;
3. each listed item is placed among its bucket's relevant keys by binary search
   (:func:`_place`);
4. then ``#{others before p_r}`` = the items of every bucket before p_r's, plus the listed
   items of its own bucket placed at or before r (:func:`_precisions`).

Every function releases the GIL (``nogil=True``): the blocks of a search run on threads.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["count_others", "relevant_keys"]

#: Grid scores are integers in [-2**24, 2**24] (cosines times 2**24, rounded); the key's score part is TOP − s.
TOP = 1 << 24
#: Adding and subtracting 1.5 · 2**52 rounds a float64 below 2**51 to an integer, half to even
#: (as ``torch.round`` and ``np.rint`` do), without a call.
ROUND = 1.5 * 2.0**52
#: Score buckets per relevant item of a row: the finer, the fewer items share a bucket with a relevant one.
BUCKETS_PER_RELEVANT = 2


@numba.njit(nogil=True, cache=True, inline="always")
def _score_part(x):  # pragma: no cover - compiled
    """``2**24 − round(x)``, half to even."""
    return TOP - np.int64((x + ROUND) - ROUND)


@numba.njit(nogil=True, cache=True, inline="always")
def _key(x, bits, low):  # pragma: no cover - compiled
    """An item's key from its unrounded grid score ``x`` and its low part ``2 · sample + [not relevant]``."""
    return (_score_part(x) << bits) + low


@numba.njit(nogil=True, cache=True, inline="always")
def _bucket(score_part, s_first, shift, last):  # pragma: no cover - compiled
    """The bucket of a key's score part: 0 … last over the relevant keys, before them 0, after them last + 1."""
    return min(max((score_part - s_first) >> shift, 0), last + 1)


@numba.njit(nogil=True, cache=True)
def relevant_keys(grid, own, lo, hi, low, bits, out):  # pragma: no cover - compiled
    """``out[r]``: the keys of row r's relevant columns ``lo:hi`` except its own column, unsorted."""
    for r in range(grid.shape[0]):
        m = 0
        for j in range(lo, hi):
            if j != own[r]:
                out[r, m] = _key(grid[r, j], bits, low[j])
                m += 1


@numba.njit(nogil=True, cache=True)
def _buckets(keys, bits, width, bucket_of, first_of, hot):  # pragma: no cover - compiled
    """Cut the sorted relevant keys' score range into buckets; return ``(s_first, shift, last)``.

    ``bucket_of[i]``: relevant key i's bucket; ``first_of[t]``: the first relevant index whose
    bucket is at least t (t = 0 … last + 2); ``hot[t]``: 1 where bucket t holds a relevant key.
    Buckets 0 … last cover the relevant keys, bucket last + 1 collects what ranks after them.
    """
    p = keys.shape[0]
    s_first = keys[0] >> bits
    span = (keys[p - 1] >> bits) - s_first
    shift = 0
    while (span >> shift) >= width:
        shift += 1
    last = span >> shift
    hot[: last + 2] = 0
    for i in range(p):
        bucket_of[i] = _bucket(keys[i] >> bits, s_first, shift, last)
        hot[bucket_of[i]] = 1
    i = 0
    for t in range(last + 3):
        while i < p and bucket_of[i] < t:
            i += 1
        first_of[t] = i
    return s_first, shift, last


@numba.njit(nogil=True, cache=True)
def _scan(row, j0, j1, low, bits, s_first, shift, last, hot, counts, listed, n_listed, best_k):  # pragma: no cover
    """Count the items ``j0:j1`` of a row in their buckets, keep the k best keys, list those in hot buckets.

    Returns the new number of listed items.
    """
    k = best_k.shape[0]
    worst_k = best_k[k - 1]
    for j in range(j0, j1):
        key = _key(row[j], bits, low[j])
        if key < worst_k:
            m = k - 1
            while m > 0 and best_k[m - 1] > key:
                best_k[m] = best_k[m - 1]
                m -= 1
            best_k[m] = key
            worst_k = best_k[k - 1]
        t = np.uint64(_bucket(key >> bits, s_first, shift, last))
        # four interleaved histograms: items landing in one bucket one after another (all those ranked after
        # every relevant item do) would otherwise wait on each other's increment
        counts[(t << np.uint64(2)) | np.uint64(j & 3)] += 1
        listed[n_listed] = key  # written always, kept only in a hot bucket: no branch
        n_listed += hot[t]
    return n_listed


@numba.njit(nogil=True, cache=True)
def _place(listed, n_listed, keys, bits, s_first, shift, last, first_of, extra):  # pragma: no cover - compiled
    """``extra[i]``: the listed items that come just before relevant key i within i's bucket."""
    extra[:] = 0
    for m in range(n_listed):
        key = listed[m]
        t = _bucket(key >> bits, s_first, shift, last)
        a = first_of[t]
        end = first_of[t + 1]
        if end - a == 1:  # most hot buckets hold one relevant key: one comparison instead of a search
            extra[a] += keys[a] > key
            continue
        z = end
        while a < z:
            mid = (a + z) >> 1
            if keys[mid] < key:
                a = mid + 1
            else:
                z = mid
        if a < end:  # one after every relevant key of its bucket is already in the bucket's count
            extra[a] += 1


@numba.njit(nogil=True, cache=True)
def _precisions(last, bucket_of, first_of, counts, extra, out):  # pragma: no cover - compiled
    """``out[i] = (i + 1) / rank(p_i)`` with ``rank(p_i) = i + 1 + #{others before p_i}``."""
    before = 0
    for t in range(last + 1):
        c = counts[4 * t] + counts[4 * t + 1] + counts[4 * t + 2] + counts[4 * t + 3]
        counts[4 * t] = before  # now: the items of every bucket before t
        before += c
    in_bucket = 0
    for i in range(out.shape[0]):
        t = bucket_of[i]
        if i == first_of[t]:
            in_bucket = 0
        in_bucket += extra[i]
        out[i] = (i + 1) / (i + 1 + counts[4 * t] + in_bucket)


@numba.njit(nogil=True, cache=True)
def count_others(grid, lo, hi, low, bits, rk, topk, precision):  # pragma: no cover - compiled
    """Each row's k nearest (``topk``, sample indices) and per-relevant precisions, from its sorted relevant keys."""
    n = grid.shape[1]
    p = rk.shape[1]
    k = topk.shape[1]
    width = BUCKETS_PER_RELEVANT * p
    bucket_of = np.empty(p, dtype=np.int64)
    first_of = np.empty(width + 3, dtype=np.int64)
    hot = np.empty(width + 2, dtype=np.uint8)
    counts = np.empty(4 * (width + 2), dtype=np.int32)
    listed = np.empty(n, dtype=np.int64)
    extra = np.empty(p, dtype=np.int64)
    best_k = np.empty(k, dtype=np.int64)
    sample_mask = (np.int64(1) << bits) - 1
    for r in range(grid.shape[0]):
        keys = rk[r]
        s_first, shift, last = _buckets(keys, bits, width, bucket_of, first_of, hot)
        counts[: 4 * (last + 2)] = 0
        for m in range(k):
            best_k[m] = keys[m] if m < p else np.iinfo(np.int64).max
        n_listed = _scan(grid[r], 0, lo, low, bits, s_first, shift, last, hot, counts, listed, 0, best_k)
        n_listed = _scan(grid[r], hi, n, low, bits, s_first, shift, last, hot, counts, listed, n_listed, best_k)
        _place(listed, n_listed, keys, bits, s_first, shift, last, first_of, extra)
        _precisions(last, bucket_of, first_of, counts, extra, precision[r])
        for m in range(k):
            topk[r, m] = (best_k[m] & sample_mask) >> 1
