"""Streamed comparison of two predictions tables in memory that does not grow with their rows.

Both tables are read in batches side by side (pyarrow). Where a batch of the old table
and the matching batch of the new one hold the same ids in the same order (the usual
case: both written by ``predict`` over one dataset), the rows are compared where they
are. Rows of batches that differ are decoded, checked and written in a compact form
(id, label, prediction, probability of the true class) to two spill files, which DuckDB
joins on ``id`` out of core (hash join with a memory limit, spilling to disk). Every
row adds to sums that merge exactly: :class:`~graceful_core.metrics.counts.FlipCounts`
(joint counts of label, old and new prediction, plus the flip-confidence split),
:class:`~graceful_core.streaming.sums.SliceSums` and the flip-id lists, which go to a
Parquet file (all of them) and to the result (the first ``id_cap`` in sort order).

Ids are checked for duplicates with 64-bit hashes partitioned to disk beyond a memory
budget (:mod:`graceful_core.streaming.ids`); every other check of the in-memory loader
runs on each batch (:class:`graceful_core.streaming.decode.Decoder`), with the same
messages.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from graceful_core.errors import InputError
from graceful_core.io.datasets import ImageDataset
from graceful_core.metrics.confidence import flip_confidence_split_from_true_probs
from graceful_core.metrics.counts import FlipCounts
from graceful_core.streaming.dataset_index import DatasetIndex
from graceful_core.streaming.decode import Decoder, Rows, text_column_modes
from graceful_core.streaming.flip_file import FlipWriter
from graceful_core.streaming.ids import DuplicateFinder, confirm_duplicate
from graceful_core.streaming.layout import TableLayout, iter_pieces, open_table
from graceful_core.streaming.pieces import Piece, paired, prefetched
from graceful_core.streaming.result import StreamedComparison
from graceful_core.streaming.spill import SpillWriter
from graceful_core.streaming.sums import SliceSums, SmallestIds
from graceful_core.vocabulary import StageProgress

__all__ = ["compare_tables_streamed", "DEFAULT_ID_CAP"]

#: Rows per batch (Parquet); small values in tests exercise the batch boundaries.
DEFAULT_BATCH_ROWS = 1 << 18
#: Flip ids kept in the result (the smallest in sort order); all of them go to the flip-id file.
DEFAULT_ID_CAP = 1000
#: DuckDB's memory limit for the out-of-core join.
DEFAULT_MEMORY_LIMIT = "1GB"
#: Bytes of id hashes (8 per row) held in memory by the duplicate check before it spills to disk.
ID_HASH_MEMORY = 128 << 20


def _p_true_of(dec: Decoder, r: Rows, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``p_true`` of chosen rows of a batch (the flips), computed only for them."""
    scores = r.scores
    assert scores is not None  # asked only when both tables have scores
    return lambda f: dec.p_true(scores[f], y[f])


