"""The SQLite write gate hands the lock over in arrival order and gives up after its timeout."""

from __future__ import annotations

import threading
import time

from welfare.db import FairLock


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
