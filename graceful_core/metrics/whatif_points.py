"""What-if remedy points: the settings of each remedy and how one setting is scored against the old model.

A remedy is a family of *points* (one setting each: a mixing weight, a gating threshold
pair, an interpolation ``α``); each point is scored like a new model against the old one
(``docs/metrics.md``, "What-if remedies"): its negative flips (old right, remedy wrong),
positive flips (old wrong, remedy right) and errors on ``n`` labelled samples, with the NFR's
Wilson 95 % interval and its cost (models run at inference). The overview of the remedies
is :mod:`graceful_core.metrics.whatif`.

Examples
--------
>>> import numpy as np
>>> y, old_pred = np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0])
>>> counts = score_points(y, old_pred, np.array([[0, 0, 1, 0]]))[0, 0]
>>> p = WhatIfPoint("mixing", {"w_new": 0.5}, *map(int, counts))
>>> p.negative_flips, p.positive_flips, p.errors, p.cost
(1, 1, 1, 2)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graceful_core.jsonable import json_clean
from graceful_core.metrics.significance import wilson_interval

__all__ = [
    "MIXING_WEIGHTS",
    "GATING_OLD_THRESHOLDS",
    "GATING_NEW_THRESHOLDS",
    "INTERPOLATION_ALPHAS",
    "REMEDY_METHODS",
    "WhatIfPoint",
    "remedy_cost",
    "remedy_settings",
    "gating_grid",
    "score_points",
    "points_of",
]

#: ``w_new`` of the mixing curve: 0, 0.05, …, 1.
MIXING_WEIGHTS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(21))
#: Gating: keep old's prediction where old's top probability is at least ``t`` …
GATING_OLD_THRESHOLDS: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
#: … and new's top probability is at most ``s`` (``s = 1``: whatever new says).
GATING_NEW_THRESHOLDS: tuple[float, ...] = (0.5, 0.7, 0.9, 0.99, 1.0)
#: ``α`` of the weight interpolation: 0, 0.1, …, 1.
INTERPOLATION_ALPHAS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
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


def gating_grid() -> list[tuple[float, float]]:
    """Every gating setting ``(t, s)``: :data:`GATING_OLD_THRESHOLDS` × :data:`GATING_NEW_THRESHOLDS`."""
    return [(t, s) for t in GATING_OLD_THRESHOLDS for s in GATING_NEW_THRESHOLDS]


def remedy_settings(method: str, alphas: Sequence[float] = INTERPOLATION_ALPHAS) -> list[dict[str, float]]:
    """The settings of a method's points, in row order."""
    if method == "mixing":
        return [{"w_new": float(w)} for w in MIXING_WEIGHTS]
    if method == "gating":
        return [{"t": float(t), "s": float(s)} for t, s in gating_grid()]
    return [{"alpha": float(a)} for a in alphas]


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


def points_of(method: str, params: Sequence[Mapping[str, float]], counts: np.ndarray) -> tuple[WhatIfPoint, ...]:
    """The points of ``method``: one per setting in ``params``, with its counts row ``(n, neg, pos, errors)``."""
    return tuple(
        WhatIfPoint(method, dict(p), int(c[0]), int(c[1]), int(c[2]), int(c[3])) for p, c in zip(params, counts)
    )
