"""Predictions tables (``docs/formats.md``): reading, joining on ``id``, writing.

A table has one row per sample: ``id`` (string, unique), ``pred`` and/or class scores,
optionally ``label``, an embedding and a ``slice``. Scores and embeddings are list
columns ``logits`` / ``probs`` / ``embedding`` in Parquet, wide columns
``logit_0..logit_{K-1}`` / ``prob_0..`` / ``emb_0..emb_{D-1}`` in CSV (the wide form is
accepted in Parquet too). ``label`` and ``pred`` are class indices or class names.

Everything is read with pyarrow and converted column-wise (no per-row Python), so a
table of 10 million rows loads in seconds: list columns are flattened and reshaped,
not stacked row by row.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import os
import re
import threading
import weakref
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from graceful_core.cache import atomic_output
from graceful_core.errors import InputError
from graceful_core.io.datasets import natural_key, natural_sorted
from graceful_core.io.hashing import file_sha256
from graceful_core.io.metadata import SampleMetadata
from graceful_core.metrics.confidence import argmax_lowest
from graceful_core.types import Predictions
from graceful_core.vocabulary import CSV_SUFFIXES, PARQUET_SUFFIXES

#: Parquet schema metadata key holding the JSON list of class names.
CLASSES_KEY = b"graceful.classes"
#: Score kinds with their list column and wide-column prefix.
SCORE_FORMS = {"logits": "logit_", "probs": "prob_"}
EMBEDDING_COLUMN, EMBEDDING_PREFIX = "embedding", "emb_"


# --------------------------------------------------------------------------- reading
def _suffix_kind(path: str) -> str:
    s = Path(path).suffix.lower()
    if s in CSV_SUFFIXES:
        return "csv"
    if s in PARQUET_SUFFIXES:
        return "parquet"
    raise InputError(path, f"not a predictions table: expected .csv or .parquet, got '{s or 'no suffix'}'")


#: Characters that make a table path a glob pattern (``predictions/part-*.parquet``).
GLOB_CHARS = frozenset("*?[")


def is_glob(path: str | os.PathLike) -> bool:
    """True when ``path`` is a glob pattern (holds ``*``, ``?`` or ``[``) rather than a file name."""
    return any(c in GLOB_CHARS for c in os.fspath(path))


def _is_shard_name(name: str) -> bool:
    """A data file of a Parquet folder (hidden files and ``_SUCCESS``-style markers are not)."""
    return not name.startswith((".", "_")) and Path(name).suffix.lower() in PARQUET_SUFFIXES


def table_files(path: str | os.PathLike) -> tuple[str, tuple[str, ...]]:
    """The kind (``"csv"`` or ``"parquet"``) and the files of the predictions table ``path``.

    A table is one CSV or Parquet file, a folder of Parquet files (its ``*.parquet`` /
    ``*.pq`` files, not its subfolders; names starting with ``.`` or ``_`` are skipped,
    as Spark and Hive write ``_SUCCESS`` markers), or a glob pattern
    (``predictions/part-*.parquet``, ``**`` allowed) matching files of one kind. Shards are
    ordered naturally by path (``part-2`` before ``part-10``); their rows, in that order,
    are the table's rows.

    Raises
    ------
    InputError
        No such file; a suffix that is not a table's; a folder without Parquet files; a
        pattern matching nothing, or matching CSV and Parquet files together.
    """
    p = os.fspath(path)
    if is_glob(p):
        files = [f for f in glob.glob(p, recursive=True) if os.path.isfile(f)]
        if not files:
            raise InputError(p, "no file matches this pattern")
        kinds = {_suffix_kind(f) for f in files}
        if len(kinds) > 1:
            raise InputError(p, "matches both CSV and Parquet files: a table's shards must be of one kind")
        return kinds.pop(), tuple(sorted(files, key=natural_key))
    if os.path.isdir(p):
        files = [os.path.join(p, f) for f in os.listdir(p) if _is_shard_name(f) and os.path.isfile(os.path.join(p, f))]
        if not files:
            raise InputError(p, "is a folder without Parquet files (.parquet, .pq): not a predictions table")
        return "parquet", tuple(sorted(files, key=natural_key))
    kind = _suffix_kind(p)
    if not os.path.exists(p):
        raise InputError(p, "no such file")
    return kind, (p,)


def is_table_source(path: str | os.PathLike) -> bool:
    """True when ``path`` names a predictions table: a ``.csv``/``.parquet``/``.pq`` file name,
    a glob pattern, or a folder holding Parquet files (by name only; nothing is read)."""
    p = os.fspath(path)
    if Path(p).suffix.lower() in CSV_SUFFIXES + PARQUET_SUFFIXES or is_glob(p):
        return True
    try:
        return os.path.isdir(p) and any(_is_shard_name(f) for f in os.listdir(p))
    except OSError:
        return False


def table_display_name(path: str | os.PathLike) -> str:
    """Short name of a table: a file's stem, a folder's name, a pattern's folder name."""
    p = Path(os.fspath(path))
    if is_glob(p.name):
        return p.parent.name or p.name
    return p.name if os.path.isdir(p) else p.stem


def table_sha256(path: str | os.PathLike) -> str:
    """Content identity of a table: the file's SHA-256, or for shards SHA-256 over their names and digests."""
    _, files = table_files(path)
    if len(files) == 1 and not is_glob(path) and not os.path.isdir(path):
        return file_sha256(files[0])
    h = hashlib.sha256(b"graceful-shards-v1")
    for f in files:
        h.update(os.path.basename(f).encode() + b"\x00" + file_sha256(f).encode() + b"\x00")
    return h.hexdigest()


def _first_line_of_msg(e: Exception) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__


def _csv_header(path: str) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return next(csv.reader(f), [])
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputError(path, f"not a readable CSV table ({_first_line_of_msg(e)})") from None


def _read_csv(path: str) -> pa.Table:
    """CSV -> Arrow: ``id`` as string, score/embedding columns parsed straight to float32."""
    import pyarrow.csv as pacsv

    header = _csv_header(path)
    if not header:
        raise InputError(path, "the table is empty (no header line)")
    # label/pred as text: CSV has no types, and class names such as "5" must not turn into
    # class positions (see _to_indices for how text that is not a class name is read)
    types: dict[str, pa.DataType] = {"id": pa.string(), "label": pa.string(), "pred": pa.string()}
    wide = re.compile(r"^(logit|prob|emb)_\d+$")
    for name in header:
        if wide.match(name):
            types[name] = pa.float32()
    try:
        return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, UnicodeDecodeError, ValueError) as e:
        raise InputError(path, f"not a readable CSV table ({_first_line_of_msg(e)})") from None


