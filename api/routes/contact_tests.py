"""Test a family contact's number (a test SMS with its link, or a test call: press 1), and the
site's contacts not verified (welfare/contact_checks.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel

from api.deps import ActorDep, SessionDep, TransactionRoute
from api.routes.incident_contacts import NotifyBody, NotifyQueued
from api.schemas import ListResponse
from welfare import contact_checks
from welfare.residents import unverified as unverified_contacts
from welfare.residents.models import VerifiedVia

router = APIRouter(route_class=TransactionRoute, tags=["contacts"])


class UnverifiedContact(BaseModel):
    contact_id: uuid.UUID
    resident_id: uuid.UUID
    resident_name: str
    name: str
    relationship: str
    priority: int
    verified_at: dt.datetime | None
    verified_via: VerifiedVia | None


@router.post(
    "/api/v1/residents/{resident_id}/contacts/{contact_id}/test",
    response_model=NotifyQueued,
    status_code=status.HTTP_202_ACCEPTED,
)
def send_test(
    resident_id: uuid.UUID,
    contact_id: uuid.UUID,
    body: NotifyBody,
    session: SessionDep,
    actor: ActorDep,
) -> NotifyQueued:
    """Send this contact a test SMS (with a link to tap) or a test call (press 1); either
    marks the contact verified (staff and up). Refused for a contact without consent to be
    contacted, a channel they do not take, an SMS opt-out or an SMS to a landline."""
    message = contact_checks.send_contact_test(
        session, actor, contact_id, body.channel, body.request_id, resident_id=resident_id
    )
    return NotifyQueued.of(message)


@router.get("/api/v1/contacts/unverified", response_model=ListResponse[UnverifiedContact])
def unverified(
    site_id: Annotated[uuid.UUID, Query(description="the site whose contacts to list")],
    session: SessionDep,
    actor: ActorDep,
) -> ListResponse[UnverifiedContact]:
    """The site's family contacts with consent to be contacted who were never verified, or
    not in the last 12 months (staff and up)."""
    rows = unverified_contacts.list_unverified(session, actor, site_id)
    items = [
        UnverifiedContact(
            contact_id=contact.id,
            resident_id=resident.id,
            resident_name=resident.full_name or "",
            name=contact.name,
            relationship=contact.relationship,
            priority=contact.priority,
            verified_at=contact.verified_at,
            verified_via=contact.verified_via,
        )
        for contact, resident in rows
    ]
    return ListResponse(items=items, total=len(items), limit=len(items), offset=0)
