"""The columns of a predictions table (``docs/formats.md``): their names, and decoding them checked.

Scores and embeddings are list columns ``logits`` / ``probs`` / ``embedding`` in Parquet,
wide columns ``logit_0..`` / ``prob_0..`` / ``emb_0..`` in CSV; ``label`` and ``pred`` are
class indices or class names; the class list comes from the schema metadata
``graceful.classes``, the score columns' names, or the labels and predictions themselves.
Every problem names the id of the first row at fault.
"""

from __future__ import annotations

import json
import re
from typing import Literal, Protocol

import numpy as np
import pyarrow as pa

from graceful_core.errors import InputError
from graceful_core.io.arrow_compute import pc
from graceful_core.io.datasets import natural_sorted
from graceful_core.io.tables.reading import first_bad_row

#: Parquet schema metadata key holding the JSON list of class names.
CLASSES_KEY = b"graceful.classes"
#: Score kinds with their list column and wide-column prefix.
SCORE_FORMS = {"logits": "logit_", "probs": "prob_"}
EMBEDDING_COLUMN, EMBEDDING_PREFIX = "embedding", "emb_"


class RowIds(Protocol):
    """A table's ids by row, as the error messages name them (``ids[row]``): an array, or a batch's view."""

    def __getitem__(self, row: int, /) -> object: ...


#: A decoded ``label``/``pred`` column: class indices, or class names still as Arrow text.
ClassColumn = tuple[Literal["index"], np.ndarray] | tuple[Literal["name"], pa.Array]


def _numeric_matrix_check(m: np.ndarray, ids: RowIds, path: str, what: str) -> np.ndarray:
    """``m`` itself; InputError naming the first id with a NaN or infinite value.

    Checked in blocks of rows, so no ``[N, K]`` boolean temporary is built.
    """
    step = max(1, (1 << 18) // max(1, m.shape[1]))
    for start in range(0, m.shape[0], step):
        finite = np.isfinite(m[start : start + step])
        if not finite.all():
            row = start + first_bad_row(~finite.all(axis=1))
            raise InputError(path, f"NaN, missing or infinite {what} value for id {ids[row]!r}")
    return m


def list_column_values(
    col: pa.ChunkedArray | pa.Array, ids: RowIds, path: str, name: str, k: int | None = None
) -> np.ndarray:
    """A list column as float32 ``[N, K]`` (flatten + reshape), not yet checked for NaN.

    ``k`` is the expected list length (the first row's when None). InputError if a list is
    null, of another length ("ragged"), empty, or holds non-numbers.
    """
    if isinstance(col, pa.ChunkedArray):
        arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    else:
        arr = col
    n = len(arr)
    if arr.null_count:
        row = first_bad_row(arr.is_null().to_numpy(zero_copy_only=False))
        raise InputError(path, f"missing '{name}' for id {ids[row]!r}")
    width: int
    if pa.types.is_fixed_size_list(arr.type) and (k is None or arr.type.list_size == k):
        width = int(arr.type.list_size)
    else:
        lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
        width = (int(lengths[0]) if n else 0) if k is None else k
        if n and (lengths != width).any():
            row = first_bad_row(lengths != width)
            raise InputError(
                path, f"ragged '{name}' column: id {ids[row]!r} has {int(lengths[row])} values, the first row {width}"
            )
    values = arr.flatten()
    if not (pa.types.is_floating(values.type) or pa.types.is_integer(values.type)):
        raise InputError(path, f"'{name}' holds {values.type} values, not numbers")
    if width == 0:
        raise InputError(path, f"'{name}' lists are empty")
    flat = values.to_numpy(zero_copy_only=False)  # nulls become NaN
    return np.asarray(flat, dtype=np.float32).reshape(n, width)


def _list_column_matrix(col: pa.ChunkedArray, ids: RowIds, path: str, name: str) -> np.ndarray:
    """A list column as float32 ``[N, K]``; InputError if ragged, null or not finite."""
    return _numeric_matrix_check(list_column_values(col, ids, path, name), ids, path, name)


def wide_names(names: list[str], prefix: str, path: str) -> list[str] | None:
    """``prefix0..prefix{K-1}`` in index order, or None if there are none; InputError if gapped."""
    pat = re.compile(rf"^{re.escape(prefix)}(\d+)$")
    found = {int(m.group(1)): c for c in names if (m := pat.match(c))}
    if not found:
        return None
    k = len(found)
    if sorted(found) != list(range(k)):
        raise InputError(path, f"columns {prefix}* must be numbered 0..{k - 1}, got {sorted(found)[:12]}")
    return [found[j] for j in range(k)]


def has_class_names(classes) -> bool:
    """True unless ``classes`` is ``"0".."K-1"`` (class indices, which need no names).

    >>> has_class_names(["0", "1", "2"]), has_class_names(["cat", "dog"])
    (False, True)
    """
    return [str(c) for c in classes] != [str(j) for j in range(len(classes))]


def unnamed_scores_problem(score_kind: str) -> str:
    """Why a table with numbered scores, no ``pred`` and named classes is refused (in memory and streamed).

    Score column j is class j of *some* list; without ``pred`` to check the argmax against, a
    table whose columns follow another class order than its labels or the other side would
    be read silently wrong.
    """
    prefix = SCORE_FORMS[score_kind]
    return (
        f"has numbered class scores ({prefix}0, {prefix}1, ...) but no 'pred' column, and its classes have names, "
        f"so which column is which class cannot be checked: add a 'pred' column, name the columns "
        f"{prefix}<class name>, or store the class list as Parquet metadata 'graceful.classes'"
    )


def named_score_columns(names: list[str], prefix: str) -> list[str]:
    """Score columns named by class (``logit_cat``, ``logit_dog``), in table order; [] when there are none.

    Numbered columns (``logit_0``) are not names: :func:`wide_names` reads those.

    >>> named_score_columns(["id", "logit_cat", "logit_dog", "emb_0"], "logit_")
    ['logit_cat', 'logit_dog']
    """
    cols = [c for c in names if c.startswith(prefix) and len(c) > len(prefix)]
    if not cols or any(re.fullmatch(r"\d+", c[len(prefix) :]) for c in cols):
        return []
    return cols


def wide_values(t: pa.Table, cols: list[str], path: str) -> np.ndarray:
    """Wide numeric columns as float32 ``[N, K]`` (column by column), not yet checked for NaN."""
    out = np.empty((t.num_rows, len(cols)), dtype=np.float32)
    for j, c in enumerate(cols):
        col = t.column(c)
        if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type) or pa.types.is_null(col.type)):
            raise InputError(path, f"column '{c}' is not numeric ({col.type})")
        out[:, j] = col.to_numpy(zero_copy_only=False) if not pa.types.is_null(col.type) else np.nan
    return out