#: Largest table graceful reads (Parquet's row count is checked before reading: run-length
#: encoding lets a tiny file declare billions of rows).
MAX_TABLE_ROWS = 100_000_000


def _parquet_rows(path: str) -> int:
    """Rows a Parquet file declares in its footer; InputError if it is not readable Parquet."""
    import pyarrow.parquet as pq

    try:
        return int(pq.read_metadata(path).num_rows)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError, ValueError) as e:
        raise InputError(path, f"not a readable Parquet table ({_first_line_of_msg(e)})") from None


def _read_parquet(path: str, id_only: bool = False) -> pa.Table:
    """The table, or only its ``id`` column (an empty table if it has none), or all but ``id``."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
        if meta.num_rows > MAX_TABLE_ROWS:
            raise InputError(
                path, f"declares {meta.num_rows:,} rows, more than graceful reads ({MAX_TABLE_ROWS:,}); split the table"
            )
        names = meta.schema.to_arrow_schema().names
        # pre_buffer=False: no whole-column read-ahead buffers (faster and ~30 % less peak
        # memory on a local file)
        if id_only:
            return pq.read_table(path, columns=[c for c in names if c == "id"], pre_buffer=False)
        return pq.read_table(path, columns=[c for c in names if c != "id"] or None, pre_buffer=False)
    except InputError:
        raise
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError, ValueError) as e:
        raise InputError(path, f"not a readable Parquet table ({_first_line_of_msg(e)})") from None


#: Id columns already checked in this process: SHA-256 of their bytes -> the (read-only)
#: object array made from them, held weakly. Two tables with the same ids in the same
#: order (the usual case: two models run on one dataset) share one array, and the
#: second skips the duplicate check and the conversion to Python strings.
_CHECKED_IDS: OrderedDict[str, weakref.ref] = OrderedDict()
_CHECKED_IDS_LOCK = threading.Lock()
_CHECKED_IDS_MAX = 8
#: From this many rows on, the duplicate check runs in a second thread.
_THREADED_ID_CHECK_ROWS = 100_000


def _string_fingerprint(arr: pa.Array) -> str:
    """SHA-256 of a string array's values and boundaries (independent of its buffer offsets)."""
    _, offsets_buf, data_buf = arr.buffers()
    if offsets_buf is None or len(arr) == 0:
        return hashlib.sha256(b"%d:" % len(arr)).hexdigest()
    dtype = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(offsets_buf, dtype=dtype, count=len(arr) + 1, offset=arr.offset * np.dtype(dtype).itemsize)
    h = hashlib.sha256(b"%d:" % len(arr))
    h.update((offsets.astype(np.int64) - int(offsets[0])).tobytes())  # boundaries, relative to the first value
    if data_buf is not None:
        h.update(memoryview(data_buf)[int(offsets[0]) : int(offsets[-1])])
    return h.hexdigest()


