"""The staff console's incident page and its actions (notify, acknowledge, note, resolve, cancel).

Thin over the domain: the read model `welfare/incidents/staff_view.py` says what the page shows
(checking the site and auditing the card's read); the services in welfare/incidents write, check
the role and the site, and write the audit and the timeline. This module puts codes into words.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, Response
from sqlmodel import Session

from api.deps import SessionDep
from api.pages.console.board import POLL_SECONDS
from api.pages.console.fields import RequestId
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
from welfare.channels import ChannelKind
from welfare.errors import Conflict, InvalidInput
from welfare.incidents import manual, staff_view, timeline
from welfare.incidents import service as incidents
from welfare.incidents.models import IncidentEvent, NoteVisibility, Outcome, Resolution
from welfare.phones import display_phone
from welfare.residents.models import Contact

router = APIRouter(route_class=PageRoute, prefix="/console", include_in_schema=False)

ShortField = Annotated[str, Form(max_length=300)]
NoteField = Annotated[str, Form(max_length=2000)]


@dataclass
class ContactRow:
    contact: Contact
    sms: str
    call: str
    confirmed: bool


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


def _delivery_words(language: str, delivery: staff_view.Delivery | None) -> str:
    if delivery is None:
        return ""
    text = label(language, DELIVERY_LABELS, delivery.status)
    if delivery.error:
        text += f" ({delivery.error})"
    return text


def _timeline_rows(language: str, view: staff_view.StaffIncident) -> list[dict[str, str]]:
    """The timeline in the site's time and the desk's words; contacts named as on the card."""
    names = {
        str(r.contact.id): f"{r.contact.name} ({r.contact.relationship})" for r in view.contacts
    }
    timezone = view.timezone
    return [
        {
            "at": local_time(e.at, timezone, "%H:%M:%S"),
            "day": local_time(e.at, timezone, "%Y-%m-%d"),
            "type": e.type,
            "label": label(language, EVENT_LABELS, e.type),
            "actor": label(language, ACTOR_LABELS, e.actor),
            "detail": _event_detail(language, e, names, view.guards),
        }
        for e in view.events
    ]


def incident_context(
    session: Session, page_user: PageUser, incident_id: uuid.UUID
) -> dict[str, Any]:
    """Everything the incident page shows: the read model (`staff_view.staff_incident`, which
    checks the site and audits reading the resident's card) in the desk's language."""
    language = page_user.language
    view = staff_view.staff_incident(
        session=session, actor=page_user.actor, incident_id=incident_id
    )
    incident = view.incident
    contact_rows = [
        ContactRow(
            contact=row.contact,
            sms=_delivery_words(language, row.sms),
            call=_delivery_words(language, row.call),
            confirmed=row.confirmed,
        )
        for row in view.contacts
    ]
    timezone = view.timezone
    timeline_rows = _timeline_rows(language, view)
    return {
        "incident": incident,
        "site": view.site,
        "resident": view.resident,
        "unit": view.unit,
        "contact_rows": contact_rows,
        "timeline": timeline_rows,
        "status_label": label(language, STATUS_LABELS, incident.status.value),
        "kind_label": label(language, KIND_LABELS, incident.kind.value),
        "condition_label": label(language, CONDITION_LABELS, incident.condition.value),
        "outcome_label": label(language, OUTCOME_LABELS, incident.outcome.value)
        if incident.outcome
        else "",
        "outcomes": [(o.value, label(language, OUTCOME_LABELS, o.value)) for o in Outcome],
        "active": view.active,
        "closed": view.closed,
        "can_write": view.can_write,
        "overdue": view.overdue,
        "request_id": new_request_id(),
        "show_phone": display_phone,
        "event_count": len(view.events),
        "live": {
            "url": f"/console/incidents/{incident.id}/live.json",
            "poll_seconds": POLL_SECONDS,
            "event_count": len(view.events),
            "status": incident.status.value,
        },
        "timezone": timezone,
        "photo_url": view.photo_url,
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
    request_id: RequestId,
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
