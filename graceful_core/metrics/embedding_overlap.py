"""Embedding overlap: how often a sample's new embedding finds its own old one first.

``overlap = (1/N) Σ_i 1[argmax_j s(new_i, old_j) = i]`` over ALL old embeddings (itself
included), with the grid scores of :mod:`graceful_core.metrics.retrieval_inputs` and ties
to the lowest index (``docs/metrics.md``). 1.0 means the new space is aligned with the
old one sample by sample.

The cross-test already ranks every new query against the old gallery (its own index left
out); :func:`overlap_from_top1` reads the overlap off that search instead of searching
again, and :func:`nearest_neighbour_overlap` is the standalone search.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from graceful_core.metrics.neighbours import exact_scores, topk_tie_exact
from graceful_core.metrics.retrieval_inputs import GRID, MAX_BLOCK_ELEMENTS, as_embedding, unit_rows

__all__ = ["nearest_neighbour_overlap", "overlap_from_top1"]


def overlap_from_top1(old: np.ndarray, new: np.ndarray, top1: np.ndarray) -> float:
    """:func:`nearest_neighbour_overlap` from each new query's nearest *other* old sample.

    The nearest of all old samples is the sample itself iff its own grid score beats
    the best other one, or equals it at a lower index (``top1`` = -1: there is no
    other). Both scores are recomputed from the same row-wise float64 dot product, so
    they are compared on the same footing.
    """
    n = old.shape[0]
    if n == 0:
        return math.nan
    n64, o64 = unit_rows(new).numpy(), unit_rows(old).numpy()
    idx = np.arange(n)
    other = np.clip(top1, 0, None)
    own = np.round(np.einsum("ij,ij->i", n64, o64) * GRID)
    best = np.round(np.einsum("ij,ij->i", n64, o64[other]) * GRID)
    same = (top1 < 0) | (own > best) | ((own == best) & (idx < other))
    return float(same.mean())


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

    old = as_embedding(old_emb, "old_emb")
    new = as_embedding(new_emb, "new_emb")
    if old.shape[0] != new.shape[0]:
        raise ValueError(f"old_emb and new_emb must embed the same samples: {old.shape[0]} vs {new.shape[0]} rows")
    n = old.shape[0]
    if old.shape[1] != new.shape[1] or n == 0:
        return math.nan
    n64, o64 = unit_rows(new), unit_rows(old)
    o64_t = o64.T.contiguous()
    rows = max(1, min(int(block_size), MAX_BLOCK_ELEMENTS // n))
    same = 0
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        s = exact_scores(n64[start:stop], o64_t)
        best = topk_tie_exact(s, 1)[:, 0]
        same += int((best == torch.arange(start, stop)).sum())
    return same / n
