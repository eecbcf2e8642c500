"""Reading a table's files into Arrow, and the ``id`` column's checks (present, unique, non-empty).

CSV and Parquet are read with pyarrow; Parquet's declared row count is checked before any
row is read. Id columns already checked in this process are recognised by a fingerprint of
their bytes and not checked twice.
"""

from __future__ import annotations

import csv
import hashlib
import re
import threading
import weakref
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from graceful_core.errors import InputError
from graceful_core.io.arrow_compute import pc


def first_line_of_message(e: Exception) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__


def csv_header(path: str) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return next(csv.reader(f), [])
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputError(path, f"not a readable CSV table ({first_line_of_message(e)})") from None


def read_csv(path: str) -> pa.Table:
    """CSV -> Arrow: ``id`` as string, score/embedding columns parsed straight to float32."""
    import pyarrow.csv as pacsv

    header = csv_header(path)
    if not header:
        raise InputError(path, "the table is empty (no header line)")
    # label/pred as text: CSV has no types, and class names such as "5" must not turn into
    # class positions (see to_indices for how text that is not a class name is read)
    types: dict[str, pa.DataType] = {"id": pa.string(), "label": pa.string(), "pred": pa.string()}
    wide = re.compile(r"^(logit|prob|emb)_\d+$")
    for name in header:
        if wide.match(name):
            types[name] = pa.float32()
    try:
        return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, UnicodeDecodeError, ValueError) as e:
        raise InputError(path, f"not a readable CSV table ({first_line_of_message(e)})") from None


#: Largest table graceful reads (Parquet's row count is checked before reading: run-length
#: encoding lets a tiny file declare billions of rows).
MAX_TABLE_ROWS = 100_000_000


def parquet_rows(path: str) -> int:
    """Rows a Parquet file declares in its footer; InputError if it is not readable Parquet."""
    import pyarrow.parquet as pq

    try:
        return int(pq.read_metadata(path).num_rows)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError, ValueError) as e:
        raise InputError(path, f"not a readable Parquet table ({first_line_of_message(e)})") from None


def read_parquet(path: str, id_only: bool = False) -> pa.Table:
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
        raise InputError(path, f"not a readable Parquet table ({first_line_of_message(e)})") from None


#: Id columns already checked in this process: SHA-256 of their bytes -> the (read-only)
#: object array made from them, held weakly. Two tables with the same ids in the same
#: order (the usual case: two models run on one dataset) share one array, and the
#: second skips the duplicate check and the conversion to Python strings.
_CHECKED_IDS: OrderedDict[str, weakref.ref] = OrderedDict()
_CHECKED_IDS_LOCK = threading.Lock()
_CHECKED_IDS_MAX = 8
#: From this many rows on, the duplicate check runs in a second thread.
_THREADED_ID_CHECK_ROWS = 100_000


def string_fingerprint(arr: pa.Array) -> str:
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


def ids_of(t: pa.Table, path: str) -> np.ndarray:
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
    fingerprint = string_fingerprint(col)
    known = _checked_ids(fingerprint, len(col))
    if known is not None:
        return known
    empty = pc.equal(pc.utf8_length(col), 0)
    if pc.any(empty).as_py():
        row = first_bad_row(empty.to_numpy(zero_copy_only=False))
        raise InputError(path, f"empty 'id' in row {row + 1}")
    if len(col) < _THREADED_ID_CHECK_ROWS:
        _refuse_duplicate(_first_duplicate(col), path)
        ids = col.to_numpy(zero_copy_only=False).astype(object, copy=False)
    else:  # Arrow's sort releases the GIL: check for duplicates while Python strings are made
        with ThreadPoolExecutor(1, thread_name_prefix="graceful-ids") as pool:
            pending = pool.submit(_first_duplicate, col)
            ids = col.to_numpy(zero_copy_only=False).astype(object, copy=False)
            _refuse_duplicate(pending.result(), path)
    ids.flags.writeable = False  # shared between tables with the same ids
    _remember_ids(fingerprint, ids)
    return ids


def _refuse_duplicate(dup: str | None, path: str) -> None:
    if dup is not None:
        raise InputError(path, f"duplicate id {dup!r}: ids must be unique")


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


def first_bad_row(mask_rows: npt.ArrayLike) -> int:
    """Position of the first true value of a boolean row mask (one that has some)."""
    return int(np.flatnonzero(mask_rows)[0])
