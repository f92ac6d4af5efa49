"""A provider's news about what it was handed: one recording path for every provider.

Status words are shared (Twilio's, which name every stage a message or call goes through):
queued, sent, delivered, undelivered, failed for messages; initiated, ringing, answered
(in-progress), completed, busy, no-answer, canceled for calls. A provider's webhooks or report
poller map their own words onto these and call `record_status`; the console channel's simulation
calls `apply_status`. News never moves a row backwards, each piece of news is acted on once
(a receipt row), and a call that ends without a key is a missed call (the escalation moves on).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, select

from notifications import metrics, routes
from welfare.channels import ChannelKind
from welfare.db import insert_unless_conflict, session_scope
from welfare.incidents import service as incidents
from welfare.incidents import timeline
from welfare.incidents.models import Incident
from welfare.outbox import limits
from welfare.outbox.models import OutboxMessage
from welfare.settings import Settings
from welfare.webhooks.models import WebhookReceipt

# Provider words -> timeline event types. A voicemail or an answered call without a key is
# not a confirmation: only the Gather action and SMS replies confirm.
STATUS_EVENTS = {
    "sent": "sent_to_carrier",
    "delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "ringing": "ringing",
    "in-progress": "answered",
    "answered": "answered",
    "completed": "call_ended",
    "busy": "busy",
    "no-answer": "no_answer",
    "canceled": "call_cancelled",
}

# A message's final news that it did not arrive: it may go once through another provider.
UNDELIVERED = frozenset({"undelivered", "failed"})
FINAL_DELIVERY = UNDELIVERED | {"delivered"}

# How far along a message or call is; news never moves a row backwards.
STATUS_RANK = {
    "accepted": 0,
    "queued": 0,
    "initiated": 1,
    "sending": 1,
    "sent": 2,
    "ringing": 2,
    "in-progress": 3,
    "answered": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "completed": 4,
    "busy": 4,
    "no-answer": 4,
    "canceled": 4,
    "read": 5,
}

# Twilio's AnsweredBy words (DetectMessageEnd) that mean no person took the call.
MACHINE_ANSWERS = frozenset({"machine_end_beep", "machine_end_silence", "machine_end_other", "fax"})
# A call's final status without a key, as a missed call's outcome ("completed": see below).
MISSED_STATUSES = {
    "no-answer": "no_answer",
    "busy": "busy",
    "failed": "failed",
    "canceled": "cancelled",
    "completed": "no_key",
}


def first_receipt(session: Session, key: str) -> bool:
    """Record that the callback `key` is being acted on; False if it already was."""
    if session.get(WebhookReceipt, key) is not None:
        return False
    return insert_unless_conflict(session, WebhookReceipt(key=key))  # False: a concurrent twin


def message_id_of(raw: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw) if raw else None
    except ValueError:
        return None


def find_row(session: Session, message_id: str | None, sid: str | None) -> OutboxMessage | None:
    """The outbox row by the message_id of our URL, else by the SID; stores a missing SID.

    Locks the row's incident before writing anything, in the dispatcher's order (incident, then
    row): a callback that arrives while its send is still in flight (before Twilio's create
    answer reached the dispatcher) waits for that send to be recorded instead of deadlocking
    with it on PostgreSQL."""
    row = None
    parsed = message_id_of(message_id)
    if parsed is not None:
        row = session.get(OutboxMessage, parsed)
    if row is None and sid:
        row = session.exec(select(OutboxMessage).where(OutboxMessage.provider_id == sid)).first()
    incident = incident_of(session, row) if row is not None else None
    if row is not None and incident is not None:
        incidents.lock_incident(session, incident)
        session.refresh(row)
    if row is not None and sid and row.provider_id is None:
        row.provider_id = sid
        session.add(row)
    return row


def incident_of(session: Session, row: OutboxMessage) -> Incident | None:
    return session.get(Incident, row.incident_id) if row.incident_id else None


def record_status(
    session: Session,
    *,
    message_id: str | None,
    sid: str | None,
    status: str | None,
    error_code: str | None = None,
    error_reason: str | None = None,
    answered_by: str = "",
    settings: Settings | None = None,
) -> bool:
    """A provider's news about a message or call it took (`sid` is its id for it), in the
    shared status words. False when it changed nothing (unknown word or row, a repeat).
    `error_reason` is our own words for the provider's `error_code`. With `settings`, a
    message reported undelivered goes once to the next provider of its route."""
    status = (status or "").strip().lower()
    event_type = STATUS_EVENTS.get(status)
    if not sid or event_type is None:
        return False
    row = find_row(session, message_id, sid)
    if row is None:
        return False
    if not first_receipt(session, f"status:{sid}:{status}"):
        return False
    code = error_code
    current = row.provider_id == sid
    if current and STATUS_RANK.get(status, 0) >= STATUS_RANK.get(row.provider_status or "", -1):
        row.provider_status = status
        if code and row.error_code is None:
            row.error_code = code
            row.error_reason = error_reason
        session.add(row)
    incident = incident_of(session, row)
    if current and row.kind is not ChannelKind.voice and status in FINAL_DELIVERY:
        metrics.delivery_report(row.provider, status)
    undelivered = current and row.kind is not ChannelKind.voice and status in UNDELIVERED
    if undelivered:
        limits.forget(session, row.id)  # it never arrived: the same text may go again
    if settings is not None and undelivered:
        reason = error_reason or f"{status}, said {row.provider or 'the provider'}"
        routes.carry_on(session, settings, row, incident, reason=reason)
    if incident is None:
        return True
    detail: dict[str, Any] = {
        "channel": row.kind.value,
        "message_id": row.id,
        "contact_id": row.contact_id,
    }
    if row.user_id is not None:
        detail["user_id"] = row.user_id
    if code:
        detail["error_code"] = code
        detail["reason"] = error_reason
    answered_by = answered_by.strip()
    if answered_by and len(answered_by) <= 30:
        detail["answered_by"] = answered_by
    if not current:
        detail["earlier_attempt"] = True
    timeline.record(session, incident, event_type, label="provider", **detail)
    if current and row.kind is ChannelKind.voice and status in MISSED_STATUSES:
        _call_ended(session, incident, row, status, answered_by)
    return True


def _call_ended(
    session: Session, incident: Incident, row: OutboxMessage, status: str, answered_by: str
) -> None:
    """A call's final status: a missed call unless a key was pressed on it."""
    outcome = MISSED_STATUSES[status]
    if status == "completed":
        if answered_by in MACHINE_ANSWERS:
            outcome = "voicemail"  # AMD's verdict came with the status (or its callback was lost)
        elif _key_pressed(session, incident, row):
            return
    if incidents.record_missed_call(session, incident, message=row, outcome=outcome):
        metrics.call_missed(outcome)


def _key_pressed(session: Session, incident: Incident, row: OutboxMessage) -> bool:
    return any(
        event.type == "key_pressed" and event.detail.get("message_id") == str(row.id)
        for event in timeline.events_of(session, incident.id)
    )


def apply_status(
    factory: sessionmaker[Session],
    provider_id: str,
    status: str,
    extra: Mapping[str, Any],
    *,
    settings: Settings | None = None,
) -> bool:
    """News that arrives outside a webhook (the console channel's simulation, a provider's
    delivery reports fetched by polling), recorded in a transaction of its own. With
    `settings`, an undelivered message fails over as in `record_status`."""
    with session_scope(factory) as session:
        return record_status(
            session,
            message_id=None,
            sid=provider_id,
            status=status,
            error_code=extra.get("error_code"),
            error_reason=extra.get("error_reason"),
            answered_by=str(extra.get("answered_by") or ""),
            settings=settings,
        )
