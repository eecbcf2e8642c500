"""Model sets of predictions tables of any length, from each pair's streamed sums.

Every unordered pair is one streamed pass (:func:`graceful_core.streaming.compare_tables_streamed`),
so memory is one pair's whatever the number of rows; the pair read the other way round and each
model against itself follow exactly from its counts, and the lineage's "ever regressed" counts come
from the pairs' flip-id files (a DuckDB union, out of core). Embeddings are not read: no cross-test.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence

import numpy as np

from graceful_core.comparing.lineage_matrices import MIN_MODELS, lineage_steps, model_set
from graceful_core.comparing.streamed import comparison_of_streamed
from graceful_core.errors import InputError
from graceful_core.io.datasets import ImageDataset
from graceful_core.metrics.counts import FlipCounts
from graceful_core.results.comparison import Comparison, FlipIds
from graceful_core.results.lineage import Lineage, ModelSet
from graceful_core.streaming import DEFAULT_ID_CAP, StreamedComparison, compare_tables_streamed
from graceful_core.vocabulary import STREAMED_NO_CROSS_TEST, StageProgress

__all__ = ["model_matrix_streamed", "reversed_counts", "self_counts"]


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
    try:
        pairs: dict[tuple[int, int], StreamedComparison] = {}
        classes: tuple[str, ...] | None = None
        n: int | None = None
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
                    batch_rows=batch_rows,
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
        # m >= 2: the pair (0, 1) ran and set both
        assert classes is not None and n is not None
        comps: dict[tuple[int, int], Comparison] = {}
        for (i, j), r in pairs.items():
            neg, pos = r.negative_flips, r.positive_flips
            comps[i, j] = comparison_of_streamed(r, dataset)
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
    lineage = Lineage(
        lineage_steps(comps, names),
        tuple(comps[0, k].summary.n_negative_flips for k in range(m)),
        tuple(ever),
        comps[0, m - 1].flip_ids.negative,
    )
    return model_set(
        names,
        n,
        classes,
        comps,
        lineage,
        cross=[[None] * m for _ in range(m)],
        reasons=[[STREAMED_NO_CROSS_TEST] * m for _ in range(m)],
        embedding_dims=[None] * m,
        ids_not_in_all=0,
        ids_cap=DEFAULT_ID_CAP,
    )
