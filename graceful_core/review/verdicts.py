"""A reviewer's verdict on each flipped image, kept with the comparison's review.

Verdicts live in the review's SQLite file (:mod:`graceful_core.review.store`: the cache
folder's ``reviews.sqlite``, WAL journal, busy timeout), keyed by the comparison's
content key and the sample id, so everyone who opens the same comparison sees them.
Each verdict is a row appended in its own ``BEGIN IMMEDIATE`` transaction, never a
read-modify-write: two sessions marking images at once keep every mark, and a second
mark of the same image by anyone is a newer row (the latest row is the verdict; the
history stays). Clearing a verdict appends an empty one.

A verdict is one of :data:`~graceful_core.vocabulary.FLIP_VERDICTS`, with an optional
note and, for "label wrong", an optional corrected label (default: the class both
models prefer, :mod:`graceful_core.metrics.label_issues`).

Examples
--------
>>> import tempfile, os
>>> db = os.path.join(tempfile.mkdtemp(), "r.sqlite")
>>> set_verdict("k", "img1", "label wrong", note="a T-shirt", corrected_label="T-shirt/top", db=db)
>>> set_verdict("k", "img2", "real regression", db=db)
>>> sorted((v.sample_id, v.verdict) for v in get_verdicts("k", db=db).values())
[('img1', 'label wrong'), ('img2', 'real regression')]
>>> clear_verdict("k", "img2", db=db); sorted(get_verdicts("k", db=db))
['img1']
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from graceful_core.metrics.significance import wilson_interval
from graceful_core.review.store import MAX_NOTE_CHARS, connect, write
from graceful_core.vocabulary import FLIP_VERDICTS

__all__ = [
    "FlipVerdict",
    "VerdictCounts",
    "set_verdict",
    "clear_verdict",
    "get_verdicts",
    "verdict_counts",
    "verdicts_to_json",
    "corrected_labels_csv",
    "verdict_signature",
    "FLIP_VERDICTS",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS flip_verdict (
    key TEXT NOT NULL, sample_id TEXT NOT NULL, verdict TEXT NOT NULL, corrected_label TEXT NOT NULL,
    note TEXT NOT NULL, author TEXT NOT NULL, at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS flip_verdict_key ON flip_verdict (key, sample_id);
"""


@dataclass(frozen=True)
class FlipVerdict:
    """The current verdict on one image: what, which corrected label, the note, who and when (POSIX time)."""

    sample_id: str
    verdict: str
    corrected_label: str
    note: str
    author: str
    at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.sample_id,
            "verdict": self.verdict,
            "corrected_label": self.corrected_label or None,
            "note": self.note,
            "author": self.author,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at)),
        }


def _check(key: object, sample_id: object) -> tuple[str, str]:
    if not isinstance(key, str) or not key:
        raise ValueError("a verdict needs the comparison's key (a non-empty string)")
    if not isinstance(sample_id, str) or not sample_id:
        raise ValueError("a verdict needs the image's sample id (a non-empty string)")
    return key, sample_id


def set_verdict(
    key: str,
    sample_id: str,
    verdict: str,
    *,
    note: str = "",
    corrected_label: str = "",
    author: str = "",
    db: str | os.PathLike | None = None,
) -> None:
    """Record ``verdict`` (one of :data:`FLIP_VERDICTS`) on image ``sample_id`` of comparison ``key``.

    One appended row in its own transaction. ``note`` is stripped and at most
    :data:`~graceful_core.review.store.MAX_NOTE_CHARS` long; ``corrected_label`` is kept only
    with "label wrong".

    Raises
    ------
    ValueError
        An empty key or id, an unknown verdict, a note too long.
    """
    _check(key, sample_id)
    if verdict not in FLIP_VERDICTS:
        raise ValueError(f"verdict must be one of {FLIP_VERDICTS}, got {verdict!r}")
    note = (note or "").strip()
    if len(note) > MAX_NOTE_CHARS:
        raise ValueError(f"a note of {len(note)} characters; at most {MAX_NOTE_CHARS} are kept")
    corrected = (corrected_label or "").strip() if verdict == "label wrong" else ""
    write(
        db,
        "INSERT INTO flip_verdict (key, sample_id, verdict, corrected_label, note, author, at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (key, sample_id, verdict, corrected, note, author, time.time()),
        _SCHEMA,
    )


def clear_verdict(key: str, sample_id: str, *, author: str = "", db: str | os.PathLike | None = None) -> None:
    """Withdraw the verdict on ``sample_id`` (an empty row: the history stays)."""
    _check(key, sample_id)
    write(
        db,
        "INSERT INTO flip_verdict (key, sample_id, verdict, corrected_label, note, author, at) "
        "VALUES (?, ?, '', '', '', ?, ?)",
        (key, sample_id, author, time.time()),
        _SCHEMA,
    )


def get_verdicts(key: str, *, db: str | os.PathLike | None = None) -> dict[str, FlipVerdict]:
    """Sample id -> its current verdict (the latest committed row; cleared ones left out)."""
    if not isinstance(key, str) or not key:
        raise ValueError("verdicts need the comparison's key (a non-empty string)")
    with connect(db, _SCHEMA) as con:
        rows = con.execute(
            "SELECT sample_id, verdict, corrected_label, note, author, at FROM flip_verdict "
            "WHERE key = ? ORDER BY rowid",
            (key,),
        ).fetchall()
    latest: dict[str, tuple] = {}
    for r in rows:  # rowid order = commit order (writes are serialised), so the last row wins
        latest[r[0]] = r
    return {sid: FlipVerdict(*r) for sid, r in latest.items() if r[1]}


