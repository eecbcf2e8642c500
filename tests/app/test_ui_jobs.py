"""The server's comparison jobs (graceful_ui.jobs): one computation per key, owned by a thread, not by a waiter.

Plain threads and events stand in for Streamlit's script runs; no timing is asserted (every wait
has a generous limit and the checks are on states, counts and results).
"""

from __future__ import annotations

import threading

import pytest

from graceful_core.errors import InputError
from graceful_ui.jobs import CANCELLED, DONE, FAILED, RUNNING, ComparisonCancelled, ComparisonJobs

LIMIT = 30  # seconds any single wait may take before the test fails


def gated(gate: threading.Event, calls: list, value="result"):
    def compute(progress):
        calls.append(threading.current_thread().name)
        progress("model.pt", 0, 10)
        assert gate.wait(LIMIT)
        progress("model.pt", 10, 10)
        return value

    return compute


def test_one_computation_per_key_shared_by_every_waiter():
    jobs, gate, calls = ComparisonJobs(), threading.Event(), []
    first = jobs.start("k", gated(gate, calls))
    second, created = jobs.get_or_create("k", gated(gate, calls))
    assert second is first and not created
    gate.set()
    assert first.wait(LIMIT) and first.result() == "result" and second.result() == "result"
    assert calls == ["graceful-compare"]  # computed once, by the job's own thread
    assert jobs.get_or_create("k", gated(gate, calls))[0] is first  # a finished job is reused


def test_a_waiter_that_gives_up_does_not_stop_the_job():
    """What a page switch does to a page: its run stops waiting; the job goes on and keeps its result."""
    jobs, gate, calls = ComparisonJobs(), threading.Event(), []
    job = jobs.start("k", gated(gate, calls))
    waiter = threading.Thread(target=lambda: job.wait(0.01))
    waiter.start()
    waiter.join(LIMIT)
    assert not waiter.is_alive() and not job.finished and job.state().status == RUNNING
    assert job.state().stages == ("model.pt",)
    gate.set()
    assert job.wait(LIMIT) and job.state().status == DONE and job.result() == "result"
    assert jobs.get("k") is job


def test_the_result_is_not_readable_before_the_end():
    jobs, gate = ComparisonJobs(), threading.Event()
    job = jobs.start("k", gated(gate, []))
    with pytest.raises(RuntimeError, match="still running"):
        job.result()
    gate.set()
    assert job.wait(LIMIT)


def test_cancel_stops_at_the_next_progress_report_and_is_kept_until_discarded():
    jobs, reported = ComparisonJobs(), threading.Event()
    reports: list[int] = []

    def endless(progress):
        i = 0
        while True:  # stops only through the progress callback
            i += 1
            reports.append(i)
            progress("model.pt", i, 10**9)
            reported.set()

    job = jobs.start("k", endless)
    assert reported.wait(LIMIT)
    job.cancel()
    assert job.wait(LIMIT)
    state = job.state()
    assert state.status == CANCELLED and state.cancel_requested
    with pytest.raises(ComparisonCancelled):
        job.result()
    same, created = jobs.get_or_create("k", lambda progress: "fresh")
    assert same is job and not created  # still there to say it was cancelled, also to whoever asks next
    jobs.discard("k")  # "Compare again"
    again, created = jobs.get_or_create("k", lambda progress: "fresh")
    assert created and again is not job
    again.run()
    assert again.result() == "fresh"


def test_a_failure_is_kept_and_re_raised_until_discarded():
    jobs, calls = ComparisonJobs(), []

    def broken(progress):
        calls.append(1)
        raise InputError("new.pt", "not a model file")

    job = jobs.start("k", broken)
    assert job.wait(LIMIT) and job.state().status == FAILED
    for _ in range(2):  # a page rerun reads the failure, it does not compute again
        same, created = jobs.get_or_create("k", broken)
        assert same is job and not created
        with pytest.raises(InputError, match="not a model file"):
            same.result()
    assert calls == [1]
    jobs.discard("k")  # "Try again"
    retry, created = jobs.get_or_create("k", broken)
    assert created and retry is not job


def test_run_in_the_calling_thread_and_start_do_not_both_compute():
    jobs, calls = ComparisonJobs(), []
    job, created = jobs.get_or_create("k", lambda progress: calls.append(threading.current_thread().name) or 7)
    assert created
    job.run()
    job.start()
    job.run()
    assert job.result() == 7 and calls == [threading.current_thread().name]


def test_finished_jobs_are_dropped_least_recently_used_first_running_ones_never():
    jobs, gate = ComparisonJobs(max_finished=2), threading.Event()
    running = jobs.start("running", gated(gate, []))
    for key in ("a", "b", "c"):
        job, _ = jobs.get_or_create(key, lambda progress, key=key: key)
        job.run()
    jobs.get_or_create("b", lambda progress: "b")  # asked for again: now more recent than c
    jobs.get_or_create("d", lambda progress: "d")[0].run()
    jobs.get_or_create("e", lambda progress: "e")  # creating trims the finished ones to 2
    assert jobs.get("running") is running
    assert jobs.get("a") is None and jobs.get("c") is None
    assert jobs.get("b") is not None and jobs.get("d") is not None
    gate.set()
    assert running.wait(LIMIT)
