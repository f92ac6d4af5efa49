"""The public finder behind a tag URL: what a stranger may see, "alert the office", and what
happens next.

A member of the public who scans a resident's tag sees the site office's phone, the site's voice
number with the tag's call reference, and (only under the resident's `public_care_tips` consent)
the preferred name and two or three care tips. Sending a report (optionally with the browser's
coordinates and a short message) opens a "found by a member of the public" incident through the
incidents service, exactly as a guard's found report does: one running incident per resident; a
second finder's report is a note on the running one. The office sees it on the board at once and
the guards on duty get an alert; the family only under the `finder_alerts` scope (then the
normal escalation runs, its SMS carrying the finder's map link). The finder's coordinates stay on
the incident only while it runs (`service._erase_finder_location`).

Reports are rate-limited per tag and per client address, counted in the database so every
process agrees. Neither the tag code nor the address is stored: only keyed hashes of them. Each
report gets a status link (`/f/<token>`, 96 random bits, only their SHA-256 stored), whose page
says in plain words what has happened since, without names.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import secrets
import unicodedata
import uuid
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import func
from sqlmodel import Session, col, select

from welfare.authz import Actor, Permission, require, visible_site_ids
from welfare.channels import ChannelKind
from welfare.consent.models import ConsentScope
from welfare.consent.scopes import has_scope
from welfare.db import utcnow
from welfare.errors import InvalidInput, NotFound, Throttled
from welfare.incidents import service as incidents
from welfare.incidents import timeline
from welfare.incidents.models import (
    CLOSED,
    Condition,
    Incident,
    IncidentCreate,
    IncidentKind,
    IncidentResponder,
    IncidentStatus,
    Outcome,
    PublicReport,
)
from welfare.outbox import reach
from welfare.residents.models import Resident
from welfare.sites.models import Site, office_is_open
from welfare.tags import codes
from welfare.tags.models import ResidentTag
from welfare.tags.service import find_live_tag
from welfare.times import zone
from welfare.users.service import hash_token

PUBLIC_NOTE = "reported by a member of the public"
PER_TAG_LIMIT = 3
PER_TAG_WINDOW = dt.timedelta(minutes=10)
PER_ADDRESS_LIMIT = 10
PER_ADDRESS_WINDOW = dt.timedelta(hours=1)
MESSAGE_MAX = 500
LOCATION_MAX = 300
CALL_REFERENCE_DIGITS = 8  # typed on a phone's keypad; one in a hundred million per tag
TOKEN_BYTES = 12  # the status link: 96 bits, 16 URL-safe characters
_ALLOWED_CONTROLS = frozenset("\n\t")


@dataclass(frozen=True)
class CareTips:
    """What a stranger may read, under the public_care_tips scope: never medical notes or the
    unit."""

    name: str | None
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Finder:
    """What the public page may show: the office phone (E.164), or None when unknown.
    `mistyped`: the code fails its check character, a property of the text alone (saying so
    tells nobody which codes exist). `voice_number` and `call_reference`: what to call and type
    to be put through (notifications/twilio/finder_bridge.py). `care`: only under the resident's
    public_care_tips consent."""

    office_phone: str | None
    phone_region: str | None
    mistyped: bool = False
    voice_number: str | None = None
    call_reference: str | None = None
    care: CareTips | None = None


def _key(secret: str, kind: str, value: str) -> str:
    return hmac.new(secret.encode(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def call_reference(secret: str, tag_code: str) -> str:
    """The digits a finder types on the call (derived, so nothing more is stored): a keyed hash
    of the tag's stored code, CALL_REFERENCE_DIGITS long."""
    number = int(_key(secret, "call", tag_code)[:16], 16) % 10**CALL_REFERENCE_DIGITS
    return f"{number:0{CALL_REFERENCE_DIGITS}d}"


def voice_number_of(site: Site, default: str | None) -> str | None:
    """The number a finder calls: the site's own, else the provider's from-number."""
    return site.voice_number or default


