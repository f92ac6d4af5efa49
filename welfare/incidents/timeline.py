"""The one way to write a timeline event (Dispatch's `log_incident_event`)."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlalchemy import event, insert, inspect
from sqlmodel import Session, col, select

from welfare.authz import Actor, Permission
from welfare.db import utcnow
from welfare.incidents.models import Incident, IncidentEvent, NoteVisibility
from welfare.wakeup import incident_changed

T = TypeVar("T")


def actor_label(actor: Actor) -> str:
    return "system" if actor.is_system else actor.role.value


def _plain(detail: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in detail.items()}


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
        detail=_plain(detail),
    )
    session.add(event)  # inserted with the transaction's next flush, several at once
    incident_changed(session, incident.id)
    return event


def record_many(session: Session, events: list[tuple[uuid.UUID, str, dict[str, Any]]]) -> None:
    """Append system events to several incidents in one statement (the dispatcher's round):
    (incident id, type, detail), with `record`'s rules for `detail`."""
    if not events:
        return
    now = utcnow()
    session.execute(
        insert(IncidentEvent),
        [
            {
                "incident_id": incident_id,
                "at": now,
                "type": type_,
                "actor_id": None,
                "actor": "system",
                "detail": _plain(detail),
            }
            for incident_id, type_, detail in events
        ],
    )
    for incident_id in {incident_id for incident_id, _, _ in events}:
        incident_changed(session, incident_id)


_OPENED_HERE = "welfare_incidents_opened_unflushed"


def opened_here(session: Session, incident: Incident) -> None:
    """The incident was just inserted on its own (so that the database could refuse a second
    running one); everything else made for it is still unflushed until the next flush."""
    session.info.setdefault(_OPENED_HERE, set()).add(incident.id)


@event.listens_for(Session, "after_flush")
def _forget_opened(session: Session, _context: Any) -> None:
    session.info.pop(_OPENED_HERE, None)


def unflushed(session: Session, incident: Incident, kind: type[T]) -> list[T] | None:
    """The rows of `kind` (events, outbox rows) made for an incident that this transaction
    opened and has not flushed since, in the order they were made: all it has, read without a
    query. None once they are in the database (then read them from there)."""
    if incident not in session.new and incident.id not in session.info.get(_OPENED_HERE, ()):
        return None
    made = sorted(session.new, key=lambda row: inspect(row).insert_order)
    return [row for row in made if isinstance(row, kind) and row.incident_id == incident.id]  # type: ignore[attr-defined]


def for_viewer(actor: Actor, event_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    """An event's detail as `actor` may see it: a note's words reach guards only when its
    writer meant them for everyone on the incident (staff notes may hold health data)."""
    if event_type != "note" or "text" not in detail or actor.can(Permission.registry_read):
        return detail
    if detail.get("visibility") == NoteVisibility.everyone.value:
        return detail
    return {k: v for k, v in detail.items() if k != "text"}


def events_of(session: Session, incident_id: uuid.UUID) -> list[IncidentEvent]:
    return list(
        session.exec(
            select(IncidentEvent)
            .where(IncidentEvent.incident_id == incident_id)
            .order_by(col(IncidentEvent.id))
        ).all()
    )
