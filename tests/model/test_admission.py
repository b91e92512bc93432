"""Admission by expected wait: a place in line while the wait is within max_wait, else a refusal
that says when to come back. Durations are handed to the estimate, never slept."""

from __future__ import annotations

import threading

import pytest

from model.admission import SEED_SECONDS, AdmissionGate, WaitEstimate
from model.engine import EngineBusy, QueuePlace


def full_gate(rows: int, max_wait: float, seed: float = 30.0, max_queue: int = 100):
    """A gate whose rows are all taken: the next request starts in line."""
    gate = AdmissionGate(rows, max_queue, max_wait=max_wait, seed=seed)
    for _ in range(rows):
        assert gate.reserve() is None  # a slot at once
    return gate


def test_the_expected_wait_grows_a_generation_per_row_count_of_places():
    estimate = WaitEstimate(rows=4, max_wait=120, seed=20)
    assert [estimate.wait_at(p) for p in (-2, 0, 1, 4, 5, 8, 9)] == [0, 0, 20, 20, 40, 40, 60]


def test_a_newcomer_is_queued_while_its_wait_is_within_max_wait_then_told_when_to_return():
    gate = full_gate(rows=2, max_wait=60)
    line = [gate.reserve() for _ in range(4)]  # places 1-4: 30, 30, 60, 60 s
    assert all(ticket is not None for ticket in line)
    assert [gate.place(t) for t in line] == [
        QueuePlace(0, 30.0),
        QueuePlace(1, 30.0),
        QueuePlace(2, 60.0),
        QueuePlace(3, 60.0),
    ]
    with pytest.raises(EngineBusy) as refused:
        gate.reserve()  # place 5 would wait 90 s
    assert refused.value.retry_after == 30  # when a newcomer's wait is back within 60 s
    assert "busy" in refused.value.user_message
    assert gate.waiting == 4  # the refusal took no place


def test_with_no_waiting_allowed_only_free_rows_admit():
    gate = full_gate(rows=1, max_wait=0, seed=12.5)
    with pytest.raises(EngineBusy) as refused:
        gate.reserve()
    assert refused.value.retry_after == 13  # whole seconds, rounded up
    gate.release(held=12.5)
    assert gate.reserve() is None


def test_the_line_is_a_hard_bound_whatever_the_estimate():
    gate = full_gate(rows=2, max_wait=3600, max_queue=3)
    for _ in range(3):
        gate.reserve()
    with pytest.raises(EngineBusy) as refused:
        gate.reserve()
    assert refused.value.retry_after == 15  # a row frees about every 30 / 2 seconds


def test_the_estimate_follows_how_long_generations_held_their_rows():
    gate = full_gate(rows=2, max_wait=60, seed=30)
    assert gate.estimate.average == 30
    for _ in range(20):  # replies now take 9 s
        gate.release(held=9.0)
        assert gate.reserve() is None
    assert gate.estimate.average == pytest.approx(9.0, abs=0.5)
    admitted = 0
    with pytest.raises(EngineBusy):
        while True:
            gate.reserve()
            admitted += 1
    assert admitted == 12  # 6 rounds of ~9 s within 60 s, where 30 s replies let 4 wait

    slower = full_gate(rows=1, max_wait=60, seed=10)
    slower.release(held=60.0)  # one long reply moves the average a fifth of the way
    assert slower.estimate.average == pytest.approx(20.0)


def test_the_seed_errs_long_until_a_generation_ends():
    assert AdmissionGate(1, 1).estimate.average == SEED_SECONDS >= 20


def test_a_queued_request_starts_when_a_row_frees_first_in_first_out():
    gate = full_gate(rows=1, max_wait=600)
    first, second = gate.reserve(), gate.reserve()
    started: list[str] = []

    def wait(ticket, name: str) -> None:
        gate.wait_reserved(ticket)
        started.append(name)

    waiters = [
        threading.Thread(target=wait, args=(second, "second")),
        threading.Thread(target=wait, args=(first, "first")),
    ]
    for waiter in waiters:
        waiter.start()
    gate.release(held=5.0)  # one row frees: the first in line takes it, not whoever woke first
    waiters[1].join(5)
    assert started == ["first"]
    assert gate.place(second) == QueuePlace(0, gate.estimate.average)
    gate.release(held=5.0)
    waiters[0].join(5)
    assert started == ["first", "second"] and gate.place(second) is None
    assert (gate.running, gate.waiting) == (1, 0)


def test_a_place_given_back_frees_it_for_the_next_newcomer():
    gate = full_gate(rows=1, max_wait=30)
    ticket = gate.reserve()
    with pytest.raises(EngineBusy):
        gate.reserve()
    gate.unreserve(ticket)
    assert gate.waiting == 0 and gate.reserve() is not None


def test_a_wait_past_the_queue_timeout_is_busy_with_a_retry_after():
    gate = AdmissionGate(1, 1, wait_timeout=0.01, max_wait=60, seed=40)
    gate.reserve()
    ticket = gate.reserve()
    with pytest.raises(EngineBusy) as dropped:
        gate.wait_reserved(ticket)
    assert dropped.value.retry_after == 40 and gate.waiting == 0
