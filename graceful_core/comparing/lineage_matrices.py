"""The matrices and the chain of a model set, from its pairwise comparisons: the one builder of a
:class:`~graceful_core.results.lineage.ModelSet` for the in-memory (:mod:`graceful_core.comparing.lineage`)
and the streamed (:mod:`graceful_core.comparing.lineage_streamed`) sets. Conventions: ``docs/metrics.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from graceful_core.results.comparison import Comparison
from graceful_core.results.lineage import IndexShare, Lineage, LineageStep, ModelSet

__all__ = ["MIN_MODELS", "flip_matrices", "index_sharing", "lineage_steps", "model_set"]

#: The fewest models a model set compares.
MIN_MODELS = 2


def flip_matrices(comps: dict[tuple[int, int], Comparison], m: int) -> dict[str, np.ndarray]:
    """NFR, BTC and negative-flip-count matrices (row old, column new) and accuracy per model.

    Each entry is the summary of the pairwise comparison (``docs/metrics.md``): NFR = (1/N) Σ
    1[o = y ∧ n ≠ y], BTC = Σ 1[o = y ∧ n = y] / Σ 1[o = y]; accuracy of model i is
    ``old_accuracy`` of the comparison (i, i).
    """
    nfr = np.full((m, m), np.nan)
    btc = np.full((m, m), np.nan)
    nflips = np.zeros((m, m), dtype=np.int64)
    for (i, j), c in comps.items():
        s = c.summary
        nfr[i, j] = s.negative_flip_rate
        btc[i, j] = s.backward_trust_compatibility
        nflips[i, j] = s.n_negative_flips
    acc = np.array([comps[i, i].summary.old_accuracy for i in range(m)], dtype=np.float64)
    return {"accuracy": acc, "negative_flip_rate": nfr, "backward_trust_compatibility": btc, "negative_flips": nflips}


def index_sharing(cross: Sequence[Sequence[float | None]], names: Sequence[str]) -> list[IndexShare]:
    """Ordered pairs (query q, gallery g), q != g, with M(q, g) > M(g, g) (BCT criterion)."""
    m = len(names)
    out = []
    for q in range(m):
        for g in range(m):
            c, s = cross[q][g], cross[g][g]
            if q != g and c is not None and s is not None and not np.isnan(c) and not np.isnan(s) and c > s:
                out.append(IndexShare(names[q], names[g], float(c), float(s)))
    return out


def lineage_steps(comps: dict[tuple[int, int], Comparison], names: Sequence[str]) -> tuple[LineageStep, ...]:
    """Each consecutive pair v_i -> v_i+1 of the chain: its accuracies, NFR and flips, from its comparison."""
    steps = []
    for i in range(len(names) - 1):
        s = comps[i, i + 1].summary
        steps.append(
            LineageStep(
                names[i],
                names[i + 1],
                s.old_accuracy,
                s.new_accuracy,
                s.negative_flip_rate,
                s.n_negative_flips,
                s.n_positive_flips,
            )
        )
    return tuple(steps)


def model_set(
    names: Sequence[str],
    n_samples: int,
    classes: Sequence[str],
    comps: dict[tuple[int, int], Comparison],
    lineage: Lineage,
    *,
    cross: Sequence[Sequence[float | None]],
    reasons: Sequence[Sequence[str | None]],
    embedding_dims: Sequence[int | None],
    ids_not_in_all: int,
    ids_cap: int | None = None,
) -> ModelSet:
    """The :class:`ModelSet` of every ordered pair's comparison (``comps``), the cross-tests and the chain."""
    mats = flip_matrices(comps, len(names))

    def rows(a: np.ndarray, kind: type) -> tuple:
        return tuple(tuple(kind(x) for x in row) for row in a)

    return ModelSet(
        models=tuple(names),
        n_samples=int(n_samples),
        classes=tuple(classes),
        accuracy=tuple(float(a) for a in mats["accuracy"]),
        negative_flip_rate=rows(mats["negative_flip_rate"], float),
        backward_trust_compatibility=rows(mats["backward_trust_compatibility"], float),
        negative_flips=rows(mats["negative_flips"], int),
        cross_top1=tuple(tuple(row) for row in cross),
        cross_top1_reason=tuple(tuple(row) for row in reasons),
        embedding_dims=tuple(embedding_dims),
        can_share_index=tuple(index_sharing(cross, names)),
        lineage=lineage,
        ids_not_in_all=ids_not_in_all,
        **({} if ids_cap is None else {"ids_cap": ids_cap}),
    )
