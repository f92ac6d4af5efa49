"""The guard's phone app under /guard: duty, search, scan, card, found, live incident, alerts.

Mobile first and usable with one hand. The pages are plain forms that work without JavaScript;
`static/guard.js` adds the camera scan, GPS, live updates and the offline queue for found
reports (the JSON API is idempotent on `client_request_id`, so a queued report is sent once).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from babel import Locale, UnknownLocaleError
from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response

from api.deps import SessionDep, SettingsDep, TransactionRoute
from api.pages.deps import CSRF_FIELD, PageUser, PageUserDep, check_form_csrf
from api.pages.i18n import N_, gettext
from api.pages.rendering import render, see_other
from welfare.authz import Permission
from welfare.errors import DomainError, InvalidInput, PayloadTooLarge, UnsupportedMedia
from welfare.incidents import alerts, guard_view, responders
from welfare.incidents import photos as incident_photos
from welfare.incidents import service as incidents
from welfare.incidents.models import (
    CLOSED,
    Condition,
    IncidentCreate,
    IncidentKind,
    Outcome,
    Resolution,
)
from welfare.lookup import service as lookups
from welfare.lookup.models import LookupCard
from welfare.phones import display_phone
from welfare.push import service as push
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.tags import codes
from welfare.users import service as users

router = APIRouter(route_class=TransactionRoute, include_in_schema=False)

CsrfField = Annotated[str | None, Form(alias=CSRF_FIELD, max_length=200)]
OptionalText = Annotated[str | None, Form(max_length=2000)]
OptionalPhoto = Annotated[UploadFile | None, File()]

CONDITIONS = [
    (Condition.well.value, N_("Well")),
    (Condition.distressed.value, N_("Distressed or confused")),
    (Condition.injured.value, N_("Injured")),
]
STATUS_LABELS = {
    "open": N_("Reported"),
    "notifying": N_("Contacting the family"),
    "confirmed": N_("Confirmed: someone is coming"),
    "resolved": N_("Closed"),
    "cancelled": N_("Cancelled"),
}
# Words the live incident page's script shows; rendered translated into the page.
LIVE_WORDS = {
    "not_contacted": N_("Not contacted yet"),
    "sms_queued": N_("SMS queued"),
    "sms_sent": N_("SMS sent"),
    "sms_delivered": N_("SMS delivered"),
    "sms_failed": N_("SMS failed"),
    "push_queued": N_("Notification queued"),
    "push_sent": N_("Notification sent"),
    "push_failed": N_("Notification failed"),
    "calling": N_("Calling"),
    "on_call": N_("On the call"),
    "no_answer": N_("No answer"),
    "call_ended": N_("Call ended, no key pressed"),
    "call_failed": N_("Call failed"),
    "confirmed": N_("Confirmed: coming"),
    "duty_manager": N_("Duty manager"),
    "coming": N_("%(who)s is coming"),
    "connection_lost": N_("No connection. Retrying…"),
    "updated": N_("Updated %(time)s"),
}
QUEUE_WORDS = {
    "waiting": N_(
        "Waiting for signal: %(count)s found report(s) will be sent when you are back online."
    ),
    "sent": N_("Your found report was sent."),
    "open": N_("Open the incident"),
    "refused": N_("A queued report was refused: %(reason)s"),
    "sending": N_("Sending…"),
    "located": N_("Location added."),
    "no_location": N_("Location not available. Type where you are."),
    "no_camera": N_("This phone cannot scan here. Type the code from the tag."),
    "camera_denied": N_("The camera is not allowed. Type the code from the tag."),
    "photo_waiting": N_("The photo is kept on this phone and will be sent with the report."),
    "photo_not_kept": N_(
        "The photo cannot be kept on this phone while there is no signal: the report will be "
        "sent without it. Add the photo on the incident page later."
    ),
    "push_on": N_("Alerts are on for this phone: they arrive as notifications, not SMS."),
    "push_denied": N_(
        "Notifications are blocked for this site. Allow them in the browser's settings, then tap "
        "again. Until then alerts come by SMS."
    ),
    "push_failed": N_("Alerts could not be turned on. They still come by SMS. Try again later."),
    "push_off": N_("Alerts for this phone are off: they come by SMS."),
}
# A typed code whose check character does not match (the scan page and the tag URL).
CHECK_THE_CODE = N_(
    "Check the code: a character is wrong or two are swapped. Type it again as it is printed on "
    "the tag."
)
# What happened to a photo sent with a report (`?photo=` on the live incident page).
PHOTO_NOTICES = {
    "added": N_("Photo added."),
    "waiting": N_("The photo will be sent as soon as there is signal."),
    "unsupported": N_("The photo was not added: it must be a JPEG, PNG or WebP picture."),
    "too_large": N_("The photo was not added: it is too large."),
    "unreadable": N_("The photo was not added: it could not be read."),
    "refused": N_("The photo was not added."),
    "not_kept": N_("The photo could not be sent or kept on this phone. Add it again below."),
}


def _words(language: str, table: dict[str, str]) -> dict[str, str]:
    return {key: gettext(language, text) for key, text in table.items()}


def language_label(code: str, ui_language: str) -> str:
    """A resident's language ("zh-CN") named in the guard's own language ("Chinese (China)")."""
    try:
        locale = Locale.parse(code.replace("-", "_"))
        return locale.get_display_name(Locale.parse(ui_language.replace("-", "_"))) or code
    except (ValueError, TypeError, UnknownLocaleError):
        return code


def _guard_context(page_user: PageUser) -> dict[str, Any]:
    return {
        "queue_words": _words(page_user.language, QUEUE_WORDS),
        "langname": lambda code: language_label(code, page_user.language),
    }


def _on_duty(session: SessionDep, page_user: PageUser) -> bool:
    user = users.current_user(session=session, actor=page_user.actor)
    return user.on_duty_since is not None


@router.get("/guard")
def guard_home(
    request: Request, session: SessionDep, settings: SettingsDep, page_user: PageUserDep
) -> Response:
    open_alerts = alerts.open_alerts(session=session, actor=page_user.actor)
    return render(
        request,
        "guard/home.html",
        {
            **_guard_context(page_user),
            "on_duty": _on_duty(session, page_user),
            "alert_count": len(open_alerts),
            "active": "home",
            "vapid_public_key": push.vapid_keys(session, settings).public_key,
        },
    )


@router.post("/guard/duty")
def guard_duty(
    session: SessionDep,
    page_user: PageUserDep,
    on_duty: Annotated[str, Form(max_length=5)],
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    if on_duty not in ("true", "false"):
        raise InvalidInput("on_duty", "true or false")
    users.set_duty(session=session, actor=page_user.actor, on_duty=on_duty == "true")
    return see_other("/guard")


@router.get("/guard/search")
def guard_search(
    request: Request,
    session: SessionDep,
    page_user: PageUserDep,
    q: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    cards: list[LookupCard] = []
    error = None
    if q.strip():
        cards = lookups.lookup(session=session, actor=page_user.actor, q=q, limit=10)
    else:
        error = gettext(page_user.language, "Type a flat, a name or a few words of description.")
    return render(
        request,
        "guard/search.html",
        {**_guard_context(page_user), "q": q, "cards": cards, "error": error, "active": "home"},
        status_code=422 if error else 200,
    )


def tag_code_from(text: str) -> str:
    """A typed code, or the code inside a scanned tag URL (".../t/<code>")."""
    text = text.strip()
    path = urlsplit(text).path if "://" in text else text
    if "/t/" in path:
        path = path.rsplit("/t/", 1)[1]
    return path.strip("/ ")


@router.get("/guard/scan")
def guard_scan(
    request: Request,
    page_user: PageUserDep,
    code: Annotated[str | None, Query(max_length=300)] = None,
) -> Response:
    if code is not None:
        tag = tag_code_from(code)
        typed = codes.read_typed(tag)
        if typed.printed:
            return see_other("/t/" + typed.printed)
        if typed.mistyped:
            error = gettext(page_user.language, CHECK_THE_CODE)
        elif tag and len(tag) <= 64 and "/" not in tag:  # a token issued before printed codes
            return see_other("/t/" + quote(tag, safe=""))
        else:
            error = gettext(page_user.language, "That is not a tag code. Check it and try again.")
        return render(
            request,
            "guard/scan.html",
            {**_guard_context(page_user), "error": error, "code": code, "active": "scan"},
            status_code=422,
        )
    return render(request, "guard/scan.html", {**_guard_context(page_user), "active": "scan"})


def card_page(
    request: Request, session: SessionDep, page_user: PageUser, card: LookupCard
) -> Response:
    site = guard_view.site_of(session, card.site_id)
    return render(
        request,
        "guard/card.html",
        {
            **_guard_context(page_user),
            "card": card,
            "emergency": guard_view.emergency_number(site.phone_region),
            "active": "home",
        },
    )


@router.get("/guard/residents/{resident_id}")
def guard_card(
    request: Request,
    resident_id: uuid.UUID,
    session: SessionDep,
    page_user: PageUserDep,
    q: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """The card; `q` (the search that led here) is highlighted where the card shows it."""
    card = guard_view.card_for(session=session, actor=page_user.actor, resident_id=resident_id)
    card.matched_terms = lookups.query_terms(q)
    return card_page(request, session, page_user, card)


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
        **_guard_context(page_user),
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
    client_request_id: Annotated[str, Form(min_length=8, max_length=64)],
    condition: Annotated[str, Form(max_length=20)] = Condition.well.value,
    location: Annotated[str | None, Form(max_length=300)] = None,
    latitude: Annotated[str | None, Form(max_length=40)] = None,
    longitude: Annotated[str | None, Form(max_length=40)] = None,
    note: OptionalText = None,
    photo: OptionalPhoto = None,
    csrf_token: CsrfField = None,
) -> Response:
    """The found report without JavaScript (the script sends the same to the JSON API, then the
    photo to `PUT /api/v1/incidents/{id}/photo`)."""
    check_form_csrf(page_user, csrf_token)
    card = guard_view.card_for(session=session, actor=page_user.actor, resident_id=resident_id)
    if condition not in {c.value for c in Condition}:
        error = gettext(page_user.language, "Choose the person's condition.")
        return _found_page(request, session, page_user, card, error=error, status_code=422)
    data = IncidentCreate(
        kind=IncidentKind.found,
        resident_id=card.resident_id,
        location=(location or "").strip() or None,
        latitude=_coordinate(latitude, 90),
        longitude=_coordinate(longitude, 180),
        condition=Condition(condition),
        note=(note or "").strip() or None,
        client_request_id=client_request_id,
    )
    opened = incidents.open_incident(session=session, actor=page_user.actor, data=data)
    return _after_report(session, page_user, settings, opened, data, photo)


def _photo_outcome(exc: DomainError) -> str:
    if isinstance(exc, UnsupportedMedia):
        return "unsupported"
    if isinstance(exc, PayloadTooLarge):
        return "too_large"
    if isinstance(exc, InvalidInput):
        return "unreadable"
    return "refused"


def _read_photo(photo: UploadFile | None, settings: Settings) -> bytes:
    """The chosen file, at most one byte over the limit (an empty file input sends nothing)."""
    if photo is None:
        return b""
    return photo.file.read(settings.max_photo_bytes + 1)


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
    data = _read_photo(photo, settings)
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
        return see_other(f"{url}?photo={_photo_outcome(exc)}")
    return see_other(f"{url}?photo=added")


# --- an unknown person: not in the registry, or not found by the search ------------------------


def _guard_sites(session: SessionDep, page_user: PageUser) -> list[Site]:
    found = [session.get(Site, site_id) for site_id in page_user.actor.site_ids]
    return sorted((s for s in found if s is not None), key=lambda s: s.name)


def _unknown_page(
    request: Request,
    session: SessionDep,
    page_user: PageUser,
    *,
    error: str | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    sites = _guard_sites(session, page_user)
    site = sites[0] if len(sites) == 1 else None
    context = _report_context(page_user, site.phone_region if site else None, error, values)
    return render(
        request, "guard/unknown.html", {**context, "sites": sites}, status_code=status_code
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
    client_request_id: Annotated[str, Form(min_length=8, max_length=64)],
    description: OptionalText = None,
    site_id: Annotated[uuid.UUID | None, Form()] = None,
    condition: Annotated[str, Form(max_length=20)] = Condition.well.value,
    location: Annotated[str | None, Form(max_length=300)] = None,
    latitude: Annotated[str | None, Form(max_length=40)] = None,
    longitude: Annotated[str | None, Form(max_length=40)] = None,
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
    elif condition not in {c.value for c in Condition}:
        error = gettext(page_user.language, "Choose the person's condition.")
    if error:
        return _unknown_page(
            request, session, page_user, error=error, values=values, status_code=422
        )
    data = IncidentCreate(
        kind=IncidentKind.found,
        description=(description or "").strip(),
        site_id=site_id,
        location=(location or "").strip() or None,
        latitude=_coordinate(latitude, 90),
        longitude=_coordinate(longitude, 180),
        condition=Condition(condition),
        note=(note or "").strip() or None,
        client_request_id=client_request_id,
    )
    opened = incidents.open_incident(session=session, actor=page_user.actor, data=data)
    return _after_report(session, page_user, settings, opened, data, photo)


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
        "words": _words(language, LIVE_WORDS),
        "statuses": _words(language, STATUS_LABELS),
    }
    return render(
        request,
        "guard/incident.html",
        {
            **_guard_context(page_user),
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
    data = _read_photo(photo, settings)
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
        error = gettext(page_user.language, PHOTO_NOTICES[_photo_outcome(exc)])
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


def _timezone(session: SessionDep, page_user: PageUser) -> str | None:
    """The guard's site timezone for showing times (UTC when they work at several sites)."""
    site_ids = sorted(page_user.actor.site_ids, key=str)
    if len(site_ids) != 1:
        return None
    return guard_view.site_of(session, site_ids[0]).timezone


