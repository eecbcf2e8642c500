"""Small pure helpers behind the app's views: filtering, paging, top-k, neighbours.

Nothing here computes a regression metric (those live in :mod:`graceful_core.metrics`
and :class:`graceful_core.results.comparison.Comparison`); these functions only select, order
and align what the comparison already holds, so that the app's pages stay free of
logic and the logic stays testable without a browser. No Streamlit import.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from graceful_core.streaming import flip_page_count, read_flip_page
from graceful_core.types import Predictions
from graceful_core.vocabulary import FLIP_TYPES, STREAMED_GRID_NOTE, STREAMED_NO_FLIP_FILE

if TYPE_CHECKING:
    from graceful_core.results.comparison import Comparison

#: Sort orders of the image grid.
SORT_ORDERS = ("confidence drop (largest first)", "confidence drop (smallest first)", "id")
#: Sort order of comparisons with label issues (in memory only): the most doubtful label first.
LABEL_QUALITY_ORDER = "label quality (lowest first)"


def filter_samples(
    samples: pd.DataFrame,
    *,
    classes: Sequence[str] | None = None,
    flip_types: Sequence[str] | None = None,
    old_pred: str | None = None,
    new_pred: str | None = None,
    rows: np.ndarray | None = None,
) -> pd.DataFrame:
    """Rows of the per-sample table that match every given filter.

    Parameters
    ----------
    samples : pd.DataFrame
        :meth:`graceful_core.results.comparison.Comparison.samples` (columns ``label``,
        ``old_pred``, ``new_pred``, ``flip``, ...).
    classes : sequence of str, optional
        Keep rows whose true ``label`` is one of these (None or empty: all classes).
    flip_types : sequence of str, optional
        Keep rows whose ``flip`` is one of these (None or empty: all).
    old_pred, new_pred : str, optional
        Keep rows with exactly this old / new prediction (a transition-matrix cell).
    rows : array of int, optional
        Keep rows whose index (the sample's row in the comparison, as
        :meth:`~graceful_core.results.comparison.Comparison.samples` numbers them) is one of these:
        a regression slice's ``indices``.

    Returns
    -------
    pd.DataFrame
        The matching rows, original order and index kept.
    """
    for col in ("label", "old_pred", "new_pred", "flip"):
        if col not in samples.columns:
            raise ValueError(f"samples has no column {col!r}")
    keep = np.ones(len(samples), dtype=bool)
    if classes:
        keep &= samples["label"].astype(str).isin([str(c) for c in classes]).to_numpy()
    if flip_types:
        keep &= samples["flip"].astype(str).isin([str(f) for f in flip_types]).to_numpy()
    if old_pred is not None:
        keep &= (samples["old_pred"].astype(str) == str(old_pred)).to_numpy()
    if new_pred is not None:
        keep &= (samples["new_pred"].astype(str) == str(new_pred)).to_numpy()
    if rows is not None:
        keep &= samples.index.isin(np.asarray(rows))
    return samples.loc[keep]


def sort_samples(samples: pd.DataFrame, order: str) -> pd.DataFrame:
    """Order the per-sample table for the grid.

    ``order`` is one of :data:`SORT_ORDERS` or :data:`LABEL_QUALITY_ORDER`. The confidence drop is
    ``p_true(old) - p_true(new)`` (column ``confidence_drop``); rows without it (no
    class scores) go last. Label quality (``label_quality``, lowest first) needs the
    comparison's label issues. Ties keep the id order, so pages are stable.
    """
    if order not in (*SORT_ORDERS, LABEL_QUALITY_ORDER):
        raise ValueError(f"order must be one of {(*SORT_ORDERS, LABEL_QUALITY_ORDER)}, got {order!r}")
    by_id = samples.sort_values("id", kind="stable")
    if order == "id":
        return by_id
    if order == LABEL_QUALITY_ORDER:  # docs/metrics.md, "Label issues": the most doubtful label first
        if "label_quality" not in by_id.columns:
            raise ValueError("sorting by label quality needs label issues (class scores from both models)")
        return by_id.sort_values("label_quality", ascending=True, kind="stable", na_position="last")
    ascending = order == SORT_ORDERS[1]
    return by_id.sort_values("confidence_drop", ascending=ascending, kind="stable", na_position="last")


def page_bounds(n_items: int, page: int, per_page: int) -> tuple[int, int, int]:
    """Slice ``[start, stop)`` of a 1-based ``page``, clamped into range, and the page count.

    Returns ``(start, stop, n_pages)``; ``n_pages`` is ``ceil(n_items / per_page)``,
    at least 1, and ``page`` is clamped to ``1..n_pages``.
    """
    if per_page < 1:
        raise ValueError(f"per_page must be >= 1, got {per_page}")
    if n_items < 0:
        raise ValueError(f"n_items must be >= 0, got {n_items}")
    n_pages = max(1, -(-n_items // per_page))
    page = min(max(1, int(page)), n_pages)
    start = (page - 1) * per_page
    return start, min(n_items, start + per_page), n_pages


#: Columns of a grid page (those of :meth:`graceful_core.results.comparison.Comparison.samples`).
GRID_COLUMNS = (
    "id",
    "label",
    "old_pred",
    "new_pred",
    "old_conf",
    "new_conf",
    "old_p_true",
    "new_p_true",
    "flip",
    "confidence_drop",
)


@dataclass(frozen=True, eq=False)
class GridPage:
    """One page of the image grid and where it lies in the matching rows.

    Attributes
    ----------
    rows : pd.DataFrame
        The page's rows, columns :data:`GRID_COLUMNS` (plus ``slice`` when there are
        slices); nan where a value is not known (a streamed comparison has no
        confidences of the predictions, ``old_conf``/``new_conf``).
    n_matching : int
        Rows matching the filters, on all pages.
    page, n_pages : int
        This page (1-based, clamped into range) and the number of pages (at least 1).
    start : int
        0-based position of the page's first row among the matching rows.
    note : str or None
        What the grid cannot list (a streamed comparison lists only the flipped samples).
    """

    rows: pd.DataFrame
    n_matching: int
    page: int
    n_pages: int
    start: int
    note: str | None = None


def grid_page(
    comp: Comparison,
    *,
    classes: Sequence[str] | None = None,
    flip_types: Sequence[str] | None = None,
    old_pred: str | None = None,
    new_pred: str | None = None,
    order: str = SORT_ORDERS[0],
    page: int = 1,
    per_page: int = 24,
    samples: pd.DataFrame | None = None,
    rows: np.ndarray | None = None,
) -> GridPage:
    """One page of the samples matching the filters, in ``order``, for any comparison.

    With per-sample arrays the page comes from the per-sample table
    (:func:`filter_samples`, :func:`sort_samples`, :func:`page_bounds`). A streamed
    comparison has no such table: its page is read from the flip-id file
    (:func:`graceful_core.streaming.read_flip_page`: DuckDB's top-N, one page in memory),
    which holds the flipped samples only, with the same filters and order (confidence drop
    ``p_true(old) − p_true(new)``, missing drops last, ties by id); without that file only
    the capped id lists are known.

    Parameters
    ----------
    comp : Comparison
    classes, flip_types, old_pred, new_pred
        The filters of :func:`filter_samples` (None or empty: no filter).
    order : str
        One of :data:`SORT_ORDERS`, or :data:`LABEL_QUALITY_ORDER` (in memory, with label issues).
    page, per_page : int
        The 1-based page (clamped into range) and its size.
    samples : pd.DataFrame, optional
        ``comp.samples()`` when the caller holds it already (ignored when streamed).
    rows : array of int, optional
        Keep only these sample rows (e.g. a regression slice's ``indices``); a streamed
        comparison has no regression slices, so it is ignored there.

    Returns
    -------
    GridPage
    """
    if order not in (*SORT_ORDERS, LABEL_QUALITY_ORDER):
        raise ValueError(f"order must be one of {SORT_ORDERS}, got {order!r}")
    if comp.arrays is None and order == LABEL_QUALITY_ORDER:
        raise ValueError("a streamed comparison has no label issues to sort by")
    if comp.arrays is not None:
        table = comp.samples() if samples is None else samples
        kept = sort_samples(
            filter_samples(
                table, classes=classes, flip_types=flip_types, old_pred=old_pred, new_pred=new_pred, rows=rows
            ),
            order,
        )
        start, stop, n_pages = page_bounds(len(kept), page, per_page)
        return GridPage(kept.iloc[start:stop], len(kept), start // per_page + 1, n_pages, start)
    kinds = {FLIP_TYPES[0]: "negative", FLIP_TYPES[1]: "positive"}
    wanted = [kinds[f] for f in (flip_types or FLIP_TYPES[:2]) if f in kinds]
    path = comp.flip_ids.parquet
    if path is None or not os.path.isfile(path):
        return _capped_page(comp, wanted, bool(classes or old_pred is not None or new_pred is not None), page, per_page)

    if not wanted:  # only "both correct" / "both wrong": not in the file
        return GridPage(_grid_frame([]), 0, 1, 1, 0, STREAMED_GRID_NOTE)
    filters = {"flip": wanted, "label": list(classes or []), "old_pred": old_pred, "new_pred": new_pred}
    n = flip_page_count(path, **filters)
    start, stop, n_pages = page_bounds(n, page, per_page)
    import pyarrow.parquet as pq

    has_drop = "old_p_true" in pq.read_schema(path).names  # both sides had class scores
    by = "confidence_drop" if order != SORT_ORDERS[2] and has_drop else "id"
    t = (
        read_flip_page(
            path, offset=start, limit=stop - start, order_by=by, descending=order == SORT_ORDERS[0], **filters
        )
        if stop > start
        else None
    )
    records = [] if t is None else t.to_pylist()
    return GridPage(_grid_frame(records), n, start // per_page + 1, n_pages, start, STREAMED_GRID_NOTE)


def _grid_frame(records: list[dict]) -> pd.DataFrame:
    """Rows of the flip-id file as grid rows: :data:`GRID_COLUMNS` (``slice`` when present)."""
    kinds = {"negative": FLIP_TYPES[0], "positive": FLIP_TYPES[1]}
    cols: dict[str, list | np.ndarray] = {c: [r.get(c, np.nan) for r in records] for c in GRID_COLUMNS}
    cols["flip"] = [kinds[r["flip"]] for r in records]
    for c in ("old_p_true", "new_p_true", "confidence_drop", "old_conf", "new_conf"):
        cols[c] = np.array([np.nan if v is None else v for v in cols[c]], dtype=np.float64)
    # a model's confidence in its prediction is p(true class) where the prediction is right: the old
    # model's in a negative flip, the new model's in a positive one (the others are not in the file)
    neg = np.array([r["flip"] == "negative" for r in records], dtype=bool)
    cols["old_conf"] = np.where(neg, cols["old_p_true"], cols["old_conf"])
    cols["new_conf"] = np.where(~neg, cols["new_p_true"], cols["new_conf"])
    df = pd.DataFrame(cols, columns=list(GRID_COLUMNS))
    if records and "slice" in records[0]:
        df["slice"] = [r["slice"] for r in records]
    return df


def _capped_page(comp: Comparison, wanted: list[str], filtered: bool, page: int, per_page: int) -> GridPage:
    """A streamed comparison without its flip-id file: the capped id lists, by id (no classes known)."""
    note = STREAMED_NO_FLIP_FILE.format(cap=comp.flip_ids.cap)
    ids = (
        []
        if filtered
        else [
            (i, k)
            for k, lst in (("negative", comp.flip_ids.negative), ("positive", comp.flip_ids.positive))
            if k in wanted
            for i in lst
        ]
    )
    ids.sort()
    start, stop, n_pages = page_bounds(len(ids), page, per_page)
    records = [{"id": i, "flip": k, "label": "", "old_pred": "", "new_pred": ""} for i, k in ids[start:stop]]
    return GridPage(_grid_frame(records), len(ids), start // per_page + 1, n_pages, start, note)


def top_k(probs: np.ndarray, classes: Sequence[str], k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` most probable classes, highest first; ties go to the lowest class index."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 1 or p.shape[0] != len(classes):
        raise ValueError(f"probs must be 1-D with one entry per class ({len(classes)}), got shape {p.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    order = np.argsort(-p, kind="stable")[:k]
    return [(str(classes[i]), float(p[i])) for i in order]


def probabilities_for(preds: Predictions, ids: Sequence[str] | np.ndarray, classes: Sequence[str]) -> np.ndarray | None:
    """Class probabilities of ``preds`` re-aligned to the given sample ids and class order.

    Rows follow ``ids`` (matched on the string id), columns follow ``classes``
    (matched by class name), so a model whose class list is ordered differently lines
    up with the comparison. Returns None when ``preds`` has no class scores.

    Raises
    ------
    ValueError
        An id or a class name is missing from ``preds``.
    """
    probs = preds.probabilities()
    if probs is None:
        return None
    row_pos = pd.Index(np.asarray(preds.ids).astype(str)).get_indexer(np.asarray(ids).astype(str))
    if (row_pos < 0).any():
        missing = np.asarray(ids)[row_pos < 0][:3].tolist()
        raise ValueError(f"ids not in the predictions: {missing}")
    col = {c: i for i, c in enumerate(preds.classes)}
    try:
        col_pos = np.array([col[c] for c in classes], dtype=np.int64)
    except KeyError as e:
        raise ValueError(f"class {e.args[0]!r} not in the predictions' classes") from None
    return np.asarray(probs)[row_pos][:, col_pos]


def nearest_neighbours(
    features: np.ndarray, query: int, candidates: np.ndarray, k: int = 5, *, metric: str = "cosine"
) -> np.ndarray:
    """Indices of the ``k`` candidates nearest to row ``query`` of ``features``.

    Parameters
    ----------
    features : np.ndarray
        ``[N, D]`` embeddings or flattened pixels.
    query : int
        Row of the query; it is never returned (excluded by index, not by distance).
    candidates : np.ndarray
        Row indices to search (e.g. the samples of the query's class).
    metric : {"cosine", "euclidean"}
        Cosine similarity (embeddings; zero vectors have similarity 0) or Euclidean
        distance (pixels).

    Returns
    -------
    np.ndarray
        Up to ``k`` indices into ``features``, nearest first; ties go to the lower index.
    """
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be 2-D, got shape {x.shape}")
    if not 0 <= query < x.shape[0]:
        raise ValueError(f"query {query} out of range for {x.shape[0]} rows")
    cand = np.unique(np.asarray(candidates, dtype=np.int64))
    cand = cand[cand != query]
    if cand.size == 0 or k < 1:
        return np.zeros(0, dtype=np.int64)
    if metric == "cosine":
        norms = np.linalg.norm(x[cand], axis=1) * np.linalg.norm(x[query])
        dots = x[cand] @ x[query]
        with np.errstate(invalid="ignore", divide="ignore"):
            sim = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 0.0)
        key = -sim
    else:
        key = np.sqrt(((x[cand] - x[query]) ** 2).sum(axis=1))
    order = np.lexsort((cand, key))[:k]
    return cand[order]


def busiest_classes(matrix: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` classes most involved in changed predictions, for a readable sub-matrix.

    A class's activity is the sum of its off-diagonal row and column of the transition
    matrix (predictions that moved away from it or onto it):
    ``a_c = Σ_{j≠c} M[c, j] + Σ_{i≠c} M[i, c]``. Returns the indices of the ``n``
    largest, ties to the lower index, in ascending index order (all classes if K ≤ n).
    """
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"matrix must be square, got shape {m.shape}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    k = m.shape[0]
    if k <= n:
        return np.arange(k, dtype=np.int64)
    off = m.sum(axis=1) + m.sum(axis=0) - 2 * np.diag(m)
    order = np.lexsort((np.arange(k), -off))[:n]
    return np.sort(order).astype(np.int64)


def busiest_submatrix(matrix: np.ndarray, classes: Sequence[str], n: int) -> tuple[np.ndarray, list[str]]:
    """The transition matrix restricted to its :func:`busiest_classes` (rows and columns), with their names."""
    shown = busiest_classes(matrix, n)
    return np.asarray(matrix)[np.ix_(shown, shown)], [str(classes[i]) for i in shown]


def default_sample(samples: pd.DataFrame) -> str:
    """The sample to show first: the most confident negative flip, else the largest confidence drop.

    ``samples`` is :meth:`graceful_core.results.comparison.Comparison.samples` (columns ``id``,
    ``flip``, ``confidence_drop``); NaN drops sort last.
    """
    if samples.empty:
        raise ValueError("no samples")
    flips = samples.loc[samples["flip"] == "negative flip"]
    pool = flips if len(flips) else samples
    return str(pool.sort_values("confidence_drop", ascending=False, na_position="last", kind="stable")["id"].iloc[0])


def class_subset(labels: np.ndarray, cls: int, limit: int, seed: int = 0) -> tuple[np.ndarray, bool]:
    """Indices of the samples with label ``cls``, at most ``limit`` (a fixed-seed uniform subset beyond).

    Returns ``(sorted indices, subsampled)``.
    """
    candidates = np.flatnonzero(np.asarray(labels) == cls)
    if len(candidates) <= limit:
        return candidates, False
    keep = np.random.default_rng(seed).choice(len(candidates), limit, replace=False)
    return np.sort(candidates[keep]), True


def neighbour_candidates(labels: np.ndarray, row: int, limit: int, seed: int = 0) -> tuple[np.ndarray, bool]:
    """Indices of the samples with ``labels[row]``'s label (``row`` included), at most ``limit`` + 1.

    Beyond ``limit`` a fixed-seed uniform subset is taken (:func:`class_subset`, so a big
    class does not make the neighbour search decode every image); returns
    ``(indices, subsampled)``.
    """
    subset, sub = class_subset(labels, labels[row], limit, seed)
    return (np.union1d(subset, [row]), True) if sub else (subset, False)


def negative_flip_order(comp: Comparison) -> np.ndarray:
    """Rows of the negative flips, largest drop in p(true class) first (stable).

    The drop is ``p_true(old) − p_true(new)``; without class scores on both sides the
    flips keep the comparison's sample order. Needs the per-sample arrays.
    """
    a = comp.require_arrays()
    idx = np.flatnonzero(a.negative_flip_mask)
    if a.old_p_true is not None and a.new_p_true is not None and idx.size:
        drop = np.asarray(a.old_p_true, dtype=np.float64)[idx] - np.asarray(a.new_p_true, dtype=np.float64)[idx]
        idx = idx[np.argsort(-np.nan_to_num(drop, nan=-np.inf), kind="stable")]
    return idx


#: Example images per regression slice (the HTML report and the app's Slices page).
SLICE_EXAMPLES = 6


def slice_examples(comp: Comparison, regression_slice, k: int = SLICE_EXAMPLES) -> np.ndarray:
    """Rows of a regression slice's example images: at most ``k``.

    An embedding cluster's examples are its samples nearest the cluster's centre (nearest
    first); a metadata slice's are its negative flips, largest drop in p(true class) first
    (:func:`negative_flip_order`). Needs the per-sample arrays.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    cluster = getattr(regression_slice, "cluster", None)
    if cluster is not None:
        return np.asarray(cluster.central_indices[:k], dtype=np.int64)
    order = negative_flip_order(comp)
    return order[np.isin(order, np.asarray(regression_slice.indices))][:k]