def _live_tag_resident(session: Session, code: str) -> tuple[Resident, Site, ResidentTag] | None:
    """The tag's resident and site; None for an unknown or revoked code (raises
    `codes.MistypedCode` for a code that fails its check)."""
    tag = find_live_tag(session, code)
    resident = session.get(Resident, tag.resident_id) if tag else None
    if tag is None or resident is None or resident.erased_at is not None:
        return None
    site = session.get(Site, resident.site_id)
    return (resident, site, tag) if site else None


def care_tips(session: Session, resident: Resident) -> CareTips | None:
    """The preferred name and care tips, only under the public_care_tips consent."""
    if not has_scope(session, resident.id, ConsentScope.public_care_tips):
        return None
    lines = tuple(line for line in (resident.public_care_tips or "").splitlines() if line.strip())
    if not resident.preferred_name and not lines:
        return None
    return CareTips(name=resident.preferred_name, lines=lines)


def _finder_of(
    session: Session,
    secret: str,
    resident: Resident,
    site: Site,
    tag: ResidentTag,
    voice: str | None,
) -> Finder:
    return Finder(
        office_phone=site.office_phone,
        phone_region=site.phone_region,
        voice_number=voice_number_of(site, voice),
        call_reference=call_reference(secret, tag.code),
        care=care_tips(session, resident),
    )


def finder(
    *, session: Session, code: str, secret: str = "", default_voice: str | None = None
) -> Finder:
    """What the page behind a tag shows; the same empty answer for unknown and revoked codes."""
    try:
        found = _live_tag_resident(session, code)
    except codes.MistypedCode:
        return Finder(office_phone=None, phone_region=None, mistyped=True)
    if found is None:
        return Finder(office_phone=None, phone_region=None)
    resident, site, tag = found
    return _finder_of(session, secret, resident, site, tag, default_voice)


def _count_since(session: Session, column: object, value: str, since: dt.datetime) -> int:
    return session.exec(
        select(func.count())
        .select_from(PublicReport)
        .where(column == value, col(PublicReport.at) >= since)
    ).one()


def clean_text(field: str, value: str | None, limit: int) -> str | None:
    """A finder's free text: trimmed, at most `limit` characters, no NUL or other control
    characters (a newline and a tab are fine); None when empty."""
    value = (value or "").replace("\r\n", "\n").strip()
    if not value:
        return None
    if len(value) > limit:
        raise InvalidInput(field, f"at most {limit} characters; please shorten it")
    if any(unicodedata.category(ch) == "Cc" and ch not in _ALLOWED_CONTROLS for ch in value):
        raise InvalidInput(field, "remove the control characters (only plain text is accepted)")
    return value


def check_coordinates(
    latitude: float | None, longitude: float | None
) -> tuple[float | None, float | None]:
    """Both or neither, finite and on the globe, rounded to about a metre."""
    if latitude is None and longitude is None:
        return None, None
    if latitude is None or longitude is None:
        raise InvalidInput("latitude", "give both latitude and longitude, or neither")
    if not (math.isfinite(latitude) and math.isfinite(longitude)):
        raise InvalidInput("latitude", "coordinates must be numbers")
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise InvalidInput("latitude", "latitude is -90 to 90 and longitude -180 to 180")
    return round(latitude, 5), round(longitude, 5)


def map_link(latitude: float, longitude: float) -> str:
    """A map link any phone opens (short enough for an SMS)."""
    return f"https://maps.google.com/?q={latitude:.5f},{longitude:.5f}"


def incident_map_link(incident: Incident) -> str | None:
    """The finder's (or a guard's) coordinates on a running incident as a map link."""
    if incident.latitude is None or incident.longitude is None:
        return None
    return map_link(incident.latitude, incident.longitude)


@dataclass(frozen=True)
class Sent:
    """A report taken: the finder's status token (shown once, in the link) and the incident it
    opened or joined (None for an unknown code, which still gets a token: the answer is alike)."""

    token: str
    incident: Incident | None
    mistyped: bool = False  # the code failed its check: the page says "check the code"


