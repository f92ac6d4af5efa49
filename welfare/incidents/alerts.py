"""Missing-resident alerts as guards see them: while the incident is open, and only then."""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import Session, col, select

from welfare.authz import Actor, Permission, require_site, visible_site_ids
from welfare.errors import NotFound
from welfare.incidents.models import CLOSED, Incident, IncidentKind
from welfare.residents.models import Resident
from welfare.residents.service import audit_resident, unit_label


def _card(session: Session, actor: Actor, incident: Incident) -> dict[str, Any] | None:
    resident = session.get(Resident, incident.resident_id) if incident.resident_id else None
    if resident is None or resident.erased_at is not None:
        return None
    # Each view is audited with the incident as its purpose (break-glass style access).
    audit_resident(
        session,
        actor,
        "alert.read",
        resident,
        entity="incident",
        entity_id=incident.id,
        purpose=f"incident {incident.id}",
    )
    return {
        "incident_id": incident.id,
        "reference": incident.reference,
        "opened_at": incident.opened_at,
        "last_seen": incident.location,
        "note": incident.note,
        "resident_id": resident.id,
        "preferred_name": resident.preferred_name or resident.full_name,
        "unit": unit_label(session, resident),
        "languages": resident.languages,
        "approach": resident.approach,
        "photo_url": f"/api/v1/lookup/{resident.id}/photo" if resident.photo_file else None,
        "height_cm": resident.height_cm,
        "build": resident.build,
        "hair": resident.hair,
        "eyes": resident.eyes,
        "clothing": resident.clothing,
        "distinguishing_marks": resident.distinguishing_marks,
        "places": resident.places,
    }


def open_alerts(*, session: Session, actor: Actor) -> list[dict[str, Any]]:
    sites = visible_site_ids(actor, Permission.guard_ops)
    query = select(Incident).where(
        Incident.kind == IncidentKind.missing, col(Incident.status).not_in(CLOSED)
    )
    if sites is not None:
        query = query.where(col(Incident.site_id).in_(sites))
    incidents = session.exec(query.order_by(col(Incident.opened_at).desc()).limit(50)).all()
    return [card for i in incidents if (card := _card(session, actor, i)) is not None]


def alert(*, session: Session, actor: Actor, incident_id: uuid.UUID) -> dict[str, Any]:
    incident = session.get(Incident, incident_id)
    if incident is None or incident.kind is not IncidentKind.missing or incident.status in CLOSED:
        raise NotFound("alert")
    require_site(actor, Permission.guard_ops, incident.site_id, "alert")
    card = _card(session, actor, incident)
    if card is None:
        raise NotFound("alert")
    return card
