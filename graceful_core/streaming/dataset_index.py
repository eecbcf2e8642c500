"""Where a table's ids sit in a dataset, and the dataset's labels in the table's class order."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from graceful_core.errors import InputError
from graceful_core.io.datasets import ImageDataset


class DatasetIndex:
    """Lookup of table ids in a dataset: positions, labels and slices."""

    def __init__(self, dataset: ImageDataset) -> None:
        self.dataset = dataset
        self._index = None
        self._ids_arrow: pa.Array | None = None

    def labels_for(self, classes: Sequence[str], table: str) -> np.ndarray:
        """The dataset's labels as indices into ``classes``, the class list of the table ``table``
        (attach_dataset_labels' rule)."""
        pos = {c: i for i, c in enumerate(classes)}
        missing = [c for c in self.dataset.classes if c not in pos]
        if missing:
            raise InputError(
                self.dataset.source,
                f"class names differ from the table {Path(table).name}'s: dataset has {missing[:5]} not in it",
            )
        mapping = np.array([pos[c] for c in self.dataset.classes], dtype=np.int64)
        return mapping[np.asarray(self.dataset.labels, dtype=np.int64)]

    def positions(self, ids: pa.Array, table_row: int) -> np.ndarray:
        """Index of each id in the dataset, -1 where absent."""
        ids_arrow = self._ids_arrow
        if ids_arrow is None:
            ids_arrow = self._ids_arrow = pa.array(self.dataset.ids, type=pa.string())
        n = len(ids)
        if table_row + n <= len(ids_arrow) and ids_arrow.slice(table_row, n).equals(ids):
            return np.arange(table_row, table_row + n, dtype=np.int64)  # the table is in the dataset's order
        if self._index is None:
            import pandas as pd

            self._index = pd.Index(np.asarray(self.dataset.ids, dtype=object))
        return self._index.get_indexer(ids.to_numpy(zero_copy_only=False).astype(object, copy=False)).astype(np.int64)
