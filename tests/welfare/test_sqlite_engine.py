"""SQLite engine machinery: the write gate hands the lock over in arrival order and gives up
after its timeout; the WAL is checkpointed by a thread of its own, not by a request's commit."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import text

from welfare.db import FairLock, WalCheckpointer, make_engine


def test_waiters_get_the_lock_in_the_order_they_asked() -> None:
    lock = FairLock()
    assert lock.acquire(timeout=1)
    order: list[int] = []
    threads = []
    for n in range(5):
        thread = threading.Thread(target=lambda n=n: (lock.acquire(timeout=5), order.append(n)))
        thread.start()
        threads.append(thread)
        time.sleep(0.05)  # each one queued before the next asks
    for _ in range(5):
        lock.release()
        time.sleep(0.02)
    for thread in threads:
        thread.join(5)
    assert order == [0, 1, 2, 3, 4]
    lock.release()
    assert lock.acquire(timeout=0.1)  # free again


def test_a_waiter_that_times_out_leaves_the_queue() -> None:
    lock = FairLock()
    assert lock.acquire(timeout=1)
    started = time.monotonic()
    assert lock.acquire(timeout=0.1) is False
    assert time.monotonic() - started >= 0.1
    lock.release()
    assert lock.acquire(timeout=0.1)  # not handed to the waiter that left


def test_a_new_caller_does_not_barge_in_ahead_of_a_waiter() -> None:
    lock = FairLock()
    assert lock.acquire(timeout=1)
    got: list[str] = []
    waiter = threading.Thread(target=lambda: (lock.acquire(timeout=5), got.append("waiter")))
    waiter.start()
    time.sleep(0.05)
    lock.release()  # handed to the waiter, not up for grabs
    assert lock.acquire(timeout=0.05) is False
    waiter.join(5)
    assert got == ["waiter"]


def test_the_wal_is_checkpointed_off_the_request_path(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    try:
        with engine.begin() as connection:
            autocheckpoint = connection.execute(text("PRAGMA wal_autocheckpoint")).scalar()
            connection.execute(text("CREATE TABLE t (x TEXT)"))
        # Commits no longer copy the log back at 1,000 pages: the checkpointer does.
        assert autocheckpoint is not None and autocheckpoint > 1000
        for n in range(50):
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO t VALUES (:x)"), {"x": "x" * 4000 + str(n)})
        database = tmp_path / "wal.db"
        assert database.stat().st_size < 50 * 4096  # the rows are still only in the log
        checkpointer = WalCheckpointer(engine, interval=0.05).start()
        try:
            deadline = time.monotonic() + 5
            while database.stat().st_size < 50 * 4000 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert database.stat().st_size >= 50 * 4000  # copied in by the thread
        finally:
            checkpointer.close()
        assert checkpointer._thread is not None and not checkpointer._thread.is_alive()
    finally:
        engine.dispose()
