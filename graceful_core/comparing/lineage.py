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
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from graceful_core.comparing.classes import harmonise_classes
from graceful_core.comparing.predictions import compare_predictions
from graceful_core.comparing.sources import is_table, predictions_for, should_stream
from graceful_core.errors import InputError
from graceful_core.io.datasets import ImageDataset, load_dataset
from graceful_core.io.tables import join_predictions
from graceful_core.metrics import flips as fm
from graceful_core.metrics.counts import FlipCounts
from graceful_core.metrics.hit_at_1 import hit_at_1_matrix
from graceful_core.results.comparison import Comparison, FlipIds
from graceful_core.results.lineage import IndexShare, Lineage, LineageStep, ModelSet
from graceful_core.streaming import DEFAULT_ID_CAP, compare_tables_streamed
from graceful_core.types import Predictions
from graceful_core.vocabulary import STREAMED_NO_CROSS_TEST, StageProgress

#: The progress stage of the cross-tests: ``progress(STAGE_PAIRS, done, total)`` counts ordered
#: model pairs; before it, each model's file name is a stage counting images.
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


def flip_matrices(comps: dict[tuple[int, int], Comparison], m: int) -> dict[str, np.ndarray]:
    """NFR, BTC and negative-flip-count matrices (row old, column new) and accuracy per model.

    Each entry is the summary of the pairwise comparison (``docs/metrics.md``): NFR = (1/N) Σ
    1[o = y ∧ n ≠ y], BTC = Σ 1[o = y ∧ n = y] / Σ 1[o = y]; accuracy of model i is
    ``old_accuracy`` of the comparison (i, i).
    """
    nfr = np.full((m, m), np.nan)
    btc = np.full((m, m), np.nan)
    nflips = np.zeros((m, m), dtype=np.int64)
    for (i, j), c in comps.items():
        s = c.summary
        nfr[i, j] = s.negative_flip_rate
        btc[i, j] = s.backward_trust_compatibility
        nflips[i, j] = s.n_negative_flips
    acc = np.array([comps[i, i].summary.old_accuracy for i in range(m)], dtype=np.float64)
    return {"accuracy": acc, "negative_flip_rate": nfr, "backward_trust_compatibility": btc, "negative_flips": nflips}


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


def index_sharing(cross: Sequence[Sequence[float | None]], names: Sequence[str]) -> list[IndexShare]:
    """Ordered pairs (query q, gallery g), q != g, with M(q, g) > M(g, g) (BCT criterion)."""
    m = len(names)
    out = []
    for q in range(m):
        for g in range(m):
            c, s = cross[q][g], cross[g][g]
            if q != g and c is not None and s is not None and not np.isnan(c) and not np.isnan(s) and c > s:
                out.append(IndexShare(names[q], names[g], float(c), float(s)))
    return out


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
    steps = []
    for i in range(m - 1):
        s = comps[i, i + 1].summary
        steps.append(
            LineageStep(
                names[i],
                names[i + 1],
                s.old_accuracy,
                s.new_accuracy,
                s.negative_flip_rate,
                s.n_negative_flips,
                s.n_positive_flips,
            )
        )
    first = preds[0].pred
    ever = np.zeros(labels.shape[0], dtype=bool)
    from_first, ever_counts = [], []
    for k in range(m):
        from_first.append(comps[0, k].summary.n_negative_flips)
        ever |= fm.negative_flip_mask(labels, first, preds[k].pred)
        ever_counts.append(int(ever.sum()))
    return Lineage(tuple(steps), tuple(from_first), tuple(ever_counts), comps[0, m - 1].flip_ids.negative)


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
    m = len(aligned)
    comps = pairwise_comparisons(aligned, names)
    mats = flip_matrices(comps, m)
    embeddings = [p.embedding for p in aligned]
    cross, reasons = cross_top1_matrix(embeddings, labels, progress)

    def rows(a: np.ndarray, kind: type) -> tuple:
        return tuple(tuple(kind(x) for x in row) for row in a)

    return ModelSet(
        models=tuple(names),
        n_samples=int(labels.shape[0]),
        classes=tuple(aligned[0].classes),
        accuracy=tuple(float(a) for a in mats["accuracy"]),
        negative_flip_rate=rows(mats["negative_flip_rate"], float),
        backward_trust_compatibility=rows(mats["backward_trust_compatibility"], float),
        negative_flips=rows(mats["negative_flips"], int),
        cross_top1=tuple(tuple(row) for row in cross),
        cross_top1_reason=tuple(tuple(row) for row in reasons),
        embedding_dims=tuple(None if e is None else int(e.shape[1]) for e in embeddings),
        can_share_index=tuple(index_sharing(cross, names)),
        lineage=lineage_series(aligned, labels, names, comps),
        ids_not_in_all=dropped,
    )


# --------------------------------------------------------------------------- streamed model sets
def reversed_counts(c: FlipCounts) -> FlipCounts:
    """The counts of the pair read the other way round (new -> old): the transposed transition
    matrix, old and new correct swapped (no confidence split: it needs the other drop)."""
    return FlipCounts(c.transition.T, c.per_class[[0, 2, 1, 3]])


