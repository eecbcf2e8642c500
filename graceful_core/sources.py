"""Turn what the user names (model files, predictions tables, datasets) into a Comparison.

This is the one entry point that both the CLI and the app call:
:func:`compare_sources`. A source is a model file (TorchScript ``.pt``/``.pth``/any
other suffix, or ONNX ``.onnx``), run over the dataset, or a predictions table
(:data:`~graceful_core.vocabulary.TABLE_SUFFIXES`) used as it is.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from graceful_core.cache import make_key
from graceful_core.comparison import Comparison, ComparisonInputs, compare_predictions
from graceful_core.errors import InputError
from graceful_core.inference import predict
from graceful_core.io.datasets import ImageDataset, load_dataset
from graceful_core.io.hashing import file_sha256
from graceful_core.io.tables import is_glob, is_table_source, load_predictions_table, table_sha256
from graceful_core.models.loader import load_model
from graceful_core.types import Predictions
from graceful_core.vocabulary import TABLE_SUFFIXES, StageProgress


def is_table(path: str | os.PathLike) -> bool:
    """True when ``path`` names a predictions table: by suffix, or a folder or glob of Parquet shards."""
    return Path(path).suffix.lower() in TABLE_SUFFIXES or is_table_source(path)


def predictions_for(
    source: str | os.PathLike,
    dataset: ImageDataset | None,
    *,
    classes: list[str] | None = None,
    progress: StageProgress | None = None,
    use_cache: bool = True,
    device: str = "auto",
    batch_size: int = 256,
) -> Predictions:
    """Predictions of one source: a table as it is, or a model file run over ``dataset``
    (on ``device``: ``auto``/``cpu``/``cuda``, in batches of ``batch_size``)."""
    source = os.fspath(source)
    if not os.path.exists(source) and not is_glob(source):  # a glob of shards: its matches are checked when read
        raise InputError(source, "no such file")
    if is_table(source):
        preds = load_predictions_table(source, classes=classes)
        if dataset is not None:
            preds = attach_dataset_labels(preds, dataset)
        return preds
    model = load_model(source, device=device)
    if dataset is None:
        raise InputError(source, "a model file needs a dataset to run on: give --data DATA")
    name = Path(source).name
    cb = (lambda done, total: progress(name, done, total)) if progress else None
    return predict(model, dataset, progress=cb, use_cache=use_cache, batch_size=batch_size)


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
    import pandas as pd

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
    progress: StageProgress | None = None,
    use_cache: bool = True,
    dataset: ImageDataset | None = None,
    device: str = "auto",
    batch_size: int = 256,
    old_name: str | None = None,
    new_name: str | None = None,
) -> Comparison:
    """Compare two sources (model files or tables) on an optional dataset.

    Parameters
    ----------
    old, new : path
        Model files (TorchScript/ONNX) or predictions tables (CSV/Parquet).
    data : path, optional
        Dataset (folder, ``.zip``, manifest). Required when either side is a model file.
    progress : callable, optional
        ``progress(stage, done, total)`` during inference.
    dataset : ImageDataset, optional
        An already loaded dataset (the app passes its cached one); overrides ``data``.
    device, batch_size
        Where and in what batches model files run (:func:`predictions_for`).
    old_name, new_name : str, optional
        Display names (default: the file names).

    Returns
    -------
    Comparison
        Complete and frozen, with its content key (:func:`comparison_key`) and, when the
        old model exports a classifier head, that head's accuracy on the new embeddings.
    """
    if dataset is None and data is not None:
        dataset = load_dataset(data)
    run = {"progress": progress, "use_cache": use_cache, "device": device, "batch_size": batch_size}
    if is_table(old) and not is_table(new):  # the model knows its classes: the table uses them
        new_p = predictions_for(new, dataset, **run)
        old_p = predictions_for(old, dataset, classes=list(new_p.classes), **run)
    else:
        old_p = predictions_for(old, dataset, **run)
        new_p = predictions_for(new, dataset, classes=list(old_p.classes) if is_table(new) else None, **run)
    return compare_predictions(
        old_p, new_p,
        old_name=old_name or Path(old).name, new_name=new_name or Path(new).name,
        old_head=old_head(old),
        key=comparison_key(old, new, dataset),
        inputs=ComparisonInputs(old=os.fspath(old), new=os.fspath(new), dataset=dataset),
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
    model = load_model(old)
    return model.head if model.has_head else None


def comparison_key(old: str | os.PathLike, new: str | os.PathLike, dataset: ImageDataset | None) -> str:
    """Content identity of a comparison: SHA-256 of both files and of the dataset's content."""
    def digest(p: str | os.PathLike) -> str:  # a table may be shards: the digest of all of them
        return table_sha256(p) if is_table(p) else file_sha256(p)

    return make_key("comparison", digest(old), digest(new), dataset.content_hash() if dataset else "")
