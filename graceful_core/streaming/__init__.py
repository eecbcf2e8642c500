"""Comparisons of predictions tables of any length: streamed in batches, joined out of core.

- :func:`compare_tables_streamed` (:mod:`.engine`): two tables (files, folders or globs of
  shards) to a :class:`StreamedComparison` (joint counts, per-slice sums, flip ids), in
  memory that does not grow with the number of rows.
- :func:`read_flip_page` / :func:`flip_page_count`: one sorted page of the flip-id file.
- :func:`estimated_rows`: a table's rows from its Parquet footers (estimated for CSV), to
  decide whether to stream (:func:`graceful_core.comparing.sources.should_stream`).
"""

from graceful_core.streaming.engine import (
    DEFAULT_ID_CAP,
    FLIP_FILE_COLUMNS,
    FLIP_KINDS,
    StreamedComparison,
    compare_tables_streamed,
    flip_page_count,
    read_flip_page,
)
from graceful_core.streaming.reader import estimated_rows
from graceful_core.streaming.sums import CappedIds, SliceSums

__all__ = [
    "DEFAULT_ID_CAP",
    "FLIP_FILE_COLUMNS",
    "FLIP_KINDS",
    "CappedIds",
    "SliceSums",
    "StreamedComparison",
    "compare_tables_streamed",
    "estimated_rows",
    "flip_page_count",
    "read_flip_page",
]