@router.get("/guard/alerts")
def guard_alerts(request: Request, session: SessionDep, page_user: PageUserDep) -> Response:
    cards = alerts.open_alerts(session=session, actor=page_user.actor)
    return render(
        request,
        "guard/alerts.html",
        {
            **_guard_context(page_user),
            "alerts": cards,
            "timezone": _timezone(session, page_user),
            "active": "alerts",
        },
    )


@router.get("/guard/alerts/{incident_id}")
def guard_alert(
    request: Request, incident_id: uuid.UUID, session: SessionDep, page_user: PageUserDep
) -> Response:
    card = alerts.alert(session=session, actor=page_user.actor, incident_id=incident_id)
    return render(
        request,
        "guard/alert.html",
        {**_guard_context(page_user), "alert": card, "active": "alerts"},
    )


@router.post("/guard/alerts/{incident_id}/going")
def guard_going(
    incident_id: uuid.UUID,
    session: SessionDep,
    page_user: PageUserDep,
    csrf_token: CsrfField = None,
) -> Response:
    """A guard takes on a resident a member of the public found (the finder's page then says a
    guard is coming), and gets the live incident."""
    check_form_csrf(page_user, csrf_token)
    alerts.alert(session=session, actor=page_user.actor, incident_id=incident_id)
    responders.claim(session=session, actor=page_user.actor, incident_id=incident_id)
    return see_other(f"/guard/incidents/{incident_id}")


@router.get("/guard/offline")
def guard_offline(request: Request, page_user: PageUserDep) -> Response:
    """The offline shell the service worker keeps: no personal data, the queue of reports."""
    return render(request, "guard/offline.html", {**_guard_context(page_user), "active": ""})
