"""Joining two models' predictions on ``id`` (inner join, in the old model's order)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from graceful_core.errors import InputError
from graceful_core.io.arrow_compute import pc
from graceful_core.io.tables.reading import first_bad_row
from graceful_core.types import Predictions


def _take(p: Predictions, index: np.ndarray | slice, dropped: int) -> Predictions:
    """Rows ``index`` of ``p`` (slices in ``extra`` re-aligned), with ``extra["dropped_ids"]``."""
    extra = dict(p.extra)
    extra["dropped_ids"] = int(p.extra.get("dropped_ids", 0)) + int(dropped)  # earlier joins count too
    if extra.get("slices") is not None:
        extra["slices"] = np.asarray(extra["slices"])[index]
    if extra.get("metadata") is not None:
        extra["metadata"] = extra["metadata"].take(index)
    return Predictions(
        ids=np.asarray(p.ids)[index],
        pred=np.asarray(p.pred)[index],
        classes=list(p.classes),
        labels=None if p.labels is None else np.asarray(p.labels)[index],
        scores=None if p.scores is None else p.scores[index],
        score_kind=p.score_kind,
        embedding=None if p.embedding is None else p.embedding[index],
        source=p.source,
        extra=extra,
    )


def _check_labels_agree(old: Predictions, new: Predictions) -> None:
    """InputError(new.source) naming the first shared id whose labels differ (rows aligned)."""
    if old.labels is None or new.labels is None:
        return
    if list(old.classes) == list(new.classes):
        bad = old.labels != new.labels
    else:
        bad = np.asarray(old.classes, dtype=object)[old.labels] != np.asarray(new.classes, dtype=object)[new.labels]
    if bad.any():
        row = first_bad_row(bad)
        raise InputError(
            new.source,
            f"label of id {old.ids[row]!r} is {new.classes[new.labels[row]]!r} here but "
            f"{old.classes[old.labels[row]]!r} in {Path(old.source).name or 'the other table'}",
        )


def _positions(needles: np.ndarray, haystack: np.ndarray) -> np.ndarray:
    """For each of ``needles``, its index in ``haystack`` (unique values), or -1 if absent."""
    try:  # Arrow's hash lookup on strings is several times faster than pandas' on objects
        idx = pc.index_in(pa.array(needles, type=pa.string()), value_set=pa.array(haystack, type=pa.string()))
        return pc.fill_null(idx, -1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # ids that are not all str
        import pandas as pd

        return pd.Index(haystack.astype(object, copy=False)).get_indexer(needles.astype(object, copy=False))


def join_predictions(old: Predictions, new: Predictions) -> tuple[Predictions, Predictions]:
    """Inner join of two models' predictions on ``id``, in ``old``'s order.

    When both id arrays are identical the rows are kept as they are (no hashing).
    Both results carry ``extra["dropped_ids"]`` = ids of ``old`` missing from ``new``
    plus ids of ``new`` missing from ``old``; ``extra["slices"]`` is re-aligned.

    Raises
    ------
    InputError
        No shared id (names ``new.source``); a shared id whose labels differ (names the
        id and both labels).
    """
    ids_o, ids_n = np.asarray(old.ids), np.asarray(new.ids)
    if ids_o is ids_n or (ids_o.shape == ids_n.shape and np.array_equal(ids_o, ids_n)):
        old_j, new_j = _take(old, slice(None), 0), _take(new, slice(None), 0)
    else:
        pos = _positions(ids_o, ids_n)
        keep = pos >= 0
        n_keep = int(keep.sum())
        if n_keep == 0:
            raise InputError(new.source, f"shares no sample id with {Path(old.source).name or 'the other table'}")
        dropped = (len(ids_o) - n_keep) + (len(ids_n) - n_keep)
        old_j = _take(old, np.flatnonzero(keep), dropped)
        new_j = _take(new, pos[keep], dropped)
    _check_labels_agree(old_j, new_j)
    return old_j, new_j
