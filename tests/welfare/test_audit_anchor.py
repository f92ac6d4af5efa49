"""External anchors: the chain's signed head, kept outside the database, catches what the chain
alone cannot: a cut at the end and a full rewrite."""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from tests.welfare.test_audit import append, execute, verify
from welfare.audit.anchor import ANCHOR_TYPE, anchor_line, current_head, verify_anchors
from welfare.audit.models import AuditEntry
from welfare.audit.service import GENESIS_HASH, _entry_digest
from welfare.settings import Settings
from welfare.worker import (
    AUDIT_ANCHOR_INTERVAL_SECONDS,
    AuditAnchoring,
    anchor_audit_head,
    log_audit_head,
    run_worker,
)

KEY = "anchor-test-key-that-is-long-enough-0123456789"


def anchor(factory: sessionmaker[Session], key: str = KEY) -> str:
    with factory() as session:
        return anchor_line(current_head(session), key)


def check(factory: sessionmaker[Session], lines: str, key: str = KEY):
    with factory() as session:
        return verify_anchors(session, lines, key)


def test_the_head_names_the_count_the_last_entry_and_its_hash(session_factory) -> None:
    with session_factory() as session:
        empty = current_head(session)
    assert (empty.count, empty.last_id, empty.last_hash) == (0, None, GENESIS_HASH)
    ids = append(session_factory, 3)
    record = json.loads(anchor(session_factory))
    with session_factory() as session:
        last = session.get(AuditEntry, ids[-1])
        assert last is not None
    assert record["type"] == ANCHOR_TYPE
    assert (record["count"], record["last_id"], record["last_hash"]) == (3, ids[-1], last.hash)
    assert set(record) == {"type", "count", "last_id", "last_hash", "at", "hmac"}


def test_a_good_chain_holds_every_anchored_head(session_factory) -> None:
    lines = [anchor(session_factory)]  # an empty chain's head
    append(session_factory, 2)
    lines.append(anchor(session_factory))
    append(session_factory, 3)
    lines.append(anchor(session_factory))
    append(session_factory, 1)  # entries after the newest anchor are fine
    report = check(session_factory, "\n".join(lines) + "\n")
    assert report.ok, report.problems
    assert (report.anchors, report.chain_entries) == (3, 6)


def test_cutting_the_newest_entries_is_detected(session_factory) -> None:
    ids = append(session_factory, 5)
    line = anchor(session_factory)
    execute(session_factory, "DELETE FROM audit_entry WHERE id >= :first", first=ids[3])
    assert verify(session_factory).ok  # the chain alone cannot tell
    report = check(session_factory, line)
    assert not report.ok
    [problem] = report.problems
    assert problem.line == 1
    assert f"entry {ids[-1]}" in problem.reason and "cut to 3 entries" in problem.reason


def test_rewriting_the_whole_chain_is_detected(session_factory) -> None:
    ids = append(session_factory, 4)
    line = anchor(session_factory)
    # Someone with write access edits an entry and recomputes every hash after it.
    execute(
        session_factory,
        "UPDATE audit_entry SET action = 'test.innocent' WHERE id = :id",
        id=ids[1],
    )
    with session_factory() as session:
        prev = GENESIS_HASH
        for entry in session.exec(select(AuditEntry).order_by(col(AuditEntry.id))).all():
            entry.prev_hash = prev
            entry.hash = prev = _entry_digest(prev, entry)
            session.add(entry)
            session.flush()
        session.commit()
    assert verify(session_factory).ok  # the chain alone cannot tell
    report = check(session_factory, line)
    [problem] = report.problems
    assert "rewritten" in problem.reason and f"entry {ids[-1]}" in problem.reason


def test_an_edited_or_foreign_anchor_is_refused(session_factory) -> None:
    append(session_factory, 2)
    line = anchor(session_factory)
    record = json.loads(line)
    record["count"] = 1
    forged = json.dumps(record)
    report = check(session_factory, f"{line}\n{forged}\n")
    [problem] = report.problems
    assert problem.line == 2 and "signature does not match" in problem.reason
    other_key = check(session_factory, line, key="another-key-that-is-long-enough-0123456789")
    assert not other_key.ok
    broken = check(session_factory, '{"type": "welfare.audit.head", "count": ')
    assert [p.reason for p in broken.problems] == ["not a readable anchor"]


def test_a_file_without_anchors_passes_nothing(session_factory) -> None:
    report = check(session_factory, "just a log line\n")
    assert not report.ok
    assert report.problems[0].reason == "no audit anchors in the file"


def test_a_broken_chain_fails_the_anchor_check_too(session_factory) -> None:
    ids = append(session_factory, 3)
    line = anchor(session_factory)
    execute(session_factory, "UPDATE audit_entry SET action = 'x.y' WHERE id = :id", id=ids[0])
    reasons = [p.reason for p in check(session_factory, line).problems]
    assert any("chain itself is broken" in r for r in reasons)


