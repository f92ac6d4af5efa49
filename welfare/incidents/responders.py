"""Break-glass access: the guard on the spot sees who the person is and where they live.

A guard's lookup card is minimal. The guard who reported an incident, or claimed it, may also see
the resident's approach card and household details (unit, building, the site's address, the
contacts' names and relationships: no phone numbers, no health data) while the incident is
open, and only then. Staff of the site, who hold the registry anyway, may see the same view
under the same rule. Each view is audited with the incident as its purpose.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import Session, col, select

from welfare.audit.service import audit_resident
from welfare.audit.service import record as audit_record
from welfare.authz import Actor, Permission, require_site
from welfare.consent.models import ConsentScope
from welfare.consent.scopes import consents_of, live_scopes
from welfare.db import insert_unless_conflict
from welfare.errors import Conflict, NotFound, PermissionDenied
from welfare.incidents import timeline
from welfare.incidents.models import CLOSED, Incident, IncidentResponder
from welfare.residents.models import Contact, Resident
from welfare.sites.models import Household, Site


def load_for_guard(session: Session, actor: Actor, incident_id: uuid.UUID) -> Incident:
    """The incident, if it is at one of the actor's sites (else 404 / 403)."""
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFound("incident")
    require_site(actor, Permission.guard_ops, incident.site_id, "incident")
    return incident


def is_responder(session: Session, actor: Actor, incident: Incident) -> bool:
    """The actor reported the incident or claimed it."""
    if actor.user_id is None:
        return False
    if incident.reported_by == actor.user_id:
        return True
    return session.get(IncidentResponder, (incident.id, actor.user_id)) is not None


def claim(*, session: Session, actor: Actor, incident_id: uuid.UUID) -> tuple[Incident, bool]:
    """A guard of the site takes the incident on (a missing alert they are answering, a report
    a colleague made). Returns (incident, claimed now); claiming twice changes nothing."""
    incident = load_for_guard(session, actor, incident_id)
    if actor.user_id is None:
        raise PermissionDenied("only a signed-in user can claim an incident")
    if incident.status in CLOSED:
        raise Conflict(f"the incident is already {incident.status.value}")
    if is_responder(session, actor, incident):
        return incident, False
    row = IncidentResponder(incident_id=incident.id, user_id=actor.user_id)
    if not insert_unless_conflict(session, row):  # the same guard, twice at once
        return incident, False
    timeline.record(session, incident, "claimed", actor=actor)
    audit_record(
        session,
        actor=actor,
        action="incident.claim",
        entity="incident",
        entity_id=incident.id,
        resident_id=incident.resident_id,
        site_id=incident.site_id,
        purpose=f"incident {incident.id}",
    )
    return incident, True


def resident_view(*, session: Session, actor: Actor, incident_id: uuid.UUID) -> dict[str, Any]:
    """The resident's approach card and household for a responder of an open incident."""
    incident = load_for_guard(session, actor, incident_id)
    if incident.status in CLOSED:
        raise PermissionDenied(f"the incident is {incident.status.value}: access has ended")
    if not (actor.can(Permission.registry_read) or is_responder(session, actor, incident)):
        raise PermissionDenied("only the guard who reported or claimed this incident may see this")
    resident = session.get(Resident, incident.resident_id) if incident.resident_id else None
    if resident is None or resident.erased_at is not None:
        raise NotFound("resident")
    scopes = live_scopes(consents_of(session, resident.id))
    if ConsentScope.lost_person_response not in scopes:
        raise NotFound("resident")
    household = session.get(Household, resident.household_id) if resident.household_id else None
    site = session.get(Site, resident.site_id)
    contacts = session.exec(
        select(Contact)
        .where(Contact.resident_id == resident.id)
        .order_by(col(Contact.priority), col(Contact.created_at))
    ).all()
    audit_resident(
        session,
        actor,
        "incident.resident_read",
        resident,
        entity="incident",
        entity_id=incident.id,
        purpose=f"incident {incident.id}",
    )
    has_photo = bool(resident.thumbnail_file) and ConsentScope.photo in scopes
    return {
        "incident_id": incident.id,
        "resident_id": resident.id,
        "preferred_name": resident.preferred_name or resident.full_name,
        "full_name": resident.full_name,
        "languages": list(resident.languages),
        "approach": resident.approach,
        "photo_url": f"/api/v1/lookup/{resident.id}/photo" if has_photo else None,
        "places": list(resident.places),
        "household": {
            "building": household.building if household else None,
            "unit": household.unit if household else None,
            "unit_label": household.unit_label if household else None,
            "site_name": site.name if site else None,
            "address": site.address if site else None,
        },
        "contacts": [
            {
                "name": c.name,
                "relationship": c.relationship,
                "priority": c.priority,
                "lives_in_household": c.lives_in_household,
                "can_collect": c.can_collect,
            }
            for c in contacts
        ],
    }
