"""The flip-id file (Parquet): every flipped sample of a streamed comparison, written in
batches and read back one sorted, filtered page at a time (DuckDB's top-N).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from graceful_core.errors import InputError

#: Values of the flip-id file's ``flip`` column.
FLIP_KINDS = ("negative", "positive")


#: Columns of the flip-id file, one row per flipped sample: ``flip`` is "negative" or
#: "positive"; ``label``/``old_pred``/``new_pred`` class names; ``old_p_true``/``new_p_true``
#: the probability each model gave the true class (only when both tables have scores);
#: ``slice`` (only with slices). :func:`read_flip_page` also sorts by ``confidence_drop``
#: (``old_p_true − new_p_true``).
FLIP_FILE_COLUMNS = ("id", "flip", "label", "old_pred", "new_pred", "old_p_true", "new_p_true", "slice")


class FlipWriter:
    """Writes flipped samples to ``path`` (atomically: a temporary file renamed at the end)."""

    def __init__(self, path: str, classes: tuple[str, ...], with_conf: bool, with_slices: bool) -> None:
        import pyarrow.parquet as pq

        self.path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise InputError(self.path, "its folder does not exist")
        fd, self.tmp = tempfile.mkstemp(prefix=f".{os.path.basename(self.path)}.", suffix=".tmp", dir=folder)
        os.close(fd)
        cls = pa.dictionary(pa.int32(), pa.string())
        fields = [("id", pa.string()), ("flip", pa.string()), ("label", cls), ("old_pred", cls), ("new_pred", cls)]
        if with_conf:
            fields += [("old_p_true", pa.float64()), ("new_p_true", pa.float64())]
        if with_slices:
            fields.append(("slice", pa.string()))
        self.schema = pa.schema(fields, metadata={b"graceful.classes": json.dumps(list(classes)).encode()})
        self.classes = pa.array(list(classes), type=pa.string())
        # dictionary encoding only where values repeat (trying it on ids and probabilities triples the time)
        self.writer = pq.ParquetWriter(
            self.tmp,
            self.schema,
            # pyarrow takes a list of columns here (ParquetWriter's docs); its signature is inferred as bool
            use_dictionary=["flip", "label", "old_pred", "new_pred", "slice"],  # pyright: ignore[reportArgumentType]
        )

    def write(self, ids: pa.Array, negative: np.ndarray, y, o, n, p_old, p_new, slices) -> None:
        def names(idx):
            return pa.DictionaryArray.from_arrays(pa.array(idx, type=pa.int32()), self.classes)

        cols = {
            "id": ids.cast(pa.string()),
            "flip": pa.array(np.where(negative, FLIP_KINDS[0], FLIP_KINDS[1]).astype(object), type=pa.string()),
            "label": names(y),
            "old_pred": names(o),
            "new_pred": names(n),
        }
        if "old_p_true" in self.schema.names:
            cols.update(old_p_true=pa.array(p_old), new_p_true=pa.array(p_new))
        if "slice" in self.schema.names:
            cols["slice"] = slices.cast(pa.string())
        self.writer.write_table(pa.table(cols, schema=self.schema))

    def close(self, commit: bool) -> None:
        self.writer.close()
        if commit:
            os.chmod(self.tmp, 0o644)
            os.replace(self.tmp, self.path)
        else:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass


#: A filter of the flip-id file: one value, any of several (None or empty: no filter).
Match = str | Sequence[str] | None


def _values(v: Match) -> list[str]:
    return [] if v is None else [v] if isinstance(v, str) else [str(x) for x in v]


def _flip_where(flip: Match, label: Match, old_pred: Match, new_pred: Match) -> tuple[str, list]:
    """The SQL ``WHERE`` clause (or "") and its parameters for the filters of :func:`read_flip_page`."""
    flips = _values(flip)
    bad = [f for f in flips if f not in FLIP_KINDS]
    if bad:
        raise ValueError(f"flip must be one of {FLIP_KINDS} (or several, or None), got {bad[0]!r}")
    where, params = [], []
    for col, vals in (
        ("flip", flips),
        ("label", _values(label)),
        ("old_pred", _values(old_pred)),
        ("new_pred", _values(new_pred)),
    ):
        if vals:
            where.append(f'CAST("{col}" AS VARCHAR) IN ({", ".join("?" * len(vals))})')
            params += vals
    return ("WHERE " + " AND ".join(where)) if where else "", params


def _duckdb_query(sql: str, params: list) -> pa.Table:
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    try:
        return con.sql(sql, params=params).to_arrow_table()
    finally:
        con.close()


def read_flip_page(
    path: str | os.PathLike,
    *,
    flip: Match = "negative",
    offset: int = 0,
    limit: int = 50,
    order_by: str = "id",
    descending: bool = False,
    label: Match = None,
    old_pred: Match = None,
    new_pred: Match = None,
) -> pa.Table:
    """One page of a flip-id file, sorted, without reading the whole file into memory.

    Parameters
    ----------
    path : path
        A file written by :func:`compare_tables_streamed` (``flip_ids_path``).
    flip : "negative", "positive", a sequence of them, or None
        Which flips (None or empty: both).
    offset, limit : int
        The page: rows ``offset .. offset + limit - 1`` of the sorted selection.
    order_by : str
        A column of :data:`FLIP_FILE_COLUMNS` (e.g. ``"confidence_drop"``); ties by id
        (code-point order); missing values last.
    label, old_pred, new_pred : str or sequence of str, optional
        Only samples whose true class (old prediction, new prediction) is this class or
        one of these classes (None or empty: any).

    Returns
    -------
    pyarrow.Table
        At most ``limit`` rows (DuckDB's top-N: memory of one page), the file's columns
        plus ``confidence_drop`` when the file has probabilities.
    """
    import pyarrow.parquet as pq

    cols = pq.read_schema(os.fspath(path)).names
    sortable = cols + (["confidence_drop"] if "old_p_true" in cols else [])
    if order_by not in sortable:
        raise ValueError(f"order_by must be one of {sortable}, got {order_by!r}")
    key = '"old_p_true" - "new_p_true"' if order_by == "confidence_drop" else f'"{order_by}"'
    where, params = _flip_where(flip, label, old_pred, new_pred)
    drop = ', "old_p_true" - "new_p_true" AS confidence_drop' if "old_p_true" in cols else ""
    sql = (
        f"SELECT *{drop} FROM read_parquet(?) {where} "
        f"ORDER BY {key} {'DESC' if descending else 'ASC'} NULLS LAST, id LIMIT ? OFFSET ?"
    )
    return _duckdb_query(sql, [os.fspath(path), *params, int(limit), int(offset)])


def flip_page_count(
    path: str | os.PathLike,
    *,
    flip: Match = "negative",
    label: Match = None,
    old_pred: Match = None,
    new_pred: Match = None,
) -> int:
    """Rows of a flip-id file matching the filters of :func:`read_flip_page` (for the number of pages)."""
    where, params = _flip_where(flip, label, old_pred, new_pred)
    t = _duckdb_query(f"SELECT count(*) AS n FROM read_parquet(?) {where}", [os.fspath(path), *params])
    return int(t.column(0)[0].as_py())
