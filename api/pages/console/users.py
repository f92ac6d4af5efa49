"""Console pages for admins: the users, their sessions, quick sign-in PINs and second factor."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Mapping
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlmodel import Session

from api.deps import SessionDep
from api.pages.console.fields import PAGE_SIZE, ROLE_LABELS, all_sites, parse_site_ids
from api.pages.console.frame import ConsoleUserDep, CsrfField, console_render
from api.pages.deps import PageUser, check_form_csrf, t, viewer_timezone
from api.pages.form_errors import FormError, PageRoute
from api.pages.forms import refused_words, typed_values
from api.pages.i18n import N_
from api.pages.rendering import see_other
from welfare.authz import Permission, Role, require
from welfare.errors import Conflict, InvalidInput, NotFound
from welfare.users import quick_sign_in, second_factor
from welfare.users import service as users
from welfare.users.models import UI_LANGUAGES, UserCreate, UserUpdate

router = APIRouter(route_class=PageRoute, prefix="/console", include_in_schema=False)

USER_FIELDS = {
    "username": N_("Username: 2-63 lower-case letters, digits, '.', '_' or '-'."),
    "display_name": N_("Name shown to others: 1-200 characters."),
    "password": N_("Password: at least 10 characters."),
    "phone": N_("Phone: a valid number for the user's site."),
    "email": N_("E-mail: an address such as name@example.com, or blank."),
    "role": N_("Choose a role."),
    "site_ids": N_("Choose the sites."),
    "language": N_("Choose a language."),
}


DisplayName = Annotated[str, Form(max_length=200)]
RoleField = Annotated[str, Form(max_length=20)]
LanguageField = Annotated[str, Form(max_length=16)]
PhoneField = Annotated[str, Form(max_length=40)]
EmailField = Annotated[str, Form(max_length=300)]
Password = Annotated[str, Form(max_length=256)]
SiteIds = Annotated[list[str] | None, Form(max_length=500)]
# What both the new-user form and a user's own form set.
PROFILE_FIELDS = ("display_name", "role", "language", "phone", "email", "site_ids")


def _typed(given: Mapping[str, Any], *fields: str) -> dict[str, Any]:
    typed = typed_values(given, fields)
    return typed | {"site_ids": typed["site_ids"] or []}


def _profile_data(typed: dict[str, Any]) -> dict[str, Any]:
    return {
        "display_name": typed["display_name"].strip(),
        "role": typed["role"],
        "language": typed["language"],
        "phone": typed["phone"].strip() or None,
        "email": typed["email"].strip() or None,
        "site_ids": parse_site_ids(typed["site_ids"]),
    }


def _taken(
    page_user: PageUser, exc: Conflict, redraw: Callable[..., Response], otherwise: str
) -> FormError:
    """A refused new or changed user: the e-mail address taken, or `otherwise`."""
    if exc.extra.get("field") == "email":
        otherwise = N_("That e-mail address belongs to another user.")
    return FormError(redraw, errors=[t(page_user, otherwise)], status_code=409)


# --- users --------------------------------------------------------------------------------------


def _users_page(
    request: Request,
    session: Session,
    page_user: PageUser,
    *,
    offset: int = 0,
    form: dict[str, Any] | None = None,
    errors: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    rows, total = users.list_users(
        session=session, actor=page_user.actor, limit=PAGE_SIZE, offset=offset
    )
    site_list = all_sites(session, page_user)
    names = {s.id: s.name for s in site_list}
    return console_render(
        request,
        page_user,
        "console/users.html",
        {
            "rows": [
                {"user": u, "sites": [names.get(i, "?") for i in users.site_ids_of(session, u.id)]}
                for u in rows
            ],
            "total": total,
            "offset": offset,
            "page_size": PAGE_SIZE,
            "sites": site_list,
            "roles": [(r.value, t(page_user, ROLE_LABELS[r.value])) for r in Role],
            "role_labels": ROLE_LABELS,
            "languages": UI_LANGUAGES,
            "form": form or {},
            "errors": errors or [],
        },
        status_code=status_code,
        section="/console/users",
    )


@router.get("/users")
def users_list(
    request: Request,
    session: SessionDep,
    page_user: ConsoleUserDep,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    return _users_page(request, session, page_user, offset=offset)


@router.post("/users")
def user_create(
    request: Request,
    session: SessionDep,
    page_user: ConsoleUserDep,
    username: Annotated[str, Form(max_length=63)] = "",
    display_name: DisplayName = "",
    role: RoleField = "",
    language: LanguageField = "en",
    phone: PhoneField = "",
    email: EmailField = "",
    password: Password = "",
    site_ids: SiteIds = None,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    require(page_user.actor, Permission.users_manage)
    typed = _typed(locals(), "username", *PROFILE_FIELDS)  # the password is never sent back
    redraw = partial(_users_page, request, session, page_user, form=typed)
    try:
        user = users.create_user(
            session=session,
            actor=page_user.actor,
            data=UserCreate(username=username.strip(), **_profile_data(typed), password=password),
        )
    except (ValidationError, InvalidInput) as exc:
        raise FormError(redraw, errors=refused_words(page_user.language, exc, USER_FIELDS)) from exc
    except Conflict as exc:
        raise _taken(page_user, exc, redraw, N_("That username is taken.")) from exc
    return see_other(f"/console/users/{user.id}?done=created")


def _user_page(
    request: Request,
    session: Session,
    page_user: PageUser,
    user_id: uuid.UUID,
    *,
    errors: list[str] | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    user = users.get_user(session=session, actor=page_user.actor, user_id=user_id)
    current = {
        "display_name": user.display_name,
        "role": user.role.value,
        "language": user.language,
        "phone": user.phone or "",
        "email": user.email or "",
        "site_ids": [str(i) for i in users.site_ids_of(session, user.id)],
        "is_active": user.is_active,
    }
    return console_render(
        request,
        page_user,
        "console/user.html",
        {
            "user": user,
            "form": form or current,
            "errors": errors or [],
            "sites": all_sites(session, page_user),
            "roles": [(r.value, t(page_user, ROLE_LABELS[r.value])) for r in Role],
            "languages": UI_LANGUAGES,
            "is_self": str(user.id) == page_user.user_id,
            "sessions": users.admin_list_sessions(
                session=session,
                settings=request.app.state.settings,
                actor=page_user.actor,
                user_id=user.id,
            ),
            "revoke_base": f"/console/users/{user.id}/sessions/",
            "pins": quick_sign_in.admin_list(
                session=session, actor=page_user.actor, user_id=user.id
            ),
            # The admin reads times in their own timezone, whoever the user is.
            "times_zone": viewer_timezone(session, page_user),
            "second_factor": second_factor.status_of(session, user),
        },
        status_code=status_code,
        section="/console/users",
    )


@router.get("/users/{user_id}")
def user_view(
    request: Request, user_id: uuid.UUID, session: SessionDep, page_user: ConsoleUserDep
) -> Response:
    return _user_page(request, session, page_user, user_id)


@router.post("/users/{user_id}")
def user_update(
    request: Request,
    user_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
    display_name: DisplayName = "",
    role: RoleField = "",
    language: LanguageField = "en",
    phone: PhoneField = "",
    email: EmailField = "",
    site_ids: SiteIds = None,
    is_active: Annotated[bool, Form()] = False,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    typed = _typed(locals(), *PROFILE_FIELDS, "is_active")
    redraw = partial(_user_page, request, session, page_user, user_id, form=typed)
    try:
        users.update_user(
            session=session,
            actor=page_user.actor,
            user_id=user_id,
            data=UserUpdate(**_profile_data(typed), is_active=is_active),
        )
    except (ValidationError, InvalidInput) as exc:
        raise FormError(redraw, errors=refused_words(page_user.language, exc, USER_FIELDS)) from exc
    except Conflict as exc:
        otherwise = N_("You cannot demote or deactivate yourself; ask another admin.")
        raise _taken(page_user, exc, redraw, otherwise) from exc
    return see_other(f"/console/users/{user_id}?done=saved")


@router.post("/users/{user_id}/password")
def user_password(
    request: Request,
    user_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
    password: Password = "",
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    try:
        users.update_user(
            session=session,
            actor=page_user.actor,
            user_id=user_id,
            data=UserUpdate(password=password),
        )
    except ValidationError as exc:
        redraw = partial(_user_page, request, session, page_user, user_id)
        raise FormError(redraw, errors=[t(page_user, USER_FIELDS["password"])]) from exc
    return see_other(f"/console/users/{user_id}?done=password")


@router.post("/users/{user_id}/sessions")
def user_sessions(
    user_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    count = users.admin_revoke_sessions(session=session, actor=page_user.actor, user_id=user_id)
    return see_other(f"/console/users/{user_id}?done=sessions&count={count}")


@router.post("/users/{user_id}/second-factor/reset")
def user_second_factor_reset(
    user_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    second_factor.admin_reset(session=session, actor=page_user.actor, user_id=user_id)
    return see_other(f"/console/users/{user_id}?done=second-factor")


@router.post("/users/{user_id}/sessions/{session_id}/revoke")
def user_session_revoke(
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
    csrf_token: CsrfField = None,
) -> Response:
    """Sign one session of the user out (one already gone is no error: the list was old)."""
    check_form_csrf(page_user, csrf_token)
    with contextlib.suppress(NotFound):
        users.admin_revoke_session(
            session=session, actor=page_user.actor, user_id=user_id, session_id=session_id
        )
    return see_other(f"/console/users/{user_id}?done=session")


@router.post("/users/{user_id}/quick-sign-in/revoke")
def user_pins_revoke(
    user_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    count = quick_sign_in.admin_revoke_all(session=session, actor=page_user.actor, user_id=user_id)
    return see_other(f"/console/users/{user_id}?done=pins&count={count}")
