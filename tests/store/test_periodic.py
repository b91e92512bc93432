"""Scheduled jobs: first run where asked, then on the interval; a failing step does not end the job."""

from __future__ import annotations

import threading

from store.periodic import PeriodicJob


def test_first_step_in_the_caller_then_repeats_and_survives_failures(caplog):
    calls: list[str] = []
    third = threading.Event()

    def step() -> None:
        calls.append(threading.current_thread().name)
        if len(calls) == 2:
            raise RuntimeError("database away")
        if len(calls) >= 3:
            third.set()

    job = PeriodicJob("tick", 0.01, step, first_in_caller=True)
    job.start()
    assert calls == [threading.current_thread().name]  # done before start() returned
    assert third.wait(5)
    job.stop()
    assert set(calls[1:]) == {"tick"}
    assert any(r.getMessage() == "scheduled job failed" and r.job == "tick" for r in caplog.records)


def test_without_first_in_caller_the_thread_runs_every_step_and_stop_ends_it():
    ran = threading.Event()
    names: list[str] = []

    def step() -> None:
        names.append(threading.current_thread().name)
        ran.set()

    job = PeriodicJob("later", 3600, step)
    job.start()
    assert ran.wait(5)
    job.stop()
    assert names == ["later"]
