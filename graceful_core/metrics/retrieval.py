"""Embedding-compatibility metrics: leave-one-out retrieval and the BCT cross-test.

Protocol (``docs/metrics.md``, adapted from Shen et al., "Towards Backward-Compatible
Representation Learning", CVPR 2020): every sample ``i`` is a query embedded by a query
model ``q``; it is searched by cosine similarity against all *other* samples embedded by
a gallery model ``g`` (leave-one-out: the query's own index is excluded, whatever its
score). ``M(q, g)`` is one of

* Hit@k: ``1[∃ j ∈ topk_g(i): y_j = y_i]``, averaged over queries;
* mAP: the mean over queries of the average precision over the whole ranked gallery,
  ``AP_i = (1/P_i) Σ_{p relevant} #{relevant ranked at or above p} / rank(p)`` with
  "relevant" = same label and ``P_i`` the number of other samples with label ``y_i``.

Queries whose label has no other sample (``P_i = 0``) are left out of both. The ranking
is exact and deterministic: a score is the cosine of the float64-normalised embeddings,
computed in float64 and rounded to a multiple of 2**-24 (so it is exact in float32 and
does not depend on how rows are blocked), and equal scores are ranked by gallery index,
lower index first. A zero embedding is
normalised to the zero vector: all its scores are 0, so its neighbours are decided by
index alone.

Nothing here holds an ``N x N`` matrix: queries are processed in blocks of rows with a
torch matmul (memory ``O(block x N)``). The average precision is exact for every query:
each row's gallery is sorted once (NumPy's vectorised sort) on a unique int64 key that
encodes (score descending, index ascending) and, in its lowest bit, relevance; the
sorted row gives the top-k and the rank of every relevant item
(:func:`_rank_and_average_precision`).

How a model's classifier head fits in: a caller that wants the BCT "influence" check
applies the old model's ``head`` to the *new* embeddings (``Model.head``, done by the
inference code) and scores the logits with :func:`head_accuracy`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from graceful_core.jsonable import json_clean
from graceful_core.metrics.significance import wilson_interval

if TYPE_CHECKING:  # imported where it is used: comparing predictions tables never loads torch
    import torch

__all__ = [
    "RetrievalResult",
    "CrossTest",
    "retrieval_metrics",
    "cross_test",
    "head_accuracy",
    "nearest_neighbour_overlap",
]

#: Upper bound on the number of scores held per block (rows x gallery size); the
#: ``block_size`` argument is capped so that a block of int64 keys stays ~64 MiB.
_MAX_BLOCK_ELEMENTS = 1 << 23

#: Scores live on this absolute grid (see :func:`_exact_scores`).
_GRID = float(2**24)

_PAIRS = ("old_old", "new_new", "new_old", "old_new")


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


# --------------------------------------------------------------------------- helpers


def _as_embedding(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D [N, D], got shape {a.shape}")
    if a.shape[1] == 0:
        raise ValueError(f"{name} has no dimensions (shape {a.shape})")
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real numbers, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values (or values beyond float32)")
    return a


def _label_codes(labels: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"labels must be 1-D with {n} entries (one per embedding), got shape {y.shape}")
    uniq, codes = np.unique(y, return_inverse=True)
    return uniq, codes.reshape(-1).astype(np.int64)


def _normalise(a: np.ndarray) -> torch.Tensor:
    """L2-normalise rows in float64; zero rows stay zero."""
    import torch

    t = torch.from_numpy(a.astype(np.float64))
    norm = torch.linalg.vector_norm(t, dim=1, keepdim=True)
    return t / torch.where(norm > 0, norm, torch.ones_like(norm))


def _exact_scores(q: torch.Tensor, g_t: torch.Tensor) -> torch.Tensor:
    """The defined scores: the float64 cosine rounded to a multiple of 2**-24 (float32).

    ``s_ij = round(2**24 · <q_i, g_j>) / 2**24`` with q, g unit vectors in float64; every
    such value is exact in float32. A float32 GEMM rounds differently depending on the
    kernel path a row or column takes (and float64 leaves residues like 1e-17 where the
    exact cosine is 0), so equal embeddings could score differently in different blocks;
    the absolute grid makes ties exact and the result independent of blocking (barring
    an exact cosine within ~1e-14 of a half-grid point).
    """
    import torch

    s = (q @ g_t).mul_(_GRID).round_()
    return s.to(torch.float32).mul_(1.0 / _GRID)


def _topk_fast(
    q32: torch.Tensor, g32_t: torch.Tensor, q64: torch.Tensor, g64: torch.Tensor, self_cols: torch.Tensor, k: int
) -> torch.Tensor:
    """Exact top-k (as :func:`_topk_tie_exact` on :func:`_exact_scores`) from a float32 GEMM.

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
    exact = torch.einsum("bd,bmd->bm", q64, g64[cand]).mul_(_GRID).round_().to(torch.float32).mul_(1.0 / _GRID)
    cand, order = cand.sort(dim=1)
    exact = exact.gather(1, order)
    exact, order = exact.sort(dim=1, descending=True, stable=True)
    cand = cand.gather(1, order)
    out = cand[:, :k].clone()
    if m < n - 1:
        eps = 2.0 * (q32.shape[1] + 2) * 2.0**-24 + 1.0 / _GRID
        unsure = (exact[:, k - 1].to(torch.float64) <= c32[:, -1].to(torch.float64) + eps).nonzero().flatten()
        if unsure.numel():
            s = _exact_scores(q64.index_select(0, unsure), g64.T)
            s.scatter_(1, self_cols.index_select(0, unsure).view(-1, 1), -math.inf)
            out[unsure] = _topk_tie_exact(s, k)
    return out