def self_counts(c: FlipCounts, side: str) -> FlipCounts:
    """The counts of one model of a pair against itself (``side`` ``"old"`` or ``"new"``).

    Its transition matrix is diagonal (the model's predictions per class) and its
    per-class rows are (support, right, right, right): NFR 0, BTC 1, as the in-memory
    diagonal of a model set.
    """
    t = c.transition.sum(axis=1 if side == "old" else 0)
    right = 1 if side == "old" else 2
    return FlipCounts(np.diag(t), c.per_class[[0, right, right, right]])


def _pair_comparison(names: Sequence[str], i: int, j: int, counts: FlipCounts, classes, flips: FlipIds) -> Comparison:
    return Comparison(old_name=names[i], new_name=names[j], classes=classes, counts=counts, flip_ids=flips)


def _ever_regressed(flip_files: dict[int, str], m: int, work: str) -> list[int]:
    """``#{i: v1 right and some v2..vk wrong}`` per k from the flip-id files of the pairs (v1, vj).

    The negative flips of v1 -> vj are exactly the samples v1 gets right and vj wrong, so
    the count for k is the size of the union of those id sets for j <= k: each id is
    counted once, at the first j where it appears (DuckDB, out of core).
    """
    import duckdb

    con = duckdb.connect(
        config={
            "memory_limit": "1GB",
            "temp_directory": os.path.join(work, "duckdb"),
            "preserve_insertion_order": False,
        }
    )
    con.execute("SET enable_progress_bar = false")
    try:
        parts = " UNION ALL ".join(
            f"SELECT id, {j} AS j FROM read_parquet(?) WHERE flip = 'negative'" for j in sorted(flip_files)
        )
        sql = (
            f"SELECT first_j, count(*) FROM (SELECT id, min(j) AS first_j FROM ({parts}) GROUP BY id) GROUP BY first_j"
        )
        first = dict(con.execute(sql, [flip_files[j] for j in sorted(flip_files)]).fetchall())
    finally:
        con.close()
    return [int(sum(first.get(j, 0) for j in range(1, k + 1))) for k in range(m)]


