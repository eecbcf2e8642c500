"""One comparison of an old and a new model: everything a report needs, as frozen values.

:func:`graceful_core.comparing.predictions.compare_predictions` is the single place where
a comparison is computed from two models' predictions; the CLI, the app and the model sets
all get theirs from it (files go through :func:`graceful_core.comparing.sources.compare_sources`).
The result, :class:`Comparison`, is frozen and complete when it is returned:

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
``docs/metrics.md``, "JSON report"); :meth:`~Comparison.to_dict` is the same;
:meth:`~Comparison.samples`, :meth:`~Comparison.flips` and ``per_class.to_frame()`` are
pandas views. A result holds values and never imports its renderer: the HTML report is
:func:`graceful_core.report.html.write_html_report(comp, path) <graceful_core.report.html.write_html_report>`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol, cast, overload

import numpy as np
import pandas as pd

from graceful_core.io.metadata import SampleMetadata
from graceful_core.jsonable import json_clean
from graceful_core.metrics import flips as fm
from graceful_core.metrics.churn import ChurnFloor
from graceful_core.metrics.counts import FlipCounts
from graceful_core.metrics.label_issues import LabelIssues, label_issues_to_json
from graceful_core.metrics.prediction_churn import prediction_churn_from_matrix
from graceful_core.metrics.retrieval import CrossTest
from graceful_core.metrics.slices import RegressionSlice, SliceReport
from graceful_core.metrics.summary import FlipSummary, flip_summary
from graceful_core.metrics.whatif import WhatIfReport
from graceful_core.results.coverage import MissingRows
from graceful_core.vocabulary import FLIP_TYPES

if TYPE_CHECKING:
    from graceful_core.io.datasets import ImageDataset

__all__ = ["Comparison", "ComparisonInputs", "FlipIds", "GroupFlips", "SampleArrays", "ChurnFloor"]


@overload
def _read_only(a: np.ndarray) -> np.ndarray: ...
@overload
def _read_only(a: np.ndarray | None) -> np.ndarray | None: ...
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

    COLUMNS = (
        "support",
        "negative_flips",
        "positive_flips",
        "negative_flip_rate",
        "positive_flip_rate",
        "old_accuracy",
        "new_accuracy",
    )

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
        return [
            {self.group: self.groups[i], **{c: getattr(self, c)[i].item() for c in cols}}
            for i in range(len(self.groups))
        ]


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
        for name in (
            "ids",
            "labels",
            "old_pred",
            "new_pred",
            "old_conf",
            "new_conf",
            "old_p_true",
            "new_p_true",
            "slices",
            "old_embedding",
            "new_embedding",
        ):
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
    return SliceReport(
        # duck-typed: a report reads only each slice's to_json (tests pass stand-ins for RegressionSlice)
        slices=cast("tuple[RegressionSlice, ...]", tuple(slices)),
        n_samples=counts.n_samples,  # type: ignore[arg-type]
        negative_flips=counts.negative_flips,
    )


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
        return df.loc[df["flip"] == kind].sort_values("id", kind="stable").reset_index(drop=True)

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
            "per_class": self.per_class.to_json(("support", "negative_flips", "positive_flips", "negative_flip_rate")),
        }
        if self.per_slice is not None:
            report["per_slice"] = self.per_slice.to_json()
        if self.dropped_ids:
            report["ids_not_in_both"] = int(self.dropped_ids)
        if self.compatibility is not None:
            report["compatibility"] = self.compatibility.to_json()
            if self.old_head_on_new_accuracy is not None:
                report["compatibility"]["old_head_on_new_embeddings"] = {
                    "accuracy": self.old_head_on_new_accuracy,
                    "old_model_accuracy": s.old_accuracy,
                }
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
            report["label_issues"] = label_issues_to_json(
                self.label_issues,
                self.label_issues_reason,
                None if a is None else a.ids,
                None if a is None else a.negative_flip_mask,
            )
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
