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
lower index first. A zero embedding is normalised to the zero vector: all its scores are
0, so its neighbours are decided by index alone.

This module gathers the public names; each job lives in its own module:

* :mod:`~graceful_core.metrics.retrieval_inputs`: checked inputs, unit rows, the score grid;
* :mod:`~graceful_core.metrics.neighbours`: exact top-k search;
* :mod:`~graceful_core.metrics.average_precision`: exact AP without sorting whole rows;
* :mod:`~graceful_core.metrics.leave_one_out`: :func:`retrieval_metrics` of one pair;
* :mod:`~graceful_core.metrics.embedding_overlap`: :func:`nearest_neighbour_overlap`;
* :mod:`~graceful_core.metrics.cross_test`: :func:`cross_test` (four pairs, retrieval
  flips, the overlap read off the same search) and :func:`head_accuracy`.

Examples
--------
>>> old = [[1, 0], [1, 0.1], [0, 1], [0.1, 1]]
>>> retrieval_metrics(old, old, [0, 0, 1, 1]).map
1.0
"""

from __future__ import annotations

from graceful_core.metrics.cross_test import CrossTest, cross_test, head_accuracy
from graceful_core.metrics.embedding_overlap import nearest_neighbour_overlap
from graceful_core.metrics.leave_one_out import RetrievalResult, retrieval_metrics

__all__ = [
    "RetrievalResult",
    "CrossTest",
    "retrieval_metrics",
    "cross_test",
    "head_accuracy",
    "nearest_neighbour_overlap",
]
