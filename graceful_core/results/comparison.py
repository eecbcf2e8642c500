"""One comparison of an old and a new model: everything a report needs, built once.

:func:`compare_predictions` is the single place where a comparison is computed from two
models' predictions; the CLI (:mod:`graceful_core.cli.commands`), the app and the model sets all
get theirs from it (files go through :func:`graceful_core.comparing.sources.compare_sources`). The
result, :class:`Comparison`, is frozen and complete when it is returned:

- ``counts``: the joint counts of (label, old prediction, new prediction)
  (:class:`~graceful_core.metrics.counts.FlipCounts`); the ``summary``
  (:class:`~graceful_core.metrics.summary.FlipSummary`), the per-class table and the
  transition matrix are functions of them, so a comparison whose counts were
  accumulated by streaming a table (no per-sample arrays in memory) is built the same way;
- ``flip_ids``: the ids of the negative and positive flips;
- optional parts, None when absent: the per-sample arrays (``arrays``, with the samples'
  metadata), the per-slice table, the embedding cross-test, the old head on the new
  embeddings, the embedding overlap, the churn floor of a reference retrain, the
  regression slices (:class:`~graceful_core.metrics.slices.SliceReport`: metadata values
  and clusters of the old embeddings where the negative flips concentrate).

:meth:`Comparison.to_report` is the JSON report (its keys are listed in
``docs/metrics.md``, "JSON report"); :meth:`~Comparison.to_dict` is the same,
:meth:`~Comparison.to_html` writes the HTML report, and :meth:`~Comparison.samples`,
:meth:`~Comparison.flips` and ``per_class.to_frame()`` are pandas views.

Examples
--------
>>> import numpy as np
>>> from graceful_core.types import Predictions
>>> ids = np.array(["a", "b", "c", "d"], dtype=object)
>>> old = Predictions(ids=ids, pred=np.array([0, 1, 0, 0]), classes=["cat", "dog"], labels=np.array([0, 1, 1, 0]))
>>> new = Predictions(ids=ids, pred=np.array([1, 1, 1, 0]), classes=["cat", "dog"])
>>> comp = compare_predictions(old, new, old_name="v1", new_name="v2")
>>> comp.summary.n_negative_flips, comp.flip_ids.negative, comp.flip_ids.positive
(1, ('a',), ('c',))
>>> comp.to_report()["negative_flip_rate"]
0.25
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from graceful_core import cache
from graceful_core.errors import InputError
from graceful_core.io.metadata import SampleMetadata, combine
from graceful_core.io.tables import join_predictions
from graceful_core.jsonable import json_clean
from graceful_core.metrics import flips as fm
from graceful_core.metrics.churn import ChurnFloor, churn_floor
from graceful_core.metrics.confidence import class_probabilities, flip_confidence_split_from_true_probs
from graceful_core.metrics.counts import FlipCounts
from graceful_core.metrics.label_issues import LabelIssues, label_issues_of_comparison, label_issues_to_json
from graceful_core.metrics.prediction_churn import prediction_churn_from_matrix
from graceful_core.metrics.retrieval import (
    CrossTest,
    RetrievalResult,
    cross_test,
    head_accuracy,
    nearest_neighbour_overlap,
)
from graceful_core.metrics.slices import (
    MIN_SAMPLES_TO_CLUSTER,
    Clustering,
    SliceReport,
    clusters_in_embedding_order,
    describe_clusters,
    find_regression_slices,
)
from graceful_core.metrics.summary import FlipSummary, flip_summary
from graceful_core.metrics.whatif import WhatIfReport, whatif_of_scores
from graceful_core.results.coverage import MissingRows
from graceful_core.types import Predictions
from graceful_core.vocabulary import FLIP_TYPES, StageProgress

if TYPE_CHECKING:
    from graceful_core.io.datasets import ImageDataset

__all__ = ["Comparison", "ComparisonInputs", "FlipIds", "GroupFlips", "SampleArrays", "ChurnFloor",
           "compare_predictions", "FLIP_TYPES", "json_clean"]


def _read_only(a: np.ndarray | None) -> np.ndarray | None:
    """A read-only view of ``a`` (the caller's array keeps its own flags)."""
    if a is None:
        return None
    v = np.asarray(a).view()
    v.setflags(write=False)
    return v


# --------------------------------------------------------------------------- parts
@dataclass(frozen=True)
class FlipIds:
    """The ids of the negative and positive flips, each sorted as strings.

    Attributes
    ----------
    negative, positive : tuple of str
        Sorted ids; all of them, unless ``cap`` is set.
    n_negative, n_positive : int
        How many flips there are (the lengths when the lists are complete).
    cap : int or None
        When set, each list holds at most the first ``cap`` ids (streamed comparisons of
        very large tables); the report states the cap.
    parquet : str or None
        A Parquet file with every flip id (column ``id``, ``flip``), when the lists are capped.
    """

    negative: tuple[str, ...]
    positive: tuple[str, ...]
    n_negative: int
    n_positive: int
    cap: int | None = None
    parquet: str | None = None

    @classmethod
    def complete(cls, negative: Sequence[str], positive: Sequence[str]) -> FlipIds:
        """Both full lists (sorted here)."""
        neg, pos = tuple(sorted(map(str, negative))), tuple(sorted(map(str, positive)))
        return cls(neg, pos, len(neg), len(pos))

    def to_json(self) -> dict[str, Any]:
        """``negative_flips`` and ``positive_flips`` (sorted ids), plus the cap and file when capped."""
        out: dict[str, Any] = {"negative_flips": list(self.negative), "positive_flips": list(self.positive)}
        if self.cap is not None:
            out["flip_ids_cap"] = self.cap
        if self.parquet is not None:
            out["flip_ids_file"] = self.parquet
        return out


@dataclass(frozen=True, eq=False)
class GroupFlips:
    """Flip counts and rates per group: per true class, or per slice (``docs/metrics.md``).

    Every array has one entry per group, in the order of ``groups``; rates are nan where
    the support is 0. Built by :meth:`from_counts` (classes) or :meth:`from_arrays` (slices).
    """

    group: str
    """Column name of the groups: ``"class"`` or ``"slice"``."""
    groups: tuple[Any, ...]
    support: np.ndarray
    negative_flips: np.ndarray
    positive_flips: np.ndarray
    negative_flip_rate: np.ndarray
    positive_flip_rate: np.ndarray
    old_accuracy: np.ndarray
    new_accuracy: np.ndarray

    COLUMNS = ("support", "negative_flips", "positive_flips", "negative_flip_rate", "positive_flip_rate",
               "old_accuracy", "new_accuracy")

    @classmethod
    def _of(cls, group: str, groups: Sequence[Any], table: dict[str, np.ndarray]) -> GroupFlips:
        return cls(group, tuple(groups), **{c: _read_only(table[c]) for c in cls.COLUMNS})

    @classmethod
    def from_counts(cls, counts: FlipCounts, classes: Sequence[str]) -> GroupFlips:
        """The per-class table of joint counts (:func:`~graceful_core.metrics.flips.per_class_from_counts`)."""
        return cls._of("class", [str(c) for c in classes], fm.per_class_from_counts(counts))

    @classmethod
    def from_arrays(cls, y: Any, old: Any, new: Any, slices: Any) -> GroupFlips:
        """The per-slice table (:func:`~graceful_core.metrics.flips.per_slice_flips`)."""
        t = fm.per_slice_flips(y, old, new, slices)
        return cls._of("slice", [v.item() if hasattr(v, "item") else v for v in t["slice"]], t)

    def __len__(self) -> int:
        return len(self.groups)

    def to_frame(self) -> pd.DataFrame:
        """A new DataFrame: the group column, then :data:`COLUMNS`."""
        df = pd.DataFrame({self.group: list(self.groups)})
        for c in self.COLUMNS:
            df[c] = np.array(getattr(self, c))
        return df

    def to_json(self, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """One object per group with the group column and ``columns`` (default: all), JSON-ready."""
        cols = self.COLUMNS if columns is None else tuple(columns)
        return [{self.group: self.groups[i], **{c: getattr(self, c)[i].item() for c in cols}}
                for i in range(len(self.groups))]


@dataclass(frozen=True, eq=False)
class SampleArrays:
    """The per-sample arrays of an in-memory comparison (read-only views), in one order.

    A streamed comparison of a very large table has none (``Comparison.arrays`` is None).
    """

    ids: np.ndarray
    """Sample ids (str or object)."""
    labels: np.ndarray
    """int64 true class indices into ``Comparison.classes``."""
    old_pred: np.ndarray
    new_pred: np.ndarray
    old_conf: np.ndarray | None = None
    """Probability the old model gave its own prediction (None without scores)."""
    new_conf: np.ndarray | None = None
    old_p_true: np.ndarray | None = None
    """Probability the old model gave the true class (None without scores)."""
    new_p_true: np.ndarray | None = None
    slices: np.ndarray | None = None
    """Slice value per sample, when the dataset or a table assigns slices."""
    old_embedding: np.ndarray | None = field(default=None, repr=False)
    new_embedding: np.ndarray | None = field(default=None, repr=False)
    metadata: SampleMetadata | None = field(default=None, repr=False)
    """Per-sample metadata (the manifest's extra columns, then the old table's;
    ``docs/formats.md``), aligned with the rows; read-only."""

    def __post_init__(self) -> None:
        n = len(self.labels)
        for name in ("ids", "labels", "old_pred", "new_pred", "old_conf", "new_conf", "old_p_true", "new_p_true",
                     "slices", "old_embedding", "new_embedding"):
            a = getattr(self, name)
            if a is not None and len(a) != n:
                raise ValueError(f"{name} has {len(a)} rows, labels {n}")
            object.__setattr__(self, name, _read_only(a))
        if self.metadata is not None and len(self.metadata) != n:
            raise ValueError(f"metadata has {len(self.metadata)} rows, labels {n}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @cached_property
    def negative_flip_mask(self) -> np.ndarray:
        return fm.negative_flip_mask(self.labels, self.old_pred, self.new_pred)

    @cached_property
    def positive_flip_mask(self) -> np.ndarray:
        return fm.positive_flip_mask(self.labels, self.old_pred, self.new_pred)

    @cached_property
    def flip_type(self) -> np.ndarray:
        """Per-sample flip status as an index into :data:`~graceful_core.vocabulary.FLIP_TYPES`."""
        old_ok = self.old_pred == self.labels
        new_ok = self.new_pred == self.labels
        out = np.full(len(self), 3, dtype=np.int8)  # both wrong
        out[old_ok & new_ok] = 2
        out[~old_ok & new_ok] = 1
        out[old_ok & ~new_ok] = 0
        return out

    @cached_property
    def row_of(self) -> dict[str, int]:
        """Sample id (as str) -> row."""
        return {str(s): i for i, s in enumerate(self.ids.tolist())}


class SupportsJson(Protocol):
    """A part of the report that renders its own JSON object (e.g. a regression slice)."""

    def to_json(self) -> dict[str, Any]: ...


def _slice_report(slices: SliceReport | Sequence[SupportsJson], counts: FlipCounts) -> SliceReport:
    """``slices`` as a :class:`SliceReport` (a plain sequence of slices becomes one without clusters)."""
    if isinstance(slices, SliceReport):
        return slices
    return SliceReport(slices=tuple(slices), n_samples=counts.n_samples,  # type: ignore[arg-type]
                       negative_flips=counts.negative_flips)


@dataclass(frozen=True, eq=False)
class ComparisonInputs:
    """Where a comparison's predictions came from, for the lazy results of
    :mod:`graceful_core.explore.on_demand` (full class probabilities, thumbnails, pixel neighbours).

    Attributes
    ----------
    old, new : str or None
        The model files or predictions tables (None for predictions given in memory).
    dataset : ImageDataset or None
        The dataset the samples come from (for images); not part of the report.
    """

    old: str | None = None
    new: str | None = None
    dataset: ImageDataset | None = field(default=None, repr=False)


# --------------------------------------------------------------------------- the result
@dataclass(frozen=True, eq=False)
class Comparison:
    """The comparison of ``old`` and ``new`` on the same labelled samples (frozen).

    Build it with :func:`compare_predictions` (or
    :func:`graceful_core.comparing.sources.compare_sources` for files); a streamed path builds it
    from accumulated ``counts`` and ``flip_ids`` with ``arrays=None``. ``summary``,
    ``per_class`` and ``transition_matrix`` are derived from ``counts`` on construction.

    Attributes
    ----------
    old_name, new_name : str
        Display names (model names or file names).
    classes : tuple of str
        Class names; every class index refers to this list.
    counts : FlipCounts
        Joint counts of (label, old prediction, new prediction) and the confidence split.
    flip_ids : FlipIds
        Ids of the negative and positive flips.
    arrays : SampleArrays or None
        Per-sample arrays; None for a streamed comparison.
    per_slice : GroupFlips or None
        Flip table per slice, when the samples carry slices.
    compatibility : CrossTest or None
        Embedding cross-test (BCT protocol) when both sides have embeddings.
    compatibility_reason : str or None
        Why the cross-test was not run although the inputs have embeddings (a streamed
        comparison does not read them); the report's ``compatibility`` is then
        ``{"reason": ...}``.
    old_head_on_new_accuracy : float or None
        Accuracy of the old model's classifier ``head`` applied to the new embeddings
        (does the old post-processing still work?); None without an exported head or
        comparable embeddings.
    embedding_overlap : float or None
        Share of samples whose new embedding's nearest old embedding is the sample itself;
        None without embeddings of equal size on both sides.
    churn_floor : ChurnFloor or None
        NFR of a reference retrain of the old model; None without ``--reference``.
    label_issues : LabelIssues or None
        Per-sample label quality, "label may be wrong" and "ambiguous"
        (:mod:`graceful_core.metrics.label_issues`); None without class scores on both
        sides or for a streamed comparison, ``label_issues_reason`` then says why.
    mitigation_whatif : WhatIfReport or None
        Mixing and gating of the two models' class probabilities with a cross-fitted
        recommendation (:mod:`graceful_core.metrics.whatif`); None unless both sides have
        class scores.
    regression_slices : SliceReport or None
        Slices where the negative flips concentrate (metadata values and clusters of the
        old embeddings), most significant first, with the clustering (each sample's
        cluster, each cluster's central samples) and the metadata columns left out;
        None when there was no candidate slice (no metadata, no old embeddings of at
        least 20 samples) or no per-sample arrays. A plain sequence of slices (objects
        with ``to_json()``) is taken as a report without clusters.
    dropped_ids : int
        Rows of either side not compared, their id missing from the other side or from
        the dataset: ``(rows_old − N) + (rows_new − N)`` (``ids_not_in_both``).
    key : str
        Content identity of the inputs (SHA-256 of both files and the dataset's content);
        "" when the predictions were given in memory. Lazy results are cached under it.
        A reference (``churn_floor``) is not part of it: it adds an analysis and changes
        none of the old/new results cached under the key (nor the comparison's review).
    inputs : ComparisonInputs or None
        Where the predictions came from (files and dataset), for the lazy results.
    summary : FlipSummary
        Derived from ``counts``.
    per_class : GroupFlips
        Derived from ``counts``.
    transition_matrix : np.ndarray
        Derived from ``counts``: K x K, row = old prediction, column = new prediction.
    """

    old_name: str
    new_name: str
    classes: tuple[str, ...]
    counts: FlipCounts
    flip_ids: FlipIds
    arrays: SampleArrays | None = None
    per_slice: GroupFlips | None = None
    compatibility: CrossTest | None = None
    compatibility_reason: str | None = None
    old_head_on_new_accuracy: float | None = None
    embedding_overlap: float | None = None
    churn_floor: ChurnFloor | None = None
    regression_slices: SliceReport | None = None
    dropped_ids: int = 0
    key: str = ""
    inputs: ComparisonInputs | None = field(default=None, repr=False)
    label_issues: LabelIssues | None = field(default=None, repr=False)
    label_issues_reason: str | None = None
    mitigation_whatif: WhatIfReport | None = field(default=None, repr=False)
    missing: MissingRows | None = None
    """Rows left out of the comparison (with ``allow_missing`` only; :mod:`graceful_core.results.coverage`)."""
    summary: FlipSummary = field(init=False)
    per_class: GroupFlips = field(init=False, repr=False)
    transition_matrix: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        classes = tuple(str(c) for c in self.classes)
        if len(classes) != self.counts.n_classes:
            raise ValueError(f"{len(classes)} class names for counts of {self.counts.n_classes} classes")
        if self.arrays is not None and len(self.arrays) != self.counts.n_samples:
            raise ValueError(f"{len(self.arrays)} per-sample rows for counts of {self.counts.n_samples} samples")
        if self.regression_slices is not None:
            object.__setattr__(self, "regression_slices", _slice_report(self.regression_slices, self.counts))
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "summary", flip_summary(self.counts))
        object.__setattr__(self, "per_class", GroupFlips.from_counts(self.counts, classes))
        object.__setattr__(self, "transition_matrix", _read_only(self.counts.transition_matrix))

    # ----------------------------------------------------------------- shortcuts
    @property
    def n_samples(self) -> int:
        return self.summary.n_samples

    @property
    def dataset(self) -> ImageDataset | None:
        """The dataset the samples come from (for images), or None."""
        return None if self.inputs is None else self.inputs.dataset

    def require_arrays(self) -> SampleArrays:
        """The per-sample arrays; ValueError for a comparison without them (streamed)."""
        if self.arrays is None:
            raise ValueError("this comparison has no per-sample arrays (it was streamed)")
        return self.arrays

    # ------------------------------------------------------------------- tables
    def samples(self) -> pd.DataFrame:
        """The per-sample table: id, label, both predictions and confidences, flip type.

        Columns ``id``, ``label``, ``old_pred``, ``new_pred`` (class names), ``old_conf``,
        ``new_conf``, ``old_p_true``, ``new_p_true`` (nan without scores), ``flip`` (one of
        :data:`FLIP_TYPES`), ``confidence_drop`` (``old_p_true - new_p_true``), ``slice``
        when there are slices and ``cluster`` (the sample's cluster of the old embeddings,
        :attr:`regression_slices`) when there are clusters; ``label_quality``, ``label_issue``,
        ``ambiguous`` and ``suggested_label`` when there are :attr:`label_issues`. Needs the
        per-sample arrays.
        """
        a = self.require_arrays()
        names = np.asarray(self.classes, dtype=object)
        nan = np.nan
        df = pd.DataFrame(
            {
                "id": a.ids.astype(str),
                "label": names[a.labels],
                "old_pred": names[a.old_pred],
                "new_pred": names[a.new_pred],
                "old_conf": a.old_conf if a.old_conf is not None else nan,
                "new_conf": a.new_conf if a.new_conf is not None else nan,
                "old_p_true": a.old_p_true if a.old_p_true is not None else nan,
                "new_p_true": a.new_p_true if a.new_p_true is not None else nan,
                "flip": np.asarray(FLIP_TYPES, dtype=object)[a.flip_type],
            }
        )
        df["confidence_drop"] = df["old_p_true"] - df["new_p_true"]
        if a.slices is not None:
            df["slice"] = np.asarray(a.slices).astype(str)
        clustering = None if self.regression_slices is None else self.regression_slices.clustering
        if clustering is not None:
            df["cluster"] = np.asarray(clustering.assignment)
        li = self.label_issues
        if li is not None:  # docs/metrics.md, "Label issues"
            df["label_quality"] = li.quality
            df["label_issue"] = li.flagged
            df["ambiguous"] = li.ambiguous
            df["suggested_label"] = names[li.suggested]
        return df

    def flips(self, kind: str = "negative flip") -> pd.DataFrame:
        """The flips of one kind as a table, sorted by id.

        ``kind`` is ``"negative flip"`` or ``"positive flip"``. With per-sample arrays the
        columns are those of :meth:`samples`; without (a streamed comparison) only ``id``.
        """
        if kind not in FLIP_TYPES[:2]:
            raise ValueError(f"kind must be one of {FLIP_TYPES[:2]}, got {kind!r}")
        if self.arrays is None:
            ids = self.flip_ids.negative if kind == FLIP_TYPES[0] else self.flip_ids.positive
            return pd.DataFrame({"id": list(ids)})
        df = self.samples()
        return df[df["flip"] == kind].sort_values("id", kind="stable").reset_index(drop=True)

    # ------------------------------------------------------------------- reports
    def to_report(self) -> dict[str, Any]:
        """The JSON report (keys in ``docs/metrics.md``, "JSON report"; nan -> None)."""
        s = self.summary
        report: dict[str, Any] = {
            "n_samples": s.n_samples,
            "classes": list(self.classes),
            "old": {"name": self.old_name, "accuracy": s.old_accuracy, "error_rate": s.old_error_rate},
            "new": {"name": self.new_name, "accuracy": s.new_accuracy, "error_rate": s.new_error_rate},
            "negative_flip_rate": s.negative_flip_rate,
            "positive_flip_rate": s.positive_flip_rate,
            "relative_negative_flip_rate": s.relative_negative_flip_rate,
            "negative_flip_impact": s.negative_flip_impact,
            "backward_trust_compatibility": s.backward_trust_compatibility,
            "backward_error_compatibility": s.backward_error_compatibility,
            "old_error_persistence": s.old_error_persistence,
            "mcnemar_p_value": s.mcnemar_p_value,
            "negative_flip_rate_ci95": list(s.negative_flip_rate_ci95),
            "positive_flip_rate_ci95": list(s.positive_flip_rate_ci95),
            "backward_trust_compatibility_ci95": list(s.backward_trust_compatibility_ci95),
            "negative_flips_near_boundary": s.negative_flips_near_boundary,
            "negative_flips_confident": s.negative_flips_confident,
            "n_negative_flips": s.n_negative_flips,
            "n_positive_flips": s.n_positive_flips,
            "negative_flips": None,  # the id lists go in after cleaning (strings: nothing to clean)
            "positive_flips": None,
            "transition_matrix": self.transition_matrix.tolist(),
            "per_class": self.per_class.to_json(("support", "negative_flips", "positive_flips",
                                                 "negative_flip_rate")),
        }
        if self.per_slice is not None:
            report["per_slice"] = self.per_slice.to_json()
        if self.dropped_ids:
            report["ids_not_in_both"] = int(self.dropped_ids)
        if self.compatibility is not None:
            report["compatibility"] = self.compatibility.to_json()
            if self.old_head_on_new_accuracy is not None:
                report["compatibility"]["old_head_on_new_embeddings"] = {
                    "accuracy": self.old_head_on_new_accuracy, "old_model_accuracy": s.old_accuracy}
        elif self.compatibility_reason is not None:
            report["compatibility"] = {"reason": self.compatibility_reason}
        report["embedding_overlap"] = self.embedding_overlap
        # Optional analyses: each part that is present adds its own keys here.
        if self.churn_floor is not None:
            report.update(self.churn_floor.to_json())
        if self.regression_slices is not None:
            report["regression_slices"] = self.regression_slices.to_json()
        if self.label_issues is not None or self.label_issues_reason is not None:
            a = self.arrays
            report["label_issues"] = label_issues_to_json(self.label_issues, self.label_issues_reason,
                                                          None if a is None else a.ids,
                                                          None if a is None else a.negative_flip_mask)
        if self.mitigation_whatif is not None:
            report["mitigation_whatif"] = self.mitigation_whatif.to_json()
        # Prediction churn needs no labels: labelled reports carry it too (graceful_core.comparing.labelfree).
        report["labels"] = True
        report.update(prediction_churn_from_matrix(self.transition_matrix).to_json())
        if self.missing is not None:
            report["missing_rows"] = self.missing.to_json()
        report = json_clean(report)
        report.update(self.flip_ids.to_json())
        return report

    def to_dict(self) -> dict[str, Any]:
        """The JSON report as a dict: the same keys as the CLI's ``--json`` (:meth:`to_report`)."""
        return self.to_report()

    def to_html(self, path: str | os.PathLike, **kw: Any) -> None:
        """Write the self-contained HTML report to ``path`` atomically.

        An alias of :func:`graceful_core.report.html.write_html_report` (keywords
        ``max_flips``, ``review``, ``generated_at``), kept for the notebook's
        ``comp.to_html(path)``. A result does not import its renderer at import time: the
        renderer is loaded here, on the call (the one exception the import contract in
        ``pyproject.toml`` lists).
        """
        from graceful_core.report.html import write_html_report

        write_html_report(self, path, **kw)


# --------------------------------------------------------------------------- building
def harmonise_classes(old: Predictions, new: Predictions) -> Predictions:
    """Map ``new``'s class indices onto ``old``'s class list (same names, any order)."""
    if list(new.classes) == list(old.classes):
        return new
    if set(new.classes) != set(old.classes):
        only_new = sorted(set(new.classes) - set(old.classes))
        only_old = sorted(set(old.classes) - set(new.classes))
        raise InputError(
            new.source,
            f"class names differ from the old model's: only in new {only_new[:5]}, only in old {only_old[:5]}",
        )
    pos = {c: i for i, c in enumerate(old.classes)}
    perm = np.array([pos[c] for c in new.classes], dtype=np.int64)
    inv = np.argsort(perm)
    return Predictions(
        ids=new.ids,
        pred=perm[new.pred],
        classes=list(old.classes),
        labels=None if new.labels is None else perm[new.labels],
        scores=None if new.scores is None else new.scores[:, inv],
        score_kind=new.score_kind,
        embedding=new.embedding,
        source=new.source,
        extra=new.extra,
    )


def _embedding_overlap(old_emb: np.ndarray, new_emb: np.ndarray, key: str) -> float | None:
    """:func:`nearest_neighbour_overlap`, None when the sizes differ; cached on disk under ``key``."""
    if old_emb.shape[1] != new_emb.shape[1] or old_emb.shape[0] == 0:
        return None

    def compute() -> dict[str, np.ndarray]:
        return {"overlap": np.array(nearest_neighbour_overlap(old_emb, new_emb))}

    return float(cache.cached_arrays("embedding-overlap", key, compute, names=("overlap",))["overlap"])


#: Cache kind of a comparison's embedding cross-test (:func:`_cross_test_cached`).
CROSS_TEST_CACHE = "cross-test-v3"  # v3: exact mAP at every size, and the embedding overlap
_RESULT_ARRAYS = ("valid", "top1_correct", "topk_indices", "average_precision")


def _json_default(x: Any) -> Any:
    if isinstance(x, np.integer | np.bool_):
        return x.item()
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON-serialisable: {type(x).__name__}")


def _cross_test_to_arrays(ct: CrossTest) -> dict[str, np.ndarray]:
    """A :class:`CrossTest` as arrays for the disk cache: its scalars as one JSON string, its arrays as they are."""
    import json

    meta = {k: getattr(ct, k) for k in ("scores", "compatible", "update_gain", "retrieval_negative_flips",
                                        "retrieval_positive_flips", "negative_flip_rate", "negative_flip_rate_ci95",
                                        "positive_flip_rate", "positive_flip_rate_ci95", "per_class", "n_queries",
                                        "map_queries", "map_ci95", "reason", "embedding_overlap")}
    meta["results"] = {p: {"hit_at": {str(k): v for k, v in r.hit_at.items()}, "map": r.map,
                           "map_queries": r.map_queries, "map_ci95": r.map_ci95, "n_queries": r.n_queries}
                       for p, r in ct.results.items()}
    out = {"meta": np.array(json.dumps(meta, default=_json_default)),
           "negative_flip_indices": np.asarray(ct.negative_flip_indices),
           "positive_flip_indices": np.asarray(ct.positive_flip_indices)}
    for p, r in ct.results.items():
        for a in _RESULT_ARRAYS:
            if getattr(r, a) is not None:
                out[f"{p}.{a}"] = np.asarray(getattr(r, a))
    return out


def _cross_test_from_arrays(d: dict[str, np.ndarray]) -> CrossTest:
    """The inverse of :func:`_cross_test_to_arrays`."""
    import json

    meta = json.loads(str(d["meta"]))
    results = {}
    for p, r in meta.pop("results").items():
        results[p] = RetrievalResult(
            hit_at={int(k): v for k, v in r["hit_at"].items()}, map=r["map"], map_queries=r["map_queries"],
            map_ci95=None if r["map_ci95"] is None else tuple(r["map_ci95"]), n_queries=r["n_queries"],
            **{a: d.get(f"{p}.{a}") for a in _RESULT_ARRAYS})
    for k in ("negative_flip_rate_ci95", "positive_flip_rate_ci95"):
        if meta[k] is not None:
            meta[k] = tuple(meta[k])
    return CrossTest(**meta, negative_flip_indices=d["negative_flip_indices"],
                     positive_flip_indices=d["positive_flip_indices"], results=results)


def _cross_test_cached(old_emb: np.ndarray, new_emb: np.ndarray, labels: np.ndarray, key: str,
                       ids: Sequence[Any] = ()) -> CrossTest:
    """:func:`~graceful_core.metrics.retrieval.cross_test`, cached on disk under the comparison's ``key``.

    On 10,000 images the exact mAP of the four retrieval pairs takes most of a minute; a
    restarted server or a second ``compare`` of the same inputs reads it back instead.
    The entry holds row indices, so its key includes the order of ``ids`` (the content
    key does not: a folder and a manifest of the same images list them differently).
    """
    if not key:
        return cross_test(old_emb, new_emb, labels)
    key = row_key(key, ids)
    got = cache.cached_arrays(CROSS_TEST_CACHE, key, lambda: _cross_test_to_arrays(cross_test(old_emb, new_emb, labels)),
                              names=("meta", "negative_flip_indices", "positive_flip_indices"))
    try:
        ct = _cross_test_from_arrays(got)
    except (ValueError, KeyError, TypeError):  # a foreign or damaged entry: never trust it
        return cross_test(old_emb, new_emb, labels)
    if any(r.valid is not None and r.valid.shape != (len(labels),) for r in ct.results.values()):
        return cross_test(old_emb, new_emb, labels)
    return ct


def sample_metadata(old: Predictions, dataset: ImageDataset | None) -> SampleMetadata | None:
    """The metadata of the compared samples: the dataset's columns, then the old table's.

    ``old`` is the old side after the join (its rows are the compared samples, its
    ``extra["metadata"]`` the old predictions table's extra columns, already aligned).
    The dataset's metadata (a manifest's extra columns, or a folder's ``slice``) are
    aligned by id (samples the dataset lacks get missing values). A column of the same
    name in both keeps the dataset's (``docs/formats.md``, "Metadata columns").
    """
    from_ds = None
    meta = getattr(dataset, "metadata", None)  # duck-typed datasets (tests, the API) may have none
    if meta is not None:
        rows = pd.Index(np.asarray(dataset.ids, dtype=object)).get_indexer(np.asarray(old.ids).astype(str))
        from_ds = meta.take(rows)
    return combine([from_ds, old.extra.get("metadata")])


#: Disk-cache kind of the clusters of the old embeddings (bump the version when the rule changes).
CLUSTERS_CACHE = "slice-clusters-v3"


def row_key(key: str, ids: Sequence[str] | np.ndarray) -> str:
    """``key`` extended by the samples' order: the disk key of any per-row result.

    The comparison's content key does not depend on the order of the rows (a folder lists
    its images by class, a manifest of the same images in its own order); a result stored
    row by row (cluster assignment, projections, probabilities) is only valid for the
    order it was computed in. Empty when ``key`` is empty (no caching).

    >>> row_key("", ["a", "b"])
    ''
    >>> row_key("k", ["a", "b"]) == row_key("k", ["b", "a"])
    False
    """
    if not key:
        return ""
    h = hashlib.sha256()
    for sid in ids:
        h.update(str(sid).encode("utf-8", "surrogatepass") + b"\x00")
    return cache.make_key(key, "rows", h.hexdigest())


def old_embedding_clusters(arrays: SampleArrays, classes: Sequence[str], key: str = "") -> Clustering | None:
    """The k-means clusters of the old embeddings (:func:`~graceful_core.metrics.slices.embedding_clusters`),
    cached on disk under the comparison's content ``key`` (each sample's cluster and each
    cluster's central samples; descriptions are rebuilt from the labels); None without
    old embeddings or below 20 samples."""
    if arrays.old_embedding is None or len(arrays) < MIN_SAMPLES_TO_CLUSTER:
        return None

    def compute() -> dict[str, np.ndarray]:
        return clusters_in_embedding_order(arrays.old_embedding, arrays.labels, classes)

    got = cache.cached_arrays(CLUSTERS_CACHE, row_key(key, arrays.ids), compute,
                              names=("assignment", "central", "seed"))
    if got["assignment"].shape != (len(arrays),):  # a foreign entry: never trust it
        got = compute()
    return describe_clusters(got["assignment"], got["central"], arrays.labels, classes, seed=int(got["seed"]))


def regression_slices(arrays: SampleArrays, classes: Sequence[str], key: str = "") -> SliceReport | None:
    """Where the negative flips concentrate: every candidate slice tested, or None without one.

    Candidates are the values of the samples' metadata columns and the k-means clusters
    of the old model's embeddings (:func:`~graceful_core.metrics.slices.find_regression_slices`:
    one-sided Fisher exact test per slice, Benjamini–Hochberg over all slices;
    ``docs/metrics.md``, "Regression slices"). None when there is no candidate (no
    usable metadata column and no old embeddings of at least 20 samples). The clusters
    are cached on disk under ``key`` (:func:`old_embedding_clusters`).
    """
    meta = None if arrays.metadata is None else arrays.metadata.to_frame()
    clustering = old_embedding_clusters(arrays, classes, key)
    if meta is None and clustering is None:
        return None
    rep = find_regression_slices(arrays.negative_flip_mask, arrays.labels, classes, metadata=meta,
                                 clustering=clustering)
    return rep if rep.slices else None


def reference_predictions(reference: Predictions, old: Predictions, ids: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The reference model's predictions on the compared samples, as indices into ``old``'s classes.

    ``ids`` and ``labels`` are the compared samples (after the join of old and new). The
    reference must have the same class names (any order), a prediction for every compared
    sample (rows outside them are not used) and, if it carries labels, the same ones.

    Raises
    ------
    InputError
        Naming the reference's file: other class names, compared samples it lacks, or a
        label that disagrees.
    """
    ref = harmonise_classes(old, reference)
    src = reference.source or "reference"
    index = pd.Index(np.asarray(ref.ids).astype(str))
    if not index.is_unique:
        raise InputError(src, "sample ids must be unique in the reference")
    rows = index.get_indexer(np.asarray(ids).astype(str))
    missing = np.flatnonzero(rows < 0)
    if missing.size:
        raise InputError(src, f"the reference lacks {missing.size} of the {len(ids)} compared samples (e.g. id "
                              f"{str(ids[missing[0]])!r}): run it on the same samples as the old and new models")
    if ref.labels is not None:
        bad = np.flatnonzero(np.asarray(ref.labels)[rows] != labels)
        if bad.size:
            i = bad[0]
            raise InputError(src, f"label of id {str(ids[i])!r} is {old.classes[int(ref.labels[rows[i]])]!r} but the "
                                  f"compared models' data say {old.classes[int(labels[i])]!r}")
    return np.asarray(ref.pred, dtype=np.int64)[rows]


def compare_predictions(
    old: Predictions,
    new: Predictions,
    *,
    old_name: str | None = None,
    new_name: str | None = None,
    with_compatibility: bool = True,
    with_slices: bool = True,
    old_head: Callable[[np.ndarray], np.ndarray] | None = None,
    key: str = "",
    inputs: ComparisonInputs | None = None,
    reference: Predictions | None = None,
    reference_name: str | None = None,
    missing: MissingRows | None = None,
    progress: StageProgress | None = None,
) -> Comparison:
    """Build the :class:`Comparison` of two models' predictions on the same samples.

    Parameters
    ----------
    old, new : Predictions
        Outputs of the deployed and the proposed model. They are joined on ``id``
        (inner join, in ``old``'s order); class names must be the same set.
    old_name, new_name : str, optional
        Display names (default: the model name or the source file).
    with_compatibility : bool
        Run the embedding cross-test and the embedding overlap when both sides have
        embeddings.
    with_slices : bool
        Look for regression slices (:func:`regression_slices`) in the samples' metadata
        (the dataset's, then ``old``'s table columns) and the old embeddings.
    old_head : callable, optional
        The old model's classifier head (embeddings -> logits); with comparable
        embeddings, its accuracy on the new embeddings is measured.
    key : str
        Content identity of the inputs; the embedding overlap is cached on disk under it.
    inputs : ComparisonInputs, optional
        Where the predictions came from (kept for the lazy results).
    reference, reference_name : Predictions and str, optional
        A retrain of the old model (its architecture and data, another seed) on the same
        samples: the comparison then has its ``churn_floor``
        (:func:`~graceful_core.metrics.churn.churn_floor`, aligned by :func:`reference_predictions`).
    missing : MissingRows, optional
        The rows left out, kept on the result (the caller decided they may be).
    progress : callable, optional
        ``progress(stage, done, total)`` at the start and end of the embedding cross-test
        and of the clustering (each takes seconds to a minute on 10,000 images).

    Raises
    ------
    InputError
        Different class sets, no shared ids, disagreeing labels, or no labels at all; a
        reference with other classes, missing compared samples or other labels (naming
        the reference's file).
    """
    new = harmonise_classes(old, new)
    old_j, new_j = join_predictions(old, new)
    labels = old_j.labels if old_j.labels is not None else new_j.labels
    if labels is None:
        raise InputError(
            new.source or old.source,
            "no true labels: give --data DATA, or a 'label' column in one of the tables",
        )
    labels = np.asarray(labels, dtype=np.int64)
    o = np.asarray(old_j.pred, dtype=np.int64)
    n = np.asarray(new_j.pred, dtype=np.int64)
    old_conf = old_p = new_conf = new_p = None
    if old_j.scores is not None:
        old_conf, old_p = class_probabilities(old_j.scores, old_j.score_kind, o, labels)
    if new_j.scores is not None:
        new_conf, new_p = class_probabilities(new_j.scores, new_j.score_kind, n, labels)
    split = (flip_confidence_split_from_true_probs(labels, o, n, old_p, new_p)
             if old_p is not None and new_p is not None else {})
    counts = FlipCounts.from_predictions(labels, o, n, len(old.classes), **split)
    slices = old_j.extra.get("slices")
    if slices is None:
        slices = new_j.extra.get("slices")
    old_e, new_e = old_j.embedding, new_j.embedding
    compat = overlap = head_acc = None
    if with_compatibility and old_e is not None and new_e is not None:
        if progress is not None:
            progress(STAGE_CROSS_TEST, 0, 1)
        compat = _cross_test_cached(old_e, new_e, labels, key, old_j.ids)
        if progress is not None:
            progress(STAGE_CROSS_TEST, 1, 1)
        overlap = compat.embedding_overlap if compat.embedding_overlap is not None \
            else _embedding_overlap(old_e, new_e, key)
        if old_head is not None and old_e.shape[1] == new_e.shape[1]:
            head_acc = head_accuracy(old_head(new_e), labels)
    arrays = SampleArrays(
        ids=np.asarray(old_j.ids), labels=labels, old_pred=o, new_pred=n,
        old_conf=old_conf, new_conf=new_conf, old_p_true=old_p, new_p_true=new_p,
        slices=None if slices is None else np.asarray(slices),
        old_embedding=old_e, new_embedding=new_e,
        metadata=sample_metadata(old_j, None if inputs is None else inputs.dataset),
    )
    churn = None
    if reference is not None:
        r = reference_predictions(reference, old, arrays.ids, labels)
        churn = churn_floor(labels, o, n, r, reference_name=reference_name or reference.extra.get("model_name")
                            or reference.source or "reference")
    whatif = None
    if old_j.scores is not None and new_j.scores is not None:
        try:
            whatif = whatif_of_scores(labels, arrays.ids, old_j.scores, old_j.score_kind, new_j.scores,
                                      new_j.score_kind, o, n)
        except ValueError:  # too few samples to cross-fit: the report has no what-if object
            whatif = None
    return Comparison(
        old_name=old_name or old.extra.get("model_name") or old.source,
        new_name=new_name or new.extra.get("model_name") or new.source,
        classes=tuple(old.classes),
        counts=counts,
        flip_ids=FlipIds.complete(arrays.ids[arrays.negative_flip_mask].tolist(),
                                  arrays.ids[arrays.positive_flip_mask].tolist()),
        arrays=arrays,
        per_slice=None if slices is None else GroupFlips.from_arrays(labels, o, n, slices),
        regression_slices=_with_stage(progress, STAGE_CLUSTERING,
                                      lambda: regression_slices(arrays, tuple(old.classes), key))
        if with_slices else None,
        compatibility=compat,
        old_head_on_new_accuracy=head_acc,
        embedding_overlap=overlap,
        churn_floor=churn,
        # rows of either side not compared: missing from the other side (the join) or from the dataset
        dropped_ids=int(old_j.extra.get("dropped_ids", 0)) + int(new.extra.get("dropped_ids", 0)),
        key=key,
        inputs=inputs,
        **label_issues_of_comparison(labels, old_j, new_j),
        mitigation_whatif=whatif,
        missing=missing,
    )


#: Progress stages of :func:`compare_predictions` besides inference.
STAGE_CROSS_TEST, STAGE_CLUSTERING = "embedding cross-test", "regression slices (clustering)"


def _with_stage(progress: StageProgress | None, stage: str, work: Callable[[], Any]) -> Any:
    """``work()``, announced to ``progress`` as ``stage`` 0/1 before and 1/1 after."""
    if progress is not None:
        progress(stage, 0, 1)
    out = work()
    if progress is not None:
        progress(stage, 1, 1)
    return out