def _checked_ids(fingerprint: str, n: int) -> np.ndarray | None:
    with _CHECKED_IDS_LOCK:
        ref = _CHECKED_IDS.get(fingerprint)
        ids = ref() if ref is not None else None
        if ids is not None and len(ids) == n:
            _CHECKED_IDS.move_to_end(fingerprint)
            return ids
    return None


def _remember_ids(fingerprint: str, ids: np.ndarray) -> None:
    with _CHECKED_IDS_LOCK:
        _CHECKED_IDS[fingerprint] = weakref.ref(ids)
        while len(_CHECKED_IDS) > _CHECKED_IDS_MAX:
            _CHECKED_IDS.popitem(last=False)


def _ids_of(t: pa.Table, path: str) -> np.ndarray:
    """The ``id`` column as a read-only object array of str.

    InputError if missing, null, empty or repeated. A column with exactly the bytes of one
    checked before (and still in use) gives that same array back without re-checking.
    """
    if "id" not in t.column_names:
        raise InputError(path, f"no 'id' column (columns: {t.column_names[:12]})")
    col = t.column("id")
    if pa.types.is_dictionary(col.type):
        col = pc.cast(col, col.type.value_type)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        try:
            col = pc.cast(col, pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise InputError(path, f"'id' column of type {col.type} cannot be read as text") from None
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if col.null_count:
        row = int(pc.index(pc.is_null(col), True).as_py())
        raise InputError(path, f"empty 'id' in row {row + 1}")
    fingerprint = _string_fingerprint(col)
    known = _checked_ids(fingerprint, len(col))
    if known is not None:
        return known
    empty = pc.equal(pc.utf8_length(col), 0)
    if pc.any(empty).as_py():
        row = _first_bad_row(empty.to_numpy(zero_copy_only=False))
        raise InputError(path, f"empty 'id' in row {row + 1}")
    if len(col) < _THREADED_ID_CHECK_ROWS:
        dup = _first_duplicate(col)
        ids = None if dup is not None else col.to_numpy(zero_copy_only=False).astype(object, copy=False)
    else:  # Arrow's sort releases the GIL: check for duplicates while Python strings are made
        with ThreadPoolExecutor(1, thread_name_prefix="graceful-ids") as pool:
            pending = pool.submit(_first_duplicate, col)
            ids = col.to_numpy(zero_copy_only=False).astype(object, copy=False)
            dup = pending.result()
    if dup is not None:
        raise InputError(path, f"duplicate id {dup!r}: ids must be unique")
    ids.flags.writeable = False  # shared between tables with the same ids
    _remember_ids(fingerprint, ids)
    return ids


def _first_duplicate(col: pa.ChunkedArray | pa.Array) -> str | None:
    """A repeated value of a string column, or None if all are distinct.

    Sort-based (Arrow's ``sort_indices`` + a comparison of neighbours): on 10 million ids
    it is several times faster than hashing them (``count_distinct``).
    """
    if len(col) < 2:
        return None
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    ordered = arr.take(pc.sort_indices(arr))
    same = pc.equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1))
    if not pc.any(same).as_py():
        return None
    return ordered[int(pc.index(same, True).as_py())].as_py()


def _first_bad_row(mask_rows: np.ndarray) -> int:
    return int(np.flatnonzero(mask_rows)[0])


