"""The name the command line goes by in help texts and hints: ``graceful`` or ``python -m graceful_core``.

Its own module so that every command's module (:mod:`graceful_core.cli.commands`, the training
command) can name the command without importing the command line.
"""

from __future__ import annotations

import os
import sys


def default_prog(argv0: str | None = None) -> str:
    """``graceful`` when run as the installed command, else ``python -m graceful_core`` (for help texts).

    Examples
    --------
    >>> default_prog("/usr/local/bin/graceful"), default_prog("/src/graceful_core/__main__.py")
    ('graceful', 'python -m graceful_core')
    """
    name = os.path.basename(argv0 if argv0 is not None else (sys.argv[0] if sys.argv else ""))
    return "graceful" if name.startswith("graceful") and not name.endswith(".py") else "python -m graceful_core"
