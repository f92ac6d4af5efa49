"""The public finder behind a tag URL: what a stranger may see, and "alert the office".

A member of the public who scans a resident's tag sees only the site office's phone. Pressing
"alert the office" opens a found incident for staff through the incidents service. Reports are
rate-limited per tag and per client address, counted in the database so every process agrees.
Neither the tag code nor the address is stored: only keyed hashes of them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import uuid
from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Field, Session, SQLModel, col, select

from welfare.authz import Actor
from welfare.db import UTCDateTime, utcnow
from welfare.errors import InvalidInput, Throttled
from welfare.incidents import service as incidents
from welfare.incidents import timeline
from welfare.incidents.models import Condition, Incident, IncidentCreate, IncidentKind
from welfare.residents.models import Resident
from welfare.sites.models import Site
from welfare.tags import codes
from welfare.tags.service import find_live_tag

PUBLIC_NOTE = "reported by a member of the public"
PER_TAG_LIMIT = 3
PER_TAG_WINDOW = dt.timedelta(minutes=10)
PER_ADDRESS_LIMIT = 10
PER_ADDRESS_WINDOW = dt.timedelta(hours=1)


class PublicReport(SQLModel, table=True):
    """One press of "alert the office" (whether or not the code was a live tag)."""

    __tablename__ = "public_report"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    tag_key: str = Field(max_length=64, index=True)
    addr_key: str = Field(max_length=64, index=True)
    incident_id: uuid.UUID | None = Field(
        default=None, foreign_key="incident.id", ondelete="SET NULL"
    )


@dataclass(frozen=True)
class Finder:
    """What the public page may show: the office phone (E.164), or None when unknown.
    `mistyped`: the code fails its check character, a property of the text alone (saying so
    tells nobody which codes exist)."""

    office_phone: str | None
    phone_region: str | None
    mistyped: bool = False


def _key(secret: str, kind: str, value: str) -> str:
    return hmac.new(secret.encode(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def _live_tag_resident(session: Session, code: str) -> tuple[Resident, Site] | None:
    """The tag's resident and site; None for an unknown or revoked code (raises
    `codes.MistypedCode` for a code that fails its check)."""
    tag = find_live_tag(session, code)
    resident = session.get(Resident, tag.resident_id) if tag else None
    if resident is None or resident.erased_at is not None:
        return None
    site = session.get(Site, resident.site_id)
    return (resident, site) if site else None


def finder(*, session: Session, code: str) -> Finder:
    """The office phone behind a tag; the same empty answer for unknown and revoked codes."""
    try:
        found = _live_tag_resident(session, code)
    except codes.MistypedCode:
        return Finder(office_phone=None, phone_region=None, mistyped=True)
    if found is None:
        return Finder(office_phone=None, phone_region=None)
    _resident, site = found
    return Finder(office_phone=site.office_phone, phone_region=site.phone_region)


def _count_since(session: Session, column: object, value: str, since: dt.datetime) -> int:
    return session.exec(
        select(func.count())
        .select_from(PublicReport)
        .where(column == value, col(PublicReport.at) >= since)
    ).one()


def alert_office(
    *,
    session: Session,
    secret: str,
    code: str,
    client_addr: str,
    location: str | None = None,
    now: dt.datetime | None = None,
) -> Incident | None:
    """Open (or reuse) a found incident for the tag's resident; None for an unknown or mistyped
    code.

    Raises Throttled past PER_TAG_LIMIT reports of one tag (however its code was typed) in
    PER_TAG_WINDOW, or
    PER_ADDRESS_LIMIT from one address in PER_ADDRESS_WINDOW. Unknown codes count too, so the
    limits cannot be used to tell a live code from a dead one.
    """
    now = now or utcnow()
    location = (location or "").strip() or None
    if location is not None and (len(location) > 300 or "\x00" in location):
        raise InvalidInput("location", "too long: shorten it to at most 300 characters")
    tag_key = _key(secret, "tag", codes.rate_key(code))
    addr_key = _key(secret, "addr", client_addr)
    if _count_since(session, PublicReport.tag_key, tag_key, now - PER_TAG_WINDOW) >= PER_TAG_LIMIT:
        raise Throttled("too many reports for this tag", int(PER_TAG_WINDOW.total_seconds()))
    if (
        _count_since(session, PublicReport.addr_key, addr_key, now - PER_ADDRESS_WINDOW)
        >= PER_ADDRESS_LIMIT
    ):
        raise Throttled(
            "too many reports from this address", int(PER_ADDRESS_WINDOW.total_seconds())
        )
    report = PublicReport(at=now, tag_key=tag_key, addr_key=addr_key)
    session.add(report)
    try:
        found = _live_tag_resident(session, code)
    except codes.MistypedCode:
        found = None
    if found is None:
        session.flush()
        return None
    resident, site = found
    system = Actor.system()
    data = IncidentCreate(
        kind=IncidentKind.found,
        resident_id=resident.id,
        location=location,
        condition=Condition.well,
        note=PUBLIC_NOTE,
        client_request_id=f"public-{report.id}",
    )
    try:
        opened = incidents.open_incident(
            session=session, actor=system, data=data, now=now, escalate=False
        )
    except InvalidInput:
        # No live lost-person consent: the office still hears of it, as an unknown person.
        data = IncidentCreate(
            kind=IncidentKind.found,
            site_id=site.id,
            location=location,
            condition=Condition.well,
            note=PUBLIC_NOTE,
            description="a person wearing one of the site's tags",
            client_request_id=f"public-{report.id}",
        )
        opened = incidents.open_incident(
            session=session, actor=system, data=data, now=now, escalate=False
        )
    timeline.record(session, opened.incident, "public_report", label="public")
    report.incident_id = opened.incident.id
    session.add(report)
    session.flush()
    return opened.incident
