"""Predictions and true-class probabilities from class scores, and the flip confidence split.

``docs/metrics.md``: where only scores exist, the prediction is the argmax, ties going to the
lowest class index; ``p_true`` is the softmax probability of the true class; among
negative flips, the drop ``p_true(old) - p_true(new)`` separates flips near the decision
boundary (drop < 0.1) from confident ones (drop >= 0.5).

Scores are processed in row chunks so that an ``[N, K]`` float64 temporary is never
materialised for large N.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graceful_core.metrics.flips import as_label_array, validate_predictions

__all__ = [
    "argmax_lowest",
    "softmax",
    "class_probabilities",
    "true_class_probability",
    "flip_confidence_split",
    "flip_confidence_split_from_true_probs",
]

#: Upper bound on the number of score entries handled per chunk (256 Ki -> 2 MB as float64):
#: small enough that a chunk's temporaries stay in the CPU cache (about 1.6x faster than
#: 4 Mi-entry chunks on 10 million rows).
_CHUNK_ENTRIES = 1 << 18

_SCORE_KINDS = ("logits", "probs")


def _check_scores(scores: Any, name: str = "scores") -> np.ndarray:
    """``scores`` as a 2-D numeric array ``[N, K]`` with K >= 1 (no copy), else ValueError."""
    s = np.asarray(scores)
    if s.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [N, K], got shape {s.shape}")
    if s.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be numeric, got dtype {s.dtype}")
    if s.shape[1] == 0:
        raise ValueError(f"{name} has no classes (shape {s.shape})")
    return s


def _row_chunks(n_rows: int, n_cols: int):
    """Yield ``slice`` objects covering ``range(n_rows)`` with about ``_CHUNK_ENTRIES`` entries each."""
    step = max(1, _CHUNK_ENTRIES // max(1, n_cols))
    for start in range(0, n_rows, step):
        yield slice(start, min(n_rows, start + step))


def _raise_if_not_finite(chunk: np.ndarray, name: str) -> None:
    if chunk.dtype.kind == "f" and not np.isfinite(chunk).all():
        raise ValueError(f"{name} contain NaN or infinite values")


def argmax_lowest(scores: Any) -> np.ndarray:
    """Predicted class per row: ``argmax_k scores[i, k]``, ties going to the lowest index.

    ``np.argmax`` returns the first occurrence of the maximum, which is exactly the
    lowest-index tie rule of ``docs/metrics.md``; this wrapper adds validation and a fixed dtype.

    Parameters
    ----------
    scores : array_like, shape (N, K)
        Logits or probabilities (the argmax is the same for both).

    Returns
    -------
    np.ndarray
        int64 ``[N]``.

    Raises
    ------
    ValueError
        If ``scores`` is not 2-D, has no columns, or contains NaN or infinite values
        (message: "scores contain NaN or infinite values").

    Examples
    --------
    >>> argmax_lowest([[0.1, 2.0, 2.0], [3.0, -1.0, 0.0]]).tolist()
    [1, 0]
    """
    s = _check_scores(scores)
    out = np.empty(s.shape[0], dtype=np.int64)
    for rows in _row_chunks(s.shape[0], s.shape[1]):
        chunk = s[rows]
        _raise_if_not_finite(chunk, "scores")
        out[rows] = np.argmax(chunk, axis=1)
    return out


def _exp_shifted(chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """In place: ``chunk <- exp(chunk - m)`` with ``m`` the row maximum; returns ``(m, Σ_k exp(...))`` (float64).

    The one stable softmax of graceful: ``softmax = chunk / total`` (:func:`softmax`), or for a
    single class c ``exp(s_c - m) / total`` (:func:`class_probabilities`).
    """
    r = np.arange(chunk.shape[0])
    m = chunk[r, chunk.argmax(axis=1)]  # the row maximum (faster than max(axis=1) for small K)
    chunk -= m[:, None]
    np.exp(chunk, out=chunk)
    return m.astype(np.float64), chunk.sum(axis=1, dtype=np.float64)


def softmax(scores: Any, kind: str = "logits", dtype: Any = np.float32) -> np.ndarray:
    """Class probabilities ``[N, K]`` of class scores, in row chunks (float32, or ``dtype``).

    For logits ``p_i(c) = exp(s_{i,c} - m_i) / Σ_k exp(s_{i,k} - m_i)`` with ``m_i = max_k s_{i,k}``
    (stable); probabilities are returned as given. ``dtype=np.float64`` computes in float64
    too, which keeps distinct logits distinct after the softmax (the what-if remedies need it).

    Examples
    --------
    >>> softmax([[0.0, 0.0], [0.0, float(np.log(3))]]).round(6).tolist()
    [[0.5, 0.5], [0.25, 0.75]]
    """
    if kind not in _SCORE_KINDS:
        raise ValueError(f"kind must be 'logits' or 'probs', got {kind!r}")
    s = _check_scores(scores)
    if kind == "probs":
        return np.asarray(s, dtype=dtype)
    out = np.empty(s.shape, dtype=dtype)
    work = np.float32 if s.dtype == np.float32 and out.dtype == np.float32 else np.float64
    for rows in _row_chunks(*s.shape):
        chunk = np.array(s[rows], dtype=work)
        _raise_if_not_finite(chunk, "scores")
        _, total = _exp_shifted(chunk)
        out[rows] = chunk / total[:, None]
    return out


def class_probabilities(scores: Any, kind: str, *indices: Any) -> tuple[np.ndarray, ...]:
    """Probability each row's scores give one chosen class, for several choices in one pass.

    For ``kind="logits"`` the softmax is computed stably (float32 scores in float32 with
    float64 sums, anything else in float64):
    ``p_i(c) = exp(s_{i,c} - m_i) / sum_k exp(s_{i,k} - m_i)`` with ``m_i = max_k s_{i,k}``.
    For ``kind="probs"`` the scores are probabilities already and are taken as given:
    ``p_i(c) = s_{i,c}``. Rows are processed in chunks, so no ``[N, K]`` float64
    temporary is built for large N.

    Parameters
    ----------
    scores : array_like, shape (N, K)
    kind : {"logits", "probs"}
    *indices : array_like of int, shape (N,)
        Class indices in ``[0, K)``, one per row (e.g. the true labels, the predictions).

    Returns
    -------
    tuple of np.ndarray
        One float64 ``[N]`` array per index array.

    Examples
    --------
    >>> import numpy as np
    >>> (p,) = class_probabilities(np.log([[0.2, 0.8], [0.5, 0.5]]), "logits", [1, 0])
    >>> p.round(6).tolist()
    [0.8, 0.5]
    """
    if kind not in _SCORE_KINDS:
        raise ValueError(f"kind must be 'logits' or 'probs', got {kind!r}")
    s = _check_scores(scores)
    n_rows, k = s.shape
    idx = []
    for a in indices:
        y = as_label_array(a, "class indices")
        if y.shape[0] != n_rows:
            raise ValueError(f"need one label per row of scores, got {y.shape[0]} labels for {n_rows} rows")
        if y.size and (y.min() < 0 or y.max() >= k):
            raise ValueError(f"class indices outside [0, {k}): min {y.min()}, max {y.max()}")
        idx.append(y)
    outs = tuple(np.empty(n_rows, dtype=np.float64) for _ in idx)
    for rows in _row_chunks(n_rows, k):
        # A fresh copy of the chunk, so the in-place softmax never touches ``scores``; float32
        # scores stay float32 (exp is twice as fast, and the result has float32's 1e-7
        # relative precision either way), anything else is computed in float64.
        work = np.float32 if s.dtype == np.float32 else np.float64
        chunk = np.array(s[rows], dtype=work)
        _raise_if_not_finite(chunk, "scores")
        r = np.arange(chunk.shape[0])
        picked = [chunk[r, y[rows]].astype(np.float64) for y in idx]
        if kind == "logits":
            m, total = _exp_shifted(chunk)
            picked = [np.exp(v - m) / total for v in picked]
        for out, v in zip(outs, picked):
            out[rows] = v
    return outs


def true_class_probability(scores: Any, kind: str, y_true: Any) -> np.ndarray:
    """Probability each row's scores give the true class (:func:`class_probabilities`).

    ``p_true_i = softmax(s_i)_{y_i}`` for logits, ``s_{i,y_i}`` for probabilities.

    Parameters
    ----------
    scores : array_like, shape (N, K)
    kind : {"logits", "probs"}
    y_true : array_like of int, shape (N,)
        True class indices in ``[0, K)``.

    Returns
    -------
    np.ndarray
        float64 ``[N]``.

    Examples
    --------
    >>> true_class_probability([[0.2, 0.8], [0.9, 0.1]], "probs", [1, 1]).tolist()
    [0.8, 0.1]
    """
    return class_probabilities(scores, kind, y_true)[0]


def flip_confidence_split_from_true_probs(
    y_true: Any,
    old_pred: Any,
    new_pred: Any,
    old_p_true: Any,
    new_p_true: Any,
    *,
    near: float = 0.1,
    confident: float = 0.5,
) -> dict[str, int]:
    """Split the negative flips by how much the true-class probability dropped.

    For each negative flip (``o_i = y_i and n_i != y_i``) the drop is
    ``d_i = p_true_old_i - p_true_new_i``. A flip is *near the boundary* when
    ``d_i < near`` (the old model was barely right or the new one barely wrong) and
    *confident* when ``d_i >= confident`` (``docs/metrics.md``; defaults 0.1 and 0.5). Flips in
    between are in neither count.

    Parameters
    ----------
    y_true, old_pred, new_pred : array_like of int, shape (N,)
    old_p_true, new_p_true : array_like of float, shape (N,)
        Probability each model gave the true class (e.g. from :func:`true_class_probability`).
    near, confident : float
        Thresholds on the drop, ``near <= confident``.

    Returns
    -------
    dict
        ``{"negative_flips_near_boundary": int, "negative_flips_confident": int}``.

    Examples
    --------
    Two negative flips: p(true) drops by 0.05 (near the boundary) and by 0.9 (confident).

    >>> flip_confidence_split_from_true_probs([0, 0, 1], [0, 0, 1], [1, 1, 1], [0.55, 0.95, 0.8], [0.5, 0.05, 0.8])
    {'negative_flips_near_boundary': 1, 'negative_flips_confident': 1}
    """
    y, o, n = validate_predictions(y_true, old_pred, new_pred)
    p_old = _check_true_probs(old_p_true, "old_p_true", y.shape[0])
    p_new = _check_true_probs(new_p_true, "new_p_true", y.shape[0])
    near_f, conf_f = float(near), float(confident)
    if not (np.isfinite(near_f) and np.isfinite(conf_f)) or near_f > conf_f:
        raise ValueError(f"need finite thresholds with near <= confident, got near={near!r}, confident={confident!r}")
    flips = (o == y) & (n != y)
    drop = p_old[flips].astype(np.float64) - p_new[flips].astype(np.float64)
    return {
        "negative_flips_near_boundary": int(np.count_nonzero(drop < near_f)),
        "negative_flips_confident": int(np.count_nonzero(drop >= conf_f)),
    }


def _check_true_probs(values: Any, name: str, n_rows: int) -> np.ndarray:
    p = np.asarray(values)
    if p.ndim != 1 or p.shape[0] != n_rows:
        raise ValueError(f"{name} must be a 1-D array of length {n_rows}, got shape {p.shape}")
    if p.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be numeric, got dtype {p.dtype}")
    if p.dtype.kind == "f" and not np.isfinite(p).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return p


def flip_confidence_split(
    y_true: Any,
    old_pred: Any,
    new_pred: Any,
    old_scores: Any,
    new_scores: Any,
    *,
    kind: str = "logits",
    near: float = 0.1,
    confident: float = 0.5,
) -> dict[str, int]:
    """:func:`flip_confidence_split_from_true_probs` from the two models' class scores.

    ``p_true`` of each model is :func:`true_class_probability` of its scores (both of the
    same ``kind``, "logits" or "probs").

    Examples
    --------
    >>> flip_confidence_split([0], [0], [1], [[0.9, 0.1]], [[0.2, 0.8]], kind="probs")
    {'negative_flips_near_boundary': 0, 'negative_flips_confident': 1}
    """
    y, o, n = validate_predictions(y_true, old_pred, new_pred)
    p_old = true_class_probability(old_scores, kind, y)
    p_new = true_class_probability(new_scores, kind, y)
    return flip_confidence_split_from_true_probs(y, o, n, p_old, p_new, near=near, confident=confident)