def alert_office(
    *,
    session: Session,
    secret: str,
    code: str,
    client_addr: str,
    location: str | None = None,
    message: str | None = None,
    latitude: float | None = None,
    longitude: float | None = None,
    now: dt.datetime | None = None,
) -> Sent:
    """Open (or join) a found incident for the tag's resident; the incident is None for an
    unknown or mistyped code.

    Raises Throttled past PER_TAG_LIMIT reports of one tag (however its code was typed) in
    PER_TAG_WINDOW, or
    PER_ADDRESS_LIMIT from one address in PER_ADDRESS_WINDOW. Unknown codes count too, so the
    limits cannot be used to tell a live code from a dead one.
    """
    now = now or utcnow()
    location = clean_text("location", location, LOCATION_MAX)
    message = clean_text("message", message, MESSAGE_MAX)
    latitude, longitude = check_coordinates(latitude, longitude)
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
    token = secrets.token_urlsafe(TOKEN_BYTES)
    report = PublicReport(at=now, tag_key=tag_key, addr_key=addr_key, token_hash=hash_token(token))
    session.add(report)
    try:
        found = _live_tag_resident(session, code)
    except codes.MistypedCode:
        session.flush()
        return Sent(token, None, mistyped=True)
    if found is None:
        session.flush()
        return Sent(token, None)
    resident, site, _tag = found
    incident = _open_or_join(
        session, report, resident, site, location, message, latitude, longitude, now
    )
    report.incident_id = incident.id
    session.add(report)
    session.flush()
    return Sent(token, incident)


def _open_or_join(
    session: Session,
    report: PublicReport,
    resident: Resident,
    site: Site,
    location: str | None,
    message: str | None,
    latitude: float | None,
    longitude: float | None,
    now: dt.datetime,
) -> Incident:
    """The found incident, through the service's open path (one running incident per
    resident): new, it alerts the guards on duty, and the family too under finder_alerts; a
    running one gets the report as a note, and the finder's coordinates if it had none."""
    system = Actor.system()
    family = has_scope(session, resident.id, ConsentScope.finder_alerts)
    data = IncidentCreate(
        kind=IncidentKind.found,
        resident_id=resident.id,
        location=location,
        latitude=latitude,
        longitude=longitude,
        condition=Condition.well,
        note=PUBLIC_NOTE,
        client_request_id=f"public-{report.id}",
    )
    try:
        opened = incidents.open_incident(
            session=session, actor=system, data=data, now=now, escalate=family
        )
    except InvalidInput:
        # No live lost-person consent: the office still hears of it, as an unknown person.
        data = data.model_copy(
            update={
                "resident_id": None,
                "site_id": site.id,
                "description": "a person wearing one of the site's tags",
            }
        )
        opened = incidents.open_incident(
            session=session, actor=system, data=data, now=now, escalate=False
        )
    incident = opened.incident
    gps = latitude is not None
    if opened.created:
        incident.public_finder = True
        session.add(incident)
        incidents.alert_guards_on_duty(session, incident, now, template="finder_alert")
    elif gps and incident.latitude is None:
        incident.latitude, incident.longitude = latitude, longitude
        incident.public_finder = True
        session.add(incident)
    else:
        gps = False
    timeline.record(
        session, incident, "public_report", label="public", gps=gps, message=message is not None
    )
    if message is not None:
        # The words stay on the incident's timeline (erased with it), for everyone on it.
        timeline.record(
            session, incident, "note", label="public", text=message, visibility="everyone"
        )
    return incident


# --- the finder's status page --------------------------------------------------------------------


class Progress(StrEnum):
    """What the finder's page says has happened, in plain words and without names."""

    office = "office"  # the office has it
    family_told = "family_told"  # a message reached the family
    guard_coming = "guard_coming"  # a guard took it on
    on_the_way = "on_the_way"  # someone (the family, staff) said they are coming


@dataclass(frozen=True)
class FinderStatus:
    progress: tuple[Progress, ...]
    closed: bool
    finder: Finder


def _report_of(session: Session, token: str) -> PublicReport | None:
    if not 8 <= len(token) <= 64:
        return None
    return session.exec(
        select(PublicReport).where(PublicReport.token_hash == hash_token(token))
    ).first()


