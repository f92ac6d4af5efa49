"""`enqueue`: the one way any code adds an outbound row (an SMS, a call, later a WhatsApp message
or a push). It writes the row, the incident's "queued" event when the row is about an incident
(through `welfare.hooks.incident_event`: the timeline is the incidents', which build on this),
and wakes the dispatcher when the transaction commits, so the first message leaves at once
instead of at the next poll.

The row holds ids and place words only; the dispatcher renders the text in `language` when it
sends (welfare never renders provider text).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Protocol

from sqlmodel import Session, select

from welfare import hooks
from welfare.authz import Actor
from welfare.channels import ChannelKind
from welfare.db import insert_unless_conflict, utcnow
from welfare.outbox.models import OutboxMessage
from welfare.wakeup import outbox_queued


class Incident(Protocol):
    """What a row about an incident takes from it (a `welfare.incidents.models.Incident`)."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def reference(self) -> str: ...

    @property
    def site_id(self) -> uuid.UUID: ...


def incident_key(
    incident: Incident,
    kind: ChannelKind,
    *,
    cause: str | int,
    recipient: uuid.UUID | None,
) -> str:
    """An incident row's idempotency key: one per incident, cause (the escalation step, or the
    template for messages outside it), recipient and channel."""
    return f"{incident.id}:{cause}:{recipient}:{kind.value}"


def incident_params(incident: Incident) -> dict[str, Any]:
    return {
        "incident_id": str(incident.id),
        "reference": incident.reference,
        "site_id": str(incident.site_id),
    }


def enqueue(
    session: Session,
    *,
    kind: ChannelKind,
    to: str,
    language: str,
    template: str,
    key: str,
    params: dict[str, Any] | None = None,
    incident: Incident | None = None,
    step_index: int | None = None,
    contact_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    actor: Actor | None = None,
    event: str = "queued",
    event_detail: dict[str, Any] | None = None,
    once: bool = False,
    now: dt.datetime | None = None,
) -> OutboxMessage | None:
    """Queue one outbound row under the unique idempotency `key` and return it.

    `once`: the key may already be taken (a rerun of a scheduler tick, a racing request): the
    row is inserted in a savepoint and None is returned, with nothing else written, when the
    database refuses it. Without `once` the caller guarantees the key is new (the escalation
    queues under the incident's lock), and the row is only added, to go with the next flush.

    An incident row gets `params` on top of the incident's own (id, reference, site) and an
    `event` on its timeline ("queued" unless told otherwise), with `event_detail` added.
    """
    now = now or utcnow()
    message = OutboxMessage(
        idempotency_key=key,
        incident_id=incident.id if incident else None,
        step_index=step_index,
        contact_id=contact_id,
        user_id=user_id,
        kind=kind,
        to_phone=to,
        language=language,
        template=template,
        params={
            **(incident_params(incident) if incident else {}),
            **{name: _plain(value) for name, value in (params or {}).items()},
        },
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    if once:
        if not insert_unless_conflict(session, message):
            return None
    else:
        session.add(message)
    outbox_queued(session)
    if incident is not None:  # on its timeline (welfare/incidents/timeline.py, through the hook)
        hooks.incident_event(
            session,
            incident,
            event,
            actor=actor,
            channel=kind.value,
            step=step_index,
            contact_id=contact_id,
            user_id=user_id,
            message_id=message.id,
            **(event_detail or {}),
        )
    return message


def already_queued(session: Session, key: str) -> OutboxMessage | None:
    return session.exec(select(OutboxMessage).where(OutboxMessage.idempotency_key == key)).first()


def _plain(value: Any) -> Any:
    """Params are JSON: ids and times as strings."""
    if isinstance(value, uuid.UUID | dt.datetime | dt.date):
        return value.isoformat() if not isinstance(value, uuid.UUID) else str(value)
    return value
