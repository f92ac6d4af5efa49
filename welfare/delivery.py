"""The outbox seen from the domain: claiming due rows, recording what the provider said, and
moving the escalation on when a step reached no one. Provider-free: the dispatcher in
`notifications/` does the talking.

A flow beside the folders: the send gate reads and locks incidents (welfare/incidents/), the
rows are the outbox's (welfare/outbox/), a failed push falls back to SMS (welfare/push/)."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, case, func, or_, update
from sqlmodel import Session, col, select

from welfare.audit import service as audit
from welfare.authz import Actor
from welfare.channels import WRITTEN, ChannelKind
from welfare.db import for_update, utcnow
from welfare.incidents import service as incidents
from welfare.incidents import timeline
from welfare.incidents.models import CLOSED, Incident, IncidentStatus
from welfare.outbox import limits
from welfare.outbox.models import ALL_CLEAR, OutboxMessage, OutboxStatus
from welfare.push import service as push

# Crash rules. A row left 'claimed' this long was claimed by a worker that died before handing
# it over: nothing went out, claim it again. A row left 'sending' this long belongs to a worker
# that died during the hand-over, so the provider may or may not have it. Rule: send it again
# (through the gate, so only while the incident still wants it). In an emergency a duplicate
# SMS or call is better than silence; the idempotency key goes with it. It stays 'sending'
# while reclaimed: a stop before the resend records it as possibly sent ('unknown'), never as
# cancelled.
STALE_CLAIM = dt.timedelta(seconds=30)
MAX_ATTEMPTS = 5
# A push that fails is not retried for long: its SMS fallback is the better retry.
MAX_ATTEMPTS_BY_KIND = {ChannelKind.push: 3}
BACKOFF_SECONDS = (2, 5, 15, 30)  # after attempt 1, 2, 3, 4
# Messages that still go out after confirmation: they are about the confirmation.
AFTER_CONFIRMATION = {"coming_notice"}
# Messages that go out once the incident is closed (resolved or cancelled), and only then:
# they say it is closed. Every escalation row is still stopped.
AFTER_CLOSE = {ALL_CLEAR}
# Why a row whose number was erased (consent withdrawn) after it was queued failed.
ERASED_NUMBER = "no phone number: erased since the message was queued"


@dataclass(frozen=True)
class Claim:
    message_id: uuid.UUID
    token: str
    incident_id: uuid.UUID | None = None
    # Reclaimed from a worker that died while handing it over: the provider may have it.
    resend: bool = False


def claim_due(session: Session, *, limit: int = 20, now: dt.datetime | None = None) -> list[Claim]:
    """Mark up to `limit` due rows 'claimed' under a fresh token, in one short transaction.
    Stale 'sending' rows keep their status (they may be with the provider), under the new token.

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
    query = for_update(
        session,
        select(OutboxMessage.id, OutboxMessage.incident_id, OutboxMessage.status)
        .where(due)
        .order_by(col(OutboxMessage.next_attempt_at)),
        skip_locked=True,
    )
    rows = list(session.exec(query.limit(limit)).all())
    if not rows:
        return []
    ids = [message_id for message_id, _, _ in rows]
    token = secrets.token_hex(8)
    session.exec(  # type: ignore[call-overload]
        update(OutboxMessage)
        .where(col(OutboxMessage.id).in_(ids))
        .values(
            status=case(
                (col(OutboxMessage.status) == OutboxStatus.sending, OutboxStatus.sending),
                else_=OutboxStatus.claimed,
            ),
            claimed_at=now,
            claim_token=token,
            updated_at=now,
        )
    )
    return [
        Claim(message_id, token, incident_id, resend=status == OutboxStatus.sending)
        for message_id, incident_id, status in rows
    ]


