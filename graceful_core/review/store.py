"""Review state of a comparison: a status and notes, kept in a small SQLite file.

The file lives in the cache folder (``reviews.sqlite``) next to the cached results and
is keyed by the comparison's content key, so the same two models on the same data find
their review again after a restart. Notes are rows appended in their own transaction
(never a read-modify-write of a text blob), so two sessions writing at once cannot lose
each other's notes. The status history is kept too; the latest row is the status.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from graceful_core.cache import cache_dir

STATUSES = ("needs review", "approved", "rejected")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS status (
    key TEXT NOT NULL, status TEXT NOT NULL, author TEXT NOT NULL, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS note (
    key TEXT NOT NULL, text TEXT NOT NULL, author TEXT NOT NULL, at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS status_key ON status (key, at);
CREATE INDEX IF NOT EXISTS note_key ON note (key, at);
"""


@dataclass(frozen=True)
class Note:
    """One note: its text, who wrote it (may be empty) and when (POSIX time)."""

    text: str
    author: str
    at: float


@dataclass(frozen=True)
class Review:
    """A comparison's review: current status (who set it and when; None if never set) and notes."""

    key: str
    status: str
    status_by: str
    status_at: float | None
    notes: tuple[Note, ...]


def default_db_path() -> Path:
    """``<cache folder>/reviews.sqlite``."""
    return cache_dir() / "reviews.sqlite"


#: Longest note accepted, in characters.
MAX_NOTE_CHARS = 10_000
#: How long a writer waits for another's transaction before giving up, in seconds.
BUSY_TIMEOUT_S = 30.0


@contextmanager
def connect(db: str | os.PathLike | None, extra_schema: str = ""):
    """A connection in autocommit mode with WAL journaling and a busy timeout.

    WAL lets readers proceed while one writer commits; the busy timeout makes a second
    writer wait for the first one's transaction instead of failing at once. The review's
    tables exist on return, and those of ``extra_schema`` (``CREATE … IF NOT EXISTS``
    statements of another record kept in the same file, e.g. the flip verdicts).
    """
    path = Path(db) if db is not None else default_db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        con.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        con.execute("PRAGMA journal_mode=WAL")
        con.executescript(_SCHEMA + extra_schema)
        yield con
    finally:
        con.close()


def write(db, sql: str, params: tuple, extra_schema: str = "") -> None:
    """Run one INSERT in its own ``BEGIN IMMEDIATE`` transaction (rolled back on error); see :func:`connect`."""
    with connect(db, extra_schema) as con:
        con.execute("BEGIN IMMEDIATE")
        try:
            con.execute(sql, params)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError("a review needs the comparison's key (a non-empty string)")
    return key


def set_status(key: str, status: str, *, author: str = "", db: str | os.PathLike | None = None) -> None:
    """Record a new status for the comparison ``key`` (one of :data:`STATUSES`)."""
    _check_key(key)
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    write(db, "INSERT INTO status (key, status, author, at) VALUES (?, ?, ?, ?)", (key, status, author, time.time()))


def add_note(key: str, text: str, *, author: str = "", db: str | os.PathLike | None = None) -> None:
    """Append a note to the comparison ``key`` (its own row and transaction).

    Leading and trailing white space is stripped; empty notes and notes longer than
    :data:`MAX_NOTE_CHARS` are refused with ``ValueError``.
    """
    _check_key(key)
    if not isinstance(text, str):
        raise ValueError(f"a note must be text, got {type(text).__name__}")
    text = text.strip()
    if not text:
        raise ValueError("an empty note")
    if len(text) > MAX_NOTE_CHARS:
        raise ValueError(f"a note of {len(text)} characters; at most {MAX_NOTE_CHARS} are kept")
    write(db, "INSERT INTO note (key, text, author, at) VALUES (?, ?, ?, ?)", (key, text, author, time.time()))


def get_review(key: str, *, db: str | os.PathLike | None = None) -> Review:
    """The current status (default "needs review") and every note, oldest first.

    The status is the latest row of the status history and notes come in the order
    they were committed (SQLite's rowid: writes are serialised, so this order does not
    depend on the writers' clocks).
    """
    _check_key(key)
    with connect(db) as con:
        row = con.execute(
            "SELECT status, author, at FROM status WHERE key = ? ORDER BY rowid DESC LIMIT 1", (key,)
        ).fetchone()
        notes = con.execute("SELECT text, author, at FROM note WHERE key = ? ORDER BY rowid", (key,)).fetchall()
    status, by, at = row if row else ("needs review", "", None)
    return Review(key=key, status=status, status_by=by, status_at=at, notes=tuple(Note(*n) for n in notes))
