"""The staff console: the incident board and the incident page.

Routes stay thin: every read and write goes through the services in welfare/*, which check the
role and the site and write the audit and the timeline. Guards are sent to their own app.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlmodel import Session, col, select

from api.deps import SessionDep
from api.pages.console.frame import (
    ConsoleUserDep,
    CsrfField,
    action_error,
    console_render,
    new_request_id,
)
from api.pages.console.words import (
    ACTOR_LABELS,
    CALL_OUTCOME_LABELS,
    CHANNEL_LABELS,
    CONDITION_LABELS,
    DELIVERY_LABELS,
    EVENT_LABELS,
    FOUND_BY_PUBLIC,
    KIND_LABELS,
    OUTCOME_LABELS,
    REASON_LABELS,
    STATUS_LABELS,
    VIA_LABELS,
    VISIT_OUTCOME_LABELS,
    label,
)
from api.pages.deps import PageUser, check_form_csrf
from api.pages.form_errors import FormError, PageRoute
from api.pages.forms import NUL_TEXT
from api.pages.i18n import gettext
from api.pages.rendering import local_time, see_other
from welfare.authz import Permission, Role
from welfare.channels import ChannelKind
from welfare.db import utcnow
from welfare.errors import Conflict, InvalidInput
from welfare.incidents import manual, timeline
from welfare.incidents import photos as incident_photos
from welfare.incidents import service as incidents
from welfare.incidents.escalation import Policy
from welfare.incidents.models import (
    CLOSED,
    Incident,
    IncidentEvent,
    IncidentStatus,
    NoteVisibility,
    Outcome,
    Resolution,
)
from welfare.incidents.public_reports import incident_map_link
from welfare.outbox.models import OutboxMessage, OutboxStatus
from welfare.phones import display_phone
from welfare.residents import service as residents
from welfare.residents.models import Contact, Resident
from welfare.sites.models import Household, Site
from welfare.users.models import User

router = APIRouter(route_class=PageRoute, prefix="/console", include_in_schema=False)

ShortField = Annotated[str, Form(max_length=300)]
NoteField = Annotated[str, Form(max_length=2000)]

BOARD_LIMIT = 200
CLOSED_PAGE = 50
POLL_SECONDS = 3


# --- the board ----------------------------------------------------------------------------------


def _past_target(incident: Incident, now: dt.datetime) -> bool:
    policy = Policy.from_json((incident.escalation or {}).get("policy"))
    return now - incident.opened_at >= dt.timedelta(seconds=policy.manager_after_seconds)


def _reached_manager(session: Session, incident_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Incidents whose escalation already started a duty-manager step (one query for all)."""
    if not incident_ids:
        return set()
    steps = session.exec(
        select(IncidentEvent.incident_id, IncidentEvent.detail).where(
            col(IncidentEvent.incident_id).in_(incident_ids),
            IncidentEvent.type == "escalation_step",
        )
    ).all()
    return {incident_id for incident_id, detail in steps if detail.get("target") == "duty_manager"}


def is_overdue(session: Session, incident: Incident, now: dt.datetime) -> bool:
    """Unconfirmed past its target: the policy's duty-manager time has passed, or the
    escalation already reached the duty manager (the contact list ran out)."""
    if incident.status not in (IncidentStatus.open, IncidentStatus.notifying):
        return False
    return _past_target(incident, now) or incident.id in _reached_manager(session, [incident.id])


@dataclass(frozen=True)
class BoardRow:
    id: str
    reference: str
    kind: str
    kind_label: str
    status: str
    status_label: str
    condition_label: str
    who: str
    unit: str
    opened_at: str
    minutes_open: int
    overdue: bool
    url: str
    # Where a member of the public who found them is waiting (their shared location), if shared.
    map_url: str | None = None


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

    def who(self, language: str, incident: Incident) -> str:
        resident = self.residents.get(incident.resident_id) if incident.resident_id else None
        if resident is None:
            return gettext(language, "Unknown person")
        if resident.erased_at is not None:
            return gettext(language, "Erased record")
        return resident.preferred_name or resident.full_name or ""

    def unit(self, incident: Incident) -> str:
        resident = self.residents.get(incident.resident_id) if incident.resident_id else None
        if resident is None or resident.household_id is None:
            return ""
        return self.units.get(resident.household_id, "")

    def local(self, incident: Incident, at: dt.datetime | None) -> str:
        return local_time(at, self.zones.get(incident.site_id)) if at else ""


