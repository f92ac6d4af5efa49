"""Two-factor sign-in on one's account: setting it up, new recovery codes, turning it off."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlmodel import Session

from api.deps import SessionDep, SettingsDep, TransactionRoute
from api.pages.deps import (
    CsrfField,
    EnrollingPageUserDep,
    PageUser,
    PageUserDep,
    check_form_csrf,
    home_for,
)
from api.pages.i18n import gettext
from api.pages.quick_sign_in import TOO_MANY
from api.pages.rendering import render, see_other
from welfare.errors import Conflict, InvalidInput, Throttled
from welfare.settings import Settings
from welfare.users import second_factor

router = APIRouter(route_class=TransactionRoute, include_in_schema=False)

T = TypeVar("T")


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
        error = gettext(language, TOO_MANY)
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


@dataclass(frozen=True)
class CodeForm:
    """The code typed on the two-factor page (to confirm, renew codes or turn it off), with
    the request it came in."""

    request: Request
    settings: Settings
    code: str
    csrf_token: str | None


async def _code_form(
    request: Request,
    settings: SettingsDep,
    code: Annotated[str, Form(max_length=20)],
    csrf_token: CsrfField = None,
) -> CodeForm:
    return CodeForm(request=request, settings=settings, code=code, csrf_token=csrf_token)


CodeFormDep = Annotated[CodeForm, Depends(_code_form)]


def _with_code(
    session: Session, page_user: PageUser, form: CodeForm, action: Callable[..., T]
) -> T | Response:
    """`action` done with the typed code, or the two-factor page saying what was wrong."""
    check_form_csrf(page_user, form.csrf_token)
    try:
        return action(
            session=session, settings=form.settings, actor=page_user.actor, code=form.code
        )
    except (InvalidInput, Throttled, Conflict) as exc:
        return _code_error(form.request, session, form.settings, page_user, exc)


def _recovery_codes_page(request: Request, page_user: PageUser, codes: list[str]) -> Response:
    response = render(
        request,
        "account_recovery_codes.html",
        {"codes": codes, "continue_to": home_for(page_user.role)},
    )
    response.headers["Cache-Control"] = "no-store"  # shown once: never from a cache
    return response


def _new_recovery_codes(
    session: Session, page_user: PageUser, form: CodeForm, action: Callable[..., list[str]]
) -> Response:
    """Two-factor turned on, or new recovery codes: the codes, shown once."""
    codes = _with_code(session, page_user, form, action)
    if isinstance(codes, Response):
        return codes
    return _recovery_codes_page(form.request, page_user, codes)


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
    csrf_token: CsrfField = None,
) -> Response:
    """A new secret to scan (again); nothing changes for sign-in until a code confirms it."""
    check_form_csrf(page_user, csrf_token)
    with contextlib.suppress(Conflict):  # already on: the page says so
        second_factor.start_enrolment(session=session, settings=settings, actor=page_user.actor)
    return see_other("/account/two-factor")


@router.post("/account/two-factor/confirm")
def two_factor_confirm(
    session: SessionDep, page_user: EnrollingPageUserDep, form: CodeFormDep
) -> Response:
    return _new_recovery_codes(session, page_user, form, second_factor.confirm_enrolment)


@router.post("/account/two-factor/recovery-codes")
def two_factor_recovery_codes(
    session: SessionDep, page_user: PageUserDep, form: CodeFormDep
) -> Response:
    return _new_recovery_codes(session, page_user, form, second_factor.regenerate_recovery_codes)


@router.post("/account/two-factor/disable")
def two_factor_disable(session: SessionDep, page_user: PageUserDep, form: CodeFormDep) -> Response:
    done = _with_code(session, page_user, form, second_factor.disable_own)
    return done if isinstance(done, Response) else see_other("/account?saved=two-factor-off")
