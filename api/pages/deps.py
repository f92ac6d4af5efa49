"""Who is looking at a page, which language they read, and CSRF checks for page forms."""

from __future__ import annotations

import contextlib
import hmac
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Form, Request, Response
from sqlmodel import Session

from api.deps import (
    SESSION_COOKIE,
    CsrfRefused,
    SettingsDep,
    auth_session,
    client_addr,
    csrf_secret_for,
    csrf_token_matches,
    mask_csrf_secret,
    set_session_cookie,
)
from api.pages.i18n import gettext, negotiate, ui_language
from welfare.authz import Actor, Role
from welfare.errors import NotAuthenticated, NotFound
from welfare.settings import Settings
from welfare.sites import service as sites
from welfare.users import service as users
from welfare.users.models import UI_LANGUAGES, User

LANGUAGE_COOKIE = "welfare_lang"
LOGIN_CSRF_COOKIE = "welfare_login_csrf"
CSRF_FIELD = "csrf_token"
# The session's (or, before sign-in, the sign-in page's) CSRF token in a form.
CsrfField = Annotated[str | None, Form(alias=CSRF_FIELD, max_length=200)]


class LoginRequired(Exception):
    """Raised by page dependencies; answered with a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


@dataclass(frozen=True)
class PageUser:
    actor: Actor
    user_id: str
    display_name: str
    role: Role
    language: str
    csrf_secret: str

    @property
    def csrf_token(self) -> str:
        """A freshly masked token each time a page asks for one (see `mask_csrf_secret`)."""
        return mask_csrf_secret(self.csrf_secret)

    @property
    def is_guard(self) -> bool:
        return self.role == Role.guard


def t(page_user: PageUser, message: str) -> str:
    """`message` in the page user's language."""
    return gettext(page_user.language, message)


def request_language(request: Request) -> str:
    """Signed-out visitors: ?lang=, then the language cookie, then Accept-Language."""
    for candidate in (request.query_params.get("lang"), request.cookies.get(LANGUAGE_COOKIE)):
        if chosen := ui_language(candidate):
            return chosen
    return negotiate(request.headers.get("accept-language"))


def _current_path(request: Request) -> str:
    path = request.url.path
    if request.url.query:
        path += "?" + request.url.query
    return path


def safe_next(value: str | None) -> str | None:
    """Only a local path may follow sign-in: never another host ("//evil", "https://...")."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    if any(ord(ch) < 32 for ch in value):
        return None
    return value


def login_url(next_path: str) -> str:
    return "/login?next=" + quote(next_path, safe="/")


class EnrolmentRequired(Exception):
    """Raised by page dependencies for a session that must first set up a second factor;
    answered with a redirect to the enrolment page."""


ENROLMENT_PATH = "/account/two-factor"


def get_enrolling_page_user(request: Request, settings: SettingsDep) -> PageUser:
    """The signed-in user behind the session cookie (pages never take bearer tokens), even one
    whose session may only set up a second factor (`actor.enrolment_only`)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise LoginRequired(_current_path(request))
    with auth_session(request) as reader:
        try:
            actor = users.actor_for_token(reader, token, client_addr(request), settings=settings)
        except NotAuthenticated:
            raise LoginRequired(_current_path(request)) from None
        user = reader.get(User, actor.user_id)
    if user is None:
        raise LoginRequired(_current_path(request))
    page_user = PageUser(
        actor=actor,
        user_id=str(user.id),
        display_name=user.display_name,
        role=user.role,
        language=user.language if user.language in UI_LANGUAGES else "en",
        csrf_secret=csrf_secret_for(settings, token),
    )
    request.state.page_user = page_user
    request.state.language = page_user.language
    return page_user


def get_page_user(request: Request, settings: SettingsDep) -> PageUser:
    """The signed-in user behind the session cookie; a session that must first set up a second
    factor is sent to the enrolment page from every other page."""
    page_user = get_enrolling_page_user(request, settings)
    if page_user.actor.enrolment_only:
        raise EnrolmentRequired()
    return page_user


PageUserDep = Annotated[PageUser, Depends(get_page_user)]
EnrollingPageUserDep = Annotated[PageUser, Depends(get_enrolling_page_user)]


def check_form_csrf(page_user: PageUser, submitted: str | None) -> None:
    """Every cookie-authenticated form carries the session's CSRF token."""
    if not csrf_token_matches(submitted, page_user.csrf_secret):
        raise CsrfRefused()


def remove_own(
    session: Session,
    page_user: PageUser,
    csrf_token: str | None,
    remove: Callable[..., object],
    **which: uuid.UUID,
) -> None:
    """A form that removes one of one's own things (a session, a passkey, a PIN): the CSRF token
    checked, then `remove(session=, actor=, **which)`; one already gone is no error."""
    check_form_csrf(page_user, csrf_token)
    with contextlib.suppress(NotFound):
        remove(session=session, actor=page_user.actor, **which)


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def check_login_csrf(request: Request, submitted: str | None) -> None:
    """Before sign-in there is no session: a double-submit cookie guards the sign-in form."""
    cookie = (request.cookies.get(LOGIN_CSRF_COOKIE) or "").encode("latin-1", "replace")
    sent = (submitted or "").encode("latin-1", "replace")
    if not cookie or not hmac.compare_digest(sent, cookie):
        raise CsrfRefused()


def start_session(response: Response, settings: Settings, token: str) -> Response:
    """A page sign-in (a password's, a code's, a PIN's or a passkey's) done: the session cookie
    set, the sign-in form's CSRF cookie gone."""
    set_session_cookie(response, settings, token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


def home_for(role: Role) -> str:
    return "/guard" if role == Role.guard else "/console"


def viewer_timezone(session: Session, page_user: PageUser) -> str | None:
    """The timezone a user reads times in: their site's (the first by name when several), or
    None (UTC) for a user with no site. Sign-in times are shown in it, not in UTC."""
    return sites.viewer_timezone(session, page_user.actor)
