"""A predictions table's layout, read once before its rows: columns, score form, class list.

:func:`open_table` looks at a table's files (one CSV or Parquet file, a folder or a glob
of shards: :func:`graceful_core.io.tables.table_files`) without reading its rows, except
for the first row of a list column (its width) and, when the class list must be derived
from the names in ``label``/``pred``, one pass over those two columns. It applies the
rules of :func:`graceful_core.io.tables.load_predictions_table` (class list precedence,
class order of the file, score forms), so a streamed table means exactly what the same
table loaded in memory means, and every problem raises the same :class:`InputError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from graceful_core.errors import InputError
from graceful_core.io.arrow_compute import pc
from graceful_core.io.datasets import ImageDataset
from graceful_core.io.tables.columns import (
    CLASSES_KEY,
    EMBEDDING_COLUMN,
    EMBEDDING_PREFIX,
    SCORE_FORMS,
    ClassColumn,
    class_column,
    derived_classes,
    has_class_names,
    metadata_classes,
    reorder_to,
    unnamed_scores_problem,
    wide_names,
)
from graceful_core.io.tables.files import table_display_name, table_files
from graceful_core.io.tables.reading import csv_header, first_line_of_message
from graceful_core.streaming.dataset_index import DatasetIndex
from graceful_core.streaming.pieces import IdView, Piece, batch_ids, raw_pieces


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


def _schema_of(path: str, kind: str) -> tuple[list[str], dict, int | None, pa.Schema | None]:
    """Column names, schema metadata, declared rows (Parquet) and Arrow schema of one file."""
    if kind == "csv":
        header = csv_header(path)
        if not header:
            raise InputError(path, "the table is empty (no header line)")
        return header, {}, None, None
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
        schema = meta.schema.to_arrow_schema()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError, ValueError) as e:
        raise InputError(path, f"not a readable Parquet table ({first_line_of_message(e)})") from None
    return schema.names, dict(schema.metadata or {}), int(meta.num_rows), schema


def _classes_meta(meta: dict, path: str) -> tuple[str, ...] | None:
    if CLASSES_KEY not in meta:
        return None
    classes = metadata_classes(pa.schema([], metadata={CLASSES_KEY: meta[CLASSES_KEY]}).empty_table(), path)
    assert classes is not None  # the metadata holds the key: a list of names, or InputError above
    return tuple(classes)


def _first_list_width(layout_files: Sequence[str], column: str, kind: str) -> int | None:
    """Length of the first non-null list in ``column`` (None when there is none)."""
    for piece in raw_pieces(layout_files, kind, [column], 1 << 16, None):
        col = piece.batch.column(0)
        valid = np.flatnonzero(col.is_valid().to_numpy(zero_copy_only=False))
        if valid.size:
            first = col.slice(int(valid[0]), 1)
            return int(pc.list_value_length(first)[0].as_py())
    return None


def _shards_schema(
    kind: str, files: tuple[str, ...]
) -> tuple[list[str], tuple[str, ...] | None, int | None, pa.Schema | None]:
    """Column names, class list (metadata), declared rows (None for CSV) and Arrow schema of a table's shards.

    InputError naming the first shard whose columns or class list differ from the first shard's.
    """
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
    return names, file_cls, total, schema


def _score_columns(
    source: str, kind: str, files: tuple[str, ...], names: list[str], schema: pa.Schema | None
) -> tuple[str | None, str | None, tuple[str, ...] | None, int | None]:
    """Score kind (logits before probs), its list column or wide columns, and the score width; all None without scores."""
    for sk, prefix in SCORE_FORMS.items():
        if sk in names:
            typ = schema.field(sk).type if schema is not None else pa.string()
            if not (pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ)):
                raise InputError(source, f"column '{sk}' must hold lists of numbers, not {typ}")
            k = typ.list_size if pa.types.is_fixed_size_list(typ) else _first_list_width(files, sk, kind)
            if k == 0:
                raise InputError(source, f"'{sk}' lists are empty")
            return sk, sk, None, k
        wide = wide_names(names, prefix, source)
        if wide is not None:
            return sk, None, tuple(wide), len(wide)
    return None, None, None, None


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
    kind, files = table_files(source)
    names, file_cls, total, schema = _shards_schema(kind, files)
    if "id" not in names:
        raise InputError(source, f"no 'id' column (columns: {names[:12]})")
    if total == 0:
        raise InputError(source, "the table is empty (no rows)")
    score_kind, score_list, score_wide, k = _score_columns(source, kind, files, names, schema)
    has_embedding = EMBEDDING_COLUMN in names or any(c.startswith(EMBEDDING_PREFIX) for c in names)
    has_label, has_pred = "label" in names, "pred" in names
    if score_kind is None and not has_pred:
        raise InputError(source, "no 'pred' column and no class scores (logits/probs): nothing to compare")

    perm = None
    if classes is not None:
        classes = [str(c) for c in classes]
        if file_cls is not None:
            perm = reorder_to(list(file_cls), classes, source)
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
    if score_kind is not None and not has_pred and file_cls is None and has_class_names(classes):
        raise InputError(source, unnamed_scores_problem(score_kind))  # as in memory: which column is which class?
    layout = TableLayout(
        source=source,
        kind=kind,
        files=files,
        name=table_display_name(source),
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
        DatasetIndex(dataset).labels_for(layout.classes, layout.source)  # the class check, before any row is read
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
    kind, files = table_files(path)
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
    found: dict[str, ClassColumn] = {}
    for piece in raw_pieces(files, kind, ["id", *cols], 1 << 20, None):
        t = pa.Table.from_batches([piece.batch])
        ids = IdView(batch_ids(piece))
        for c in cols:
            got = class_column(t, c, ids, piece.file)
            assert got is not None  # cols lists only columns the table has
            prev = found.get(c)
            if prev is not None and prev[0] != got[0]:
                raise InputError(source, f"'{c}' mixes class indices and class names across shards: use one kind")
            if got[0] == "index":
                uniq = np.unique(np.asarray(got[1], dtype=np.int64))
                found[c] = ("index", uniq if prev is None else np.union1d(prev[1], uniq))
            else:
                uniq_names = pc.unique(got[1])
                if prev is not None and prev[0] == "name":  # names seen in earlier pieces
                    uniq_names = pc.unique(pa.concat_arrays([prev[1], uniq_names.cast(prev[1].type)]))
                found[c] = ("name", uniq_names)
            if len(found[c][1]) > 1_000_000:
                raise InputError(source, f"'{c}' holds more than a million distinct values: not class names")
    if not found:  # no rows
        raise InputError(source, "the table is empty (no rows)")
    return derived_classes([found[c] for c in cols], k, source)


def iter_pieces(layout: TableLayout, batch_rows: int, columns: list[str] | None = None) -> Iterator[Piece]:
    """The table's rows as :class:`Piece` objects of at most ``batch_rows`` rows (Parquet;
    CSV batches are :data:`CSV_BLOCK_BYTES` of text), shard after shard.

    Raises
    ------
    InputError
        A shard that cannot be read (naming it).
    """
    return raw_pieces(layout.files, layout.kind, columns or layout.columns, batch_rows, None)