def status(
    *, session: Session, token: str, secret: str, default_voice: str | None = None
) -> FinderStatus | None:
    """The finder's page behind a token; None for an unknown one."""
    report = _report_of(session, token)
    if report is None:
        return None
    incident = session.get(Incident, report.incident_id) if report.incident_id else None
    if incident is None:  # an unknown code's report: thanks, and the general advice
        return FinderStatus((), False, Finder(office_phone=None, phone_region=None))
    site = session.get(Site, incident.site_id)
    assert site is not None
    resident = session.get(Resident, incident.resident_id) if incident.resident_id else None
    tag = None
    if resident is not None and resident.erased_at is None:
        tag = session.exec(
            select(ResidentTag).where(
                ResidentTag.resident_id == resident.id, col(ResidentTag.revoked_at).is_(None)
            )
        ).first()
    if incident.status in CLOSED:
        return FinderStatus((), True, Finder(site.office_phone, site.phone_region))
    if resident is not None and tag is not None:
        shown = _finder_of(session, secret, resident, site, tag, default_voice)
    else:
        shown = Finder(site.office_phone, site.phone_region)
    progress = [Progress.office]
    if incidents.reached_contacts(session, incident):
        progress.append(Progress.family_told)
    claimed = session.exec(
        select(IncidentResponder.user_id).where(IncidentResponder.incident_id == incident.id)
    ).first()
    if claimed is not None:
        progress.append(Progress.guard_coming)
    if incident.status is IncidentStatus.confirmed:
        progress.append(Progress.on_the_way)
    return FinderStatus(tuple(progress), False, shown)


# --- the call bridge ----------------------------------------------------------------------------

# The timeline event of a finder's call (spelt out where it is written, as the console's words
# test reads it there).
FINDER_CALL_EVENT = "finder_call"


def tag_for_call(
    session: Session, *, secret: str, reference: str
) -> tuple[Resident, Site, ResidentTag] | None:
    """The live tag whose call reference this is; None for none, or for two alike (then the
    call goes to the office as for an unknown reference)."""
    if len(reference) != CALL_REFERENCE_DIGITS or not reference.isdigit():
        return None
    tags = session.exec(select(ResidentTag).where(col(ResidentTag.revoked_at).is_(None))).all()
    matches = [tag for tag in tags if call_reference(secret, tag.code) == reference]
    if len(matches) != 1:
        return None
    resident = session.get(Resident, matches[0].resident_id)
    if resident is None or resident.erased_at is not None:
        return None
    site = session.get(Site, resident.site_id)
    return (resident, site, matches[0]) if site else None


@dataclass(frozen=True)
class Leg:
    """One number the finder's call may be put through to, in order."""

    target: str  # "office" or "contact"
    phone: str
    contact_id: uuid.UUID | None = None


@dataclass(frozen=True)
class CallPlan:
    """Where a finder's call goes. `caller_id`: the site's voice number, shown to whoever
    answers (never the finder's). No legs: nobody may be rung (no caller id to hide behind, no
    office phone and no family to ring)."""

    incident_id: uuid.UUID | None
    caller_id: str | None
    legs: tuple[Leg, ...]
    office_open: bool


def _family_legs(session: Session, resident: Resident) -> list[Leg]:
    """The contacts who may be called (the one contact rule: consent, calls among their
    channels), in priority order. Quiet hours do not hold back a finder standing with him."""
    return [
        Leg("contact", contact.phone, contact.id)
        for contact in incidents.contacts_of(session, resident.id)
        if contact.phone and reach.can_receive(contact, ChannelKind.voice)
    ]


def plan_call(
    *,
    session: Session,
    secret: str,
    reference: str,
    caller: str,
    default_voice: str | None,
    now: dt.datetime | None = None,
) -> CallPlan | None:
    """A finder called the site's voice number and typed the tag's reference. None for an
    unknown reference.

    The call is a report like the page's (rate-limited per tag and per calling number, keyed
    hashes only), so it opens or joins the resident's incident and is on its timeline. During the
    office's hours it goes to the office; otherwise to the family's contacts in order, only under
    the resident's finder_alerts consent; failing that, to the office anyway."""
    now = now or utcnow()
    found = tag_for_call(session, secret=secret, reference=reference)
    if found is None:
        return None
    resident, site, tag = found
    incident: Incident | None
    try:
        incident = alert_office(
            session=session, secret=secret, code=tag.code, client_addr=f"call:{caller}", now=now
        ).incident
    except Throttled:  # reported many times already: the running incident, if any
        incident = incidents.running_incident(session, resident.id)
    return _plan(session, resident, site, incident, default_voice, now)