def defer(
    session: Session, claim: Claim, *, until: dt.datetime, now: dt.datetime | None = None
) -> bool:
    """Put a row back to wait until `until` (the sender is over its rate), taking back the
    attempt the gate counted. Called inside the gate's transaction (`open_sends`), before it
    commits: a row never handed over goes back to 'pending' and never shows as 'sending'. A
    resend (the provider may have it from before) stays 'sending', due again as a stale claim
    at `until`, so a stop meanwhile still records it as possibly sent. False when the row is no
    longer ours to put back."""
    now = now or utcnow()
    values: dict[str, Any] = {
        "attempts": col(OutboxMessage.attempts) - 1,
        "next_attempt_at": until,
        "claim_token": None,
        "updated_at": now,
    }
    if claim.resend:
        values["claimed_at"] = until - STALE_CLAIM
    else:
        values["status"] = OutboxStatus.pending
    moved = session.exec(  # type: ignore[call-overload]
        update(OutboxMessage)
        .where(
            col(OutboxMessage.id) == claim.message_id,
            col(OutboxMessage.status) == OutboxStatus.sending,
        )
        .values(**values)
    ).rowcount
    return bool(moved)


def hold_back(
    session: Session,
    claim: Claim,
    message: OutboxMessage,
    incident: Incident | None,
    held: limits.Held,
    *,
    now: dt.datetime | None = None,
) -> None:
    """In the gate's transaction: a limit per recipient keeps `message` back. Nothing goes out
    and the attempt the gate counted is taken back. Too many messages to the number: the row
    waits until `held.until`. The same text went earlier: the row is held for good, and its step
    moves on if nothing else of it is left. An incident's row says so on its timeline; any
    other row in the audit, once (not at every wait)."""
    now = now or utcnow()
    first_time = message.error_reason != held.reason
    if held.until is not None:
        defer(session, claim, until=held.until, now=now)
        message.error_code, message.error_reason = None, held.reason
    else:
        message.status = OutboxStatus.held
        message.attempts -= 1
        message.claim_token = None
        message.error_code, message.error_reason = None, held.reason
        message.updated_at = now
    session.add(message)
    detail = {
        "channel": message.kind.value,
        "message_id": str(message.id),
        "reason": held.reason,
        **({"until": held.until.isoformat()} if held.until else {}),
        **({"since": held.since.isoformat()} if held.since else {}),
    }
    if incident is not None:
        timeline.record(session, incident, "held_back", contact_id=message.contact_id, **detail)
        if held.until is None:
            mark_step_failed_if_dead(session, incident, message.step_index, now)
    elif first_time:
        audit.record(
            session,
            actor=Actor.system(),
            action="message.held_back",
            entity="outbox_message",
            entity_id=message.id,
            site_id=site_id_of(message),
            detail={**detail, "template": message.template},
        )


def site_id_of(message: OutboxMessage) -> uuid.UUID | None:
    """The site a row not about an incident names in its params (None: none, or not an id)."""
    try:
        return uuid.UUID(str(message.params["site_id"]))
    except (KeyError, ValueError):
        return None


def open_sends(
    session: Session, claims: Sequence[Claim], now: dt.datetime | None = None
) -> list[tuple[OutboxMessage, Incident | None] | None]:
    """The gate, in a short transaction of its own, for a batch of claims: under the incidents'
    locks, re-check that each row is still ours and still wanted, and move it 'claimed' ->
    'sending' with its attempt counted (a resend stays 'sending' and counts another): from the
    commit on, the row says it was handed over, before the provider is called. The caller
    commits, then hands the rows to the provider outside any transaction. One answer per claim,
    in order: the row and its incident, or None when the row is no longer ours, no longer
    wanted (then cancelled, or possibly sent for a resend) or has no number left to send to
    (erased since it was queued: then failed for good, `ERASED_NUMBER`).

    This is the moment that orders a send against a confirmation. A confirmation that commits
    first has cancelled the claimed row (`incidents.service._stop`), so the gate refuses it and
    nothing goes out; one that commits after finds the row 'sending': in flight, decided before
    the confirmation, and its contact counts as reached; the stop records it as possibly sent
    ('unknown') until the provider's answer is recorded, and it is never resent. No lock is
    held during the provider call, so one slow provider request never blocks other writers (on
    SQLite: every writer).
    """
    now = now or utcnow()
    # Incidents first (locked on PostgreSQL), then the rows, read after the locks are held.
    locked = incidents.lock_incidents(
        session, (claim.incident_id for claim in claims if claim.incident_id)
    )
    rows = session.exec(
        select(OutboxMessage)
        .where(col(OutboxMessage.id).in_([claim.message_id for claim in claims]))
        .execution_options(populate_existing=True)
    ).all()
    by_id = {message.id: message for message in rows}
    return [_open(session, by_id.get(claim.message_id), claim, locked, now) for claim in claims]


