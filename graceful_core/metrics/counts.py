"""Sufficient statistics of a comparison: the joint counts of (label, old, new).

Every flip metric of ``docs/metrics.md`` (accuracies, NFR, PFR, relative NFR, NFI,
BTC, BEC, old-error persistence, McNemar's discordant counts, the transition matrix and
the per-class table) is a function of one integer array

    C[y, a, b] = Σ_i 1[y_i = y ∧ o_i = a ∧ n_i = b]        shape (K, K, K)

so a comparison can be computed in pieces (row groups of a table streamed from disk,
shards written by many workers) and merged exactly by adding the pieces' arrays.
:class:`FlipCounts` holds that array and derives the counts; the rates are the
functions of :mod:`graceful_core.metrics.flips` and :mod:`~graceful_core.metrics.compatibility`
applied to these counts (one formula each, written once).

Examples
--------
>>> import numpy as np
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

__all__ = ["FlipCounts"]


@dataclass(frozen=True, eq=False)
class FlipCounts:
    """Joint counts ``joint[y, a, b]`` of (true label, old prediction, new prediction).

    Attributes
    ----------
    joint : np.ndarray
        int64, shape (K, K, K), read-only.
    negative_flips_near_boundary, negative_flips_confident : int or None
        The flip-confidence split (``docs/metrics.md``): among negative flips, how many
        dropped the true class's probability by less than 0.1, and by at least 0.5. None
        when a side has no class scores. Additive like ``joint``.
    """

    joint: np.ndarray
    negative_flips_near_boundary: int | None = None
    negative_flips_confident: int | None = None

    def __post_init__(self) -> None:
        j = np.asarray(self.joint)
        if j.ndim != 3 or not (j.shape[0] == j.shape[1] == j.shape[2]) or j.shape[0] < 1:
            raise ValueError(f"joint must have shape (K, K, K) with K >= 1, got {j.shape}")
        if j.dtype.kind not in "iu":
            raise ValueError(f"joint must hold integer counts, got dtype {j.dtype}")
        if j.size and j.min() < 0:
            raise ValueError("joint must hold non-negative counts")
        j = np.array(j, dtype=np.int64, copy=True)
        j.setflags(write=False)
        object.__setattr__(self, "joint", j)

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

        One ``np.bincount`` over ``y·K² + o·K + n``: O(N) time, O(K³) memory.
        """
        from graceful_core.metrics.flips import _check_n_classes, _check_range, validate_predictions

        k = _check_n_classes(n_classes)
        y, o, n = validate_predictions(y_true, old_pred, new_pred)
        for arr, name in ((y, "y_true"), (o, "old_pred"), (n, "new_pred")):
            _check_range(arr, name, k)
        flat = (y * k + o) * k + n
        joint = np.bincount(flat, minlength=k**3).reshape(k, k, k)
        return cls(joint, negative_flips_near_boundary, negative_flips_confident)

    @classmethod
    def zeros(cls, n_classes: int, *, with_confidence: bool = False) -> FlipCounts:
        """Empty counts for K classes (the identity of ``+``)."""
        z = 0 if with_confidence else None
        return cls(np.zeros((n_classes,) * 3, dtype=np.int64), z, z)

    def __add__(self, other: FlipCounts) -> FlipCounts:
        """Merge the counts of two disjoint sets of samples (exact)."""
        if not isinstance(other, FlipCounts):
            return NotImplemented
        if other.joint.shape != self.joint.shape:
            raise ValueError(f"cannot add counts of {self.n_classes} and {other.n_classes} classes")

        def add(a: int | None, b: int | None) -> int | None:
            return None if a is None or b is None else a + b

        return FlipCounts(
            self.joint + other.joint,
            add(self.negative_flips_near_boundary, other.negative_flips_near_boundary),
            add(self.negative_flips_confident, other.negative_flips_confident),
        )

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, FlipCounts)
            and np.array_equal(self.joint, other.joint)
            and self.negative_flips_near_boundary == other.negative_flips_near_boundary
            and self.negative_flips_confident == other.negative_flips_confident
        )

    __hash__ = None  # type: ignore[assignment]  # mutable-looking array content: not hashable

    # ------------------------------------------------------------------ counts
    @property
    def n_classes(self) -> int:
        return int(self.joint.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.joint.sum())

    @property
    def old_correct_per_class(self) -> np.ndarray:
        """``Σ_i 1[y_i = c ∧ o_i = c]`` per class c."""
        k = np.arange(self.n_classes)
        return self.joint[k, k, :].sum(axis=1)

    @property
    def new_correct_per_class(self) -> np.ndarray:
        """``Σ_i 1[y_i = c ∧ n_i = c]`` per class c."""
        k = np.arange(self.n_classes)
        return self.joint[k, :, k].sum(axis=1)

    @property
    def both_correct_per_class(self) -> np.ndarray:
        """``Σ_i 1[y_i = o_i = n_i = c]`` per class c."""
        k = np.arange(self.n_classes)
        return self.joint[k, k, k]

    @property
    def support_per_class(self) -> np.ndarray:
        """``Σ_i 1[y_i = c]`` per class c."""
        return self.joint.sum(axis=(1, 2))

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
        return self.joint.sum(axis=0)
