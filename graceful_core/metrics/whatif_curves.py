"""What-if remedy curves: the predictions of mixing and gating from two models' class probabilities.

- **mixing**: ``argmax_k (1 − w)·p_old(k) + w·p_new(k)`` per weight ``w``
  (:data:`~graceful_core.metrics.whatif_points.MIXING_WEIGHTS`);
- **gating**: old's prediction where ``max p_old ≥ t`` and ``max p_new ≤ s``, else new's
  (:func:`~graceful_core.metrics.whatif_points.gating_grid`).

Each returns one prediction row per setting (``[C, N]``); :func:`mixing_points` and
:func:`gating_points` score them (:func:`~graceful_core.metrics.whatif_points.score_points`),
:func:`candidate_predictions` gathers every row of one set of samples for the recommendation.
Everything is vectorised: a mixing point is one multiply-add and one argmax over ``[N, K]``;
a gating point is a few ``N``-long mask operations. The formulas and papers are in
:mod:`graceful_core.metrics.whatif`.

Examples
--------
>>> import numpy as np
>>> y = np.array([0, 1, 1, 0])
>>> p_old = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.6, 0.4]])
>>> p_new = np.array([[0.4, 0.6], [0.3, 0.7], [0.3, 0.7], [0.7, 0.3]])
>>> pts = gating_points(y, p_old, p_new, grid=[(0.95, 1.0), (0.8, 1.0)])
>>> [(p.label(), p.negative_flips, p.positive_flips, p.errors) for p in pts]
[('gating t=0.95 s=1', 1, 1, 1), ('gating t=0.8 s=1', 0, 1, 0)]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from graceful_core.metrics.confidence import softmax
from graceful_core.metrics.flips import as_label_array
from graceful_core.metrics.whatif_points import MIXING_WEIGHTS, WhatIfPoint, gating_grid, points_of, score_points

__all__ = [
    "mixing_predictions",
    "gating_predictions",
    "mixing_points",
    "gating_points",
    "probabilities64",
    "Candidates",
    "candidate_predictions",
]


def _check_probs(p: Any, name: str) -> np.ndarray:
    a = np.asarray(p)
    if a.ndim != 2 or a.dtype.kind != "f":
        raise ValueError(f"{name} must be a 2-D float array of class probabilities [N, K], got {a.dtype} {a.shape}")
    return a


def _check_inputs(y: Any, p_old: Any, p_new: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    yy = as_label_array(y, "y_true")
    po, pn = _check_probs(p_old, "p_old"), _check_probs(p_new, "p_new")
    if po.shape != pn.shape or po.shape[0] != yy.shape[0]:
        raise ValueError(
            f"y_true {yy.shape}, p_old {po.shape} and p_new {pn.shape} must describe the same samples and classes"
        )
    return yy, po, pn


#: Rows per chunk of the row-wise passes (a chunk of float64 rows stays in the CPU cache).
_CHUNK_ELEMENTS = 65_536


def _row_step(k: int) -> int:
    return max(1, _CHUNK_ELEMENTS // max(1, k))


def _top2(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the index of the largest value, the index of the second largest, and the second largest value."""
    n, k = p.shape
    i1, i2, v2 = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, p.dtype)
    step = _row_step(k)
    for a in range(0, n, step):
        q = p[a : a + step].copy()
        r = np.arange(q.shape[0])
        j = q.argmax(axis=1)
        q[r, j] = -np.inf
        i1[a : a + step], i2[a : a + step] = j, q.argmax(axis=1)
        v2[a : a + step] = q[r, i2[a : a + step]]
    return i1, i2, v2


def _mix_argmax(po: np.ndarray, diff: np.ndarray, w: float, buf: np.ndarray) -> np.ndarray:
    np.multiply(diff, w, out=buf)
    buf += po
    return buf.argmax(axis=1)


def mixing_predictions(p_old: Any, p_new: Any, weights: Sequence[float] = MIXING_WEIGHTS) -> np.ndarray:
    """Predictions ``[W, N]`` (int32) of ``argmax_k (1 − w)·p_old + w·p_new`` per weight (ties: lowest class).

    Computed as ``p_old + w·(p_new − p_old)``. With more than 4 classes, only each row's
    candidates (the top two classes of either model) are mixed: a class outside them has
    ``p_old ≤`` old's second largest and ``p_new ≤`` new's second largest, so its mix is at most
    ``(1 − w)·o₂ + w·n₂``; where the best candidate beats that bound strictly the candidates
    decide exactly, and the remaining rows are mixed over every class. The result equals the
    full computation bit for bit (the same float operations on the same values).

    >>> mixing_predictions([[0.6, 0.4]], [[0.2, 0.8]], (0.0, 0.2, 0.5, 1.0)).tolist()
    [[0], [0], [1], [1]]
    """
    po, pn = _check_probs(p_old, "p_old"), _check_probs(p_new, "p_new")
    n, k = po.shape
    out = np.empty((len(weights), n), dtype=np.int32)
    if n == 0:
        return out
    if k <= 4:
        diff, buf = pn - po, np.empty_like(po)
        for i, w in enumerate(weights):
            out[i] = _mix_argmax(po, diff, w, buf)
        return out
    o1, o2, ov2 = _top2(po)
    n1, n2, nv2 = _top2(pn)
    cand = np.sort(np.stack([o1, o2, n1, n2]), axis=0)  # [4, N], ascending: the first maximum is the lowest class
    r = np.arange(n)
    co, cn = po[r, cand], pn[r, cand]
    cdiff = cn - co
    undecided = np.zeros((len(weights), n), dtype=bool)
    mixed, up = np.empty_like(co), np.empty(n, dtype=bool)
    for i, w in enumerate(weights):
        np.multiply(cdiff, w, out=mixed)  # the same float operations as _mix_argmax on these entries
        mixed += co
        best, j = mixed[0].copy(), np.zeros(n, np.int64)
        for c in range(1, 4):  # a strict > keeps the first maximum
            np.greater(mixed[c], best, out=up)
            np.copyto(best, mixed[c], where=up)
            j[up] = c
        out[i] = cand[j, r]
        undecided[i] = ~(best > ov2 + w * (nv2 - ov2))
    rows = np.flatnonzero(undecided.any(axis=0))
    if rows.size:  # mixed over every class, gathered once for all weights
        sub_o = po[rows]
        sub_d, buf = pn[rows] - sub_o, np.empty_like(sub_o)
        for i, w in enumerate(weights):
            if undecided[i, rows].any():
                out[i, rows] = _mix_argmax(sub_o, sub_d, w, buf)
    return out


