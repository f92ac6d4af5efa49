"""Figures for monitoring, read from the database at scrape time (no personal data)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, col, select

from welfare.db import utcnow
from welfare.heartbeat.models import WorkerHeartbeat
from welfare.incidents.models import Incident, IncidentStatus
from welfare.outbox.models import OutboxMessage, OutboxStatus

OPEN_STATUSES = (IncidentStatus.open, IncidentStatus.notifying, IncidentStatus.confirmed)


@dataclass(frozen=True)
class Stats:
    outbox: dict[str, int]  # rows waiting or being sent, by status (pending, claimed, sending)
    outbox_due: int  # pending rows whose time has come
    oldest_due_age_seconds: float  # how long the longest-waiting due row has been due; 0 if none
    incidents: dict[str, int]  # not yet resolved or cancelled, by status
    worker_last_seen_age_seconds: float | None  # None: no worker ever wrote a heartbeat


def collect(session: Session, now: dt.datetime | None = None) -> Stats:
    now = now or utcnow()
    waiting = (OutboxStatus.pending, OutboxStatus.claimed, OutboxStatus.sending)
    outbox = {status.value: 0 for status in waiting}
    for status, count in session.exec(
        select(OutboxMessage.status, func.count())
        .where(col(OutboxMessage.status).in_(waiting))
        .group_by(OutboxMessage.status)
    ).all():
        outbox[OutboxStatus(status).value] = count
    due_count, oldest_due = session.exec(
        select(func.count(), func.min(OutboxMessage.next_attempt_at)).where(
            OutboxMessage.status == OutboxStatus.pending,
            col(OutboxMessage.next_attempt_at) <= now,
        )
    ).one()
    incidents = {status.value: 0 for status in OPEN_STATUSES}
    for status, count in session.exec(
        select(Incident.status, func.count())
        .where(col(Incident.status).in_(OPEN_STATUSES))
        .group_by(Incident.status)
    ).all():
        incidents[IncidentStatus(status).value] = count
    last_seen = session.exec(select(func.max(WorkerHeartbeat.last_seen))).one()
    return Stats(
        outbox=outbox,
        outbox_due=due_count,
        oldest_due_age_seconds=_age(now, oldest_due) or 0.0,
        incidents=incidents,
        worker_last_seen_age_seconds=_age(now, last_seen),
    )


def _age(now: dt.datetime, then: dt.datetime | None) -> float | None:
    """Seconds since `then` (aggregates come back naive from SQLite: those are UTC)."""
    if then is None:
        return None
    if isinstance(then, str):  # SQLite may hand MIN()/MAX() of a datetime back as text
        then = dt.datetime.fromisoformat(then)
    if then.tzinfo is None:
        then = then.replace(tzinfo=dt.UTC)
    return max((now - then).total_seconds(), 0.0)
