"""Dependencies declared once as Annotated aliases: `session: SessionDep, actor: ActorDep`."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlmodel import Session

from welfare.authz import Actor
from welfare.errors import NotAuthenticated, PermissionDenied
from welfare.settings import Settings
from welfare.users import service as users

SESSION_COOKIE = "welfare_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed before the response is sent, rolled back on error."""
    session: Session = request.app.state.sessionmaker()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_settings)]
# scope="function": commit before the response goes out, so a failed commit is never a 200.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def client_addr(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def csrf_token_for(settings: Settings, session_token: str) -> str:
    return hmac.new(settings.secret_key.encode(), session_token.encode(), "sha256").hexdigest()


def _token_from(request: Request, settings: Settings) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        # Cookies ride along on cross-site requests: state changes need the CSRF header too.
        if request.method not in SAFE_METHODS:
            # Compared as bytes: compare_digest raises on non-ASCII str (a header is latin-1).
            sent = request.headers.get(CSRF_HEADER, "").encode("latin-1", "replace")
            expected = csrf_token_for(settings, cookie).encode()
            if not hmac.compare_digest(sent, expected):
                raise PermissionDenied("missing or wrong CSRF token")
        return cookie
    raise NotAuthenticated("not signed in")


def get_actor(request: Request, session: SessionDep, settings: SettingsDep) -> Actor:
    return users.actor_for_token(session, _token_from(request, settings), client_addr(request))


ActorDep = Annotated[Actor, Depends(get_actor)]


class Page:
    def __init__(
        self,
        limit: Annotated[int, Query(ge=1, le=200, description="page size")] = 50,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> None:
        self.limit = limit
        self.offset = offset


PageDep = Annotated[Page, Depends()]
