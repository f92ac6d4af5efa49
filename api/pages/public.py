"""The tag URL `/t/{code}`: the card for signed-in staff of the site, the public finder otherwise;
and the finder's status page `/f/{token}`.

The public finder shows no personal data: "in danger? call 999" first, "please stay with this
person", the site office's phone as a call link, the site's voice number with the tag's call
reference, and a report form ("share my location", asked only when tapped; a short message;
"alert the office"), which works without JavaScript too. Only under the resident's
public_care_tips consent does it show the preferred name and the care tips for a stranger. The
report opens the incident (welfare/incidents/public_reports.py) and sends the browser to its
status page, which says in plain words what has happened since and refreshes itself.

Unknown and revoked codes get the same page (with a general message instead of a phone), and the
button answers the same way for them, so nobody learns whether a code exists. Someone signed in who
may not see the card (staff of another site, a scan of an unknown code) gets exactly the page a
passer-by gets: a guard who finds another estate's resident still needs the office phone, and their
session shows them no more. A code typed with a wrong check character says "check the code" instead
of the button: that is a property of the text alone, so it tells nothing about which codes exist.
"""

from __future__ import annotations

import hmac
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import RedirectResponse, Response

from api.deps import (
    SESSION_COOKIE,
    CsrfRefused,
    SessionDep,
    SettingsDep,
    TransactionRoute,
    client_addr,
)
from api.pages.answer import gone_page, limits_of
from api.pages.deps import (
    CSRF_FIELD,
    EnrolmentRequired,
    LoginRequired,
    get_page_user,
    new_login_csrf,
    request_language,
)
from api.pages.guard.frame import CHECK_THE_CODE
from api.pages.guard.home import card_page
from api.pages.i18n import N_, gettext
from api.pages.rendering import render
from welfare.errors import InvalidInput, Throttled
from welfare.incidents import guard_view, public_reports
from welfare.lookup import service as lookups
from welfare.phones import display_phone

router = APIRouter(route_class=TransactionRoute, include_in_schema=False)

PUBLIC_CSRF_COOKIE = "welfare_public_csrf"
TagCode = Annotated[str, Path(max_length=100)]
FinderToken = Annotated[str, Path(max_length=100)]
# The status page reloads itself this often (a meta refresh: no script needed); within the
# answer links' per-token allowance (one request every 6 seconds).
STATUS_REFRESH_SECONDS = 8
PROGRESS_WORDS = {
    "office": N_("The office has it"),
    "family_told": N_("The family has been told"),
    "guard_coming": N_("A guard is coming"),
    "on_the_way": N_("Someone is on the way"),
}
FIX_WORDS = {
    "message": N_("Please shorten the message to %(max)s characters, in plain text."),
    "location": N_("Please shorten the place to %(max)s characters, in plain text."),
}
COORDINATES_UNREADABLE = N_("The location could not be read. Send the report without it.")


def _headers(response: Response) -> Response:
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


def _finder_context(finder: public_reports.Finder) -> dict[str, object]:
    """What both public pages show of the site and (with its consent) the resident."""
    return {
        "office_phone": finder.office_phone,
        "office_display": display_phone(finder.office_phone) if finder.office_phone else None,
        "voice_number": finder.voice_number,
        "voice_display": display_phone(finder.voice_number) if finder.voice_number else None,
        "call_reference": finder.call_reference,
        "care": finder.care,
        "emergency": (
            guard_view.emergency_number(finder.phone_region) if finder.phone_region else None
        ),
    }


