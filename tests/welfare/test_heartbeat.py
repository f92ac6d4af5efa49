"""Worker heartbeats: written by the running worker, pruned when the worker is long gone."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, select

from welfare.db import utcnow
from welfare.heartbeat import service as heartbeats
from welfare.heartbeat.models import WorkerHeartbeat
from welfare.settings import Settings
from welfare.worker import housekeeping, run_worker


def test_a_running_worker_keeps_its_heartbeat_row(
    settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    identity = heartbeats.WorkerIdentity()
    stop = threading.Event()
    thread = threading.Thread(
        target=run_worker, args=(settings, session_factory, stop), kwargs={"identity": identity}
    )
    thread.start()
    try:
        deadline = time.monotonic() + 10
        row = None
        while row is None and time.monotonic() < deadline:
            with session_factory() as check:
                row = check.get(WorkerHeartbeat, identity.worker_id)
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert row is not None
    assert row.pid == os.getpid() and row.host
    assert utcnow() - row.last_seen < dt.timedelta(seconds=10)
    with session_factory() as check:
        latest = heartbeats.latest(check)
    assert latest is not None and latest.tzinfo is not None


def test_beat_refreshes_one_row_and_housekeeping_drops_gone_workers(
    db: Session, settings: Settings
) -> None:
    alive, gone = heartbeats.WorkerIdentity(), heartbeats.WorkerIdentity()
    heartbeats.beat(db, gone, now=utcnow() - dt.timedelta(days=2))
    heartbeats.beat(db, alive, now=utcnow() - dt.timedelta(seconds=20))
    db.commit()
    heartbeats.beat(db, alive)
    db.commit()
    rows = {r.worker_id: r for r in db.exec(select(WorkerHeartbeat)).all()}
    assert set(rows) == {alive.worker_id, gone.worker_id}
    assert utcnow() - rows[alive.worker_id].last_seen < dt.timedelta(seconds=5)
    result = housekeeping(db, settings)
    db.commit()
    assert result.heartbeats == 1
    assert [r.worker_id for r in db.exec(select(WorkerHeartbeat)).all()] == [alive.worker_id]
