"""Missing-resident alerts as guards see them: while the incident is open, and only then.

A resident a member of the public found (`Incident.public_finder`, welfare/incidents/
public_reports.py) is an alert too: the card then says where the finder is waiting, with the map
link of the coordinates they shared, so the nearest guard can go.

`card_of` is the one builder of what a guard sees; the console's preview before staff raise an
alert uses it too, so the preview is the alert. On a missing incident `location` is where the
resident was last seen and `description` what they were wearing then.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, select

from welfare.audit.service import audit_resident
from welfare.authz import Actor, Permission, require_site, visible_site_ids
from welfare.consent.models import ConsentScope
from welfare.consent.scopes import has_scope
from welfare.db import utcnow
from welfare.errors import InvalidInput, NotFound
from welfare.incidents.models import CLOSED, Incident, IncidentKind
from welfare.incidents.public_reports import incident_map_link
from welfare.incidents.service import guards_on_duty
from welfare.residents.models import Resident
from welfare.residents.service import load_resident, unit_label
from welfare.sites.models import Site


def card_of(
    session: Session,
    resident: Resident,
    *,
    incident_id: uuid.UUID | None,
    reference: str | None,
    opened_at: dt.datetime,
    last_seen: str | None,
    last_seen_clothing: str | None,
    note: str | None,
    found_by_public: bool = False,
    map_url: str | None = None,
) -> dict[str, Any]:
    """What a guard sees of a missing resident: the name card, the description, the places;
    no medical notes, no contacts. `found_by_public`: a finder is waiting with them (at
    `last_seen`, and at `map_url` when they shared where)."""
    return {
        "incident_id": incident_id,
        "found_by_public": found_by_public,
        "map_url": map_url,
        "reference": reference,
        "opened_at": opened_at,
        "last_seen": last_seen,
        "last_seen_clothing": last_seen_clothing,
        "note": note,
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
        "walking_aid": resident.walking_aid,
        "places": resident.places,
    }


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
    return card_of(
        session,
        resident,
        incident_id=incident.id,
        reference=incident.reference,
        opened_at=incident.opened_at,
        last_seen=incident.location,
        last_seen_clothing=incident.description,
        note=incident.note,
        found_by_public=incident.kind is IncidentKind.found,
        map_url=incident_map_link(incident),
    )


def _is_alert(incident: Incident) -> bool:
    return incident.kind is IncidentKind.missing or (
        incident.kind is IncidentKind.found and bool(incident.public_finder)
    )


def open_alerts(*, session: Session, actor: Actor) -> list[dict[str, Any]]:
    sites = visible_site_ids(actor, Permission.guard_ops)
    query = select(Incident).where(
        or_(
            Incident.kind == IncidentKind.missing,
            (Incident.kind == IncidentKind.found) & col(Incident.public_finder).is_(True),
        ),
        col(Incident.status).not_in(CLOSED),
    )
    if sites is not None:
        query = query.where(col(Incident.site_id).in_(sites))
    incidents = session.exec(query.order_by(col(Incident.opened_at).desc()).limit(50)).all()
    return [card for i in incidents if (card := _card(session, actor, i)) is not None]


def alert(*, session: Session, actor: Actor, incident_id: uuid.UUID) -> dict[str, Any]:
    incident = session.get(Incident, incident_id)
    if incident is None or not _is_alert(incident) or incident.status in CLOSED:
        raise NotFound("alert")
    require_site(actor, Permission.guard_ops, incident.site_id, "alert")
    card = _card(session, actor, incident)
    if card is None:
        raise NotFound("alert")
    return card


@dataclass(frozen=True)
class AlertPreview:
    """What raising a missing alert would send: the guards' card, and to whom the SMS goes."""

    card: dict[str, Any]
    site: Site
    guard_languages: list[str]  # one entry per guard on duty
    may_raise: bool  # a live lost-person consent: without one guards may not act on them


def preview(
    *,
    session: Session,
    actor: Actor,
    resident_id: uuid.UUID,
    last_seen: str | None = None,
    last_seen_clothing: str | None = None,
    note: str | None = None,
    now: dt.datetime | None = None,
) -> AlertPreview:
    """The alert guards would get for this resident, before staff raise it. Audited as a read
    of the resident's card; refused like the raising itself for an erased record."""
    resident = load_resident(session, actor, resident_id, Permission.registry_write)
    if resident.erased_at is not None:
        raise InvalidInput(
            "resident_id",
            "unknown resident: give the id of a resident at one of your sites,"
            " as GET /api/v1/residents lists them",
        )
    site = session.get(Site, resident.site_id)
    assert site is not None
    audit_resident(session, actor, "alert.preview", resident, purpose="missing alert preview")
    card = card_of(
        session,
        resident,
        incident_id=None,
        reference=None,
        opened_at=now or utcnow(),
        last_seen=last_seen,
        last_seen_clothing=last_seen_clothing,
        note=note,
    )
    guards = guards_on_duty(session, site.id)
    return AlertPreview(
        card=card,
        site=site,
        guard_languages=[g.language for g in guards],
        may_raise=has_scope(session, resident.id, ConsentScope.lost_person_response),
    )
