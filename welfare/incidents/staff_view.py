"""What office staff see of incidents: the board's rows, the closed list, one incident's page, and
the incident as the JSON API answers it (`GET /api/v1/incidents/{id}` and every route that returns
an incident, guards' included).

A read model, like `guard_view.py`: access is checked and reads are audited here, by the services
it calls (`incidents.get_incident`, `residents.get_resident` with the incident as the purpose).
It returns codes and values, never words: the console pages put them into words
(api/pages/console/words.py).

One rule for "overdue" (`is_overdue`), the same on the board, the incident page and the JSON API:
an unconfirmed incident past its target, that is past the policy's duty-manager time, or whose
escalation already reached the duty manager (the contact list ran out first).

The board is polled every few seconds from every desk: `board` runs the same handful of queries
whatever the number of incidents (bench/console_board.py measures it).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlmodel import Session, col, select

from welfare.authz import Actor, Permission, Role
from welfare.channels import ChannelKind
from welfare.db import utcnow
from welfare.incidents import photos as incident_photos
from welfare.incidents import service as incidents
from welfare.incidents import timeline
from welfare.incidents.escalation import Policy
from welfare.incidents.models import (
    CLOSED,
    Condition,
    Incident,
    IncidentDetail,
    IncidentEvent,
    IncidentKind,
    IncidentStatus,
    IncidentSummary,
    NotificationStatus,
    Outcome,
    TimelineEvent,
)
from welfare.incidents.public_reports import incident_map_link
from welfare.outbox.models import STATUS_TEXT, OutboxMessage, OutboxStatus
from welfare.residents import service as residents
from welfare.residents.models import Contact, Resident
from welfare.sites.models import Household, Site
from welfare.users.models import User

BOARD_LIMIT = 200
CLOSED_PAGE = 50
# Still waiting for someone to answer: only these can be overdue.
UNCONFIRMED = (IncidentStatus.open, IncidentStatus.notifying)


# --- overdue --------------------------------------------------------------------------------------


def is_manager_step(event_type: str, detail: dict[str, Any]) -> bool:
    """The timeline event of an escalation step that went to the duty manager."""
    return event_type == "escalation_step" and detail.get("target") == "duty_manager"


def past_target(incident: Incident, now: dt.datetime) -> bool:
    policy = Policy.from_json((incident.escalation or {}).get("policy"))
    return now - incident.opened_at >= dt.timedelta(seconds=policy.manager_after_seconds)


def is_overdue(incident: Incident, now: dt.datetime, *, reached_manager: bool) -> bool:
    """Unconfirmed past its target: the policy's duty-manager time has passed, or the
    escalation already reached the duty manager (the contact list ran out)."""
    if incident.status not in UNCONFIRMED:
        return False
    return reached_manager or past_target(incident, now)


def reached_manager(session: Session, incident_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Incidents whose escalation already started a duty-manager step (one query for all)."""
    if not incident_ids:
        return set()
    steps = session.exec(
        select(IncidentEvent.incident_id, IncidentEvent.type, IncidentEvent.detail).where(
            col(IncidentEvent.incident_id).in_(incident_ids),
            IncidentEvent.type == "escalation_step",
        )
    ).all()
    return {incident_id for incident_id, type_, detail in steps if is_manager_step(type_, detail)}


def _reached_manager_in(events: Iterable[IncidentEvent]) -> bool:
    return any(is_manager_step(e.type, e.detail) for e in events)


# --- the board and the closed list ----------------------------------------------------------------


class Who(StrEnum):
    """Whom an incident is about, as a row shows it (`name` only when `named`)."""

    named = "named"
    unknown = "unknown"  # an unknown person found, or the record is gone
    erased = "erased"  # the resident's record was erased


@dataclass(frozen=True)
class BoardRow:
    """An open incident on the board: the name card's fields only, no health data."""

    id: uuid.UUID
    reference: str
    kind: IncidentKind
    public_finder: bool
    status: IncidentStatus
    condition: Condition
    who: Who
    name: str
    unit: str
    opened_at: dt.datetime
    timezone: str | None
    minutes_open: int
    overdue: bool
    # Where a member of the public who found them is waiting (their shared location), if shared.
    map_url: str | None = None