def _open(
    session: Session,
    message: OutboxMessage | None,
    claim: Claim,
    locked: dict[uuid.UUID, Incident],
    now: dt.datetime,
) -> tuple[OutboxMessage, Incident | None] | None:
    expected = OutboxStatus.sending if claim.resend else OutboxStatus.claimed
    if message is None or message.status != expected:
        return None
    if message.claim_token != claim.token:
        return None
    incident = locked.get(message.incident_id) if message.incident_id else None
    if incident is not None:
        stopped = incident.status not in (IncidentStatus.open, IncidentStatus.notifying)
        if stopped and not _wanted_once_stopped(message.template, incident.status):
            _settle_unwanted(message, now)
            session.add(message)
            timeline.record(
                session,
                incident,
                "possibly_sent" if claim.resend else "send_cancelled",
                message_id=message.id,
                reason=f"incident {incident.status.value}",
            )
            return None
    if message.to_phone is None:  # erased since it was queued: fails for good, in words
        record_failure(
            session, message, incident, reason=ERASED_NUMBER, code=None, permanent=True, now=now
        )
        return None
    message.status = OutboxStatus.sending
    message.attempts += 1
    message.claimed_at = message.updated_at = now
    session.add(message)
    return message, incident


def _wanted_once_stopped(template: str, status: IncidentStatus) -> bool:
    """Whether a row still goes out once its incident stopped escalating: the "coming" notice
    (about the confirmation), and the all-clear once the incident is closed."""
    if template in AFTER_CONFIRMATION:
        return True
    return template in AFTER_CLOSE and status in CLOSED


def _settle_unwanted(message: OutboxMessage, now: dt.datetime) -> None:
    """A row no longer wanted: cancelled if never handed over, else possibly sent."""
    handed_over = message.status == OutboxStatus.sending
    message.status = OutboxStatus.unknown if handed_over else OutboxStatus.cancelled
    message.claim_token = None
    message.updated_at = now


def finish_send(
    session: Session, message_id: uuid.UUID, token: str | None
) -> tuple[OutboxMessage, Incident | None] | None:
    """Reload a row after a failed provider call, to record it (`record_failure`) in a short
    transaction; the incident is locked as every writer does. None when the row is gone or no
    longer under the claim `token` the send went out on: another worker took it over after the
    stale window (and may have sent it already), so this failure is not the row's to record."""
    message = session.get(OutboxMessage, message_id)
    if message is None:
        return None
    incident = session.get(Incident, message.incident_id) if message.incident_id else None
    if incident is not None:
        incidents.lock_incident(session, incident)
        session.refresh(message)
    if message.claim_token != token:
        return None
    return message, incident


@dataclass(frozen=True)
class Accepted:
    """The provider took a row: its id for the row, and its first word on it. `claim_token` is
    the claim the send went out on: the row is only updated while it is still under it."""

    message_id: uuid.UUID
    provider_id: str
    provider_status: str
    claim_token: str | None


