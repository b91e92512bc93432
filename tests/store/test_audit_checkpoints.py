"""Signed checkpoints of the chain head: their file and log lines, their cadence, several writers,
tampered lines, and purges under retention that must not look like truncation."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest

from store.audit_checkpoints import CHECKPOINT_TYPE, parse_line
from store.cli import verify_audit
from store.database import create_database
from tests.store.audit_forger import (
    SteppedMonotonic,
    checkpoint_job,
    fill,
    signed_log,
    truncate_after,
    verifier,
)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "checkpoints" / "audit.jsonl"


def test_each_line_is_signed_json_matching_the_log_line_and_linked_to_the_previous(
    log, key, path, clock, caplog
):
    job = checkpoint_job(log, key.keys(), path, clock)
    fill(log, 3)
    with caplog.at_level(logging.INFO, logger="chat.audit"):
        first = job.checkpoint()
        fill(log, 2)
        second = job.checkpoint()

    lines = path.read_text().splitlines()
    assert len(lines) == 2
    parsed = [json.loads(line) for line in lines]
    assert [p["last_id"] for p in parsed] == [3, 5]
    assert parsed[0]["type"] == CHECKPOINT_TYPE and parsed[0]["prev"] is None
    assert parsed[1]["prev"] == first.hash  # the writer's own sequence
    assert parsed[1]["last_hash"] == log.head()[1]
    assert all(parse_line(line, verifier(key.public), "f:1").checkpoint for line in lines)
    logged = [r.checkpoint for r in caplog.records if r.name == "chat.audit"]
    assert logged == parsed
    assert key.private not in path.read_text() + caplog.text
    assert second.key_id == key.keys().signer.key_id


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (
            lambda c: {**c, "last_id": c["last_id"] - 1},
            "bad signature: the checkpoint line was altered",
        ),
        (lambda c: {**c, "last_hash": "0" * 64}, "bad signature: the checkpoint line was altered"),
        (lambda c: {**c, "key_id": "0" * 16}, "signed with an unknown key"),
        (lambda c: "{not json", "not a checkpoint (malformed line)"),
        (lambda c: {**c, "extra": 1}, "not a checkpoint (unknown type, version or fields)"),
    ],
    ids=["last_id", "last_hash", "key_id", "garbage", "extra-field"],
)
def test_a_tampered_checkpoint_line_is_reported(
    log, key, path, clock, database_url, capsys, edit, problem
):
    job = checkpoint_job(log, key.keys(), path, clock)
    fill(log, 3)
    job.checkpoint()
    fill(log, 1)
    job.checkpoint()
    lines = path.read_text().splitlines()
    edited = edit(json.loads(lines[1]))
    lines[1] = edited if isinstance(edited, str) else json.dumps(edited)
    path.write_text("\n".join(lines) + "\n")

    assert verify_audit(database_url, key.public_only(), [path]) == 1
    out = capsys.readouterr().out
    assert f"checkpoints DISAGREE: {path}:2: {problem}" in out


def test_a_checkpoint_is_due_after_enough_records_or_time_and_only_when_the_head_moved(
    log, key, path, clock
):
    monotonic = SteppedMonotonic()
    job = checkpoint_job(
        log, key.keys(), path, clock, every_records=3, interval_seconds=60, monotonic=monotonic
    )
    fill(log, 1)
    assert job.tick().last_id == 1  # the first tick vouches for what is there
    assert job.tick() is None  # nothing new
    fill(log, 2)
    assert job.tick() is None  # 2 new records, 0 s: not yet
    fill(log, 1)
    assert job.tick().last_id == 4  # 3 new records
    fill(log, 1)
    monotonic.now += 59
    assert job.tick() is None
    monotonic.now += 1
    assert job.tick().last_id == 5  # a minute passed with a new record
    monotonic.now += 3600
    assert job.tick() is None  # time alone does not repeat a checkpoint of the same head
    assert len(path.read_text().splitlines()) == 3


def test_the_thread_checkpoints_at_start_and_at_stop(log, key, path, clock):
    fill(log, 2)
    job = checkpoint_job(log, key.keys(), path, clock, poll_seconds=0.05)
    job.start()
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    fill(log, 1)
    job.stop()
    assert [json.loads(line)["last_id"] for line in path.read_text().splitlines()] == [2, 3]


def test_an_unwritable_checkpoint_file_is_logged_and_the_job_goes_on(
    log, key, tmp_path, clock, caplog
):
    blocked = tmp_path / "a-directory"
    blocked.mkdir()
    job = checkpoint_job(log, key.keys(), blocked, clock)
    fill(log, 1)
    with caplog.at_level(logging.INFO, logger="chat.audit"):
        assert job.checkpoint() is not None
    messages = [r.getMessage() for r in caplog.records]
    assert "audit checkpoint" in messages  # the log line still carries it
    assert "audit checkpoint not written to its file" in messages


def test_a_purge_under_retention_is_not_taken_for_truncation(
    database, database_url, log, key, path, clock, capsys
):
    job = checkpoint_job(log, key.keys(), path, clock)
    fill(log, 5, actor="old")
    job.checkpoint()  # vouches for record 5, soon purged
    clock.advance(days=100)
    fill(log, 2, actor="new")
    job.checkpoint()

    assert log.purge(audit_days=90) == 5  # records 1..5 go; record 8 is the retention checkpoint
    job.checkpoint()

    assert verify_audit(database_url, key.public_only(), [path]) == 0
    out = capsys.readouterr().out
    assert "checkpoints OK: 2 agree with the database, 1 cover records purged" in out

    # Truncation after the purge is still caught.
    truncate_after(database, 7)
    assert verify_audit(database_url, key.public_only(), [path]) == 1
    assert "vouches for record 8, but the database ends at record 7" in capsys.readouterr().out


def test_replicas_share_the_chain_and_each_writes_its_checkpoints(
    database, database_url, key, path, clock, tmp_path, capsys
):
    # Two engines stand for two replicas; one appends to the shared file, one to its own.
    other = create_database(database_url)
    logs = [signed_log(database, key.keys(), clock), signed_log(other, key.keys(), clock)]
    own_file = tmp_path / "replica-b.jsonl"
    jobs = [
        checkpoint_job(logs[0], key.keys(), path, clock, every_records=5, poll_seconds=0.01),
        checkpoint_job(logs[1], key.keys(), path, clock, every_records=5, poll_seconds=0.01),
        checkpoint_job(logs[1], key.keys(), own_file, clock, every_records=5, poll_seconds=0.01),
    ]
    for job in jobs:
        job.start()
    errors: list[BaseException] = []

    def write(number: int) -> None:
        try:
            fill(logs[number % 2], 20, actor=f"w{number}-")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for job in jobs:
        job.stop()
    other.dispose()

    assert errors == []
    shared = path.read_text().splitlines()
    writers = {json.loads(line)["writer"] for line in shared}
    assert len(shared) >= 2 and len(writers) == 1  # one process here: same host and pid
    assert verify_audit(database_url, key.public_only(), [path, own_file]) == 0
    out = capsys.readouterr().out
    assert "audit chain OK: 80 records checked" in out
    assert "newest: record 80" in out
