"""The result of a streamed comparison: sums that merge exactly, capped flip ids, row counts.

Made by :func:`graceful_core.streaming.engine.compare_tables_streamed`; turned into a
report's comparison by :mod:`graceful_core.comparing.sources`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graceful_core.metrics.counts import FlipCounts
from graceful_core.streaming.sums import CappedIds, SliceSums


@dataclass(frozen=True, eq=False)
class StreamedComparison:
    """Everything a report holds about two tables, computed without per-sample arrays.

    The summary metrics, the per-class table and the transition matrix are functions of
    ``counts`` (:class:`~graceful_core.metrics.counts.FlipCounts`); per-slice tables of
    ``slices``.

    Attributes
    ----------
    old_name, new_name : str
        Display names.
    old_source, new_source : str
        The tables as the user named them.
    classes : tuple of str
        Class names; the axes of ``counts.joint``.
    counts : FlipCounts
        ``joint[y, a, b]`` over the samples in both tables (and the dataset, if given),
        with the flip-confidence split when both tables have class scores.
    slices : SliceSums or None
        Per-slice counts when the dataset or a table defines slices.
    negative_flips, positive_flips : CappedIds
        Count and the first ``cap`` ids in sort order.
    flip_ids_path : str or None
        The Parquet file with every flipped sample (columns :data:`~graceful_core.streaming.flip_file.FLIP_FILE_COLUMNS`),
        when one was asked for.
    dropped_ids : int
        Rows of either table not compared: ``(rows_old − N) + (rows_new − N)``.
    n_old_rows, n_new_rows : int
        Rows read from each table.
    n_old_in_dataset, n_new_in_dataset : int
        Rows of each table whose id the dataset has (all rows without a dataset).
    aligned_rows, joined_rows : int
        Samples matched by position (same ids in the same order) and by the join.
    old_score_kind, new_score_kind : str or None
        ``"logits"``, ``"probs"`` or None (no scores).
    embeddings_skipped : bool
        A table has embeddings, which a streamed comparison does not read (the
        embedding cross-test needs them all in memory).
    """

    old_name: str
    new_name: str
    old_source: str
    new_source: str
    classes: tuple[str, ...]
    counts: FlipCounts
    slices: SliceSums | None
    negative_flips: CappedIds
    positive_flips: CappedIds
    flip_ids_path: str | None
    dropped_ids: int
    n_old_rows: int
    n_new_rows: int
    n_old_in_dataset: int
    n_new_in_dataset: int
    aligned_rows: int
    joined_rows: int
    old_score_kind: str | None
    new_score_kind: str | None
    embeddings_skipped: bool

    @property
    def n_samples(self) -> int:
        return self.counts.n_samples

    @property
    def transition_matrix(self) -> np.ndarray:
        """``T[a, b]``: samples with old prediction a and new prediction b."""
        return self.counts.transition_matrix
