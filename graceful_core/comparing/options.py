"""The run options every comparing entry point shares, declared and documented once.

:func:`~graceful_core.comparing.sources.compare_sources`,
:func:`~graceful_core.comparing.lineage.model_matrix_report` and
:func:`~graceful_core.comparing.sources.predictions_for` take them as keywords
(``**run: Unpack[RunKeywords]``) and read them as one frozen :class:`RunOptions`; the Python
API (:func:`graceful_core.api.compare`) passes its own keywords of the same names on. The
dataset is not among them: it is what is compared, not how (``data`` / ``dataset`` of each
entry point).

Examples
--------
>>> opts = run_options(device="cpu", batch_size=64)
>>> opts.device, opts.batch_size, opts.use_cache, opts.progress is None
('cpu', 64, True, True)
>>> run_options(batch_sise=64)
Traceback (most recent call last):
...
TypeError: unknown run option 'batch_sise' (the run options are progress, use_cache, device, batch_size)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict, Unpack

from graceful_core.results.comparison import ComparisonInputs
from graceful_core.results.coverage import MissingRows
from graceful_core.types import Predictions
from graceful_core.vocabulary import StageProgress

__all__ = ["RunOptions", "RunKeywords", "run_options", "CompareKeywords", "DEFAULT_BATCH_SIZE", "DEFAULT_DEVICE"]

#: Images per forward pass of a model file.
DEFAULT_BATCH_SIZE = 256
#: Where model files run: ``auto`` is CUDA when available, else the CPU.
DEFAULT_DEVICE = "auto"


@dataclass(frozen=True)
class RunOptions:
    """How the models of a comparison are run and heard from.

    Attributes
    ----------
    progress : callable, optional
        ``progress(stage, done, total)``: per model file while it runs (the stage is the
        file's name), then 0/1 and 1/1 around each other long stage (embedding cross-test,
        clustering, the pairs of a model set).
        :class:`graceful_core.cli.progress.StderrProgress` draws it on stderr.
    use_cache : bool
        Read and write the on-disk inference cache (:mod:`graceful_core.inference`).
    device : {"auto", "cpu", "cuda"}
        Where model files run (``auto``: CUDA when available).
    batch_size : int
        Images per forward pass of a model file.
    """

    progress: StageProgress | None = None
    use_cache: bool = True
    device: str = DEFAULT_DEVICE
    batch_size: int = DEFAULT_BATCH_SIZE

    def stage(self, name: str) -> Callable[[int, int], None] | None:
        """``progress`` bound to one stage name (None without progress)."""
        progress = self.progress
        if progress is None:
            return None
        return lambda done, total: progress(name, done, total)


class RunKeywords(TypedDict, total=False):
    """The fields of :class:`RunOptions` as keyword arguments (``**run: Unpack[RunKeywords]``)."""

    progress: StageProgress | None
    use_cache: bool
    device: str
    batch_size: int


_FIELDS = tuple(f.name for f in dataclasses.fields(RunOptions))


def run_options(**run: Unpack[RunKeywords]) -> RunOptions:
    """The :class:`RunOptions` of keyword arguments; a misspelt keyword is a TypeError naming it."""
    unknown = [k for k in run if k not in _FIELDS]
    if unknown:
        raise TypeError(f"unknown run option {unknown[0]!r} (the run options are {', '.join(_FIELDS)})")
    return RunOptions(**run)


class CompareKeywords(TypedDict, total=False):
    """The keywords :func:`~graceful_core.comparing.predictions.compare_predictions` and
    :func:`~graceful_core.comparing.labelfree.compare_unlabelled` share (documented on the former),
    so that a caller that does not know yet whether there are labels gathers them once."""

    old_name: str | None
    new_name: str | None
    with_compatibility: bool
    with_slices: bool
    key: str
    inputs: ComparisonInputs | None
    reference: Predictions | None
    reference_name: str | None
    missing: MissingRows | None
    progress: StageProgress | None
