"""Console pages of a resident's family contacts: add, change, remove, test, and the site's
unverified contacts."""

from __future__ import annotations

import uuid
from datetime import time
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlmodel import Session

from api.deps import SessionDep, SettingsDep
from api.pages.console.fields import (
    CONTACT_LANGUAGES,
    RequestId,
    Text200,
    chosen_site,
    erased,
    refused_fields,
    visible_sites,
)
from api.pages.console.frame import ConsoleUserDep, CsrfField, action_error, console_render
from api.pages.console.residents import resident_page
from api.pages.deps import PageUser, check_form_csrf
from api.pages.form_errors import FormError, PageRoute
from api.pages.forms import typed_values
from api.pages.rendering import see_other
from welfare import contact_checks
from welfare.channels import CONTACT_CHANNELS, ChannelKind
from welfare.errors import Conflict, InvalidInput
from welfare.residents import service as residents
from welfare.residents import unverified
from welfare.residents.models import Contact, ContactCreate, ContactUpdate

router = APIRouter(route_class=PageRoute, prefix="/console", include_in_schema=False)


# The contact form's fields, in the form's order: what the add and change handlers declare.
CONTACT_FIELDS = (
    "name",
    "relationship",
    "phone",
    "secondary_phone",
    "language",
    "sms",
    "voice",
    "whatsapp",
    "lives_in_household",
    "can_collect",
    "consent_to_contact",
    "quiet_start",
    "quiet_end",
    "priority",
)
Relationship = Annotated[str, Form(max_length=100)]
Phone = Annotated[str, Form(max_length=40)]
Language = Annotated[str, Form(max_length=35)]
Flag = Annotated[bool, Form()]
Clock = Annotated[str, Form(max_length=8)]
Priority = Annotated[str, Form(max_length=3)]


def _contact_data(values: dict[str, Any]) -> dict[str, Any]:
    channels = [kind.value for kind in CONTACT_CHANNELS if values.get(kind.value)]
    return {
        "name": values["name"].strip(),
        "relationship": values["relationship"].strip(),
        "phone": values["phone"].strip(),
        "secondary_phone": values["secondary_phone"].strip() or None,
        "language": values["language"],
        "channels": channels,
        "lives_in_household": values["lives_in_household"],
        "can_collect": values["can_collect"],
        "consent_to_contact": values["consent_to_contact"],
        "quiet_hours_start": values["quiet_start"] or None,
        "quiet_hours_end": values["quiet_end"] or None,
        "priority": int(values["priority"]) if values["priority"].isdigit() else None,
    }


