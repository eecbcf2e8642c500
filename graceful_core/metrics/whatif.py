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

The module's jobs, one each: :mod:`~graceful_core.metrics.whatif_points` (the settings and how one
point is scored), :mod:`~graceful_core.metrics.whatif_curves` (the mixing and gating predictions),
:mod:`~graceful_core.metrics.whatif_recommend` (the choice), and this one (the whole report of a pair).
Their public names are all importable from here.

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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from graceful_core.jsonable import json_clean
from graceful_core.metrics.whatif_curves import (
    Candidates,
    candidate_predictions,
    gating_points,
    gating_predictions,
    mixing_points,
    mixing_predictions,
    probabilities64,
)
from graceful_core.metrics.whatif_points import (
    GATING_NEW_THRESHOLDS,
    GATING_OLD_THRESHOLDS,
    INTERPOLATION_ALPHAS,
    MIXING_WEIGHTS,
    REMEDY_METHODS,
    WhatIfPoint,
    points_of,
    remedy_cost,
    remedy_settings,
    score_points,
)
from graceful_core.metrics.whatif_recommend import (
    DEFAULT_MAX_ERROR_INCREASE,
    FoldChoice,
    Recommendation,
    choose_point,
    id_folds,
    recommend,
)

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
    scored = {m: points_of(m, settings[m], whole[bounds[i] : bounds[i + 1]]) for i, m in enumerate(methods)}
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
