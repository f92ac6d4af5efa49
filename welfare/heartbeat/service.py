"""Write and read worker heartbeats."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
from dataclasses import dataclass, field

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from welfare.db import utcnow
from welfare.heartbeat.models import WorkerHeartbeat

HEARTBEAT_SECONDS = 5.0
# A heartbeat row this old belongs to a worker that is gone: housekeeping removes it.
GONE_AFTER = dt.timedelta(days=1)


@dataclass(frozen=True)
class WorkerIdentity:
    worker_id: str = field(default_factory=lambda: secrets.token_hex(8))
    host: str = field(default_factory=lambda: socket.gethostname()[:255])
    pid: int = field(default_factory=os.getpid)


def beat(session: Session, identity: WorkerIdentity, now: dt.datetime | None = None) -> None:
    """Insert or refresh this worker's row."""
    now = now or utcnow()
    row = session.get(WorkerHeartbeat, identity.worker_id)
    if row is None:
        row = WorkerHeartbeat(
            worker_id=identity.worker_id,
            host=identity.host,
            pid=identity.pid,
            started_at=now,
            last_seen=now,
        )
    else:
        row.last_seen = now
    session.add(row)


def latest(session: Session) -> dt.datetime | None:
    """When any worker was last seen."""
    return session.exec(select(func.max(WorkerHeartbeat.last_seen))).one()


def prune(session: Session, now: dt.datetime | None = None) -> int:
    now = now or utcnow()
    return session.exec(  # type: ignore[call-overload]
        delete(WorkerHeartbeat).where(col(WorkerHeartbeat.last_seen) < now - GONE_AFTER)
    ).rowcount
