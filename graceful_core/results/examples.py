"""Small results to show an API with: the examples of the report's docstrings build on them.

Examples
--------
>>> comp = small_comparison()
>>> comp.summary.n_negative_flips, comp.summary.n_positive_flips, comp.flip_ids.negative
(3, 0, ('0', '2', '3'))
"""

from __future__ import annotations

import numpy as np

from graceful_core.metrics.counts import FlipCounts
from graceful_core.results.comparison import Comparison, FlipIds

__all__ = ["small_comparison"]


def small_comparison() -> Comparison:
    """Old model "a" and new model "b" on six images of three classes (cat, dog, owl), as counts only.

    =====  =====  =====  =====  =====  =====  =====
    image  0      1      2      3      4      5
    =====  =====  =====  =====  =====  =====  =====
    label  cat    cat    dog    dog    dog    owl
    old    cat    cat    dog    dog    dog    owl
    new    dog    cat    cat    owl    dog    owl
    =====  =====  =====  =====  =====  =====  =====

    The old model gets all six right; the new one breaks images 0, 2 and 3 (negative flips:
    one cat, two dogs) and fixes none. No per-sample arrays, as a streamed comparison.
    """
    y = np.array([0, 0, 1, 1, 1, 2])
    old = np.array([0, 0, 1, 1, 1, 2])
    new = np.array([1, 0, 0, 2, 1, 2])
    counts = FlipCounts.from_predictions(y, old, new, 3)
    return Comparison("a", "b", ("cat", "dog", "owl"), counts, FlipIds.complete(["0", "2", "3"], []))
