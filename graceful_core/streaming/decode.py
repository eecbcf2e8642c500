"""Decoding one batch of a predictions table into :class:`Rows`: class indices, scores, labels
(from the table or the dataset) and slices, each row checked as the in-memory loader
(:func:`graceful_core.io.tables.load_predictions_table`) checks it, with the same messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from graceful_core.errors import InputError
from graceful_core.io.arrow_compute import pc
from graceful_core.io.tables.columns import (
    class_column,
    list_column_values,
    text_indices,
    to_indices,
    wide_values,
)
from graceful_core.io.tables.reading import first_bad_row
from graceful_core.metrics.confidence import class_probabilities
from graceful_core.streaming.dataset_index import DatasetIndex
from graceful_core.streaming.kernels import argmax_rows
from graceful_core.streaming.layout import TableLayout
from graceful_core.streaming.pieces import IdView, Piece, batch_ids, raw_pieces


@dataclass(frozen=True)
class Rows:
    """One batch of a table, decoded.

    Attributes
    ----------
    file : str
        The shard the rows come from (for messages).
    ids : pa.Array
        string ids (no nulls, no empties).
    pred : np.ndarray
        int64 predictions, indices into the comparison's classes.
    labels : np.ndarray or None
        int64 true labels (the dataset's when one is given, else the table's), or None.
    scores : np.ndarray or None
        float32 ``[n, K]`` scores, columns in the *file's* class order (``layout.file_classes``).
    slices : pa.Array or None
        string slice per row (the dataset's when it defines slices, else the table's).
    in_dataset : np.ndarray or None
        bool per row: the id is in the dataset (None without a dataset: all rows count).
    """

    file: str
    ids: pa.Array
    pred: np.ndarray
    labels: np.ndarray | None
    scores: np.ndarray | None
    slices: pa.Array | None
    in_dataset: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, mask: np.ndarray) -> Rows:
        """The rows where ``mask`` is True."""
        idx = pa.array(np.flatnonzero(mask), type=pa.int64())
        return Rows(
            file=self.file,
            ids=self.ids.take(idx),
            pred=self.pred[mask],
            labels=None if self.labels is None else self.labels[mask],
            scores=None if self.scores is None else self.scores[mask],
            slices=None if self.slices is None else self.slices.take(idx),
            in_dataset=None,
        )


@dataclass
class _ModeState:
    """How a text ``label``/``pred`` column is read: as class names or as class indices."""

    mode: str | None = None  # None (not decided yet), "name", "index"
    first_bad: tuple[str, str, str] | None = None  # (file, id, value) of its first value that is no class name


def _index_compatible(classes: Sequence[str]) -> bool:
    """True when a class name that spells a whole number always names its own index
    (``["0", "1", ...]``) or no class name does: then reading a text column batch by batch
    gives what reading it whole gives (see :meth:`Decoder._text_indices`)."""
    texts = pa.array(list(classes), type=pa.string())
    numeric = [text_indices(texts.slice(j, 1)) is not None for j in range(len(classes))]
    if not any(numeric):
        return True
    return all(numeric) and list(classes) == [str(j) for j in range(len(classes))]


def text_column_modes(layout: TableLayout, batch_rows: int = 1 << 20) -> dict[str, _ModeState]:
    """How each text ``label``/``pred`` column must be read, decided over the whole column
    (one pass over those columns) when the class names make batch-wise reading ambiguous
    (numeric class names at other positions, or numeric and other names mixed)."""
    if _index_compatible(layout.file_classes):
        return {}
    cols = [c for c, ok in (("label", layout.has_label), ("pred", layout.has_pred)) if ok]
    modes = {c: _ModeState("name") for c in cols}
    value_set = pa.array(list(layout.file_classes), type=pa.string())
    for piece in raw_pieces(layout.files, layout.kind, ["id", *cols], batch_rows, None):
        for c in cols:
            col = piece.batch.column(piece.batch.schema.get_field_index(c))
            if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)) or modes[c].first_bad:
                continue
            idx = pc.index_in(col.cast(pa.string()), value_set=value_set)
            missing = pc.and_(pc.is_null(idx), pc.is_valid(col))
            if pc.any(missing).as_py():
                row = int(pc.index(missing, True).as_py())
                modes[c] = _ModeState("index", (piece.file, batch_ids(piece)[row].as_py(), col[row].as_py()))
    return modes


class Decoder:
    """Decodes the batches of one table (keeps the state that spans batches).

    Parameters
    ----------
    layout : TableLayout
    dataset : DatasetIndex, optional
        Labels (and slices) come from it; the table's own labels must agree.
    text_modes : dict, optional
        From :func:`text_column_modes`: how text class columns are read.
    """

    def __init__(
        self, layout: TableLayout, dataset: DatasetIndex | None = None, text_modes: dict[str, _ModeState] | None = None
    ) -> None:
        self.layout = layout
        self.dataset = dataset
        self._ds_labels = None if dataset is None else dataset.labels_for(layout.classes, layout.source)
        self._value_set = pa.array(list(layout.file_classes), type=pa.string())
        self._inv_perm = None if layout.perm is None else np.argsort(layout.perm)
        self._modes = {c: _ModeState() for c in ("label", "pred")}
        self._modes.update({c: _ModeState(m.mode, m.first_bad) for c, m in (text_modes or {}).items()})

    # ------------------------------------------------------------ class columns
    def _indices(self, t: pa.Table, name: str, ids: IdView, file: str) -> np.ndarray | None:
        got = class_column(t, name, ids, file)
        if got is None:
            return None
        kind, values = got
        cls = list(self.layout.file_classes)
        if kind == "index":
            return to_indices("index", values, cls, name, ids, file)
        return self._text_indices(values, cls, name, ids, file)

    def _text_indices(self, values, cls: list[str], name: str, ids: IdView, file: str) -> np.ndarray:
        """Text ``label``/``pred``: class names, or whole numbers read as class indices when
        the column holds a value that is no class name, decided over the whole column as the
        in-memory loader decides. Batch by batch this is exact when the class names are
        :func:`_index_compatible` (a column that turns to indices in a later batch read its
        earlier names as the same indices); otherwise :func:`text_column_modes` decided first.
        """
        state = self._modes[name]
        text = values.cast(pa.string())
        idx = pc.index_in(text, value_set=self._value_set)
        if idx.null_count == 0 and state.mode != "index":
            state.mode = "name"
            return idx.to_numpy(zero_copy_only=False).astype(np.int64)
        as_index = text_indices(values)
        first_bad = state.first_bad
        if idx.null_count and first_bad is None:
            row = first_bad_row(idx.is_null().to_numpy(zero_copy_only=False))
            first_bad = (file, ids[row], values[row].as_py())
        if as_index is None or (state.mode == "name" and not _index_compatible(cls)):
            assert first_bad is not None  # set above, or by the batch that switched the column to indices
            f, bad_id, bad_value = first_bad
            shown = cls if len(cls) <= 20 else cls[:20] + ["..."]
            raise InputError(f, f"'{name}' of id {bad_id!r} is {bad_value!r}, not one of the classes {shown}")
        state.mode, state.first_bad = "index", first_bad
        return to_indices("index", as_index, cls, name, ids, file)

    # ------------------------------------------------------------------ batch
    def decode(self, piece: Piece) -> Rows:
        """Check and decode one batch (see :func:`graceful_core.io.tables.load_predictions_table`
        for the rules and the messages)."""
        lay, file = self.layout, piece.file
        ids_arr = batch_ids(piece)
        ids = IdView(ids_arr)
        t = pa.Table.from_batches([piece.batch])
        scores = am = None
        if lay.score_list is not None:
            col = t.column(lay.score_list)
            if not (
                pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type)
            ):
                raise InputError(file, f"column '{lay.score_list}' must hold lists of numbers, not {col.type}")
            scores = list_column_values(col, ids, file, lay.score_list, lay.k)
        elif lay.score_wide is not None:
            scores = wide_values(t, list(lay.score_wide), file)
        if scores is not None:
            am, bad = argmax_rows(scores)
            if bad >= 0:
                raise InputError(file, f"NaN, missing or infinite {lay.score_kind} value for id {ids[bad]!r}")
        labels = self._indices(t, "label", ids, file)
        pred = self._indices(t, "pred", ids, file)
        if am is not None:
            if pred is not None and (pred != am).any():
                row = first_bad_row(pred != am)
                fc = lay.file_classes
                raise InputError(
                    file,
                    f"'pred' of id {ids[row]!r} is {fc[pred[row]]!r} but the highest score is for "
                    f"{fc[am[row]]!r} (pred must be the argmax of the scores)",
                )
            pred = am
        if lay.perm is not None:
            pred = lay.perm[pred]
            labels = None if labels is None else lay.perm[labels]
        slices = None
        if lay.has_slice:
            slices = pc.fill_null(pc.cast(t.column("slice"), pa.string()), "(none)").combine_chunks()
        in_ds = None
        if self.dataset is not None and self._ds_labels is not None:  # both or neither
            pos = self.dataset.positions(ids_arr, piece.table_row)
            in_ds = pos >= 0
            ds_labels = self._ds_labels[np.where(in_ds, pos, 0)]
            if labels is not None:
                bad = in_ds & (labels != ds_labels)
                if bad.any():
                    row = first_bad_row(bad)
                    raise InputError(
                        file,
                        f"label of id {ids[row]!r} is {lay.classes[labels[row]]!r} "
                        f"but the dataset says {lay.classes[ds_labels[row]]!r}",
                    )
            labels = ds_labels
            if self.dataset.dataset.slices is not None:
                ds_slices = np.asarray(self.dataset.dataset.slices, dtype=object)[np.where(in_ds, pos, 0)]
                slices = pa.array(ds_slices.astype(str).astype(object), type=pa.string())
        return Rows(
            file=file,
            ids=ids_arr,
            pred=np.ascontiguousarray(pred, dtype=np.int64),
            labels=None if labels is None else np.ascontiguousarray(labels, dtype=np.int64),
            scores=scores,
            slices=slices,
            in_dataset=in_ds,
        )

    def p_true(self, scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """``p_true`` of each row of ``scores`` (this table's, file class order) for the given
        labels (comparison indices).

        The same function as the in-memory comparison
        (:func:`graceful_core.metrics.confidence.class_probabilities`), row by row, so the
        values are identical.
        """
        y = np.asarray(labels, dtype=np.int64)
        if self._inv_perm is not None:  # comparison index -> the file's score column (perm given)
            y = self._inv_perm[y]
        if scores.shape[0] == 0:
            return np.zeros(0, dtype=np.float64)
        kind = self.layout.score_kind
        assert kind is not None  # open_table sets it whenever the table has scores
        return class_probabilities(scores, kind, y)[0]
