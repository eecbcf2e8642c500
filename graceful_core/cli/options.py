"""The arguments several commands share: number types, the two models and their data, how models run.

Each command's module (:mod:`graceful_core.cli.compare`, ``predict``, ``mitigate`` …) builds its
parser from these blocks, so an option that means the same thing is spelled, checked and
explained once.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from graceful_core.models.devices import DEVICES
from graceful_core.vocabulary import STREAM_CHOICES, STREAM_MIN_ROWS, STREAM_ROWS_ENV

__all__ = [
    "STREAM",
    "add_cache_option",
    "add_pair_arguments",
    "add_run_options",
    "add_stream_option",
    "percentage_points",
    "positive_int",
    "rate",
]


def _number_in(what: str, low: float, high: float, *, high_included: bool) -> Callable[[str], float]:
    """An argparse type: a float in ``[low, high]`` (or ``[low, high)``), refused with ``expected <what>``."""

    def parse(text: str) -> float:
        try:
            x = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        inside = low <= x <= high if high_included else low <= x < high
        if not inside or math.isnan(x):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return x

    return parse


#: A share: a number in [0, 1] (the gates' limits).
rate = _number_in("a number between 0 and 1", 0.0, 1.0, high_included=True)
#: Percentage points in [0, 100) (``mitigate --max-error-increase``).
percentage_points = _number_in("percentage points between 0 and 100", 0.0, 100.0, high_included=False)


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return n


def add_pair_arguments(
    parser: argparse.ArgumentParser, data_help: str, *, suffix: str = "", optional: bool = False
) -> None:
    """``OLD NEW --data DATA``: the deployed and the proposed model (files or tables) and their dataset.

    ``suffix`` is added to both models' help (what the tables must hold); ``optional`` makes both
    positionals optional (``graceful app`` opens on the bundled sample without them).
    """
    nargs = "?" if optional else None
    parser.add_argument("old", metavar="OLD", nargs=nargs, help=f"deployed model file or predictions table{suffix}")
    parser.add_argument("new", metavar="NEW", nargs=nargs, help=f"proposed model file or predictions table{suffix}")
    parser.add_argument("--data", metavar="DATA", help=data_help)


def add_cache_option(parser: argparse.ArgumentParser) -> None:
    """``--no-cache``: neither read nor write the inference cache."""
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the inference cache")


def add_run_options(parser: argparse.ArgumentParser, batch_size: bool = True) -> None:
    """``--device`` (and ``--batch-size``): where and in what batches models run."""
    parser.add_argument(
        "--device",
        default="auto",
        metavar="|".join(DEVICES),
        help="where models run: auto (CUDA when available, else CPU; ONNX on onnxruntime's CUDA "
        "provider when present), cpu, or cuda (exit 2 where there is none). Default: auto",
    )
    if batch_size:
        parser.add_argument(
            "--batch-size", type=positive_int, default=256, metavar="N", help="images per forward pass (default: 256)"
        )


def add_stream_option(parser: argparse.ArgumentParser, more: str) -> None:
    """``--stream auto|always|never``: compare predictions tables streamed (memory independent of their rows)."""
    parser.add_argument(
        "--stream",
        choices=STREAM_CHOICES,
        default=STREAM_CHOICES[0],
        help=f"compare predictions tables streamed, in memory that does not grow with their rows "
        f"(no per-sample data, no embedding cross-test): auto when a table has more than "
        f"{STREAM_MIN_ROWS:,} rows (${STREAM_ROWS_ENV} to change), always, or never; {more}. "
        f"Default: auto",
    )


#: ``--stream`` choice -> the ``stream`` argument of the core.
STREAM: dict[str, bool | None] = dict(zip(STREAM_CHOICES, (None, True, False)))
