"""Writing predictions as a table: Parquet with list columns and the class list, or wide CSV; atomically."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa

from graceful_core.cache import atomic_output
from graceful_core.io.tables.columns import CLASSES_KEY, EMBEDDING_COLUMN, EMBEDDING_PREFIX, SCORE_FORMS
from graceful_core.io.tables.files import suffix_kind
from graceful_core.types import Predictions


def _fixed_list(m: np.ndarray) -> pa.Array:
    m = np.ascontiguousarray(m, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(m.reshape(-1)), m.shape[1]).cast(pa.list_(pa.float32()))


def predictions_to_arrow(preds: Predictions, wide: bool) -> pa.Table:
    """The table of ``preds``: ``id``, ``label`` and ``pred`` as class names, scores, embedding.

    ``wide=True`` gives ``logit_j``/``prob_j``/``emb_j`` columns (CSV), else list columns
    plus schema metadata ``graceful.classes`` (Parquet).
    """
    n = len(preds)
    names = np.asarray(preds.classes, dtype=object)
    cols: dict[str, pa.Array] = {"id": pa.array(np.asarray(preds.ids).astype(str).astype(object), type=pa.string())}
    if preds.labels is not None:
        cols["label"] = pa.array(names[np.asarray(preds.labels)], type=pa.string())
    cols["pred"] = pa.array(names[np.asarray(preds.pred)], type=pa.string())
    blocks = []
    if preds.scores is not None:
        kind = preds.score_kind if preds.score_kind in SCORE_FORMS else "logits"
        blocks.append((kind, SCORE_FORMS[kind], preds.scores))
    if preds.embedding is not None:
        blocks.append((EMBEDDING_COLUMN, EMBEDDING_PREFIX, preds.embedding))
    for list_name, prefix, m in blocks:
        m = np.asarray(m, dtype=np.float32)
        if m.ndim != 2 or m.shape[0] != n:
            raise ValueError(f"{list_name} must be [{n}, K], got {m.shape}")
        if wide:
            for j in range(m.shape[1]):
                cols[f"{prefix}{j}"] = pa.array(m[:, j])
        else:
            cols[list_name] = _fixed_list(m)
    if preds.extra.get("slices") is not None:
        cols["slice"] = pa.array(np.asarray(preds.extra["slices"]).astype(str).astype(object), type=pa.string())
    meta = None if wide else {CLASSES_KEY: json.dumps(list(map(str, preds.classes))).encode()}
    return pa.table(cols, metadata=meta)


def write_predictions_table(preds: Predictions, path: str | os.PathLike) -> None:
    """Write ``preds`` as Parquet (``.parquet``/``.pq``) or CSV (``.csv``), atomically.

    The file is written to a temporary file in the same folder and moved into place
    with ``os.replace``, so a reader never sees half a table. Labels and predictions
    are written as class names; Parquet keeps the class list in its schema metadata.

    Raises
    ------
    InputError
        Unknown suffix.
    """
    path = os.fspath(path)
    kind = suffix_kind(path)
    table = predictions_to_arrow(preds, wide=(kind == "csv"))

    with atomic_output(path) as tmp:
        if kind == "csv":
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, tmp)
        else:
            import pyarrow.parquet as pq

            pq.write_table(table, tmp)
