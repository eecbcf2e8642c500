"""The values of a regression-slice search: candidate slices, clusters, tested slices, the report.

The limits the search works within (categories per column, bins, cluster sizes) are
defined here too, once. The search itself is :func:`graceful_core.metrics.slices.find_regression_slices`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from graceful_core.jsonable import json_clean
from graceful_core.vocabulary import ALPHA  # significance level of the gate and of SliceReport.significant

SliceKind = Literal["metadata", "embedding"]

#: Value of the slice that holds a column's missing values (None, NaN, empty text, ±inf).
MISSING = "(missing)"

#: A text/categorical column with more distinct values than this is not used.
MAX_CATEGORIES = 50

#: A numeric column with at most this many distinct values gives one slice per value;
#: with more it is cut into :data:`N_BINS` quantile bins.
MAX_NUMERIC_CATEGORIES = 10

#: Quantile bins of a numeric column with many values (quintiles).
N_BINS = 5

#: Samples nearest a cluster's centre kept as its examples.
N_CENTRAL = 6

#: No clustering below this many samples (clusters of a handful cannot be told apart from chance).
MIN_SAMPLES_TO_CLUSTER = 20

#: k-means is fitted on at most this many samples (seeded random subset), then every sample
#: is assigned to its nearest centre: the fit's cost stays bounded as N grows.
MAX_FIT_SAMPLES = 20_000

#: A cluster's description lists classes with at least this share (at most 3, at least 1).
MIN_CLASS_SHARE = 0.10

#: What a quantile bin's value looks like: ``[a, b)`` or, for the last bin, ``[a, b]``.
_BIN_LABEL = re.compile(r"^\[[^,\[\]()]+, [^,\[\]()]+[)\]]$")

#: The keys of one entry of the JSON report's ``regression_slices`` list, in order.
JSON_KEYS = (
    "kind",
    "column",
    "value",
    "size",
    "negative_flips",
    "negative_flip_rate",
    "negative_flip_rate_ci95",
    "rest_negative_flip_rate",
    "p_value",
    "p_adjusted",
)


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


# ================================================================= result types
@dataclass(frozen=True, eq=False)
class SliceCandidate:
    """A group of samples to test: a metadata value or an embedding cluster.

    Attributes
    ----------
    kind : {"metadata", "embedding"}
    column : str or None
        The metadata column; None for an embedding cluster.
    value : str or int
        The column's value as text (a category, a bin such as ``"[0.2, 0.4)"``, or
        :data:`MISSING`); the cluster number for an embedding cluster.
    indices : np.ndarray
        Sorted int64 positions of the slice's samples (read-only).
    """

    kind: SliceKind
    column: str | None
    value: str | int
    indices: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        idx = np.asarray(self.indices, dtype=np.int64).reshape(-1)
        if idx.size > 1 and not (np.diff(idx) > 0).all():
            idx = np.sort(idx)
            if not (np.diff(idx) > 0).all():
                raise ValueError(f"slice {self.column}={self.value!r} repeats a sample index")
        object.__setattr__(self, "indices", _readonly(idx))


@dataclass(frozen=True)
class CandidateSet:
    """The metadata candidates and the columns left out, with the reason for each."""

    candidates: tuple[SliceCandidate, ...]
    skipped_columns: tuple[tuple[str, str], ...]
    """``(column, reason)`` for every non-reserved column that gave no slice."""


@dataclass(frozen=True, eq=False)
class EmbeddingCluster:
    """One k-means cluster of the old model's embeddings, described for a reader.

    Attributes
    ----------
    cluster : int
        The cluster's number; clusters are numbered by size, largest first.
    size : int
        Its number of samples.
    dominant_classes : tuple of (str, float)
        True classes with their share of the cluster, largest first (ties: class order):
        those with a share of at least :data:`MIN_CLASS_SHARE`, at most 3, at least 1.
    central_indices : tuple of int
        Positions of the (at most) :data:`N_CENTRAL` members nearest the cluster's
        centre, nearest first (ties: lower position first).
    """

    cluster: int
    size: int
    dominant_classes: tuple[tuple[str, float], ...]
    central_indices: tuple[int, ...]

    @property
    def description(self) -> str:
        """The dominant classes in words, e.g. ``"shirt 62 %, T-shirt 30 %"``."""
        return ", ".join(f"{name} {share * 100:.0f} %" for name, share in self.dominant_classes)

    @property
    def title(self) -> str:
        """The cluster in words, e.g. ``"cluster 3 (shirt 62 %, T-shirt 30 %)"``."""
        return f"cluster {self.cluster} ({self.description})"


@dataclass(frozen=True, eq=False)
class Clustering:
    """Result of :func:`embedding_clusters`: every sample's cluster and the clusters."""

    assignment: np.ndarray
    """int64 ``[N]``: the cluster number of each sample (read-only)."""
    clusters: tuple[EmbeddingCluster, ...]
    seed: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "assignment", _readonly(np.asarray(self.assignment, dtype=np.int64)))

    @property
    def n_clusters(self) -> int:
        return len(self.clusters)

    def candidates(self) -> tuple[SliceCandidate, ...]:
        """One ``embedding`` candidate per cluster, in cluster order."""
        order = np.argsort(self.assignment, kind="stable")
        bounds = np.searchsorted(self.assignment[order], np.arange(self.n_clusters + 1))
        return tuple(
            SliceCandidate("embedding", None, c.cluster, order[bounds[c.cluster] : bounds[c.cluster + 1]])
            for c in self.clusters
        )