def model_matrix_streamed(
    sources: Sequence[str | os.PathLike],
    names: Sequence[str],
    dataset: ImageDataset | None = None,
    *,
    progress: StageProgress | None = None,
    batch_rows: int | None = None,
) -> ModelSet:
    """The :class:`ModelSet` of predictions tables of any length, from each pair's streamed sums.

    Every unordered pair (i < j) is one streamed pass
    (:func:`graceful_core.streaming.compare_tables_streamed`; memory of one pair); the
    pair read the other way round (:func:`reversed_counts`) and each model against itself
    (:func:`self_counts`) follow exactly from its counts, so every matrix entry equals
    the in-memory model set's. The lineage's "ever regressed" counts come from the
    flip-id files of the pairs (v1, vj) (:func:`_ever_regressed`); its
    ``regressed_from_first_ids`` keep the first
    :data:`~graceful_core.streaming.DEFAULT_ID_CAP` ids (``ids_cap``). Embeddings are not
    read: ``cross_top1`` is None everywhere, with the reason.

    Raises
    ------
    InputError
        Any input problem of a pair (named by its file), and tables that do not hold the
        same samples (within the dataset, if given): a streamed set compares tables of
        one evaluation set (the in-memory set keeps the samples all models share).
    """
    m = len(sources)
    if m < MIN_MODELS:
        raise InputError(
            os.fspath(sources[0]) if sources else None, f"a model set needs at least {MIN_MODELS} models, got {m}"
        )
    work = tempfile.mkdtemp(prefix="graceful-matrix-")
    extra = {} if batch_rows is None else {"batch_rows": batch_rows}
    try:
        pairs = {}
        classes = None
        n = None
        flip_files: dict[int, str] = {}
        for i in range(m):
            for j in range(i + 1, m):
                path = os.path.join(work, f"flips-{j}.parquet") if i == 0 else None
                r = compare_tables_streamed(
                    sources[i],
                    sources[j],
                    dataset=dataset,
                    classes=None if classes is None else list(classes),
                    old_name=names[i],
                    new_name=names[j],
                    flip_ids_path=path,
                    id_cap=DEFAULT_ID_CAP if (i, j) == (0, m - 1) else 0,
                    spill_dir=work,
                    progress=progress,
                    **extra,
                )
                classes = r.classes if classes is None else classes
                n = r.n_samples if n is None else n
                if not r.n_samples == r.n_old_in_dataset == r.n_new_in_dataset == n:
                    where = " within the dataset" if dataset is not None else ""
                    raise InputError(
                        os.fspath(sources[j]),
                        f"holds other samples than {names[i]}{where} "
                        f"({r.n_new_in_dataset:,} and {r.n_old_in_dataset:,} rows, {r.n_samples:,} shared): "
                        "a streamed model set compares tables of the same samples (--stream never "
                        "compares those all models share, in memory)",
                    )
                if path is not None:
                    flip_files[j] = path
                pairs[i, j] = r
        comps: dict[tuple[int, int], Comparison] = {}
        for (i, j), r in pairs.items():
            neg, pos = r.negative_flips, r.positive_flips
            comps[i, j] = _pair_comparison(
                names, i, j, r.counts, classes, FlipIds(neg.first, pos.first, neg.count, pos.count, cap=neg.cap)
            )
            comps[j, i] = _pair_comparison(
                names,
                j,
                i,
                reversed_counts(r.counts),
                classes,
                FlipIds(pos.first, neg.first, pos.count, neg.count, cap=neg.cap),
            )
        for i in range(m):
            c, side = (pairs[i, i + 1].counts, "old") if i + 1 < m else (pairs[i - 1, i].counts, "new")
            comps[i, i] = _pair_comparison(names, i, i, self_counts(c, side), classes, FlipIds((), (), 0, 0))
        ever = _ever_regressed(flip_files, m, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mats = flip_matrices(comps, m)
    steps = []
    for i in range(m - 1):
        sm = comps[i, i + 1].summary
        steps.append(
            LineageStep(
                names[i],
                names[i + 1],
                sm.old_accuracy,
                sm.new_accuracy,
                sm.negative_flip_rate,
                sm.n_negative_flips,
                sm.n_positive_flips,
            )
        )
    lineage = Lineage(
        tuple(steps),
        tuple(comps[0, k].summary.n_negative_flips for k in range(m)),
        tuple(ever),
        comps[0, m - 1].flip_ids.negative,
    )

    def rows(a: np.ndarray, kind: type) -> tuple:
        return tuple(tuple(kind(x) for x in row) for row in a)

    return ModelSet(
        models=tuple(names),
        n_samples=int(n),
        classes=tuple(classes),
        accuracy=tuple(float(a) for a in mats["accuracy"]),
        negative_flip_rate=rows(mats["negative_flip_rate"], float),
        backward_trust_compatibility=rows(mats["backward_trust_compatibility"], float),
        negative_flips=rows(mats["negative_flips"], int),
        cross_top1=tuple((None,) * m for _ in range(m)),
        cross_top1_reason=tuple((STREAMED_NO_CROSS_TEST,) * m for _ in range(m)),
        embedding_dims=(None,) * m,
        can_share_index=(),
        lineage=lineage,
        ids_not_in_all=0,
        ids_cap=DEFAULT_ID_CAP,
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
    progress: StageProgress | None = None,
    use_cache: bool = True,
    dataset: ImageDataset | None = None,
    device: str = "auto",
    batch_size: int = 256,
    names: Sequence[str] | None = None,
    stream: bool | None = None,
) -> ModelSet:
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
    names : sequence of str, optional
        The models' names in the set, one per source and all different (default: the file
        names, :func:`display_names`).
    stream : bool or None
        Predictions tables only: build the set from each pair's streamed sums
        (:func:`model_matrix_streamed`): True always, False never, None when a table has
        more rows than :func:`graceful_core.comparing.sources.stream_min_rows`.

    Raises
    ------
    InputError
        Fewer than 2 sources, a file named twice, or any input problem (one line).
    ValueError
        ``names`` are not one per source, or not all different.
    """
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
        return model_matrix_streamed(sources, names, dataset, progress=progress)
    preds: list[Predictions] = []
    files = [s for s in sources if not is_table(s)]
    ran: dict[str, Predictions] = {}
    if dataset is not None and files:  # the model files together (each image decoded once), tables read below
        together = _run_models_together(
            files, dataset, progress=progress, use_cache=use_cache, device=device, batch_size=batch_size
        )
        ran = {os.fspath(s): p for s, p in zip(files, together)}
    for s in sources:
        if os.fspath(s) in ran:
            preds.append(ran[os.fspath(s)])
            continue
        classes = list(preds[0].classes) if preds and is_table(s) else None
        preds.append(
            predictions_for(
                s,
                dataset,
                classes=classes,
                progress=progress,
                use_cache=use_cache,
                device=device,
                batch_size=batch_size,
            )
        )
    return model_matrix(preds, list(names), progress=progress)


def _run_models_together(
    sources: Sequence[str | os.PathLike],
    dataset: ImageDataset,
    *,
    progress: StageProgress | None,
    use_cache: bool,
    device: str,
    batch_size: int,
) -> list[Predictions]:
    """Every model file over ``dataset``, each image decoded once for all the models not cached yet
    (:func:`graceful_core.inference.predict_together`: the same outputs and cache entries as one by one)."""
    from graceful_core.inference import predict_together
    from graceful_core.models.loader import load_model

    for s in sources:
        if not os.path.exists(s):
            raise InputError(os.fspath(s), "no such file")
    models = [load_model(os.fspath(s), device=device) for s in sources]
    cbs = [(lambda done, total, name=Path(s).name: progress(name, done, total)) if progress else None for s in sources]
    return predict_together(models, dataset, progress=cbs, use_cache=use_cache, batch_size=batch_size)
