"""Model sets: pairwise matrices over N >= 2 models (a lineage v1 -> v2 -> ... plus variants).

The result is a frozen :class:`~graceful_core.results.lineage.ModelSet` (its JSON, ``to_report``, is that of
``python -m graceful_core matrix --json``); row/column conventions (``docs/metrics.md``):

- ``negative_flip_rate[i][j]``, ``backward_trust_compatibility[i][j]``,
  ``negative_flips[i][j]``: row i = the old model, column j = the new model; each entry
  is exactly the pairwise ``compare`` of i -> j
  (:func:`graceful_core.comparing.predictions.compare_predictions`), so no metric is computed here
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

A set of predictions tables too large to hold in memory (:func:`graceful_core.comparing.sources.
should_stream`) is built from each pair's sums instead (:func:`model_matrix_streamed`):
one streamed pass per unordered pair (:func:`graceful_core.streaming.compare_tables_streamed`),
so memory is one pair's, whatever the number of rows; the lineage's "ever regressed"
counts come from the pairs' flip-id files (a DuckDB union, out of core). Embeddings are
not read: no cross-test (``cross_top1_reason`` says so).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Unpack

import numpy as np

from graceful_core.comparing.classes import harmonise_classes
from graceful_core.comparing.lineage_matrices import MIN_MODELS, flip_matrices, index_sharing, lineage_steps, model_set
from graceful_core.comparing.lineage_streamed import model_matrix_streamed, reversed_counts, self_counts
from graceful_core.comparing.options import RunKeywords, run_options
from graceful_core.comparing.predictions import compare_predictions
from graceful_core.comparing.sources import (
    is_table,
    predict_models_together,
    predictions_for,
    should_stream,
)
from graceful_core.errors import InputError
from graceful_core.io.datasets import ImageDataset, load_dataset
from graceful_core.io.tables import join_predictions
from graceful_core.metrics import flips as fm
from graceful_core.metrics.hit_at_1 import hit_at_1_matrix
from graceful_core.results.comparison import Comparison
from graceful_core.results.lineage import Lineage, ModelSet
from graceful_core.types import Predictions
from graceful_core.vocabulary import StageProgress

#: The progress stage of the cross-tests: ``progress(STAGE_PAIRS, done, total)`` counts ordered
#: model pairs; before it, each model's file name is a stage counting images.
STAGE_PAIRS = "cross-tests"

# the model set's pieces, importable from here as before the split
__all__ = [
    "STAGE_PAIRS",
    "MIN_MODELS",
    "align_model_set",
    "pairwise_comparisons",
    "cross_top1_matrix",
    "lineage_series",
    "model_matrix",
    "display_names",
    "model_matrix_report",
    "flip_matrices",
    "index_sharing",
    "lineage_steps",
    "model_set",
    "model_matrix_streamed",
    "reversed_counts",
    "self_counts",
]

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
    harmonised = [first] + [harmonise_classes(first, p) for p in preds[1:]]
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
    # the matrices read only counts of hard predictions: without class scores no pair spends a second or
    # more on label issues and what-if curves that nothing here shows
    preds = [replace(p, scores=None, score_kind=None) for p in preds]
    out: dict[tuple[int, int], Comparison] = {}
    for i in range(m):
        for j in range(m):
            out[i, j] = compare_predictions(
                preds[i], preds[j], old_name=names[i], new_name=names[j], with_compatibility=False, with_slices=False
            )
    return out


def cross_top1_matrix(
    embeddings: Sequence[np.ndarray | None], labels: np.ndarray, progress: StageProgress | None = None
) -> tuple[list[list[float | None]], list[list[str | None]]]:
    """Hit@1 of every (query model q, gallery model g), leave-one-out cosine (``docs/metrics.md``).

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
    # retrieval_metrics' Hit@1, one GEMM per unordered pair
    hits = hit_at_1_matrix(embeddings, labels, progress, STAGE_PAIRS)
    for q in range(m):
        for g in range(m):
            eq, eg = embeddings[q], embeddings[g]
            if eq is None or eg is None:
                reasons[q][g] = "no embedding (query model)" if eq is None else "no embedding (gallery model)"
            elif eq.shape[1] != eg.shape[1]:
                reasons[q][g] = f"embedding sizes differ ({eq.shape[1]} vs {eg.shape[1]})"
            else:
                cross[q][g] = hits[q, g]
    return cross, reasons


