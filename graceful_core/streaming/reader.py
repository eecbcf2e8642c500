"""A predictions table read in batches: its layout (once) and each batch's decoded rows.

:func:`open_table` looks at a table's files (one CSV or Parquet file, a folder or a glob
of shards: :func:`graceful_core.io.tables.table_files`) without reading its rows, except
for the first row of a list column (its width) and, when the class list must be derived
from the names in ``label``/``pred``, one pass over those two columns. It applies the
rules of :func:`graceful_core.io.tables.load_predictions_table` (class list precedence,
class order of the file, score forms), so a streamed table means exactly what the same
table loaded in memory means, and every problem raises the same :class:`InputError`.

:func:`iter_pieces` yields the table's rows as Arrow record batches, shard after shard;
:class:`Decoder` turns one batch into :class:`Rows` (class indices, scores, labels from
the table or the dataset), checking each row as the in-memory loader does.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc  # most functions made at import, unseen by the checker: ignored where used

from graceful_core.errors import InputError
from graceful_core.io import tables as T
from graceful_core.io.datasets import ImageDataset
from graceful_core.metrics.confidence import class_probabilities
from graceful_core.streaming.kernels import argmax_rows, string_buffers

__all__ = [
    "TableLayout",
    "Piece",
    "Rows",
    "Decoder",
    "DatasetIndex",
    "open_table",
    "iter_pieces",
    "text_column_modes",
    "estimated_rows",
]

#: Bytes of CSV text parsed per batch.
CSV_BLOCK_BYTES = 16 << 20


@dataclass(frozen=True)
class TableLayout:
    """What a predictions table holds and how its class indices map onto the comparison's.

    Attributes
    ----------
    source : str
        The table as the user named it (file, folder or pattern).
    kind : {"parquet", "csv"}
    files : tuple of str
        Its files (shards) in row order.
    name : str
        Display name (file stem, folder name).
    n_rows : int or None
        Rows declared by the Parquet footers (None for CSV: known after reading).
    score_kind : {"logits", "probs"} or None
    score_list : str or None
        The list column holding the scores, or None.
    score_wide : tuple of str or None
        The wide score columns (``logit_0..``) in index order, or None.
    k : int or None
        Score width.
    has_label, has_pred, has_slice, has_embedding : bool
        Which optional columns exist (embeddings are never read by a streamed comparison).
    classes : tuple of str
        The comparison's class list; ``pred``/``labels`` of :class:`Rows` index into it.
    file_classes : tuple of str
        The class list the file's indices and score columns refer to.
    perm : np.ndarray or None
        ``classes[perm[j]] == file_classes[j]``; None when both lists are equal.
    """

    source: str
    kind: str
    files: tuple[str, ...]
    name: str
    n_rows: int | None
    score_kind: str | None
    score_list: str | None
    score_wide: tuple[str, ...] | None
    k: int | None
    has_label: bool
    has_pred: bool
    has_slice: bool
    has_embedding: bool
    classes: tuple[str, ...]
    file_classes: tuple[str, ...]
    perm: np.ndarray | None = field(default=None, repr=False)

    @property
    def columns(self) -> list[str]:
        """The columns a streamed comparison reads."""
        cols = ["id"]
        cols += [c for c, ok in (("label", self.has_label), ("pred", self.has_pred)) if ok]
        if self.score_list:
            cols.append(self.score_list)
        elif self.score_wide:
            cols += list(self.score_wide)
        if self.has_slice:
            cols.append("slice")
        return cols

    @property
    def single_file(self) -> bool:
        return len(self.files) == 1 and self.files[0] == self.source


@dataclass(frozen=True)
class Piece:
    """Consecutive rows of one shard: ``batch`` starts at row ``row`` of ``file`` (0-based)
    and at row ``table_row`` of the whole table."""

    file: str
    row: int
    table_row: int
    batch: pa.RecordBatch

    def __len__(self) -> int:
        return self.batch.num_rows

    def slice(self, start: int, length: int | None = None) -> Piece:
        b = self.batch.slice(start, length)
        return Piece(self.file, self.row + start, self.table_row + start, b)


# --------------------------------------------------------------------------- layout
def _schema_of(path: str, kind: str) -> tuple[list[str], dict, int | None, pa.Schema | None]:
    """Column names, schema metadata, declared rows (Parquet) and Arrow schema of one file."""
    if kind == "csv":
        header = T._csv_header(path)
        if not header:
            raise InputError(path, "the table is empty (no header line)")
        return header, {}, None, None
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
        schema = meta.schema.to_arrow_schema()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError, ValueError) as e:
        raise InputError(path, f"not a readable Parquet table ({T._first_line_of_msg(e)})") from None
    return schema.names, dict(schema.metadata or {}), int(meta.num_rows), schema


def _classes_meta(meta: dict, path: str) -> tuple[str, ...] | None:
    if T.CLASSES_KEY not in meta:
        return None
    classes = T._file_classes(pa.schema([], metadata={T.CLASSES_KEY: meta[T.CLASSES_KEY]}).empty_table(), path)
    assert classes is not None  # the metadata holds the key: a list of names, or InputError above
    return tuple(classes)


def _first_list_width(layout_files: Sequence[str], column: str, kind: str) -> int | None:
    """Length of the first non-null list in ``column`` (None when there is none)."""
    for piece in _raw_pieces(layout_files, kind, [column], 1 << 16, None):
        col = piece.batch.column(0)
        valid = np.flatnonzero(col.is_valid().to_numpy(zero_copy_only=False))
        if valid.size:
            first = col.slice(int(valid[0]), 1)
            return int(pc.list_value_length(first)[0].as_py())  # pyright: ignore[reportAttributeAccessIssue]
    return None


def open_table(
    path: str | os.PathLike,
    classes: Sequence[str] | None = None,
    *,
    dataset: ImageDataset | None = None,
    batch_rows: int = 1 << 18,
) -> TableLayout:
    """The layout of a predictions table, with its class list resolved.

    Parameters
    ----------
    path : str or os.PathLike
        A CSV/Parquet file, a folder of Parquet files, or a glob pattern.
    classes : sequence of str, optional
        The comparison's class list (the other side's). Without it: the Parquet metadata
        ``graceful.classes``, else the names in ``label``/``pred`` (one pass over those
        columns), else ``0..K-1`` (as in :func:`graceful_core.io.tables.load_predictions_table`).
    dataset : ImageDataset, optional
        Only checked here: its classes must all be among the table's.

    Raises
    ------
    InputError
        As :func:`~graceful_core.io.tables.load_predictions_table` for everything that
        can be seen without reading the rows; shards whose columns or class lists differ.
    """
    source = os.fspath(path)
    kind, files = T.table_files(source)
    names, meta, n_rows, schema = _schema_of(files[0], kind)
    file_cls = _classes_meta(meta, files[0])
    total = n_rows
    for f in files[1:]:
        n2, m2, r2, _ = _schema_of(f, kind)
        if sorted(n2) != sorted(names):
            raise InputError(f, f"its columns {n2[:12]} differ from those of {Path(files[0]).name} {names[:12]}")
        if _classes_meta(m2, f) != file_cls:
            raise InputError(
                f, f"its class list (metadata 'graceful.classes') differs from that of {Path(files[0]).name}"
            )
        total = None if total is None or r2 is None else total + r2
    if "id" not in names:
        raise InputError(source, f"no 'id' column (columns: {names[:12]})")
    if total == 0:
        raise InputError(source, "the table is empty (no rows)")

    score_kind = score_list = score_wide = None
    k = None
    for sk, prefix in T.SCORE_FORMS.items():
        if sk in names:
            typ = schema.field(sk).type if schema is not None else pa.string()
            if not (pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ)):
                raise InputError(source, f"column '{sk}' must hold lists of numbers, not {typ}")
            score_kind, score_list = sk, sk
            k = typ.list_size if pa.types.is_fixed_size_list(typ) else _first_list_width(files, sk, kind)
            if k == 0:
                raise InputError(source, f"'{sk}' lists are empty")
            break
        wide = T._wide_names(names, prefix, source)
        if wide is not None:
            score_kind, score_wide, k = sk, tuple(wide), len(wide)
            break
    has_embedding = T.EMBEDDING_COLUMN in names or any(c.startswith(T.EMBEDDING_PREFIX) for c in names)
    has_label, has_pred = "label" in names, "pred" in names
    if score_kind is None and not has_pred:
        raise InputError(source, "no 'pred' column and no class scores (logits/probs): nothing to compare")

    perm = None
    if classes is not None:
        classes = [str(c) for c in classes]
        if file_cls is not None:
            perm = T._reorder_to(list(file_cls), classes, source)
    elif file_cls is not None:
        classes = list(file_cls)
    elif (
        k is not None
        and schema is not None
        and all(pa.types.is_integer(schema.field(c).type) for c in ("label", "pred") if c in names)
    ):
        classes = [str(j) for j in range(k)]  # integer indices and K scores: no pass over the rows needed
    else:
        classes = _derive_classes(source, kind, files, has_label, has_pred, k)
    if k is not None and k != len(classes):
        raise InputError(source, f"has {k} score columns but the other side has {len(classes)} classes")
    if score_kind is not None and not has_pred and file_cls is None and T.has_class_names(classes):
        raise InputError(source, T.unnamed_scores_problem(score_kind))  # as in memory: which column is which class?
    layout = TableLayout(
        source=source,
        kind=kind,
        files=files,
        name=T.table_display_name(source),
        n_rows=total,
        score_kind=score_kind,
        score_list=score_list,
        score_wide=score_wide,
        k=k,
        has_label=has_label,
        has_pred=has_pred,
        has_slice="slice" in names,
        has_embedding=has_embedding,
        classes=tuple(classes),
        perm=perm,
        file_classes=tuple(classes if perm is None or file_cls is None else file_cls),
    )
    if dataset is not None:
        DatasetIndex(dataset).labels_for(layout)  # the class check, before any row is read
    return layout


def estimated_rows(path: str | os.PathLike) -> int:
    """Rows of a predictions table, without reading them: exact for Parquet, estimated for CSV.

    Parquet: the sum of the row counts in the shards' footers. CSV: the file size divided
    by the mean length of the first lines (up to 1 MiB read), so the estimate costs one
    small read whatever the size.

    Raises
    ------
    InputError
        As :func:`graceful_core.io.tables.table_files` (missing file, empty pattern...),
        or an unreadable Parquet footer.
    """
    kind, files = T.table_files(path)
    if kind == "parquet":
        return sum(int(_schema_of(f, kind)[2] or 0) for f in files)
    total = 0
    for f in files:
        size = os.path.getsize(f)
        with open(f, "rb") as fh:
            head = fh.read(1 << 20)
        lines = head.count(b"\n")
        if lines <= 1 or len(head) == size:  # small file: count exactly
            total += max(0, lines - 1 + (0 if head.endswith(b"\n") or not head else 1))
            continue
        first = head.index(b"\n") + 1  # without the header line
        total += int((size - first) / ((head.rindex(b"\n") + 1 - first) / (lines - 1)))
    return total


def _derive_classes(
    source: str, kind: str, files: tuple[str, ...], has_label: bool, has_pred: bool, k: int | None
) -> list[str]:
    """The class list of a table without one (one pass over ``label``/``pred`` when they hold names)."""
    cols = [c for c, ok in (("label", has_label), ("pred", has_pred)) if ok]
    if not cols:
        return [str(j) for j in range(k or 0)]
    # column -> (kind, its distinct values so far: an int64 array for "index", Arrow strings for "name")
    found: dict[str, tuple[str, Any]] = {}
    for piece in _raw_pieces(files, kind, ["id", *cols], 1 << 20, None):
        t = pa.Table.from_batches([piece.batch])
        ids = _IdView(_batch_ids(piece))
        for c in cols:
            got = T._class_column(t, c, ids, piece.file)
            assert got is not None  # cols lists only columns the table has
            kind_c, values = got
            prev = found.get(c)
            if prev is not None and prev[0] != kind_c:
                raise InputError(source, f"'{c}' mixes class indices and class names across shards: use one kind")
            if kind_c == "index":
                uniq = np.unique(np.asarray(values, dtype=np.int64))
                found[c] = (kind_c, uniq if prev is None else np.union1d(prev[1], uniq))
            else:
                uniq_names = pc.unique(values)  # pyright: ignore[reportAttributeAccessIssue]
                if prev is not None:
                    both = pa.concat_arrays([prev[1], uniq_names.cast(prev[1].type)])
                    uniq_names = pc.unique(both)  # pyright: ignore[reportAttributeAccessIssue]
                found[c] = (kind_c, uniq_names)
            if len(found[c][1]) > 1_000_000:
                raise InputError(source, f"'{c}' holds more than a million distinct values: not class names")
    if not found:  # no rows
        raise InputError(source, "the table is empty (no rows)")
    return T._derived_classes([found[c] for c in cols], k, source)


# --------------------------------------------------------------------------- pieces
def _csv_types(names: Sequence[str]) -> dict[str, pa.DataType]:
    import re

    types: dict[str, pa.DataType] = {"id": pa.string(), "label": pa.string(), "pred": pa.string(), "slice": pa.string()}
    wide = re.compile(r"^(logit|prob|emb)_\d+$")
    types.update({n: pa.float32() for n in names if wide.match(n)})
    return types


def _raw_pieces(
    files: Sequence[str], kind: str, columns: list[str], batch_rows: int, progress_rows: list[int] | None
) -> Iterator[Piece]:
    table_row = 0
    for f in files:
        row = 0
        try:
            if kind == "parquet":
                import pyarrow.parquet as pq

                pf = pq.ParquetFile(f, pre_buffer=False)
                batches = pf.iter_batches(batch_size=batch_rows, columns=columns, use_threads=True)
            else:
                import pyarrow.csv as pacsv

                batches = pacsv.open_csv(
                    f,
                    read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
                    convert_options=pacsv.ConvertOptions(column_types=_csv_types(columns), include_columns=columns),
                )
            for b in batches:
                if b.num_rows == 0:
                    continue
                yield Piece(f, row, table_row, b)
                row += b.num_rows
                table_row += b.num_rows
        except InputError:
            raise
        except (
            pa.ArrowInvalid,
            pa.ArrowNotImplementedError,
            pa.ArrowTypeError,
            OSError,
            UnicodeDecodeError,
            ValueError,
        ) as e:
            what = "Parquet" if kind == "parquet" else "CSV"
            raise InputError(f, f"not a readable {what} table ({T._first_line_of_msg(e)})") from None


def iter_pieces(layout: TableLayout, batch_rows: int, columns: list[str] | None = None) -> Iterator[Piece]:
    """The table's rows as :class:`Piece` objects of at most ``batch_rows`` rows (Parquet;
    CSV batches are :data:`CSV_BLOCK_BYTES` of text), shard after shard.

    Raises
    ------
    InputError
        A shard that cannot be read (naming it).
    """
    return _raw_pieces(layout.files, layout.kind, columns or layout.columns, batch_rows, None)


# --------------------------------------------------------------------------- decoding
class _IdView:
    """``ids[row]`` as a Python str, for error messages (no conversion of the whole batch)."""

    def __init__(self, arr: pa.Array) -> None:
        self.arr = arr

    def __getitem__(self, row) -> str:
        return self.arr[int(row)].as_py()


def _batch_ids(piece: Piece) -> pa.Array:
    """The batch's ``id`` column as a string array; InputError for a null or empty id."""
    col = piece.batch.column(piece.batch.schema.get_field_index("id"))
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if not pa.types.is_string(col.type):  # large_string too: ids of both tables compare as one type
        try:
            col = pc.cast(col, pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise InputError(piece.file, f"'id' column of type {col.type} cannot be read as text") from None
    offsets, _ = string_buffers(col)
    empty = offsets[1:] == offsets[:-1]  # null values have zero length too
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise InputError(piece.file, f"empty 'id' in row {piece.row + row + 1}")
    return col


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
    numeric = [T._text_indices(texts.slice(j, 1)) is not None for j in range(len(classes))]
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
    for piece in _raw_pieces(layout.files, layout.kind, ["id", *cols], batch_rows, None):
        for c in cols:
            col = piece.batch.column(piece.batch.schema.get_field_index(c))
            if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)) or modes[c].first_bad:
                continue
            idx = pc.index_in(col.cast(pa.string()), value_set=value_set)  # pyright: ignore[reportAttributeAccessIssue]
            missing = pc.and_(pc.is_null(idx), pc.is_valid(col))  # pyright: ignore[reportAttributeAccessIssue]
            if pc.any(missing).as_py():  # pyright: ignore[reportAttributeAccessIssue]
                row = int(pc.index(missing, True).as_py())
                modes[c] = _ModeState("index", (piece.file, _batch_ids(piece)[row].as_py(), col[row].as_py()))
    return modes


