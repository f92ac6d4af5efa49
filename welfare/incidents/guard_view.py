"""What the guard's phone shows beyond the lookup: one card by id, and who is being contacted.

A guard follows the response on the live incident page: each contact by relationship and order
("son, 1st"), never a name or a number. Every function checks the site like the services do.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlmodel import Session, col, select

from welfare.audit.service import record as audit_record
from welfare.authz import Actor, Permission, require_site
from welfare.errors import NotFound
from welfare.incidents import service as incidents
from welfare.incidents.models import Incident
from welfare.lookup import service as lookups
from welfare.lookup.models import LookupCard, LookupEntry
from welfare.residents.models import Contact
from welfare.sites.models import Site

# Ambulance numbers by the site's phone region; 112 works on most mobile networks elsewhere.
EMERGENCY_NUMBERS = {
    "HK": "999",
    "MO": "999",
    "GB": "999",
    "IE": "112",
    "SG": "995",
    "MY": "999",
    "CN": "120",
    "TW": "119",
    "KR": "119",
    "JP": "119",
    "US": "911",
    "CA": "911",
    "MX": "911",
    "PH": "911",
    "AU": "000",
    "NZ": "111",
    "IN": "112",
    "TH": "1669",
}
DEFAULT_EMERGENCY_NUMBER = "112"


def emergency_number(phone_region: str | None) -> str:
    return EMERGENCY_NUMBERS.get((phone_region or "").upper(), DEFAULT_EMERGENCY_NUMBER)


def card_for(*, session: Session, actor: Actor, resident_id: uuid.UUID) -> LookupCard:
    """The lookup card of one resident (the card page a search result links to).

    Same rules as the lookup: the guard's sites, a live lost-person consent, the photo only with
    its consent; anything else is "not found". Audited like a lookup.
    """
    entry = session.exec(select(LookupEntry).where(LookupEntry.resident_id == resident_id)).first()
    if entry is None:
        raise NotFound("resident")
    require_site(actor, Permission.guard_ops, entry.site_id, "resident")
    # The lookup's own card builder, so the two can never disagree on what a guard sees.
    hit = lookups._Hit(entry=entry, score=lookups.SCORE_TAG, matched="card")
    cards = lookups._cards(session, actor, [hit], 1)
    if not cards:
        raise NotFound("resident")
    card = cards[0]
    audit_record(
        session,
        actor=actor,
        action="lookup.card",
        entity="lookup",
        resident_id=card.resident_id,
        site_id=card.site_id,
        detail={"kind": "card", "results": [str(card.resident_id)]},
    )
    return card


def site_of(session: Session, site_id: uuid.UUID) -> Site:
    site = session.get(Site, site_id)
    if site is None:
        raise NotFound("site")
    return site


@dataclass(frozen=True)
class ContactRole:
    id: uuid.UUID
    relationship: str
    priority: int
    can_collect: bool


def incident_for_guard(
    *, session: Session, actor: Actor, incident_id: uuid.UUID
) -> tuple[Incident, list[ContactRole], Site]:
    """The incident (site-checked) with its resident's contacts as roles, not people."""
    incident = incidents.get_incident(session=session, actor=actor, incident_id=incident_id)
    roles: list[ContactRole] = []
    if incident.resident_id is not None:
        rows = session.exec(
            select(Contact)
            .where(Contact.resident_id == incident.resident_id)
            .order_by(col(Contact.priority), col(Contact.created_at))
        ).all()
        roles = [
            ContactRole(
                id=c.id, relationship=c.relationship, priority=c.priority, can_collect=c.can_collect
            )
            for c in rows
        ]
    return incident, roles, site_of(session, incident.site_id)
