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
