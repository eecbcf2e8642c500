"""Comparisons of predictions tables of any length: streamed in batches, joined out of core.

- :func:`compare_tables_streamed` (:mod:`.engine`): two tables (files, folders or globs of
  shards) to a :class:`StreamedComparison` (:mod:`.result`: joint counts, per-slice sums, flip
  ids), in memory that does not grow with the number of rows.
- :func:`read_flip_page` / :func:`flip_page_count` (:mod:`.flip_file`): one sorted page of the
  flip-id file.
- :func:`estimated_rows` (:mod:`.layout`): a table's rows from its Parquet footers (estimated
  for CSV), to decide whether to stream (:func:`graceful_core.comparing.sources.should_stream`).

Inside: :mod:`.layout` (a table's columns and class list, read once), :mod:`.pieces` (its files
as batches, two tables side by side), :mod:`.decode` (one batch checked and decoded),
:mod:`.dataset_index` (ids looked up in a dataset), :mod:`.spill` (rows joined out of core),
:mod:`.ids` (the duplicate check), :mod:`.sums` and :mod:`.kernels`.
"""

from graceful_core.streaming.engine import DEFAULT_ID_CAP, compare_tables_streamed
from graceful_core.streaming.flip_file import FLIP_FILE_COLUMNS, FLIP_KINDS, flip_page_count, read_flip_page
from graceful_core.streaming.layout import estimated_rows
from graceful_core.streaming.result import StreamedComparison
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
