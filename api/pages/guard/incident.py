"""The live incident page: its photo, and the hand-over that closes it."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.responses import Response

from api.deps import SessionDep, SettingsDep, TransactionRoute
from api.pages.deps import CsrfField, PageUser, PageUserDep, check_form_csrf
from api.pages.guard.frame import (
    LIVE_WORDS,
    PHOTO_NOTICES,
    STATUS_LABELS,
    OptionalPhoto,
    OptionalText,
    guard_context,
    words,
)
from api.pages.i18n import gettext
from api.pages.rendering import render, see_other
from welfare.authz import Permission
from welfare.errors import DomainError, InvalidInput, PayloadTooLarge, UnsupportedMedia
from welfare.incidents import guard_view
from welfare.incidents import photos as incident_photos
from welfare.incidents import service as incidents
from welfare.incidents.models import CLOSED, Outcome, Resolution
from welfare.phones import display_phone
from welfare.settings import Settings

router = APIRouter(route_class=TransactionRoute, include_in_schema=False)


def photo_outcome(exc: DomainError) -> str:
    if isinstance(exc, UnsupportedMedia):
        return "unsupported"
    if isinstance(exc, PayloadTooLarge):
        return "too_large"
    if isinstance(exc, InvalidInput):
        return "unreadable"
    return "refused"


def read_photo(photo: UploadFile | None, settings: Settings) -> bytes:
    """The chosen file, at most one byte over the limit (an empty file input sends nothing)."""
    if photo is None:
        return b""
    return photo.file.read(settings.max_photo_bytes + 1)


def _incident_page(
    request: Request,
    session: SessionDep,
    page_user: PageUser,
    incident_id: uuid.UUID,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    incident, roles, site = guard_view.incident_for_guard(
        session=session, actor=page_user.actor, incident_id=incident_id
    )
    language = page_user.language
    actor = page_user.actor
    on_it = incident_photos.is_guard_on_it(session, actor, incident)
    notice = PHOTO_NOTICES.get(request.query_params.get("photo") or "")
    live = {
        "incident_id": str(incident.id),
        "contacts": [
            {"id": str(r.id), "relationship": r.relationship, "priority": r.priority} for r in roles
        ],
        "words": words(language, LIVE_WORDS),
        "statuses": words(language, STATUS_LABELS),
    }
    return render(
        request,
        "guard/incident.html",
        {
            **guard_context(page_user),
            "incident": incident,
            "roles": roles,
            "status_label": gettext(language, STATUS_LABELS[incident.status.value]),
            "closed": incident.status in CLOSED,
            "may_close": incidents.may_close(session, actor, incident),
            "office_phone": site.office_phone,
            "office_display": display_phone(site.office_phone) if site.office_phone else None,
            "emergency": guard_view.emergency_number(site.phone_region),
            "timezone": site.timezone,
            "live": live,
            "error": error,
            "show_photo": bool(incident.photo_file)
            and incident_photos.may_see_photo(session, actor, incident),
            "can_add_photo": incident.status not in CLOSED
            and (actor.can(Permission.registry_write) or on_it),
            "photo_notice": gettext(language, notice) if notice else None,
            "photo_notice_ok": request.query_params.get("photo") in ("added", "waiting"),
            "active": "home",
        },
        status_code=status_code,
    )


@router.post("/guard/incidents/{incident_id}/photo")
def guard_incident_photo(
    request: Request,
    incident_id: uuid.UUID,
    session: SessionDep,
    page_user: PageUserDep,
    settings: SettingsDep,
    photo: OptionalPhoto = None,
    csrf_token: CsrfField = None,
) -> Response:
    """Add (or replace) the photo from the live incident page, without JavaScript."""
    check_form_csrf(page_user, csrf_token)
    data = read_photo(photo, settings)
    if not data:
        error = gettext(page_user.language, "Choose or take a photo first.")
        return _incident_page(
            request, session, page_user, incident_id, error=error, status_code=422
        )
    try:
        incident_photos.set_photo(
            session=session,
            actor=page_user.actor,
            settings=settings,
            incident_id=incident_id,
            data=data,
        )
    except (UnsupportedMedia, PayloadTooLarge, InvalidInput) as exc:
        error = gettext(page_user.language, PHOTO_NOTICES[photo_outcome(exc)])
        return _incident_page(
            request, session, page_user, incident_id, error=error, status_code=exc.status_hint
        )
    return see_other(f"/guard/incidents/{incident_id}?photo=added")


@router.get("/guard/incidents/{incident_id}")
def guard_incident(
    request: Request, incident_id: uuid.UUID, session: SessionDep, page_user: PageUserDep
) -> Response:
    return _incident_page(request, session, page_user, incident_id)


@router.post("/guard/incidents/{incident_id}/handover")
def guard_handover(
    request: Request,
    incident_id: uuid.UUID,
    session: SessionDep,
    page_user: PageUserDep,
    handed_to: Annotated[str, Form(max_length=200)] = "",
    note: OptionalText = None,
    csrf_token: CsrfField = None,
) -> Response:
    """Record the hand-over: the incident is resolved as handed over, to whom."""
    check_form_csrf(page_user, csrf_token)
    if not handed_to.strip():
        error = gettext(page_user.language, "Say who took the person over.")
        return _incident_page(
            request, session, page_user, incident_id, error=error, status_code=422
        )
    incidents.resolve(
        session=session,
        actor=page_user.actor,
        incident_id=incident_id,
        data=Resolution(
            outcome=Outcome.handed_over,
            handed_to=handed_to.strip(),
            note=(note or "").strip() or None,
        ),
    )
    return see_other(f"/guard/incidents/{incident_id}")
