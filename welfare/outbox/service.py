"""The outbox seen from the domain: claiming due rows, recording what the provider said, and
moving the escalation on when a step reached no one. Provider-free: the dispatcher in
`notifications/` does the talking."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from welfare.db import utcnow
from welfare.incidents import service as incidents
from welfare.incidents import timeline
from welfare.incidents.models import Incident, IncidentStatus
from welfare.outbox.models import OutboxMessage, OutboxStatus

# A row left 'sending' this long was claimed by a worker that died mid-send. Rule: send it again.
# In an emergency a duplicate SMS or call is better than silence.
STALE_CLAIM = dt.timedelta(seconds=30)
MAX_ATTEMPTS = 5
BACKOFF_SECONDS = (2, 5, 15, 30)  # after attempt 1, 2, 3, 4
# Messages that still go out after confirmation: they are about the confirmation.
AFTER_CONFIRMATION = {"coming_notice"}


def claim_due(
    session: Session, *, limit: int = 20, now: dt.datetime | None = None
) -> list[uuid.UUID]:
    """Mark up to `limit` due rows 'sending' under a fresh claim token and return their ids.

    PostgreSQL: FOR UPDATE SKIP LOCKED, so several workers share the load without waiting on
    each other. SQLite: one writer at a time (BEGIN IMMEDIATE), so a plain conditional update.
    """
    now = now or utcnow()
    due = or_(
        (col(OutboxMessage.status) == OutboxStatus.pending)
        & (col(OutboxMessage.next_attempt_at) <= now),
        (col(OutboxMessage.status) == OutboxStatus.sending)
        & (col(OutboxMessage.claimed_at) < now - STALE_CLAIM),
    )
    query = select(OutboxMessage.id).where(due).order_by(col(OutboxMessage.next_attempt_at))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(session.exec(query.limit(limit)).all())
    if not ids:
        return []
    token = secrets.token_hex(8)
    session.exec(  # type: ignore[call-overload]
        update(OutboxMessage)
        .where(col(OutboxMessage.id).in_(ids))
        .values(status=OutboxStatus.sending, claimed_at=now, claim_token=token, updated_at=now)
    )
    return ids


def lock_for_send(
    session: Session, message_id: uuid.UUID
) -> tuple[OutboxMessage, Incident | None] | None:
    """Open the send: lock the row's incident (held until the caller commits, so a confirmation
    waits for a send in flight and none starts after it) and re-check that it is still wanted.

    Returns None when the row is no longer ours or no longer wanted (then cancelled).
    """
    message = session.get(OutboxMessage, message_id)
    if message is None or message.status != OutboxStatus.sending:
        return None
    incident = session.get(Incident, message.incident_id) if message.incident_id else None
    if incident is not None:
        incidents.lock_incident(session, incident)
        session.refresh(message)
        if message.status != OutboxStatus.sending:
            return None
        stopped = incident.status not in (IncidentStatus.open, IncidentStatus.notifying)
        if stopped and message.template not in AFTER_CONFIRMATION:
            message.status = OutboxStatus.cancelled
            message.updated_at = utcnow()
            session.add(message)
            timeline.record(
                session,
                incident,
                "send_cancelled",
                message_id=message.id,
                reason=f"incident {incident.status.value}",
            )
            return None
    if message.to_phone is None:  # erased since it was queued
        message.status = OutboxStatus.cancelled
        session.add(message)
        return None
    return message, incident


def record_sent(
    session: Session,
    message: OutboxMessage,
    incident: Incident | None,
    *,
    provider_id: str,
    provider_status: str,
    now: dt.datetime | None = None,
) -> None:
    now = now or utcnow()
    message.status = OutboxStatus.sent
    message.provider_id = provider_id
    # A status callback may have beaten the create response here: keep its newer word.
    session.refresh(message, ["provider_status"])
    message.provider_status = message.provider_status or provider_status
    message.attempts += 1
    message.sent_at = message.updated_at = now
    session.add(message)
    if incident is not None:
        if incident.first_sent_at is None:
            incident.first_sent_at = now
            session.add(incident)
        timeline.record(
            session,
            incident,
            "sent",
            channel=message.kind.value,
            message_id=message.id,
            contact_id=message.contact_id,
            user_id=message.user_id,
            provider_status=provider_status,
        )


def record_failure(
    session: Session,
    message: OutboxMessage,
    incident: Incident | None,
    *,
    reason: str,
    code: str | None,
    permanent: bool,
    retry_after: float | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Transient: back off and retry. Permanent (or out of attempts): fail the row, and if its
    step now reached no one, let the escalation move on at once."""
    now = now or utcnow()
    message.attempts += 1
    message.error_code, message.error_reason = code, reason[:300]
    message.updated_at = now
    if not permanent and message.attempts < MAX_ATTEMPTS:
        delay = BACKOFF_SECONDS[min(message.attempts, len(BACKOFF_SECONDS)) - 1]
        message.status = OutboxStatus.pending
        message.next_attempt_at = now + dt.timedelta(seconds=max(delay, retry_after or 0))
        message.claim_token = None
        session.add(message)
        if incident is not None:
            timeline.record(
                session,
                incident,
                "retry_scheduled",
                channel=message.kind.value,
                message_id=message.id,
                error_code=code,
                reason=reason,
                attempt=message.attempts,
            )
        return
    message.status = OutboxStatus.failed
    session.add(message)
    if incident is None:
        return
    timeline.record(
        session,
        incident,
        "failed",
        channel=message.kind.value,
        message_id=message.id,
        contact_id=message.contact_id,
        error_code=code,
        reason=reason,
    )
    mark_step_failed_if_dead(session, incident, message.step_index, now)


def mark_step_failed_if_dead(
    session: Session, incident: Incident, step_index: int | None, now: dt.datetime
) -> None:
    """Every message of the step failed (or went unanswered for good): pull the next forward."""
    if step_index is None:
        return
    siblings = session.exec(
        select(OutboxMessage.status).where(
            OutboxMessage.incident_id == incident.id, OutboxMessage.step_index == step_index
        )
    ).all()
    if siblings and all(s == OutboxStatus.failed for s in siblings):
        event = timeline.record(
            session, incident, "step_failed", step=step_index, reasons=["every message failed"]
        )
        # Timeline times come from the clock at writing; never ask "what is due" before them.
        incidents.advance(session=session, incident=incident, now=max(now, event.at))
