"""Errors raised for bad input.

Every problem with a user's file is raised as :class:`InputError`, which names the
file and the problem in one line. The CLI turns it into ``error: <file>: <problem>``
with exit status 2; the app shows it in an ``st.error`` box.
"""

from __future__ import annotations

import os


class InputError(ValueError):
    """A user-supplied file (model, table, dataset, image) cannot be used.

    Parameters
    ----------
    path : str or os.PathLike or None
        The offending file, as the user named it (``None`` when no single file is at fault).
    problem : str
        What is wrong, in one line, without the path.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.problem = " ".join(str(problem).split())
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """One line: ``<path>: <problem>`` (or just the problem)."""
        return f"{self.path}: {self.problem}" if self.path else self.problem


def nonfinite_where(values, ids=None) -> str:
    """Where a numeric array first holds NaN or ±inf, in words: ``"NaN in row 3 (id 'a.png'), column 7"``.

    ``ids`` names the rows (default: row numbers only); the count of further bad rows follows.
    Empty when every value is finite.

    >>> import numpy as np
    >>> nonfinite_where(np.array([[0.0, 1.0], [np.nan, 2.0], [np.inf, 0.0]]))
    'NaN in row 1, column 0 (and 1 more row with NaN or infinite values)'
    >>> nonfinite_where(np.array([1.0, -np.inf]), ids=["a", "b"])
    "-inf in row 1 (id 'b')"
    """
    import numpy as np

    a = np.asarray(values)
    if a.dtype.kind not in "fc":
        return ""
    bad = ~np.isfinite(a)
    if not bad.any():
        return ""
    rows = np.flatnonzero(bad.reshape(len(a), -1).any(axis=1)) if a.ndim > 1 else np.flatnonzero(bad)
    r = int(rows[0])
    if a.ndim > 1:
        c = int(np.flatnonzero(bad[r].reshape(-1))[0])
        v, col = a[r].reshape(-1)[c], f", column {c}"
    else:
        v, col = a[r], ""
    word = "NaN" if np.isnan(v) else ("inf" if v > 0 else "-inf")
    who = f" (id {str(ids[r])!r})" if ids is not None else ""
    more = len(rows) - 1
    tail = f" (and {more} more row{'s' if more != 1 else ''} with NaN or infinite values)" if more else ""
    return f"{word} in row {r}{who}{col}{tail}"
