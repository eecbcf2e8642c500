"""What-if remedies that need no training: the flips and error of mixing, gating and weight interpolation.

Given two models' class probabilities on the same labelled samples, each remedy is a
family of *points* (one setting each); every point is scored like a new model against
the old one (``docs/metrics.md``, "What-if remedies"):

- **mixing**: predict ``argmax_k (1 − w)·p_old(k) + w·p_new(k)`` for ``w`` in
  :data:`MIXING_WEIGHTS` (0, 0.05, …, 1; ``w = 1`` is the new model, ``w = 0`` the old);
  the ensemble view of Yan et al., "Positive-Congruent Training", CVPR 2021, and Zhao et
  al., "ELODI", ECCV 2022;
- **gating**: keep the old model's prediction where its top probability is ``≥ t`` and the
  new model's top probability is ``≤ s``, else the new model's (``t`` in
  :data:`GATING_OLD_THRESHOLDS`, ``s`` in :data:`GATING_NEW_THRESHOLDS`; ``s = 1`` keeps
  old's wherever old is confident): a fixed-threshold form of the gated fusion of Lai et
  al., "Improving Prediction Backward-Compatibility in NLP Model Upgrade with Gated
  Fusion", EACL 2023;
- **interpolation** (BCWI: Schumann et al., "Backward Compatibility During Data Updates by
  Weight Interpolation", EACL 2024, arXiv 2023): the model with weights
  ``(1 − α)·θ_old + α·θ_new``; its predictions come from running that model
  (:mod:`graceful_core.remedies.interpolation`) and are scored here like the others.

Every point has its negative flips, positive flips, NFR with its Wilson 95 % interval,
error rate and cost (models run at inference: 2 for mixing and gating strictly between
the endpoints, 1 for a single model).

The **recommendation** never tunes on the numbers it reports (:func:`recommend`): it
chooses on a validation set when there is one, else by 2-fold cross-fitting on the
evaluation set (fold of a sample: a hash of its id, :func:`id_folds`; choose on one half,
report on the other, both ways, held-out counts pooled). The rule: the lowest NFR among
the points whose error rate is at most the new model's + ``max_error_increase`` on the
choosing set (ties: lower error, then lower cost, then the earlier point).

Everything is vectorised: a mixing point is one multiply-add and one argmax over
``[N, K]``; a gating point is a few ``N``-long mask operations.

Examples
--------
>>> import numpy as np
>>> y = np.array([0, 1, 1, 0])
>>> p_old = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.6, 0.4]])
>>> p_new = np.array([[0.4, 0.6], [0.3, 0.7], [0.3, 0.7], [0.7, 0.3]])
>>> pts = mixing_points(y, p_old, p_new, weights=(0.0, 0.5, 1.0))
>>> [(p.params["w_new"], p.negative_flips, p.positive_flips, p.errors) for p in pts]
[(0.0, 0, 0, 1), (0.5, 0, 1, 0), (1.0, 1, 1, 1)]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from graceful_core.jsonable import json_clean
from graceful_core.metrics.confidence import softmax
from graceful_core.metrics.flips import as_label_array
from graceful_core.metrics.significance import wilson_interval
from graceful_core.vocabulary import percent

__all__ = [
    "MIXING_WEIGHTS",
    "GATING_OLD_THRESHOLDS",
    "GATING_NEW_THRESHOLDS",
    "INTERPOLATION_ALPHAS",
    "DEFAULT_MAX_ERROR_INCREASE",
    "REMEDY_METHODS",
    "WhatIfPoint",
    "Recommendation",
    "FoldChoice",
    "mixing_predictions",
    "gating_predictions",
    "score_points",
    "mixing_points",
    "gating_points",
    "id_folds",
    "choose_point",
    "recommend",
    "remedy_cost",
    "probabilities64",
    "Candidates",
    "candidate_predictions",
    "remedy_settings",
    "WhatIfReport",
    "whatif_report",
    "whatif_of_scores",
    "NOT_IN_COMPARE",
]

#: ``w_new`` of the mixing curve: 0, 0.05, …, 1.
MIXING_WEIGHTS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(21))
#: Gating: keep old's prediction where old's top probability is at least ``t`` …
GATING_OLD_THRESHOLDS: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
#: … and new's top probability is at most ``s`` (``s = 1``: whatever new says).
GATING_NEW_THRESHOLDS: tuple[float, ...] = (0.5, 0.7, 0.9, 0.99, 1.0)
#: ``α`` of the weight interpolation: 0, 0.1, …, 1.
INTERPOLATION_ALPHAS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
#: Default slack of the recommendation rule: 0.1 percentage points of error rate over the new model's.
DEFAULT_MAX_ERROR_INCREASE = 0.001
#: The remedies, in the order they are listed.
REMEDY_METHODS = ("mixing", "gating", "interpolation")


def remedy_cost(method: str, params: Mapping[str, float]) -> int:
    """Models run at inference by a point: 1 for interpolation and for mixing at ``w`` 0 or 1, else 2.

    >>> remedy_cost("mixing", {"w_new": 0.5}), remedy_cost("mixing", {"w_new": 1.0}), remedy_cost("interpolation", {"alpha": 0.3})
    (2, 1, 1)
    """
    if method == "interpolation":
        return 1
    if method == "mixing" and params["w_new"] in (0.0, 1.0):
        return 1
    return 2


# --------------------------------------------------------------------------- points
@dataclass(frozen=True)
class WhatIfPoint:
    """One setting of a remedy, scored against the old model on ``n_samples`` labelled samples.

    ``negative_flips``: old right, remedy wrong; ``positive_flips``: old wrong, remedy right;
    ``errors``: remedy wrong. Rates are over all ``n_samples`` (nan when 0).
    """

    method: str
    params: Mapping[str, float]
    n_samples: int
    negative_flips: int
    positive_flips: int
    errors: int
    cost: int = field(default=0)

    def __post_init__(self) -> None:
        if self.cost == 0:
            object.__setattr__(self, "cost", remedy_cost(self.method, self.params))

    @property
    def negative_flip_rate(self) -> float:
        return self.negative_flips / self.n_samples if self.n_samples else math.nan

    @property
    def positive_flip_rate(self) -> float:
        return self.positive_flips / self.n_samples if self.n_samples else math.nan

    @property
    def error_rate(self) -> float:
        return self.errors / self.n_samples if self.n_samples else math.nan

    @property
    def negative_flip_rate_ci95(self) -> tuple[float, float]:
        return wilson_interval(self.negative_flips, self.n_samples)

    def label(self) -> str:
        """``mixing w_new=0.35``, ``gating t=0.9 s=0.7``, ``interpolation alpha=0.4``."""
        return f"{self.method} " + " ".join(f"{k}={v:g}" for k, v in self.params.items())

    def to_json(self, with_params: bool = True) -> dict[str, Any]:
        """The JSON row: the parameters (unless ``with_params`` is False), then the counts and rates (``docs/metrics.md``)."""
        lo, hi = self.negative_flip_rate_ci95
        return {
            **({k: float(v) for k, v in self.params.items()} if with_params else {}),
            "negative_flips": int(self.negative_flips),
            "positive_flips": int(self.positive_flips),
            "negative_flip_rate": json_clean(self.negative_flip_rate),
            "negative_flip_rate_ci95": [json_clean(lo), json_clean(hi)],
            "error_rate": json_clean(self.error_rate),
            "n_samples": int(self.n_samples),
            "cost_models": int(self.cost),
        }


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


def _gating_grid() -> list[tuple[float, float]]:
    return [(t, s) for t in GATING_OLD_THRESHOLDS for s in GATING_NEW_THRESHOLDS]


def score_points(
    y: Any, old_pred: Any, preds: np.ndarray, folds: np.ndarray | None = None, n_folds: int = 1
) -> np.ndarray:
    """Counts ``[C, F, 4]`` (n, negative flips, positive flips, errors) of ``C`` prediction rows per fold.

    ``folds`` assigns each sample to ``0 … n_folds − 1`` (None: one fold, every sample).
    """
    y = np.asarray(y)
    old_ok = np.asarray(old_pred) == y
    preds = np.atleast_2d(preds)
    f = np.zeros(y.shape[0], np.int64) if folds is None else np.asarray(folds, np.int64)
    n_f = 1 if folds is None else n_folds
    out = np.zeros((preds.shape[0], n_f, 4), dtype=np.int64)
    for k in range(n_f):
        m = f == k
        ok = preds[:, m] == y[m]
        o = old_ok[m]
        out[:, k, 0] = int(m.sum())
        out[:, k, 1] = np.count_nonzero(~ok & o, axis=1)
        out[:, k, 2] = np.count_nonzero(ok & ~o, axis=1)
        out[:, k, 3] = np.count_nonzero(~ok, axis=1)
    return out


def _points(method: str, params: Sequence[Mapping[str, float]], counts: np.ndarray) -> tuple[WhatIfPoint, ...]:
    return tuple(
        WhatIfPoint(method, dict(p), int(c[0]), int(c[1]), int(c[2]), int(c[3])) for p, c in zip(params, counts)
    )


def mixing_points(
    y: Any, p_old: Any, p_new: Any, weights: Sequence[float] = MIXING_WEIGHTS, old_pred: Any = None
) -> tuple[WhatIfPoint, ...]:
    """The mixing curve on all samples (``old_pred`` defaults to ``argmax p_old``)."""
    yy, po, pn = _check_inputs(y, p_old, p_new)
    o = po.argmax(axis=1) if old_pred is None else np.asarray(old_pred)
    counts = score_points(yy, o, mixing_predictions(po, pn, weights))[:, 0]
    return _points("mixing", [{"w_new": float(w)} for w in weights], counts)


def gating_points(
    y: Any, p_old: Any, p_new: Any, grid: Sequence[tuple[float, float]] | None = None, old_pred: Any = None
) -> tuple[WhatIfPoint, ...]:
    """The gating grid on all samples (default grid: :data:`GATING_OLD_THRESHOLDS` × :data:`GATING_NEW_THRESHOLDS`)."""
    yy, po, pn = _check_inputs(y, p_old, p_new)
    grid = _gating_grid() if grid is None else list(grid)
    o = po.argmax(axis=1) if old_pred is None else np.asarray(old_pred)
    counts = score_points(yy, o, gating_predictions(po, pn, grid))[:, 0]
    return _points("gating", [{"t": float(t), "s": float(s)} for t, s in grid], counts)


# --------------------------------------------------------------------------- the recommendation
def id_folds(ids: Any, n_folds: int = 2) -> np.ndarray:
    """The cross-fitting fold of every sample: a hash of its id (as a string) modulo ``n_folds``.

    Uses :func:`pandas.util.hash_array` with its fixed default key, so a sample keeps its
    fold across runs, machines and row orders.

    >>> id_folds(["a", "b", "c", "d", "e", "f"]).tolist()
    [0, 1, 0, 0, 1, 0]
    """
    s = np.asarray(ids).astype(str).astype(object)
    return (pd.util.hash_array(s) % np.uint64(n_folds)).astype(np.int64)


def choose_point(
    points: Sequence[WhatIfPoint], new_error_rate: float, max_error_increase: float = DEFAULT_MAX_ERROR_INCREASE
) -> int:
    """Index of the point with the lowest NFR among those with error ≤ ``new_error_rate + max_error_increase``.

    Ties go to the lower error rate, then the lower cost, then the earlier point. The
    comparison allows for float rounding (1e-12) so a point at exactly the bound qualifies.

    Raises
    ------
    ValueError
        No point qualifies (cannot happen when the new model itself, mixing ``w = 1``, is a point).
    """
    bound = new_error_rate + max_error_increase + 1e-12
    ok = [i for i, p in enumerate(points) if p.n_samples and p.error_rate <= bound]
    if not ok:
        raise ValueError(f"no point has an error rate at most {bound:.4f}")
    return min(
        ok, key=lambda i: (points[i].negative_flips / points[i].n_samples, points[i].error_rate, points[i].cost, i)
    )


@dataclass(frozen=True)
class FoldChoice:
    """One way of the choice: the point chosen on ``chosen_on`` and its numbers on ``reported_on``."""

    chosen_on: str
    reported_on: str
    point: WhatIfPoint
    """The chosen setting's counts on the reporting set."""
    new_error_rate: float
    """The new model's error rate on the reporting set."""
    new_negative_flips: int

    def to_json(self) -> dict[str, Any]:
        return {
            "chosen_on": self.chosen_on,
            "reported_on": self.reported_on,
            "method": self.point.method,
            **{k: float(v) for k, v in self.point.params.items()},
            "held_out": self.point.to_json(),
            "new_error_rate": json_clean(self.new_error_rate),
            "new_negative_flips": int(self.new_negative_flips),
        }


