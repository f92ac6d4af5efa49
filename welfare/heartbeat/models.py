"""Worker heartbeats: each running worker keeps one row fresh, so readiness can tell that
someone is moving the escalations and the outbox."""

from __future__ import annotations

import datetime as dt

from sqlmodel import Field, SQLModel

from welfare.db import UTCDateTime, utcnow


class WorkerHeartbeat(SQLModel, table=True):
    """One row per worker process (`worker_id` is random per start); `last_seen` is refreshed
    every few seconds. Rows of workers gone for a day are removed by housekeeping."""

    __tablename__ = "worker_heartbeat"

    worker_id: str = Field(primary_key=True, max_length=64)
    host: str = Field(max_length=255)
    pid: int
    started_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
