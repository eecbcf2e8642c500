"""Model sets: pairwise matrices over N >= 2 models (a lineage v1 -> v2 -> ... plus variants).

Row/column conventions (DESIGN §2, "Many versions" issue):

- ``negative_flip_rate[i][j]``, ``backward_trust_compatibility[i][j]``,
  ``negative_flips[i][j]``: row i = the old model, column j = the new model; each entry
  is exactly the pairwise ``compare`` of i -> j
  (:func:`graceful_core.comparison.compare_predictions`), so no metric is computed here
  a second way.
- ``cross_top1[q][g]``: Hit@1 of queries embedded by model q searched against a gallery
  embedded by model g (leave-one-out, cosine; :func:`graceful_core.metrics.retrieval.
  retrieval_metrics`); ``None`` where the embedding sizes differ or a model has no
  embedding (``cross_top1_reason[q][g]`` says which).
- ``can_share_index``: ordered pairs (query model q, gallery model g), q != g, where q's
  queries against g's gallery beat g against itself, ``M(q, g) > M(g, g)`` (the empirical
  compatibility criterion of Shen et al., "Towards Backward-Compatible Representation
  Learning", CVPR 2020): q can be deployed without re-indexing g's gallery.
- ``lineage``: the models in the given order are a chain v1 -> v2 -> ... ; each
  consecutive step has its accuracies, NFR and negative flips, and the regressions from
  v1 (Yan et al., "Positive-Congruent Training", CVPR 2021): images v1 got right that
  model k gets wrong (= the negative flips of v1 -> vk), and the images v1 got right that
  *some* model among v2..vk got wrong (the union, which only grows along the chain).

Inference per model is cached on disk (:mod:`graceful_core.inference`), so adding a
model to a set costs one model's run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from graceful_core.comparison import Comparison, _harmonise_classes, _json_clean, compare_predictions
from graceful_core.errors import InputError
from graceful_core.io.datasets import ImageDataset, load_dataset
from graceful_core.io.tables import join_predictions
from graceful_core.metrics import flips as fm
from graceful_core.metrics.retrieval import retrieval_metrics
from graceful_core.sources import is_table, predictions_for
from graceful_core.types import Predictions

#: ``progress(stage, done, total)``: stage is a model's file name while it runs (done/total
#: images), then :data:`STAGE_PAIRS` (done/total ordered model pairs of the cross-test).
Progress = Callable[[str, int, int], None]
STAGE_PAIRS = "cross-tests"
MIN_MODELS = 2


# --------------------------------------------------------------------------- alignment


def align_model_set(preds: Sequence[Predictions]) -> tuple[list[Predictions], np.ndarray, int]:
    """Restrict every model's predictions to the samples all of them share.

    Class indices are mapped onto the first model's class list, rows are joined on
    ``id`` (:func:`graceful_core.io.tables.join_predictions`, which rejects disagreeing
    labels) and put in the first model's order.

    Parameters
    ----------
    preds : sequence of Predictions
        One per model.

    Returns
    -------
    aligned : list of Predictions
        Same order as ``preds``; every one has the same ids (in the same order) and the
        shared ``labels``.
    labels : np.ndarray
        int64 true class indices into the first model's classes.
    n_dropped : int
        Samples of the first model that are missing from some other model.

    Raises
    ------
    InputError
        Different class sets, no shared ids, disagreeing labels, or no labels at all.
    """
    if len(preds) < 1:
        raise ValueError("align_model_set needs at least one Predictions")
    first = preds[0]
    harmonised = [first] + [_harmonise_classes(first, p) for p in preds[1:]]
    base = harmonised[0]
    for p in harmonised[1:]:
        base, _ = join_predictions(base, p)
    aligned = [join_predictions(base, p)[1] for p in harmonised]
    labels = next((p.labels for p in [base, *aligned] if p.labels is not None), None)
    if labels is None:
        raise InputError(first.source, "no true labels: give --data DATA or a 'label' column")
    labels = np.asarray(labels, dtype=np.int64)
    aligned = [replace(p, labels=labels) for p in aligned]
    return aligned, labels, int(len(first) - labels.shape[0])


# --------------------------------------------------------------------------- pieces


def pairwise_comparisons(preds: Sequence[Predictions], names: Sequence[str]) -> dict[tuple[int, int], Comparison]:
    """Every ordered pair ``(i, j)`` (i = old, j = new) compared without the cross-test.

    The diagonal is included (a model against itself: no flips, BTC 1), so every matrix
    entry is a real comparison.
    """
    m = len(preds)
    out: dict[tuple[int, int], Comparison] = {}
    for i in range(m):
        for j in range(m):
            out[i, j] = compare_predictions(preds[i], preds[j], old_name=names[i], new_name=names[j],
                                            with_compatibility=False)
    return out


def flip_matrices(comps: dict[tuple[int, int], Comparison], m: int) -> dict[str, np.ndarray]:
    """NFR, BTC and negative-flip-count matrices (row old, column new) and accuracy per model.

    Each entry is the summary of the pairwise comparison (DESIGN §2): NFR = (1/N) Σ
    1[o = y ∧ n ≠ y], BTC = Σ 1[o = y ∧ n = y] / Σ 1[o = y]; accuracy of model i is
    ``old_accuracy`` of the comparison (i, i).
    """
    nfr = np.full((m, m), np.nan)
    btc = np.full((m, m), np.nan)
    nflips = np.zeros((m, m), dtype=np.int64)
    for (i, j), c in comps.items():
        s = c.summary
        nfr[i, j] = s["negative_flip_rate"]
        btc[i, j] = s["backward_trust_compatibility"]
        nflips[i, j] = s["n_negative_flips"]
    acc = np.array([comps[i, i].summary["old_accuracy"] for i in range(m)], dtype=np.float64)
    return {"accuracy": acc, "negative_flip_rate": nfr, "backward_trust_compatibility": btc,
            "negative_flips": nflips}


def cross_top1_matrix(
    embeddings: Sequence[np.ndarray | None], labels: np.ndarray, progress: Progress | None = None
) -> tuple[list[list[float | None]], list[list[str | None]]]:
    """Hit@1 of every (query model q, gallery model g), leave-one-out cosine (DESIGN §2).

    Returns
    -------
    cross : list of list
        ``cross[q][g]`` = M(q, g) on top-1, or None where no cross-test exists.
    reasons : list of list
        Why an entry is None (``None`` where it exists).
    """
    m = len(embeddings)
    cross: list[list[float | None]] = [[None] * m for _ in range(m)]
    reasons: list[list[str | None]] = [[None] * m for _ in range(m)]
    for q in range(m):
        for g in range(m):
            eq, eg = embeddings[q], embeddings[g]
            if eq is None or eg is None:
                reasons[q][g] = "no embedding (query model)" if eq is None else "no embedding (gallery model)"
            elif eq.shape[1] != eg.shape[1]:
                reasons[q][g] = f"embedding sizes differ ({eq.shape[1]} vs {eg.shape[1]})"
            else:
                r = retrieval_metrics(eq, eg, labels, ks=(1,), compute_map=False)
                cross[q][g] = r.hit_at[1]
            if progress:
                progress(STAGE_PAIRS, q * m + g + 1, m * m)
    return cross, reasons


def index_sharing(cross: list[list[float | None]], names: Sequence[str]) -> list[dict]:
    """Ordered pairs (query q, gallery g), q != g, with M(q, g) > M(g, g) (BCT criterion).

    Each entry: ``{"query", "gallery", "cross_top1", "gallery_self_top1"}``.
    """
    m = len(names)
    out = []
    for q in range(m):
        for g in range(m):
            c, s = cross[q][g], cross[g][g]
            if q != g and c is not None and s is not None and not np.isnan(c) and not np.isnan(s) and c > s:
                out.append({"query": names[q], "gallery": names[g], "cross_top1": c, "gallery_self_top1": s})
    return out


def lineage_series(
    preds: Sequence[Predictions], labels: np.ndarray, names: Sequence[str],
    comps: dict[tuple[int, int], Comparison],
) -> dict:
    """Metrics along the chain v1 -> v2 -> ... (the given order).

    Returns
    -------
    dict
        ``steps``: per consecutive pair ``{"old", "new", "old_accuracy", "new_accuracy",
        "negative_flip_rate", "negative_flips", "positive_flips"}``;
        ``regressions_from_first[k]``: #{i: v1 right, v_k wrong} (the negative flips of
        v1 -> v_k; 0 for k = 1); ``ever_regressed_from_first[k]``: #{i: v1 right and some
        v_2..v_k wrong}; ``regressed_from_first_ids``: sorted ids v1 got right that the
        last model gets wrong.
    """
    m = len(preds)
    steps = []
    for i in range(m - 1):
        s = comps[i, i + 1].summary
        steps.append({"old": names[i], "new": names[i + 1], "old_accuracy": s["old_accuracy"],
                      "new_accuracy": s["new_accuracy"], "negative_flip_rate": s["negative_flip_rate"],
                      "negative_flips": s["n_negative_flips"], "positive_flips": s["n_positive_flips"]})
    first = preds[0].pred
    ever = np.zeros(labels.shape[0], dtype=bool)
    from_first, ever_counts = [], []
    for k in range(m):
        from_first.append(comps[0, k].summary["n_negative_flips"])
        ever |= fm.negative_flip_mask(labels, first, preds[k].pred)
        ever_counts.append(int(ever.sum()))
    last = comps[0, m - 1]
    ids = np.sort(last.ids[last.negative_flip_mask].astype(str)).tolist()
    return {"steps": steps, "regressions_from_first": from_first, "ever_regressed_from_first": ever_counts,
            "regressed_from_first_ids": ids}


# --------------------------------------------------------------------------- public API


def model_matrix(preds: Sequence[Predictions], names: Sequence[str], progress: Progress | None = None) -> dict:
    """Pairwise matrices over models that ran on the same labelled samples.

    Parameters
    ----------
    preds : sequence of Predictions
        One per model, in lineage order (oldest first); joined on ``id``.
    names : sequence of str
        Display names, same order, unique.
    progress : callable, optional
        ``progress(STAGE_PAIRS, done, total)`` per (query, gallery) cross-test.

    Returns
    -------
    dict
        JSON-ready (nan -> None): ``models``, ``n_samples``, ``classes``, ``accuracy``,
        ``negative_flip_rate``, ``backward_trust_compatibility``, ``negative_flips``,
        ``cross_top1``, ``cross_top1_reason``, ``self_top1``, ``embedding_dims``,
        ``can_share_index``, ``lineage`` (see :func:`lineage_series`) and, when some
        samples are not in every model, ``ids_not_in_all``.

    Raises
    ------
    InputError
        Fewer than 2 models, or predictions that do not share labelled samples.
    """
    if len(preds) < MIN_MODELS:
        raise InputError(preds[0].source if preds else None,
                         f"a model set needs at least {MIN_MODELS} models, got {len(preds)}")
    if len(names) != len(preds):
        raise ValueError(f"{len(names)} names for {len(preds)} models")
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique, got {list(names)}")
    aligned, labels, dropped = align_model_set(preds)
    m = len(aligned)
    comps = pairwise_comparisons(aligned, names)
    mats = flip_matrices(comps, m)
    embeddings = [p.embedding for p in aligned]
    cross, reasons = cross_top1_matrix(embeddings, labels, progress)
    report = {
        "models": list(names),
        "n_samples": int(labels.shape[0]),
        "classes": list(aligned[0].classes),
        **mats,
        "cross_top1": cross,
        "cross_top1_reason": reasons,
        "self_top1": [cross[i][i] for i in range(m)],
        "embedding_dims": [None if e is None else int(e.shape[1]) for e in embeddings],
        "can_share_index": index_sharing(cross, names),
        "lineage": lineage_series(aligned, labels, names, comps),
    }
    if dropped:
        report["ids_not_in_all"] = dropped
    return _json_clean(report)


def display_names(sources: Sequence[str | os.PathLike]) -> list[str]:
    """File names of ``sources``; the path as given where two files share a name.

    Raises
    ------
    InputError
        The same file is named twice.
    """
    paths = [os.fspath(s) for s in sources]
    seen: dict[str, str] = {}
    for p in paths:
        real = os.path.realpath(p)
        if real in seen:
            raise InputError(p, f"named twice in the model set (also as {seen[real]})")
        seen[real] = p
    base = [Path(p).name for p in paths]
    return [b if base.count(b) == 1 else p for b, p in zip(base, paths)]


def model_matrix_report(
    sources: Sequence[str | os.PathLike],
    data: str | os.PathLike | None = None,
    *,
    progress: Progress | None = None,
    use_cache: bool = True,
    dataset: ImageDataset | None = None,
    device: str = "auto",
    batch_size: int = 256,
) -> dict:
    """Load/run every source (model file or predictions table) and build :func:`model_matrix`.

    Parameters
    ----------
    sources : sequence of path
        Model files (TorchScript/ONNX) or predictions tables, in lineage order.
    data : path, optional
        The dataset every model runs on (required for model files).
    progress : callable, optional
        ``progress(stage, done, total)``: per model while it runs, then per pair.
    use_cache : bool
        Read and write the on-disk inference cache.
    dataset : ImageDataset, optional
        An already loaded dataset (the app's); overrides ``data``.
    device, batch_size
        Where and in what batches model files run (``auto``/``cpu``/``cuda``).

    Raises
    ------
    InputError
        Fewer than 2 sources, a file named twice, or any input problem (one line).
    """
    if len(sources) < MIN_MODELS:
        raise InputError(os.fspath(sources[0]) if sources else None,
                         f"a model set needs at least {MIN_MODELS} models, got {len(sources)}")
    names = display_names(sources)
    if dataset is None and data is not None:
        dataset = load_dataset(data)
    preds: list[Predictions] = []
    for s in sources:
        classes = list(preds[0].classes) if preds and is_table(s) else None
        preds.append(predictions_for(s, dataset, classes=classes, progress=progress, use_cache=use_cache,
                                     device=device, batch_size=batch_size))
    return model_matrix(preds, names, progress=progress)


def _cell(x: float | None, w: int) -> str:
    return ("n/a" if x is None else f"{100 * x:.2f}%").rjust(w)


def matrix_text(report: dict) -> str:
    """A terminal rendering: accuracy, NFR, BTC and cross-test matrices, index sharing, chain."""
    names = report["models"]
    w = max(9, *(len(n) for n in names)) + 1
    lines = [f"{report['n_samples']} samples, {len(names)} models", "accuracy:"]
    lines += [f"  {n:<{w}}{_cell(a, w)}" for n, a in zip(names, report["accuracy"])]
    for key, title in (("negative_flip_rate", "negative flip rate (row = old, column = new)"),
                       ("backward_trust_compatibility", "backward trust compatibility (row = old, column = new)"),
                       ("cross_top1", "cross-test Hit@1 (row = query model, column = gallery model)")):
        lines.append(title + ":")
        lines.append(" " * (w + 2) + "".join(n.rjust(w) for n in names))
        for n, row in zip(names, report[key]):
            lines.append(f"  {n:<{w}}" + "".join(_cell(x, w) for x in row))
    share = report["can_share_index"]
    lines.append("can share an index (queries of the first search the second's gallery better than it "
                 "searches itself): " + (", ".join(f"{s['query']} -> {s['gallery']}" for s in share) or "none"))
    lin = report["lineage"]
    chain = " -> ".join(names)
    lines.append(f"lineage {chain}:")
    for st, reg, ever in zip(lin["steps"], lin["regressions_from_first"][1:], lin["ever_regressed_from_first"][1:]):
        lines.append(f"  {st['old']} -> {st['new']}: accuracy {_cell(st['new_accuracy'], 0)}, "
                     f"NFR {_cell(st['negative_flip_rate'], 0)} ({st['negative_flips']} flips); "
                     f"{names[0]} right but {st['new']} wrong: {reg} (ever wrong since {names[0]}: {ever})")
    return "\n".join(lines)