@dataclass(frozen=True)
class Recommendation:
    """The recommended remedy: its setting, and its numbers on data it was not chosen on.

    Attributes
    ----------
    point : WhatIfPoint
        The setting to deploy (chosen on the validation set, or by the rule on the whole
        evaluation set when cross-fitting) with its *held-out* counts: on the evaluation
        set after a validation choice, else the pooled held-out halves of the two folds.
    chosen_on : str
        ``"validation"`` or ``"2-fold cross-fitting"``.
    new : WhatIfPoint
        The new model alone on the same held-out samples (for the change).
    folds : tuple of FoldChoice
        With cross-fitting, the two ways (choose on half 0, report on half 1; and back).
    max_error_increase : float
        The rule's slack over the new model's error rate (a rate: 0.001 = 0.1 points).
    """

    point: WhatIfPoint
    chosen_on: str
    new: WhatIfPoint
    folds: tuple[FoldChoice, ...] = ()
    max_error_increase: float = DEFAULT_MAX_ERROR_INCREASE

    @property
    def method(self) -> str:
        return self.point.method

    @property
    def params(self) -> Mapping[str, float]:
        return self.point.params

    @property
    def folds_agree(self) -> bool:
        """True when every cross-fitting way chose the deployed setting (always True after a validation choice)."""
        return all(
            f.point.method == self.point.method and dict(f.point.params) == dict(self.point.params) for f in self.folds
        )

    def sentence(self) -> str:
        """One sentence: what to deploy, what it changes against the new model (held out) and what it costs."""
        p, n = self.point, self.new
        d_err = (p.error_rate - n.error_rate) * 100
        if p.method == "mixing" and p.params["w_new"] == 1.0:
            what = "Deploy the new model as it is: no remedy lowers the negative flips within the error allowance"
        elif p.negative_flips >= n.negative_flips:
            # The rule chose a setting, but held out it breaks no fewer images: say so rather than sell it.
            what = (
                f"Keep the new model as it is: the rule's choice, {_describe(p)}, does not lower the negative "
                "flips on held-out images"
            )
        else:
            what = f"Deploy {_describe(p)}"
        held = (
            "held-out images"
            if self.folds_agree
            else (
                "held-out images when each half's choice ("
                + "; ".join(f.point.label() for f in self.folds)
                + ") is measured on the other half"
            )
        )
        return (
            f"{what}: {p.negative_flips:,} negative flips instead of the new model's {n.negative_flips:,} "
            f"on {p.n_samples:,} {held}, error {d_err:+.2f} points "
            f"({percent(p.error_rate)} vs {percent(n.error_rate)}); cost: {_cost_words(p)}; "
            f"chosen by {self.chosen_on}, never on these numbers."
        )

    def to_json(self) -> dict[str, Any]:
        """``{"method", <parameters>, "held_out", "new_held_out", "chosen_on", "cost_models", …}``."""
        p = self.point
        out: dict[str, Any] = {
            "method": p.method,
            **{k: float(v) for k, v in p.params.items()},
            "cost_models": int(p.cost),
            "cost": _cost_words(p),
            "chosen_on": self.chosen_on,
            "max_error_increase": float(self.max_error_increase),
            # the pooled held-out counts may come from other settings (folds): no parameters
            "held_out": p.to_json(with_params=False),
            "new_held_out": self.new.to_json(with_params=False),
            "negative_flips_change": int(p.negative_flips - self.new.negative_flips),
            "error_rate_change": json_clean(p.error_rate - self.new.error_rate),
            "sentence": self.sentence(),
        }
        if self.folds:
            out["folds"] = [f.to_json() for f in self.folds]
            out["folds_agree"] = self.folds_agree
        return out


