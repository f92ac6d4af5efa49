"""Family contacts not verified: never, or not for `VERIFIED_FOR` (12 months), by a test SMS or
call (welfare/contact_checks.py sends them). The office's list names them, audited; the
consent reminder counts them (no names)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from welfare.audit.service import record as audit_record
from welfare.authz import Actor, Permission, require_site
from welfare.db import utcnow
from welfare.errors import NotFound
from welfare.residents.models import Contact, Resident
from welfare.sites.models import Site

VERIFIED_FOR = dt.timedelta(days=365)


def _unverified_query(site_id: uuid.UUID, now: dt.datetime):  # type: ignore[no-untyped-def]
    return (
        select(Contact, Resident)
        .join(Resident, col(Resident.id) == col(Contact.resident_id))
        .where(
            col(Resident.site_id) == site_id,
            col(Resident.erased_at).is_(None),
            col(Contact.consent_to_contact).is_(True),
            or_(
                col(Contact.verified_at).is_(None),
                col(Contact.verified_at) < now - VERIFIED_FOR,
            ),
        )
    )


def unverified_contacts(
    session: Session, site_id: uuid.UUID, now: dt.datetime | None = None
) -> list[tuple[Contact, Resident]]:
    """The site's consented contacts never verified, or not in the last 12 months, with their
    residents: by resident name, then call order. No permission check: see `list_unverified`."""
    rows = session.exec(
        _unverified_query(site_id, now or utcnow()).order_by(
            col(Resident.full_name), col(Resident.id), col(Contact.priority)
        )
    ).all()
    return [(contact, resident) for contact, resident in rows]


def count_unverified(session: Session, site_id: uuid.UUID, now: dt.datetime | None = None) -> int:
    listed = _unverified_query(site_id, now or utcnow()).subquery()
    return session.exec(select(func.count()).select_from(listed)).one()


def list_unverified(
    session: Session, actor: Actor, site_id: uuid.UUID, now: dt.datetime | None = None
) -> list[tuple[Contact, Resident]]:
    """`unverified_contacts` for a signed-in reader of the site's registry, audited (it names
    people)."""
    require_site(actor, Permission.registry_read, site_id, "site")
    if session.get(Site, site_id) is None:
        raise NotFound("site")
    rows = unverified_contacts(session, site_id, now)
    audit_record(
        session,
        actor=actor,
        action="contact.unverified_list",
        entity="site",
        entity_id=site_id,
        site_id=site_id,
        detail={"contacts": len(rows)},
    )
    return rows