@dataclass(frozen=True, eq=False)
class RegressionSlice:
    """One tested slice: its counts, NFR with interval, the rest's NFR, raw and adjusted p.

    The fields named in :data:`JSON_KEYS` are what the JSON report holds
    (:meth:`to_json`); ``indices``, ``rest_*``, ``excess`` and ``cluster`` are for the
    faces (filtering the Flips grid, showing a cluster's images).

    Attributes
    ----------
    negative_flip_rate : float
        ``f_S / n_S``.
    negative_flip_rate_ci95 : (float, float)
        Wilson 95 % interval of it (Wilson, JASA 22, 1927).
    rest_negative_flip_rate : float
        ``f_R / n_R``; NaN when the slice is every sample (no rest).
    p_value : float
        One-sided Fisher exact p (:func:`slice_p_value`).
    p_adjusted : float
        Benjamini–Hochberg adjusted p over all slices of the report.
    excess : float
        ``f_S − n_S · f_R / n_R``: flips beyond what the rest's rate predicts; NaN
        without a rest.
    """

    kind: SliceKind
    column: str | None
    value: str | int
    size: int
    negative_flips: int
    negative_flip_rate: float
    negative_flip_rate_ci95: tuple[float, float]
    rest_size: int
    rest_negative_flips: int
    rest_negative_flip_rate: float
    p_value: float
    p_adjusted: float
    excess: float
    indices: np.ndarray = field(repr=False)
    cluster: EmbeddingCluster | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "indices", _readonly(np.asarray(self.indices, dtype=np.int64)))

    @property
    def title(self) -> str:
        """The slice in words: ``site = b``, ``brightness in [0.2, 0.4)``, ``cluster 3 (7 82 %)``."""
        if self.kind == "embedding":
            return self.cluster.title if self.cluster is not None else f"cluster {self.value}"
        if isinstance(self.value, str) and _BIN_LABEL.match(self.value):
            return f"{self.column} in {self.value}"
        return f"{self.column} = {self.value}"

    @property
    def key(self) -> str:
        """A short text that names the slice within its report (e.g. in a link's query).

        ``<column>=<value>`` for a metadata slice (``site=harbour``), ``cluster:<n>`` for
        an embedding cluster; :meth:`SliceReport.by_key` finds the slice again. A metadata
        key always holds ``=`` and a cluster key never does, so the two cannot clash.
        """
        if self.kind == "embedding":
            return f"cluster:{self.value}"
        return f"{self.column}={self.value}"

    @property
    def is_significant(self) -> bool:
        """Adjusted p below :data:`~graceful_core.vocabulary.ALPHA` (0.05)."""
        return self.p_adjusted < ALPHA

    def to_json(self) -> dict[str, Any]:
        """The report entry: exactly the keys of :data:`JSON_KEYS` (NaN as None)."""
        lo, hi = self.negative_flip_rate_ci95
        return {
            "kind": self.kind,
            "column": self.column,
            "value": self.value,
            "size": int(self.size),
            "negative_flips": int(self.negative_flips),
            "negative_flip_rate": json_clean(self.negative_flip_rate),
            "negative_flip_rate_ci95": [json_clean(lo), json_clean(hi)],
            "rest_negative_flip_rate": json_clean(self.rest_negative_flip_rate),
            "p_value": float(self.p_value),
            "p_adjusted": float(self.p_adjusted),
        }


