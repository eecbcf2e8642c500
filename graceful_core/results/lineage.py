"""A model set's result: pairwise matrices over N >= 2 models and their lineage, as frozen values.

:class:`ModelSet` is built by :func:`graceful_core.comparing.lineage.model_matrix` (or its
streamed twin); :meth:`ModelSet.to_report` is the JSON of ``python -m graceful_core matrix
--json``. The conventions of its rows and columns are in ``docs/metrics.md`` and in
:mod:`graceful_core.comparing.lineage`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graceful_core.jsonable import json_clean


# --------------------------------------------------------------------------- the result
@dataclass(frozen=True)
class LineageStep:
    """One step v_k -> v_{k+1} of the chain."""

    old: str
    new: str
    old_accuracy: float
    new_accuracy: float
    negative_flip_rate: float
    negative_flips: int
    positive_flips: int


@dataclass(frozen=True)
class Lineage:
    """The models in the given order as a chain v1 -> v2 -> ... (see :func:`lineage_series`)."""

    steps: tuple[LineageStep, ...]
    regressions_from_first: tuple[int, ...]
    """#{i: v1 right, v_k wrong} per model k (0 for v1)."""
    ever_regressed_from_first: tuple[int, ...]
    """#{i: v1 right and some v_2..v_k wrong} per model k."""
    regressed_from_first_ids: tuple[str, ...]
    """Sorted ids v1 got right that the last model gets wrong."""


@dataclass(frozen=True)
class IndexShare:
    """Queries of ``query`` search ``gallery``'s index better than ``gallery`` does itself."""

    query: str
    gallery: str
    cross_top1: float
    gallery_self_top1: float


@dataclass(frozen=True)
class ModelSet:
    """Pairwise matrices over models that ran on the same labelled samples (frozen).

    Matrices are tuples of rows; ``[i][j]`` is row i, column j (row = old model, column =
    new model; for ``cross_top1``, row = query model, column = gallery model). Undefined
    rates are nan (None in the JSON); cross-test entries are None where no cross-test
    exists (``cross_top1_reason`` says why).
    """

    models: tuple[str, ...]
    n_samples: int
    classes: tuple[str, ...]
    accuracy: tuple[float, ...]
    negative_flip_rate: tuple[tuple[float, ...], ...]
    backward_trust_compatibility: tuple[tuple[float, ...], ...]
    negative_flips: tuple[tuple[int, ...], ...]
    cross_top1: tuple[tuple[float | None, ...], ...]
    cross_top1_reason: tuple[tuple[str | None, ...], ...]
    embedding_dims: tuple[int | None, ...]
    can_share_index: tuple[IndexShare, ...]
    lineage: Lineage
    ids_not_in_all: int = 0
    ids_cap: int | None = None
    """Streamed model sets keep at most this many ``lineage.regressed_from_first_ids`` (None: all)."""

    @property
    def self_top1(self) -> tuple[float | None, ...]:
        """Each model's self-test Hit@1 (the diagonal of ``cross_top1``)."""
        return tuple(self.cross_top1[i][i] for i in range(len(self.models)))

    def to_report(self) -> dict[str, Any]:
        """The JSON of ``python -m graceful_core matrix --json`` (nan -> None)."""
        lin = self.lineage
        report = {
            "models": list(self.models),
            "n_samples": self.n_samples,
            "classes": list(self.classes),
            "accuracy": list(self.accuracy),
            "negative_flip_rate": self.negative_flip_rate,
            "backward_trust_compatibility": self.backward_trust_compatibility,
            "negative_flips": self.negative_flips,
            "cross_top1": self.cross_top1,
            "cross_top1_reason": self.cross_top1_reason,
            "self_top1": list(self.self_top1),
            "embedding_dims": list(self.embedding_dims),
            "can_share_index": [vars(s) for s in self.can_share_index],
            "lineage": {
                "steps": [vars(s) for s in lin.steps],
                "regressions_from_first": list(lin.regressions_from_first),
                "ever_regressed_from_first": list(lin.ever_regressed_from_first),
                "regressed_from_first_ids": list(lin.regressed_from_first_ids),
            },
        }
        if self.ids_not_in_all:
            report["ids_not_in_all"] = self.ids_not_in_all
        if self.ids_cap is not None:
            report["lineage"]["regressed_from_first_ids_cap"] = self.ids_cap
        return json_clean(report)
