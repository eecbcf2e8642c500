"""Turn what the user names (model files, predictions tables, datasets) into a Comparison.

This is the one entry point that both the CLI and the app call:
:func:`compare_sources`. A source is a model file (TorchScript ``.pt``/``.pth``/any
other suffix, or ONNX ``.onnx``), run over the dataset, or a predictions table
(:data:`~graceful_core.vocabulary.TABLE_SUFFIXES`, or a folder or glob of Parquet shards)
used as it is.

Two tables are compared in one of two ways, with the same numbers (:func:`should_stream`):

- in memory (:func:`~graceful_core.comparing.predictions.compare_predictions`): both tables loaded,
  the comparison keeps its per-sample arrays (the app's Sample, Embeddings and Retrieval
  views, the per-sample CSV) and runs the embedding cross-test;
- streamed (:func:`graceful_core.streaming.compare_tables_streamed`) when a table has
  more than :data:`STREAM_MIN_ROWS` rows: memory does not grow with the rows; the
  comparison has counts, per-slice sums and the flip ids (the first
  :data:`~graceful_core.streaming.DEFAULT_ID_CAP` of each kind in the report, all of them
  in a Parquet file when ``flip_ids_path`` is given), no per-sample arrays and no
  cross-test (its ``compatibility_reason`` says why).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Unpack

import numpy as np
import pandas as pd

from graceful_core.cache import cache_dir, make_key
from graceful_core.comparing.labelfree import UnlabelledComparison, compare_unlabelled
from graceful_core.comparing.options import CompareKeywords, RunKeywords, RunOptions, run_options
from graceful_core.comparing.predictions import compare_predictions
from graceful_core.comparing.streamed import comparison_of_streamed
from graceful_core.errors import InputError
from graceful_core.inference import predict, predict_together
from graceful_core.io.datasets import ImageDataset, load_dataset
from graceful_core.io.hashing import file_sha256
from graceful_core.io.tables import is_glob, is_table_source, load_predictions_table, table_sha256
from graceful_core.results.comparison import Comparison, ComparisonInputs
from graceful_core.results.coverage import MissingRows, require_complete
from graceful_core.streaming import DEFAULT_ID_CAP, compare_tables_streamed, estimated_rows
from graceful_core.types import Predictions
from graceful_core.vocabulary import (
    STREAM_MIN_ROWS,
    STREAM_ROWS_ENV,
    TABLE_SUFFIXES,
    StageProgress,
)


def is_table(path: str | os.PathLike) -> bool:
    """True when ``path`` names a predictions table: by suffix, or a folder or glob of Parquet shards."""
    return Path(path).suffix.lower() in TABLE_SUFFIXES or is_table_source(path)


def predictions_for(
    source: str | os.PathLike,
    dataset: ImageDataset | None,
    *,
    classes: list[str] | None = None,
    **run: Unpack[RunKeywords],
) -> Predictions:
    """Predictions of one source: a table as it is (in ``classes``' order when given), or a model
    file run over ``dataset`` as the run options say (:class:`~graceful_core.comparing.options.RunOptions`)."""
    return _predictions(source, dataset, run_options(**run), classes)


def _predictions(
    source: str | os.PathLike, dataset: ImageDataset | None, run: RunOptions, classes: list[str] | None = None
) -> Predictions:
    source = os.fspath(source)
    if not os.path.exists(source) and not is_glob(source):  # a glob of shards: its matches are checked when read
        raise InputError(source, "no such file")
    if is_table(source):
        preds = load_predictions_table(source, classes=classes)
        if dataset is not None:
            preds = attach_dataset_labels(preds, dataset)
        return preds
    from graceful_core.models.loader import load_model  # imports torch: only when a model file runs

    model = load_model(source, device=run.device)
    if dataset is None:
        raise InputError(source, "a model file needs a dataset to run on: give --data DATA")
    return predict(
        model, dataset, progress=run.stage(Path(source).name), use_cache=run.use_cache, batch_size=run.batch_size
    )


def predict_models_together(
    sources: Sequence[str | os.PathLike], dataset: ImageDataset, run: RunOptions
) -> list[Predictions]:
    """:func:`predictions_for` of several model files over one dataset, each image decoded once for all the
    models not cached yet (:func:`graceful_core.inference.predict_together`: the same outputs and cache
    entries as one by one)."""
    from graceful_core.models.loader import load_model  # imports torch: only when a model file runs

    for s in sources:
        if not os.path.exists(s):
            raise InputError(os.fspath(s), "no such file")
    models = [load_model(os.fspath(s), device=run.device) for s in sources]
    cbs = [run.stage(Path(s).name) for s in sources]
    return predict_together(models, dataset, progress=cbs, use_cache=run.use_cache, batch_size=run.batch_size)


def side_predictions(
    old: str | os.PathLike,
    new: str | os.PathLike,
    dataset: ImageDataset | None,
    run: RunOptions,
    reference: str | os.PathLike | None = None,
) -> tuple[Predictions, Predictions, Predictions | None]:
    """The predictions of ``old``, ``new`` (and ``reference``) by the one class-order rule of sources.

    A model file knows its classes; a predictions table follows them: a table on the new side
    takes the old side's class order, a table on the old side the new model's, and a reference
    table the old side's. Two model files over a dataset run together, each image decoded once.
    """
    if not is_table(old) and not is_table(new) and dataset is not None:
        old_p, new_p = predict_models_together([old, new], dataset, run)
    elif is_table(old) and not is_table(new):
        new_p = _predictions(new, dataset, run)
        old_p = _predictions(old, dataset, run, classes=list(new_p.classes))
    else:
        old_p = _predictions(old, dataset, run)
        new_p = _predictions(new, dataset, run, classes=list(old_p.classes) if is_table(new) else None)
    ref_p = None
    if reference is not None:
        ref_p = _predictions(reference, dataset, run, classes=list(old_p.classes) if is_table(reference) else None)
    return old_p, new_p, ref_p


def stream_min_rows() -> int:
    """:data:`STREAM_MIN_ROWS`, or the whole number in ``$GRACEFUL_STREAM_ROWS``.

    Raises
    ------
    InputError
        The environment variable is set but is not a whole number >= 0.
    """
    text = os.environ.get(STREAM_ROWS_ENV, "").strip()
    if not text:
        return STREAM_MIN_ROWS
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise InputError(STREAM_ROWS_ENV, f"must be a whole number of rows >= 0, got {text!r}")
    return n


def should_stream(sources: Sequence[str | os.PathLike], stream: bool | None = None) -> bool:
    """Whether predictions tables are compared streamed rather than loaded whole.

    The rule: every source is a predictions table, and ``stream`` is True, or ``stream``
    is None and some table has more than :func:`stream_min_rows` rows (a million by
    default: Parquet footers give the count without reading rows; a CSV's is estimated
    from its size). Up to that size the in-memory path costs a few hundred MB and keeps
    what only per-sample arrays give (the app's Sample, Embeddings and Retrieval views,
    the embedding cross-test, the per-sample CSV); beyond it, its memory grows with the
    rows (2.7 GiB for two 10M-row tables) while the streamed path's does not, and
    per-sample views of millions of images are of little use anyway.

    Parameters
    ----------
    sources : sequence of path
        The compared sources (two for ``compare``, all of a model set).
    stream : bool or None
        True: always stream (an error if a source is a model file); False: never; None:
        by size.

    Raises
    ------
    InputError
        ``stream=True`` with a model file among the sources.
    """
    if stream is False:
        return False
    models = [os.fspath(s) for s in sources if not is_table(s)]
    if models:
        if stream:
            raise InputError(
                models[0],
                "only predictions tables are streamed: write this model's predictions "
                "first (`predict MODEL --data DATA --out TABLE`), or compare in memory",
            )
        return False
    if stream:
        return True

    limit = stream_min_rows()
    for s in sources:
        try:
            if estimated_rows(s) > limit:
                return True
        except InputError:  # unreadable: the in-memory loader reports it with its own message
            return False
    return False


#: Why a streamed comparison takes no reference (the churn floor's paired test needs per-sample predictions).
REFERENCE_NOT_STREAMED = (
    "a reference (churn floor) needs the comparison in memory: its test pairs the three models' "
    "predictions sample by sample, which a streamed comparison does not keep; compare with "
    "--stream never (memory grows with the rows), or leave out --reference"
)


def cached_flip_ids_path(*parts: str) -> str:
    """A flip-id file in the cache folder named by ``parts`` (e.g. what a comparison is of)."""
    folder = cache_dir() / "flips"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"{make_key('flip-ids', *parts)}.parquet")


def attach_dataset_labels(preds: Predictions, dataset: ImageDataset) -> Predictions:
    """Give a table the dataset's labels (joined on id); check agreement if it has its own."""
    ds_classes = list(dataset.classes)
    pos = {c: i for i, c in enumerate(preds.classes)}
    missing = [c for c in ds_classes if c not in pos]
    if missing:
        raise InputError(
            dataset.source,
            f"class names differ from the table {Path(preds.source).name}'s: dataset has {missing[:5]} not in it",
        )
    ds_labels = np.array([pos[c] for c in ds_classes], dtype=np.int64)[np.asarray(dataset.labels)]
    idx = pd.Index(np.asarray(dataset.ids, dtype=object)).get_indexer(np.asarray(preds.ids, dtype=object))
    keep = idx >= 0
    if not keep.any():
        raise InputError(preds.source, f"shares no sample id with the dataset {dataset.source}")
    labels = ds_labels[idx[keep]]
    if preds.labels is not None:
        bad = np.flatnonzero(preds.labels[keep] != labels)
        if bad.size:
            i = bad[0]
            raise InputError(
                preds.source,
                f"label of id {preds.ids[keep][i]!r} is {preds.classes[preds.labels[keep][i]]!r} "
                f"but the dataset says {preds.classes[labels[i]]!r}",
            )
    extra = dict(preds.extra)
    extra["dropped_ids"] = int(extra.get("dropped_ids", 0)) + int((~keep).sum())
    if dataset.slices is not None:
        extra["slices"] = np.asarray(dataset.slices)[idx[keep]]
    elif extra.get("slices") is not None:  # the table's own slices, on the rows kept
        extra["slices"] = np.asarray(extra["slices"])[keep]
    if extra.get("metadata") is not None:  # the table's extra columns, on the rows kept
        extra["metadata"] = extra["metadata"].take(np.flatnonzero(keep))
    return Predictions(
        ids=np.asarray(preds.ids)[keep],
        pred=preds.pred[keep],
        classes=preds.classes,
        labels=labels,
        scores=None if preds.scores is None else preds.scores[keep],
        score_kind=preds.score_kind,
        embedding=None if preds.embedding is None else preds.embedding[keep],
        source=preds.source,
        extra=extra,
    )


def compare_sources(
    old: str | os.PathLike,
    new: str | os.PathLike,
    data: str | os.PathLike | None = None,
    *,
    dataset: ImageDataset | None = None,
    old_name: str | None = None,
    new_name: str | None = None,
    stream: bool | None = None,
    flip_ids_path: str | os.PathLike | None = None,
    id_cap: int | None = None,
    reference: str | os.PathLike | None = None,
    reference_name: str | None = None,
    allow_missing: bool = False,
    **run: Unpack[RunKeywords],
) -> Comparison | UnlabelledComparison:
    """Compare two sources (model files or tables) on an optional dataset.

    Parameters
    ----------
    old, new : path
        Model files (TorchScript/ONNX) or predictions tables (CSV/Parquet).
    data : path, optional
        Dataset (folder, ``.zip``, manifest). Required when either side is a model file.
    dataset : ImageDataset, optional
        An already loaded dataset (the app passes its cached one); overrides ``data``.
    old_name, new_name : str, optional
        Display names (default: the file names).
    stream : bool or None
        Compare two tables streamed: True always, False never, None when a table has more
        than :func:`stream_min_rows` rows (:func:`should_stream`).
    flip_ids_path : path, optional
        A streamed comparison writes every flipped sample to this Parquet file
        (:data:`graceful_core.streaming.FLIP_FILE_COLUMNS`; atomically, and only when the
        comparison succeeds); ``comp.flip_ids.parquet`` names it. Ignored in memory.
    id_cap : int, optional
        A streamed comparison keeps this many flip ids of each kind in memory and in the
        report (default :data:`graceful_core.streaming.DEFAULT_ID_CAP`).
    reference : path, optional
        A retrain of the old model (its architecture and data, another seed): a model file
        or predictions table, by the same rules as ``old``. The comparison then has its
        ``churn_floor`` (:mod:`graceful_core.metrics.churn`). In memory only.
    reference_name : str, optional
        Its display name (default: the file name).
    allow_missing : bool
        Compare the ids both sides (and the dataset) share when some rows have no match;
        without it that is an InputError (:func:`graceful_core.results.coverage.require_complete`).
        The comparison's ``missing`` says what was left out.
    **run
        The run options ``progress``, ``use_cache``, ``device``, ``batch_size``
        (:class:`~graceful_core.comparing.options.RunOptions`).

    Returns
    -------
    Comparison
        Complete and frozen, with its content key (:func:`comparison_key`) and, when the
        old model exports a classifier head, that head's accuracy on the new embeddings.
        A streamed one has ``arrays=None``, capped ``flip_ids`` and, when the tables have
        embeddings, ``compatibility_reason`` instead of a cross-test. Without labels on
        either side (no ``label`` column, no dataset): an
        :class:`~graceful_core.comparing.labelfree.UnlabelledComparison` (prediction churn).
    """
    opts = run_options(**run)
    progress = opts.progress
    if dataset is None and data is not None:
        dataset = load_dataset(data)
    if reference is not None and not os.path.exists(reference) and not is_glob(reference):
        raise InputError(os.fspath(reference), "no such file")
    if should_stream([old, new], stream):
        if reference is not None:
            raise InputError(os.fspath(reference), REFERENCE_NOT_STREAMED)
        try:
            comp = _compare_streamed(
                old,
                new,
                dataset,
                progress=progress,
                old_name=old_name or Path(old).name,
                new_name=new_name or Path(new).name,
                flip_ids_path=flip_ids_path,
                id_cap=id_cap,
            )
        except InputError as e:
            if not e.problem.startswith("no true labels"):
                raise
            raise InputError(
                e.path,
                f"{e.problem}; a comparison without labels (prediction churn) is not streamed: "
                "pass --stream never (stream=False) if the tables fit in memory",
            ) from None
        require_complete(comp.missing, allow_missing)
        return comp
    old_p, new_p, ref_p = side_predictions(old, new, dataset, opts, reference)
    missing = missing_rows_of(
        old_p,
        new_p,
        old_name or Path(old).name,
        new_name or Path(new).name,
        dataset if is_table(old) and is_table(new) else None,
    )
    require_complete(missing, allow_missing)
    both: CompareKeywords = {
        "old_name": old_name or Path(old).name,
        "new_name": new_name or Path(new).name,
        "key": comparison_key(old, new, dataset),
        "inputs": ComparisonInputs(old=os.fspath(old), new=os.fspath(new), dataset=dataset),
        "reference": ref_p,
        "reference_name": None if reference is None else reference_name or Path(reference).name,
        "missing": missing if missing.any else None,
        "progress": progress,
    }
    if old_p.labels is None and new_p.labels is None:
        return compare_unlabelled(old_p, new_p, **both)
    return compare_predictions(old_p, new_p, old_head=old_head(old), **both)


def missing_rows_of(
    old: Predictions, new: Predictions, old_name: str, new_name: str, dataset: ImageDataset | None = None
) -> MissingRows:
    """Rows of each side (read, including those the dataset lacks) against the ids both share."""
    ids_o = pd.Index(np.asarray(old.ids).astype(str))
    shared = int(ids_o.isin(np.asarray(new.ids).astype(str)).sum())
    return MissingRows(
        old_name,
        new_name,
        old_rows=len(old.ids) + int(old.extra.get("dropped_ids", 0)),
        new_rows=len(new.ids) + int(new.extra.get("dropped_ids", 0)),
        n_compared=shared,
        dataset_images=None if dataset is None else len(dataset),
    )


def _compare_streamed(
    old: str | os.PathLike,
    new: str | os.PathLike,
    dataset: ImageDataset | None,
    *,
    progress: StageProgress | None,
    old_name: str,
    new_name: str,
    flip_ids_path: str | os.PathLike | None,
    id_cap: int | None,
) -> Comparison:
    """Two tables compared streamed, as the same frozen :class:`Comparison` (no per-sample arrays).

    The content key (SHA-256 of every shard) is computed in a second thread while the
    tables stream.
    """
    for p in (old, new):
        if not os.path.exists(p) and not is_glob(p):
            raise InputError(os.fspath(p), "no such file")
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="graceful-key") as pool:
        key = pool.submit(comparison_key, old, new, dataset)
        r = compare_tables_streamed(
            old,
            new,
            dataset=dataset,
            old_name=old_name,
            new_name=new_name,
            flip_ids_path=flip_ids_path,
            id_cap=DEFAULT_ID_CAP if id_cap is None else id_cap,
            progress=progress,
        )
        key = key.result()
    return comparison_of_streamed(
        r, dataset, key=key, inputs=ComparisonInputs(old=os.fspath(old), new=os.fspath(new), dataset=dataset)
    )


def old_head(old: str | os.PathLike):
    """The old model's exported classifier ``head`` (embeddings -> logits), or None.

    None when the old side is a table or a model without ``head``. Its accuracy on the
    new embeddings, ``(1/N) Σ 1[argmax_k head_old(e_new,i)_k = y_i]`` (ties to the lowest
    index), is the BCT "influence" check (Shen et al., CVPR 2020) of whether classifiers
    and other post-processing built on the old embedding still work on the new one.
    """
    if is_table(old):
        return None
    from graceful_core.models.loader import load_model  # imports torch: only when a model file runs

    model = load_model(old)
    return model.head if model.has_head else None


def comparison_key(old: str | os.PathLike, new: str | os.PathLike, dataset: ImageDataset | None) -> str:
    """Content identity of a comparison: SHA-256 of both files and of the dataset's content."""

    def digest(p: str | os.PathLike) -> str:  # a table may be shards: the digest of all of them
        return table_sha256(p) if is_table(p) else file_sha256(p)

    return make_key("comparison", digest(old), digest(new), dataset.content_hash() if dataset else "")