def _finder_page(
    request: Request,
    session: SessionDep,
    code: str,
    *,
    status_code: int = 200,
    error: str | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    language = request_language(request)
    settings = request.app.state.settings
    found = public_reports.finder(
        session=session,
        code=code,
        secret=settings.secret_key,
        default_voice=settings.twilio_from_number,
    )
    if found.mistyped and error is None:
        error, status_code = gettext(language, CHECK_THE_CODE), 422
    token = request.cookies.get(PUBLIC_CSRF_COOKIE) or new_login_csrf()
    response = render(
        request,
        "public/finder.html",
        {
            **_finder_context(found),
            "code": code,
            "public_csrf": token,
            "error": error,
            "form": form or {},
            "mistyped": found.mistyped,
            "message_max": public_reports.MESSAGE_MAX,
        },
        status_code=status_code,
        language=language,
    )
    response.set_cookie(PUBLIC_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/t/")
    return _headers(response)


def _card_for_staff(
    request: Request, session: SessionDep, settings: SettingsDep, code: str
) -> Response | None:
    """The card, for a signed-in user who may see it (staff of the tag's site); else None, and
    the request is left as a passer-by's: the finder page then shows nothing from the session,
    not even the account's menu."""
    if not request.cookies.get(SESSION_COOKIE):
        return None
    try:
        page_user = get_page_user(request, settings)
    except LoginRequired:
        return None
    except EnrolmentRequired:  # a session that may only set up a second factor: a passer-by
        request.state.page_user = None
        return None
    try:
        cards = lookups.lookup(session=session, actor=page_user.actor, tag=code, limit=1)
    except InvalidInput:  # mistyped or over-long: the finder page answers as for anyone
        cards = []
    if cards:
        return card_page(request, session, page_user, cards[0])
    request.state.page_user = None
    request.state.language = None
    return None


@router.get("/t/{code}")
def tag_url(
    request: Request, code: TagCode, session: SessionDep, settings: SettingsDep
) -> Response:
    """A scanned tag. Staff of its site: straight to the card. Anyone else, signed in to
    another site or not signed in: the public finder page, the same for all of them."""
    card = _card_for_staff(request, session, settings, code)
    if card is not None:
        return card
    return _finder_page(request, session, code)


@router.post("/t/{code}/alert")
def alert_office(
    request: Request,
    code: TagCode,
    session: SessionDep,
    settings: SettingsDep,
    csrf_token: Annotated[str | None, Form(alias=CSRF_FIELD, max_length=200)] = None,
    location: Annotated[str | None, Form(max_length=300)] = None,
    message: Annotated[str | None, Form(max_length=2000)] = None,
    latitude: Annotated[str | None, Form(max_length=40)] = None,
    longitude: Annotated[str | None, Form(max_length=40)] = None,
) -> Response:
    """A member of the public alerts the office: a found incident for staff (and, by consent,
    the family), rate-limited; then their status page."""
    cookie = (request.cookies.get(PUBLIC_CSRF_COOKIE) or "").encode("latin-1", "replace")
    sent = (csrf_token or "").encode("latin-1", "replace")
    if not cookie or not hmac.compare_digest(sent, cookie):
        raise CsrfRefused()
    typed = {"location": location or "", "message": message or ""}
    try:
        sent = public_reports.alert_office(
            session=session,
            secret=settings.secret_key,
            code=code,
            client_addr=client_addr(request),
            location=location,
            message=message,
            latitude=_coordinate("latitude", latitude),
            longitude=_coordinate("longitude", longitude),
        )
    except Throttled as exc:
        language = request_language(request)
        message = gettext(
            language,
            "The office has already been alerted several times. Please call the office, "
            "or wait a few minutes and try again.",
        )
        response = _finder_page(request, session, code, status_code=429, error=message)
        response.headers["Retry-After"] = str(exc.retry_after_seconds)
        return response
    except InvalidInput as exc:
        language = request_language(request)
        field = exc.loc[-1]
        limit = public_reports.MESSAGE_MAX if field == "message" else public_reports.LOCATION_MAX
        words = FIX_WORDS.get(str(field), COORDINATES_UNREADABLE)
        error = gettext(language, words) % {"max": limit}
        return _finder_page(request, session, code, status_code=422, error=error, form=typed)
    target = f"/t/{quote(code, safe='')}" if sent.mistyped else f"/f/{quote(sent.token, safe='')}"
    return _headers(RedirectResponse(target, status_code=303))


def _coordinate(field: str, value: str | None) -> float | None:
    """The browser's coordinate as a number; empty is none."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError as exc:
        raise InvalidInput(field, "a coordinate is a number, such as 22.28") from exc


@router.get("/f/{token}")
def finder_status(
    request: Request, token: FinderToken, session: SessionDep, settings: SettingsDep
) -> Response:
    """The finder's page after sending: what has happened since, in plain words, in the
    language of their browser; it reloads itself while the incident runs."""
    language = request_language(request)
    wait = limits_of(request).wait(client_addr(request), token)
    if wait > 0:
        return gone_page(request, 429, wait)
    found = public_reports.status(
        session=session,
        token=token,
        secret=settings.secret_key,
        default_voice=settings.twilio_from_number,
    )
    if found is None:
        return gone_page(request)
    response = render(
        request,
        "public/finder_status.html",
        {
            **_finder_context(found.finder),
            "progress": [
                (step.value, gettext(language, PROGRESS_WORDS[step.value]))
                for step in found.progress
            ],
            "closed": found.closed,
            "refresh": None if found.closed else STATUS_REFRESH_SECONDS,
            "token_path": f"/f/{quote(token, safe='')}",
        },
        language=language,
    )
    return _headers(response)