def test_the_worker_logs_a_signed_head_that_verifies_from_the_raw_log(
    session_factory, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    append(session_factory, 2)
    with caplog.at_level(logging.INFO, logger="welfare.worker"):
        line = log_audit_head(session_factory, settings)
    [message] = [r.getMessage() for r in caplog.records if ANCHOR_TYPE in r.getMessage()]
    assert message == f"audit head {line}"
    assert set(json.loads(line)) == {"type", "count", "last_id", "last_hash", "at", "hmac"}
    # As a log file holds it: a prefix before the JSON, other lines around it.
    log_file = f"2026-11-28 18:00:00 INFO welfare.worker worker started\n{message}\n"
    assert check(session_factory, log_file, key=settings.secret_key).ok
    with session_factory() as session:
        session.exec(text("DELETE FROM audit_entry"))  # type: ignore[call-overload]
        session.commit()
    assert not check(session_factory, log_file, key=settings.secret_key).ok


def test_the_worker_loop_logs_the_head_when_it_starts(
    session_factory, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    append(session_factory, 1)
    stop = threading.Event()
    with caplog.at_level(logging.INFO, logger="welfare.worker"):
        thread = threading.Thread(target=run_worker, args=(settings, session_factory, stop))
        thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
            ANCHOR_TYPE in r.getMessage() for r in caplog.records
        ):
            time.sleep(0.05)
        stop.set()
        thread.join(timeout=10)
    [line] = [r.getMessage() for r in caplog.records if ANCHOR_TYPE in r.getMessage()]
    assert check(session_factory, line, key=settings.secret_key).ok


# --- the worker anchors while the chain grows, once per head -----------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def logged_anchors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage().removeprefix("audit head ")
        for r in caplog.records
        if ANCHOR_TYPE in r.getMessage()
    ]


def test_the_worker_job_anchors_every_minute_while_entries_come_and_not_when_idle(
    session_factory, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    assert AUDIT_ANCHOR_INTERVAL_SECONDS <= 60
    clock = Clock()
    job = AuditAnchoring(session_factory, settings, clock=clock)
    with caplog.at_level(logging.INFO, logger="welfare.worker"):
        assert job.tick() is None  # an empty chain: nothing to protect
        ids = append(session_factory, 2)
        clock.now += AUDIT_ANCHOR_INTERVAL_SECONDS
        first = job.tick()
        assert first is not None and json.loads(first)["last_id"] == ids[-1]
        more = append(session_factory, 1)
        clock.now += AUDIT_ANCHOR_INTERVAL_SECONDS / 2
        assert job.tick() is None  # not yet a minute
        clock.now += AUDIT_ANCHOR_INTERVAL_SECONDS / 2
        second = job.tick()
        assert second is not None and json.loads(second)["count"] == 3
        assert json.loads(second)["last_id"] == more[-1]
        for _ in range(3):  # nothing new: no anchor, however long the worker runs
            clock.now += AUDIT_ANCHOR_INTERVAL_SECONDS
            assert job.tick() is None
    assert logged_anchors(caplog) == [first, second]
    assert check(session_factory, f"{first}\n{second}\n", key=settings.secret_key).ok


def test_several_workers_anchor_each_head_once(
    writers: sessionmaker[Session], settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Workers reaching the same head at the same moment: one logs it, the others find it
    anchored (the first time, when the anchored row does not exist yet, and afterwards)."""
    workers = 4
    barrier = threading.Barrier(workers)

    def worker(_: int) -> str | None:
        barrier.wait(timeout=10)
        return anchor_audit_head(writers, settings)

    with caplog.at_level(logging.INFO, logger="welfare.worker"):
        for expected_count in (2, 5):
            append(writers, 3 if expected_count == 5 else 2)
            with ThreadPoolExecutor(workers) as pool:
                lines = [line for line in pool.map(worker, range(workers)) if line]
            assert [json.loads(line)["count"] for line in lines] == [expected_count]
    assert len(logged_anchors(caplog)) == 2


def test_the_worker_anchors_the_head_when_it_stops(
    session_factory, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    append(session_factory, 1)
    assert anchor_audit_head(session_factory, settings) is not None
    ids = append(session_factory, 2)  # after the last anchor: not protected yet
    stop = threading.Event()
    stop.set()  # the loop ends at once: only the stop anchors
    with caplog.at_level(logging.INFO, logger="welfare.worker"):
        caplog.clear()
        run_worker(settings, session_factory, stop, scheduler=False)
        [line] = logged_anchors(caplog)
        assert (json.loads(line)["count"], json.loads(line)["last_id"]) == (3, ids[-1])
        caplog.clear()
        run_worker(settings, session_factory, stop, scheduler=False)
        assert logged_anchors(caplog) == []  # nothing new since


def test_the_report_counts_the_entries_newer_than_the_last_anchor(session_factory) -> None:
    append(session_factory, 2)
    older = anchor(session_factory)
    append(session_factory, 3)
    newer = anchor(session_factory)
    append(session_factory, 4)
    # The newest head counts, wherever it is in the file.
    report = check(session_factory, f"{newer}\n{older}\n")
    assert report.ok and (report.chain_entries, report.unanchored) == (9, 4)
