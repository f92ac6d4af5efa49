"""Passkeys: adding and removing one's own, and signing in with one.

The ceremonies are JSON calls from `static/passkeys.js`: `/account/passkeys/options` and
`/account/passkeys` (signed in, the session's CSRF token in the X-CSRF-Token header), and
`/login/passkey/options` and `/login/passkey` (signed out, the sign-in page's CSRF token there).
Their errors come back as `{"detail": ...}` in the reader's language, for the script to show."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from api.deps import CSRF_HEADER, SessionDep, SettingsDep, TransactionRoute, client_addr
from api.pages.deps import (
    LOGIN_CSRF_COOKIE,
    CsrfField,
    PageUserDep,
    check_form_csrf,
    check_login_csrf,
    home_for,
    remove_own,
    request_language,
    safe_next,
    start_session,
)
from api.pages.i18n import N_, gettext, ui_language
from api.pages.quick_sign_in import TOO_MANY
from api.pages.rendering import see_other
from welfare.errors import Throttled
from welfare.users import passkeys
from welfare.users.passkeys import PasskeyRefused

router = APIRouter(route_class=TransactionRoute, include_in_schema=False)


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
        words = TOO_MANY
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
    csrf_token: CsrfField = None,
) -> Response:
    """Remove one of one's passkeys (one already gone is no error here)."""
    remove_own(session, page_user, csrf_token, passkeys.remove_own_passkey, passkey_id=passkey_id)
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
    chosen = ui_language(body.lang)
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
    return start_session(response, settings, token)
