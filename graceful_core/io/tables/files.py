"""Which files make a predictions table: one file, a folder of Parquet shards or a glob pattern.

Also the table's short name and its content identity (SHA-256 over its shards).
"""

from __future__ import annotations

import glob
import hashlib
import os
from pathlib import Path

from graceful_core.errors import InputError
from graceful_core.io.datasets import natural_key
from graceful_core.io.hashing import file_sha256
from graceful_core.vocabulary import CSV_SUFFIXES, PARQUET_SUFFIXES


def suffix_kind(path: str) -> str:
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
        kinds = {suffix_kind(f) for f in files}
        if len(kinds) > 1:
            raise InputError(p, "matches both CSV and Parquet files: a table's shards must be of one kind")
        return kinds.pop(), tuple(sorted(files, key=natural_key))
    if os.path.isdir(p):
        files = [os.path.join(p, f) for f in os.listdir(p) if _is_shard_name(f) and os.path.isfile(os.path.join(p, f))]
        if not files:
            raise InputError(p, "is a folder without Parquet files (.parquet, .pq): not a predictions table")
        return "parquet", tuple(sorted(files, key=natural_key))
    kind = suffix_kind(p)
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