@dataclass(frozen=True, eq=False)
class SliceReport:
    """Every tested slice of one comparison, most significant first, and how they were made.

    Attributes
    ----------
    slices : tuple of RegressionSlice
        Ranked by adjusted p, then by excess (largest first), then candidate order
        (metadata columns in table order, values in order; then clusters).
    n_samples, negative_flips : int
        N and F of the comparison.
    clustering : Clustering or None
        The embedding clusters (per-sample assignment for colouring a map), when the old
        side had embeddings and N ≥ :data:`MIN_SAMPLES_TO_CLUSTER`.
    skipped_columns : tuple of (str, str)
        Metadata columns that gave no slice, with the reason.
    """

    slices: tuple[RegressionSlice, ...]
    n_samples: int
    negative_flips: int
    clustering: Clustering | None = None
    skipped_columns: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> list[dict[str, Any]]:
        """The report's ``regression_slices`` list (most significant first)."""
        return [s.to_json() for s in self.slices]

    def significant(self, alpha: float = ALPHA) -> tuple[RegressionSlice, ...]:
        """The slices with adjusted p below ``alpha``, in rank order."""
        return tuple(s for s in self.slices if s.p_adjusted < alpha)

    def to_frame(self) -> pd.DataFrame:
        """One row per slice, in rank order: ``key``, ``title``, the JSON fields (the interval as
        ``ci_low``, ``ci_high``), ``rest_size``, ``excess`` and ``significant`` (adjusted p < ALPHA)."""
        cols = (
            "key",
            "title",
            "kind",
            "column",
            "value",
            "size",
            "negative_flips",
            "negative_flip_rate",
            "ci_low",
            "ci_high",
            "rest_size",
            "rest_negative_flip_rate",
            "p_value",
            "p_adjusted",
            "excess",
            "significant",
        )
        rows = [
            (
                s.key,
                s.title,
                s.kind,
                s.column,
                str(s.value),
                s.size,
                s.negative_flips,
                s.negative_flip_rate,
                *s.negative_flip_rate_ci95,
                s.rest_size,
                s.rest_negative_flip_rate,
                s.p_value,
                s.p_adjusted,
                s.excess,
                s.is_significant,
            )
            for s in self.slices
        ]
        return pd.DataFrame.from_records(rows, columns=cols)

    def by_key(self, key: str | None) -> RegressionSlice | None:
        """The slice whose :attr:`RegressionSlice.key` is ``key`` (the first in rank order), or None."""
        if not key:
            return None
        return next((s for s in self.slices if s.key == key), None)

    def cluster_of(self, number: int) -> EmbeddingCluster | None:
        """The embedding cluster with this number, or None."""
        if self.clustering is None:
            return None
        return next((c for c in self.clustering.clusters if c.cluster == number), None)