def board_rows(session: Session, page_user: PageUser) -> list[BoardRow]:
    """Open incidents, overdue first, then newest. Only the name card's fields: no health data.

    A handful of queries whatever the number of incidents: the board is polled every few
    seconds from every desk."""
    language = page_user.language
    rows, _total = incidents.list_incidents(
        session=session, actor=page_user.actor, limit=BOARD_LIMIT, offset=0, open_only=True
    )
    now = utcnow()
    people = _People.of(session, rows)
    active = [i.id for i in rows if i.status in (IncidentStatus.open, IncidentStatus.notifying)]
    escalated = _reached_manager(session, active)
    out: list[BoardRow] = []
    for incident in rows:
        overdue = incident.id in active and (
            incident.id in escalated or _past_target(incident, now)
        )
        out.append(
            BoardRow(
                id=str(incident.id),
                reference=incident.reference,
                kind=incident.kind.value,
                kind_label=gettext(language, FOUND_BY_PUBLIC)
                if incident.public_finder
                else label(language, KIND_LABELS, incident.kind.value),
                status=incident.status.value,
                status_label=label(language, STATUS_LABELS, incident.status.value),
                condition_label=label(language, CONDITION_LABELS, incident.condition.value),
                who=people.who(language, incident),
                unit=people.unit(incident),
                opened_at=people.local(incident, incident.opened_at),
                minutes_open=int((now - incident.opened_at).total_seconds() // 60),
                overdue=overdue,
                url=f"/console/incidents/{incident.id}",
                map_url=incident_map_link(incident) if incident.public_finder else None,
            )
        )
    out.sort(key=lambda r: (not r.overdue, -r.minutes_open if r.overdue else r.minutes_open))
    return out


@dataclass(frozen=True)
class ClosedRow:
    reference: str
    who: str
    unit: str
    kind_label: str
    status: str
    status_label: str
    outcome_label: str
    opened_at: str
    closed_at: str
    minutes_to_confirm: int | None
    minutes_open: int
    url: str


def closed_rows(
    session: Session, page_user: PageUser, *, offset: int
) -> tuple[list[ClosedRow], int]:
    """Resolved and cancelled incidents, newest closed first: what the office looks back on
    after a shift. The same name-card fields as the board, plus how each one ended."""
    language = page_user.language
    rows, total = incidents.list_incidents(
        session=session, actor=page_user.actor, limit=CLOSED_PAGE, offset=offset, closed_only=True
    )
    people = _People.of(session, rows)

    def minutes(start: dt.datetime, end: dt.datetime | None) -> int | None:
        return int((end - start).total_seconds() // 60) if end else None

    out = [
        ClosedRow(
            reference=incident.reference,
            who=people.who(language, incident),
            unit=people.unit(incident),
            kind_label=label(language, KIND_LABELS, incident.kind.value),
            status=incident.status.value,
            status_label=label(language, STATUS_LABELS, incident.status.value),
            outcome_label=label(language, OUTCOME_LABELS, incident.outcome.value)
            if incident.outcome
            else "",
            opened_at=people.local(incident, incident.opened_at),
            closed_at=people.local(incident, incident.closed_at),
            minutes_to_confirm=minutes(incident.opened_at, incident.confirmed_at),
            minutes_open=minutes(incident.opened_at, incident.closed_at) or 0,
            url=f"/console/incidents/{incident.id}",
        )
        for incident in rows
    ]
    return out, total


@router.get("")
def board(request: Request, session: SessionDep, page_user: ConsoleUserDep) -> Response:
    rows = board_rows(session, page_user)
    return console_render(
        request,
        page_user,
        "console/board.html",
        {"rows": rows, "poll_seconds": POLL_SECONDS},
        section="/console",
    )


@router.get("/incidents")
def closed_incidents(
    request: Request,
    session: SessionDep,
    page_user: ConsoleUserDep,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    rows, total = closed_rows(session, page_user, offset=offset)
    return console_render(
        request,
        page_user,
        "console/closed.html",
        {"rows": rows, "total": total, "offset": offset, "page_size": CLOSED_PAGE},
        section="/console",
    )


@router.get("/board.json")
def board_json(session: SessionDep, page_user: ConsoleUserDep) -> JSONResponse:
    """What the board polls: the same rows, already translated."""
    rows = board_rows(session, page_user)
    return JSONResponse(
        {"items": [row.__dict__ for row in rows], "total": len(rows)},
        headers={"Cache-Control": "no-store"},
    )


# --- the incident page --------------------------------------------------------------------------


@dataclass
class ContactRow:
    contact: Contact
    sms: str
    call: str
    confirmed: bool


def _latest_status(language: str, messages: list[OutboxMessage], kind: ChannelKind) -> str:
    rows = [m for m in messages if m.kind is kind]
    # A repeat held back as the same text says nothing about the one they have: show that one.
    rows = [m for m in rows if m.status is not OutboxStatus.held] or rows
    if not rows:
        return ""
    last = rows[-1]
    word = last.provider_status or last.status.value
    text = label(language, DELIVERY_LABELS, word)
    if last.error_reason:
        text += f" ({last.error_reason})"
    return text


def _event_detail(
    language: str,
    event: IncidentEvent,
    names: dict[str, str],
    guards: dict[str, str] | None = None,
) -> str:
    """A short line of what the event's detail says, in words (no personal data is stored).
    `guards` names the guards among the users messaged: a missing alert goes to them, any
    other user messaged is the duty manager."""
    detail = event.detail
    guards = guards or {}
    parts: list[str] = []
    if detail.get("channel"):
        parts.append(label(language, CHANNEL_LABELS, detail["channel"]))
    contact = detail.get("contact_id")
    if contact:
        parts.append(names.get(contact, gettext(language, "a removed contact")))
    elif detail.get("user_id") in guards:
        parts.append(
            gettext(language, "guard on duty: %(name)s") % {"name": guards[detail["user_id"]]}
        )
    elif detail.get("user_id") or detail.get("target") == "duty_manager":
        parts.append(gettext(language, "duty manager"))
    if detail.get("manual"):
        parts.append(gettext(language, "sent by staff"))
    if detail.get("outcome"):
        outcomes = {"visit_concern": VISIT_OUTCOME_LABELS, "call_missed": CALL_OUTCOME_LABELS}
        table = outcomes.get(event.type, OUTCOME_LABELS)
        parts.append(label(language, table, detail["outcome"]))
    if event.type == "call_missed" and detail.get("moves_on"):
        parts.append(gettext(language, "the next contact is called now"))
    if event.type == "voicemail" and detail.get("left_message"):
        parts.append(gettext(language, "a short voicemail was left"))
    if detail.get("via"):
        parts.append(label(language, VIA_LABELS, str(detail["via"])))
    if detail.get("reason"):
        parts.append(label(language, REASON_LABELS, str(detail["reason"])))
    if detail.get("reasons"):
        parts.append(", ".join(label(language, REASON_LABELS, str(r)) for r in detail["reasons"]))
    if detail.get("digits"):
        parts.append(str(detail["digits"]))
    if event.type == "note" and detail.get("visibility") != "everyone":
        parts.append(gettext(language, "staff only"))
    if event.type == "note" and detail.get("text"):
        parts.append(str(detail["text"]))
    return " · ".join(parts)


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


def incident_context(
    session: Session, page_user: PageUser, incident_id: uuid.UUID
) -> dict[str, Any]:
    """Everything the incident page shows. Reading the resident's card is audited by the
    service with the incident as the purpose."""
    language = page_user.language
    incident = incidents.get_incident(
        session=session, actor=page_user.actor, incident_id=incident_id
    )
    site = session.get(Site, incident.site_id)
    resident: Resident | None = None
    contacts: list[Contact] = []
    can_write = page_user.actor.can(Permission.registry_write)
    if incident.resident_id:
        stored = session.get(Resident, incident.resident_id)
        if stored is not None and stored.erased_at is None:
            resident = residents.get_resident(
                session=session,
                actor=page_user.actor,
                resident_id=stored.id,
                purpose=f"incident {incident.id}",
            )
            contacts = residents.list_contacts(
                session=session, actor=page_user.actor, resident_id=stored.id
            )
    messages = session.exec(
        select(OutboxMessage)
        .where(OutboxMessage.incident_id == incident.id)
        .order_by(col(OutboxMessage.created_at), col(OutboxMessage.id))
    ).all()
    by_contact: dict[uuid.UUID, list[OutboxMessage]] = {}
    for m in messages:
        if m.contact_id:
            by_contact.setdefault(m.contact_id, []).append(m)
    contact_rows = [
        ContactRow(
            contact=c,
            sms=_latest_status(language, by_contact.get(c.id, []), ChannelKind.sms),
            call=_latest_status(language, by_contact.get(c.id, []), ChannelKind.voice),
            confirmed=incident.confirmed_contact_id == c.id,
        )
        for c in contacts
    ]
    names = {str(c.id): f"{c.name} ({c.relationship})" for c in contacts}
    events = timeline.events_of(session, incident.id)
    guards = guards_messaged(session, messages)
    timezone = site.timezone if site else None
    timeline_rows = [
        {
            "at": local_time(e.at, timezone, "%H:%M:%S"),
            "day": local_time(e.at, timezone, "%Y-%m-%d"),
            "type": e.type,
            "label": label(language, EVENT_LABELS, e.type),
            "actor": label(language, ACTOR_LABELS, e.actor),
            "detail": _event_detail(language, e, names, guards),
        }
        for e in events
    ]
    active = incident.status in (IncidentStatus.open, IncidentStatus.notifying)
    return {
        "incident": incident,
        "site": site,
        "resident": resident,
        "unit": residents.unit_label(session, resident) if resident else None,
        "contact_rows": contact_rows,
        "timeline": timeline_rows,
        "status_label": label(language, STATUS_LABELS, incident.status.value),
        "kind_label": label(language, KIND_LABELS, incident.kind.value),
        "condition_label": label(language, CONDITION_LABELS, incident.condition.value),
        "outcome_label": label(language, OUTCOME_LABELS, incident.outcome.value)
        if incident.outcome
        else "",
        "outcomes": [(o.value, label(language, OUTCOME_LABELS, o.value)) for o in Outcome],
        "active": active,
        "closed": incident.status in CLOSED,
        "can_write": can_write,
        "overdue": is_overdue(session, incident, utcnow()),
        "request_id": new_request_id(),
        "show_phone": display_phone,
        "event_count": len(events),
        "live": {
            "url": f"/console/incidents/{incident.id}/live.json",
            "poll_seconds": POLL_SECONDS,
            "event_count": len(events),
            "status": incident.status.value,
        },
        "timezone": timezone,
        "photo_url": incident_photos.photo_url(incident)
        if incident_photos.may_see_photo(session, page_user.actor, incident)
        else None,
    }


def incident_page(
    request: Request,
    session: Session,
    page_user: PageUser,
    incident_id: uuid.UUID,
    *,
    error: str | None = None,
    status_code: int = 200,
    form: dict[str, str] | None = None,
) -> Response:
    context = incident_context(session, page_user, incident_id)
    context.update({"error": error, "form": form or {}})
    return console_render(
        request,
        page_user,
        "console/incident.html",
        context,
        status_code=status_code,
        section="/console",
    )


@router.get("/incidents/{incident_id}")
def incident_view(
    request: Request, incident_id: uuid.UUID, session: SessionDep, page_user: ConsoleUserDep
) -> Response:
    return incident_page(request, session, page_user, incident_id)


@router.get("/incidents/{incident_id}/live.json")
def incident_live(
    incident_id: uuid.UUID, session: SessionDep, page_user: ConsoleUserDep
) -> JSONResponse:
    """What the incident page polls: its status and how many timeline events there are. The
    page reloads itself when either changed (and nothing is being typed)."""
    incident = incidents.get_incident(
        session=session, actor=page_user.actor, incident_id=incident_id
    )
    return JSONResponse(
        {
            "status": incident.status.value,
            "event_count": len(timeline.events_of(session, incident.id)),
        },
        headers={"Cache-Control": "no-store"},
    )


def refused_action(
    request: Request,
    session: Session,
    page_user: PageUser,
    incident_id: uuid.UUID,
    exc: Exception,
    form: dict[str, str] | None = None,
) -> FormError:
    """The incident page again, saying why the action was refused (`action_error`)."""
    error, status = action_error(page_user.language, exc)
    return FormError(
        partial(incident_page, request, session, page_user, incident_id, form=form),
        error=error,
        status_code=status,
    )


@router.post("/incidents/{incident_id}/notify")
def incident_notify(
    request: Request,
    incident_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
    contact_id: Annotated[uuid.UUID, Form()],
    channel: Annotated[ChannelKind, Form()],
    request_id: Annotated[str, Form(min_length=8, max_length=64, pattern=r"^[\w-]+$")],
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    try:
        manual.notify_contact(
            session=session,
            actor=page_user.actor,
            incident_id=incident_id,
            contact_id=contact_id,
            channel=channel,
            request_id=request_id,
        )
    except (Conflict, InvalidInput) as exc:
        raise refused_action(request, session, page_user, incident_id, exc) from exc
    return see_other(f"/console/incidents/{incident_id}?done=notify")


@router.post("/incidents/{incident_id}/acknowledge")
def incident_acknowledge(
    request: Request,
    incident_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
    contact_id: Annotated[str, Form(max_length=40)] = "",
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    try:
        contact = uuid.UUID(contact_id) if contact_id else None
    except ValueError:
        error = gettext(page_user.language, "Choose one of the listed contacts.")
        return incident_page(request, session, page_user, incident_id, error=error, status_code=422)
    try:
        incidents.acknowledge(
            session=session, actor=page_user.actor, incident_id=incident_id, contact_id=contact
        )
    except (Conflict, InvalidInput) as exc:
        raise refused_action(request, session, page_user, incident_id, exc) from exc
    return see_other(f"/console/incidents/{incident_id}?done=acknowledge")


@router.post("/incidents/{incident_id}/note")
def incident_note(
    request: Request,
    incident_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
    text: NoteField = "",
    visibility: Annotated[NoteVisibility, Form()] = NoteVisibility.staff,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    if not text.strip() or "\x00" in text:
        error = gettext(page_user.language, "Write the note first.")
        return incident_page(
            request,
            session,
            page_user,
            incident_id,
            error=error,
            status_code=422,
            form={"note": text.replace("\x00", ""), "visibility": visibility.value},
        )
    incidents.add_note(
        session=session,
        actor=page_user.actor,
        incident_id=incident_id,
        note=text.strip(),
        visibility=visibility,
    )
    return see_other(f"/console/incidents/{incident_id}?done=note")


@router.post("/incidents/{incident_id}/resolve")
def incident_resolve(
    request: Request,
    incident_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
    outcome: Annotated[str, Form(max_length=40)] = "",
    handed_to: Annotated[str, Form(max_length=200)] = "",
    note: NoteField = "",
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    language = page_user.language
    typed = {"outcome": outcome, "handed_to": handed_to, "resolve_note": note}
    error: str | None = None
    if outcome not in {o.value for o in Outcome}:
        error = gettext(language, "Choose how the incident ended.")
    elif outcome == "handed_over" and not handed_to.strip():
        error = gettext(language, "Say to whom the resident was handed over.")
    elif "\x00" in handed_to + note:
        error = gettext(language, NUL_TEXT)
    if error:
        return incident_page(
            request, session, page_user, incident_id, error=error, status_code=422, form=typed
        )
    try:
        incidents.resolve(
            session=session,
            actor=page_user.actor,
            incident_id=incident_id,
            data=Resolution(
                outcome=Outcome(outcome),
                handed_to=handed_to.strip() or None,
                note=note.strip() or None,
            ),
        )
    except Conflict as exc:
        raise refused_action(request, session, page_user, incident_id, exc, typed) from exc
    return see_other(f"/console/incidents/{incident_id}?done=resolve")


@router.post("/incidents/{incident_id}/cancel")
def incident_cancel(
    request: Request,
    incident_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    try:
        incidents.cancel(session=session, actor=page_user.actor, incident_id=incident_id)
    except Conflict as exc:
        raise refused_action(request, session, page_user, incident_id, exc) from exc
    return see_other(f"/console/incidents/{incident_id}?done=cancel")
