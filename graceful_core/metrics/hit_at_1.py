"""Leave-one-out Hit@1 alone, exact, without ranking anything: a model set's cross-test matrix.

:func:`graceful_core.metrics.retrieval.retrieval_metrics` ranks every query's gallery to
give Hit@k and mAP. A model set (``graceful matrix``, the app's Versions page) only needs
Hit@1 for every (query model, gallery model), ``m²`` of them, and Hit@1 only asks
whether the nearest other sample has the query's label. With the definition of
``retrieval_metrics`` (cosine of float64-normalised embeddings rounded to a multiple of
2**-24; equal scores ranked by gallery index, lower first; the query's own index left
out; queries whose label occurs once left out of the mean):

``hit_i = 1[ best same-label score > best other-label score ]``, or, when the two are
equal, whether the lowest index among the columns reaching that score has the label.

The gallery is put in label order once, so for a block of queries of one label the
same-label columns are one contiguous slice. A float32 GEMM gives both maxima; for unit
vectors its scores are within ``(D + 2)·2**-24`` of the exact cosine (as in
``retrieval_metrics``' fast top-k), so a row whose two float32 maxima are further apart
than twice that plus one grid step is decided; the other rows (near-ties, zero vectors,
duplicates) are scored exactly in float64 and decided by the definition. The result
equals ``retrieval_metrics(..., ks=(1,), compute_map=False).hit_at[1]``
(``tests/metrics/test_hit_at_1.py`` checks it against that and against brute-force NumPy).

Examples
--------
>>> e = [[1, 0], [1, 0.1], [0, 1], [0.1, 1]]
>>> leave_one_out_hit_at_1(e, e, [0, 0, 1, 1])
1.0
>>> leave_one_out_hit_at_1(e, e, [0, 1, 0, 1])
0.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from graceful_core.metrics.retrieval_inputs import GRID, UnitEmbedding, label_codes
from graceful_core.vocabulary import StageProgress

if TYPE_CHECKING:
    import torch

__all__ = ["leave_one_out_hit_at_1", "hit_at_1_matrix", "PreparedEmbedding", "prepare"]

#: Scores per block (rows x gallery), about 32 MiB of float32.
_BLOCK_ELEMENTS = 1 << 23


class PreparedEmbedding(UnitEmbedding):
    """One model's embeddings normalised once (float64 and float32 copies), for many Hit@1 calls."""


def prepare(emb: Any, name: str = "embedding") -> PreparedEmbedding:
    """:class:`PreparedEmbedding` of ``emb`` (a prepared one is returned as it is)."""
    return emb if isinstance(emb, PreparedEmbedding) else PreparedEmbedding(emb, name)


