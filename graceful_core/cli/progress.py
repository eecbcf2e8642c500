"""A plain-text progress bar for the terminal (stderr), used by the CLI."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class StderrProgress:
    """``progress(stage, done, total)`` callback that draws one line per stage on stderr.

    On a terminal the line is redrawn in place; otherwise (CI logs) a line is printed
    at the start and at the end of each stage only. Stages may take turns (the two models
    of a comparison run batch by batch): each is started once and ended once.
    """

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self._stream = stream
        self.width = width
        self._started: dict[str, float] = {}  # the unfinished stages and when each started

    @property
    def stream(self) -> TextIO:
        """The given stream, else the current ``sys.stderr`` (looked up at each call: it may be replaced)."""
        return self._stream or sys.stderr

    @property
    def _tty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self._started:
            self._started[stage] = time.perf_counter()
            if not self._tty:
                what = "" if total == 1 else f" on {total} images" if total else " (size not known yet)"
                print(f"{stage}: running{what}...", file=self.stream, flush=True)
        if not total:  # not known (e.g. rows of a CSV table being streamed): a count, and no end
            if self._tty:
                print(f"\r{stage}: {done}", end="", file=self.stream, flush=True)
            return
        frac = done / total
        t0 = self._started.pop(stage) if done >= total else self._started[stage]
        if self._tty:
            if total == 1:  # one step (a cross-test, a clustering): no bar to fill
                print(
                    f"\r{stage}: {'done' if done else 'running...'}",
                    end="\n" if done else "",
                    file=self.stream,
                    flush=True,
                )
                return
            filled = int(round(frac * self.width))
            bar = "#" * filled + "-" * (self.width - filled)
            print(f"\r{stage}: [{bar}] {done}/{total}", end="", file=self.stream, flush=True)
            if done >= total:
                print(f" ({time.perf_counter() - t0:.1f} s)", file=self.stream, flush=True)
        elif done >= total:
            counted = "" if total == 1 else f" {done}/{total}"  # a stage of one step: no count to show
            print(f"{stage}:{counted} done in {time.perf_counter() - t0:.1f} s", file=self.stream, flush=True)


#: The one bar the commands draw model runs and long stages on (stderr).
_BAR = StderrProgress()


def bar(stage: str, done: int, total: int) -> None:
    """``progress(stage, done, total)`` on the command line's one stderr bar."""
    _BAR(stage, done, total)
