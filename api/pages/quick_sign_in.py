"""Quick sign-in with a PIN on a guards' shared phone: the sign-in page and the guard's setup."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlmodel import Session

from api.deps import SessionDep, SettingsDep, TransactionRoute, client_addr
from api.pages.deps import (
    LOGIN_CSRF_COOKIE,
    CsrfField,
    PageUser,
    PageUserDep,
    check_form_csrf,
    check_login_csrf,
    new_login_csrf,
    remove_own,
    request_language,
    start_session,
    viewer_timezone,
)
from api.pages.i18n import N_, gettext
from api.pages.rendering import render, see_other
from welfare.authz import Role
from welfare.errors import InvalidInput, NotAuthenticated, Throttled
from welfare.settings import Settings
from welfare.users import quick_sign_in
from welfare.users.models import PinSetup

router = APIRouter(route_class=TransactionRoute, include_in_schema=False)

# The shared phone's token: long-lived (browsers keep a cookie at most 400 days), sent only to
# this service, never readable by scripts.
DEVICE_COOKIE = "welfare_device"
DEVICE_COOKIE_DAYS = 400
PinText = Annotated[str, Form(max_length=20)]

WRONG_PIN = N_("Wrong PIN. %(tries)s more tries, then this PIN stops working.")
PIN_LOCKED = N_("Too many wrong PINs: this PIN no longer works. Sign in with your password.")
NOT_SET_UP = N_("Quick sign-in is not set up on this phone. Sign in with your password.")
TOO_MANY = N_("Too many failed attempts. Wait a few minutes and try again.")
PIN_RULES = N_("The PIN must be 6 to 8 digits, without repeats or runs such as 123456.")
PIN_MISMATCH = N_("The two PINs are not the same.")
WRONG_PASSWORD = N_("The current password is not right.")
GUARDS_ONLY = N_("Quick sign-in with a PIN is for guards on shared phones.")


def has_device(request: Request) -> bool:
    """Whether this browser was set up as a shared phone (the sign-in page offers the PIN)."""
    return bool(request.cookies.get(DEVICE_COOKIE))


def _pin_page(
    request: Request,
    session: Session,
    *,
    error: str | None = None,
    status_code: int = 200,
    chosen: uuid.UUID | None = None,
) -> Response:
    guards = quick_sign_in.guards_on_device(session, request.cookies.get(DEVICE_COOKIE))
    if not guards and error is None:
        return see_other("/login")
    token = new_login_csrf()
    response = render(
        request,
        "quick_sign_in.html",
        {
            "login_csrf": token,
            "guards": [(pin.id, user.display_name) for pin, user in guards],
            "chosen": chosen or (guards[0][0].id if len(guards) == 1 else None),
            "error": error,
        },
        status_code=status_code,
        language=request_language(request),
    )
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/login")
    return response


@router.get("/login/pin")
def pin_form(request: Request, session: SessionDep) -> Response:
    return _pin_page(request, session)


@router.post("/login/pin")
def pin_sign_in(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    pin_id: Annotated[uuid.UUID, Form()],
    pin: PinText,
    csrf_token: CsrfField = None,
) -> Response:
    check_login_csrf(request, csrf_token)
    language = request_language(request)
    try:
        token, _auth_session, _user = quick_sign_in.sign_in(
            session=session,
            settings=settings,
            device_token=request.cookies.get(DEVICE_COOKIE),
            pin_id=pin_id,
            pin=pin,
            client_addr=client_addr(request),
            user_agent=request.headers.get("user-agent"),
        )
    except Throttled:
        error = gettext(language, TOO_MANY)
        return _pin_page(request, session, error=error, status_code=429, chosen=pin_id)
    except quick_sign_in.WrongPin as exc:
        if exc.tries_left == 0:
            return _pin_page(request, session, error=gettext(language, PIN_LOCKED), status_code=401)
        error = gettext(language, WRONG_PIN) % {"tries": exc.tries_left}
        return _pin_page(request, session, error=error, status_code=401, chosen=pin_id)
    except NotAuthenticated:
        return _pin_page(request, session, error=gettext(language, NOT_SET_UP), status_code=401)
    return start_session(see_other("/guard"), settings, token)


def _setup_page(
    request: Request,
    session: Session,
    page_user: PageUser,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    pins = quick_sign_in.list_own(
        session=session, actor=page_user.actor, device_token=request.cookies.get(DEVICE_COOKIE)
    )
    return render(
        request,
        "quick_sign_in_setup.html",
        {
            "pins": pins,
            "error": error,
            "is_guard": page_user.role is Role.guard,
            "on_this_phone": any(p.this_device for p in pins),
            "lock_after": quick_sign_in.PIN_LOCK_AFTER,
            "times_zone": viewer_timezone(session, page_user),
        },
        status_code=status_code,
    )


@router.get("/account/quick-sign-in")
def setup_form(request: Request, session: SessionDep, page_user: PageUserDep) -> Response:
    return _setup_page(request, session, page_user)


@router.post("/account/quick-sign-in")
def set_up(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    page_user: PageUserDep,
    pin: PinText,
    pin_again: PinText,
    current_password: Annotated[str, Form(max_length=256)],
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    language = page_user.language

    def again(message: str, status_code: int) -> Response:
        error = gettext(language, message)
        return _setup_page(request, session, page_user, error=error, status_code=status_code)

    if page_user.role is not Role.guard:
        return again(GUARDS_ONLY, 403)
    if pin != pin_again:
        return again(PIN_MISMATCH, 422)
    try:
        data = PinSetup(pin=pin, current_password=current_password)
        device_token = quick_sign_in.set_up(
            session=session,
            settings=settings,
            actor=page_user.actor,
            data=data,
            device_token=request.cookies.get(DEVICE_COOKIE),
            user_agent=request.headers.get("user-agent"),
        )
    except Throttled:
        return again(TOO_MANY, 429)
    except (ValidationError, InvalidInput) as exc:
        wrong_password = (
            isinstance(exc, InvalidInput) and bool(exc.loc) and exc.loc[-1] == "current_password"
        )
        return again(WRONG_PASSWORD if wrong_password else PIN_RULES, 422)
    response = see_other("/account/quick-sign-in?saved=1")
    _remember_device(response, settings, device_token)
    return response


def _remember_device(response: Response, settings: Settings, device_token: str) -> None:
    response.set_cookie(
        DEVICE_COOKIE,
        device_token,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        max_age=DEVICE_COOKIE_DAYS * 86400,
        path="/",
    )


@router.post("/account/quick-sign-in/{pin_id}/remove")
def remove(
    pin_id: uuid.UUID,
    session: SessionDep,
    page_user: PageUserDep,
    csrf_token: CsrfField = None,
) -> Response:
    """Remove one of one's PINs (one already gone is no error here)."""
    remove_own(session, page_user, csrf_token, quick_sign_in.revoke_own, pin_id=pin_id)
    return see_other("/account/quick-sign-in?removed=1")
