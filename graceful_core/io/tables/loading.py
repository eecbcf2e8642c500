"""Loading a predictions table (CSV or Parquet, one file or shards) into :class:`~graceful_core.types.Predictions`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from graceful_core.errors import InputError
from graceful_core.io.arrow_compute import pc
from graceful_core.io.metadata import SampleMetadata
from graceful_core.io.tables.columns import (
    EMBEDDING_COLUMN,
    EMBEDDING_PREFIX,
    SCORE_FORMS,
    ClassColumn,
    check_pred_within_labels,
    class_column,
    derived_classes,
    has_class_names,
    metadata_classes,
    named_score_columns,
    read_matrix,
    reorder_to,
    to_indices,
    unnamed_scores_problem,
    wide_matrix,
)
from graceful_core.io.tables.files import table_display_name, table_files
from graceful_core.io.tables.reading import (
    MAX_TABLE_ROWS,
    first_bad_row,
    first_line_of_message,
    ids_of,
    parquet_rows,
    read_csv,
    read_parquet,
)
from graceful_core.metrics.confidence import argmax_lowest
from graceful_core.types import Predictions


def load_predictions_table(path: str | os.PathLike, classes: list[str] | None = None) -> Predictions:
    """Read a predictions table (CSV or Parquet) into :class:`~graceful_core.types.Predictions`.

    Parameters
    ----------
    path : str or os.PathLike
        ``.csv``, ``.parquet`` or ``.pq`` file, a folder of Parquet files or a glob pattern
        (``predictions/part-*.parquet``): shards are one table (:func:`table_files`).
    classes : list of str, optional
        The class list to use (e.g. the other side's). Integer ``label``/``pred`` index
        into it, names must be in it, and the score width must equal its length.

    Returns
    -------
    Predictions
        ``pred``/``labels`` int64, ``scores`` float32 ``[N, K]`` with ``score_kind``
        "logits" or "probs" (logits win if both exist), ``embedding`` float32 ``[N, D]``,
        ``extra = {"model_name": <file stem or folder name>}`` plus ``"slices"`` if a ``slice`` column exists
        and ``"metadata"`` (:class:`~graceful_core.io.metadata.SampleMetadata` or None): the
        table's other columns of scalars, ``slice`` included.

    Notes
    -----
    Class list, in order of precedence: ``classes``; the Parquet schema metadata
    ``graceful.classes`` (JSON list); class names found in ``label`` and ``pred``,
    naturally sorted (``"2" < "10"``); ``str(0)..str(K-1)`` for indices, with K the score
    width or ``max index + 1``. With scores, ``pred`` is their argmax, ties to the lowest
    index (``docs/metrics.md``); a ``pred`` column that disagrees with it on any row is an error.

    Raises
    ------
    InputError
        Missing/unreadable file, wrong suffix, no ``id`` column, duplicate or empty ids,
        no rows, no ``pred`` and no scores, NaN/inf/missing scores or embeddings, missing
        ``label``/``pred`` values, class index out of range, unknown class name, ragged
        list columns, a score width that does not match the class list, ``pred`` not the
        argmax of the scores; shards whose columns or class lists differ. Every message
        names ``path`` (or the shard at fault).
    """
    path = os.fspath(path)
    kind, files = table_files(path)
    try:
        return _load_table(path, kind, files, classes)
    finally:
        # Arrow's allocator keeps freed buffers (the id and label columns, converted above)
        # for reuse; hand them back so a 10-million-row table does not cost its size twice.
        pa.default_memory_pool().release_unused()


def _concat_shards(tables: list[pa.Table], files: tuple[str, ...]) -> pa.Table:
    """One table from its shards' tables; InputError naming the first shard whose columns differ."""
    if len(tables) == 1:
        return tables[0]
    first = tables[0].column_names
    for t, f in zip(tables[1:], files[1:]):
        if sorted(t.column_names) != sorted(first):
            raise InputError(
                f, f"its columns {t.column_names[:12]} differ from those of {Path(files[0]).name} {first[:12]}"
            )
    classes = [tuple(metadata_classes(t, f) or ()) for t, f in zip(tables, files)]
    for c, f in zip(classes[1:], files[1:]):
        if c != classes[0]:
            raise InputError(
                f, f"its class list (metadata 'graceful.classes') differs from that of {Path(files[0]).name}"
            )
    meta = tables[0].schema.metadata
    tables = [t.select(first).replace_schema_metadata(None) for t in tables]
    try:
        out = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
        raise InputError(files[0], f"its shards cannot be read as one table ({first_line_of_message(e)})") from None
    return out.replace_schema_metadata(meta)


def _read_rows(path: str, kind: str, files: tuple[str, ...]) -> tuple[pa.Table, np.ndarray]:
    """The table's Arrow columns and its checked ids; InputError if it has no rows."""
    if kind == "csv":
        t = _concat_shards([read_csv(f) for f in files], files)
        ids = ids_of(t, path)
    else:  # ids first, alone: their Arrow copy is freed before the scores are read (peak memory)
        total = sum(parquet_rows(f) for f in files)
        if total > MAX_TABLE_ROWS:
            raise InputError(path, f"has {total:,} rows, more than graceful reads in memory ({MAX_TABLE_ROWS:,})")
        t_ids = _concat_shards([read_parquet(f, id_only=True) for f in files], files)
        ids = ids_of(t_ids if t_ids.num_columns else _concat_shards([read_parquet(f) for f in files], files), path)
        del t_ids
        pa.default_memory_pool().release_unused()
        t = _concat_shards([read_parquet(f, id_only=False) for f in files], files)
        pa.default_memory_pool().release_unused()
    if len(ids) == 0:
        raise InputError(path, "the table is empty (no rows)")
    return t, ids


def _scores_of(t: pa.Table, ids: np.ndarray, path: str) -> tuple[np.ndarray | None, str | None, list[str] | None]:
    """Class scores, their kind (logits before probs) and the class names their columns spell, if any.

    The names come from columns named by class (``logit_<class name>``); numbered or list
    columns name none.
    """
    for sk, prefix in SCORE_FORMS.items():
        scores = read_matrix(t, sk, prefix, ids, path)
        if scores is not None:
            return scores, sk, None
        named = named_score_columns(t.column_names, prefix)
        if named:
            return wide_matrix(t, named, ids, path, sk), sk, [c[len(prefix) :] for c in named]
    return None, None, None


def _class_lists(
    t: pa.Table,
    path: str,
    classes: list[str] | None,
    named_classes: list[str] | None,
    columns: tuple[ClassColumn | None, ClassColumn | None],
    k: int | None,
    ids: np.ndarray,
) -> tuple[list[str], list[str] | None, np.ndarray | None]:
    """The class list, the file's own class list (if it carries one) and the permutation from the latter to the former.

    ``columns`` are the decoded ``label`` and ``pred`` columns; ``k`` the score width.
    """
    label_col, pred_col = columns
    file_classes = metadata_classes(t, path)
    if named_classes is not None:
        if file_classes is not None and file_classes != named_classes:
            raise InputError(
                path,
                f"its score columns name the classes {named_classes[:5]} but its metadata "
                f"'graceful.classes' says {file_classes[:5]}: make them agree",
            )
        file_classes = named_classes
    if classes is not None:
        classes = [str(c) for c in classes]
        perm = None if file_classes is None else reorder_to(file_classes, classes, path)
        return classes, file_classes, perm
    present = [c for c in (label_col, pred_col) if c is not None]
    if file_classes is None and k is None:
        check_pred_within_labels(label_col, pred_col, ids, path)
    return (file_classes if file_classes is not None else derived_classes(present, k, path)), file_classes, None


def _load_table(path: str, kind: str, files: tuple[str, ...], classes: list[str] | None) -> Predictions:
    t, ids = _read_rows(path, kind, files)
    scores, score_kind, named_classes = _scores_of(t, ids, path)
    embedding = read_matrix(t, EMBEDDING_COLUMN, EMBEDDING_PREFIX, ids, path)
    label_col = class_column(t, "label", ids, path)
    pred_col = class_column(t, "pred", ids, path)
    if scores is None and pred_col is None:
        raise InputError(path, "no 'pred' column and no class scores (logits/probs): nothing to compare")
    k = None if scores is None else scores.shape[1]
    classes, file_classes, perm = _class_lists(t, path, classes, named_classes, (label_col, pred_col), k, ids)
    if k is not None and k != len(classes):
        raise InputError(path, f"has {k} score columns but the other side has {len(classes)} classes")
    if score_kind is not None and pred_col is None and file_classes is None and has_class_names(classes):
        raise InputError(path, unnamed_scores_problem(score_kind))

    cls_for_file = file_classes if file_classes is not None and perm is not None else classes
    labels = None if label_col is None else to_indices(*label_col, cls_for_file, "label", ids, path)
    pred = None if pred_col is None else to_indices(*pred_col, cls_for_file, "pred", ids, path)
    if scores is not None:
        am = argmax_lowest(scores)
        if pred is not None and (pred != am).any():
            row = first_bad_row(pred != am)
            raise InputError(
                path,
                f"'pred' of id {ids[row]!r} is {cls_for_file[pred[row]]!r} but the highest score is for "
                f"{cls_for_file[am[row]]!r} (pred must be the argmax of the scores)",
            )
        pred = am
    assert pred is not None  # a table without scores has a 'pred' column (refused above otherwise)
    if perm is not None:  # file order -> the requested order
        pred = perm[pred]
        labels = None if labels is None else perm[labels]
        if scores is not None:
            scores = scores[:, np.argsort(perm)]
    return Predictions(
        ids=ids,
        pred=np.ascontiguousarray(pred, dtype=np.int64),
        classes=list(classes),
        labels=None if labels is None else np.ascontiguousarray(labels, dtype=np.int64),
        scores=scores,
        score_kind=score_kind,
        embedding=embedding,
        source=path,
        extra=_extra(t, path),
    )


def _extra(t: pa.Table, path: str) -> dict[str, Any]:
    """``model_name``, the ``slice`` column (missing ones read ``"(none)"``) and the other scalar columns."""
    extra: dict[str, Any] = {"model_name": table_display_name(path)}
    if "slice" in t.column_names:
        sl = t.column("slice")
        extra["slices"] = np.asarray(
            pc.fill_null(pc.cast(sl, pa.string()), "(none)").to_numpy(zero_copy_only=False), dtype=object
        )
    extra["metadata"] = SampleMetadata.from_arrow(t)  # the other columns of scalars (docs/formats.md)
    return extra
