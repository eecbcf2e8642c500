"""Sufficient statistics of a comparison: additive counts of (label, old, new).

Every flip metric of ``docs/metrics.md`` (accuracies, NFR, PFR, relative NFR, NFI,
BTC, BEC, old-error persistence, McNemar's discordant counts, the transition matrix and
the per-class table) is a function of two small integer arrays:

    T[a, b]       = Σ_i 1[o_i = a ∧ n_i = b]                       (K × K, the transition matrix)
    P[:, c]       = Σ_i 1[y_i = c] · (1, 1[o_i = c], 1[n_i = c], 1[o_i = n_i = c])   (4 × K)

(rows of P: support, old correct, new correct, both correct, per true class c). Both are
sums over samples, so a comparison can be computed in pieces (row groups of a table
streamed from disk, shards written by many workers) and merged exactly by adding the
pieces' arrays. The storage is K² + 4K integers: 8 MB for 1,000 classes.
:class:`FlipCounts` holds them and derives the counts; the rates are the functions of
:mod:`graceful_core.metrics.flips` and :mod:`~graceful_core.metrics.compatibility` applied
to these counts (one formula each, written once).

Examples
--------
>>> c = FlipCounts.from_predictions([0, 1, 1, 0], [0, 1, 0, 0], [1, 1, 1, 0], n_classes=2)
>>> c.n_samples, c.negative_flips, c.positive_flips
(4, 1, 1)
>>> (c + c).negative_flips
2
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from graceful_core.metrics.flips import _check_n_classes, _check_range, validate_predictions

__all__ = ["FlipCounts"]

#: Rows of :attr:`FlipCounts.per_class`.
PER_CLASS_ROWS = ("support", "old_correct", "new_correct", "both_correct")


def _frozen_counts(values: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    a = np.asarray(values)
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer counts, got dtype {a.dtype}")
    if a.size and a.min() < 0:
        raise ValueError(f"{name} must hold non-negative counts")
    a = np.array(a, dtype=np.int64, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class FlipCounts:
    """Additive counts of (true label, old prediction, new prediction) triples.

    Attributes
    ----------
    transition : np.ndarray
        int64 ``[K, K]``, read-only: ``T[a, b] = Σ_i 1[o_i = a ∧ n_i = b]``.
    per_class : np.ndarray
        int64 ``[4, K]``, read-only: per true class c, the support ``Σ 1[y_i = c]`` and the
        numbers of its samples the old model, the new model and both got right
        (rows :data:`PER_CLASS_ROWS`).
    negative_flips_near_boundary, negative_flips_confident : int or None
        The flip-confidence split (``docs/metrics.md``): among negative flips, how many
        dropped the true class's probability by less than 0.1, and by at least 0.5. None
        when a side has no class scores. Additive like the arrays.
    """

    transition: np.ndarray
    per_class: np.ndarray
    negative_flips_near_boundary: int | None = None
    negative_flips_confident: int | None = None

    def __post_init__(self) -> None:
        t = np.asarray(self.transition)
        if t.ndim != 2 or t.shape[0] != t.shape[1] or t.shape[0] < 1:
            raise ValueError(f"transition must have shape (K, K) with K >= 1, got {t.shape}")
        k = t.shape[0]
        object.__setattr__(self, "transition", _frozen_counts(t, "transition", (k, k)))
        p = _frozen_counts(self.per_class, "per_class", (len(PER_CLASS_ROWS), k))
        support, old_ok, new_ok, both_ok = p
        if (old_ok > support).any() or (new_ok > support).any() or (both_ok > np.minimum(old_ok, new_ok)).any():
            raise ValueError("per_class counts are inconsistent (more correct samples than support)")
        if int(p[0].sum()) != int(self.transition.sum()):
            raise ValueError("per_class support and transition count different numbers of samples")
        object.__setattr__(self, "per_class", p)

    # ------------------------------------------------------------ construction
    @classmethod
    def from_predictions(
        cls,
        y_true: Any,
        old_pred: Any,
        new_pred: Any,
        n_classes: int,
        *,
        negative_flips_near_boundary: int | None = None,
        negative_flips_confident: int | None = None,
    ) -> FlipCounts:
        """Count ``(y_i, o_i, n_i)`` triples of class indices in ``[0, n_classes)``.

        ``np.bincount`` over ``o·K + n`` and over ``y`` (four masks): O(N) time, O(K²) memory.
        """
        k = _check_n_classes(n_classes)
        y, o, n = validate_predictions(y_true, old_pred, new_pred)
        for arr, name in ((y, "y_true"), (o, "old_pred"), (n, "new_pred")):
            _check_range(arr, name, k)
        transition = np.bincount(o * k + n, minlength=k * k).reshape(k, k)
        old_ok, new_ok = o == y, n == y
        per_class = np.stack(
            [
                np.bincount(y, minlength=k),
                np.bincount(y[old_ok], minlength=k),
                np.bincount(y[new_ok], minlength=k),
                np.bincount(y[old_ok & new_ok], minlength=k),
            ]
        )
        return cls(transition, per_class, negative_flips_near_boundary, negative_flips_confident)

    @classmethod
    def zeros(cls, n_classes: int, *, with_confidence: bool = False) -> FlipCounts:
        """Empty counts for K classes (the identity of ``+``)."""
        z = 0 if with_confidence else None
        return cls(
            np.zeros((n_classes, n_classes), dtype=np.int64),
            np.zeros((len(PER_CLASS_ROWS), n_classes), dtype=np.int64),
            z,
            z,
        )

    def __add__(self, other: FlipCounts) -> FlipCounts:
        """Merge the counts of two disjoint sets of samples (exact)."""
        if not isinstance(other, FlipCounts):
            return NotImplemented
        if other.n_classes != self.n_classes:
            raise ValueError(f"cannot add counts of {self.n_classes} and {other.n_classes} classes")

        def add(a: int | None, b: int | None) -> int | None:
            return None if a is None or b is None else a + b

        return FlipCounts(
            self.transition + other.transition,
            self.per_class + other.per_class,
            add(self.negative_flips_near_boundary, other.negative_flips_near_boundary),
            add(self.negative_flips_confident, other.negative_flips_confident),
        )

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, FlipCounts)
            and np.array_equal(self.transition, other.transition)
            and np.array_equal(self.per_class, other.per_class)
            and self.negative_flips_near_boundary == other.negative_flips_near_boundary
            and self.negative_flips_confident == other.negative_flips_confident
        )

    __hash__ = None  # type: ignore[assignment]  # array content: not hashable

    # ------------------------------------------------------------------ counts
    @property
    def n_classes(self) -> int:
        return int(self.transition.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.transition.sum())

    @property
    def support_per_class(self) -> np.ndarray:
        """``Σ_i 1[y_i = c]`` per class c."""
        return self.per_class[0]

    @property
    def old_correct_per_class(self) -> np.ndarray:
        """``Σ_i 1[y_i = c ∧ o_i = c]`` per class c."""
        return self.per_class[1]

    @property
    def new_correct_per_class(self) -> np.ndarray:
        """``Σ_i 1[y_i = c ∧ n_i = c]`` per class c."""
        return self.per_class[2]

    @property
    def both_correct_per_class(self) -> np.ndarray:
        """``Σ_i 1[y_i = o_i = n_i = c]`` per class c."""
        return self.per_class[3]

    @property
    def negative_flips_per_class(self) -> np.ndarray:
        """``Σ_i 1[y_i = c ∧ o_i = c ∧ n_i ≠ c]`` per class c."""
        return self.old_correct_per_class - self.both_correct_per_class

    @property
    def positive_flips_per_class(self) -> np.ndarray:
        """``Σ_i 1[y_i = c ∧ o_i ≠ c ∧ n_i = c]`` per class c."""
        return self.new_correct_per_class - self.both_correct_per_class

    @property
    def old_correct(self) -> int:
        return int(self.old_correct_per_class.sum())

    @property
    def new_correct(self) -> int:
        return int(self.new_correct_per_class.sum())

    @property
    def both_correct(self) -> int:
        return int(self.both_correct_per_class.sum())

    @property
    def negative_flips(self) -> int:
        """``Σ_i 1[o_i = y_i ∧ n_i ≠ y_i]``."""
        return self.old_correct - self.both_correct

    @property
    def positive_flips(self) -> int:
        """``Σ_i 1[o_i ≠ y_i ∧ n_i = y_i]``."""
        return self.new_correct - self.both_correct

    @property
    def both_wrong(self) -> int:
        """``Σ_i 1[o_i ≠ y_i ∧ n_i ≠ y_i]``."""
        return self.n_samples - self.old_correct - self.positive_flips

    @property
    def transition_matrix(self) -> np.ndarray:
        """``T[a, b] = Σ_i 1[o_i = a ∧ n_i = b]`` (row = old prediction, column = new)."""
        return self.transition
