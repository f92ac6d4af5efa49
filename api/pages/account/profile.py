"""The account page: one's own sessions, UI language and password."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session

from api.deps import SESSION_COOKIE, SessionDep, SettingsDep, TransactionRoute
from api.pages.account.sign_in import FormText
from api.pages.deps import (
    CsrfField,
    PageUser,
    PageUserDep,
    check_form_csrf,
    remove_own,
    viewer_timezone,
)
from api.pages.i18n import gettext
from api.pages.quick_sign_in import TOO_MANY
from api.pages.rendering import render, see_other
from welfare.errors import InvalidInput, Throttled
from welfare.settings import Settings
from welfare.users import passkeys, second_factor
from welfare.users import service as users
from welfare.users.models import UI_LANGUAGES, PasswordChange, ProfileUpdate

router = APIRouter(route_class=TransactionRoute, include_in_schema=False)


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
    csrf_token: CsrfField = None,
) -> Response:
    """Sign one of one's other devices out (a session already gone is no error here)."""
    remove_own(session, page_user, csrf_token, users.revoke_own_session, session_id=session_id)
    if session_id == page_user.actor.session_id:
        response = see_other("/login")
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    return see_other("/account?saved=session")


@router.post("/account/sessions/revoke-others")
def revoke_other_sessions(
    session: SessionDep,
    page_user: PageUserDep,
    csrf_token: CsrfField = None,
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
    csrf_token: CsrfField = None,
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
    csrf_token: CsrfField = None,
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
        error = gettext(language, TOO_MANY)
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