def verdict_signature(key: str, *, db: str | os.PathLike | None = None) -> tuple[int, float]:
    """(rows, latest time) of the verdicts of ``key``: changes whenever a verdict is written."""
    with connect(db, _SCHEMA) as con:
        n, at = con.execute("SELECT COUNT(*), MAX(at) FROM flip_verdict WHERE key = ?", (key,)).fetchone()
    return int(n), float(at or 0.0)


@dataclass(frozen=True)
class VerdictCounts:
    """Verdicts on the negative flips of a comparison, and the NFR without the "label wrong" ones.

    ``negative_flip_rate_excluding_label_wrong`` leaves the images marked "label wrong"
    out of both counts: ``(NF - NF_label_wrong) / (N - label_wrong)``.
    """

    n_negative_flips: int
    reviewed: int
    by_verdict: dict[str, int]
    n_samples: int
    label_wrong: int
    negative_flip_rate_excluding_label_wrong: float
    ci95: tuple[float, float]

    def sentence(self) -> str:
        """e.g. "of 205 negative flips: 120 reviewed: 70 real regression, 38 label wrong, 12 ambiguous"."""
        parts = ", ".join(f"{self.by_verdict[v]} {v}" for v in FLIP_VERDICTS if self.by_verdict.get(v))
        return f"of {self.n_negative_flips} negative flips: {self.reviewed} reviewed" + (f": {parts}" if parts else "")

    def to_json(self) -> dict[str, Any]:
        return {
            "n_negative_flips": self.n_negative_flips,
            "reviewed": self.reviewed,
            "by_verdict": {v: self.by_verdict.get(v, 0) for v in FLIP_VERDICTS},
            "negative_flip_rate_excluding_label_wrong": self.negative_flip_rate_excluding_label_wrong,
            "negative_flip_rate_excluding_label_wrong_ci95": list(self.ci95),
        }


def verdict_counts(verdicts: dict[str, FlipVerdict], negative_flip_ids: Any, n_samples: int) -> VerdictCounts:
    """Count the verdicts on the negative flips and the NFR without the images marked "label wrong".

    Every image marked "label wrong" (a negative flip or not) leaves the denominator; only
    negative flips leave the numerator.

    >>> v = {"a": FlipVerdict("a", "label wrong", "", "", "", 0.0), "b": FlipVerdict("b", "real regression", "", "", "", 0.0)}
    >>> c = verdict_counts(v, ["a", "b", "c"], 100)
    >>> c.sentence(), round(c.negative_flip_rate_excluding_label_wrong, 4)
    ('of 3 negative flips: 2 reviewed: 1 real regression, 1 label wrong', 0.0202)
    """
    neg = {str(i) for i in np.asarray(negative_flip_ids, dtype=object).tolist()}
    on_neg = [v.verdict for sid, v in verdicts.items() if sid in neg]
    by = Counter(on_neg)
    wrong = sum(1 for v in verdicts.values() if v.verdict == "label wrong")
    nf_kept, n_kept = len(neg) - by.get("label wrong", 0), n_samples - wrong
    rate = nf_kept / n_kept if n_kept > 0 else float("nan")
    return VerdictCounts(
        len(neg),
        len(on_neg),
        dict(by),
        n_samples,
        wrong,
        rate,
        wilson_interval(nf_kept, n_kept) if n_kept > 0 else (float("nan"), float("nan")),
    )


def verdicts_to_json(verdicts: dict[str, FlipVerdict], counts: VerdictCounts | None = None) -> dict[str, Any]:
    """The report's ``flip_verdicts``: ``verdicts`` (one object per image, by id) and the ``counts``."""
    out: dict[str, Any] = {"verdicts": [verdicts[s].to_json() for s in sorted(verdicts)]}
    if counts is not None:
        out["counts"] = counts.to_json()
    return out


def corrected_labels_csv(
    verdicts: dict[str, FlipVerdict], given: dict[str, str], suggested: dict[str, str] | None = None
) -> bytes:
    """CSV for the dataset's owners: ``id, given_label, corrected_label, note, author`` of every "label wrong".

    ``given`` maps ids to their current labels; the corrected label is the reviewer's, else
    the class both models prefer (``suggested``), else empty.

    >>> v = {"a": FlipVerdict("a", "label wrong", "", "T-shirt", "", 1.0)}
    >>> corrected_labels_csv(v, {"a": "Shirt"}, {"a": "T-shirt/top"}).decode().splitlines()
    ['id,given_label,corrected_label,note,author', 'a,Shirt,T-shirt/top,T-shirt,']
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "given_label", "corrected_label", "note", "author"])
    for sid in sorted(verdicts):
        v = verdicts[sid]
        if v.verdict != "label wrong":
            continue
        w.writerow([sid, given.get(sid, ""), v.corrected_label or (suggested or {}).get(sid, ""), v.note, v.author])
    return buf.getvalue().encode("utf-8")
