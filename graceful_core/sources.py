"""Turn what the user names (model files, predictions tables, datasets) into a Comparison.

This is the one entry point that both the CLI and the app call:
:func:`compare_sources`. A source is a model file (TorchScript ``.pt``/``.pth``/any
other suffix, or ONNX ``.onnx``), run over the dataset, or a predictions table
(``.csv``/``.parquet``) used as it is.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from graceful_core.cache import make_key
from graceful_core.comparison import Comparison, compare_predictions
from graceful_core.errors import InputError
from graceful_core.inference import predict
from graceful_core.io.datasets import ImageDataset, load_dataset
from graceful_core.io.hashing import file_sha256
from graceful_core.io.tables import is_glob, is_table_source, load_predictions_table, table_sha256
from graceful_core.metrics.retrieval import head_accuracy
from graceful_core.models.loader import load_model
from graceful_core.types import Predictions

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")

#: ``progress(stage, done, total)``; stage names the model being run.
StageProgress = Callable[[str, int, int], None]


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
) -> Predictions:
    """Predictions of one source: a table as it is, or a model file run over ``dataset``."""
    source = os.fspath(source)
    if not os.path.exists(source) and not is_glob(source):  # a glob of shards: its matches are checked when read
        raise InputError(source, "no such file")
    if is_table(source):
        preds = load_predictions_table(source, classes=classes)
        if dataset is not None:
            preds = attach_dataset_labels(preds, dataset)
        return preds
    model = load_model(source)
    if dataset is None:
        raise InputError(source, "a model file needs a dataset to run on: give --data DATA")
    name = Path(source).name
    cb = (lambda done, total: progress(name, done, total)) if progress else None
    return predict(model, dataset, progress=cb, use_cache=use_cache)


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
    """
    if dataset is None and data is not None:
        dataset = load_dataset(data)
    if is_table(old) and not is_table(new):  # the model knows its classes: the table uses them
        new_p = predictions_for(new, dataset, progress=progress, use_cache=use_cache)
        old_p = predictions_for(old, dataset, classes=list(new_p.classes), progress=progress, use_cache=use_cache)
    else:
        old_p = predictions_for(old, dataset, progress=progress, use_cache=use_cache)
        new_p = predictions_for(new, dataset, classes=list(old_p.classes) if is_table(new) else None,
                                progress=progress, use_cache=use_cache)
    comp = compare_predictions(old_p, new_p, old_name=Path(old).name, new_name=Path(new).name)
    comp.old_head_on_new_accuracy = old_head_on_new_accuracy(old, comp)
    comp.key = comparison_key(old, new, dataset)
    comp.dataset = dataset
    return comp


def old_head_on_new_accuracy(old: str | os.PathLike, comp: Comparison) -> float | None:
    """Accuracy of the old model's exported ``head`` on the new model's embeddings.

    ``(1/N) Σ 1[argmax_k head_old(e_new,i)_k = y_i]`` (ties to the lowest index): the BCT
    "influence" check (Shen et al., CVPR 2020) of whether classifiers and other
    post-processing built on the old embedding still work on the new one. None when the
    old side is a table or a model without ``head``, or when either side has no embedding
    or their sizes differ.
    """
    if is_table(old) or comp.new_embedding is None or comp.old_embedding is None:
        return None
    if comp.new_embedding.shape[1] != comp.old_embedding.shape[1]:
        return None
    model = load_model(old)
    if not model.has_head:
        return None
    return head_accuracy(model.head(comp.new_embedding), comp.labels)


def comparison_key(old: str | os.PathLike, new: str | os.PathLike, dataset: ImageDataset | None) -> str:
    """Content identity of a comparison: SHA-256 of both files and of the dataset's content."""
    def digest(p: str | os.PathLike) -> str:  # a table may be shards: the digest of all of them
        return table_sha256(p) if is_table(p) else file_sha256(p)

    return make_key("comparison", digest(old), digest(new), dataset.content_hash() if dataset else "")
