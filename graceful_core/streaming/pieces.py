"""A predictions table's files read as Arrow record batches ("pieces"), shard after shard, and two
tables' pieces paired side by side.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from queue import Queue

import numpy as np
import pyarrow as pa

from graceful_core.errors import InputError
from graceful_core.io.arrow_compute import pc
from graceful_core.io.tables.reading import first_line_of_message
from graceful_core.streaming.kernels import string_buffers

#: Bytes of CSV text parsed per batch.
CSV_BLOCK_BYTES = 16 << 20


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


def _csv_types(names: Sequence[str]) -> dict[str, pa.DataType]:
    types: dict[str, pa.DataType] = {"id": pa.string(), "label": pa.string(), "pred": pa.string(), "slice": pa.string()}
    wide = re.compile(r"^(logit|prob|emb)_\d+$")
    types.update({n: pa.float32() for n in names if wide.match(n)})
    return types


def raw_pieces(
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
            raise InputError(f, f"not a readable {what} table ({first_line_of_message(e)})") from None


class IdView:
    """``ids[row]`` as a Python str, for error messages (no conversion of the whole batch)."""

    def __init__(self, arr: pa.Array) -> None:
        self.arr = arr

    def __getitem__(self, row) -> str:
        return self.arr[int(row)].as_py()


def batch_ids(piece: Piece) -> pa.Array:
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


def prefetched(it: Iterator, depth: int = 2) -> Iterator:
    """``it`` advanced by a background thread (Parquet decoding releases the GIL)."""
    q: Queue = Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def run() -> None:
        try:
            for x in it:
                if stop.is_set():
                    return
                q.put((None, x))
            q.put((None, done))
        except BaseException as e:  # handed to the consumer
            q.put((e, None))

    t = threading.Thread(target=run, name="graceful-read", daemon=True)
    t.start()
    try:
        while True:
            err, x = q.get()
            if err is not None:
                raise err
            if x is done:
                return
            yield x
    finally:
        stop.set()
        while t.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except Exception:  # noqa: BLE001 - empty queue
                pass
            t.join(timeout=0.05)


def paired(it_o: Iterator[Piece], it_n: Iterator[Piece]) -> Iterator[tuple[Piece | None, Piece | None]]:
    """Pieces of both tables cut to equal lengths, side by side; one side None once the other is longer."""
    po = pn = None
    while True:
        if po is None:
            po = next(it_o, None)
        if pn is None:
            pn = next(it_n, None)
        if po is None and pn is None:
            return
        if po is None or pn is None:
            yield po, pn
            po = pn = None
            continue
        m = min(len(po), len(pn))
        a, b = po.slice(0, m), pn.slice(0, m)
        po = po.slice(m) if len(po) > m else None
        pn = pn.slice(m) if len(pn) > m else None
        yield a, b
