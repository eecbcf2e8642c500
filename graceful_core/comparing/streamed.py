"""A streamed pass made a :class:`~graceful_core.results.comparison.Comparison`, in one place.

:func:`graceful_core.streaming.compare_tables_streamed` compares two predictions tables in
batches and returns a :class:`~graceful_core.streaming.StreamedComparison` (counts, per-slice
sums, capped flip ids). :func:`comparison_of_streamed` turns it into the frozen comparison
every face draws, for ``compare`` (:func:`graceful_core.comparing.sources.compare_sources`)
and for each pair of a streamed model set (:func:`graceful_core.comparing.lineage_streamed.model_matrix_streamed`).
"""

from __future__ import annotations

from graceful_core.io.datasets import ImageDataset
from graceful_core.metrics.flips import group_rates
from graceful_core.results.comparison import Comparison, ComparisonInputs, FlipIds, GroupFlips
from graceful_core.results.coverage import MissingRows
from graceful_core.streaming import SliceSums, StreamedComparison
from graceful_core.vocabulary import STREAMED_NO_CROSS_TEST, STREAMED_NO_LABEL_ISSUES

__all__ = ["comparison_of_streamed", "per_slice_from_sums", "streamed_missing"]


def comparison_of_streamed(
    r: StreamedComparison, dataset: ImageDataset | None = None, *, key: str = "", inputs: ComparisonInputs | None = None
) -> Comparison:
    """The frozen :class:`Comparison` of a streamed pass (the one place a streamed result becomes one).

    It has the pass's counts, per-slice table and capped flip ids (with the flip-id file, if
    written), no per-sample arrays, and says why it has no cross-test or label issues;
    ``missing`` counts the rows either table had beyond the compared ones (``dataset``: the
    images the tables were restricted to).
    """
    neg, pos = r.negative_flips, r.positive_flips
    return Comparison(
        old_name=r.old_name,
        new_name=r.new_name,
        classes=r.classes,
        counts=r.counts,
        flip_ids=FlipIds(neg.first, pos.first, neg.count, pos.count, cap=neg.cap, parquet=r.flip_ids_path),
        arrays=None,
        per_slice=None if r.slices is None else per_slice_from_sums(r.slices),
        compatibility_reason=STREAMED_NO_CROSS_TEST if r.embeddings_skipped else None,
        label_issues_reason=STREAMED_NO_LABEL_ISSUES,
        # regression_slices are computed from per-sample arrays and metadata, which a streamed
        # comparison does not hold: None here. Metadata-only slices could be tested from the per-slice sums
        # (r.slices: support and flips per slice value) when that analysis accepts counts.
        dropped_ids=r.dropped_ids,
        missing=streamed_missing(r, r.old_name, r.new_name, dataset),
        key=key,
        inputs=inputs,
    )


def per_slice_from_sums(sums: SliceSums) -> GroupFlips:
    """The per-slice table of a streamed comparison from its per-slice sums.

    ``sums`` is a :class:`graceful_core.streaming.SliceSums`; rates by the one formula of
    :func:`graceful_core.metrics.flips.group_rates` (count / support per slice).
    """
    table = group_rates(sums.support, sums.negative_flips, sums.positive_flips, sums.old_correct, sums.new_correct)
    for a in table.values():
        a.setflags(write=False)  # read-only, as every table of a comparison
    return GroupFlips("slice", tuple(sums.names), **{c: table[c] for c in GroupFlips.COLUMNS})


def streamed_missing(
    r: StreamedComparison, old_name: str, new_name: str, dataset: ImageDataset | None
) -> MissingRows | None:
    """The rows a streamed comparison left out (None when none)."""
    m = MissingRows(
        old_name,
        new_name,
        old_rows=int(r.n_old_rows),
        new_rows=int(r.n_new_rows),
        n_compared=int(r.counts.n_samples),
        dataset_images=None if dataset is None else len(dataset),
    )
    return m if m.any else None