@dataclass(frozen=True)
class ClosedRow:
    """A resolved or cancelled incident: the board's name-card fields and how it ended."""

    id: uuid.UUID
    reference: str
    kind: IncidentKind
    status: IncidentStatus
    outcome: Outcome | None
    who: Who
    name: str
    unit: str
    opened_at: dt.datetime
    closed_at: dt.datetime | None
    timezone: str | None
    minutes_to_confirm: int | None
    minutes_open: int


@dataclass(frozen=True)
class _People:
    """Who each incident is about, their unit and the site's timezone: three queries for a page
    of incidents, however many there are."""

    residents: dict[uuid.UUID, Resident]
    units: dict[uuid.UUID, str]
    zones: dict[uuid.UUID, str]

    @classmethod
    def of(cls, session: Session, rows: Sequence[Incident]) -> _People:
        resident_ids = {i.resident_id for i in rows if i.resident_id}
        people = (
            {
                r.id: r
                for r in session.exec(select(Resident).where(col(Resident.id).in_(resident_ids)))
            }
            if resident_ids
            else {}
        )
        household_ids = {r.household_id for r in people.values() if r.household_id}
        units = (
            {
                h.id: h.unit_label
                for h in session.exec(select(Household).where(col(Household.id).in_(household_ids)))
            }
            if household_ids
            else {}
        )
        site_ids = {i.site_id for i in rows}
        zones = (
            {s.id: s.timezone for s in session.exec(select(Site).where(col(Site.id).in_(site_ids)))}
            if site_ids
            else {}
        )
        return cls(people, units, zones)

    def who(self, incident: Incident) -> tuple[Who, str]:
        resident = self.residents.get(incident.resident_id) if incident.resident_id else None
        if resident is None:
            return Who.unknown, ""
        if resident.erased_at is not None:
            return Who.erased, ""
        return Who.named, resident.preferred_name or resident.full_name or ""

    def unit(self, incident: Incident) -> str:
        resident = self.residents.get(incident.resident_id) if incident.resident_id else None
        if resident is None or resident.household_id is None:
            return ""
        return self.units.get(resident.household_id, "")

    def timezone(self, incident: Incident) -> str | None:
        return self.zones.get(incident.site_id)