def replan_call(
    *,
    session: Session,
    secret: str,
    reference: str,
    default_voice: str | None,
    now: dt.datetime | None = None,
) -> CallPlan | None:
    """The plan of a call already under way (the next leg after one nobody answered): the same
    rules, without reporting it again."""
    found = tag_for_call(session, secret=secret, reference=reference)
    if found is None:
        return None
    resident, site, _tag = found
    incident = incidents.running_incident(session, resident.id)
    return _plan(session, resident, site, incident, default_voice, now or utcnow())


def _plan(
    session: Session,
    resident: Resident,
    site: Site,
    incident: Incident | None,
    default_voice: str | None,
    now: dt.datetime,
) -> CallPlan:
    local = now.astimezone(zone(site.timezone)).time()
    office_open = office_is_open(site.office_opens, site.office_closes, local)
    office = [Leg("office", site.office_phone)] if site.office_phone else []
    family = (
        _family_legs(session, resident)
        if has_scope(session, resident.id, ConsentScope.finder_alerts)
        else []
    )
    legs = office if office_open and office else (family or office)
    caller_id = voice_number_of(site, default_voice)
    return CallPlan(
        incident_id=incident.id if incident else None,
        caller_id=caller_id,
        legs=tuple(legs) if caller_id else (),
        office_open=office_open,
    )


def record_call(
    session: Session,
    *,
    incident_id: uuid.UUID | None,
    leg: int,
    target: str,
    contact_id: uuid.UUID | None,
    status: str,
) -> None:
    """A leg of a finder's call on the incident's timeline: being put through ("dialling"),
    then how it ended (Twilio's DialCallStatus). No phone number, never the finder's."""
    incident = session.get(Incident, incident_id) if incident_id else None
    if incident is None:
        return
    timeline.record(
        session,
        incident,
        "finder_call",
        label="public",
        leg=leg,
        target=target,
        contact_id=contact_id,
        status=status,
    )


@dataclass(frozen=True)
class ReportRow:
    """A finder's report as staff see it (no address, no code: there are none to show)."""

    at: dt.datetime
    incident: Incident
    running: bool
    timezone: str  # the site's, to show the time in


def public_reports_of(*, session: Session, actor: Actor, limit: int = 100) -> list[ReportRow]:
    """The latest reports that reached an incident at the actor's sites, newest first."""
    require(actor, Permission.registry_read)
    query = select(PublicReport, Incident).join(
        Incident, col(Incident.id) == col(PublicReport.incident_id)
    )
    sites = visible_site_ids(actor, Permission.registry_read)
    if sites is not None:
        query = query.where(col(Incident.site_id).in_(sites))
    rows = session.exec(query.order_by(col(PublicReport.at).desc()).limit(limit)).all()
    site_ids = {incident.site_id for _report, incident in rows}
    zones = {
        site.id: site.timezone
        for site in session.exec(select(Site).where(col(Site.id).in_(site_ids))).all()
    }
    return [
        ReportRow(
            at=report.at,
            incident=incident,
            running=incident.status not in CLOSED,
            timezone=zones.get(incident.site_id, "UTC"),
        )
        for report, incident in rows
    ]


def false_alarm(*, session: Session, actor: Actor, incident_id: uuid.UUID) -> Incident:
    """Staff close a finder's report that was not real: cancelled with outcome false_alarm,
    which stops everything (pending messages, the guards' alert, the finder's live page)."""
    require(actor, Permission.registry_write)
    incident = session.get(Incident, incident_id)
    if incident is None or not incident.public_finder:
        raise NotFound("public report")
    return incidents.cancel(
        session=session, actor=actor, incident_id=incident.id, outcome=Outcome.false_alarm
    )
