"""Per-sample metadata: the extra columns of a dataset manifest or a predictions table.

A manifest (``id``, ``path``, ``label``) and a predictions table (``id``, ``label``,
``pred``, scores, embedding) may carry more columns: a site, a camera, a brightness.
graceful keeps them, typed and aligned with the samples, as a :class:`SampleMetadata`,
so that the regression-slice analysis (:mod:`graceful_core.metrics.slices`) can test
every value for concentrated negative flips (``docs/formats.md``, "Metadata columns").

Which columns are metadata:

- of a **manifest**: every column other than ``id``, ``path`` and ``label`` (``slice``
  included); a folder dataset's ``slices.csv`` gives one column, ``slice``;
- of a **predictions table**: every column of scalars other than ``id``, ``label``,
  ``pred``, the scores (``logits``, ``probs``, ``scores``, ``logit_j``, ``prob_j``,
  ``score_j``) and the embedding (``embedding``, ``emb_j``) (:func:`is_reserved_column`);
  list or struct columns are left out.

Types: a Parquet column keeps its type; a CSV column is a number when every non-empty
cell is one (as pyarrow reads a table; a manifest is read as text and typed the same
way), else text. Empty cells and nulls are missing values (NaN for numbers, None for
text).

Examples
--------
>>> import pandas as pd
>>> m = SampleMetadata.from_frame(pd.DataFrame({"site": ["a", None, "b"], "lux": [0.5, 1.5, None]}))
>>> m.names, len(m)
(('site', 'lux'), 3)
>>> m.take([2, 0, -1]).to_frame().to_dict("list")
{'site': ['b', 'a', None], 'lux': [nan, 0.5, nan]}
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

from graceful_core.vocabulary import RESERVED_COLUMNS, is_reserved_column

__all__ = ["SampleMetadata", "RESERVED_COLUMNS", "is_reserved_column", "typed_text_column"]


def _column_array(s: pd.Series) -> np.ndarray | None:
    """One metadata column as a NumPy array: numbers as int64/float64 (NaN where missing),
    booleans as bool (object with None where missing), datetimes as datetime64, anything
    else as an object array of str with None where missing; None for a column of lists."""
    s = s.reset_index(drop=True)
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    kind = s.dtype.kind if isinstance(s.dtype, np.dtype) else None
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy(dtype=object, na_value=None) if s.isna().any() else s.to_numpy(dtype=bool)
    if pd.api.types.is_integer_dtype(s.dtype):
        return s.to_numpy(dtype=np.float64, na_value=np.nan) if s.isna().any() else s.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(s.dtype):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    if kind == "M" or pd.api.types.is_datetime64_any_dtype(s.dtype):
        return s.to_numpy()
    values = s.to_numpy(dtype=object, na_value=None)
    if pd.api.types.is_string_dtype(s.dtype) and s.dtype != object:  # str or None already
        blank = s.str.strip().eq("").fillna(False).to_numpy(dtype=bool)
        if blank.any():  # a CSV's empty cell is a missing value, as in a manifest
            values[blank] = None
        return values
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out[i] = None
        elif isinstance(v, (list, tuple, dict, np.ndarray)):
            return None
        else:
            t = v if isinstance(v, str) else str(v)
            out[i] = t if t.strip() else None
    return out


def typed_text_column(values: Sequence[str]) -> np.ndarray:
    """Text cells (a CSV manifest's) typed as a table reader types them.

    Empty or blank cells are missing. When every other cell is a number the column is
    numeric (int64 if all are whole and none is missing, else float64 with NaN), else
    it stays text (object array, None where missing).

    >>> typed_text_column(["3", "", "4.5"]).tolist(), typed_text_column(["a", " ", "3"]).tolist()
    ([3.0, nan, 4.5], ['a', None, '3'])
    >>> typed_text_column(["1", "2"]).dtype
    dtype('int64')
    """
    cells = [None if v is None or not str(v).strip() else str(v) for v in values]
    present = [v for v in cells if v is not None]
    if present:
        # cast: to_numeric returns a Series for a Series; pandas annotates it with the union over all input kinds
        nums = cast(pd.Series, pd.to_numeric(pd.Series(present, dtype=object), errors="coerce"))
        if not nums.isna().any():
            out = np.array([np.nan if v is None else float(v) for v in cells], dtype=np.float64)
            if len(present) == len(cells) and np.isfinite(out).all() and (out == np.round(out)).all():
                return out.astype(np.int64)
            return out
    return np.array(cells, dtype=object)


@dataclass(frozen=True, eq=False)
class SampleMetadata:
    """Typed metadata columns, one value per sample, aligned with a list of samples.

    The arrays are read-only; :meth:`to_frame` gives a new DataFrame each time, so a
    comparison that holds a :class:`SampleMetadata` cannot be changed through it.

    Attributes
    ----------
    names : tuple of str
        Column names, unique, in the order of the file they came from.
    columns : tuple of np.ndarray
        One array per name, all of one length: int64/float64 (NaN = missing), bool,
        datetime64, or object arrays of str (None = missing).
    """

    names: tuple[str, ...]
    columns: tuple[np.ndarray, ...]

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ValueError(f"metadata has the column {dup!r} more than once")
        if len(names) != len(self.columns):
            raise ValueError(f"{len(names)} names for {len(self.columns)} columns")
        cols = []
        for c in self.columns:
            a = np.asarray(c)
            if a.ndim != 1:
                raise ValueError(f"a metadata column must be 1-D, got shape {a.shape}")
            a = a.view()
            a.setflags(write=False)
            cols.append(a)
        if len({a.shape[0] for a in cols}) > 1:
            raise ValueError(f"metadata columns differ in length: {[a.shape[0] for a in cols]}")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "columns", tuple(cols))

    def __len__(self) -> int:
        return int(self.columns[0].shape[0]) if self.columns else 0

    @classmethod
    def from_frame(cls, df: pd.DataFrame, *, skip_reserved: bool = True) -> SampleMetadata | None:
        """The usable columns of ``df`` (reserved names and columns of lists left out), or None if none."""
        names, cols = [], []
        for name, column in df.items():
            if skip_reserved and is_reserved_column(str(name)):
                continue
            a = _column_array(column)
            if a is not None:
                names.append(str(name))
                cols.append(a)
        return cls(tuple(names), tuple(cols)) if names else None

    @classmethod
    def from_arrow(cls, table: Any) -> SampleMetadata | None:
        """The metadata columns of a predictions table read by pyarrow (see the module docs), or None."""
        import pyarrow as pa

        keep = [
            f.name
            for f in table.schema
            if not is_reserved_column(f.name)
            and not (
                pa.types.is_list(f.type)
                or pa.types.is_large_list(f.type)
                or pa.types.is_fixed_size_list(f.type)
                or pa.types.is_struct(f.type)
                or pa.types.is_map(f.type)
            )
        ]
        if not keep:
            return None
        return cls.from_frame(table.select(keep).to_pandas())

    def take(self, index: Any) -> SampleMetadata:
        """Rows ``index`` (positions; ``-1`` gives a missing value), as a new SampleMetadata."""
        idx = np.asarray(index, dtype=np.int64).reshape(-1) if not isinstance(index, slice) else index
        if isinstance(idx, slice):
            return SampleMetadata(self.names, tuple(a[idx] for a in self.columns))
        missing = idx < 0
        if not missing.any():
            return SampleMetadata(self.names, tuple(a[idx] for a in self.columns))
        out = []
        safe = np.where(missing, 0, idx)
        for a in self.columns:
            got = a[safe] if len(a) else np.empty(len(idx), dtype=a.dtype)
            if a.dtype.kind == "f":
                got = got.copy()
                got[missing] = np.nan
            elif a.dtype.kind == "i":
                got = got.astype(np.float64)
                got[missing] = np.nan
            elif a.dtype.kind == "M":
                got = got.copy()
                got[missing] = np.datetime64("NaT")
            else:
                got = got.astype(object)
                got[missing] = None
            out.append(got)
        return SampleMetadata(self.names, tuple(out))

    def combined(self, other: SampleMetadata | None) -> SampleMetadata:
        """These columns, then ``other``'s whose names are not among them (same rows)."""
        if other is None:
            return self
        if len(other) != len(self):
            raise ValueError(f"metadata of {len(other)} rows cannot join metadata of {len(self)} rows")
        extra = [(n, c) for n, c in zip(other.names, other.columns) if n not in set(self.names)]
        return SampleMetadata(self.names + tuple(n for n, _ in extra), self.columns + tuple(c for _, c in extra))

    def to_frame(self) -> pd.DataFrame:
        """A new DataFrame with one column per name (text columns keep None for missing)."""
        return pd.DataFrame(
            {
                n: pd.Series(c, dtype=c.dtype if c.dtype.kind != "O" else object)
                for n, c in zip(self.names, self.columns)
            }
        )

    def column(self, name: str) -> np.ndarray:
        """The read-only array of one column; KeyError if there is none of that name."""
        try:
            return self.columns[self.names.index(name)]
        except ValueError:
            raise KeyError(name) from None


def combine(parts: Iterable[SampleMetadata | None]) -> SampleMetadata | None:
    """The columns of every part, earlier parts winning on a shared name; None if all are None."""
    out: SampleMetadata | None = None
    for p in parts:
        if p is None:
            continue
        out = p if out is None else out.combined(p)
    return out
