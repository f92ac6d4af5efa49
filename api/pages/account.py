"""Sign-in (with its two-factor step), sign-out and the user's own settings (UI language,
password, two-factor sign-in) as pages."""

from __future__ import annotations

import contextlib
import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

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
    CSRF_FIELD,
    LANGUAGE_COOKIE,
    LOGIN_CSRF_COOKIE,
    EnrollingPageUserDep,
    PageUser,
    PageUserDep,
    check_form_csrf,
    check_login_csrf,
    get_page_user,
    home_for,
    new_login_csrf,
    request_language,
    safe_next,
    viewer_timezone,
)
from api.pages.i18n import gettext, ui_language
from api.pages.rendering import render
from welfare.errors import Conflict, InvalidInput, NotAuthenticated, NotFound, Throttled
from welfare.identity import service as identity
from welfare.settings import Settings
from welfare.users import second_factor
from welfare.users import service as users
from welfare.users.models import UI_LANGUAGES, PasswordChange, ProfileUpdate

router = APIRouter(route_class=TransactionRoute, include_in_schema=False)

FormText = Annotated[str, Form(max_length=300)]
OptionalFormText = Annotated[str | None, Form(max_length=2000)]


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


@router.get("/")
def home(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    if not request.cookies.get(SESSION_COOKIE):
        return _see_other("/login")
    return _see_other(home_for(get_page_user(request, settings).role))


def _chosen_language(value: str | None) -> str | None:
    return ui_language(value)


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
    chosen = _chosen_language(request.query_params.get("lang")) or _chosen_language(chosen)
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


def _signed_in(settings: Settings, token: str, target: str) -> Response:
    response = _see_other(target)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        max_age=settings.session_ttl_hours * 3600,
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


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


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    username: FormText,
    password: FormText,
    csrf_token: Annotated[str | None, Form(alias=CSRF_FIELD, max_length=200)] = None,
    next: Annotated[str | None, Form(max_length=2000)] = None,
    lang: Annotated[str | None, Form(max_length=20)] = None,
) -> Response:
    check_login_csrf(request, csrf_token)
    chosen = _chosen_language(lang)
    language = chosen or request_language(request)
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
        message = gettext(language, "Too many failed attempts. Wait a few minutes and try again.")
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
    return _signed_in(settings, result.token, safe_next(next) or home_for(result.user.role))


@router.post("/login/code")
def login_code(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    pending: Annotated[str, Form(max_length=200)],
    otp: Annotated[str | None, Form(max_length=20)] = None,
    recovery_code: Annotated[str | None, Form(max_length=40)] = None,
    csrf_token: Annotated[str | None, Form(alias=CSRF_FIELD, max_length=200)] = None,
    next: Annotated[str | None, Form(max_length=2000)] = None,
    lang: Annotated[str | None, Form(max_length=20)] = None,
) -> Response:
    check_login_csrf(request, csrf_token)
    chosen = _chosen_language(lang)
    language = chosen or request_language(request)
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
        message = gettext(language, "Too many failed attempts. Wait a few minutes and try again.")
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
    return _signed_in(settings, token, safe_next(next) or home_for(user.role))