def _numeric_matrix_check(m: np.ndarray, ids: np.ndarray, path: str, what: str) -> np.ndarray:
    """``m`` itself; InputError naming the first id with a NaN or infinite value.

    Checked in blocks of rows, so no ``[N, K]`` boolean temporary is built.
    """
    step = max(1, (1 << 18) // max(1, m.shape[1]))
    for start in range(0, m.shape[0], step):
        finite = np.isfinite(m[start : start + step])
        if not finite.all():
            row = start + _first_bad_row(~finite.all(axis=1))
            raise InputError(path, f"NaN, missing or infinite {what} value for id {ids[row]!r}")
    return m


def _list_column_values(col: pa.ChunkedArray | pa.Array, ids, path: str, name: str, k: int | None = None) -> np.ndarray:
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
        row = _first_bad_row(arr.is_null().to_numpy(zero_copy_only=False))
        raise InputError(path, f"missing '{name}' for id {ids[row]!r}")
    if pa.types.is_fixed_size_list(arr.type) and (k is None or arr.type.list_size == k):
        k = arr.type.list_size
    else:
        lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
        k = (int(lengths[0]) if n else 0) if k is None else k
        if n and (lengths != k).any():
            row = _first_bad_row(lengths != k)
            raise InputError(
                path, f"ragged '{name}' column: id {ids[row]!r} has {int(lengths[row])} values, the first row {k}"
            )
    values = arr.flatten()
    if not (pa.types.is_floating(values.type) or pa.types.is_integer(values.type)):
        raise InputError(path, f"'{name}' holds {values.type} values, not numbers")
    if k == 0:
        raise InputError(path, f"'{name}' lists are empty")
    flat = values.to_numpy(zero_copy_only=False)  # nulls become NaN
    return np.asarray(flat, dtype=np.float32).reshape(n, k)


def _list_column_matrix(col: pa.ChunkedArray, ids: np.ndarray, path: str, name: str) -> np.ndarray:
    """A list column as float32 ``[N, K]``; InputError if ragged, null or not finite."""
    return _numeric_matrix_check(_list_column_values(col, ids, path, name), ids, path, name)


def _wide_names(names: list[str], prefix: str, path: str) -> list[str] | None:
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


def _named_score_columns(names: list[str], prefix: str) -> list[str]:
    """Score columns named by class (``logit_cat``, ``logit_dog``), in table order; [] when there are none.

    Numbered columns (``logit_0``) are not names: :func:`_wide_names` reads those.

    >>> _named_score_columns(["id", "logit_cat", "logit_dog", "emb_0"], "logit_")
    ['logit_cat', 'logit_dog']
    """
    cols = [c for c in names if c.startswith(prefix) and len(c) > len(prefix)]
    if not cols or any(re.fullmatch(r"\d+", c[len(prefix) :]) for c in cols):
        return []
    return cols


def _wide_values(t: pa.Table, cols: list[str], path: str) -> np.ndarray:
    """Wide numeric columns as float32 ``[N, K]`` (column by column), not yet checked for NaN."""
    out = np.empty((t.num_rows, len(cols)), dtype=np.float32)
    for j, c in enumerate(cols):
        col = t.column(c)
        if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type) or pa.types.is_null(col.type)):
            raise InputError(path, f"column '{c}' is not numeric ({col.type})")
        out[:, j] = col.to_numpy(zero_copy_only=False) if not pa.types.is_null(col.type) else np.nan
    return out


def _wide_matrix(t: pa.Table, cols: list[str], ids: np.ndarray, path: str, what: str) -> np.ndarray:
    """Wide numeric columns as float32 ``[N, K]``; InputError naming the first non-finite row."""
    return _numeric_matrix_check(_wide_values(t, cols, path), ids, path, what)


def _matrix(t: pa.Table, list_name: str, prefix: str, ids: np.ndarray, path: str) -> np.ndarray | None:
    """The list column ``list_name`` if present, else the wide ``prefix*`` columns, else None."""
    if list_name in t.column_names:
        col = t.column(list_name)
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type):
            return _list_column_matrix(col, ids, path, list_name)
        raise InputError(path, f"column '{list_name}' must hold lists of numbers, not {col.type}")
    cols = _wide_names(t.column_names, prefix, path)
    return None if cols is None else _wide_matrix(t, cols, ids, path, list_name)


