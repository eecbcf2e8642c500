"""Command line: ``graceful {compare,predict,train,mitigate,matrix,export,app} ...`` (or ``python -m graceful_core ...``).

This module builds the parser from each command's module (:mod:`graceful_core.cli.compare`,
:mod:`~graceful_core.cli.predict`, :mod:`~graceful_core.cli.train`, :mod:`~graceful_core.cli.mitigate`,
:mod:`~graceful_core.cli.matrix`, :mod:`~graceful_core.cli.export`, :mod:`~graceful_core.cli.app`: each an
``add_parser(sub)`` and a ``run(args)``) and turns every failure into one line and an exit status.

Exit status (:mod:`graceful_core.vocabulary`: ``EXIT_OK``, ``EXIT_GATE``, ``EXIT_INPUT``): 0 report
written and gates passed; 1 a gate failed; 2 bad input, with one ``error: <file>: <problem>`` line
on stderr, no traceback and no partial output file.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from graceful_core.cli import app, compare, export, matrix, mitigate, predict, train
from graceful_core.cli.app import APP_ENV, app_command, app_environment
from graceful_core.cli.command_name import default_prog
from graceful_core.cli.compare import compare_gates, flip_ids_file_for
from graceful_core.cli.outputs import check_output_folders
from graceful_core.errors import InputError
from graceful_core.models.devices import require_device
from graceful_core.vocabulary import EXIT_GATE, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK

__all__ = [
    "APP_ENV",
    "COMMANDS",
    "app_command",
    "app_environment",
    "build_parser",
    "compare_gates",
    "default_prog",
    "flip_ids_file_for",
    "main",
]

#: Every subcommand, in the order ``--help`` lists them: its module's ``add_parser`` and ``run``.
COMMANDS: dict[str, tuple[Callable[[argparse._SubParsersAction], None], Callable[[argparse.Namespace], int]]] = {
    "compare": (compare.add_parser, compare.run),
    "predict": (predict.add_parser, predict.run),
    "train": (train.add_parser, train.run_train_command),
    "mitigate": (mitigate.add_parser, mitigate.run),
    "matrix": (matrix.add_parser, matrix.run),
    "export": (export.add_parser, export.run),
    "app": (app.add_parser, app.run),
}


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The ``graceful`` parser with every subcommand of :data:`COMMANDS`."""
    p = argparse.ArgumentParser(
        prog=prog or default_prog(),
        description="graceful: see what a model update would break before you ship it.",
        epilog=f"Exit status: {EXIT_OK} ok, {EXIT_GATE} a gate failed, {EXIT_INPUT} bad input. "
        "Cache: $GRACEFUL_CACHE_DIR.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_parser, _ in COMMANDS.values():
        add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit status (any failure is one ``error:`` line on stderr)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _, handler = COMMANDS[args.command]
    try:
        # Every output's folder must exist before any work is done (none is created).
        check_output_folders([p for p in (getattr(args, a, None) for a in ("out", "json", "html", "junit")) if p])
        if getattr(args, "device", None) is not None and getattr(args, "engine", "local") != "ray":
            args.device = require_device(args.device)
        return handler(args)
    except InputError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return EXIT_INPUT
    except (OSError, MemoryError) as e:
        where = getattr(e, "filename", None)
        msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
        print(f"error: {where + ': ' if where else ''}{msg}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # an unforeseen failure: still one line, unless debugging
        if os.environ.get("GRACEFUL_DEBUG"):
            raise
        print(
            f"error: unexpected {type(e).__name__}: {' '.join(str(e).split())[:300]} "
            "(set GRACEFUL_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return EXIT_INPUT
