"""The additive pieces of a streamed comparison: per-slice counts and capped flip-id lists.

The joint counts of (label, old, new) are :class:`graceful_core.metrics.counts.FlipCounts`;
this module adds what a report needs besides them and what also merges exactly:

- :class:`SliceSums`: per slice, the support and the correct counts of both models,
  from which negative and positive flips follow (``docs/metrics.md``: per-slice versions
  restrict the sums to the slice's samples);
- :class:`CappedIds`: how many negative (or positive) flips there are and the first
  ``cap`` of their ids in sort order (the whole list goes to a Parquet file).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from graceful_core.io.arrow_compute import pc

__all__ = ["SliceSums", "CappedIds", "SmallestIds"]


def _frozen(a) -> np.ndarray:
    out = np.array(a, dtype=np.int64, copy=True).reshape(-1)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class SliceSums:
    """Per-slice counts, merged exactly by ``+``.

    For slice s with samples S: ``support[s] = |S|``,
    ``old_correct[s] = Σ_{i∈S} 1[o_i = y_i]``, ``new_correct[s] = Σ_{i∈S} 1[n_i = y_i]``,
    ``both_correct[s] = Σ_{i∈S} 1[o_i = y_i ∧ n_i = y_i]``; then
    ``negative_flips = old_correct − both_correct`` and
    ``positive_flips = new_correct − both_correct`` (the per-slice restriction of the
    flip counts of ``docs/metrics.md``).

    Attributes
    ----------
    names : tuple of str
        Slice names, sorted.
    support, old_correct, new_correct, both_correct : np.ndarray
        int64, one entry per name, read-only.

    Examples
    --------
    >>> a = SliceSums.from_rows(["x", "y", "x"], [0, 1, 1], [0, 1, 0], [1, 1, 1])
    >>> b = SliceSums.from_rows(["y"], [0], [1], [0])
    >>> s = a + b
    >>> s.names, s.support.tolist(), s.negative_flips.tolist(), s.positive_flips.tolist()
    (('x', 'y'), [2, 2], [1, 0], [1, 1])
    """

    names: tuple[str, ...]
    support: np.ndarray
    old_correct: np.ndarray
    new_correct: np.ndarray
    both_correct: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.names)
        for f in ("support", "old_correct", "new_correct", "both_correct"):
            a = _frozen(getattr(self, f))
            if a.shape != (n,):
                raise ValueError(f"{f} must have one entry per slice name ({n}), got shape {a.shape}")
            object.__setattr__(self, f, a)
        object.__setattr__(self, "names", tuple(str(x) for x in self.names))

    @classmethod
    def empty(cls) -> SliceSums:
        z = np.zeros(0, dtype=np.int64)
        return cls((), z, z, z, z)

    @classmethod
    def from_rows(cls, slices, y, o, n) -> SliceSums:
        """Counts of one batch: ``slices`` (strings, Arrow or array-like) and class indices."""
        arr = slices if isinstance(slices, pa.Array) else pa.array(np.asarray(slices, dtype=object), type=pa.string())
        enc = pc.dictionary_encode(arr)
        codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        names = enc.dictionary.to_pylist()
        y, o, n = (np.asarray(a, dtype=np.int64) for a in (y, o, n))
        old_ok, new_ok = o == y, n == y
        m = len(names)

        def count(mask=None) -> np.ndarray:
            c = codes if mask is None else codes[mask]
            return np.bincount(c, minlength=m)

        order = sorted(range(m), key=lambda j: names[j])
        parts = [count(), count(old_ok), count(new_ok), count(old_ok & new_ok)]
        return cls(tuple(names[j] for j in order), *(p[order] for p in parts))

    def __add__(self, other: SliceSums) -> SliceSums:
        if not isinstance(other, SliceSums):
            return NotImplemented
        names = sorted(set(self.names) | set(other.names))
        pos = {s: j for j, s in enumerate(names)}
        out = [np.zeros(len(names), dtype=np.int64) for _ in range(4)]
        for src in (self, other):
            idx = np.array([pos[s] for s in src.names], dtype=np.int64)
            for acc, f in zip(out, ("support", "old_correct", "new_correct", "both_correct")):
                np.add.at(acc, idx, getattr(src, f))
        return SliceSums(tuple(names), *out)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, SliceSums)
            and self.names == other.names
            and all(
                np.array_equal(getattr(self, f), getattr(other, f))
                for f in ("support", "old_correct", "new_correct", "both_correct")
            )
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def negative_flips(self) -> np.ndarray:
        """``Σ_{i∈S} 1[o_i = y_i ∧ n_i ≠ y_i]`` per slice."""
        return self.old_correct - self.both_correct

    @property
    def positive_flips(self) -> np.ndarray:
        """``Σ_{i∈S} 1[o_i ≠ y_i ∧ n_i = y_i]`` per slice."""
        return self.new_correct - self.both_correct


@dataclass(frozen=True)
class CappedIds:
    """One kind of flip (negative or positive): its count and its first ids in sort order.

    Attributes
    ----------
    count : int
        How many samples flipped this way.
    first : tuple of str
        The ``min(count, cap)`` smallest ids in code-point order (Python's ``sorted``).
    cap : int
        The most ids kept in ``first``.
    """

    count: int
    first: tuple[str, ...]
    cap: int

    @property
    def complete(self) -> bool:
        """True when ``first`` holds every flipped id."""
        return len(self.first) == self.count


class SmallestIds:
    """Keeps the ``cap`` smallest of the ids it is given (a running top-k in sort order)."""

    def __init__(self, cap: int) -> None:
        if cap < 0:
            raise ValueError(f"cap must be >= 0, got {cap}")
        self.cap = int(cap)
        self.count = 0
        self._kept = pa.array([], type=pa.string())

    def add(self, ids: pa.Array) -> None:
        self.count += len(ids)
        if self.cap == 0 or len(ids) == 0:
            return
        ids = ids.cast(pa.string())
        if len(self._kept) >= self.cap:  # only ids below the current largest kept one matter
            last = self._kept[len(self._kept) - 1]
            ids = ids.filter(pc.less(ids, last))
            if len(ids) == 0:
                return
        both = pa.concat_arrays([self._kept, ids])
        self._kept = both.take(pc.sort_indices(both)[: self.cap])

    def result(self) -> CappedIds:
        return CappedIds(self.count, tuple(self._kept.to_pylist()), self.cap)