def _class_column(t: pa.Table, name: str, ids: np.ndarray, path: str) -> tuple[str, object] | None:
    """``("index", int64 array)`` or ``("name", Arrow string array)`` for ``label``/``pred``."""
    if name not in t.column_names:
        return None
    col = t.column(name)
    col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if col.null_count:
        row = _first_bad_row(col.is_null().to_numpy(zero_copy_only=False))
        raise InputError(path, f"missing (NaN or empty) '{name}' for id {ids[row]!r}")
    if pa.types.is_integer(col.type):
        return "index", col.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    if pa.types.is_floating(col.type):
        v = col.to_numpy(zero_copy_only=False)
        bad = ~np.isfinite(v) | (v != np.round(v))
        if bad.any():
            row = _first_bad_row(bad)
            raise InputError(path, f"'{name}' of id {ids[row]!r} is {v[row]!r}: not a class index or name")
        return "index", v.astype(np.int64)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        empty = pc.equal(pc.utf8_length(col), 0)
        if pc.any(empty).as_py():
            row = _first_bad_row(empty.to_numpy(zero_copy_only=False))
            raise InputError(path, f"missing (NaN or empty) '{name}' for id {ids[row]!r}")
        return "name", col
    raise InputError(path, f"'{name}' column of type {col.type} holds neither class indices nor class names")


def _file_classes(t: pa.Table, path: str) -> list[str] | None:
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


def _derived_classes(cols: list[tuple[str, object]], k: int | None, path: str) -> list[str]:
    """Class list of a table that does not carry one (see :func:`load_predictions_table`)."""
    kinds = {kind for kind, _ in cols}
    if kinds == {"index", "name"}:
        raise InputError(path, "'label' and 'pred' mix class indices and class names: use one kind")
    if kinds == {"name"}:
        numeric = [_text_indices(pc.unique(arr)) is not None for _, arr in cols]
        if len(numeric) == 2 and numeric[0] != numeric[1]:  # e.g. CSV: label "0", pred "cat"
            raise InputError(path, "'label' and 'pred' mix class indices and class names: use one kind")
        names: set[str] = set()
        for _, arr in cols:
            names.update(pc.unique(arr).to_pylist())
        classes = natural_sorted(names)
        as_index = None if k is not None else _text_indices(pa.array(classes, type=pa.string()))
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
        k = 1 + max(int(arr.max()) for _, arr in cols if len(arr)) if cols else 0
    return [str(j) for j in range(k)]


def _check_pred_within_labels(label_col, pred_col, ids: np.ndarray, path: str) -> None:
    """Class indices without a class list: a prediction beyond every label is refused, not a new class.

    With neither scores nor ``graceful.classes`` the class count is ``1 + max label``; a
    ``pred`` of 12 next to labels 0..9 is a broken prediction (labels out of range are
    refused too), not evidence of classes 10, 11 and 12.
    """
    if label_col is None or pred_col is None:
        return

    def as_index(col) -> np.ndarray | None:  # CSV class indices arrive as text ("3")
        return col[1] if col[0] == "index" else _text_indices(col[1])

    labels, pred = as_index(label_col), as_index(pred_col)
    if labels is None or pred is None or not len(labels):
        return
    k = 1 + int(labels.max())
    bad = pred >= k
    if bad.any():
        row = _first_bad_row(bad)
        raise InputError(
            path,
            f"'pred' of id {ids[row]!r} is {int(pred[row])}, outside the classes 0..{k - 1} its "
            f"labels use: if class {int(pred[row])} exists, give the class list (class scores, or "
            "Parquet metadata 'graceful.classes'); otherwise fix the prediction",
        )


def _to_indices(kind: str, values, classes: list[str], name: str, ids: np.ndarray, path: str) -> np.ndarray:
    """Class indices (int64) of a ``label``/``pred`` column; InputError if out of range/unknown."""
    k = len(classes)
    if kind == "index":
        bad = (values < 0) | (values >= k)
        if bad.any():
            row = _first_bad_row(bad)
            raise InputError(
                path, f"'{name}' of id {ids[row]!r} is {int(values[row])}, outside the {k} classes 0..{k - 1}"
            )
        return values
    idx = pc.index_in(values, value_set=pa.array(classes, type=values.type))
    if idx.null_count:  # CSV class indices arrive as text ("3", or "3.0" from pandas)
        as_index = _text_indices(values)
        if as_index is not None:
            return _to_indices("index", as_index, classes, name, ids, path)
    if idx.null_count:
        row = _first_bad_row(idx.is_null().to_numpy(zero_copy_only=False))
        shown = classes if k <= 20 else classes[:20] + ["..."]
        raise InputError(
            path, f"'{name}' of id {ids[row]!r} is {values[row].as_py()!r}, not one of the classes {shown}"
        )
    return idx.to_numpy(zero_copy_only=False).astype(np.int64)