def _exact_hits(q64: torch.Tensor, g64: torch.Tensor, rows: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """The definition itself for the query rows ``rows``: grid scores, own column out, lowest index among the best."""
    import torch

    s = (q64.index_select(0, torch.from_numpy(rows)) @ g64.T).mul_(GRID).round_().numpy()
    s[np.arange(rows.size), rows] = -np.inf
    best = np.argmax(s, axis=1)  # NumPy returns the first (lowest) index among equal maxima
    return codes[best] == codes[rows]


def _hits(
    a: PreparedEmbedding, b: PreparedEmbedding, codes: np.ndarray, both: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per sample, whether its nearest other sample has its label: queries embedded by ``a`` against a gallery
    embedded by ``b`` and, with ``both``, queries by ``b`` against ``a`` read off the same scores (transposed).

    Rows are computed in blocks of one label against the label-ordered gallery: the row
    maxima over the label's slice and over the rest decide ``a → b``; per-label column
    maxima, accumulated over the blocks, decide ``b → a``.
    """
    import torch

    n = a.shape[0]
    counts = np.bincount(codes)
    order = np.argsort(codes, kind="stable")  # the gallery in label order
    bounds = np.concatenate([[0], np.cumsum(counts)])
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    if torch.get_float32_matmul_precision() != "highest":  # reduced-precision float32: the bound does not hold
        rows = np.arange(n)
        return _exact_hits(a.f64, b.f64, rows, codes), (_exact_hits(b.f64, a.f64, rows, codes) if both else None)
    b32_t = b.f32.index_select(0, torch.from_numpy(order)).T.contiguous()
    # float32 scores are within (D + 2)·2**-24 of the exact cosine, the grid scores within half a step of it
    margin = 2.0 * (a.shape[1] + 2) * 2.0**-24 + 1.0 / GRID
    row_diff = np.empty(n, dtype=np.float64)
    col_max = np.full((counts.size, n), -np.inf, dtype=np.float32) if both else None
    per_block = max(1, _BLOCK_ELEMENTS // n)
    with np.errstate(invalid="ignore"):
        for c in np.flatnonzero(counts):
            lo, hi = int(bounds[c]), int(bounds[c + 1])
            for start in range(lo, hi, per_block):
                rows = order[start : min(hi, start + per_block)]
                s = (a.f32.index_select(0, torch.from_numpy(rows)) @ b32_t).numpy()
                s[np.arange(rows.size), position[rows]] = -np.inf
                other = np.full(rows.size, -np.inf, dtype=np.float32)
                if lo > 0:
                    other = np.maximum(other, s[:, :lo].max(axis=1))
                if hi < n:
                    other = np.maximum(other, s[:, hi:].max(axis=1))
                row_diff[rows] = s[:, lo:hi].max(axis=1).astype(np.float64) - other
                if col_max is not None:
                    np.maximum(col_max[c], s.max(axis=0), out=col_max[c])
        out = []
        diffs = [row_diff]
        if col_max is not None:
            label_of_col = codes[order]
            cols = np.arange(n)
            same = col_max[label_of_col, cols].astype(np.float64)
            col_max[label_of_col, cols] = -np.inf
            col_diff = np.empty(n, dtype=np.float64)
            col_diff[order] = same - col_max.max(axis=0)
            diffs.append(col_diff)
        valid = counts[codes] >= 2
        for k, diff in enumerate(diffs):
            hit = diff > margin
            unsure = np.flatnonzero(valid & (np.abs(diff) <= margin))
            if unsure.size:
                q, g = (a, b) if k == 0 else (b, a)
                hit[unsure] = _exact_hits(q.f64, g.f64, unsure, codes)
            out.append(hit)
    return out[0], (out[1] if both else None)


def leave_one_out_hit_at_1(query_emb: Any, gallery_emb: Any, labels: Any) -> float:
    """Hit@1 of ``query_emb`` searched against the other samples of ``gallery_emb`` (cosine, exact).

    ``(1/|V|) Σ_{i∈V} 1[y_{j*(i)} = y_i]`` with ``j*(i)`` the best-scoring ``j ≠ i`` (ties to the
    lowest index) and ``V`` the samples whose label occurs at least twice; NaN when ``V`` is
    empty. The same number as ``retrieval_metrics(query_emb, gallery_emb, labels, ks=(1,),
    compute_map=False).hit_at[1]`` (see the module), faster: no top-k, no sort.

    Parameters
    ----------
    query_emb, gallery_emb : array-like (N, D) or PreparedEmbedding
        The same samples in the same order, embedded by the query and the gallery model.
    labels : array-like (N,)
        True labels (any comparable values).
    """
    q, g = prepare(query_emb, "query_emb"), prepare(gallery_emb, "gallery_emb")
    _check_pair(q, g)
    codes = label_codes(labels, q.shape[0])[1]
    valid = np.bincount(codes)[codes] >= 2 if codes.size else np.zeros(0, dtype=bool)
    if not valid.any():
        return math.nan
    return float(_hits(q, g, codes, both=False)[0][valid].mean())


def _check_pair(q: PreparedEmbedding, g: PreparedEmbedding) -> None:
    if q.shape[0] != g.shape[0]:
        raise ValueError(f"query_emb and gallery_emb must embed the same samples: {q.shape[0]} vs {g.shape[0]} rows")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"embedding sizes differ: query {q.shape[1]}, gallery {g.shape[1]}")


def hit_at_1_matrix(
    embeddings: Sequence[Any | None], labels: Any, progress: StageProgress | None = None, stage: str = "cross-tests"
) -> dict[tuple[int, int], float]:
    """Leave-one-out Hit@1 of every (query model q, gallery model g) whose embeddings share a size.

    ``{(q, g): leave_one_out_hit_at_1(embeddings[q], embeddings[g], labels)}``; pairs with a
    None or a different-sized embedding are left out. Each model's embeddings are
    normalised once and one float32 GEMM serves both ``(q, g)`` and ``(g, q)`` (its
    transpose), so ``m`` models cost ``m (m + 1) / 2`` GEMMs rather than ``m²`` searches.
    ``progress(stage, done, m²)`` after each GEMM.
    """
    m = len(embeddings)
    prepared = [None if e is None else prepare(e, f"embeddings[{i}]") for i, e in enumerate(embeddings)]
    sizes = {p.shape[0] for p in prepared if p is not None}
    if len(sizes) > 1:
        raise ValueError(f"every embedding must have the same samples, got row counts {sorted(sizes)}")
    out: dict[tuple[int, int], float] = {}
    done = 0
    if not sizes:
        return out
    codes = label_codes(labels, sizes.pop())[1]
    valid = np.bincount(codes)[codes] >= 2 if codes.size else np.zeros(0, dtype=bool)
    for q in range(m):
        for g in range(q, m):
            a, b = prepared[q], prepared[g]
            if a is not None and b is not None and a.shape[1] == b.shape[1]:
                if not valid.any():
                    out[q, g] = out[g, q] = math.nan
                else:
                    ab, ba = _hits(a, b, codes, both=q != g)
                    out[q, g] = float(ab[valid].mean())
                    if ba is not None:
                        out[g, q] = float(ba[valid].mean())
            done += 1 if q == g else 2
            if progress:
                progress(stage, done, m * m)
    return out
