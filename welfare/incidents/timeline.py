"""The one way to write a timeline event (Dispatch's `log_incident_event`)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import Session, col, select

from welfare.authz import Actor
from welfare.db import utcnow
from welfare.incidents.models import Incident, IncidentEvent
from welfare.wakeup import incident_changed


def actor_label(actor: Actor) -> str:
    return "system" if actor.is_system else actor.role.value


def record(
    session: Session,
    incident: Incident,
    type_: str,
    *,
    actor: Actor | None = None,
    label: str | None = None,
    **detail: Any,
) -> IncidentEvent:
    """Append an event. `detail` must hold ids, channels, statuses and codes only. Live views of
    the incident are woken when the transaction commits."""
    event = IncidentEvent(
        incident_id=incident.id,
        at=utcnow(),
        type=type_,
        actor_id=actor.user_id if actor else None,
        actor=label or (actor_label(actor) if actor else "system"),
        detail={k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in detail.items()},
    )
    session.add(event)  # inserted with the transaction's next flush, several at once
    incident_changed(session, incident.id)
    return event


def events_of(session: Session, incident_id: uuid.UUID) -> list[IncidentEvent]:
    return list(
        session.exec(
            select(IncidentEvent)
            .where(IncidentEvent.incident_id == incident_id)
            .order_by(col(IncidentEvent.id))
        ).all()
    )
