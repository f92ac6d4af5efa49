"""The tag URL `/t/{code}`: the card for signed-in staff of the site, the public finder otherwise.

The public finder shows no personal data: only "please stay with this person", the site office's
phone as a call link, and an "alert the office" button. Unknown and revoked codes get the same
page (with a general message instead of a phone), and the button answers the same way for them,
so nobody learns whether a code exists. Someone signed in who may not see the card (staff of
another site, a scan of an unknown code) gets exactly the page a passer-by gets: a guard who finds
another estate's resident still needs the office phone, and their session shows them no more. A
code typed with a wrong check character says "check the code" instead of the button: that is a
property of the text alone, so it tells nothing about which codes exist.
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
from api.pages.deps import (
    CSRF_FIELD,
    EnrolmentRequired,
    LoginRequired,
    get_page_user,
    new_login_csrf,
    request_language,
)
from api.pages.guard import CHECK_THE_CODE, card_page
from api.pages.i18n import gettext
from api.pages.rendering import render
from welfare.errors import InvalidInput, Throttled
from welfare.incidents import guard_view, public_reports
from welfare.lookup import service as lookups
from welfare.phones import display_phone

router = APIRouter(route_class=TransactionRoute, include_in_schema=False)

PUBLIC_CSRF_COOKIE = "welfare_public_csrf"
TagCode = Annotated[str, Path(max_length=100)]


def _finder_page(
    request: Request,
    session: SessionDep,
    code: str,
    *,
    status_code: int = 200,
    error: str | None = None,
    alerted: bool = False,
) -> Response:
    language = request_language(request)
    found = public_reports.finder(session=session, code=code)
    if found.mistyped and error is None:
        error, status_code = gettext(language, CHECK_THE_CODE), 422
    token = request.cookies.get(PUBLIC_CSRF_COOKIE) or new_login_csrf()
    response = render(
        request,
        "public/finder.html",
        {
            "code": code,
            "office_phone": found.office_phone,
            "office_display": display_phone(found.office_phone) if found.office_phone else None,
            "emergency": (
                guard_view.emergency_number(found.phone_region) if found.phone_region else None
            ),
            "public_csrf": token,
            "error": error,
            "alerted": alerted and not found.mistyped,
            "mistyped": found.mistyped,
        },
        status_code=status_code,
        language=language,
    )
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    response.set_cookie(PUBLIC_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/t/")
    return response


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
    return _finder_page(request, session, code, alerted=request.query_params.get("alerted") == "1")


@router.post("/t/{code}/alert")
def alert_office(
    request: Request,
    code: TagCode,
    session: SessionDep,
    settings: SettingsDep,
    csrf_token: Annotated[str | None, Form(alias=CSRF_FIELD, max_length=200)] = None,
    location: Annotated[str | None, Form(max_length=300)] = None,
) -> Response:
    """A member of the public alerts the office: a found incident for staff, rate-limited."""
    cookie = (request.cookies.get(PUBLIC_CSRF_COOKIE) or "").encode("latin-1", "replace")
    sent = (csrf_token or "").encode("latin-1", "replace")
    if not cookie or not hmac.compare_digest(sent, cookie):
        raise CsrfRefused()
    try:
        public_reports.alert_office(
            session=session,
            secret=settings.secret_key,
            code=code,
            client_addr=client_addr(request),
            location=location,
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
    return RedirectResponse(f"/t/{quote(code, safe='')}?alerted=1", status_code=303)