def gating_predictions(p_old: Any, p_new: Any, grid: Iterable[tuple[float, float]]) -> np.ndarray:
    """Predictions ``[G, N]`` (int32): old's where ``max p_old ≥ t`` and ``max p_new ≤ s``, else new's.

    >>> gating_predictions([[0.9, 0.1], [0.6, 0.4]], [[0.3, 0.7], [0.1, 0.9]], [(0.8, 0.8)]).tolist()
    [[0, 1]]
    """
    po, pn = _check_probs(p_old, "p_old"), _check_probs(p_new, "p_new")
    o, n = po.argmax(axis=1).astype(np.int32), pn.argmax(axis=1).astype(np.int32)
    r = np.arange(po.shape[0])
    o_top, n_top = po[r, o], pn[r, n]
    grid = list(grid)
    out = np.empty((len(grid), po.shape[0]), dtype=np.int32)
    for i, (t, s) in enumerate(grid):
        out[i] = np.where((o_top >= t) & (n_top <= s), o, n)
    return out


def mixing_points(
    y: Any, p_old: Any, p_new: Any, weights: Sequence[float] = MIXING_WEIGHTS, old_pred: Any = None
) -> tuple[WhatIfPoint, ...]:
    """The mixing curve on all samples (``old_pred`` defaults to ``argmax p_old``)."""
    yy, po, pn = _check_inputs(y, p_old, p_new)
    o = po.argmax(axis=1) if old_pred is None else np.asarray(old_pred)
    counts = score_points(yy, o, mixing_predictions(po, pn, weights))[:, 0]
    return points_of("mixing", [{"w_new": float(w)} for w in weights], counts)


def gating_points(
    y: Any, p_old: Any, p_new: Any, grid: Sequence[tuple[float, float]] | None = None, old_pred: Any = None
) -> tuple[WhatIfPoint, ...]:
    """The gating grid on all samples (default grid: :data:`GATING_OLD_THRESHOLDS` × :data:`GATING_NEW_THRESHOLDS`)."""
    yy, po, pn = _check_inputs(y, p_old, p_new)
    grid = gating_grid() if grid is None else list(grid)
    o = po.argmax(axis=1) if old_pred is None else np.asarray(old_pred)
    counts = score_points(yy, o, gating_predictions(po, pn, grid))[:, 0]
    return points_of("gating", [{"t": float(t), "s": float(s)} for t, s in grid], counts)


def probabilities64(scores: Any, kind: str | None) -> np.ndarray:
    """Class probabilities in float64 (:func:`~graceful_core.metrics.confidence.softmax` of logits in float64;
    probabilities as given; ``kind`` None means logits).

    float64 keeps distinct logits distinct after the softmax, so the mixing curve's ends
    equal the models' own argmax predictions.
    """
    return softmax(scores, "probs" if kind == "probs" else "logits", dtype=np.float64)


@dataclass(frozen=True)
class Candidates:
    """The prediction rows of every remedy point on one set of samples."""

    y: np.ndarray
    old_pred: np.ndarray
    new_pred: np.ndarray
    rows: Mapping[str, np.ndarray]
    """``method -> predictions [C, N]``."""


def candidate_predictions(
    y: Any, p_old: Any, p_new: Any, old_pred: Any = None, new_pred: Any = None, interpolation: np.ndarray | None = None
) -> Candidates:
    """Mixing and gating rows from the probabilities (plus interpolation rows computed by running models)."""
    yy, po, pn = _check_inputs(y, p_old, p_new)
    rows = {"mixing": mixing_predictions(po, pn), "gating": gating_predictions(po, pn, gating_grid())}
    if interpolation is not None:
        rows["interpolation"] = np.asarray(interpolation)
    o = po.argmax(axis=1) if old_pred is None else np.asarray(old_pred, np.int64)
    n = pn.argmax(axis=1) if new_pred is None else np.asarray(new_pred, np.int64)
    return Candidates(yy, o, n, rows)
