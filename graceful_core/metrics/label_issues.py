"""Label issues: which labelled samples look mislabelled or ambiguous, from both models' probabilities.

A negative flip counts an image whose label the old model matched and the new one does
not; when the label itself is wrong, the "regression" is the new model being right. Both
models' class probabilities on a held-out test set are *out-of-sample* probabilities, the
input of confident learning (Northcutt, Jiang & Chuang, "Confident Learning: Estimating
Uncertainty in Dataset Labels", JAIR 70, 2021). This module applies it through the
cleanlab library (``docs/metrics.md``, "Label issues"):

- the probabilities are the mean of the two models' (``p = (p_old + p_new) / 2``): an
  image is suspicious when *both* models disagree with its label, not when one of them
  is merely wrong;
- the label-quality score is cleanlab's ``get_label_quality_scores`` with
  ``method="self_confidence"``: ``p[i, y_i]``, the mean probability of the given label
  (0 = surely wrong, 1 = surely right);
- the flag "label may be wrong" is cleanlab's ``find_label_issues`` with its default
  ``filter_by="prune_by_noise_rate"``: the confident joint of given and likely true
  labels estimates how many labels of each class are off, and that many of the lowest
  margins ``p[i, j] - p[i, y_i]`` per off-diagonal cell are flagged;
- "ambiguous" (not a verdict on the label, a fact about the image): both models put at
  least :data:`AMBIGUITY_MIN_P` on each of the same two classes, and those are each
  model's two most probable classes, e.g. a top that is 55 % T-shirt, 40 % Shirt under
  both models.

Everything is per sample and in the rows' order; nothing here knows about files.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from graceful_core.metrics.confidence import softmax
from graceful_core.metrics.significance import wilson_interval

__all__ = [
    "LabelIssues",
    "find_label_issues",
    "ambiguous_pairs",
    "AMBIGUITY_MIN_P",
    "METHOD",
    "label_issues_of_comparison",
    "label_issues_to_json",
    "negative_flip_rate_excluding",
]

#: Each of the two classes of an ambiguous image gets at least this probability from both models.
AMBIGUITY_MIN_P = 0.2
#: The method, as stated in the JSON report's ``label_issues.method``.
METHOD = (
    "confident learning (Northcutt et al., JAIR 2021) with cleanlab 2.x on the mean of both models' class "
    "probabilities: flag = cleanlab.filter.find_label_issues(filter_by='prune_by_noise_rate'), "
    "label quality = cleanlab.rank.get_label_quality_scores(method='self_confidence')"
)
#: Fewer labelled samples per class than this and confident learning is not run (its per-class
#: thresholds would rest on a handful of images).
MIN_PER_CLASS = 5


@dataclass(frozen=True, eq=False)
class LabelIssues:
    """Per-sample label-issue results, in the comparison's row order (read-only arrays).

    Attributes
    ----------
    method : str
        How the scores were obtained (:data:`METHOD`).
    quality : np.ndarray
        float ``[N]``: mean probability of the given label (1 = the models agree with it).
    flagged : np.ndarray
        bool ``[N]``: "label may be wrong" (confident learning).
    ambiguous : np.ndarray
        bool ``[N]``: both models split between the same two classes.
    likely : np.ndarray
        int64 ``[N, 2]``: the two most probable classes under the mean probabilities,
        most probable first (column 0 is the class the models suggest instead of a
        flagged label).
    """

    method: str
    quality: np.ndarray
    flagged: np.ndarray
    ambiguous: np.ndarray
    likely: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.quality)
        for name in ("quality", "flagged", "ambiguous", "likely"):
            a = np.asarray(getattr(self, name)).view()
            if len(a) != n:
                raise ValueError(f"{name} has {len(a)} rows, quality {n}")
            a.setflags(write=False)
            object.__setattr__(self, name, a)

    def __len__(self) -> int:
        return int(self.quality.shape[0])

    @property
    def n_flagged(self) -> int:
        return int(self.flagged.sum())

    @property
    def n_ambiguous(self) -> int:
        return int(self.ambiguous.sum())

    @property
    def suggested(self) -> np.ndarray:
        """int64 ``[N]``: the class both models prefer on average (argmax of the mean probabilities)."""
        return self.likely[:, 0]

    def flagged_order(self) -> np.ndarray:
        """Rows of the flagged samples, lowest label quality first (ties by row)."""
        rows = np.flatnonzero(self.flagged)
        return rows[np.argsort(self.quality[rows], kind="stable")]


def _check_probs(p: Any, name: str, n: int, k: int) -> np.ndarray:
    a = np.asarray(p, dtype=np.float64)
    if a.shape != (n, k):
        raise ValueError(f"{name} must have shape ({n}, {k}), got {a.shape}")
    if not np.isfinite(a).all() or (a < 0).any():
        raise ValueError(f"{name} must be finite and non-negative")
    s = a.sum(axis=1, keepdims=True)
    if (s <= 0).any():
        raise ValueError(f"{name} has a row without probability mass")
    return a / s


def ambiguous_pairs(old_probs: Any, new_probs: Any, min_p: float = AMBIGUITY_MIN_P) -> np.ndarray:
    """bool ``[N]``: both models' two most probable classes are the same pair, each class at least ``min_p``.

    >>> old = np.array([[0.55, 0.40, 0.05], [0.9, 0.05, 0.05], [0.5, 0.4, 0.1]])
    >>> new = np.array([[0.35, 0.60, 0.05], [0.5, 0.45, 0.05], [0.5, 0.1, 0.4]])
    >>> ambiguous_pairs(old, new).tolist()
    [True, False, False]
    """
    o, n = np.asarray(old_probs, dtype=np.float64), np.asarray(new_probs, dtype=np.float64)
    if o.shape != n.shape or o.ndim != 2 or o.shape[1] < 2:
        raise ValueError(f"both probability arrays must be [N, K] with K >= 2, got {o.shape} and {n.shape}")
    top_o = np.argsort(-o, axis=1, kind="stable")[:, :2]
    top_n = np.argsort(-n, axis=1, kind="stable")[:, :2]
    same = np.sort(top_o, axis=1) == np.sort(top_n, axis=1)
    rows = np.arange(len(o))
    second_o = o[rows, top_o[:, 1]]
    second_n = n[rows, top_n[:, 1]]
    return same.all(axis=1) & (second_o >= min_p) & (second_n >= min_p)


def find_label_issues(labels: Any, old_probs: Any, new_probs: Any) -> LabelIssues:
    """Label quality, "label may be wrong" and "ambiguous" for every sample (module docstring).

    Parameters
    ----------
    labels : array_like of int, shape (N,)
        Given labels, class indices into the probability columns.
    old_probs, new_probs : array_like, shape (N, K)
        Each model's class probabilities (rows are renormalised to sum to 1).

    Raises
    ------
    ValueError
        Shapes that do not match, labels out of range, non-finite probabilities, fewer
        than :data:`MIN_PER_CLASS` samples of a labelled class, or fewer than 2 classes.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(np.arange(3), 20)
    >>> p = np.full((60, 3), 0.05); p[np.arange(60), y] = 0.9
    >>> p[7] = [0.02, 0.96, 0.02]   # labelled 0, both models say 1
    >>> li = find_label_issues(y, p, p)
    >>> np.flatnonzero(li.flagged).tolist(), int(li.suggested[7]), round(float(li.quality[7]), 2)
    ([7], 1, 0.02)
    """
    y = np.asarray(labels)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError(f"labels must be a 1-D integer array, got shape {y.shape} and dtype {y.dtype}")
    y = y.astype(np.int64)
    n = len(y)
    k = np.asarray(old_probs).shape[1] if np.asarray(old_probs).ndim == 2 else 0
    if k < 2:
        raise ValueError("label issues need class probabilities over at least 2 classes")
    po, pn = _check_probs(old_probs, "old_probs", n, k), _check_probs(new_probs, "new_probs", n, k)
    if n and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"labels must be in [0, {k}), got values in [{y.min()}, {y.max()}]")
    support = np.bincount(y, minlength=k)
    thin = [int(c) for c in np.flatnonzero((support > 0) & (support < MIN_PER_CLASS))]
    if thin:
        raise ValueError(
            f"class index {thin[0]} has {int(support[thin[0]])} labelled samples; confident learning "
            f"needs at least {MIN_PER_CLASS} of every labelled class"
        )
    p = (po + pn) / 2.0
    from cleanlab.filter import find_label_issues as cl_find
    from cleanlab.rank import get_label_quality_scores

    with warnings.catch_warnings():  # cleanlab warns about absent classes: the columns are the models' classes
        warnings.simplefilter("ignore")
        # n_jobs=1: the machine's cores are shared and 10,000 samples take a fraction of a second anyway
        flagged = cl_find(y, p, filter_by="prune_by_noise_rate", n_jobs=1) if n else np.zeros(0, bool)
        quality = get_label_quality_scores(y, p, method="self_confidence") if n else np.zeros(0)
    likely = np.argsort(-p, axis=1, kind="stable")[:, :2].astype(np.int64)
    return LabelIssues(
        method=METHOD,
        quality=np.asarray(quality, dtype=np.float64),
        flagged=np.asarray(flagged, dtype=bool),
        ambiguous=ambiguous_pairs(po, pn),
        likely=likely,
    )


def negative_flip_rate_excluding(negative_flip: Any, excluded: Any) -> tuple[float, tuple[float, float], int, int]:
    """NFR over the samples not ``excluded``: ``(NF outside / N outside, Wilson 95 % CI, NF outside, N outside)``.

    Leaving a sample out removes it from both counts: an image whose label is wrong is
    neither a regression nor part of the set the rate is over.

    >>> nf = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], bool)
    >>> rate, ci, k, n = negative_flip_rate_excluding(nf, np.arange(10) == 0)
    >>> round(rate, 4), k, n
    (0.1111, 1, 9)
    """
    nf, ex = np.asarray(negative_flip, dtype=bool), np.asarray(excluded, dtype=bool)
    if nf.shape != ex.shape:
        raise ValueError(f"negative_flip has shape {nf.shape}, excluded {ex.shape}")
    kept = ~ex
    k, n = int((nf & kept).sum()), int(kept.sum())
    return (k / n if n else float("nan")), wilson_interval(k, n), k, n


def label_issues_of_comparison(labels: np.ndarray, old: Any, new: Any) -> dict[str, Any]:
    """The ``label_issues`` / ``label_issues_reason`` keywords of a comparison built in memory.

    ``old`` and ``new`` are the joined :class:`~graceful_core.types.Predictions` (rows in
    the order of ``labels``). Without class scores on both sides there is nothing to
    compute and nothing to report (the report's key is absent, as ``compatibility`` is
    without embeddings); when confident learning cannot run (a class with too few
    samples), the reason is given instead.
    """
    if old.scores is None or new.scores is None:
        return {}
    try:
        li = find_label_issues(labels, softmax(old.scores, old.score_kind), softmax(new.scores, new.score_kind))
    except ValueError as e:
        return {"label_issues_reason": f"label issues not computed: {e}"}
    return {"label_issues": li}


def label_issues_to_json(
    li: LabelIssues | None, reason: str | None, ids: Any = None, negative_flip: Any = None
) -> dict[str, Any]:
    """The JSON report's ``label_issues`` object (``docs/metrics.md``, "Label issues").

    ``{"reason": ...}`` without results; else ``method``, ``n_flagged``, ``flagged`` (every
    flagged id, lowest label quality first, like the complete flip lists of an in-memory
    comparison), ``n_ambiguous``, ``negative_flips_flagged``, ``negative_flips_ambiguous``,
    ``negative_flip_rate_excluding_flagged`` and its ``..._ci95`` (NFR over the samples
    not flagged) and ``n_samples_not_flagged``.
    """
    if li is None:
        return {"reason": reason or "label issues not computed"}
    ids = np.asarray(ids)
    nf = np.asarray(negative_flip, dtype=bool)
    rate, ci, _, n_kept = negative_flip_rate_excluding(nf, li.flagged)
    return {
        "method": li.method,
        "n_flagged": li.n_flagged,
        "flagged": [str(i) for i in ids[li.flagged_order()].tolist()],
        "n_ambiguous": li.n_ambiguous,
        "negative_flips_flagged": int((nf & li.flagged).sum()),
        "negative_flips_ambiguous": int((nf & li.ambiguous).sum()),
        "negative_flip_rate_excluding_flagged": rate,
        "negative_flip_rate_excluding_flagged_ci95": list(ci),
        "n_samples_not_flagged": n_kept,
    }