def _text_indices(values) -> np.ndarray | None:
    """Text that spells whole numbers ("3", "3.0") as int64 class indices, else None."""
    try:
        v = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if not (np.isfinite(v).all() and (v == np.round(v)).all()):
        return None
    return v.astype(np.int64)


def _reorder_to(file_classes: list[str], classes: list[str], path: str) -> np.ndarray | None:
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
    classes = [tuple(_file_classes(t, f) or ()) for t, f in zip(tables, files)]
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
        raise InputError(files[0], f"its shards cannot be read as one table ({_first_line_of_msg(e)})") from None
    return out.replace_schema_metadata(meta)


def _load_table(path: str, kind: str, files: tuple[str, ...], classes: list[str] | None) -> Predictions:
    if kind == "csv":
        t = _concat_shards([_read_csv(f) for f in files], files)
        ids = _ids_of(t, path)
    else:  # ids first, alone: their Arrow copy is freed before the scores are read (peak memory)
        total = sum(_parquet_rows(f) for f in files)
        if total > MAX_TABLE_ROWS:
            raise InputError(path, f"has {total:,} rows, more than graceful reads in memory ({MAX_TABLE_ROWS:,})")
        t_ids = _concat_shards([_read_parquet(f, id_only=True) for f in files], files)
        ids = _ids_of(t_ids if t_ids.num_columns else _concat_shards([_read_parquet(f) for f in files], files), path)
        del t_ids
        pa.default_memory_pool().release_unused()
        t = _concat_shards([_read_parquet(f, id_only=False) for f in files], files)
        pa.default_memory_pool().release_unused()
    n = len(ids)
    if n == 0:
        raise InputError(path, "the table is empty (no rows)")

    scores, score_kind = None, None
    named_classes = None  # class names spelled by the score columns themselves (logit_<class name>)
    for sk, prefix in SCORE_FORMS.items():
        scores = _matrix(t, sk, prefix, ids, path)
        if scores is None:
            named = _named_score_columns(t.column_names, prefix)
            if named:
                scores, named_classes = _wide_matrix(t, named, ids, path, sk), [c[len(prefix) :] for c in named]
        if scores is not None:
            score_kind = sk
            break
    embedding = _matrix(t, EMBEDDING_COLUMN, EMBEDDING_PREFIX, ids, path)
    label_col = _class_column(t, "label", ids, path)
    pred_col = _class_column(t, "pred", ids, path)
    if scores is None and pred_col is None:
        raise InputError(path, "no 'pred' column and no class scores (logits/probs): nothing to compare")
    k = None if scores is None else scores.shape[1]

    file_classes = _file_classes(t, path)
    if named_classes is not None:
        if file_classes is not None and file_classes != named_classes:
            raise InputError(
                path,
                f"its score columns name the classes {named_classes[:5]} but its metadata "
                f"'graceful.classes' says {file_classes[:5]}: make them agree",
            )
        file_classes = named_classes
    perm = None
    if classes is not None:
        classes = [str(c) for c in classes]
        if file_classes is not None:
            perm = _reorder_to(file_classes, classes, path)
    else:
        present = [c for c in (label_col, pred_col) if c is not None]
        if file_classes is None and k is None:
            _check_pred_within_labels(label_col, pred_col, ids, path)
        classes = file_classes if file_classes is not None else _derived_classes(present, k, path)
    if k is not None and k != len(classes):
        raise InputError(path, f"has {k} score columns but the other side has {len(classes)} classes")
    if scores is not None and pred_col is None and file_classes is None and has_class_names(classes):
        raise InputError(path, unnamed_scores_problem(score_kind))

    cls_for_file = file_classes if perm is not None else classes
    labels = None if label_col is None else _to_indices(*label_col, cls_for_file, "label", ids, path)
    pred = None if pred_col is None else _to_indices(*pred_col, cls_for_file, "pred", ids, path)
    if scores is not None:
        am = argmax_lowest(scores)
        if pred is not None and (pred != am).any():
            row = _first_bad_row(pred != am)
            raise InputError(
                path,
                f"'pred' of id {ids[row]!r} is {cls_for_file[pred[row]]!r} but the highest score is for "
                f"{cls_for_file[am[row]]!r} (pred must be the argmax of the scores)",
            )
        pred = am
    if perm is not None:  # file order -> the requested order
        pred = perm[pred]
        labels = None if labels is None else perm[labels]
        if scores is not None:
            scores = scores[:, np.argsort(perm)]
    extra: dict = {"model_name": table_display_name(path)}
    if "slice" in t.column_names:
        sl = t.column("slice")
        extra["slices"] = np.asarray(
            pc.fill_null(pc.cast(sl, pa.string()), "(none)").to_numpy(zero_copy_only=False), dtype=object
        )
    extra["metadata"] = SampleMetadata.from_arrow(t)  # the other columns of scalars (docs/formats.md)
    return Predictions(
        ids=ids,
        pred=np.ascontiguousarray(pred, dtype=np.int64),
        classes=list(classes),
        labels=None if labels is None else np.ascontiguousarray(labels, dtype=np.int64),
        scores=scores,
        score_kind=score_kind,
        embedding=embedding,
        source=path,
        extra=extra,
    )