def _minutes(start: dt.datetime, end: dt.datetime | None) -> int | None:
    return int((end - start).total_seconds() // 60) if end else None


def board(*, session: Session, actor: Actor, now: dt.datetime | None = None) -> list[BoardRow]:
    """Open incidents (up to BOARD_LIMIT), overdue first (longest open first), then newest."""
    rows, _total = incidents.list_incidents(
        session=session, actor=actor, limit=BOARD_LIMIT, offset=0, open_only=True
    )
    now = now or utcnow()
    people = _People.of(session, rows)
    escalated = reached_manager(session, [i.id for i in rows if i.status in UNCONFIRMED])
    out: list[BoardRow] = []
    for incident in rows:
        who, name = people.who(incident)
        out.append(
            BoardRow(
                id=incident.id,
                reference=incident.reference,
                kind=incident.kind,
                public_finder=bool(incident.public_finder),
                status=incident.status,
                condition=incident.condition,
                who=who,
                name=name,
                unit=people.unit(incident),
                opened_at=incident.opened_at,
                timezone=people.timezone(incident),
                minutes_open=int((now - incident.opened_at).total_seconds() // 60),
                overdue=is_overdue(incident, now, reached_manager=incident.id in escalated),
                map_url=incident_map_link(incident) if incident.public_finder else None,
            )
        )
    out.sort(key=lambda r: (not r.overdue, -r.minutes_open if r.overdue else r.minutes_open))
    return out


def closed(*, session: Session, actor: Actor, offset: int) -> tuple[list[ClosedRow], int]:
    """Resolved and cancelled incidents, newest closed first (CLOSED_PAGE a page), and how many
    there are: what the office looks back on after a shift."""
    rows, total = incidents.list_incidents(
        session=session, actor=actor, limit=CLOSED_PAGE, offset=offset, closed_only=True
    )
    people = _People.of(session, rows)
    out: list[ClosedRow] = []
    for incident in rows:
        who, name = people.who(incident)
        out.append(
            ClosedRow(
                id=incident.id,
                reference=incident.reference,
                kind=incident.kind,
                status=incident.status,
                outcome=incident.outcome,
                who=who,
                name=name,
                unit=people.unit(incident),
                opened_at=incident.opened_at,
                closed_at=incident.closed_at,
                timezone=people.timezone(incident),
                minutes_to_confirm=_minutes(incident.opened_at, incident.confirmed_at),
                minutes_open=_minutes(incident.opened_at, incident.closed_at) or 0,
            )
        )
    return out, total


# --- one incident, as the console's incident page shows it ----------------------------------------


@dataclass(frozen=True)
class Delivery:
    """The latest message of one kind to a contact: the provider's word for it if it gave one,
    else the outbox status, and the provider's error reason."""

    status: str
    error: str | None


@dataclass(frozen=True)
class ContactStatus:
    contact: Contact
    sms: Delivery | None
    call: Delivery | None
    confirmed: bool


@dataclass(frozen=True)
class StaffIncident:
    incident: Incident
    site: Site | None
    # The resident's card (its read audited), None for an unknown person or an erased record.
    resident: Resident | None
    unit: str | None
    contacts: list[ContactStatus]
    events: list[IncidentEvent]
    # The guards among the users its messages went to (its missing alert): name by user id.
    guards: dict[str, str]
    overdue: bool
    reached_manager: bool
    can_write: bool
    photo_url: str | None

    @property
    def active(self) -> bool:
        return self.incident.status in UNCONFIRMED

    @property
    def closed(self) -> bool:
        return self.incident.status in CLOSED

    @property
    def timezone(self) -> str | None:
        return self.site.timezone if self.site else None


def latest_delivery(messages: Sequence[OutboxMessage], kind: ChannelKind) -> Delivery | None:
    rows = [m for m in messages if m.kind is kind]
    # A repeat held back as the same text says nothing about the one they have: show that one.
    rows = [m for m in rows if m.status is not OutboxStatus.held] or rows
    if not rows:
        return None
    last = rows[-1]
    return Delivery(status=last.provider_status or last.status.value, error=last.error_reason)


def guards_messaged(session: Session, messages: Sequence[OutboxMessage]) -> dict[str, str]:
    """The guards among the users an incident's messages went to (its missing alert), by id."""
    user_ids = {m.user_id for m in messages if m.user_id}
    if not user_ids:
        return {}
    rows = session.exec(
        select(User.id, User.display_name).where(
            col(User.id).in_(user_ids), User.role == Role.guard
        )
    ).all()
    return {str(user_id): name for user_id, name in rows}


def _messages_of(session: Session, incident: Incident) -> list[OutboxMessage]:
    return list(
        session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.incident_id == incident.id)
            .order_by(col(OutboxMessage.created_at), col(OutboxMessage.id))
        ).all()
    )


def _card(
    session: Session, actor: Actor, incident: Incident
) -> tuple[Resident | None, list[Contact]]:
    """The resident's card and contacts, read (and audited) for the incident."""
    if not incident.resident_id:
        return None, []
    stored = session.get(Resident, incident.resident_id)
    if stored is None or stored.erased_at is not None:
        return None, []
    resident = residents.get_resident(
        session=session, actor=actor, resident_id=stored.id, purpose=f"incident {incident.id}"
    )
    contacts = residents.list_contacts(session=session, actor=actor, resident_id=stored.id)
    return resident, contacts