class DatasetIndex:
    """Lookup of table ids in a dataset: positions, labels and slices."""

    def __init__(self, dataset: ImageDataset) -> None:
        self.dataset = dataset
        self._index = None
        self._ids_arrow: pa.Array | None = None

    def labels_for(self, layout: TableLayout) -> np.ndarray:
        """The dataset's labels as indices into ``layout.classes`` (attach_dataset_labels' rule)."""
        pos = {c: i for i, c in enumerate(layout.classes)}
        missing = [c for c in self.dataset.classes if c not in pos]
        if missing:
            raise InputError(
                self.dataset.source,
                f"class names differ from the table {Path(layout.source).name}'s: dataset has {missing[:5]} not in it",
            )
        mapping = np.array([pos[c] for c in self.dataset.classes], dtype=np.int64)
        return mapping[np.asarray(self.dataset.labels, dtype=np.int64)]

    def positions(self, ids: pa.Array, table_row: int) -> np.ndarray:
        """Index of each id in the dataset, -1 where absent."""
        ids_arrow = self._ids_arrow
        if ids_arrow is None:
            ids_arrow = self._ids_arrow = pa.array(self.dataset.ids, type=pa.string())
        n = len(ids)
        if table_row + n <= len(ids_arrow) and ids_arrow.slice(table_row, n).equals(ids):
            return np.arange(table_row, table_row + n, dtype=np.int64)  # the table is in the dataset's order
        if self._index is None:
            import pandas as pd

            self._index = pd.Index(np.asarray(self.dataset.ids, dtype=object))
        return self._index.get_indexer(ids.to_numpy(zero_copy_only=False).astype(object, copy=False)).astype(np.int64)


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
        self._ds_labels = None if dataset is None else dataset.labels_for(layout)
        self._value_set = pa.array(list(layout.file_classes), type=pa.string())
        self._inv_perm = None if layout.perm is None else np.argsort(layout.perm)
        self._modes = {c: _ModeState() for c in ("label", "pred")}
        self._modes.update({c: _ModeState(m.mode, m.first_bad) for c, m in (text_modes or {}).items()})

    # ------------------------------------------------------------ class columns
    def _indices(self, t: pa.Table, name: str, ids: _IdView, file: str) -> np.ndarray | None:
        got = T._class_column(t, name, ids, file)
        if got is None:
            return None
        kind, values = got
        cls = list(self.layout.file_classes)
        if kind == "index":
            return T._to_indices("index", values, cls, name, ids, file)
        return self._text_indices(values, cls, name, ids, file)

    def _text_indices(self, values, cls: list[str], name: str, ids: _IdView, file: str) -> np.ndarray:
        """Text ``label``/``pred``: class names, or whole numbers read as class indices when
        the column holds a value that is no class name, decided over the whole column as the
        in-memory loader decides. Batch by batch this is exact when the class names are
        :func:`_index_compatible` (a column that turns to indices in a later batch read its
        earlier names as the same indices); otherwise :func:`text_column_modes` decided first.
        """
        state = self._modes[name]
        text = values.cast(pa.string())
        idx = pc.index_in(text, value_set=self._value_set)  # pyright: ignore[reportAttributeAccessIssue]
        if idx.null_count == 0 and state.mode != "index":
            state.mode = "name"
            return idx.to_numpy(zero_copy_only=False).astype(np.int64)
        as_index = T._text_indices(values)
        first_bad = state.first_bad
        if idx.null_count and first_bad is None:
            row = T._first_bad_row(idx.is_null().to_numpy(zero_copy_only=False))
            first_bad = (file, ids[row], values[row].as_py())
        if as_index is None or (state.mode == "name" and not _index_compatible(cls)):
            assert first_bad is not None  # set above, or by the batch that switched the column to indices
            f, bad_id, bad_value = first_bad
            shown = cls if len(cls) <= 20 else cls[:20] + ["..."]
            raise InputError(f, f"'{name}' of id {bad_id!r} is {bad_value!r}, not one of the classes {shown}")
        state.mode, state.first_bad = "index", first_bad
        return T._to_indices("index", as_index, cls, name, ids, file)

    # ------------------------------------------------------------------ batch
    def decode(self, piece: Piece) -> Rows:
        """Check and decode one batch (see :func:`graceful_core.io.tables.load_predictions_table`
        for the rules and the messages)."""
        lay, file = self.layout, piece.file
        ids_arr = _batch_ids(piece)
        ids = _IdView(ids_arr)
        t = pa.Table.from_batches([piece.batch])
        scores = am = None
        if lay.score_list is not None:
            col = t.column(lay.score_list)
            if not (
                pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type)
            ):
                raise InputError(file, f"column '{lay.score_list}' must hold lists of numbers, not {col.type}")
            scores = T._list_column_values(col, ids, file, lay.score_list, lay.k)
        elif lay.score_wide is not None:
            scores = T._wide_values(t, list(lay.score_wide), file)
        if scores is not None:
            am, bad = argmax_rows(scores)
            if bad >= 0:
                raise InputError(file, f"NaN, missing or infinite {lay.score_kind} value for id {ids[bad]!r}")
        labels = self._indices(t, "label", ids, file)
        pred = self._indices(t, "pred", ids, file)
        if am is not None:
            if pred is not None and (pred != am).any():
                row = T._first_bad_row(pred != am)
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
                    row = T._first_bad_row(bad)
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

    def p_true(self, scores: np.ndarray | None, labels: np.ndarray) -> np.ndarray | None:
        """``p_true`` of each row of ``scores`` (this table's, file class order) for the given
        labels (comparison indices); None without scores.

        The same function as the in-memory comparison
        (:func:`graceful_core.metrics.confidence.class_probabilities`), row by row, so the
        values are identical.
        """
        if scores is None:
            return None
        y = np.asarray(labels, dtype=np.int64)
        if self._inv_perm is not None:  # comparison index -> the file's score column (perm given)
            y = self._inv_perm[y]
        if scores.shape[0] == 0:
            return np.zeros(0, dtype=np.float64)
        kind = self.layout.score_kind
        assert kind is not None  # open_table sets it whenever the table has scores
        return class_probabilities(scores, kind, y)[0]
