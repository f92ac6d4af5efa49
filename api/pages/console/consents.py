"""Console pages of a resident's consents: record one, and withdraw one after a preview of what
withdrawing erases."""

from __future__ import annotations

import datetime as dt
import uuid
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlmodel import Session, col, select

from api.deps import SessionDep, SettingsDep
from api.pages.console.fields import SCOPE_LABELS, Text200, consent_rows, erased, refused_fields
from api.pages.console.frame import ConsoleUserDep, CsrfField, console_render
from api.pages.console.residents import resident_page
from api.pages.deps import PageUser, check_form_csrf, t
from api.pages.form_errors import FormError, PageRoute
from api.pages.i18n import gettext
from api.pages.rendering import see_other
from welfare.consent import service as consents
from welfare.consent.models import Consent, ConsentCreate, ConsentScope
from welfare.consent.scopes import consents_of, live_scopes
from welfare.errors import Conflict, InvalidInput, NotFound
from welfare.incidents.models import CLOSED, Incident
from welfare.residents import service as residents
from welfare.residents.models import Resident
from welfare.tags import service as tags
from welfare.times import parse_day

router = APIRouter(route_class=PageRoute, prefix="/console", include_in_schema=False)


@router.post("/residents/{resident_id}/consents")
def consent_record(
    request: Request,
    resident_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    page_user: ConsoleUserDep,
    given_by_kind: Annotated[str, Form(max_length=20)] = "",
    given_by_name: Text200 = "",
    given_by_relationship: Annotated[str, Form(max_length=100)] = "",
    evidence: Annotated[str, Form(max_length=1000)] = "",
    method: Annotated[str, Form(max_length=20)] = "",
    scopes: Annotated[list[str] | None, Form(max_length=len(ConsentScope))] = None,
    given_on: Annotated[str, Form(max_length=10)] = "",
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    typed = {
        "given_by_kind": given_by_kind,
        "given_by_name": given_by_name,
        "given_by_relationship": given_by_relationship,
        "evidence": evidence,
        "method": method,
        "scopes": scopes or [],
        "given_on": given_on,
    }
    redraw = partial(resident_page, request, session, settings, page_user, resident_id)
    try:
        given_at = None
        if given_on:
            try:
                day = parse_day(given_on)
            except ValueError as exc:
                raise InvalidInput("given_at", str(exc)) from None
            given_at = dt.datetime.combine(day, dt.time(12), dt.UTC)
        data = ConsentCreate(
            given_by_kind=given_by_kind,  # type: ignore[arg-type]
            given_by_name=given_by_name.strip(),
            given_by_relationship=given_by_relationship.strip() or None,
            evidence=evidence.strip() or None,
            method=method,  # type: ignore[arg-type]
            scopes=scopes or [],  # type: ignore[arg-type]
            given_at=given_at,
        )
        consents.record_consent(
            session=session, actor=page_user.actor, resident_id=resident_id, data=data
        )
    except (ValidationError, InvalidInput) as exc:
        with_form = partial(redraw, form=typed, form_name="consent")
        raise refused_fields(page_user, exc, with_form) from exc
    except Conflict as exc:
        raise erased(page_user, redraw) from exc
    return see_other(f"/console/residents/{resident_id}?done=consent#consents")


def _erasure_plan(
    session: Session, resident: Resident, consent: Consent
) -> tuple[str, list[ConsentScope]]:
    """What withdrawing this consent erases: "record", "photo" or "nothing", and the scopes
    no consent covers any more. The same rule the service applies."""
    others = [c for c in consents_of(session, resident.id) if c.id != consent.id]
    remaining = live_scopes(others)
    lost = sorted(set(live_scopes([consent])) - remaining)
    if ConsentScope.registry not in remaining:
        return "record", lost
    if ConsentScope.photo not in remaining and resident.photo_file:
        return "photo", lost
    if ConsentScope.photo in lost and _incident_photo_count(session, resident):
        return "photo", lost
    return "nothing", lost


def _incident_photo_count(session: Session, resident: Resident) -> int:
    """Photos guards took of the resident on incidents (erased with the photo scope)."""
    return len(
        session.exec(
            select(Incident.id).where(
                Incident.resident_id == resident.id, col(Incident.photo_file).is_not(None)
            )
        ).all()
    )


def _withdraw_page(
    request: Request,
    session: Session,
    page_user: PageUser,
    resident_id: uuid.UUID,
    consent_id: uuid.UUID,
    *,
    error: str | None = None,
    reason: str = "",
    status_code: int = 200,
) -> Response:
    resident = residents.get_resident(
        session=session,
        actor=page_user.actor,
        resident_id=resident_id,
        purpose="consent withdrawal",
    )
    consent_list = consents.list_consents(
        session=session, actor=page_user.actor, resident_id=resident.id
    )
    consent = next((c for c in consent_list if c.id == consent_id), None)
    if consent is None:
        raise NotFound("consent")
    erases, lost = _erasure_plan(session, resident, consent)
    incidents_open = 0
    if erases == "record":
        incidents_open = len(
            session.exec(
                select(Incident.id).where(
                    Incident.resident_id == resident.id, col(Incident.status).not_in(CLOSED)
                )
            ).all()
        )
    return console_render(
        request,
        page_user,
        "console/withdraw.html",
        {
            "resident": resident,
            "consent": consent_rows(page_user, [consent])[0],
            "erases": erases,
            "lost": [t(page_user, SCOPE_LABELS[s.value]) for s in lost],
            "contacts_count": len(
                residents.list_contacts(
                    session=session, actor=page_user.actor, resident_id=resident.id
                )
            )
            if resident.erased_at is None
            else 0,
            "has_tag": tags.live_tag(session, resident.id) is not None,
            "incidents_open": incidents_open,
            "incident_photos": _incident_photo_count(session, resident),
            "error": error,
            "reason": reason,
        },
        status_code=status_code,
        section="/console/residents",
    )


@router.get("/residents/{resident_id}/consents/{consent_id}/withdraw")
def consent_withdraw_confirm(
    request: Request,
    resident_id: uuid.UUID,
    consent_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
) -> Response:
    return _withdraw_page(request, session, page_user, resident_id, consent_id)


@router.post("/residents/{resident_id}/consents/{consent_id}/withdraw")
def consent_withdraw(
    request: Request,
    resident_id: uuid.UUID,
    consent_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    page_user: ConsoleUserDep,
    reason: Annotated[str, Form(max_length=500)] = "",
    confirm: Annotated[bool, Form()] = False,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    if not confirm or "\x00" in reason:
        return _withdraw_page(
            request,
            session,
            page_user,
            resident_id,
            consent_id,
            error=gettext(
                page_user.language, "Tick the box to confirm that you have read what is erased."
            ),
            reason=reason.replace("\x00", ""),
            status_code=422,
        )
    try:
        consents.withdraw_consent(
            session=session,
            actor=page_user.actor,
            settings=settings,
            resident_id=resident_id,
            consent_id=consent_id,
            reason=reason.strip() or None,
        )
    except Conflict as exc:
        raise FormError(
            partial(_withdraw_page, request, session, page_user, resident_id, consent_id),
            error=gettext(page_user.language, "This consent is already withdrawn."),
            status_code=409,
        ) from exc
    return see_other(f"/console/residents/{resident_id}?done=withdrawn#consents")
