"""Sign-in (with its two-factor step), sign-out and the user's own settings (UI language,
password, two-factor sign-in, passkeys) as pages.

The passkey ceremonies are JSON calls from `static/passkeys.js`: `/account/passkeys/options` and
`/account/passkeys` (signed in, the session's CSRF token in the X-CSRF-Token header), and
`/login/passkey/options` and `/login/passkey` (signed out, the sign-in page's CSRF token there).
Their errors come back as `{"detail": ...}` in the reader's language, for the script to show."""

from __future__ import annotations

import contextlib
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlmodel import Session

from api.deps import (
    CSRF_HEADER,
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
from api.pages.i18n import N_, gettext, ui_language
from api.pages.rendering import render, see_other
from welfare.errors import Conflict, InvalidInput, NotAuthenticated, NotFound, Throttled
from welfare.identity import service as identity
from welfare.settings import Settings
from welfare.users import passkeys, second_factor
from welfare.users import service as users
from welfare.users.models import UI_LANGUAGES, PasswordChange, ProfileUpdate
from welfare.users.passkeys import PasskeyRefused

router = APIRouter(route_class=TransactionRoute, include_in_schema=False)

FormText = Annotated[str, Form(max_length=300)]
OptionalFormText = Annotated[str | None, Form(max_length=2000)]


@router.get("/")
def home(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    if not request.cookies.get(SESSION_COOKIE):
        return see_other("/login")
    return see_other(home_for(get_page_user(request, settings).role))


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


def _signed_in(settings: Settings, token: str, target: str) -> Response:
    return _session_cookie(see_other(target), settings, token)


def _session_cookie(response: Response, settings: Settings, token: str) -> Response:
    """The session cookie of a sign-in (a password's, a code's or a passkey's), the same for all."""
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
    response = see_other("/login/pin" if quick_sign_in_pages.has_device(request) else "/login")
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
    actor = page_user.actor
    return render(
        request,
        "account.html",
        {
            "message": message,
            "error": error,
            "sessions": own,
            "times_zone": viewer_timezone(session, page_user),
            "second_factor": second_factor.own_status(session=session, actor=page_user.actor),
            "passkeys": passkeys.list_own_passkeys(session=session, actor=actor),
            "passkeys_available": passkeys.relying_party(settings) is not None,
            "passkey_needs_password": passkeys.needs_password(session=session, actor=actor),
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
        response = see_other("/login")
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    return see_other("/account?saved=session")


@router.post("/account/sessions/revoke-others")
def revoke_other_sessions(
    session: SessionDep,
    page_user: PageUserDep,
    csrf_token: Annotated[str | None, Form(alias=CSRF_FIELD, max_length=200)] = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    users.revoke_other_sessions(session=session, actor=page_user.actor)
    return see_other("/account?saved=others")


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
    return see_other("/account?saved=language")


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
    return see_other("/account?saved=password")


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
    return see_other("/account/two-factor")


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
    return see_other("/account?saved=two-factor-off")


# --- passkeys -----------------------------------------------------------------------------------

# What each refusal says to the person (PasskeyRefused.reason); the service's words are English.
PASSKEY_WORDS = {
    "unavailable": N_("Passkeys cannot be used at this address. Ask your administrator."),
    "password": N_("Enter your current password to add a passkey."),
    "expired": N_("That took too long or was already used. Try again."),
    "malformed": N_("The browser did not send a passkey. Try again."),
    "invalid": N_("The passkey could not be verified."),
    "unknown": N_("This passkey is not registered here. It may have been removed."),
    "cloned": N_(
        "This passkey may have been copied, so it was refused. "
        "Remove it from your account and add a new one."
    ),
    "disabled": N_("This account is disabled."),
    "duplicate": N_("This passkey is already registered."),
    "too_many": N_("You have as many passkeys as allowed. Remove one first."),
}


class PasskeyOptionsRequest(BaseModel):
    password: str | None = Field(default=None, max_length=256)


class PasskeyRegistration(BaseModel):
    name: str | None = Field(default=None, max_length=200)
    credential: dict[str, Any]


class PasskeySignIn(BaseModel):
    credential: dict[str, Any]
    next: str | None = Field(default=None, max_length=2000)
    lang: str | None = Field(default=None, max_length=20)


def _json_options(options: str) -> Response:
    return Response(options, media_type="application/json", headers={"Cache-Control": "no-store"})


def _passkey_error(language: str, exc: PasskeyRefused | Throttled) -> JSONResponse:
    """A refusal as `{"detail"}` in the reader's words, with the status the domain chose."""
    headers = {"Cache-Control": "no-store"}
    if isinstance(exc, Throttled):
        words = N_("Too many failed attempts. Wait a few minutes and try again.")
        headers["Retry-After"] = str(exc.retry_after_seconds)
    else:
        words = PASSKEY_WORDS.get(exc.reason, PASSKEY_WORDS["invalid"])
    return JSONResponse(
        {"detail": gettext(language, words)}, status_code=exc.status_hint, headers=headers
    )


def _header_csrf(request: Request) -> str | None:
    return request.headers.get(CSRF_HEADER)


@router.post("/account/passkeys/options")
def passkey_registration_options(
    request: Request,
    body: PasskeyOptionsRequest,
    session: SessionDep,
    settings: SettingsDep,
    page_user: PageUserDep,
) -> Response:
    """Start adding a passkey: the options for `navigator.credentials.create`."""
    check_form_csrf(page_user, _header_csrf(request))
    try:
        options = passkeys.registration_options(
            session=session, settings=settings, actor=page_user.actor, password=body.password
        )
    except (PasskeyRefused, Throttled) as exc:
        return _passkey_error(page_user.language, exc)
    return _json_options(options)


@router.post("/account/passkeys", status_code=201)
def passkey_register(
    request: Request,
    body: PasskeyRegistration,
    session: SessionDep,
    settings: SettingsDep,
    page_user: PageUserDep,
) -> Response:
    """Finish adding a passkey with the browser's answer."""
    check_form_csrf(page_user, _header_csrf(request))
    try:
        passkey = passkeys.register_passkey(
            session=session,
            settings=settings,
            actor=page_user.actor,
            credential=body.credential,
            name=body.name,
            user_agent=request.headers.get("user-agent"),
        )
    except PasskeyRefused as exc:
        return _passkey_error(page_user.language, exc)
    public = passkeys.to_public(passkey)
    return JSONResponse(public.model_dump(mode="json"), status_code=201)


@router.post("/account/passkeys/{passkey_id}/remove")
def passkey_remove(
    passkey_id: uuid.UUID,
    session: SessionDep,
    page_user: PageUserDep,
    csrf_token: Annotated[str | None, Form(alias=CSRF_FIELD, max_length=200)] = None,
) -> Response:
    """Remove one of one's passkeys (one already gone is no error here)."""
    check_form_csrf(page_user, csrf_token)
    with contextlib.suppress(NotFound):
        passkeys.remove_own_passkey(session=session, actor=page_user.actor, passkey_id=passkey_id)
    return see_other("/account?saved=passkey-removed#passkeys")


@router.post("/login/passkey/options")
def passkey_sign_in_options(
    request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    """Start a passkey sign-in: the options for `navigator.credentials.get`, bound to this
    browser's sign-in page (its CSRF cookie)."""
    check_login_csrf(request, _header_csrf(request))
    try:
        options = passkeys.sign_in_options(
            session=session,
            settings=settings,
            login_cookie=request.cookies.get(LOGIN_CSRF_COOKIE, ""),
            client_addr=client_addr(request),
        )
    except PasskeyRefused as exc:
        return _passkey_error(request_language(request), exc)
    return _json_options(options)


@router.post("/login/passkey")
def passkey_sign_in(
    request: Request, body: PasskeySignIn, session: SessionDep, settings: SettingsDep
) -> Response:
    """Finish a passkey sign-in: the same session cookie as the password's, and where to go."""
    check_login_csrf(request, _header_csrf(request))
    chosen = _chosen_language(body.lang)
    try:
        token, _auth_session, user = passkeys.authenticate(
            session=session,
            settings=settings,
            credential=body.credential,
            login_cookie=request.cookies.get(LOGIN_CSRF_COOKIE, ""),
            client_addr=client_addr(request),
            user_agent=request.headers.get("user-agent"),
            language=chosen,
        )
    except (PasskeyRefused, Throttled) as exc:
        return _passkey_error(chosen or request_language(request), exc)
    target = safe_next(body.next) or home_for(user.role)
    response = JSONResponse({"redirect": target}, headers={"Cache-Control": "no-store"})
    return _session_cookie(response, settings, token)