def record_sent(
    session: Session, accepted: Sequence[Accepted], *, now: dt.datetime | None = None
) -> None:
    """Record the provider's acceptance of rows handed over, in a few set-based statements
    whatever their number (the dispatcher's round records tens at once; row by row through
    the ORM this was its costliest work and held SQLite's write lock longest). Rows erased
    since they were sent are skipped, and so are rows another worker took over after the stale
    window (their claim token changed): that worker's own send is the one the row records, so
    a late answer to this one never overwrites its provider id or status."""
    if not accepted:
        return
    now = now or utcnow()
    tokens = {item.message_id: item.claim_token for item in accepted}
    rows = session.exec(
        select(
            OutboxMessage.id,
            OutboxMessage.incident_id,
            OutboxMessage.kind,
            OutboxMessage.contact_id,
            OutboxMessage.user_id,
            OutboxMessage.template,
        ).where(col(OutboxMessage.id).in_(list(tokens)))
    ).all()
    incident_ids = {row.incident_id for row in rows if row.incident_id}
    incidents.lock_incidents(session, incident_ids)
    # The tokens now, the rows locked on PostgreSQL (a takeover's `claim_due` skips locked rows;
    # on SQLite this transaction is the one writer): a row ours here is still ours at the update.
    query = for_update(
        session,
        select(OutboxMessage.id, OutboxMessage.claim_token).where(
            col(OutboxMessage.id).in_(list(tokens))
        ),
    )
    current = dict(session.exec(query).all())
    ours = {message_id for message_id, token in current.items() if token == tokens[message_id]}
    accepted = [item for item in accepted if item.message_id in ours]
    rows = [row for row in rows if row.id in ours]
    if not accepted:
        return
    incident_ids = {row.incident_id for row in rows if row.incident_id}
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    session.execute(
        update(table)
        .where(table.c.id == bindparam("message_id"), table.c.claim_token == bindparam("token"))
        .values(
            status=OutboxStatus.sent,
            provider_id=bindparam("provider_id"),
            # A status callback may have beaten the create response here: keep its newer word.
            provider_status=func.coalesce(table.c.provider_status, bindparam("first_status")),
            sent_at=now,
            updated_at=now,
        ),
        [
            {
                "message_id": item.message_id,
                "provider_id": item.provider_id,
                "first_status": item.provider_status,
                "token": item.claim_token,
            }
            for item in accepted
        ],
    )
    if incident_ids:
        session.exec(  # type: ignore[call-overload]
            update(Incident)
            .where(col(Incident.id).in_(list(incident_ids)), col(Incident.first_sent_at).is_(None))
            .values(first_sent_at=now)
        )
    first_word = {item.message_id: item.provider_status for item in accepted}
    timeline.record_many(
        session,
        [
            (
                row.incident_id,
                "all_clear_sent" if row.template == ALL_CLEAR else "sent",
                {
                    "channel": row.kind.value,
                    "message_id": row.id,
                    "contact_id": row.contact_id,
                    "user_id": row.user_id,
                    "provider_status": first_word[row.id],
                },
            )
            for row in rows
            if row.incident_id is not None
        ],
    )


def is_final_failure(message: OutboxMessage, *, permanent: bool) -> bool:
    """Whether `record_failure` will fail this row for good (no retry left)."""
    return permanent or message.attempts >= MAX_ATTEMPTS_BY_KIND.get(message.kind, MAX_ATTEMPTS)


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
    step now reached no one, let the escalation move on at once. The attempt itself was counted
    at the gate."""
    now = now or utcnow()
    message.error_code, message.error_reason = code, reason[:300]
    message.updated_at = now
    if not is_final_failure(message, permanent=permanent):
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
    if message.kind in WRITTEN:
        limits.forget(session, message.id)  # it never arrived: the same text may go again
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
    if message.kind is ChannelKind.push:
        push.fall_back_to_sms(session, message, incident, reason=reason, code=code, now=now)
    mark_step_failed_if_dead(session, incident, message.step_index, now)


def mark_step_failed_if_dead(
    session: Session, incident: Incident, step_index: int | None, now: dt.datetime
) -> None:
    """Every message of the step failed (or went unanswered for good, or was held back as the
    same text again): pull the next forward."""
    if step_index is None:
        return
    siblings = session.exec(
        select(OutboxMessage.status).where(
            OutboxMessage.incident_id == incident.id, OutboxMessage.step_index == step_index
        )
    ).all()
    if siblings and all(s in (OutboxStatus.failed, OutboxStatus.held) for s in siblings):
        event = timeline.record(
            session, incident, "step_failed", step=step_index, reasons=["every message failed"]
        )
        # Timeline times come from the clock at writing; never ask "what is due" before them.
        incidents.advance(session=session, incident=incident, now=max(now, event.at))
