"""The outbox seen from the domain: claiming due rows, recording what the provider said, and
moving the escalation on when a step reached no one. Provider-free: the dispatcher in
`notifications/` does the talking."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from welfare.db import utcnow
from welfare.incidents import service as incidents
from welfare.incidents import timeline
from welfare.incidents.models import Incident, IncidentStatus
from welfare.outbox.models import OutboxMessage, OutboxStatus

# Crash rules. A row left 'claimed' this long was claimed by a worker that died before handing
# it over: nothing went out, claim it again. A row left 'sending' this long belongs to a worker
# that died during the hand-over, so the provider may or may not have it. Rule: send it again
# (through the gate, so only while the incident still wants it). In an emergency a duplicate
# SMS or call is better than silence; the idempotency key goes with it.
STALE_CLAIM = dt.timedelta(seconds=30)
MAX_ATTEMPTS = 5
BACKOFF_SECONDS = (2, 5, 15, 30)  # after attempt 1, 2, 3, 4
# Messages that still go out after confirmation: they are about the confirmation.
AFTER_CONFIRMATION = {"coming_notice"}


@dataclass(frozen=True)
class Claim:
    message_id: uuid.UUID
    token: str
    incident_id: uuid.UUID | None = None


def claim_due(session: Session, *, limit: int = 20, now: dt.datetime | None = None) -> list[Claim]:
    """Mark up to `limit` due rows 'claimed' under a fresh token, in one short transaction.

    PostgreSQL: FOR UPDATE SKIP LOCKED, so several workers share the load without waiting on
    each other. SQLite: one writer at a time (BEGIN IMMEDIATE), so a plain conditional update.
    """
    now = now or utcnow()
    due = or_(
        (col(OutboxMessage.status) == OutboxStatus.pending)
        & (col(OutboxMessage.next_attempt_at) <= now),
        col(OutboxMessage.status).in_((OutboxStatus.claimed, OutboxStatus.sending))
        & (col(OutboxMessage.claimed_at) < now - STALE_CLAIM),
    )
    query = (
        select(OutboxMessage.id, OutboxMessage.incident_id)
        .where(due)
        .order_by(col(OutboxMessage.next_attempt_at))
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = list(session.exec(query.limit(limit)).all())
    if not rows:
        return []
    ids = [message_id for message_id, _ in rows]
    token = secrets.token_hex(8)
    session.exec(  # type: ignore[call-overload]
        update(OutboxMessage)
        .where(col(OutboxMessage.id).in_(ids))
        .values(status=OutboxStatus.claimed, claimed_at=now, claim_token=token, updated_at=now)
    )
    return [Claim(message_id, token, incident_id) for message_id, incident_id in rows]


def defer(
    session: Session, message_id: uuid.UUID, *, until: dt.datetime, now: dt.datetime | None = None
) -> bool:
    """Put a row back to wait until `until` (the sender is over its rate), without counting an
    attempt. Called inside the gate's transaction (`open_send`), before it commits: the row never
    shows as 'sending'. False when the row is no longer ours to put back."""
    moved = session.exec(  # type: ignore[call-overload]
        update(OutboxMessage)
        .where(
            col(OutboxMessage.id) == message_id,
            col(OutboxMessage.status) == OutboxStatus.sending,
        )
        .values(
            status=OutboxStatus.pending,
            next_attempt_at=until,
            claim_token=None,
            updated_at=now or utcnow(),
        )
    ).rowcount
    return bool(moved)


def open_send(
    session: Session, claim: Claim, now: dt.datetime | None = None
) -> tuple[OutboxMessage, Incident | None] | None:
    """The gate, in a short transaction of its own: under the incident's lock, re-check that the
    row is still ours and still wanted, and move it 'claimed' -> 'sending'. The caller commits,
    then hands the row to the provider outside any transaction.

    This is the moment that orders a send against a confirmation. A confirmation that commits
    first has cancelled the claimed row (`incidents.service._stop`), so the gate refuses it and
    nothing goes out; one that commits after finds the row 'sending': in flight, decided before
    the confirmation, and its contact counts as reached. No lock is held during the provider
    call, so one slow provider request never blocks other writers (on SQLite: every writer).

    Returns None when the row is no longer ours or no longer wanted (then cancelled).
    """
    now = now or utcnow()
    message = session.get(OutboxMessage, claim.message_id)
    if message is None:
        return None
    incident = session.get(Incident, message.incident_id) if message.incident_id else None
    if incident is not None:
        incidents.lock_incident(session, incident)
        session.refresh(message)
    if message.status != OutboxStatus.claimed or message.claim_token != claim.token:
        return None
    if incident is not None:
        stopped = incident.status not in (IncidentStatus.open, IncidentStatus.notifying)
        if stopped and message.template not in AFTER_CONFIRMATION:
            message.status = OutboxStatus.cancelled
            message.updated_at = now
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
        message.updated_at = now
        session.add(message)
        return None
    message.status = OutboxStatus.sending
    message.claimed_at = message.updated_at = now
    session.add(message)
    return message, incident


def finish_send(
    session: Session, message_id: uuid.UUID
) -> tuple[OutboxMessage, Incident | None] | None:
    """Reload a row after its provider call, to record the outcome (`record_sent` /
    `record_failure`) in a short transaction; the incident is locked as every writer does."""
    message = session.get(OutboxMessage, message_id)
    if message is None:
        return None
    incident = session.get(Incident, message.incident_id) if message.incident_id else None
    if incident is not None:
        incidents.lock_incident(session, incident)
        session.refresh(message)
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