@router.post("/residents/{resident_id}/contacts")
def contact_create(
    request: Request,
    resident_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    page_user: ConsoleUserDep,
    name: Text200 = "",
    relationship: Relationship = "",
    phone: Phone = "",
    secondary_phone: Phone = "",
    language: Language = "en",
    sms: Flag = False,
    voice: Flag = False,
    whatsapp: Flag = False,
    lives_in_household: Flag = False,
    can_collect: Flag = False,
    consent_to_contact: Flag = False,
    quiet_start: Clock = "",
    quiet_end: Clock = "",
    priority: Priority = "",
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    values = typed_values(locals(), CONTACT_FIELDS)
    redraw = partial(resident_page, request, session, settings, page_user, resident_id)
    try:
        residents.create_contact(
            session=session,
            actor=page_user.actor,
            resident_id=resident_id,
            data=ContactCreate(**_contact_data(values)),
        )
    except (ValidationError, InvalidInput) as exc:
        with_form = partial(redraw, form=values, form_name="contact")
        raise refused_fields(page_user, exc, with_form) from exc
    except Conflict as exc:
        raise erased(page_user, redraw) from exc
    return see_other(f"/console/residents/{resident_id}?done=contact#contacts")


def _contact_edit_page(
    request: Request,
    session: Session,
    page_user: PageUser,
    resident_id: uuid.UUID,
    contact: Contact,
    *,
    form: dict[str, Any],
    errors: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return console_render(
        request,
        page_user,
        "console/contact_edit.html",
        {
            "resident_id": resident_id,
            "contact": contact,
            "form": form,
            "errors": errors or {},
            "error": error,
            "contact_languages": CONTACT_LANGUAGES,
        },
        status_code=status_code,
        section="/console/residents",
    )


def _contact_values(contact: Contact) -> dict[str, Any]:
    return {
        "name": contact.name,
        "relationship": contact.relationship,
        "phone": contact.phone,
        "secondary_phone": contact.secondary_phone or "",
        "language": contact.language,
        **{kind.value: kind.value in contact.channels for kind in CONTACT_CHANNELS},
        "lives_in_household": contact.lives_in_household,
        "can_collect": contact.can_collect,
        "consent_to_contact": contact.consent_to_contact,
        "quiet_start": _clock(contact.quiet_hours_start),
        "quiet_end": _clock(contact.quiet_hours_end),
        "priority": str(contact.priority),
    }


def _clock(value: time | None) -> str:
    return value.strftime("%H:%M") if value else ""


@router.get("/residents/{resident_id}/contacts/{contact_id}")
def contact_edit(
    request: Request,
    resident_id: uuid.UUID,
    contact_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
) -> Response:
    contact = residents.get_contact(
        session=session, actor=page_user.actor, resident_id=resident_id, contact_id=contact_id
    )
    return _contact_edit_page(
        request, session, page_user, resident_id, contact, form=_contact_values(contact)
    )


def _contact_edit_again(
    request: Request,
    session: Session,
    page_user: PageUser,
    resident_id: uuid.UUID,
    contact_id: uuid.UUID,
    *,
    form: dict[str, Any],
    **messages: Any,
) -> Response:
    """The contact's form again with what was typed. The contact is read (and audited) after
    the rollback, as the page's own GET reads it."""
    contact = residents.get_contact(
        session=session,
        actor=page_user.actor,
        resident_id=resident_id,
        contact_id=contact_id,
    )
    return _contact_edit_page(
        request, session, page_user, resident_id, contact, form=form, **messages
    )


@router.post("/residents/{resident_id}/contacts/{contact_id}")
def contact_update(
    request: Request,
    resident_id: uuid.UUID,
    contact_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
    name: Text200 = "",
    relationship: Relationship = "",
    phone: Phone = "",
    secondary_phone: Phone = "",
    language: Language = "en",
    sms: Flag = False,
    voice: Flag = False,
    whatsapp: Flag = False,
    lives_in_household: Flag = False,
    can_collect: Flag = False,
    consent_to_contact: Flag = False,
    quiet_start: Clock = "",
    quiet_end: Clock = "",
    priority: Priority = "",
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    values = typed_values(locals(), CONTACT_FIELDS)
    try:
        residents.update_contact(
            session=session,
            actor=page_user.actor,
            resident_id=resident_id,
            contact_id=contact_id,
            data=ContactUpdate(**_contact_data(values)),
        )
    except (ValidationError, InvalidInput) as exc:
        redraw = partial(
            _contact_edit_again, request, session, page_user, resident_id, contact_id, form=values
        )
        raise refused_fields(page_user, exc, redraw) from exc
    return see_other(f"/console/residents/{resident_id}?done=contact#contacts")


@router.post("/residents/{resident_id}/contacts/{contact_id}/delete")
def contact_delete(
    resident_id: uuid.UUID,
    contact_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    residents.delete_contact(
        session=session, actor=page_user.actor, resident_id=resident_id, contact_id=contact_id
    )
    return see_other(f"/console/residents/{resident_id}?done=contact_removed#contacts")


@router.post("/residents/{resident_id}/contacts/{contact_id}/test")
def contact_test(
    request: Request,
    resident_id: uuid.UUID,
    contact_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    page_user: ConsoleUserDep,
    channel: Annotated[ChannelKind, Form()],
    request_id: RequestId,
    csrf_token: CsrfField = None,
) -> Response:
    """Send the contact a test SMS (with its link) or a test call (press 1)."""
    check_form_csrf(page_user, csrf_token)
    try:
        contact_checks.send_contact_test(
            session, page_user.actor, contact_id, channel, request_id, resident_id=resident_id
        )
    except (Conflict, InvalidInput) as exc:
        error, status = action_error(page_user.language, exc)
        redraw = partial(resident_page, request, session, settings, page_user, resident_id)
        raise FormError(redraw, error=error, status_code=status) from exc
    done = "test_sms" if channel is ChannelKind.sms else "test_call"
    return see_other(f"/console/residents/{resident_id}?done={done}#contacts")


@router.get("/contacts/unverified")
def contacts_unverified(
    request: Request,
    session: SessionDep,
    page_user: ConsoleUserDep,
    site_id: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    """The site's family contacts never verified, or not in the last 12 months."""
    site_list = visible_sites(session, page_user)
    chosen = chosen_site(site_list, site_id)
    site = next((s for s in site_list if s.id == chosen), None)
    rows = unverified.list_unverified(session, page_user.actor, chosen) if chosen else []
    return console_render(
        request,
        page_user,
        "console/contacts_unverified.html",
        {
            "sites": site_list,
            "site": site,
            "rows": rows,
            "timezone": site.timezone if site else None,
        },
        section="/console/contacts/unverified",
    )
