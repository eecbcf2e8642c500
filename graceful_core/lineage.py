"""Model sets: pairwise matrices over N >= 2 models (a lineage v1 -> v2 -> ... plus variants).

Row/column conventions (DESIGN §2, "Many versions" issue):
- ``negative_flip_rate[i][j]``, ``backward_trust_compatibility[i][j]``: row i = the old
  model, column j = the new model (the pairwise ``compare`` of i -> j).
- ``cross_top1[q][g]``: Hit@1 of queries embedded by model q searched against a gallery
  embedded by model g (leave-one-out, cosine; :mod:`graceful_core.metrics.retrieval`);
  ``None`` where the embedding sizes differ or a model has no embedding.
- ``can_share_index``: pairs (new j, old i), i != j, where j's queries against i's gallery
  beat i against itself, M(j, i) > M(i, i) (BCT's empirical compatibility criterion).

Inference per model is cached on disk (:mod:`graceful_core.inference`), so adding a
model to a set costs one model's run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from graceful_core.comparison import _harmonise_classes, _json_clean, compare_predictions
from graceful_core.errors import InputError
from graceful_core.io.datasets import load_dataset
from graceful_core.io.tables import join_predictions
from graceful_core.metrics.retrieval import retrieval_metrics
from graceful_core.sources import is_table, predictions_for
from graceful_core.types import Predictions


def _common_samples(preds: list[Predictions]) -> list[Predictions]:
    """Restrict every model's predictions to the ids all of them share, in the first one's order."""
    base = preds[0]
    aligned = [_harmonise_classes(base, p) for p in preds]
    for p in aligned[1:]:
        base, _ = join_predictions(base, p)
    out = []
    for p in aligned:
        _, p_j = join_predictions(base, p)
        out.append(p_j)
    return out


def model_matrix(preds: list[Predictions], names: list[str]) -> dict:
    """Pairwise matrices over models that ran on the same labelled samples.

    Parameters
    ----------
    preds : list of Predictions
        One per model, oldest first; joined on ``id`` (the shared samples are used).
    names : list of str
        Display names, same order.

    Returns
    -------
    dict
        JSON-ready: ``models``, ``n_samples``, ``accuracy``, ``negative_flip_rate``,
        ``backward_trust_compatibility``, ``negative_flips`` (counts), ``cross_top1``,
        ``self_top1``, ``can_share_index``, ``lineage`` (chain metrics), nan -> None.
    """
    if len(preds) < 2:
        raise ValueError("a model set needs at least 2 models")
    if len(names) != len(preds):
        raise ValueError("names and preds differ in length")
    preds = _common_samples(preds)
    labels = next((p.labels for p in preds if p.labels is not None), None)
    if labels is None:
        raise InputError(preds[0].source, "no true labels: give --data DATA or a 'label' column")
    for p in preds:
        p.labels = labels
    m = len(preds)
    nfr = np.full((m, m), np.nan)
    btc = np.full((m, m), np.nan)
    nflips = np.zeros((m, m), dtype=np.int64)
    acc = [float((p.pred == labels).mean()) for p in preds]
    for i in range(m):
        for j in range(m):
            c = compare_predictions(preds[i], preds[j], with_compatibility=False)
            nfr[i, j] = c.summary["negative_flip_rate"]
            btc[i, j] = c.summary["backward_trust_compatibility"]
            nflips[i, j] = c.summary["n_negative_flips"]
    cross: list[list[float | None]] = [[None] * m for _ in range(m)]
    reasons: list[list[str | None]] = [[None] * m for _ in range(m)]
    for q in range(m):
        for g in range(m):
            eq, eg = preds[q].embedding, preds[g].embedding
            if eq is None or eg is None:
                reasons[q][g] = "no embedding"
            elif eq.shape[1] != eg.shape[1]:
                reasons[q][g] = f"embedding sizes differ ({eq.shape[1]} vs {eg.shape[1]})"
            else:
                r = retrieval_metrics(eq, eg, labels, ks=(1,), compute_map=False)
                cross[q][g] = r.hit_at[1]
    self_top1 = [cross[i][i] for i in range(m)]
    share = [
        {"new": names[j], "old": names[i], "cross_top1": cross[j][i], "old_self_top1": self_top1[i]}
        for i in range(m)
        for j in range(m)
        if i != j and cross[j][i] is not None and self_top1[i] is not None and cross[j][i] > self_top1[i]
    ]
    first_right = preds[0].pred == labels
    cumulative = [int((first_right & (p.pred != labels)).sum()) for p in preds]
    chain = [
        {"old": names[i], "new": names[i + 1], "negative_flip_rate": nfr[i, i + 1],
         "negative_flips": int(nflips[i, i + 1])}
        for i in range(m - 1)
    ]
    return _json_clean(
        {
            "models": list(names),
            "n_samples": int(labels.shape[0]),
            "classes": list(preds[0].classes),
            "accuracy": acc,
            "negative_flip_rate": nfr,
            "negative_flips": nflips,
            "backward_trust_compatibility": btc,
            "cross_top1": cross,
            "cross_top1_reason": reasons,
            "self_top1": self_top1,
            "can_share_index": share,
            "lineage": {
                "steps": chain,
                "cumulative_regressions_from_first": cumulative,
            },
        }
    )


def model_matrix_report(
    sources: list[str | os.PathLike],
    data: str | os.PathLike | None = None,
    *,
    progress: Callable[[str, int, int], None] | None = None,
    use_cache: bool = True,
) -> dict:
    """Load/run every source (model file or table) and build :func:`model_matrix`."""
    if len(sources) < 2:
        raise InputError(None, "matrix needs at least 2 models")
    dataset = load_dataset(data) if data is not None else None
    preds: list[Predictions] = []
    for s in sources:
        classes = list(preds[0].classes) if preds and is_table(s) else None
        preds.append(predictions_for(s, dataset, classes=classes, progress=progress, use_cache=use_cache))
    return model_matrix(preds, [Path(s).name for s in sources])


def matrix_text(report: dict) -> str:
    """A terminal rendering of the accuracy, NFR and cross-test matrices."""
    names = report["models"]
    w = max(8, *(len(n) for n in names)) + 1

    def fmt(x, pct=True):
        return "n/a".rjust(w) if x is None else (f"{100 * x:.2f}%" if pct else f"{x:.3f}").rjust(w)

    lines = [f"{report['n_samples']} samples, {len(names)} models", "accuracy:"]
    lines += [f"  {n:<{w}}{fmt(a)}" for n, a in zip(names, report["accuracy"])]
    for key, title in (("negative_flip_rate", "negative flip rate (row old -> column new)"),
                       ("cross_top1", "cross-test Hit@1 (row query model, column gallery model)")):
        lines.append(title + ":")
        lines.append(" " * (w + 2) + "".join(n.rjust(w) for n in names))
        for n, row in zip(names, report[key]):
            lines.append(f"  {n:<{w}}" + "".join(fmt(x) for x in row))
    share = report["can_share_index"]
    lines.append("can share an index (new model searches old gallery better than old itself): "
                 + (", ".join(f"{s['new']} -> {s['old']}" for s in share) if share else "none"))
    return "\n".join(lines)
