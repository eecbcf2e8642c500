"""The what-if recommendation: which remedy point to deploy, never tuned on the numbers it reports.

:func:`recommend` chooses on a validation set when there is one, else by 2-fold
cross-fitting on the evaluation set (fold of a sample: a hash of its id, :func:`id_folds`;
choose on one half, report on the other, both ways, held-out counts pooled). The rule
(:func:`choose_point`): the lowest NFR among the points whose error rate is at most the new
model's + ``max_error_increase`` on the choosing set (ties: lower error, then lower cost,
then the earlier point).

Examples
--------
>>> import numpy as np
>>> from graceful_core.metrics.whatif_points import WhatIfPoint
>>> pts = [WhatIfPoint("mixing", {"w_new": 1.0}, 100, 8, 5, 10), WhatIfPoint("mixing", {"w_new": 0.5}, 100, 3, 2, 11)]
>>> choose_point(pts, new_error_rate=0.10, max_error_increase=0.01), choose_point(pts, 0.10, 0.0)
(1, 0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# pandas.util.hash_array, from the module that defines it: pandas.util hands it out through a module
# __getattr__, which type checkers read as `object`
from pandas.core.util.hashing import hash_array

from graceful_core.jsonable import json_clean
from graceful_core.metrics.whatif_points import REMEDY_METHODS, WhatIfPoint, score_points
from graceful_core.vocabulary import percent

__all__ = ["DEFAULT_MAX_ERROR_INCREASE", "FoldChoice", "Recommendation", "id_folds", "choose_point", "recommend"]

#: Default slack of the recommendation rule: 0.1 percentage points of error rate over the new model's.
DEFAULT_MAX_ERROR_INCREASE = 0.001


def id_folds(ids: Any, n_folds: int = 2) -> np.ndarray:
    """The cross-fitting fold of every sample: a hash of its id (as a string) modulo ``n_folds``.

    Uses :func:`pandas.util.hash_array` with its fixed default key, so a sample keeps its
    fold across runs, machines and row orders.

    >>> id_folds(["a", "b", "c", "d", "e", "f"]).tolist()
    [0, 1, 0, 0, 1, 0]
    """
    s = np.asarray(ids).astype(str).astype(object)
    return (hash_array(s) % np.uint64(n_folds)).astype(np.int64)


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
