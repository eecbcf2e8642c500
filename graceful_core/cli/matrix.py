"""``graceful matrix MODEL ...``: pairwise NFR, BTC, accuracy and cross-test matrices over a set of models."""

from __future__ import annotations

import argparse

from graceful_core.cli.options import STREAM, add_run_options, add_stream_option
from graceful_core.cli.outputs import write_json
from graceful_core.cli.progress import bar
from graceful_core.comparing.lineage import STAGE_PAIRS, model_matrix_report
from graceful_core.report.lineage_text import matrix_text
from graceful_core.vocabulary import EXIT_OK

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``matrix`` subcommand's arguments."""
    m = sub.add_parser(
        "matrix",
        help="pairwise NFR/BTC/accuracy/cross-test matrices over a set of models",
        description="Compare N >= 2 models (an ordered lineage, plus variants) on one dataset.",
    )
    m.add_argument("models", nargs="+", metavar="MODEL", help="model files or predictions tables, oldest first")
    m.add_argument("--data", metavar="DATA")
    m.add_argument("--json", metavar="FILE")
    add_stream_option(m, "streamed, each pair of tables is one streamed pass")
    add_run_options(m)


def _progress(stage: str, done: int, total: int) -> None:
    if stage != STAGE_PAIRS:  # the stderr bar counts images; the cross-tests take seconds
        bar(stage, done, total)


def run(args: argparse.Namespace) -> int:
    """Compare every pair, write the JSON when asked, print the matrices; exit status 0."""
    model_set = model_matrix_report(
        args.models,
        args.data,
        progress=_progress,
        device=args.device,
        batch_size=args.batch_size,
        stream=STREAM[args.stream],
    )
    if args.json:
        write_json(args.json, model_set.to_report())
    print(matrix_text(model_set))
    return EXIT_OK
