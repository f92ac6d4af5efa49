"""Signing in with a password (and its two-factor step), and signing out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from api.deps import (
    SESSION_COOKIE,
    SessionDep,
    SettingsDep,
    TransactionRoute,
    auth_session,
    client_addr,
)
from api.pages import quick_sign_in as quick_sign_in_pages
from api.pages.deps import (
    LANGUAGE_COOKIE,
    LOGIN_CSRF_COOKIE,
    CsrfField,
    EnrollingPageUserDep,
    check_form_csrf,
    check_login_csrf,
    get_page_user,
    home_for,
    new_login_csrf,
    request_language,
    safe_next,
    start_session,
)
from api.pages.i18n import gettext, ui_language
from api.pages.quick_sign_in import TOO_MANY
from api.pages.rendering import render, see_other
from welfare.errors import NotAuthenticated, Throttled
from welfare.identity import service as identity
from welfare.users import passkeys
from welfare.users import service as users

router = APIRouter(route_class=TransactionRoute, include_in_schema=False)

FormText = Annotated[str, Form(max_length=300)]
NextField = Annotated[str | None, Form(max_length=2000)]
LangField = Annotated[str | None, Form(max_length=20)]


@router.get("/")
def home(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    if not request.cookies.get(SESSION_COOKIE):
        return see_other("/login")
    return see_other(home_for(get_page_user(request, settings).role))


def _login_page(
    request: Request,
    *,
    status_code: int = 200,
    error: str | None = None,
    username: str = "",
    chosen: str | None = None,
) -> Response:
    """The sign-in form; `chosen` is a language picked on this page (?lang=), which the form
    carries so that signing in makes it the user's language."""
    chosen = ui_language(request.query_params.get("lang")) or ui_language(chosen)
    language = chosen or request_language(request)
    token = new_login_csrf()
    with auth_session(request) as reader:  # a short read of its own, as for the session cookie
        buttons = identity.login_buttons(session=reader)
    response = render(
        request,
        "login.html",
        {
            "login_csrf": token,
            "next": safe_next(request.query_params.get("next")) or "",
            "error": error,
            "username": username,
            "chosen_language": chosen or "",
            "shared_phone": quick_sign_in_pages.has_device(request),
            "providers": buttons,
            "passkeys_available": passkeys.relying_party(request.app.state.settings) is not None,
        },
        status_code=status_code,
        language=language,
    )
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/login")
    if chosen:
        response.set_cookie(LANGUAGE_COOKIE, chosen, samesite="lax")
    return response


@router.get("/login")
def login_form(request: Request) -> Response:
    return _login_page(request)


def _code_page(
    request: Request,
    *,
    pending: str,
    next_path: str | None,
    chosen: str | None,
    status_code: int = 200,
    error: str | None = None,
    recovery: bool = False,
) -> Response:
    """The second step of signing in: the code from the authenticator app, or a recovery code.
    The pending token stands for the password already checked; no session exists yet."""
    language = chosen or request_language(request)
    token = new_login_csrf()
    response = render(
        request,
        "login_code.html",
        {
            "login_csrf": token,
            "pending": pending,
            "next": safe_next(next_path) or "",
            "error": error,
            "chosen_language": chosen or "",
            "recovery": recovery,
        },
        status_code=status_code,
        language=language,
    )
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/login")
    response.headers["Cache-Control"] = "no-store"
    return response


def _form_language(
    request: Request, csrf_token: str | None, lang: str | None
) -> tuple[str | None, str]:
    """A sign-in form's CSRF token checked; the language chosen on it (if any) and the one to
    answer in."""
    check_login_csrf(request, csrf_token)
    chosen = ui_language(lang)
    return chosen, chosen or request_language(request)


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    username: FormText,
    password: FormText,
    csrf_token: CsrfField = None,
    next: NextField = None,
    lang: LangField = None,
) -> Response:
    chosen, language = _form_language(request, csrf_token, lang)
    try:
        result = users.begin_sign_in(
            session=session,
            settings=settings,
            username=username,
            password=password,
            client_addr=client_addr(request),
            user_agent=request.headers.get("user-agent"),
            language=chosen,
        )
    except Throttled:
        message = gettext(language, TOO_MANY)
        return _login_page(
            request, status_code=429, error=message, username=username, chosen=chosen
        )
    except NotAuthenticated:
        message = gettext(language, "Wrong username or password.")
        return _login_page(
            request, status_code=401, error=message, username=username, chosen=chosen
        )
    if result.pending_token is not None:
        return _code_page(request, pending=result.pending_token, next_path=next, chosen=chosen)
    assert result.token is not None
    target = safe_next(next) or home_for(result.user.role)
    return start_session(see_other(target), settings, result.token)


@router.post("/login/code")
def login_code(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    pending: Annotated[str, Form(max_length=200)],
    otp: Annotated[str | None, Form(max_length=20)] = None,
    recovery_code: Annotated[str | None, Form(max_length=40)] = None,
    csrf_token: CsrfField = None,
    next: NextField = None,
    lang: LangField = None,
) -> Response:
    chosen, language = _form_language(request, csrf_token, lang)
    recovery = bool(recovery_code and not otp)
    try:
        token, _auth_session, user = users.complete_sign_in(
            session=session,
            settings=settings,
            pending_token=pending,
            client_addr=client_addr(request),
            user_agent=request.headers.get("user-agent"),
            language=chosen,
            otp=otp or None,
            recovery_code=recovery_code or None,
        )
    except Throttled:
        message = gettext(language, TOO_MANY)
        return _code_page(
            request,
            pending=pending,
            next_path=next,
            chosen=chosen,
            status_code=429,
            error=message,
            recovery=recovery,
        )
    except NotAuthenticated as exc:
        if exc.detail == users.SIGN_IN_EXPIRED:
            message = gettext(language, "That sign-in expired. Enter your password again.")
            return _login_page(request, status_code=401, error=message, chosen=chosen)
        message = gettext(language, "That code is not right. Try the newest code.")
        return _code_page(
            request,
            pending=pending,
            next_path=next,
            chosen=chosen,
            status_code=401,
            error=message,
            recovery=recovery,
        )
    return start_session(see_other(safe_next(next) or home_for(user.role)), settings, token)


@router.post("/logout")
def logout(
    request: Request,
    session: SessionDep,
    page_user: EnrollingPageUserDep,
    csrf_token: CsrfField = None,
    everywhere: Annotated[bool, Form()] = False,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    if everywhere:
        users.sign_out_everywhere(session=session, actor=page_user.actor)
    else:
        users.sign_out(session=session, actor=page_user.actor)
    # On a shared phone the next guard signs in with their PIN.
    response = see_other("/login/pin" if quick_sign_in_pages.has_device(request) else "/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