@router.post("/logout")
def logout(
    request: Request,
    session: SessionDep,
    page_user: EnrollingPageUserDep,
    csrf_token: Annotated[str | None, Form(alias=CSRF_FIELD, max_length=200)] = None,
    everywhere: Annotated[bool, Form()] = False,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    if everywhere:
        users.sign_out_everywhere(session=session, actor=page_user.actor)
    else:
        users.sign_out(session=session, actor=page_user.actor)
    # On a shared phone the next guard signs in with their PIN.
    response = _see_other("/login/pin" if quick_sign_in_pages.has_device(request) else "/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _account_page(
    request: Request,
    session: Session,
    settings: Settings,
    page_user: PageUser,
    *,
    message: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    own = users.list_own_sessions(session=session, settings=settings, actor=page_user.actor)
    return render(
        request,
        "account.html",
        {
            "message": message,
            "error": error,
            "sessions": own,
            "times_zone": viewer_timezone(session, page_user),
            "second_factor": second_factor.own_status(session=session, actor=page_user.actor),
        },
        status_code=status_code,
    )


@router.get("/account")
def account(
    request: Request, session: SessionDep, settings: SettingsDep, page_user: PageUserDep
) -> Response:
    return _account_page(request, session, settings, page_user)


@router.post("/account/sessions/{session_id}/revoke")
def revoke_session(
    session_id: uuid.UUID,
    session: SessionDep,
    page_user: PageUserDep,
    csrf_token: Annotated[str | None, Form(alias=CSRF_FIELD, max_length=200)] = None,
) -> Response:
    """Sign one of one's other devices out (a session already gone is no error here)."""
    check_form_csrf(page_user, csrf_token)
    with contextlib.suppress(NotFound):
        users.revoke_own_session(session=session, actor=page_user.actor, session_id=session_id)
    if session_id == page_user.actor.session_id:
        response = _see_other("/login")
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    return _see_other("/account?saved=session")


@router.post("/account/sessions/revoke-others")
def revoke_other_sessions(
    session: SessionDep,
    page_user: PageUserDep,
    csrf_token: Annotated[str | None, Form(alias=CSRF_FIELD, max_length=200)] = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    users.revoke_other_sessions(session=session, actor=page_user.actor)
    return _see_other("/account?saved=others")


@router.post("/account/language")
def change_language(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    page_user: PageUserDep,
    language: FormText,
    csrf_token: Annotated[str | None, Form(alias=CSRF_FIELD, max_length=200)] = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    if language not in UI_LANGUAGES:
        return _account_page(
            request,
            session,
            settings,
            page_user,
            error=gettext(page_user.language, "Choose one of the listed languages."),
            status_code=422,
        )
    users.update_profile(
        session=session, actor=page_user.actor, data=ProfileUpdate(language=language)
    )
    return _see_other("/account?saved=language")


@router.post("/account/password")
def change_password(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    page_user: PageUserDep,
    current_password: FormText,
    new_password: FormText,
    csrf_token: Annotated[str | None, Form(alias=CSRF_FIELD, max_length=200)] = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    language = page_user.language
    if len(new_password) < 10:
        error = gettext(language, "The new password needs at least 10 characters.")
        return _account_page(request, session, settings, page_user, error=error, status_code=422)
    try:
        users.change_password(
            session=session,
            settings=settings,
            actor=page_user.actor,
            data=PasswordChange(current_password=current_password, new_password=new_password),
        )
    except Throttled as exc:
        error = gettext(language, "Too many failed attempts. Wait a few minutes and try again.")
        response = _account_page(
            request, session, settings, page_user, error=error, status_code=429
        )
        response.headers["Retry-After"] = str(exc.retry_after_seconds)
        return response
    except InvalidInput as exc:
        if "new_password" in exc.loc:
            error = gettext(language, "The new password must differ from the current one.")
        else:
            error = gettext(language, "The current password is not right.")
        return _account_page(request, session, settings, page_user, error=error, status_code=422)
    return _see_other("/account?saved=password")


# --- two-factor sign-in -----------------------------------------------------------------------


def _two_factor_page(
    request: Request,
    session: Session,
    settings: Settings,
    page_user: PageUser,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    actor = page_user.actor
    return render(
        request,
        "account_two_factor.html",
        {
            "status": second_factor.own_status(session=session, actor=actor),
            "enrolment": second_factor.pending_enrolment(
                session=session, settings=settings, actor=actor
            ),
            "enrolment_only": actor.enrolment_only,
            "error": error,
        },
        status_code=status_code,
    )


def _code_error(
    request: Request,
    session: Session,
    settings: Settings,
    page_user: PageUser,
    exc: Exception,
) -> Response:
    """A wrong, used or throttled code on the two-factor page, in the user's words."""
    language = page_user.language
    if isinstance(exc, Throttled):
        error = gettext(language, "Too many failed attempts. Wait a few minutes and try again.")
        response = _two_factor_page(
            request, session, settings, page_user, error=error, status_code=429
        )
        response.headers["Retry-After"] = str(exc.retry_after_seconds)
        return response
    if isinstance(exc, Conflict):
        error = gettext(language, "That cannot be done now. Reload the page and look again.")
        if "requires" in exc.detail:
            error = gettext(language, "Your site requires two-factor sign-in.")
        return _two_factor_page(request, session, settings, page_user, error=error, status_code=409)
    error = gettext(language, "That code is not right. Try the newest code.")
    return _two_factor_page(request, session, settings, page_user, error=error, status_code=422)


def _recovery_codes_page(request: Request, page_user: PageUser, codes: list[str]) -> Response:
    response = render(
        request,
        "account_recovery_codes.html",
        {"codes": codes, "continue_to": home_for(page_user.role)},
    )
    response.headers["Cache-Control"] = "no-store"  # shown once: never from a cache
    return response


@router.get("/account/two-factor")
def two_factor(
    request: Request, session: SessionDep, settings: SettingsDep, page_user: EnrollingPageUserDep
) -> Response:
    return _two_factor_page(request, session, settings, page_user)


@router.post("/account/two-factor/start")
def two_factor_start(
    session: SessionDep,
    settings: SettingsDep,
    page_user: EnrollingPageUserDep,
    csrf_token: Annotated[str | None, Form(alias=CSRF_FIELD, max_length=200)] = None,
) -> Response:
    """A new secret to scan (again); nothing changes for sign-in until a code confirms it."""
    check_form_csrf(page_user, csrf_token)
    with contextlib.suppress(Conflict):  # already on: the page says so
        second_factor.start_enrolment(session=session, settings=settings, actor=page_user.actor)
    return _see_other("/account/two-factor")


@router.post("/account/two-factor/confirm")
def two_factor_confirm(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    page_user: EnrollingPageUserDep,
    code: Annotated[str, Form(max_length=20)],
    csrf_token: Annotated[str | None, Form(alias=CSRF_FIELD, max_length=200)] = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    try:
        codes = second_factor.confirm_enrolment(
            session=session, settings=settings, actor=page_user.actor, code=code
        )
    except (InvalidInput, Throttled, Conflict) as exc:
        return _code_error(request, session, settings, page_user, exc)
    return _recovery_codes_page(request, page_user, codes)


@router.post("/account/two-factor/recovery-codes")
def two_factor_recovery_codes(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    page_user: PageUserDep,
    code: Annotated[str, Form(max_length=20)],
    csrf_token: Annotated[str | None, Form(alias=CSRF_FIELD, max_length=200)] = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    try:
        codes = second_factor.regenerate_recovery_codes(
            session=session, settings=settings, actor=page_user.actor, code=code
        )
    except (InvalidInput, Throttled, Conflict) as exc:
        return _code_error(request, session, settings, page_user, exc)
    return _recovery_codes_page(request, page_user, codes)


@router.post("/account/two-factor/disable")
def two_factor_disable(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    page_user: PageUserDep,
    code: Annotated[str, Form(max_length=20)],
    csrf_token: Annotated[str | None, Form(alias=CSRF_FIELD, max_length=200)] = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    try:
        second_factor.disable_own(
            session=session, settings=settings, actor=page_user.actor, code=code
        )
    except (InvalidInput, Throttled, Conflict) as exc:
        return _code_error(request, session, settings, page_user, exc)
    return _see_other("/account?saved=two-factor-off")