def wide_matrix(t: pa.Table, cols: list[str], ids: RowIds, path: str, what: str) -> np.ndarray:
    """Wide numeric columns as float32 ``[N, K]``; InputError naming the first non-finite row."""
    return _numeric_matrix_check(wide_values(t, cols, path), ids, path, what)


def read_matrix(t: pa.Table, list_name: str, prefix: str, ids: RowIds, path: str) -> np.ndarray | None:
    """The list column ``list_name`` if present, else the wide ``prefix*`` columns, else None."""
    if list_name in t.column_names:
        col = t.column(list_name)
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type):
            return _list_column_matrix(col, ids, path, list_name)
        raise InputError(path, f"column '{list_name}' must hold lists of numbers, not {col.type}")
    cols = wide_names(t.column_names, prefix, path)
    return None if cols is None else wide_matrix(t, cols, ids, path, list_name)


def class_column(t: pa.Table, name: str, ids: RowIds, path: str) -> ClassColumn | None:
    """``("index", int64 array)`` or ``("name", Arrow string array)`` for ``label``/``pred``."""
    if name not in t.column_names:
        return None
    col = t.column(name)
    col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if col.null_count:
        row = first_bad_row(col.is_null().to_numpy(zero_copy_only=False))
        raise InputError(path, f"missing (NaN or empty) '{name}' for id {ids[row]!r}")
    if pa.types.is_integer(col.type):
        return "index", col.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    if pa.types.is_floating(col.type):
        v = col.to_numpy(zero_copy_only=False)
        bad = ~np.isfinite(v) | (v != np.round(v))
        if bad.any():
            row = first_bad_row(bad)
            raise InputError(path, f"'{name}' of id {ids[row]!r} is {v[row]!r}: not a class index or name")
        return "index", v.astype(np.int64)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        empty = pc.equal(pc.utf8_length(col), 0)
        if pc.any(empty).as_py():
            row = first_bad_row(empty.to_numpy(zero_copy_only=False))
            raise InputError(path, f"missing (NaN or empty) '{name}' for id {ids[row]!r}")
        return "name", col
    raise InputError(path, f"'{name}' column of type {col.type} holds neither class indices nor class names")


def metadata_classes(t: pa.Table, path: str) -> list[str] | None:
    meta = t.schema.metadata or {}
    raw = meta.get(CLASSES_KEY)
    if raw is None:
        return None
    try:
        classes = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        classes = None
    if not isinstance(classes, list) or not classes or len(set(map(str, classes))) != len(classes):
        raise InputError(path, "schema metadata 'graceful.classes' is not a JSON list of distinct class names")
    return [str(c) for c in classes]


