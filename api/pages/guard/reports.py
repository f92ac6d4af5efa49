"""The two report forms without JavaScript: a resident found, and an unknown person."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, NamedTuple

from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.responses import Response

from api.deps import SessionDep, SettingsDep, TransactionRoute
from api.pages.deps import CsrfField, PageUser, PageUserDep, check_form_csrf
from api.pages.guard.frame import CONDITIONS, OptionalPhoto, OptionalText, guard_context
from api.pages.guard.incident import photo_outcome, read_photo
from api.pages.i18n import gettext
from api.pages.rendering import render, see_other
from welfare.errors import DomainError, InvalidInput
from welfare.incidents import guard_view
from welfare.incidents import photos as incident_photos
from welfare.incidents import service as incidents
from welfare.incidents.models import Condition, IncidentCreate, IncidentKind
from welfare.lookup.models import LookupCard
from welfare.settings import Settings
from welfare.sites import service as sites

router = APIRouter(route_class=TransactionRoute, include_in_schema=False)

# The fields both report forms send (`guard/_report_fields.html`).
ClientRequestId = Annotated[str, Form(min_length=8, max_length=64)]
ConditionField = Annotated[str, Form(max_length=20)]
LocationField = Annotated[str | None, Form(max_length=300)]
CoordinateField = Annotated[str | None, Form(max_length=40)]
CONDITION_VALUES = frozenset(c.value for c in Condition)


def _found_page(
    request: Request,
    session: SessionDep,
    page_user: PageUser,
    card: LookupCard,
    *,
    error: str | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    site = guard_view.site_of(session, card.site_id)
    context = _report_context(page_user, site.phone_region, error, values)
    return render(request, "guard/found.html", {**context, "card": card}, status_code=status_code)


def _report_context(
    page_user: PageUser,
    phone_region: str | None,
    error: str | None,
    values: dict[str, Any] | None,
) -> dict[str, Any]:
    """What both report forms (found, unknown person) show: `guard/_report_fields.html`."""
    return {
        **guard_context(page_user),
        "conditions": [(v, gettext(page_user.language, label)) for v, label in CONDITIONS],
        "emergency": guard_view.emergency_number(phone_region),
        "client_request_id": str(uuid.uuid4()),
        "error": error,
        "values": values or {},
        "active": "home",
    }


@router.get("/guard/residents/{resident_id}/found")
def guard_found_form(
    request: Request, resident_id: uuid.UUID, session: SessionDep, page_user: PageUserDep
) -> Response:
    card = guard_view.card_for(session=session, actor=page_user.actor, resident_id=resident_id)
    return _found_page(request, session, page_user, card)


def _coordinate(value: str | None, bound: float) -> float | None:
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise InvalidInput("latitude", "not a number") from None
    if not -bound <= number <= bound:
        raise InvalidInput("latitude", "out of range")
    return number


@router.post("/guard/residents/{resident_id}/found")
def guard_report_found(
    request: Request,
    resident_id: uuid.UUID,
    session: SessionDep,
    page_user: PageUserDep,
    settings: SettingsDep,
    client_request_id: ClientRequestId,
    condition: ConditionField = Condition.well.value,
    location: LocationField = None,
    latitude: CoordinateField = None,
    longitude: CoordinateField = None,
    note: OptionalText = None,
    photo: OptionalPhoto = None,
    csrf_token: CsrfField = None,
) -> Response:
    """The found report without JavaScript (the script sends the same to the JSON API, then the
    photo to `PUT /api/v1/incidents/{id}/photo`)."""
    check_form_csrf(page_user, csrf_token)
    card = guard_view.card_for(session=session, actor=page_user.actor, resident_id=resident_id)
    if condition not in CONDITION_VALUES:
        error = gettext(page_user.language, "Choose the person's condition.")
        return _found_page(request, session, page_user, card, error=error, status_code=422)
    report = _Report(client_request_id, condition, location, latitude, longitude, note)
    return _file_report(session, page_user, settings, report, photo, resident_id=card.resident_id)


class _Report(NamedTuple):
    """What both report forms send, as typed."""

    client_request_id: str
    condition: str
    location: str | None
    latitude: str | None
    longitude: str | None
    note: str | None


def _file_report(
    session: SessionDep,
    page_user: PageUser,
    settings: Settings,
    report: _Report,
    photo: UploadFile | None,
    **who: Any,
) -> Response:
    """Open the found incident (`who`: the resident, or the unknown person's description and
    site), then go to its live page."""
    data = IncidentCreate(
        kind=IncidentKind.found,
        **who,
        location=(report.location or "").strip() or None,
        latitude=_coordinate(report.latitude, 90),
        longitude=_coordinate(report.longitude, 180),
        condition=Condition(report.condition),
        note=(report.note or "").strip() or None,
        client_request_id=report.client_request_id,
    )
    opened = incidents.open_incident(session=session, actor=page_user.actor, data=data)
    return _after_report(session, page_user, settings, opened, data, photo)


def _after_report(
    session: SessionDep,
    page_user: PageUser,
    settings: Settings,
    opened: incidents.Opened,
    report: IncidentCreate,
    photo: UploadFile | None,
) -> Response:
    """To the live incident page. A photo that is refused does not undo the report: the page
    says what happened to it (`?photo=`)."""
    incident = opened.incident
    url = f"/guard/incidents/{incident.id}"
    data = read_photo(photo, settings)
    # The same form sent twice (a double tap) stores its photo once.
    replay = not opened.created and incident.client_request_id == report.client_request_id
    if not data or (replay and incident.photo_file):
        return see_other(url)
    try:
        incident_photos.set_photo(
            session=session,
            actor=page_user.actor,
            settings=settings,
            incident_id=incident.id,
            data=data,
        )
    except DomainError as exc:  # raised before anything is written: the report still commits
        return see_other(f"{url}?photo={photo_outcome(exc)}")
    return see_other(f"{url}?photo=added")


# --- an unknown person: not in the registry, or not found by the search ------------------------


def _unknown_page(
    request: Request,
    session: SessionDep,
    page_user: PageUser,
    *,
    error: str | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    own_sites = sites.sites_of(session, page_user.actor)
    site = own_sites[0] if len(own_sites) == 1 else None
    context = _report_context(page_user, site.phone_region if site else None, error, values)
    return render(
        request, "guard/unknown.html", {**context, "sites": own_sites}, status_code=status_code
    )


@router.get("/guard/unknown")
def guard_unknown_form(request: Request, session: SessionDep, page_user: PageUserDep) -> Response:
    return _unknown_page(request, session, page_user)


@router.post("/guard/unknown")
def guard_report_unknown(
    request: Request,
    session: SessionDep,
    page_user: PageUserDep,
    settings: SettingsDep,
    client_request_id: ClientRequestId,
    description: OptionalText = None,
    site_id: Annotated[uuid.UUID | None, Form()] = None,
    condition: ConditionField = Condition.well.value,
    location: LocationField = None,
    latitude: CoordinateField = None,
    longitude: CoordinateField = None,
    note: OptionalText = None,
    photo: OptionalPhoto = None,
    csrf_token: CsrfField = None,
) -> Response:
    """Someone who is not in the registry (or whom the search did not find): a description and,
    if the guard takes one, a photo; the office handles it."""
    check_form_csrf(page_user, csrf_token)
    values = {"description": description, "location": location, "note": note}
    values |= {"condition": condition, "site_id": str(site_id) if site_id else ""}
    error = None
    if not (description or "").strip():
        error = gettext(page_user.language, "Describe the person: age, clothes, what they say.")
    elif condition not in CONDITION_VALUES:
        error = gettext(page_user.language, "Choose the person's condition.")
    if error:
        return _unknown_page(
            request, session, page_user, error=error, values=values, status_code=422
        )
    report = _Report(client_request_id, condition, location, latitude, longitude, note)
    return _file_report(
        session,
        page_user,
        settings,
        report,
        photo,
        description=(description or "").strip(),
        site_id=site_id,
    )
