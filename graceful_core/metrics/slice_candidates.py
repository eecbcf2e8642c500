"""Candidate slices from the samples' metadata: each value of a column, numbers in bins.

A categorical column gives one candidate per value (at most ``MAX_CATEGORIES``, missing
values as one more); a numeric column with few values the same, otherwise ``N_BINS``
quantile bins. The candidates are tested by :mod:`graceful_core.metrics.slices`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from graceful_core.metrics.slice_types import (
    MAX_CATEGORIES,
    MAX_NUMERIC_CATEGORIES,
    MISSING,
    N_BINS,
    CandidateSet,
    SliceCandidate,
)
from graceful_core.vocabulary import is_reserved_column


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
    return [order[bounds[j] : bounds[j + 1]] for j in range(n_values)]


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
        parsed = np.array(pd.to_numeric(pd.Series([t.strip() for t in texts]), errors="coerce"), dtype=np.float64)
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
    for v, name, low in (
        (max_categories, "max_categories", 1),
        (max_numeric_categories, "max_numeric_categories", 1),
        (n_bins, "n_bins", 2),
    ):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    if metadata.columns.duplicated().any():
        dup = metadata.columns[metadata.columns.duplicated()][0]
        raise ValueError(f"metadata has the column {dup!r} more than once")
    cands: list[SliceCandidate] = []
    skipped: list[tuple[str, str]] = []
    for j, name in enumerate(metadata.columns):
        col = str(name)
        if is_reserved_column(col):
            continue
        got, reason = _column_slices(
            col,
            metadata.iloc[:, j].reset_index(drop=True),
            int(max_categories),
            int(max_numeric_categories),
            int(n_bins),
        )
        cands.extend(got)
        if reason is not None:
            skipped.append((col, reason))
    return CandidateSet(tuple(cands), tuple(skipped))
