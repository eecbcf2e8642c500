"""Duplicate-id detection over tables read in batches, in bounded memory.

Every id is hashed to 64 bits (:func:`graceful_core.streaming.kernels.hash_strings`);
the hashes are kept in memory up to a budget, beyond which they are partitioned by
their top byte into 256 files on disk (an external hash partitioning). At the end
each partition is sorted and equal neighbours are *candidate* duplicates: equal ids
always hash alike, and different ids collide with probability about 2**-64 per pair.
The caller confirms candidates on the id strings by reading the ids once more
(:func:`confirm_duplicate`), so a reported duplicate is always a real one.

Hashes belong to a *group*: ``"shared"`` for rows of batches whose ids were identical in
both tables (stored once, counted for both), ``"old"`` / ``"new"`` for rows of one
table only. A table's ids are the shared group plus its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import BinaryIO

import numpy as np
import pyarrow as pa

from graceful_core.streaming.kernels import hash_strings

__all__ = ["DuplicateFinder", "confirm_duplicate"]

GROUPS = ("shared", "old", "new")
_N_BUCKETS = 256
#: At most this many candidate hashes are confirmed (a table with more duplicates than
#: that still reports one of them).
MAX_CANDIDATES = 10_000


class DuplicateFinder:
    """Collects id hashes per group; :meth:`candidates` returns hashes seen twice in a table.

    Parameters
    ----------
    spill_dir : str
        Folder for the partition files (created on first spill).
    memory_budget : int
        Bytes of hashes held in memory before they are written to disk (8 bytes per row).
    """

    def __init__(self, spill_dir: str, memory_budget: int = 128 << 20) -> None:
        self.spill_dir = spill_dir
        self.memory_budget = int(memory_budget)
        self._parts: dict[str, list[np.ndarray]] = {g: [] for g in GROUPS}
        self._in_memory = 0
        self._spilled = False
        self._shared_only: np.ndarray | None = None
        self.spilled_bytes = 0

    def add(self, group: str, hashes: np.ndarray) -> None:
        """Remember ``hashes`` (uint64) of rows of ``group``."""
        if group not in self._parts:
            raise ValueError(f"group must be one of {GROUPS}, got {group!r}")
        h = np.ascontiguousarray(hashes, dtype=np.uint64)
        if h.size == 0:
            return
        self._parts[group].append(h)
        self._shared_only = None
        self._in_memory += h.nbytes
        if self._in_memory > self.memory_budget:
            self._spill()

    def add_ids(self, group: str, ids: pa.Array) -> None:
        """Hash a string array of ids and remember the hashes."""
        self.add(group, hash_strings(ids))

    # ------------------------------------------------------------------ disk
    def _bucket_file(self, group: str, bucket: int) -> str:
        return os.path.join(self.spill_dir, f"ids-{group}-{bucket:03d}.u64")

    def _spill(self) -> None:
        """Append every in-memory hash to its partition file (part by part: small temporaries)."""
        os.makedirs(self.spill_dir, exist_ok=True)
        for group, parts in self._parts.items():
            if not parts:
                continue
            files: dict[int, BinaryIO] = {}
            try:
                for h in parts:
                    bucket = (h >> np.uint64(56)).astype(np.uint8)
                    order = np.argsort(bucket, kind="stable")
                    hs = h[order]
                    ends = np.cumsum(np.bincount(bucket, minlength=_N_BUCKETS))
                    start = 0
                    for b in np.flatnonzero(np.diff(ends, prepend=0)).tolist():
                        end = int(ends[b])
                        f = files.get(b) or files.setdefault(b, open(self._bucket_file(group, b), "ab"))
                        f.write(hs[start:end].tobytes())
                        start = end
                    self.spilled_bytes += h.nbytes
            finally:
                for f in files.values():
                    f.close()
            parts.clear()
        self._in_memory = 0
        self._spilled = True

    # ---------------------------------------------------------------- result
    def candidates(self, side: str) -> np.ndarray:
        """Sorted distinct hashes that occur more than once among the ids of table ``side``.

        ``side`` is ``"old"`` or ``"new"``; its ids are the ``"shared"`` group plus its own.
        At most :data:`MAX_CANDIDATES` are returned.
        """
        if side not in ("old", "new"):
            raise ValueError(f"side must be 'old' or 'new', got {side!r}")
        if not self._spilled:
            if not self._parts[side]:  # only shared rows: one answer for both tables
                if self._shared_only is None:
                    self._shared_only = _repeated(_concat(self._parts["shared"]))[:MAX_CANDIDATES]
                return self._shared_only
            return _repeated(_concat(self._parts["shared"] + self._parts[side]))[:MAX_CANDIDATES]
        if self._in_memory:
            self._spill()
        found: list[np.ndarray] = []
        n_found = 0
        for b in range(_N_BUCKETS):
            chunks = [
                np.fromfile(p, dtype=np.uint64)
                for g in ("shared", side)
                if os.path.exists(p := self._bucket_file(g, b))
            ]
            if not chunks:
                continue
            rep = _repeated(np.concatenate(chunks))
            if rep.size:
                found.append(rep)
                n_found += rep.size
                if n_found >= MAX_CANDIDATES:
                    break
        return np.concatenate(found)[:MAX_CANDIDATES] if found else np.zeros(0, dtype=np.uint64)


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)


def _repeated(h: np.ndarray) -> np.ndarray:
    """Distinct values occurring more than once in ``h`` (sorted; ``h`` is sorted in place)."""
    h.sort()
    same = h[1:] == h[:-1]
    return np.unique(h[1:][same])


def confirm_duplicate(
    candidates: np.ndarray, id_batches: Iterable[pa.Array], on_batch: Callable[[], None] | None = None
) -> str | None:
    """The smallest id (in sort order) that occurs twice, among ids with a candidate hash.

    Parameters
    ----------
    candidates : np.ndarray
        uint64 hashes from :meth:`DuplicateFinder.candidates`.
    id_batches : iterable of pyarrow string arrays
        All ids of the table, read again.

    Returns
    -------
    str or None
        None when every candidate was a hash collision of different ids.
    """
    if candidates.size == 0:
        return None
    seen: dict[str, int] = {}
    for ids in id_batches:
        h = hash_strings(ids)
        rows = np.flatnonzero(np.isin(h, candidates))
        for s in ids.take(pa.array(rows, type=pa.int64())).to_pylist():
            seen[s] = seen.get(s, 0) + 1
        if on_batch is not None:
            on_batch()
    dups = [s for s, c in seen.items() if c > 1]
    return min(dups) if dups else None