def _describe(p: WhatIfPoint) -> str:
    if p.method == "mixing":
        w = p.params["w_new"]
        return (
            "the old model alone" if w == 0.0 else f"the mix {1 - w:.2f}·old + {w:.2f}·new of the class probabilities"
        )
    if p.method == "gating":
        return (
            f"gating (old's answer where old's top probability ≥ {p.params['t']:g} and new's ≤ "
            f"{p.params['s']:g}, else new's)"
        )
    return f"the interpolated weights {1 - p.params['alpha']:.1f}·old + {p.params['alpha']:.1f}·new"


def _cost_words(p: WhatIfPoint) -> str:
    if p.method == "interpolation":
        return "none (one model of the old architecture)"
    return "none (one model)" if p.cost == 1 else "both models at inference (twice the compute)"


def _params_of(method: str, n: int, params: Sequence[Mapping[str, float]]) -> list[Mapping[str, float]]:
    if len(params) != n:
        raise ValueError(f"{method}: {len(params)} settings for {n} prediction rows")
    return list(params)


def recommend(
    y: Any,
    old_pred: Any,
    new_pred: Any,
    candidates: Mapping[str, tuple[np.ndarray, Sequence[Mapping[str, float]]]],
    ids: Any = None,
    *,
    max_error_increase: float = DEFAULT_MAX_ERROR_INCREASE,
    validation: tuple[Any, Any, Any, Mapping[str, np.ndarray]] | None = None,
    fold_counts: np.ndarray | None = None,
) -> Recommendation:
    """Choose a remedy point by the rule of :func:`choose_point` without reporting on the choosing data.

    Parameters
    ----------
    y, old_pred, new_pred : array_like
        Labels and both models' predictions on the evaluation set.
    candidates : mapping
        ``method -> (predictions [C, N] on the evaluation set, the C settings)``.
    ids : array_like, optional
        Sample ids (for the cross-fitting folds, :func:`id_folds`); needed without ``validation``.
    max_error_increase : float
        Slack over the new model's error rate (a rate: 0.001 is 0.1 points).
    validation : (y, old_pred, new_pred, {method: predictions [C, M]}), optional
        The same on a validation set: the point is chosen there and reported on the whole
        evaluation set.
    fold_counts : array [C, 2, 4], optional
        :func:`score_points` of the candidates (in ``REMEDY_METHODS`` order) on the folds
        of :func:`id_folds`, when the caller has them already.

    Returns
    -------
    Recommendation
    """
    y = np.asarray(y)
    methods = [m for m in REMEDY_METHODS if m in candidates]
    settings = [(m, dict(p)) for m in methods for p in _params_of(m, len(candidates[m][0]), candidates[m][1])]
    preds = np.concatenate([np.asarray(candidates[m][0]) for m in methods])

    def points(counts: np.ndarray) -> list[WhatIfPoint]:  # counts [C, 4] -> points
        return [WhatIfPoint(m, p, *map(int, c)) for (m, p), c in zip(settings, counts)]

    def new_point(counts: np.ndarray) -> WhatIfPoint:
        return WhatIfPoint("mixing", {"w_new": 1.0}, *map(int, counts))

    if validation is not None:
        vy, vo, vn, vcand = validation
        vpreds = np.concatenate([np.asarray(vcand[m]) for m in methods])
        vc = score_points(vy, vo, vpreds)[:, 0]
        vnew = score_points(vy, vo, np.asarray(vn)[None])[0, 0]
        i = choose_point(points(vc), vnew[3] / vnew[0], max_error_increase)
        ec = score_points(y, old_pred, preds[i][None])[0, 0]
        enew = score_points(y, old_pred, np.asarray(new_pred)[None])[0, 0]
        return Recommendation(
            WhatIfPoint(*settings[i], *map(int, ec)), "validation", new_point(enew), (), max_error_increase
        )
    if ids is None:
        raise ValueError("recommend needs the sample ids for cross-fitting when there is no validation set")
    folds = id_folds(ids, 2)
    if np.bincount(folds, minlength=2).min() == 0:
        raise ValueError(
            f"cannot cross-fit on {len(folds)} samples: one half of the id split is empty (give a validation set)"
        )
    c = score_points(y, old_pred, preds, folds, 2) if fold_counts is None else fold_counts  # [C, 2, 4]
    cnew = score_points(y, old_pred, np.asarray(new_pred)[None], folds, 2)[0]  # [2, 4]
    ways, pooled = [], np.zeros(4, np.int64)
    for choose, report in ((0, 1), (1, 0)):
        i = choose_point(points(c[:, choose]), cnew[choose, 3] / max(cnew[choose, 0], 1), max_error_increase)
        held = c[i, report]
        pooled += held
        ways.append(
            FoldChoice(
                f"half {choose}",
                f"half {report}",
                WhatIfPoint(*settings[i], *map(int, held)),
                float(cnew[report, 3] / max(cnew[report, 0], 1)),
                int(cnew[report, 1]),
            )
        )
    whole = c.sum(axis=1)
    j = choose_point(points(whole), float(cnew[:, 3].sum() / max(cnew[:, 0].sum(), 1)), max_error_increase)
    point = WhatIfPoint(*settings[j], *map(int, pooled))
    return Recommendation(point, "2-fold cross-fitting", new_point(cnew.sum(axis=0)), tuple(ways), max_error_increase)