def derived_classes(cols: list[ClassColumn], k: int | None, path: str) -> list[str]:
    """Class list of a table that does not carry one (see :func:`load_predictions_table`)."""
    kinds = {kind for kind, _ in cols}
    if kinds == {"index", "name"}:
        raise InputError(path, "'label' and 'pred' mix class indices and class names: use one kind")
    if kinds == {"name"}:
        numeric = [text_indices(pc.unique(arr)) is not None for _, arr in cols]
        if len(numeric) == 2 and numeric[0] != numeric[1]:  # e.g. CSV: label "0", pred "cat"
            raise InputError(path, "'label' and 'pred' mix class indices and class names: use one kind")
        names: set[str] = set()
        for _, arr in cols:
            names.update(pc.unique(arr).to_pylist())
        classes = natural_sorted(names)
        as_index = None if k is not None else text_indices(pa.array(classes, type=pa.string()))
        if as_index is not None and as_index.min() >= 0:  # class indices, as CSV text
            return [str(j) for j in range(1 + int(as_index.max()))]
        if k is not None and len(classes) != k:
            if all(numeric):  # class indices (as text): out-of-range ones are reported later
                return [str(j) for j in range(k)]
            raise InputError(
                path,
                f"has {k} score columns but its labels and predictions name {len(classes)} classes;"
                " give the class list (Parquet metadata 'graceful.classes') or use class indices",
            )
        return classes
    if k is None:
        # only class indices are left here (names returned above): numeric arrays
        k = 1 + max(int(arr.max()) for _, arr in cols if isinstance(arr, np.ndarray) and len(arr)) if cols else 0
    return [str(j) for j in range(k)]


def check_pred_within_labels(
    label_col: ClassColumn | None, pred_col: ClassColumn | None, ids: RowIds, path: str
) -> None:
    """Class indices without a class list: a prediction beyond every label is refused, not a new class.

    With neither scores nor ``graceful.classes`` the class count is ``1 + max label``; a
    ``pred`` of 12 next to labels 0..9 is a broken prediction (labels out of range are
    refused too), not evidence of classes 10, 11 and 12.
    """
    if label_col is None or pred_col is None:
        return

    def as_index(col: ClassColumn) -> np.ndarray | None:  # CSV class indices arrive as text ("3")
        return col[1] if col[0] == "index" else text_indices(col[1])

    labels, pred = as_index(label_col), as_index(pred_col)
    if labels is None or pred is None or not len(labels):
        return
    k = 1 + int(labels.max())
    bad = pred >= k
    if bad.any():
        row = first_bad_row(bad)
        raise InputError(
            path,
            f"'pred' of id {ids[row]!r} is {int(pred[row])}, outside the classes 0..{k - 1} its "
            f"labels use: if class {int(pred[row])} exists, give the class list (class scores, or "
            "Parquet metadata 'graceful.classes'); otherwise fix the prediction",
        )


def to_indices(kind: str, values, classes: list[str], name: str, ids: RowIds, path: str) -> np.ndarray:
    """Class indices (int64) of a ``label``/``pred`` column; InputError if out of range/unknown."""
    k = len(classes)
    if kind == "index":
        bad = (values < 0) | (values >= k)
        if bad.any():
            row = first_bad_row(bad)
            raise InputError(
                path, f"'{name}' of id {ids[row]!r} is {int(values[row])}, outside the {k} classes 0..{k - 1}"
            )
        return values
    idx = pc.index_in(values, value_set=pa.array(classes, type=values.type))
    if idx.null_count:  # CSV class indices arrive as text ("3", or "3.0" from pandas)
        as_index = text_indices(values)
        if as_index is not None:
            return to_indices("index", as_index, classes, name, ids, path)
    if idx.null_count:
        row = first_bad_row(idx.is_null().to_numpy(zero_copy_only=False))
        shown = classes if k <= 20 else classes[:20] + ["..."]
        raise InputError(
            path, f"'{name}' of id {ids[row]!r} is {values[row].as_py()!r}, not one of the classes {shown}"
        )
    return idx.to_numpy(zero_copy_only=False).astype(np.int64)


def text_indices(values) -> np.ndarray | None:
    """Text that spells whole numbers ("3", "3.0") as int64 class indices, else None."""
    try:
        v = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if not (np.isfinite(v).all() and (v == np.round(v)).all()):
        return None
    return v.astype(np.int64)


def reorder_to(file_classes: list[str], classes: list[str], path: str) -> np.ndarray | None:
    """Permutation ``perm`` with ``classes[perm[j]] == file_classes[j]``; None if equal lists."""
    if file_classes == classes:
        return None
    if set(file_classes) != set(classes) or len(file_classes) != len(classes):
        only_here = [c for c in file_classes if c not in set(classes)]
        only_there = [c for c in classes if c not in set(file_classes)]
        raise InputError(
            path,
            f"class names differ from the other side's: only in this table {only_here[:5]}, only in the other {only_there[:5]}",
        )
    pos = {c: j for j, c in enumerate(classes)}
    return np.array([pos[c] for c in file_classes], dtype=np.int64)
