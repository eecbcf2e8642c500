"""Comparisons computed by the server, not by a page: background jobs keyed by content.

Why: Streamlit stops a script run as soon as the user clicks another page (the click
asks for a rerun; the running script gets ``RerunException`` at its next ``st.*``
call). A comparison computed inside the run, whose progress bar is such a call, died
with it and was never stored, so a click within a moment of Compare dropped the
comparison without a word. Here the computation runs in a thread the server owns; a
page only waits for it (drawing its progress), so stopping the page stops the waiting,
never the work. The next page, in the same session or another, finds the same job by
its key and waits for it or takes its result.

Free of Streamlit: :mod:`graceful_ui.store` keeps one :class:`ComparisonJobs` per
server (in ``st.cache_resource``) and :mod:`graceful_ui.widgets` draws the progress.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from graceful_core.vocabulary import StageProgress

log = logging.getLogger("graceful_ui")

T = TypeVar("T")

#: A job's status: still running, finished with a result, failed with an error, or cancelled.
RUNNING, DONE, FAILED, CANCELLED = "running", "done", "failed", "cancelled"


class ComparisonCancelled(Exception):
    """Raised in the worker (from its progress callback) when the job was cancelled."""


@dataclass(frozen=True)
class JobState:
    """A copy of a job's state at one moment, for drawing.

    ``stages`` are the progress stages seen so far in order (for a comparison: the two
    model files' names), ``stage``/``done``/``total`` the last progress report.
    """

    status: str
    stages: tuple[str, ...] = ()
    stage: str = ""
    done: int = 0
    total: int = 0
    cancel_requested: bool = False

    @property
    def running(self) -> bool:
        return self.status == RUNNING


class Job(Generic[T]):
    """One computation ``compute(progress)``, run once, by one thread, shared by every waiter.

    ``compute`` gets a ``progress(stage, done, total)`` callback
    (:data:`graceful_core.vocabulary.StageProgress`); the callback records the report and
    raises :class:`ComparisonCancelled` once :meth:`cancel` was called, so the work
    stops at its next report (for a comparison: after the current batch of images).
    """

    def __init__(self, key: Hashable, compute: Callable[[StageProgress], T], name: str = "graceful-compare") -> None:
        self.key = key
        self._compute = compute
        self._name = name
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._cancel = threading.Event()
        self._state = JobState(RUNNING)
        self._result: T | None = None
        self._error: BaseException | None = None
        self._claimed = False

    # -- running
    def _claim(self) -> bool:
        with self._lock:
            if self._claimed:
                return False
            self._claimed = True
            return True

    def run(self) -> None:
        """Compute in the calling thread (once; a second call returns at once)."""
        if not self._claim():
            return
        status, error = FAILED, None
        try:
            self._result = self._compute(self._progress)
            status = DONE
        except ComparisonCancelled as e:
            status, error = CANCELLED, e
        except Exception as e:  # kept for the waiters, who re-raise it: nothing is lost silently
            error = e
        finally:
            if status == FAILED and error is None:  # stopped by a BaseException (interpreter shutdown)
                error = RuntimeError("the computation was stopped")
            self._error = error
            with self._lock:
                self._state = JobState(
                    status,
                    self._state.stages,
                    self._state.stage,
                    self._state.done,
                    self._state.total,
                    self._cancel.is_set(),
                )
            self._finished.set()

    def start(self) -> Job[T]:
        """Compute in a new daemon thread owned by the server (not by any page's script run)."""
        if not self._claimed:
            threading.Thread(target=self.run, name=self._name, daemon=True).start()
        return self

    def _progress(self, stage: str, done: int, total: int) -> None:
        with self._lock:
            stages = self._state.stages if stage in self._state.stages else (*self._state.stages, stage)
            self._state = JobState(RUNNING, stages, stage, int(done), int(total), self._cancel.is_set())
        if self._cancel.is_set():
            raise ComparisonCancelled(f"cancelled while {stage}")

    # -- control and reading
    def cancel(self) -> None:
        """Ask the computation to stop at its next progress report."""
        self._cancel.set()
        with self._lock:
            s = self._state
            self._state = JobState(s.status, s.stages, s.stage, s.done, s.total, True)

    def state(self) -> JobState:
        with self._lock:
            return self._state

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job finished (or ``timeout`` seconds passed); True when finished."""
        return self._finished.wait(timeout)

    def result(self) -> T:
        """The result; re-raises the computation's error (:class:`ComparisonCancelled` when cancelled).

        Raises
        ------
        RuntimeError
            The job has not finished yet.
        """
        if not self._finished.is_set():
            raise RuntimeError("the job is still running")
        if self._error is not None:  # without the frames of earlier raises (a kept failure is read by every rerun)
            raise self._error.with_traceback(None)
        return self._result  # type: ignore[return-value]


class ComparisonJobs:
    """The server's jobs by key: at most one per key at a time, finished ones kept (LRU).

    Running jobs are never dropped. Finished jobs (results, errors and cancellations
    alike, so a page that reruns after a failure or a Cancel says so instead of
    computing again) are kept up to ``max_finished``; the least recently asked-for go
    first. :meth:`discard` forgets a finished job, so that the next request computes it
    afresh ("Try again", "Compare again").
    """

    def __init__(self, max_finished: int = 6) -> None:
        self.max_finished = max_finished
        self._lock = threading.Lock()
        self._jobs: OrderedDict[Hashable, Job] = OrderedDict()

    def get_or_create(self, key: Hashable, compute: Callable[[StageProgress], T]) -> tuple[Job[T], bool]:
        """The job of ``key`` and whether it was created now (then the caller runs or starts it)."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None:
                self._jobs.move_to_end(key)
                return job, False
            job = Job(key, compute)
            self._jobs[key] = job
            self._trim()
            return job, True

    def start(self, key: Hashable, compute: Callable[[StageProgress], T]) -> Job[T]:
        """The job of ``key``, started in the background if it is new."""
        job, new = self.get_or_create(key, compute)
        return job.start() if new else job

    def get(self, key: Hashable) -> Job | None:
        """The job of ``key`` if there is one (running or finished)."""
        with self._lock:
            return self._jobs.get(key)

    def discard(self, key: Hashable) -> None:
        """Forget a finished job (a failure or a cancellation the user wants to try again); a running one stays."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.finished:
                del self._jobs[key]

    def _trim(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.finished]
        for k in finished[: max(0, len(finished) - self.max_finished)]:
            del self._jobs[k]

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)