class _Pass:
    """One pass over both tables: read side by side, spill what does not align, join it, sum."""

    def __init__(
        self,
        lo: TableLayout,
        ln: TableLayout,
        dataset: ImageDataset | None,
        work: str,
        flip_ids_path: str | None,
        id_cap: int,
        batch_rows: int,
        memory_limit: str,
        progress: StageProgress | None,
        names: tuple[str, str],
    ) -> None:
        self.lo, self.ln = lo, ln
        self.dataset = dataset
        ds = DatasetIndex(dataset) if dataset is not None else None
        self.dec = {"old": Decoder(lo, ds, text_column_modes(lo)), "new": Decoder(ln, ds, text_column_modes(ln))}
        self.work = work
        self.batch_rows = batch_rows
        self.memory_limit = memory_limit
        self.progress = progress
        self.names = names
        self.k = len(lo.classes)
        self.with_conf = lo.score_kind is not None and ln.score_kind is not None
        self.has_labels = {"old": dataset is not None or lo.has_label, "new": dataset is not None or ln.has_label}
        self.slice_side = (
            "old"
            if (dataset is not None and dataset.slices is not None) or lo.has_slice
            else ("new" if ln.has_slice else None)
        )
        self.counts = FlipCounts.zeros(self.k, with_confidence=self.with_conf)
        self.slices = SliceSums.empty() if self.slice_side else None
        self.neg, self.pos = SmallestIds(id_cap), SmallestIds(id_cap)
        self.finder = DuplicateFinder(os.path.join(work, "ids"), ID_HASH_MEMORY)
        self.rows = {"old": 0, "new": 0}
        self.in_dataset = {"old": 0, "new": 0}
        self.aligned = self.joined = 0
        self.spill: dict[str, SpillWriter] = {}
        for side in ("old", "new"):
            own = self.has_labels[side]
            self.spill[side] = SpillWriter(
                os.path.join(work, f"{side}.parquet"),
                labels=own,
                p_true=self.with_conf and own,
                scores=self.with_conf and not own,
                slices=self.slice_side == side,
            )
        self.flips = None
        if flip_ids_path is not None:
            self.flips = FlipWriter(flip_ids_path, lo.classes, self.with_conf, self.slice_side is not None)

    # ------------------------------------------------------------- matched rows
    def _add_matched(
        self,
        ids: pa.Array,
        y: np.ndarray,
        o: np.ndarray,
        n: np.ndarray,
        slices: pa.Array | None,
        p_old: Callable[[np.ndarray], np.ndarray] | None,
        p_new: Callable[[np.ndarray], np.ndarray] | None,
    ) -> None:
        """Add samples with label y, old prediction o, new prediction n to every sum.

        ``p_old(rows)`` / ``p_new(rows)`` give the true-class probabilities of the given
        rows (only flips are asked for), or are None without scores.
        """
        old_ok, new_ok = o == y, n == y
        neg, pos = old_ok & ~new_ok, ~old_ok & new_ok
        flips = np.flatnonzero(neg | pos)
        near = conf = None
        po = pn = None
        if p_old is not None and p_new is not None:  # both tables have scores (self.with_conf)
            po, pn = p_old(flips), p_new(flips)
            split = flip_confidence_split_from_true_probs(y[flips], o[flips], n[flips], po, pn)
            near, conf = split["negative_flips_near_boundary"], split["negative_flips_confident"]
        self.counts = self.counts + FlipCounts.from_predictions(
            y, o, n, self.k, negative_flips_near_boundary=near, negative_flips_confident=conf
        )
        if self.slices is not None:
            self.slices = self.slices + SliceSums.from_rows(slices, y, o, n)
        if flips.size:
            take = pa.array(flips, type=pa.int64())
            fid = ids.take(take)
            is_neg = neg[flips]
            self.neg.add(fid.filter(pa.array(is_neg)))
            self.pos.add(fid.filter(pa.array(~is_neg)))
            if self.flips is not None:
                self.flips.write(
                    fid, is_neg, y[flips], o[flips], n[flips], po, pn, None if slices is None else slices.take(take)
                )

    def _aligned(self, ro: Rows, rn: Rows) -> None:
        if ro.in_dataset is not None:
            keep = ro.in_dataset
            self.in_dataset["old"] += int(keep.sum())
            self.in_dataset["new"] += int(keep.sum())
            if not keep.all():
                ro, rn = ro.take(keep), rn.take(keep)
        if len(ro) == 0:
            return
        if ro.labels is not None and rn.labels is not None and self.dataset is None:
            bad = ro.labels != rn.labels
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                cls = self.lo.classes
                raise InputError(
                    rn.file,
                    f"label of id {ro.ids[row].as_py()!r} is {cls[rn.labels[row]]!r} here but "
                    f"{cls[ro.labels[row]]!r} in {Path(self.lo.source).name or 'the other table'}",
                )
        y = ro.labels if ro.labels is not None else rn.labels
        assert y is not None  # labels come from the dataset or a table (compare_tables_streamed refuses neither)
        slices = ro.slices if self.slice_side == "old" else rn.slices
        p_old = p_new = None
        if self.with_conf:
            p_old, p_new = _p_true_of(self.dec["old"], ro, y), _p_true_of(self.dec["new"], rn, y)
        self._add_matched(ro.ids, y, ro.pred, rn.pred, slices, p_old, p_new)
        self.aligned += len(ro)

    def _spill(self, side: str, r: Rows) -> None:
        if r.in_dataset is not None:
            self.in_dataset[side] += int(r.in_dataset.sum())
            if not r.in_dataset.all():
                r = r.take(r.in_dataset)
        if len(r) == 0:
            return
        p = None
        if self.with_conf and self.has_labels[side]:
            assert r.scores is not None and r.labels is not None  # both tables have scores; this side has labels
            p = self.dec[side].p_true(r.scores, r.labels)
        self.spill[side].write(r, p)

    # ------------------------------------------------------------------- phases
    def _decode(self, side: str, piece: Piece) -> Rows:
        return self.dec[side].decode(piece)

    def _stage(self) -> str:
        return f"compare {self.names[0]} / {self.names[1]}"

    def read(self) -> None:
        total = self.lo.n_rows or 0
        it_o = prefetched(iter_pieces(self.lo, self.batch_rows))
        it_n = prefetched(iter_pieces(self.ln, self.batch_rows))
        if self.progress:
            self.progress(self._stage(), 0, total)
        for po, pn in paired(it_o, it_n):
            ro = self._decode("old", po) if po is not None else None
            rn = self._decode("new", pn) if pn is not None else None
            if ro is not None and rn is not None and ro.ids.equals(rn.ids):
                self.finder.add_ids("shared", ro.ids)
                self._aligned(ro, rn)
            else:
                for side, r in (("old", ro), ("new", rn)):
                    if r is not None:
                        self.finder.add_ids(side, r.ids)
                        self._spill(side, r)
            self.rows["old"] += 0 if po is None else len(po)
            self.rows["new"] += 0 if pn is None else len(pn)
            if self.progress:
                self.progress(self._stage(), self.rows["old"], total)
        if self.progress and not total:  # the end of a stage whose size was not known (CSV)
            self.progress(self._stage(), self.rows["old"], self.rows["old"])
        for side, lay in (("old", self.lo), ("new", self.ln)):
            if self.rows[side] == 0:
                raise InputError(lay.source, "the table is empty (no rows)")
            self.spill[side].close()

    def check_duplicates(self) -> None:
        for side, lay in (("old", self.lo), ("new", self.ln)):
            cand = self.finder.candidates(side)
            if cand.size:
                ids = (p.batch.column(0) for p in iter_pieces(lay, self.batch_rows, ["id"]))
                dup = confirm_duplicate(cand, (c.cast(pa.string()) for c in ids))
                if dup is not None:
                    raise InputError(lay.source, f"duplicate id {dup!r}: ids must be unique")

    def join(self) -> None:
        """Join the spilled rows of both tables on id (DuckDB, out of core) and add the matches."""
        if self.spill["old"].rows == 0 or self.spill["new"].rows == 0:
            return
        import duckdb

        con = duckdb.connect(
            config={
                "memory_limit": self.memory_limit,
                "temp_directory": os.path.join(self.work, "duckdb"),
                "threads": max(1, os.cpu_count() or 1),
                "preserve_insertion_order": False,
            }
        )
        con.execute("SET enable_progress_bar = false")  # no bar on stdout: progress goes to the callback
        try:
            cols = []
            for side, alias in (("old", "o"), ("new", "n")):
                cols += [f'{alias}."{c}" AS "{alias}_{c}"' for c in self.spill[side].schema.names]
            files = [self.spill[s].path.replace("'", "''") for s in ("old", "new")]
            sql = (
                f"SELECT {', '.join(cols)} FROM read_parquet('{files[0]}') o "
                f"JOIN read_parquet('{files[1]}') n ON o.id = n.id"
            )
            reader = con.sql(sql).to_arrow_reader(self.batch_rows)
            total = min(self.spill["old"].rows, self.spill["new"].rows)
            done = 0
            for b in reader:
                self._joined_batch(b)
                done += b.num_rows
                if self.progress:
                    self.progress(f"join {self.names[0]} / {self.names[1]}", min(done, total), total)
        except duckdb.Error as e:
            raise InputError(self.ln.source, f"the join on 'id' failed ({str(e).splitlines()[0]})") from None
        finally:
            con.close()

    def _joined_batch(self, b: pa.RecordBatch) -> None:
        if b.num_rows == 0:
            return

        def col(name: str) -> np.ndarray | None:
            i = b.schema.get_field_index(name)
            return None if i < 0 else b.column(i).to_numpy(zero_copy_only=False)

        ids = b.column(b.schema.get_field_index("o_id"))
        lo_, ln_ = col("o_label"), col("n_label")
        if lo_ is not None and ln_ is not None and self.dataset is None:
            bad = lo_ != ln_
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                cls = self.lo.classes
                raise InputError(
                    self.ln.source,
                    f"label of id {ids[row].as_py()!r} is {cls[ln_[row]]!r} here but "
                    f"{cls[lo_[row]]!r} in {Path(self.lo.source).name or 'the other table'}",
                )
        labels = lo_ if lo_ is not None else ln_
        assert labels is not None  # the side with labels (the dataset's or its own) spilled them
        y = labels.astype(np.int64)

        def pred(alias: str) -> np.ndarray:  # every spill file has 'pred'
            return b.column(b.schema.get_field_index(f"{alias}_pred")).to_numpy(zero_copy_only=False).astype(np.int64)

        o, n = pred("o"), pred("n")
        slices = None
        if self.slice_side is not None:
            slices = b.column(b.schema.get_field_index(f"{self.slice_side[0]}_slice"))

        def prob(alias: str, side: str) -> Callable[[np.ndarray], np.ndarray] | None:
            if not self.with_conf:
                return None
            p = col(f"{alias}_p_true")
            if p is not None:
                return lambda f: p[f]
            sc = b.column(b.schema.get_field_index(f"{alias}_scores"))

            def from_scores(f: np.ndarray) -> np.ndarray:
                if len(f) == 0:  # no flip in this batch (reshape(0, -1) has no width to infer)
                    return np.zeros(0, dtype=np.float64)
                sub = sc.take(pa.array(f, type=pa.int64()))
                m = sub.flatten().to_numpy(zero_copy_only=False).reshape(len(f), -1)
                return self.dec[side].p_true(m, y[f])

            return from_scores

        self._add_matched(ids, y, o, n, slices, prob("o", "old"), prob("n", "new"))
        self.joined += b.num_rows

    def result(self) -> StreamedComparison:
        used = self.aligned + self.joined
        if self.dataset is not None:
            for side, lay in (("old", self.lo), ("new", self.ln)):
                if self.in_dataset[side] == 0:
                    raise InputError(lay.source, f"shares no sample id with the dataset {self.dataset.source}")
        if used == 0:
            raise InputError(
                self.ln.source, f"shares no sample id with {Path(self.lo.source).name or 'the other table'}"
            )
        return StreamedComparison(
            old_name=self.names[0],
            new_name=self.names[1],
            old_source=self.lo.source,
            new_source=self.ln.source,
            classes=self.lo.classes,
            counts=self.counts,
            slices=self.slices,
            negative_flips=self.neg.result(),
            positive_flips=self.pos.result(),
            flip_ids_path=None if self.flips is None else self.flips.path,
            dropped_ids=self.rows["old"] + self.rows["new"] - 2 * used,
            n_old_rows=self.rows["old"],
            n_new_rows=self.rows["new"],
            n_old_in_dataset=self.in_dataset["old"] if self.dataset is not None else self.rows["old"],
            n_new_in_dataset=self.in_dataset["new"] if self.dataset is not None else self.rows["new"],
            aligned_rows=self.aligned,
            joined_rows=self.joined,
            old_score_kind=self.lo.score_kind,
            new_score_kind=self.ln.score_kind,
            embeddings_skipped=self.lo.has_embedding or self.ln.has_embedding,
        )

    def close(self, commit: bool) -> None:
        for w in self.spill.values():
            w.close()
        if self.flips is not None:
            self.flips.close(commit)