# --------------------------------------------------------------------------- joining
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
        row = _first_bad_row(bad)
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


# --------------------------------------------------------------------------- writing
def _fixed_list(m: np.ndarray) -> pa.Array:
    m = np.ascontiguousarray(m, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(m.reshape(-1)), m.shape[1]).cast(pa.list_(pa.float32()))


def predictions_to_arrow(preds: Predictions, wide: bool) -> pa.Table:
    """The table of ``preds``: ``id``, ``label`` and ``pred`` as class names, scores, embedding.

    ``wide=True`` gives ``logit_j``/``prob_j``/``emb_j`` columns (CSV), else list columns
    plus schema metadata ``graceful.classes`` (Parquet).
    """
    n = len(preds)
    names = np.asarray(preds.classes, dtype=object)
    cols: dict[str, pa.Array] = {"id": pa.array(np.asarray(preds.ids).astype(str).astype(object), type=pa.string())}
    if preds.labels is not None:
        cols["label"] = pa.array(names[np.asarray(preds.labels)], type=pa.string())
    cols["pred"] = pa.array(names[np.asarray(preds.pred)], type=pa.string())
    blocks = []
    if preds.scores is not None:
        kind = preds.score_kind if preds.score_kind in SCORE_FORMS else "logits"
        blocks.append((kind, SCORE_FORMS[kind], preds.scores))
    if preds.embedding is not None:
        blocks.append((EMBEDDING_COLUMN, EMBEDDING_PREFIX, preds.embedding))
    for list_name, prefix, m in blocks:
        m = np.asarray(m, dtype=np.float32)
        if m.ndim != 2 or m.shape[0] != n:
            raise ValueError(f"{list_name} must be [{n}, K], got {m.shape}")
        if wide:
            for j in range(m.shape[1]):
                cols[f"{prefix}{j}"] = pa.array(m[:, j])
        else:
            cols[list_name] = _fixed_list(m)
    if preds.extra.get("slices") is not None:
        cols["slice"] = pa.array(np.asarray(preds.extra["slices"]).astype(str).astype(object), type=pa.string())
    meta = None if wide else {CLASSES_KEY: json.dumps(list(map(str, preds.classes))).encode()}
    return pa.table(cols, metadata=meta)


def write_predictions_table(preds: Predictions, path: str | os.PathLike) -> None:
    """Write ``preds`` as Parquet (``.parquet``/``.pq``) or CSV (``.csv``), atomically.

    The file is written to a temporary file in the same folder and moved into place
    with ``os.replace``, so a reader never sees half a table. Labels and predictions
    are written as class names; Parquet keeps the class list in its schema metadata.

    Raises
    ------
    InputError
        Unknown suffix.
    """
    path = os.fspath(path)
    kind = _suffix_kind(path)
    table = predictions_to_arrow(preds, wide=(kind == "csv"))

    with atomic_output(path) as tmp:
        if kind == "csv":
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, tmp)
        else:
            import pyarrow.parquet as pq

            pq.write_table(table, tmp)
