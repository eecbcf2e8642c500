"""Per-sample confidences from class scores, computed in chunks (bounded memory).

For N samples and K classes the full softmax would need an N x K float64 temporary;
on 10 million rows that is 800 MB. These functions walk the rows in chunks and return
only the two per-sample numbers a report needs.
"""

from __future__ import annotations

import numpy as np

_CHUNK = 1 << 18


def confidences(
    scores: np.ndarray, score_kind: str, pred: np.ndarray, labels: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Softmax probability of the predicted class and of the true class.

    Parameters
    ----------
    scores : np.ndarray
        ``[N, K]`` logits or probabilities.
    score_kind : {"logits", "probs"}
        Logits are turned into probabilities with a numerically stable softmax,
        ``p_k = exp(s_k - max s) / sum_j exp(s_j - max s)``; probabilities are used as given.
    pred : np.ndarray
        ``[N]`` predicted class indices.
    labels : np.ndarray or None
        ``[N]`` true class indices.

    Returns
    -------
    (p_pred, p_true) : float32 arrays ``[N]`` (``p_true`` is None without labels).
    """
    if score_kind not in ("logits", "probs"):
        raise ValueError(f"score_kind must be 'logits' or 'probs', got {score_kind!r}")
    n = scores.shape[0]
    p_pred = np.empty(n, dtype=np.float32)
    p_true = np.empty(n, dtype=np.float32) if labels is not None else None
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        s = np.asarray(scores[start:stop], dtype=np.float64)
        if score_kind == "logits":
            s = np.exp(s - s.max(axis=1, keepdims=True))
            s /= s.sum(axis=1, keepdims=True)
        rows = np.arange(stop - start)
        p_pred[start:stop] = s[rows, pred[start:stop]]
        if p_true is not None:
            p_true[start:stop] = s[rows, labels[start:stop]]
    return p_pred, p_true
