"""Spill files: rows of one table whose batch did not align with the other table's, written
compactly (id, label, prediction, probability of the true class or scores, slice) for the
join on ``id`` out of core.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from graceful_core.streaming.decode import Rows


class SpillWriter:
    """Compact rows of one table for the join: id, label, pred, p_true or scores, slice."""

    def __init__(self, path: str, *, labels: bool, p_true: bool, scores: bool, slices: bool) -> None:
        fields = [("id", pa.string()), ("pred", pa.int32())]
        if labels:
            fields.append(("label", pa.int32()))
        if p_true:
            fields.append(("p_true", pa.float64()))
        if scores:
            fields.append(("scores", pa.list_(pa.float32())))
        if slices:
            fields.append(("slice", pa.string()))
        self.schema = pa.schema(fields)
        self.path = path
        self.writer = None
        self.rows = 0

    def write(self, r: Rows, p_true: np.ndarray | None) -> None:
        import pyarrow.parquet as pq

        if self.writer is None:
            # a temporary file read once: no compression, statistics or dictionaries but for slices
            self.writer = pq.ParquetWriter(
                self.path,
                self.schema,
                compression="none",
                # pyarrow takes a list of columns here (ParquetWriter's docs); its signature is inferred as bool
                use_dictionary=["slice"],  # pyright: ignore[reportArgumentType]
                write_statistics=False,
            )
        cols = {"id": r.ids.cast(pa.string()), "pred": pa.array(r.pred.astype(np.int32))}
        names = self.schema.names
        if "label" in names:
            assert r.labels is not None  # the schema has 'label' only for a side whose rows carry labels
            cols["label"] = pa.array(r.labels.astype(np.int32))
        if "p_true" in names:
            cols["p_true"] = pa.array(p_true)
        if "scores" in names:
            m = np.ascontiguousarray(r.scores, dtype=np.float32)
            cols["scores"] = pa.FixedSizeListArray.from_arrays(pa.array(m.reshape(-1)), m.shape[1]).cast(
                pa.list_(pa.float32())
            )
        if "slice" in names:
            assert r.slices is not None  # the schema has 'slice' only for the side the slices come from
            cols["slice"] = r.slices.cast(pa.string())
        self.writer.write_table(pa.table(cols, schema=self.schema))
        self.rows += len(r)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