def _rank_keys(q: torch.Tensor, g_t: torch.Tensor, self_cols: torch.Tensor) -> torch.Tensor:
    """Unique int64 keys whose ascending order is the ranking of each row's gallery.

    ``key_ij = −round(2**24 · s_ij) · N + j`` (the grid score of :func:`_exact_scores`,
    then the index): ascending key = score descending, index ascending. The query's own
    column gets the largest int64, so it ranks last and is never among the neighbours.
    """
    import torch

    n = g_t.shape[1]
    key = (q @ g_t).mul_(_GRID).round_().to(torch.int64)
    key.mul_(-n).add_(torch.arange(n, dtype=torch.int64))
    key.scatter_(1, self_cols.view(-1, 1), torch.iinfo(torch.int64).max)
    return key


def _topk_tie_exact(scores: torch.Tensor, k: int) -> torch.Tensor:
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


def _rank_and_average_precision(
    grid: torch.Tensor, rows: np.ndarray, members: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k and AP of queries of one class, from one sort of each row.

    Parameters
    ----------
    grid : Tensor float64 [b, N]
        ``round(2**24 · s)`` of the b queries against the whole gallery; overwritten.
    rows : ndarray int64 [b]
        The queries' indices (their own column is left out of the ranking).
    members : ndarray int64 [P + 1]
        Gallery indices of the class (the queries among them).
    k : int
        Neighbours to return (at most N - 1).

    Returns
    -------
    topk : ndarray int64 [b, k]
    ap : ndarray float64 [b]

    Notes
    -----
    Each gallery column j gets the unique int64 key
    ``2 · (−round(2**24 · s_j) · N + j) + [j not relevant]``: ascending key is the
    ranking (score descending, index ascending), the index is ``(key >> 1) mod N`` and
    relevance is the lowest bit. The query's own column gets the largest int64 and sorts
    last. One NumPy sort per row then gives the k nearest and the positions ``pos_i`` of
    the P relevant items, ``AP = (1/P) Σ_i (i + 1) / (pos_i + 1)``.
    """
    import torch

    b, n = grid.shape
    p = members.size - 1
    low = 2 * np.arange(n, dtype=np.float64) + 1.0
    low[members] -= 1.0
    # |key| < 2**25 · 2N, exact in float64 up to N = 2**27
    key = grid.mul_(-2.0 * n).add_(torch.from_numpy(low)).to(torch.int64).numpy()
    key[np.arange(b), rows] = np.iinfo(np.int64).max
    key.sort(axis=1)
    topk = (key[:, :k] >> 1) % n
    pos = np.flatnonzero((key[:, :-1] & 1) == 0).reshape(b, p) % (n - 1)
    ap = (np.arange(1, p + 1, dtype=np.float64) / (pos + 1)).mean(axis=1)
    return topk, ap


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(int(k) for k in ks)
    if not ks or any(k < 1 for k in ks):
        raise ValueError(f"ks must be a non-empty sequence of positive integers, got {ks}")
    return ks


# --------------------------------------------------------------------------- public API


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
        Queries per block (capped so a block holds at most 2**23 scores). Does not
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
    import torch

    q = _as_embedding(query_emb, "query_emb")
    g = _as_embedding(gallery_emb, "gallery_emb")
    if q.shape[0] != g.shape[0]:
        raise ValueError(f"query_emb and gallery_emb must embed the same samples: {q.shape[0]} vs {g.shape[0]} rows")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"embedding sizes differ: query {q.shape[1]}, gallery {g.shape[1]}")
    ks = _check_ks(ks)
    if int(block_size) < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if max_map_queries is not None and int(max_map_queries) < 2:
        raise ValueError(f"max_map_queries must be >= 2, got {max_map_queries}")
    n = q.shape[0]
    _, codes = _label_codes(labels, n)
    counts = np.bincount(codes) if n else np.zeros(0, dtype=np.int64)
    valid = counts[codes] >= 2 if n else np.zeros(0, dtype=bool)
    valid_idx = np.flatnonzero(valid)
    n_valid = int(valid_idx.size)

    # Which queries get an AP.
    ap_mask = np.zeros(n, dtype=bool)
    if compute_map:
        if max_map_queries is not None and n_valid > max_map_queries:
            rng = np.random.default_rng(seed)
            ap_mask[rng.choice(valid_idx, size=int(max_map_queries), replace=False)] = True
        else:
            ap_mask[valid_idx] = True

    kmax = max(ks)
    k_eff = min(kmax, max(n - 1, 0))
    topk = np.full((n, kmax), -1, dtype=np.int64)
    ap = np.full(n, np.nan) if compute_map else None

    if n >= 2:
        q64, g64 = _normalise(q), _normalise(g)
        g64_t = g64.T.contiguous()
        q32, g32_t = q64.to(torch.float32), g64_t.to(torch.float32)
        fp32_exact = torch.get_float32_matmul_precision() == "highest"
        # Queries in class order (stable), so a block holds few classes.
        order = np.argsort(codes, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(counts)])
        members = {int(c): order[bounds[c] : bounds[c + 1]] for c in np.flatnonzero(counts >= 2)}
        q_grid = q64 * _GRID  # scaling by a power of two is exact: q_grid @ g = 2**24 · s, bit for bit
        rows = max(1, min(int(block_size), _MAX_BLOCK_ELEMENTS // n))
        for start in range(0, n, rows):
            qi = order[start : start + rows]
            need_ap = ap_mask[qi]
            fast = qi[~need_ap]
            if fast.size and k_eff:
                f_t = torch.from_numpy(fast.copy())
                if fp32_exact:
                    nb = _topk_fast(q32.index_select(0, f_t), g32_t, q64.index_select(0, f_t), g64, f_t, k_eff)
                else:  # reduced-precision float32 matmul (e.g. bf16): the error bound does not hold
                    nb = torch.topk(
                        _rank_keys(q64.index_select(0, f_t), g64_t, f_t), k_eff, dim=1, largest=False
                    ).indices
                topk[fast, :k_eff] = nb.numpy()
            slow = qi[need_ap]
            if not slow.size:
                continue
            s_t = torch.from_numpy(slow.copy())
            grid = (q_grid.index_select(0, s_t) @ g64_t).round_()  # the grid scores, in units of 2**-24
            # rows are in class order, so each class is a contiguous run
            slow_codes = codes[slow]
            cuts = np.flatnonzero(np.diff(slow_codes)) + 1
            for lo, hi in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [slow.size]])):
                nb, ap[slow[lo:hi]] = _rank_and_average_precision(
                    grid[lo:hi], slow[lo:hi], members[int(slow_codes[lo])], k_eff
                )
                topk[slow[lo:hi], :k_eff] = nb
            del grid

    # Hit@k from the exact top-k lists.
    nb_labels = np.where(topk >= 0, codes[np.clip(topk, 0, None)], -1) if n else np.zeros((0, kmax), np.int64)
    match = nb_labels == codes[:, None]
    hit_at = {}
    for k in ks:
        hit_k = match[:, :k].any(axis=1) & valid
        hit_at[k] = float(hit_k[valid].mean()) if n_valid else math.nan
    top1 = (match[:, 0] & valid) if n else np.zeros(0, dtype=bool)

    map_value: float | None = None
    map_ci: tuple[float, float] | None = None
    m = int(ap_mask.sum())
    if compute_map:
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


def _wilson(successes: int, n: int) -> tuple[float, float] | None:
    """Wilson 95 % score interval (:func:`graceful_core.metrics.significance.wilson_interval`); None when n = 0."""
    if n == 0:
        return None
    return wilson_interval(successes, n)


@dataclass(frozen=True)
class CrossTest:
    """BCT self-tests and cross-tests of an old and a new embedding (``docs/metrics.md``).

    Attributes
    ----------
    scores : dict
        ``{"top1"|"top5"|"map": {"old_old", "new_new", "new_old", "old_new": float or None}}``
        (cross entries None when the embedding sizes differ).
    compatible : bool
        ``M(new, old) > M(old, old)`` on top-1 (False when no cross-test is possible).
    update_gain : float or None
        ``(M(new, old) − M(old, old)) / (M(new, new) − M(old, old))`` on top-1; None when
        the denominator is 0 or there is no cross-test.
    retrieval_negative_flips, retrieval_positive_flips : int or None
        Valid queries whose top-1 neighbour has their label under old→old and not under
        new→old (negative), or the reverse (positive).
    negative_flip_rate, positive_flip_rate : float or None
        Those counts over the valid queries, with Wilson 95 % intervals in
        ``negative_flip_rate_ci95`` / ``positive_flip_rate_ci95``.
    per_class : list of dict
        ``{"class", "queries", "negative_flips", "positive_flips", "negative_flip_rate"}``
        per label value (``class`` is the label, or its name when ``class_names`` given).
    negative_flip_indices, positive_flip_indices : ndarray of int64
        Sample indices of the flipped queries.
    n_queries, map_queries : int
    map_ci95 : dict or None
        Per pair ``[lo, hi]`` when mAP was estimated from a sample of queries, else None.
    reason : str or None
        Why no cross-test exists.
    embedding_overlap : float or None
        :func:`nearest_neighbour_overlap` of the two embeddings, read off the new→old
        search (None when the sizes differ).
    results : dict of str to RetrievalResult
        The underlying results per pair (for the UI); not part of the JSON.
    """

    scores: dict[str, dict[str, float | None]]
    compatible: bool
    update_gain: float | None
    retrieval_negative_flips: int | None
    retrieval_positive_flips: int | None
    negative_flip_rate: float | None
    negative_flip_rate_ci95: tuple[float, float] | None
    positive_flip_rate: float | None
    positive_flip_rate_ci95: tuple[float, float] | None
    per_class: list[dict[str, Any]]
    negative_flip_indices: np.ndarray = field(repr=False)
    positive_flip_indices: np.ndarray = field(repr=False)
    n_queries: int = 0
    map_queries: int = 0
    map_ci95: dict[str, list[float]] | None = None
    reason: str | None = None
    results: dict[str, RetrievalResult] = field(default_factory=dict, repr=False)
    embedding_overlap: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``compatibility`` object of the JSON report (``docs/metrics.md``, "JSON report")."""
        return {
            "top1": {k: json_clean(v) for k, v in self.scores["top1"].items()},
            "top5": {k: json_clean(v) for k, v in self.scores["top5"].items()},
            "map": {k: json_clean(v) for k, v in self.scores["map"].items()},
            "compatible": bool(self.compatible),
            "update_gain": json_clean(self.update_gain),
            "retrieval_negative_flips": self.retrieval_negative_flips,
            "retrieval_positive_flips": self.retrieval_positive_flips,
            "retrieval_negative_flip_rate": json_clean(self.negative_flip_rate),
            "retrieval_negative_flip_rate_ci95": None
            if self.negative_flip_rate_ci95 is None
            else list(self.negative_flip_rate_ci95),
            "n_queries": self.n_queries,
            "map_queries": self.map_queries,
            "map_ci95": self.map_ci95,
            "reason": self.reason,
        }


def cross_test(
    old_emb: Any,
    new_emb: Any,
    labels: Any,
    *,
    class_names: Sequence[str] | None = None,
    **kw: Any,
) -> CrossTest:
    """Self-tests M(old, old), M(new, new) and cross-tests M(new, old), M(old, new).

    ``M(q, g)`` is :func:`retrieval_metrics` with queries embedded by q and the gallery by
    g, for top-1 (Hit@1), top-5 (Hit@5) and mAP. BCT's empirical compatibility criterion
    (Shen et al., CVPR 2020) is ``M(new, old) > M(old, old)``; the update gain is
    ``(M(new, old) − M(old, old)) / (M(new, new) − M(old, old))`` (graceful's definition,
    ``docs/metrics.md``). A retrieval negative flip is a valid query whose top-1 neighbour has its
    label under old→old and not under new→old.

    Parameters
    ----------
    old_emb, new_emb : array-like, shape (N, D_old) and (N, D_new)
        Embeddings of the same samples in the same order.
    labels : array-like, shape (N,)
    class_names : sequence of str, optional
        Names for integer labels 0..K-1 in ``per_class``.
    **kw
        Passed to :func:`retrieval_metrics` (``block_size``, ``max_map_queries``, ``seed``,
        ``compute_map``). ``ks`` is fixed to (1, 5).

    One nearest-neighbour search per pair serves everything: the new→old search also gives
    the embedding overlap (:func:`_overlap_from_top1`) and the retrieval flips.

    Returns
    -------
    CrossTest
        When the sizes differ, the cross entries are None, ``compatible`` is False and
        ``reason`` says why.

    Examples
    --------
    A new embedding that swaps the old one's two axes: each space alone retrieves
    perfectly, but new queries land on the other label in the old gallery.

    >>> old = [[1, 0], [1, 0.1], [0, 1], [0.1, 1]]
    >>> new = [[0, 1], [0.1, 1], [1, 0], [1, 0.1]]
    >>> ct = cross_test(old, new, [0, 0, 1, 1])
    >>> ct.scores["top1"]["old_old"], ct.scores["top1"]["new_new"], ct.scores["top1"]["new_old"], ct.compatible
    (1.0, 1.0, 0.0, False)
    """
    if "ks" in kw:
        raise ValueError("cross_test always uses ks=(1, 5); call retrieval_metrics for other k")
    old = _as_embedding(old_emb, "old_emb")
    new = _as_embedding(new_emb, "new_emb")
    if old.shape[0] != new.shape[0]:
        raise ValueError(f"old_emb and new_emb must embed the same samples: {old.shape[0]} vs {new.shape[0]} rows")
    uniq, codes = _label_codes(labels, old.shape[0])
    emb = {"old": old, "new": new}
    same_dim = old.shape[1] == new.shape[1]
    pairs = _PAIRS if same_dim else ("old_old", "new_new")
    results = {p: retrieval_metrics(emb[p.split("_")[0]], emb[p.split("_")[1]], codes, ks=(1, 5), **kw) for p in pairs}
    scores = {
        "top1": {p: (results[p].hit_at[1] if p in results else None) for p in _PAIRS},
        "top5": {p: (results[p].hit_at[5] if p in results else None) for p in _PAIRS},
        "map": {p: (results[p].map if p in results else None) for p in _PAIRS},
    }
    oo = results["old_old"]
    n_q = oo.n_queries
    map_ci = None
    if oo.map_ci95 is not None:
        map_ci = {p: list(r.map_ci95) for p, r in results.items() if r.map_ci95 is not None}
    names = [
        str(class_names[int(u)]) if class_names is not None else (u.item() if hasattr(u, "item") else u) for u in uniq
    ]
    empty = np.zeros(0, dtype=np.int64)
    if not same_dim:
        return CrossTest(
            scores=scores,
            compatible=False,
            update_gain=None,
            retrieval_negative_flips=None,
            retrieval_positive_flips=None,
            negative_flip_rate=None,
            negative_flip_rate_ci95=None,
            positive_flip_rate=None,
            positive_flip_rate_ci95=None,
            per_class=[],
            negative_flip_indices=empty,
            positive_flip_indices=empty,
            n_queries=n_q,
            map_queries=oo.map_queries,
            map_ci95=map_ci,
            reason=f"embedding sizes differ: old {old.shape[1]}, new {new.shape[1]}; no cross-test possible",
            results=results,
        )
    t_oo, t_nn, t_no = scores["top1"]["old_old"], scores["top1"]["new_new"], scores["top1"]["new_old"]
    defined = n_q > 0
    compatible = bool(defined and t_no > t_oo)
    gain = None
    if defined and t_nn != t_oo:
        gain = (t_no - t_oo) / (t_nn - t_oo)
    before, after = oo.top1_correct, results["new_old"].top1_correct
    neg = np.flatnonzero(before & ~after)
    pos = np.flatnonzero(~before & after & oo.valid)
    per_class = []
    for c, name in enumerate(names):
        in_c = codes == c
        qc = int((in_c & oo.valid).sum())
        nf = int(in_c[neg].sum())
        per_class.append(
            {
                "class": name,
                "queries": qc,
                "negative_flips": nf,
                "positive_flips": int(in_c[pos].sum()),
                "negative_flip_rate": nf / qc if qc else None,
            }
        )
    return CrossTest(
        scores=scores,
        compatible=compatible,
        update_gain=gain,
        retrieval_negative_flips=int(neg.size),
        retrieval_positive_flips=int(pos.size),
        negative_flip_rate=neg.size / n_q if n_q else None,
        negative_flip_rate_ci95=_wilson(int(neg.size), n_q),
        positive_flip_rate=pos.size / n_q if n_q else None,
        positive_flip_rate_ci95=_wilson(int(pos.size), n_q),
        per_class=per_class,
        negative_flip_indices=neg,
        positive_flip_indices=pos,
        n_queries=n_q,
        map_queries=oo.map_queries,
        map_ci95=map_ci,
        reason=None,
        results=results,
        embedding_overlap=_overlap_from_top1(old, new, results["new_old"].topk_indices[:, 0]),
    )


def _overlap_from_top1(old: np.ndarray, new: np.ndarray, top1: np.ndarray) -> float:
    """:func:`nearest_neighbour_overlap` from each new query's nearest *other* old sample.

    The nearest of all old samples is the sample itself iff its own grid score beats
    the best other one, or equals it at a lower index (``top1`` = -1: there is no
    other). Both scores are recomputed from the same row-wise float64 dot product, so
    they are compared on the same footing.
    """
    n = old.shape[0]
    if n == 0:
        return math.nan
    n64, o64 = _normalise(new).numpy(), _normalise(old).numpy()
    idx = np.arange(n)
    other = np.clip(top1, 0, None)
    own = np.round(np.einsum("ij,ij->i", n64, o64) * _GRID)
    best = np.round(np.einsum("ij,ij->i", n64, o64[other]) * _GRID)
    same = (top1 < 0) | (own > best) | ((own == best) & (idx < other))
    return float(same.mean())


def head_accuracy(head_logits: Any, labels: Any) -> float:
    """Accuracy of a classifier head's logits: ``(1/N) Σ 1[argmax_k z_ik = y_i]``.

    Ties go to the lowest class index (``docs/metrics.md``). Typical use (BCT's influence check):
    ``head_accuracy(old_model.head(new_embedding), labels)`` — the old classifier applied
    to new embeddings; the ``head`` call itself is the inference code's job.

    Examples
    --------
    >>> head_accuracy([[2.0, 1.0], [0.0, 3.0], [1.0, 1.0]], [0, 1, 1])
    0.6666666666666666
    """
    z = np.asarray(head_logits)
    y = np.asarray(labels)
    if z.ndim != 2 or y.ndim != 1 or z.shape[0] != y.shape[0]:
        raise ValueError(f"need logits [N, K] and labels [N], got shapes {z.shape} and {y.shape}")
    if z.shape[0] == 0:
        return math.nan
    return float((np.argmax(z, axis=1) == y).mean())


def nearest_neighbour_overlap(old_emb: Any, new_emb: Any, *, block_size: int = 1024) -> float:
    """Share of samples whose new embedding's nearest old embedding is their own.

    ``(1/N) Σ_i 1[argmax_j cos(new_i, old_j) = i]`` over ALL old embeddings (itself
    included), ties to the lowest index. 1.0 means the new space is aligned with the old
    one sample by sample. nan when the embedding sizes differ or N = 0 (``docs/metrics.md``).

    Examples
    --------
    >>> nearest_neighbour_overlap([[1, 0], [0, 1], [1, 1]], [[2, 0], [0, 3], [-1, 1]])
    0.6666666666666666
    """
    import torch

    old = _as_embedding(old_emb, "old_emb")
    new = _as_embedding(new_emb, "new_emb")
    if old.shape[0] != new.shape[0]:
        raise ValueError(f"old_emb and new_emb must embed the same samples: {old.shape[0]} vs {new.shape[0]} rows")
    n = old.shape[0]
    if old.shape[1] != new.shape[1] or n == 0:
        return math.nan
    n64, o64 = _normalise(new), _normalise(old)
    o64_t = o64.T.contiguous()
    rows = max(1, min(int(block_size), _MAX_BLOCK_ELEMENTS // n))
    same = 0
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        s = _exact_scores(n64[start:stop], o64_t)
        best = _topk_tie_exact(s, 1)[:, 0]
        same += int((best == torch.arange(start, stop)).sum())
    return same / n
