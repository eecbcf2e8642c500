"""Regression slices: groups of samples where an update's negative flips concentrate.

A release reviewer's next question after "how many images break" is "which ones, as a
group": a site, a camera, a brightness range, a kind of product. This module finds
candidate groups ("slices") and tests each one for more negative flips than the rest of
the samples, with an exact test and a correction for having tested many groups.

Candidates
----------
- ``metadata``: every usable column of a metadata table aligned with the samples (the
  dataset manifest's extra columns, the old predictions table's), one slice per value;
  numeric columns with many values are cut into quantile bins
  (:func:`metadata_candidates` states the rules).
- ``embedding``: k-means clusters of the old model's (L2-normalised) embeddings, one
  slice per cluster (:func:`embedding_clusters`), each described by its dominant true
  classes and its most central samples.

The test
--------
For a slice S with ``n_S`` samples and ``f_S`` negative flips, and the rest R
(``n_R = N − n_S``, ``f_R = F − f_S``), the one-sided Fisher exact test on the 2×2 table
``[[f_S, n_S − f_S], [f_R, n_R − f_R]]`` asks whether S has more negative flips than a
random subset of its size would have (:func:`slice_p_value`). The p-values of **all**
reported slices are adjusted together with the Benjamini–Hochberg step-up procedure
(:func:`rank_slices`). Slices are ranked by adjusted p, then by their excess
``f_S − n_S · f_R / n_R`` (flips beyond what the rest's rate predicts for a slice of
that size).

Slice discovery for *errors* is the subject of Domino (Eyuboglu et al., "Domino:
Discovering Systematic Errors with Cross-Modal Embeddings", ICLR 2022: clusters of an
embedding space) and SliceLine (Sagadeeva & Boehm, "SliceLine: Fast, Linear-Algebra-based
Slice Finding for ML Model Debugging", SIGMOD 2021: conjunctions of metadata values);
graceful applies the two kinds of candidates to the *negative flips* of an update, and
reports each with a test of whether the concentration is more than chance. Slices are
single values, not SliceLine's conjunctions (``site = b ∧ camera = A``): with every
reported slice in the Benjamini–Hochberg family, pairs of columns would multiply the
number of tests and cost most of the power.

Entry point: :func:`find_regression_slices` (one call per comparison); the CI gate:
:func:`slices_exceeding`. ``scipy`` and ``scikit-learn`` are imported inside the
functions so that importing :mod:`graceful_core.metrics` stays light.

Examples
--------
>>> import numpy as np, pandas as pd
>>> flips = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0], dtype=bool)
>>> meta = pd.DataFrame({"site": ["a"] * 3 + ["b"] * 9})
>>> rep = find_regression_slices(flips, np.zeros(12, int), ["cat"], metadata=meta)
>>> [(s.title, s.negative_flips, round(s.p_value, 4)) for s in rep.slices]
[('site = a', 3, 0.0045), ('site = b', 0, 1.0)]
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from graceful_core.jsonable import json_clean
from graceful_core.metrics.significance import wilson_interval
from graceful_core.vocabulary import (
    ALPHA,  # significance level of the gate and of SliceReport.significant
    is_reserved_column,
)

__all__ = [
    "ALPHA",
    "JSON_KEYS",
    "MISSING",
    "CandidateSet",
    "Clustering",
    "EmbeddingCluster",
    "RegressionSlice",
    "SliceCandidate",
    "SliceReport",
    "default_n_clusters",
    "describe_clusters",
    "embedding_clusters",
    "find_regression_slices",
    "metadata_candidates",
    "rank_slices",
    "slice_p_value",
    "slices_exceeding",
]

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
    "kind", "column", "value", "size", "negative_flips", "negative_flip_rate",
    "negative_flip_rate_ci95", "rest_negative_flip_rate", "p_value", "p_adjusted",
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
            SliceCandidate("embedding", None, c.cluster, order[bounds[c.cluster]:bounds[c.cluster + 1]])
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
        cols = ("key", "title", "kind", "column", "value", "size", "negative_flips", "negative_flip_rate",
                "ci_low", "ci_high", "rest_size", "rest_negative_flip_rate", "p_value", "p_adjusted", "excess",
                "significant")
        rows = [(s.key, s.title, s.kind, s.column, str(s.value), s.size, s.negative_flips, s.negative_flip_rate,
                 *s.negative_flip_rate_ci95, s.rest_size, s.rest_negative_flip_rate, s.p_value, s.p_adjusted,
                 s.excess, s.is_significant) for s in self.slices]
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


# ================================================================= the test
def slice_p_value(slice_flips: int, slice_size: int, rest_flips: int, rest_size: int) -> float:
    """One-sided Fisher exact p that a slice has more negative flips than the rest.

    With ``N = n_S + n_R`` samples of which ``F = f_S + f_R`` are negative flips, under
    the null hypothesis (flips fall on the samples without regard to the slice) the
    slice's count is hypergeometric, and

    .. math:: p = P(X \\ge f_S) = \\sum_{x \\ge f_S} \\binom{F}{x}\\binom{N - F}{n_S - x} \\Big/ \\binom{N}{n_S}

    This is ``scipy.stats.fisher_exact([[f_S, n_S − f_S], [f_R, n_R − f_R]],
    alternative="greater")``, evaluated as fisher_exact evaluates it (the hypergeometric
    CDF ``scipy.stats.hypergeom.cdf(n_S − f_S, N, n_S, N − F)`` of the slice's
    non-flips), vectorised over all slices by :func:`rank_slices`; it is 1 when a row or
    column of the table is empty (no rest, no flips, or no non-flips). Fisher, *The
    Design of Experiments*, 1935 (the "lady tasting tea").

    Parameters
    ----------
    slice_flips, slice_size : int
        ``f_S`` and ``n_S`` (``0 <= f_S <= n_S``).
    rest_flips, rest_size : int
        ``f_R`` and ``n_R`` (``0 <= f_R <= n_R``).

    Returns
    -------
    float
        The p-value in ``[0, 1]``.

    Examples
    --------
    A single sample that is one of the 5 flips among 100: ``p = 5 / 100``.

    >>> round(slice_p_value(1, 1, 4, 99), 12)
    0.05
    >>> slice_p_value(0, 10, 5, 90)
    1.0
    """
    for v, name in ((slice_flips, "slice_flips"), (slice_size, "slice_size"),
                    (rest_flips, "rest_flips"), (rest_size, "rest_size")):
        if isinstance(v, bool) or not hasattr(v, "__index__") or int(v) < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    fs, ns, fr, nr = int(slice_flips), int(slice_size), int(rest_flips), int(rest_size)
    if fs > ns or fr > nr:
        raise ValueError(f"flips exceed size: slice {fs}/{ns}, rest {fr}/{nr}")
    return float(_fisher_greater(np.array([fs]), np.array([ns]), np.array([fr]), np.array([nr]))[0])


def _fisher_greater(fs: np.ndarray, ns: np.ndarray, fr: np.ndarray, nr: np.ndarray) -> np.ndarray:
    """One-sided ("greater") Fisher p of many 2×2 tables at once, as ``fisher_exact`` computes it.

    ``fisher_exact(c, "greater")`` returns 1 when a row or column sum of ``c`` is 0, else
    ``hypergeom.cdf(c[0, 1], N, n_S, c[0, 1] + c[1, 1])`` (scipy 1.17), i.e. the chance of
    at most ``n_S − f_S`` non-flips in the slice; ``hypergeom.cdf`` is a ufunc, so all
    slices cost one call.
    """
    from scipy.stats import hypergeom

    fs, ns, fr, nr = (np.asarray(a, dtype=np.int64) for a in (fs, ns, fr, nr))
    n, f = ns + nr, fs + fr
    empty = (ns == 0) | (nr == 0) | (f == 0) | (f == n)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = hypergeom.cdf(ns - fs, n, ns, n - f)
    return np.where(empty, 1.0, np.clip(p, 0.0, 1.0))


def _benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """BH-adjusted p-values (``scipy.stats.false_discovery_control``, method "bh")."""
    if p.size == 0:
        return p.astype(np.float64)
    from scipy.stats import false_discovery_control

    return np.asarray(false_discovery_control(p, method="bh"), dtype=np.float64)


def _check_flip_mask(negative_flip_mask: Any) -> np.ndarray:
    m = np.asarray(negative_flip_mask)
    if m.ndim != 1:
        raise ValueError(f"negative_flip_mask must be 1-D, got shape {m.shape}")
    if m.dtype != np.bool_:
        if m.dtype.kind not in "iu" or (m.size and not np.isin(m, (0, 1)).all()):
            raise ValueError(f"negative_flip_mask must be boolean (or 0/1), got dtype {m.dtype}")
        m = m.astype(bool)
    return m


def rank_slices(
    negative_flip_mask: Any,
    candidates: Iterable[SliceCandidate],
    clusters: Sequence[EmbeddingCluster] = (),
) -> tuple[RegressionSlice, ...]:
    """Test every candidate, adjust over all of them, and rank.

    For each candidate S: ``f_S``, ``n_S``, the rest's ``f_R``, ``n_R``, the NFR
    ``f_S / n_S`` with its Wilson 95 % interval (Wilson, JASA 22, 1927), the rest's NFR
    ``f_R / n_R``, the one-sided Fisher p (:func:`slice_p_value`), and the
    Benjamini–Hochberg adjusted p over all m candidates (``scipy.stats.
    false_discovery_control``; Benjamini & Hochberg, "Controlling the false discovery
    rate: a practical and powerful approach to multiple testing", JRSS B 57, 1995):

    .. math:: \\tilde p_{(i)} = \\min_{j \\ge i} \\min\\bigl(1, \\tfrac{m}{j}\\, p_{(j)}\\bigr)

    Ranking: adjusted p ascending, then excess ``f_S − n_S · f_R / n_R`` descending (NaN,
    i.e. no rest, last), then candidate order. BH controls the false discovery rate for
    independent or positively dependent tests; the complementary slices of one column
    (``camera = A`` and ``camera = B``) are negatively dependent. Measured: with 19
    overlapping slices (three metadata columns and six clusters) and flips placed at
    random, 3 % of 2,000 trials had any adjusted p < 0.05 (the discrete Fisher test is
    conservative), against 50 % with unadjusted p.

    Parameters
    ----------
    negative_flip_mask : array_like of bool, shape (N,)
        ``o_i = y_i ∧ n_i ≠ y_i`` per sample.
    candidates : iterable of SliceCandidate
        Index sets into ``range(N)``; empty candidates are dropped.
    clusters : sequence of EmbeddingCluster
        Descriptions attached to the ``embedding`` candidates with the same number.

    Returns
    -------
    tuple of RegressionSlice
        Ranked; empty when there is no candidate.

    Examples
    --------
    >>> import numpy as np
    >>> flips = np.array([1, 1, 0, 0, 0, 0, 0, 0], dtype=bool)
    >>> a = SliceCandidate("metadata", "cam", "A", [0, 1, 2])
    >>> b = SliceCandidate("metadata", "cam", "B", [3, 4, 5, 6, 7])
    >>> [(s.value, round(s.p_value, 4), round(s.p_adjusted, 4)) for s in rank_slices(flips, [b, a])]
    [('A', 0.1071, 0.2143), ('B', 1.0, 1.0)]
    """
    m = _check_flip_mask(negative_flip_mask)
    n_total = int(m.shape[0])
    f_total = int(np.count_nonzero(m))
    by_number = {c.cluster: c for c in clusters}
    cands = [c for c in candidates if c.indices.size]
    for c in cands:
        if c.indices[0] < 0 or c.indices[-1] >= n_total:
            raise ValueError(f"candidate {c.column}={c.value!r} has indices outside [0, {n_total})")
    size = np.array([c.indices.size for c in cands], dtype=np.int64)
    flips = np.array([np.count_nonzero(m[c.indices]) for c in cands], dtype=np.int64)
    p_raw = _fisher_greater(flips, size, f_total - flips, n_total - size)
    p_adj = _benjamini_hochberg(p_raw)
    out = []
    for c, ns, fs, p, pa in zip(cands, size.tolist(), flips.tolist(), p_raw.tolist(), p_adj.tolist()):
        nr, fr = n_total - ns, f_total - fs
        rest_rate = fr / nr if nr else float("nan")
        excess = fs - ns * rest_rate if nr else float("nan")
        out.append(RegressionSlice(
            kind=c.kind, column=c.column, value=c.value, size=ns, negative_flips=fs,
            negative_flip_rate=fs / ns, negative_flip_rate_ci95=wilson_interval(fs, ns),
            rest_size=nr, rest_negative_flips=fr, rest_negative_flip_rate=rest_rate,
            p_value=p, p_adjusted=min(1.0, float(pa)), excess=excess, indices=c.indices,
            cluster=by_number.get(c.value) if c.kind == "embedding" else None,
        ))
    order = sorted(range(len(out)), key=lambda i: (
        out[i].p_adjusted, -out[i].excess if not math.isnan(out[i].excess) else math.inf, i))
    return tuple(out[i] for i in order)


def slices_exceeding(
    slices: SliceReport | Iterable[RegressionSlice], max_nfr: float, *, alpha: float = ALPHA
) -> tuple[RegressionSlice, ...]:
    """The slices that fail a CI gate: adjusted p below ``alpha`` and NFR above ``max_nfr``.

    ``{S : p̃_S < α ∧ f_S / n_S > X}``; ``compare --max-slice-nfr X`` exits 1 when this
    is not empty. A slice must be both significantly worse than the rest *and* worse
    than the allowed rate: a small slice with a high NFR by chance does not fail the
    gate, nor does a significant slice whose rate is still acceptable.

    Parameters
    ----------
    slices : SliceReport or iterable of RegressionSlice
    max_nfr : float
        X, the largest acceptable NFR of a slice, in ``[0, 1]``.
    alpha : float
        Significance level for the adjusted p (default 0.05).

    Returns
    -------
    tuple of RegressionSlice
        In the given (rank) order.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> flips = np.r_[np.ones(8, bool), np.zeros(92, bool)]
    >>> meta = pd.DataFrame({"site": ["a"] * 10 + ["b"] * 90})
    >>> rep = find_regression_slices(flips, np.zeros(100, int), ["x"], metadata=meta)
    >>> [s.title for s in slices_exceeding(rep, 0.5)], [s.title for s in slices_exceeding(rep, 0.9)]
    (['site = a'], [])
    """
    x = float(max_nfr)
    if not (0.0 <= x <= 1.0):
        raise ValueError(f"max_nfr must be in [0, 1], got {max_nfr!r}")
    a = float(alpha)
    if not (0.0 < a < 1.0):
        raise ValueError(f"alpha must be strictly between 0 and 1, got {alpha!r}")
    seq = slices.slices if isinstance(slices, SliceReport) else tuple(slices)
    return tuple(s for s in seq if s.p_adjusted < a and s.negative_flip_rate > x)


# ================================================================= metadata candidates
def _format_number(v: float) -> str:
    """Shortest text that reads back as ``v`` (``3`` rather than ``3.0``)."""
    v = float(v)
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def _format_edges(edges: np.ndarray) -> list[str]:
    """Bin edges with the fewest significant digits (≥ 3) that keep them distinct."""
    for digits in range(3, 18):
        texts = [_format_number(float(f"{e:.{digits}g}")) for e in edges]
        if len(set(texts)) == len(texts):
            return texts
    return [_format_number(e) for e in edges]


def _groups(codes: np.ndarray, n_values: int) -> list[np.ndarray]:
    """Sorted positions of each code ``0..n_values-1`` (code -1 ignored)."""
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(n_values + 1))
    return [order[bounds[j]:bounds[j + 1]] for j in range(n_values)]


def _column_codes(s: pd.Series) -> tuple[np.ndarray | None, np.ndarray, list[str]] | str:
    """``(numbers, codes, labels)`` of one column, or the reason it gives no slice.

    ``numbers`` is float64 with NaN where missing for a numeric column, else None;
    ``codes`` indexes ``labels`` (text categories), -1 where missing or numeric. Work
    is done on the distinct values (``pd.factorize``), not per row.
    """
    if pd.api.types.is_datetime64_any_dtype(s.dtype) or pd.api.types.is_timedelta64_dtype(s.dtype):
        return f"unsupported type {s.dtype}"
    n = len(s)
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        v = s.to_numpy(dtype=np.float64, na_value=np.nan).copy()
        v[~np.isfinite(v)] = np.nan
        return v, np.full(n, -1, dtype=np.int64), []
    arr = s.to_numpy(dtype=object)
    na = np.asarray(pd.isna(arr), dtype=bool)
    try:
        codes_p, uniques = pd.factorize(arr[~na])
    except TypeError:  # unhashable values: lists, arrays, dicts
        return "not scalar values (lists or arrays)"
    texts = [str(u) for u in uniques]
    blank = np.array([not t.strip() for t in texts], dtype=bool)
    codes_all = np.full(n, -1, dtype=np.int64)
    codes_all[~na] = codes_p
    filled = ~blank
    # text that spells numbers is numbers (a CSV read as text: "3" and "3.0" are 3)
    if filled.any() and all(isinstance(u, str) for u in uniques):
        parsed = pd.to_numeric(pd.Series([t.strip() for t in texts]), errors="coerce").to_numpy(dtype=np.float64, copy=True)
        if not np.isnan(parsed[filled]).any():
            parsed[blank] = np.nan
            v = np.full(n, np.nan)
            v[~na] = parsed[codes_p]
            v[~np.isfinite(v)] = np.nan
            return v, np.full(n, -1, dtype=np.int64), []
    labels = sorted({t for t, b in zip(texts, blank) if not b})
    pos = {t: j for j, t in enumerate(labels)}
    to_label = np.array([-1 if b else pos[t] for t, b in zip(texts, blank)] + [-1], dtype=np.int64)
    return None, to_label[codes_all], labels  # code -1 -> the appended -1


def _column_slices(
    name: str, s: pd.Series, max_categories: int, max_numeric_categories: int, n_bins: int
) -> tuple[list[SliceCandidate], str | None]:
    """The candidates of one column, or ``([], reason)`` when it gives none."""
    got = _column_codes(s)
    if isinstance(got, str):
        return [], got
    numbers, codes, labels = got
    if numbers is not None:
        missing = np.isnan(numbers)
        present = numbers[~missing]
        distinct = np.unique(present)
        codes = np.full(len(s), -1, dtype=np.int64)
        if distinct.size > max_numeric_categories:
            edges = np.unique(np.quantile(present, np.linspace(0.0, 1.0, n_bins + 1)))
            codes[~missing] = np.searchsorted(edges[1:-1], present, side="right")
            texts = _format_edges(edges)
            labels = [f"[{texts[j]}, {texts[j + 1]})" for j in range(len(edges) - 1)]
            labels[-1] = labels[-1][:-1] + "]"
        else:
            codes[~missing] = np.searchsorted(distinct, present)
            labels = [_format_number(v) for v in distinct]
    else:
        missing = codes < 0
        if len(labels) > max_categories:
            return [], f"{len(labels)} distinct values (more than {max_categories})"
    if len(labels) + (1 if missing.any() else 0) < 2:
        return [], "one value for all samples" if labels else "no values"
    groups = _groups(codes, len(labels))
    cands = [SliceCandidate("metadata", name, lab, g) for lab, g in zip(labels, groups) if g.size]
    if missing.any():
        cands.append(SliceCandidate("metadata", name, MISSING, np.flatnonzero(missing)))
    return cands, None


def metadata_candidates(
    metadata: pd.DataFrame,
    *,
    max_categories: int = MAX_CATEGORIES,
    max_numeric_categories: int = MAX_NUMERIC_CATEGORIES,
    n_bins: int = N_BINS,
) -> CandidateSet:
    """One candidate slice per value of every usable metadata column.

    Rules, column by column (rows are the samples, by position; the index is ignored):

    - **reserved** columns are not metadata: ``id``, ``path``, ``label``, ``pred``,
      ``logits``, ``probs``, ``scores``, ``embedding`` and wide score/embedding columns
      (``logit_3``, ``prob_0``, ``score_1``, ``emb_12``), case-insensitively;
    - **missing** values (None, NaN, empty or blank text, ±inf) form a slice of their own,
      value :data:`MISSING` (missing metadata is often informative: an unrecorded camera);
    - **numeric** columns (numeric dtype other than bool, or text whose every
      non-missing value parses as a number, as in a CSV manifest read as text): with at
      most ``max_numeric_categories`` (10) distinct values, one slice per value (text
      ``"3"``, ``"0.5"``); with more, ``n_bins`` (5) quantile bins: edges the 0, 1/5, …,
      1 quantiles, repeated edges merged, bin j = ``[e_j, e_{j+1})``, the last closed
      ``[e_{k-1}, e_k]``, edges written with ≥ 3 significant digits (more when needed
      to tell them apart). Quintiles keep every bin large enough to test and show a
      monotone effect (e.g. "the darkest fifth") without choosing cut points by hand;
    - **categorical** columns (text, bool, category): one slice per distinct value
      (as text), when there are at most ``max_categories`` (50); a column with more
      (ids, file names, free text) is skipped;
    - a column whose samples all share one value (and none is missing) is skipped: a
      slice equal to everything cannot be compared with a rest. Datetime columns and
      columns holding lists or arrays are skipped.

    Parameters
    ----------
    metadata : pandas.DataFrame
        One row per sample, aligned with the comparison's samples.
    max_categories, max_numeric_categories, n_bins : int
        The thresholds above.

    Returns
    -------
    CandidateSet
        Candidates in column order, values in order (bins ascending, text sorted,
        :data:`MISSING` last), and the skipped columns with reasons.

    Examples
    --------
    >>> import pandas as pd
    >>> meta = pd.DataFrame({"id": ["a", "b", "c", "d"], "cam": ["x", "y", "x", None],
    ...                      "lux": [0.1, 0.2, 0.3, 0.4], "site": ["s"] * 4})
    >>> cs = metadata_candidates(meta)
    >>> [(c.column, c.value, c.indices.tolist()) for c in cs.candidates]
    [('cam', 'x', [0, 2]), ('cam', 'y', [1]), ('cam', '(missing)', [3]), ('lux', '0.1', [0]), ('lux', '0.2', [1]), ('lux', '0.3', [2]), ('lux', '0.4', [3])]
    >>> cs.skipped_columns
    (('site', 'one value for all samples'),)
    """
    if not isinstance(metadata, pd.DataFrame):
        raise ValueError(f"metadata must be a pandas DataFrame, got {type(metadata).__name__}")
    for v, name, low in ((max_categories, "max_categories", 1), (max_numeric_categories, "max_numeric_categories", 1),
                         (n_bins, "n_bins", 2)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    if metadata.columns.duplicated().any():
        dup = metadata.columns[metadata.columns.duplicated()][0]
        raise ValueError(f"metadata has the column {dup!r} more than once")
    cands: list[SliceCandidate] = []
    skipped: list[tuple[str, str]] = []
    for name in metadata.columns:
        col = str(name)
        if is_reserved_column(col):
            continue
        got, reason = _column_slices(col, metadata[name].reset_index(drop=True), int(max_categories),
                                     int(max_numeric_categories), int(n_bins))
        cands.extend(got)
        if reason is not None:
            skipped.append((col, reason))
    return CandidateSet(tuple(cands), tuple(skipped))


# ================================================================= embedding clusters
def default_n_clusters(n_samples: int, n_classes: int = 1) -> int:
    """k for k-means on N samples of K classes.

    .. math:: k = \\max\\bigl(2,\\ \\min(50,\\ \\lfloor N / 20 \\rfloor,\\ \\max(K,\\ \\mathrm{round}(\\sqrt{N / 10}))\\bigr)\\bigr)

    ``√(N / 10)`` makes the mean cluster hold ``√(10 N)`` samples (≈ 320 at N = 10,000):
    large enough for a Fisher test to see a concentration, small enough to split a
    class into visually distinct groups. At least K clusters, so that a cluster can be
    a sub-group of a class rather than a merge of two (on the 540 test digits √(N/10)
    gives 7 clusters that pair up 2 with 3 and 4 with 6; 10 give one digit each); at
    most N / 20, so that clusters average at least 20 samples; at most 50, to keep the
    list readable and the multiple-testing burden small. Below
    :data:`MIN_SAMPLES_TO_CLUSTER` samples there is no clustering (0).

    Examples
    --------
    >>> [default_n_clusters(n) for n in (10, 20, 540, 10_000, 1_000_000)]
    [0, 2, 7, 32, 50]
    >>> default_n_clusters(540, n_classes=10), default_n_clusters(100, n_classes=10)
    (10, 5)
    """
    n, k_classes = int(n_samples), int(n_classes)
    if n < MIN_SAMPLES_TO_CLUSTER:
        return 0
    return int(max(2, min(50, n // 20, max(k_classes, round(math.sqrt(n / 10))))))


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _nearest_centre(z: np.ndarray, centres: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """``argmin_j ‖z_i − c_j‖²`` per row (ties: lowest j), in row chunks."""
    c_sq = (centres * centres).sum(axis=1)
    out = np.empty(z.shape[0], dtype=np.int64)
    for start in range(0, z.shape[0], chunk):
        block = z[start:start + chunk]
        out[start:start + chunk] = np.argmin(c_sq[None, :] - 2.0 * (block @ centres.T), axis=1)
    return out


def embedding_clusters(
    embeddings: Any,
    labels: Any,
    class_names: Sequence[str],
    *,
    n_clusters: int | None = None,
    seed: int = 0,
) -> Clustering:
    """k-means clusters of the old model's embeddings, each described by classes and examples.

    The embeddings are L2-normalised (cosine geometry, as in the retrieval cross-test),
    then clustered by scikit-learn's ``KMeans`` (Lloyd's algorithm, k-means++
    initialisation, Arthur & Vassilvitskii, SODA 2007; one initialisation,
    ``random_state=seed``) minimising

    .. math:: \\sum_i \\lVert e_i / \\lVert e_i \\rVert - \\mu_{c(i)} \\rVert^2

    fitted on all samples when N ≤ :data:`MAX_FIT_SAMPLES` (20,000), else on a seeded
    random subset of that size, every sample then going to its nearest centre. The same
    input and seed give the same clusters. Clusters are numbered by size, largest first
    (ties: the one holding the lower sample position first); empty clusters (k-means on
    duplicated points) are dropped. k defaults to :func:`default_n_clusters` (N, K). Each
    cluster is described by its dominant true classes and the :data:`N_CENTRAL` samples
    nearest its centre, as Domino (Eyuboglu et al., ICLR 2022) describes its slices by
    representative examples.

    Parameters
    ----------
    embeddings : array_like, shape (N, D)
        The old model's embeddings (finite).
    labels : array_like of int, shape (N,)
        True class indices into ``class_names``.
    class_names : sequence of str
    n_clusters : int, optional
        k (at least 2, at most N); default :func:`default_n_clusters` (N, K).
    seed : int
        Random state of the initialisation and the subset.

    Returns
    -------
    Clustering
        With ``n_clusters == 0`` when N < :data:`MIN_SAMPLES_TO_CLUSTER` and no k given.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> e = np.vstack([rng.normal([9, 0], 0.3, (30, 2)), rng.normal([0, 9], 0.3, (20, 2))])
    >>> cl = embedding_clusters(e, [0] * 30 + [1] * 20, ["cat", "dog"], n_clusters=2)
    >>> [(c.cluster, c.size, c.description) for c in cl.clusters]
    [(0, 30, 'cat 100 %'), (1, 20, 'dog 100 %')]
    """
    x = np.asarray(embeddings)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"embeddings must be a 2-D array [N, D], got shape {x.shape}")
    if x.dtype.kind not in "fiu":
        raise ValueError(f"embeddings must be numeric, got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise ValueError("embeddings contain NaN or infinite values")
    n = int(x.shape[0])
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != n or (y.size and y.dtype.kind not in "iu"):
        raise ValueError(f"labels must be {n} integer class indices, got shape {y.shape}, dtype {y.dtype}")
    names = [str(c) for c in class_names]
    if y.size and (y.min() < 0 or y.max() >= len(names)):
        raise ValueError(f"labels must index into the {len(names)} class names")
    if n_clusters is None:
        k = default_n_clusters(n, len(names))
        if k == 0:
            return Clustering(np.zeros(0, np.int64) if n == 0 else np.full(n, -1, np.int64), (), int(seed))
    else:
        if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)) or not 2 <= n_clusters <= n:
            raise ValueError(f"n_clusters must be an integer in [2, N={n}], got {n_clusters!r}")
        k = int(n_clusters)
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    # float64 for the fit: scikit-learn's k-means++ seeding computes float32 distances by
    # up-casting in chunks, 3-5x slower than float64 at D = 256 (measured with
    # benchmarks/bench_slices.py). Above MAX_FIT_SAMPLES all samples stay float32 (memory).
    km = KMeans(n_clusters=k, n_init=1, random_state=seed)
    if n <= MAX_FIT_SAMPLES:
        z = _normalise_rows(x.astype(np.float64))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # fewer distinct points than k
            km.fit(z)
        raw = km.labels_.astype(np.int64)
    else:
        z = _normalise_rows(x.astype(np.float32))
        pick = np.sort(np.random.default_rng(seed).choice(n, MAX_FIT_SAMPLES, replace=False))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            km.fit(z[pick].astype(np.float64))
        raw = _nearest_centre(z, km.cluster_centers_.astype(np.float32))
    centres = km.cluster_centers_.astype(z.dtype)
    sizes = np.bincount(raw, minlength=k)
    first = np.full(k, n, dtype=np.int64)
    np.minimum.at(first, raw, np.arange(n))
    order = [j for j in sorted(range(k), key=lambda j: (-sizes[j], first[j])) if sizes[j] > 0]
    renumber = np.full(k, -1, dtype=np.int64)
    renumber[order] = np.arange(len(order))
    central = np.full((len(order), N_CENTRAL), -1, dtype=np.int64)
    for new, old in enumerate(order):
        members = np.flatnonzero(raw == old)
        d2 = ((z[members] - centres[old]) ** 2).sum(axis=1)
        near = members[np.lexsort((members, d2))[:N_CENTRAL]]
        central[new, :near.size] = near
    return describe_clusters(renumber[raw], central, y, names, seed=int(seed))


def clusters_in_embedding_order(embedding: Any, labels: Any, class_names: Sequence[str]) -> dict[str, np.ndarray]:
    """:func:`embedding_clusters` fitted with the rows in the lexicographic order of their embeddings, mapped back.

    k-means depends on the order of its rows: fitting in an order given by the embeddings
    themselves makes the same images give the same clusters whatever their row order or ids
    (a folder, a manifest, a table, a DataLoader).

    Returns
    -------
    dict
        ``assignment`` (N,) each row's cluster, ``central`` (k, :data:`N_CENTRAL`) each
        cluster's central rows padded with -1, ``seed``: what :func:`describe_clusters`
        takes (and what a disk cache stores).
    """
    emb = np.asarray(embedding)
    order = np.lexsort(emb.T[::-1]) if emb.ndim == 2 and emb.shape[1] else np.arange(len(emb))
    cl = embedding_clusters(emb[order], np.asarray(labels)[order], class_names)
    assignment = np.empty(len(order), dtype=np.int64)
    assignment[order] = np.asarray(cl.assignment)
    central = np.full((cl.n_clusters, N_CENTRAL), -1, dtype=np.int64)
    for c in cl.clusters:
        central[c.cluster, :len(c.central_indices)] = order[np.asarray(c.central_indices, dtype=np.int64)]
    return {"assignment": assignment, "central": central, "seed": np.array(cl.seed)}


def describe_clusters(assignment: Any, central: Any, labels: Any, class_names: Sequence[str], *,
                      seed: int = 0) -> Clustering:
    """A :class:`Clustering` from each sample's cluster and each cluster's central samples.

    Parameters
    ----------
    assignment : array_like of int, shape (N,)
        Cluster numbers ``0..k-1``, numbered by size (largest first), none empty.
    central : array_like of int, shape (k, c)
        Row j: cluster j's samples nearest its centre, nearest first, padded with -1.
    labels : array_like of int, shape (N,)
        True class indices into ``class_names`` (for the dominant classes).
    seed : int
        The seed the clusters were fitted with (kept in the result).

    This is the second half of :func:`embedding_clusters`, and what rebuilds a clustering
    stored on disk (assignment and central samples: the rest is derived here).

    Examples
    --------
    >>> cl = describe_clusters([0, 0, 1], [[1, 0], [2, -1]], [0, 1, 1], ["cat", "dog"])
    >>> [(c.title, c.central_indices) for c in cl.clusters]
    [('cluster 0 (cat 50 %, dog 50 %)', (1, 0)), ('cluster 1 (dog 100 %)', (2,))]
    """
    a = np.asarray(assignment, dtype=np.int64).reshape(-1)
    cen = np.asarray(central, dtype=np.int64)
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    names = [str(c) for c in class_names]
    if y.shape != a.shape:
        raise ValueError(f"labels ({y.shape[0]}) and assignment ({a.shape[0]}) differ in length")
    k = int(a.max()) + 1 if a.size else 0
    if cen.ndim != 2 or cen.shape[0] != k:
        raise ValueError(f"central must have one row per cluster ({k}), got shape {cen.shape}")
    sizes = np.bincount(a, minlength=k) if k else np.zeros(0, np.int64)
    if k and (a.min() < 0 or (sizes == 0).any()):
        raise ValueError("cluster numbers must be 0..k-1 with no empty cluster")
    clusters = []
    for j in range(k):
        counts = np.bincount(y[a == j], minlength=len(names))
        by_share = sorted(range(len(names)), key=lambda c: (-counts[c], c))
        shares = [(names[c], counts[c] / sizes[j]) for c in by_share[:3]]
        dominant = [shares[0]] + [sh for sh in shares[1:] if sh[1] >= MIN_CLASS_SHARE]
        clusters.append(EmbeddingCluster(
            cluster=j, size=int(sizes[j]),
            dominant_classes=tuple((nm, float(sh)) for nm, sh in dominant),
            central_indices=tuple(int(i) for i in cen[j] if i >= 0),
        ))
    return Clustering(a, tuple(clusters), int(seed))


# ================================================================= one call
def find_regression_slices(
    negative_flip_mask: Any,
    labels: Any,
    class_names: Sequence[str],
    *,
    metadata: pd.DataFrame | None = None,
    embeddings: Any = None,
    clustering: Clustering | None = None,
    n_clusters: int | None = None,
    seed: int = 0,
    max_categories: int = MAX_CATEGORIES,
    max_numeric_categories: int = MAX_NUMERIC_CATEGORIES,
    n_bins: int = N_BINS,
) -> SliceReport:
    """Where do an update's negative flips concentrate? Every candidate slice, tested and ranked.

    Builds the ``metadata`` candidates (:func:`metadata_candidates`) and, when the old
    model's embeddings are given, the ``embedding`` clusters (:func:`embedding_clusters`),
    then tests each slice S against the rest with the one-sided Fisher exact test
    (:func:`slice_p_value`), adjusts all p-values together (Benjamini & Hochberg, JRSS B
    57, 1995) and ranks (:func:`rank_slices`). The slice's NFR is over all its samples,
    ``f_S / n_S`` (the per-slice NFR of docs/metrics.md), with a Wilson 95 % interval.

    Parameters
    ----------
    negative_flip_mask : array_like of bool, shape (N,)
    labels : array_like of int, shape (N,)
        True class indices (to describe clusters).
    class_names : sequence of str
    metadata : pandas.DataFrame, optional
        One row per sample, aligned by position.
    embeddings : array_like, shape (N, D), optional
        The **old** model's embeddings: groups as the deployed model saw them.
    clustering : Clustering, optional
        Clusters already made of them (e.g. kept on disk; :func:`describe_clusters`):
        used instead of clustering ``embeddings`` again.
    n_clusters, seed : see :func:`embedding_clusters`.
    max_categories, max_numeric_categories, n_bins : see :func:`metadata_candidates`.

    Returns
    -------
    SliceReport
        ``to_json()`` is the report's ``regression_slices`` list.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> flips = np.r_[np.ones(6, bool), np.zeros(54, bool)]
    >>> meta = pd.DataFrame({"site": ["a"] * 10 + ["b"] * 50})
    >>> rep = find_regression_slices(flips, np.zeros(60, int), ["x"], metadata=meta)
    >>> s = rep.slices[0]  # p = C(10, 6) / C(60, 6) = 4.2e-06; BH over m = 2 slices doubles it
    >>> s.title, s.size, s.negative_flips, s.rest_negative_flip_rate, f"{s.p_adjusted:.1e}"
    ('site = a', 10, 6, 0.0, '8.4e-06')
    >>> sorted(s.to_json())[:3]
    ['column', 'kind', 'negative_flip_rate']
    """
    m = _check_flip_mask(negative_flip_mask)
    n = int(m.shape[0])
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"labels must have shape ({n},), got {y.shape}")
    cands: list[SliceCandidate] = []
    skipped: tuple[tuple[str, str], ...] = ()
    if metadata is not None:
        if not isinstance(metadata, pd.DataFrame):
            raise ValueError(f"metadata must be a pandas DataFrame, got {type(metadata).__name__}")
        if len(metadata) != n:
            raise ValueError(f"metadata has {len(metadata)} rows for {n} samples")
        cs = metadata_candidates(metadata, max_categories=max_categories,
                                 max_numeric_categories=max_numeric_categories, n_bins=n_bins)
        cands.extend(cs.candidates)
        skipped = cs.skipped_columns
    if clustering is not None:
        if clustering.assignment.shape[0] != n:
            raise ValueError(f"clustering has {clustering.assignment.shape[0]} samples for {n}")
    elif embeddings is not None:
        e = np.asarray(embeddings)
        if e.ndim != 2 or e.shape[0] != n:
            raise ValueError(f"embeddings must have shape ({n}, D), got {e.shape}")
        clustering = embedding_clusters(e, y, class_names, n_clusters=n_clusters, seed=seed)
    if clustering is not None:
        if clustering.n_clusters == 0:
            clustering = None
        else:
            cands.extend(clustering.candidates())
    slices = rank_slices(m, cands, clustering.clusters if clustering is not None else ())
    return SliceReport(slices=slices, n_samples=n, negative_flips=int(np.count_nonzero(m)),
                       clustering=clustering, skipped_columns=skipped)