def staff_incident(
    *, session: Session, actor: Actor, incident_id: uuid.UUID, now: dt.datetime | None = None
) -> StaffIncident:
    """Everything the incident page shows. Reading the resident's card is audited by the
    residents service with the incident as the purpose."""
    incident = incidents.get_incident(session=session, actor=actor, incident_id=incident_id)
    site = session.get(Site, incident.site_id)
    resident, contacts = _card(session, actor, incident)
    messages = _messages_of(session, incident)
    by_contact: dict[uuid.UUID, list[OutboxMessage]] = {}
    for m in messages:
        if m.contact_id:
            by_contact.setdefault(m.contact_id, []).append(m)
    contact_rows = [
        ContactStatus(
            contact=c,
            sms=latest_delivery(by_contact.get(c.id, []), ChannelKind.sms),
            call=latest_delivery(by_contact.get(c.id, []), ChannelKind.voice),
            confirmed=incident.confirmed_contact_id == c.id,
        )
        for c in contacts
    ]
    events = timeline.events_of(session, incident.id)
    guards = guards_messaged(session, messages)
    unit = residents.unit_label(session, resident) if resident else None
    manager = _reached_manager_in(events)
    return StaffIncident(
        incident=incident,
        site=site,
        resident=resident,
        unit=unit,
        contacts=contact_rows,
        events=events,
        guards=guards,
        overdue=is_overdue(incident, now or utcnow(), reached_manager=manager),
        reached_manager=manager,
        can_write=actor.can(Permission.registry_write),
        photo_url=incident_photos.photo_url(incident)
        if incident_photos.may_see_photo(session, actor, incident)
        else None,
    )


# --- one incident, as the JSON API answers it -----------------------------------------------------


def summary_of(incident: Incident) -> IncidentSummary:
    return IncidentSummary.model_validate(incident, from_attributes=True)


def recipient_of(message: OutboxMessage) -> str:
    if message.contact_id is not None or message.user_id is None:
        return "contact"
    return "guard" if message.template == "missing_alert" else "duty_manager"


def notifications_of(session: Session, incident: Incident) -> list[NotificationStatus]:
    messages = timeline.unflushed(session, incident, OutboxMessage)
    if messages is None:
        messages = _messages_of(session, incident)
    else:  # the database's order (both store a UUID's bytes in order)
        messages.sort(key=lambda m: (m.created_at, m.id.hex))
    return [
        NotificationStatus(
            message_id=m.id,
            contact_id=m.contact_id,
            user_id=m.user_id,
            channel=m.kind.value,
            status=m.status.value,
            status_text=STATUS_TEXT[m.status],
            provider_status=m.provider_status,
            provider_error=m.error_reason,
            step=m.step_index,
            attempts=m.attempts,
            recipient=recipient_of(m),
            template=m.template,
            provider=m.provider,
        )
        for m in messages
    ]


def detail_of(
    session: Session, incident: Incident, actor: Actor, now: dt.datetime | None = None
) -> IncidentDetail:
    """The incident as `actor` may see it (a note's words by `timeline.for_viewer`), with its
    messages, and whether it is overdue or reached the duty manager. `incident` was loaded (and
    checked) by the service that read or changed it."""
    # A report that just opened the incident answers from what it made (inserted at commit).
    made = timeline.unflushed(session, incident, IncidentEvent)
    stored = made if made is not None else timeline.events_of(session, incident.id)
    manager = _reached_manager_in(stored)
    return IncidentDetail.model_validate(
        {
            **summary_of(incident).model_dump(),
            **{
                k: getattr(incident, k)
                for k in (
                    "latitude",
                    "longitude",
                    "note",
                    "description",
                    "handed_to",
                    "confirmed_via",
                    "confirmed_contact_id",
                )
            },
            "photo_url": incident_photos.photo_url(incident),
            "timeline": [
                TimelineEvent(
                    at=e.at,
                    type=e.type,
                    actor=e.actor,
                    detail=timeline.for_viewer(actor, e.type, e.detail),
                )
                for e in stored
            ],
            "notifications": notifications_of(session, incident),
            "overdue": is_overdue(incident, now or utcnow(), reached_manager=manager),
            "reached_manager": manager,
        }
    )


def read_detail(*, session: Session, actor: Actor, incident_id: uuid.UUID) -> IncidentDetail:
    """`GET /api/v1/incidents/{id}`: checked for the actor's sites by the incidents service."""
    incident = incidents.get_incident(session=session, actor=actor, incident_id=incident_id)
    return detail_of(session, incident, actor)