def lineage_series(
    preds: Sequence[Predictions],
    labels: np.ndarray,
    names: Sequence[str],
    comps: dict[tuple[int, int], Comparison],
) -> Lineage:
    """Metrics along the chain v1 -> v2 -> ... (the given order).

    ``steps``: each consecutive pair's accuracies, NFR and flips;
    ``regressions_from_first[k]``: #{i: v1 right, v_k wrong} (the negative flips of
    v1 -> v_k; 0 for k = 1); ``ever_regressed_from_first[k]``: #{i: v1 right and some
    v_2..v_k wrong}; ``regressed_from_first_ids``: sorted ids v1 got right that the last
    model gets wrong.
    """
    m = len(preds)
    first = preds[0].pred
    ever = np.zeros(labels.shape[0], dtype=bool)
    from_first, ever_counts = [], []
    for k in range(m):
        from_first.append(comps[0, k].summary.n_negative_flips)
        ever |= fm.negative_flip_mask(labels, first, preds[k].pred)
        ever_counts.append(int(ever.sum()))
    return Lineage(
        lineage_steps(comps, names), tuple(from_first), tuple(ever_counts), comps[0, m - 1].flip_ids.negative
    )


# --------------------------------------------------------------------------- public API


def model_matrix(preds: Sequence[Predictions], names: Sequence[str], progress: StageProgress | None = None) -> ModelSet:
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
    ModelSet
        Its :meth:`~ModelSet.to_report` is the JSON of ``matrix --json``.

    Raises
    ------
    InputError
        Fewer than 2 models, or predictions that do not share labelled samples.
    """
    if len(preds) < MIN_MODELS:
        raise InputError(
            preds[0].source if preds else None, f"a model set needs at least {MIN_MODELS} models, got {len(preds)}"
        )
    if len(names) != len(preds):
        raise ValueError(f"{len(names)} names for {len(preds)} models")
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique, got {list(names)}")
    aligned, labels, dropped = align_model_set(preds)
    comps = pairwise_comparisons(aligned, names)
    embeddings = [p.embedding for p in aligned]
    cross, reasons = cross_top1_matrix(embeddings, labels, progress)
    return model_set(
        names,
        labels.shape[0],
        aligned[0].classes,
        comps,
        lineage_series(aligned, labels, names, comps),
        cross=cross,
        reasons=reasons,
        embedding_dims=[None if e is None else int(e.shape[1]) for e in embeddings],
        ids_not_in_all=dropped,
    )


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
    dataset: ImageDataset | None = None,
    names: Sequence[str] | None = None,
    stream: bool | None = None,
    **run: Unpack[RunKeywords],
) -> ModelSet:
    """Load/run every source (model file or predictions table) and build :func:`model_matrix`.

    Parameters
    ----------
    sources : sequence of path
        Model files (TorchScript/ONNX) or predictions tables, in lineage order.
    data : path, optional
        The dataset every model runs on (required for model files).
    dataset : ImageDataset, optional
        An already loaded dataset (the app's); overrides ``data``.
    names : sequence of str, optional
        The models' names in the set, one per source and all different (default: the file
        names, :func:`display_names`).
    stream : bool or None
        Predictions tables only: build the set from each pair's streamed sums
        (:func:`model_matrix_streamed`): True always, False never, None when a table has
        more rows than :func:`graceful_core.comparing.sources.stream_min_rows`.
    **run
        The run options ``progress`` (per model while it runs, then per pair), ``use_cache``,
        ``device``, ``batch_size`` (:class:`~graceful_core.comparing.options.RunOptions`).

    Raises
    ------
    InputError
        Fewer than 2 sources, a file named twice, or any input problem (one line).
    ValueError
        ``names`` are not one per source, or not all different.
    """
    opts = run_options(**run)
    if len(sources) < MIN_MODELS:
        raise InputError(
            os.fspath(sources[0]) if sources else None,
            f"a model set needs at least {MIN_MODELS} models, got {len(sources)}",
        )
    file_names = display_names(sources)
    if names is None:
        names = file_names
    elif len(names) != len(sources) or len(set(names)) != len(names):
        raise ValueError(f"need {len(sources)} different names, got {list(names)}")
    if dataset is None and data is not None:
        dataset = load_dataset(data)
    if should_stream(sources, stream):
        return model_matrix_streamed(sources, names, dataset, progress=opts.progress)
    preds: list[Predictions] = []
    files = [s for s in sources if not is_table(s)]
    ran: dict[str, Predictions] = {}
    if dataset is not None and files:  # the model files together (each image decoded once), tables read below
        ran = {os.fspath(s): p for s, p in zip(files, predict_models_together(files, dataset, opts))}
    for s in sources:
        if os.fspath(s) in ran:
            preds.append(ran[os.fspath(s)])
            continue
        classes = list(preds[0].classes) if preds and is_table(s) else None
        preds.append(predictions_for(s, dataset, classes=classes, **run))
    return model_matrix(preds, list(names), progress=opts.progress)