def compare_tables_streamed(
    old: str | os.PathLike,
    new: str | os.PathLike,
    *,
    dataset: ImageDataset | None = None,
    classes: list[str] | None = None,
    old_name: str | None = None,
    new_name: str | None = None,
    flip_ids_path: str | os.PathLike | None = None,
    id_cap: int = DEFAULT_ID_CAP,
    batch_rows: int | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    spill_dir: str | os.PathLike | None = None,
    progress: StageProgress | None = None,
) -> StreamedComparison:
    """Compare two predictions tables in batches, in memory independent of their length.

    Same inputs and checks as loading both tables with
    :func:`graceful_core.io.tables.load_predictions_table` and comparing them with
    :func:`graceful_core.comparing.predictions.compare_predictions` (ids joined, labels from the old
    table, else the new one, else the dataset), minus the embedding cross-test.

    Parameters
    ----------
    old, new : path
        CSV/Parquet files, folders of Parquet files or glob patterns (shards).
    dataset : ImageDataset, optional
        Labels (and slices) come from it; rows whose id it lacks are dropped, and a
        table's own labels must agree with it.
    classes : list of str, optional
        The class list to use (e.g. a model's); default: the old table's.
    old_name, new_name : str, optional
        Display names (default: the tables' names).
    flip_ids_path : path, optional
        Write every flipped sample to this Parquet file (:data:`~graceful_core.streaming.flip_file.FLIP_FILE_COLUMNS`).
    id_cap : int
        Flip ids kept in the result per kind (the smallest in sort order); 0 keeps none.
    batch_rows : int, optional
        Rows per Parquet batch (default :data:`DEFAULT_BATCH_ROWS`).
    memory_limit : str
        DuckDB's memory limit for the join of rows whose order differs (e.g. ``"1GB"``).
    spill_dir : path, optional
        Where spill files go (default: the system's temporary folder); removed at the end.
    progress : callable, optional
        ``progress(stage, done_rows, total_rows)``; ``total_rows`` is 0 when unknown (CSV).

    Returns
    -------
    StreamedComparison

    Raises
    ------
    InputError
        Every error of the in-memory path: unreadable or empty tables, missing ``id``,
        duplicate or empty ids, NaN/inf scores, missing or unknown labels/predictions,
        class lists that differ, ``pred`` not the argmax, labels that disagree, no shared
        ids, no labels at all; messages name the file (the shard where one is at fault).

    Examples
    --------
    >>> import tempfile, pandas as pd, os
    >>> d = tempfile.mkdtemp()
    >>> pd.DataFrame({"id": ["a", "b", "c"], "label": [0, 1, 1], "pred": [0, 1, 0]}).to_csv(f"{d}/old.csv", index=False)
    >>> pd.DataFrame({"id": ["c", "b", "a"], "label": [1, 1, 0], "pred": [1, 0, 0]}).to_csv(f"{d}/new.csv", index=False)
    >>> r = compare_tables_streamed(f"{d}/old.csv", f"{d}/new.csv")
    >>> r.n_samples, r.counts.negative_flips, r.negative_flips.first, r.positive_flips.first
    (3, 1, ('b',), ('c',))
    """
    if batch_rows is None:
        batch_rows = DEFAULT_BATCH_ROWS  # read at call time: tests set it small to cross batch boundaries
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    lo = open_table(old, classes, dataset=dataset)
    ln = open_table(new, lo.classes, dataset=dataset)
    if dataset is None and not lo.has_label and not ln.has_label:
        raise InputError(
            ln.source or lo.source, "no true labels: give --data DATA, or a 'label' column in one of the tables"
        )
    names = (old_name or lo.name, new_name or ln.name)
    work = tempfile.mkdtemp(prefix="graceful-stream-", dir=None if spill_dir is None else os.fspath(spill_dir))
    p = None
    ok = False
    try:
        p = _Pass(
            lo,
            ln,
            dataset,
            work,
            None if flip_ids_path is None else os.fspath(flip_ids_path),
            id_cap,
            batch_rows,
            memory_limit,
            progress,
            names,
        )
        p.read()
        p.check_duplicates()
        p.join()
        out = p.result()
        ok = True
        return out
    finally:
        if p is not None:
            p.close(commit=ok)
        shutil.rmtree(work, ignore_errors=True)
        pa.default_memory_pool().release_unused()