# --------------------------------------------------------------------------- the whole report
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
    rows = {"mixing": mixing_predictions(po, pn), "gating": gating_predictions(po, pn, _gating_grid())}
    if interpolation is not None:
        rows["interpolation"] = np.asarray(interpolation)
    o = po.argmax(axis=1) if old_pred is None else np.asarray(old_pred, np.int64)
    n = pn.argmax(axis=1) if new_pred is None else np.asarray(new_pred, np.int64)
    return Candidates(yy, o, n, rows)


def remedy_settings(method: str, alphas: Sequence[float] = INTERPOLATION_ALPHAS) -> list[dict[str, float]]:
    """The settings of a method's points, in row order."""
    if method == "mixing":
        return [{"w_new": float(w)} for w in MIXING_WEIGHTS]
    if method == "gating":
        return [{"t": float(t), "s": float(s)} for t, s in _gating_grid()]
    return [{"alpha": float(a)} for a in alphas]


@dataclass(frozen=True)
class WhatIfReport:
    """Every remedy point on the evaluation set, and the recommendation (``docs/metrics.md``, "What-if remedies").

    ``interpolation`` is None when the two models cannot be interpolated (or were not
    asked to be); ``interpolation_reason`` then says why.
    """

    n_samples: int
    mixing: tuple[WhatIfPoint, ...]
    gating: tuple[WhatIfPoint, ...]
    interpolation: tuple[WhatIfPoint, ...] | None
    interpolation_reason: str | None
    recommended: Recommendation
    old_errors: int
    new_errors: int
    new_negative_flips: int

    def points(self) -> tuple[WhatIfPoint, ...]:
        """Every point, mixing then gating then interpolation."""
        return self.mixing + self.gating + (self.interpolation or ())

    def to_json(self) -> dict[str, Any]:
        n = self.n_samples
        return {
            "n_samples": n,
            "old_error_rate": json_clean(self.old_errors / n if n else math.nan),
            "new_error_rate": json_clean(self.new_errors / n if n else math.nan),
            "new_negative_flips": int(self.new_negative_flips),
            "mixing": [p.to_json() for p in self.mixing],
            "gating": [p.to_json() for p in self.gating],
            "interpolation": None if self.interpolation is None else [p.to_json() for p in self.interpolation],
            "interpolation_reason": self.interpolation_reason,
            "recommended": self.recommended.to_json(),
        }


