"""The BCT cross-test of an old and a new embedding: self-tests, cross-tests, retrieval flips.

``M(q, g)`` is leave-one-out retrieval (:func:`~graceful_core.metrics.leave_one_out.retrieval_metrics`)
with queries embedded by model q and the gallery by model g. BCT's empirical compatibility
criterion (Shen et al., "Towards Backward-Compatible Representation Learning", CVPR 2020)
is ``M(new, old) > M(old, old)``; ``docs/metrics.md`` defines the update gain, the
retrieval flips and the embedding overlap read off the same search.

How a model's classifier head fits in: a caller that wants the BCT "influence" check
applies the old model's ``head`` to the *new* embeddings (``Model.head``, done by the
inference code) and scores the logits with :func:`head_accuracy`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graceful_core.jsonable import json_clean
from graceful_core.metrics.embedding_overlap import overlap_from_top1
from graceful_core.metrics.leave_one_out import RetrievalResult, retrieval_metrics
from graceful_core.metrics.retrieval_inputs import as_embedding, label_codes
from graceful_core.metrics.significance import wilson_interval

__all__ = ["CrossTest", "cross_test", "head_accuracy"]

PAIRS = ("old_old", "new_new", "new_old", "old_new")


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
    the embedding overlap (:func:`~graceful_core.metrics.embedding_overlap.overlap_from_top1`) and the retrieval flips.

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
    old = as_embedding(old_emb, "old_emb")
    new = as_embedding(new_emb, "new_emb")
    if old.shape[0] != new.shape[0]:
        raise ValueError(f"old_emb and new_emb must embed the same samples: {old.shape[0]} vs {new.shape[0]} rows")
    uniq, codes = label_codes(labels, old.shape[0])
    emb = {"old": old, "new": new}
    same_dim = old.shape[1] == new.shape[1]
    pairs = PAIRS if same_dim else ("old_old", "new_new")
    results = {p: retrieval_metrics(emb[p.split("_")[0]], emb[p.split("_")[1]], codes, ks=(1, 5), **kw) for p in pairs}
    scores: dict[str, dict[str, float | None]] = {
        "top1": {p: (results[p].hit_at[1] if p in results else None) for p in PAIRS},
        "top5": {p: (results[p].hit_at[5] if p in results else None) for p in PAIRS},
        "map": {p: (results[p].map if p in results else None) for p in PAIRS},
    }
    oo = results["old_old"]
    map_ci = None
    if oo.map_ci95 is not None:
        map_ci = {p: list(r.map_ci95) for p, r in results.items() if r.map_ci95 is not None}
    common: dict[str, Any] = {
        "scores": scores,
        "n_queries": oo.n_queries,
        "map_queries": oo.map_queries,
        "map_ci95": map_ci,
        "results": results,
    }
    if not same_dim:
        empty = np.zeros(0, dtype=np.int64)
        return CrossTest(
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
            reason=f"embedding sizes differ: old {old.shape[1]}, new {new.shape[1]}; no cross-test possible",
            **common,
        )
    no = results["new_old"]
    names = [
        str(class_names[int(u)]) if class_names is not None else (u.item() if hasattr(u, "item") else u) for u in uniq
    ]
    n_q = oo.n_queries
    t_oo, t_nn, t_no = oo.hit_at[1], results["new_new"].hit_at[1], no.hit_at[1]
    neg = np.flatnonzero(oo.top1_correct & ~no.top1_correct)
    pos = np.flatnonzero(~oo.top1_correct & no.top1_correct & oo.valid)
    return CrossTest(
        compatible=bool(n_q > 0 and t_no > t_oo),
        update_gain=(t_no - t_oo) / (t_nn - t_oo) if n_q > 0 and t_nn != t_oo else None,
        retrieval_negative_flips=int(neg.size),
        retrieval_positive_flips=int(pos.size),
        negative_flip_rate=neg.size / n_q if n_q else None,
        negative_flip_rate_ci95=_wilson(int(neg.size), n_q),
        positive_flip_rate=pos.size / n_q if n_q else None,
        positive_flip_rate_ci95=_wilson(int(pos.size), n_q),
        per_class=_per_class(names, codes, oo, neg, pos),
        negative_flip_indices=neg,
        positive_flip_indices=pos,
        reason=None,
        embedding_overlap=overlap_from_top1(old, new, no.topk_indices[:, 0]),
        **common,
    )


def _per_class(
    names: Sequence[Any], codes: np.ndarray, oo: RetrievalResult, neg: np.ndarray, pos: np.ndarray
) -> list[dict[str, Any]]:
    """Queries and retrieval flips per label (``CrossTest.per_class``)."""
    out = []
    for c, name in enumerate(names):
        in_c = codes == c
        qc = int((in_c & oo.valid).sum())
        nf = int(in_c[neg].sum())
        out.append(
            {
                "class": name,
                "queries": qc,
                "negative_flips": nf,
                "positive_flips": int(in_c[pos].sum()),
                "negative_flip_rate": nf / qc if qc else None,
            }
        )
    return out


def _wilson(successes: int, n: int) -> tuple[float, float] | None:
    """Wilson 95 % score interval (:func:`graceful_core.metrics.significance.wilson_interval`); None when n = 0."""
    if n == 0:
        return None
    return wilson_interval(successes, n)


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
