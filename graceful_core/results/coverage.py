"""Which rows a comparison left out, and the rule that leaving rows out is an error unless allowed.

Two tables joined on ``id`` compare only the ids both hold (and, with a dataset, only
those the dataset holds). A comparison that silently ran on 9,000 of 10,000 samples would
pass a CI gate on a subset, so :func:`require_complete` refuses it unless the caller
allows it (``--allow-missing``); an allowed subset is then stated first in every summary
and next to every gate.

Examples
--------
>>> m = MissingRows("old.csv", "new.csv", old_rows=10, new_rows=9, n_compared=9)
>>> m.any, m.old_not_compared, m.new_not_compared
(True, 1, 0)
>>> m.sentence()
'compared 9 samples only: 1 row of old.csv has no match (in new.csv or the dataset)'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from graceful_core.errors import InputError

__all__ = ["MissingRows", "require_complete"]


def _rows(n: int) -> str:
    return f"{n:,} row" if n == 1 else f"{n:,} rows"


@dataclass(frozen=True)
class MissingRows:
    """Rows read from each side (and images of the dataset) against the samples compared.

    Attributes
    ----------
    old_source, new_source : str
        The two sides' names (file names).
    old_rows, new_rows : int
        Rows read from each side.
    n_compared : int
        Samples compared (ids in both sides, and in the dataset when there is one).
    dataset_images : int or None
        Images in the dataset, when one was given with two tables.
    """

    old_source: str
    new_source: str
    old_rows: int
    new_rows: int
    n_compared: int
    dataset_images: int | None = None

    @property
    def old_not_compared(self) -> int:
        return self.old_rows - self.n_compared

    @property
    def new_not_compared(self) -> int:
        return self.new_rows - self.n_compared

    @property
    def dataset_not_compared(self) -> int:
        return 0 if self.dataset_images is None else max(0, self.dataset_images - self.n_compared)

    @property
    def any(self) -> bool:
        return bool(self.old_not_compared or self.new_not_compared or self.dataset_not_compared)

    def sentence(self) -> str:
        """One line: how many were compared and which side lost how many rows."""
        parts = []
        for n, src, other in (
            (self.old_not_compared, self.old_source, self.new_source),
            (self.new_not_compared, self.new_source, self.old_source),
        ):
            if n:
                parts.append(f"{_rows(n)} of {src} {'has' if n == 1 else 'have'} no match (in {other} or the dataset)")
        if self.dataset_not_compared:
            parts.append(
                f"{self.dataset_not_compared:,} of the dataset's {self.dataset_images:,} images are in no table"
            )
        return f"compared {self.n_compared:,} samples only: " + "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """The report's ``missing_rows`` object."""
        out = {
            "old_rows": self.old_rows,
            "new_rows": self.new_rows,
            "n_compared": self.n_compared,
            "old_rows_not_compared": self.old_not_compared,
            "new_rows_not_compared": self.new_not_compared,
        }
        if self.dataset_images is not None:
            out["dataset_images"] = self.dataset_images
            out["dataset_images_not_compared"] = self.dataset_not_compared
        return out


def require_complete(missing: MissingRows | None, allow_missing: bool) -> None:
    """InputError when rows were left out and ``allow_missing`` is False.

    >>> require_complete(MissingRows("o", "n", 3, 3, 3), False)  # nothing missing: fine
    >>> require_complete(MissingRows("o", "n", 4, 3, 3), False)
    Traceback (most recent call last):
    ...
    graceful_core.errors.InputError: n: compared 3 samples only: 1 row of o has no match (in n or the dataset): give both sides the same ids, or pass --allow-missing (allow_missing=True) to compare the shared ones
    """
    if missing is None or not missing.any or allow_missing:
        return
    where = missing.new_source if missing.old_not_compared else missing.old_source
    raise InputError(
        where,
        f"{missing.sentence()}: give both sides the same ids, or pass --allow-missing "
        "(allow_missing=True) to compare the shared ones",
    )


def name_of(source: Any) -> str:
    """A side's display name: a file's base name, else its text."""
    return os.path.basename(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else str(source)