def whatif_report(
    evaluation: Candidates,
    ids: Any,
    *,
    validation: Candidates | None = None,
    interpolation_alphas: Sequence[float] = INTERPOLATION_ALPHAS,
    interpolation_reason: str | None = None,
    max_error_increase: float = DEFAULT_MAX_ERROR_INCREASE,
) -> WhatIfReport:
    """Score every point on the evaluation set and recommend one (:func:`recommend`).

    Examples
    --------
    >>> y = np.array([0, 1, 1, 0, 1, 0])
    >>> p_old = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2]])
    >>> p_new = np.array([[0.4, 0.6], [0.3, 0.7], [0.3, 0.7], [0.7, 0.3], [0.2, 0.8], [0.9, 0.1]])
    >>> r = whatif_report(candidate_predictions(y, p_old, p_new), ids=list("abcdef"))
    >>> r.mixing[-1].negative_flips, r.recommended.method, r.recommended.chosen_on
    (1, 'mixing', '2-fold cross-fitting')
    """
    e = evaluation
    methods = [m for m in REMEDY_METHODS if m in e.rows]
    if validation is not None:
        missing = [m for m in methods if m not in validation.rows]
        if missing:
            raise ValueError(f"the validation set lacks the rows of {', '.join(missing)}")
    settings = {m: remedy_settings(m, interpolation_alphas) for m in methods}
    cands = {m: (e.rows[m], settings[m]) for m in methods}
    val = (
        None
        if validation is None
        else (validation.y, validation.old_pred, validation.new_pred, {m: validation.rows[m] for m in methods})
    )
    fold_counts = None
    if validation is None and ids is not None:  # one counting pass gives both the folds and the whole set
        fold_counts = score_points(e.y, e.old_pred, np.concatenate([e.rows[m] for m in methods]), id_folds(ids, 2), 2)
        whole = fold_counts.sum(axis=1)
    else:
        whole = np.concatenate([score_points(e.y, e.old_pred, e.rows[m])[:, 0] for m in methods])
    bounds = np.cumsum([0] + [len(e.rows[m]) for m in methods])
    scored = {m: _points(m, settings[m], whole[bounds[i] : bounds[i + 1]]) for i, m in enumerate(methods)}
    rec = recommend(
        e.y,
        e.old_pred,
        e.new_pred,
        cands,
        ids,
        max_error_increase=max_error_increase,
        validation=val,
        fold_counts=fold_counts,
    )
    new_c = score_points(e.y, e.old_pred, e.new_pred[None])[0, 0]
    return WhatIfReport(
        n_samples=int(e.y.shape[0]),
        mixing=scored["mixing"],
        gating=scored["gating"],
        interpolation=scored.get("interpolation"),
        interpolation_reason=None if "interpolation" in scored else interpolation_reason,
        recommended=rec,
        old_errors=int(np.count_nonzero(e.old_pred != e.y)),
        new_errors=int(new_c[3]),
        new_negative_flips=int(new_c[1]),
    )


#: ``interpolation_reason`` of the what-if object in a comparison report.
NOT_IN_COMPARE = (
    "a comparison scores mixing and gating only: run graceful mitigate on the model files for interpolation"
)


def whatif_of_scores(
    labels: Any,
    ids: Any,
    old_scores: Any,
    old_kind: str | None,
    new_scores: Any,
    new_kind: str | None,
    old_pred: Any,
    new_pred: Any,
) -> WhatIfReport:
    """Mixing and gating of two models' class scores (logits or probabilities), recommended by cross-fitting."""
    cands = candidate_predictions(
        labels, probabilities64(old_scores, old_kind), probabilities64(new_scores, new_kind), old_pred, new_pred
    )
    return whatif_report(cands, ids, interpolation_reason=NOT_IN_COMPARE)
