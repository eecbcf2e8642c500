"""Predictions tables (``docs/formats.md``): reading, joining on ``id``, writing.

A table has one row per sample: ``id`` (string, unique), ``pred`` and/or class scores,
optionally ``label``, an embedding and a ``slice``. Scores and embeddings are list
columns ``logits`` / ``probs`` / ``embedding`` in Parquet, wide columns
``logit_0..logit_{K-1}`` / ``prob_0..`` / ``emb_0..emb_{D-1}`` in CSV (the wide form is
accepted in Parquet too). ``label`` and ``pred`` are class indices or class names.

Everything is read with pyarrow and converted column-wise (no per-row Python), so a
table of 10 million rows loads in seconds: list columns are flattened and reshaped,
not stacked row by row.

One module per job: :mod:`.files` (which files make a table), :mod:`.reading` (files to
Arrow, the ``id`` checks), :mod:`.columns` (the column layout and its decoding),
:mod:`.loading` (a table to :class:`~graceful_core.types.Predictions`), :mod:`.joining`
(two models' rows on ``id``) and :mod:`.writing`. This package exports what the rest of graceful
reads and writes tables with; the streamed reader (:mod:`graceful_core.streaming`) also decodes
its batches with the functions of :mod:`.columns`, so both paths check a table the same way.
"""

from graceful_core.io.tables.columns import (
    CLASSES_KEY,
    EMBEDDING_COLUMN,
    EMBEDDING_PREFIX,
    SCORE_FORMS,
    has_class_names,
    unnamed_scores_problem,
)
from graceful_core.io.tables.files import (
    GLOB_CHARS,
    is_glob,
    is_table_source,
    table_display_name,
    table_files,
    table_sha256,
)
from graceful_core.io.tables.joining import join_predictions
from graceful_core.io.tables.loading import load_predictions_table
from graceful_core.io.tables.reading import MAX_TABLE_ROWS
from graceful_core.io.tables.writing import predictions_to_arrow, write_predictions_table

__all__ = [
    "CLASSES_KEY",
    "EMBEDDING_COLUMN",
    "EMBEDDING_PREFIX",
    "GLOB_CHARS",
    "MAX_TABLE_ROWS",
    "SCORE_FORMS",
    "has_class_names",
    "is_glob",
    "is_table_source",
    "join_predictions",
    "load_predictions_table",
    "predictions_to_arrow",
    "table_display_name",
    "table_files",
    "table_sha256",
    "unnamed_scores_problem",
    "write_predictions_table",
]
