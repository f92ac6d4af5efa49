"""Company sign-in pages: the start of the OpenID Connect flow and the provider's callback.

The domain does the checking (`welfare/identity/oidc.py`); these only carry the browser cookie
that ties a callback to the browser that started it, set the usual session cookie, and word a
refusal in the visitor's language (a 4xx page, never a 5xx).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from api.deps import SessionDep, SettingsDep, TransactionRoute, client_addr, set_session_cookie
from api.pages.deps import home_for, request_language, safe_next
from api.pages.i18n import N_, gettext, ui_language
from api.pages.rendering import render
from welfare.identity import oidc

router = APIRouter(route_class=TransactionRoute, include_in_schema=False)

BROWSER_COOKIE = "welfare_oidc"
COOKIE_PATH = "/login/oidc"
QueryText = Annotated[str | None, Query(max_length=2000)]

REFUSALS = {
    "unknown_provider": N_(
        "This sign-in option is not available. Sign in with your username and password, or ask "
        "your administrator."
    ),
    "provider_unavailable": N_(
        "Your company's sign-in service could not be reached. Try again in a few minutes, or "
        "sign in with your username and password."
    ),
    "bad_state": N_(
        "This sign-in has expired or was already used. Start again from the sign-in page."
    ),
    "access_denied": N_("The sign-in was cancelled or refused at your company's sign-in service."),
    "provider_error": N_("Your company's sign-in service reported a problem. Try again."),
    "bad_token": N_("The sign-in could not be verified. Start again from the sign-in page."),
    "email_unverified": N_(
        "Your company's sign-in service has not confirmed your e-mail address. Ask your IT team "
        "to verify it."
    ),
    "domain_not_allowed": N_("Your e-mail address is not one this sign-in option accepts."),
    "account_disabled": N_("Your account is deactivated. Ask your administrator."),
    "admin_local_only": N_("Administrators sign in with their username and password."),
    "outside_sites": N_(
        "This sign-in option does not cover every site you work at. Sign in with your username "
        "and password."
    ),
}


def _refused(request: Request, exc: oidc.SignInRefused) -> Response:
    language = request_language(request)
    response = render(
        request,
        "login_refused.html",
        {
            "title": gettext(language, "Company sign-in did not work"),
            "message": gettext(language, REFUSALS[exc.reason]),
            "reason": exc.reason,
        },
        status_code=exc.status_hint,
        language=language,
    )
    response.delete_cookie(BROWSER_COOKIE, path=COOKIE_PATH)
    return response


@router.get("/login/oidc/{provider_id}/start")
def start(
    request: Request,
    provider_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    next: QueryText = None,
    lang: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    try:
        started = oidc.begin_sign_in(
            session=session,
            settings=settings,
            provider_id=provider_id,
            next_path=safe_next(next),
            language=ui_language(lang),
        )
    except oidc.SignInRefused as exc:
        session.rollback()
        return _refused(request, exc)
    response = RedirectResponse(started.authorization_url, status_code=303)
    # Lax: the provider's redirect back is a top-level navigation, which carries it.
    response.set_cookie(
        BROWSER_COOKIE,
        started.browser_secret,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        max_age=int(oidc.SIGN_IN_TTL.total_seconds()),
        path=COOKIE_PATH,
    )
    return response


@router.get("/login/oidc/{provider_id}/callback")
def callback(
    request: Request,
    provider_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    state: QueryText = None,
    code: QueryText = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    try:
        done = oidc.complete_sign_in(
            session=session,
            settings=settings,
            provider_id=provider_id,
            state=state,
            code=code,
            error=error,
            browser_secret=request.cookies.get(BROWSER_COOKIE),
            client_addr=client_addr(request),
            user_agent=request.headers.get("user-agent"),
        )
    except oidc.SignInRefused as exc:
        session.rollback()  # the used-up state was committed already
        return _refused(request, exc)
    response = RedirectResponse(
        safe_next(done.next_path) or home_for(done.user.role), status_code=303
    )
    set_session_cookie(response, settings, done.token)
    response.delete_cookie(BROWSER_COOKIE, path=COOKIE_PATH)
    return response
