"""Dependencies declared once as Annotated aliases: `session: SessionDep, actor: ActorDep`."""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import inspect
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import OAuth2PasswordBearer
from sqlmodel import Session

from welfare.authz import Actor
from welfare.errors import NotAuthenticated, PermissionDenied
from welfare.settings import Settings
from welfare.users import service as users

SESSION_COOKIE = "welfare_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def set_session_cookie(response: Response, settings: Settings, token: str) -> None:
    """The session cookie of every sign-in (the JSON API's and the pages'), the same for all."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        max_age=settings.session_ttl_hours * 3600,
        path="/",
    )


# Dependencies that do no I/O are `async def`: FastAPI runs every plain `def` dependency in
# the request thread pool, a trip (and a thread hand-over each way) for nothing.


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's session. Its transaction is committed (or rolled back on error) by the
    endpoint itself, inside the endpoint's trip to the thread pool (`TransactionRoute`), so
    nothing here touches the database: closing a session with no transaction is bookkeeping."""
    session: Session = request.app.state.sessionmaker()
    try:
        yield session
        if session.in_transaction():  # a route that is not a TransactionRoute: a bug
            session.rollback()
            raise RuntimeError("the request's transaction was left open: use TransactionRoute")
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_settings)]
# scope="function": commit before the response goes out, so a failed commit is never a 200.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def client_addr(request: Request) -> str:
    return request.client.host if request.client else "unknown"


CSRF_REFUSED = "missing or wrong CSRF token: reload the page and try again"


class CsrfRefused(PermissionDenied):
    """A cookie-signed change without its session's CSRF token (403; a page says to reload)."""

    def __init__(self) -> None:
        super().__init__(CSRF_REFUSED)


def csrf_secret_for(settings: Settings, session_token: str) -> str:
    """The session's CSRF secret (hex): the same for the whole session, never put in a page."""
    return hmac.new(settings.secret_key.encode(), session_token.encode(), "sha256").hexdigest()


# BREACH: pages go out gzip-compressed with reflected input next to the CSRF token, so a
# token that were the same in every response could be guessed a character at a time from the
# compressed sizes. Every token handed out is masked as Django does: a fresh random pad each
# time, token = base64url(pad + (pad XOR secret)); it unmasks to the session's secret.
_SECRET_BYTES = 32
_MASKED_LENGTH = 86  # base64url of 64 bytes, without its "==" padding


def mask_csrf_secret(secret: str) -> str:
    raw = bytes.fromhex(secret)
    pad = secrets.token_bytes(len(raw))
    masked = bytes(a ^ b for a, b in zip(pad, raw, strict=True))
    return base64.urlsafe_b64encode(pad + masked).rstrip(b"=").decode()


def csrf_token_for(settings: Settings, session_token: str) -> str:
    """A masked CSRF token for the session: different at every call, each one accepted."""
    return mask_csrf_secret(csrf_secret_for(settings, session_token))


def _unmask(sent: bytes) -> bytes | None:
    """The secret (hex, as bytes) behind a token sent back, or None for one that is no token.
    The unmasked secret itself is still taken: a guard phone's offline shell, cached by the
    service worker before tokens were masked, sends it with the reports it kept."""
    if len(sent) == 2 * _SECRET_BYTES:
        return sent
    if len(sent) != _MASKED_LENGTH:
        return None
    try:
        raw = base64.b64decode(sent + b"==", altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None
    pad, masked = raw[:_SECRET_BYTES], raw[_SECRET_BYTES:]
    return bytes(a ^ b for a, b in zip(pad, masked, strict=True)).hex().encode()


def csrf_token_matches(submitted: str | None, secret: str) -> bool:
    """Whether a token sent back (masked, or the bare secret) belongs to the session."""
    # Compared as bytes: compare_digest raises on non-ASCII str (a header is latin-1).
    sent = (submitted or "").encode("latin-1", "replace")
    if len(sent) > 200:
        return False
    unmasked = _unmask(sent)
    return unmasked is not None and hmac.compare_digest(unmasked, secret.encode())


def _token_from(request: Request, settings: Settings) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        # Cookies ride along on cross-site requests: state changes need the CSRF header too.
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER)
            if not csrf_token_matches(sent, csrf_secret_for(settings, cookie)):
                raise CsrfRefused()
        return cookie
    raise NotAuthenticated("not signed in")


@contextmanager
def auth_session(request: Request) -> Iterator[Session]:
    """Where to read who is signing the request: a short read transaction of its own, ended
    before this dependency's trip to the thread pool ends. Read on the request's session, the
    transaction (and its pooled connection; on SQLite the process's write gate too, see
    `TransactionRoute`) would stay open until the endpoint's trip: with every pool thread
    waiting for a connection, those trips could never start."""
    with request.app.state.read_sessionmaker() as reader:
        yield reader


# The OpenAPI document's security scheme: the bearer token from `POST /api/v1/auth/token` (the
# OAuth2 password flow, so Swagger UI's "Authorize" signs in with a username and password).
# Every operation that depends on the actor references it. It only declares: the token is read
# by `_token_from`, which also takes the pages' session cookie.
bearer_token = OAuth2PasswordBearer(
    tokenUrl="/api/v1/auth/token",
    scheme_name="bearer",
    description="`POST /api/v1/auth/token` with a username and password; send "
    "`Authorization: Bearer <access_token>`.",
    auto_error=False,
)


def get_enrolling_actor(
    request: Request,
    settings: SettingsDep,
    _declared: Annotated[str | None, Depends(bearer_token)],
) -> Actor:
    """The actor, even one whose session may only set up a second factor (`enrolment_only`):
    for the few routes such a session may use (signing out, reading itself)."""
    token = _token_from(request, settings)
    with auth_session(request) as reader:
        return users.actor_for_token(reader, token, client_addr(request), settings=settings)


MFA_ENROLMENT_REQUIRED = "mfa_enrolment_required"


def get_actor(actor: Annotated[Actor, Depends(get_enrolling_actor)]) -> Actor:
    """The actor behind the request; a session that must first set up a second factor is
    refused everything else (403 `mfa_enrolment_required`)."""
    if actor.enrolment_only:
        raise PermissionDenied(MFA_ENROLMENT_REQUIRED)
    return actor


@contextmanager
def _ending_sessions(kwargs: dict[str, Any]) -> Iterator[None]:
    """Commit the endpoint's sessions when it returns, roll them back when it raises."""
    sessions = [value for value in kwargs.values() if isinstance(value, Session)]
    try:
        yield
    except BaseException:
        for session in sessions:
            session.rollback()
        raise
    for session in sessions:
        session.commit()


def _commit_after(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(endpoint):
        # An async endpoint that uses the session does so on the event loop: commit there too.
        @functools.wraps(endpoint)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            with _ending_sessions(kwargs):
                return await endpoint(*args, **kwargs)

        return run_async

    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        with _ending_sessions(kwargs):
            return endpoint(*args, **kwargs)

    return run


class TransactionRoute(APIRoute):
    """A route whose endpoint ends the request's transaction before it returns, in its own
    trip to the thread pool (or, for an async endpoint, on the event loop where it ran).

    On SQLite a request's first query takes the process's write gate (BEGIN IMMEDIATE) and its
    commit releases it. FastAPI runs a sync endpoint and the response's validation as separate
    trips to the request thread pool (and used to run a generator dependency's exit as a third):
    holding the gate (or, on PostgreSQL, a pooled connection) from one trip to the next, a
    transaction could wait for a pool thread while every pool thread waits for the gate (100
    reports at once all failed after the busy timeout). Ended (committed, or rolled back on an
    error) inside the endpoint's trip, the transaction leaves `get_session` only the session to
    close."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, _commit_after(endpoint), **kwargs)


ActorDep = Annotated[Actor, Depends(get_actor)]
EnrollingActorDep = Annotated[Actor, Depends(get_enrolling_actor)]


class Page:
    def __init__(self, limit: int, offset: int) -> None:
        self.limit = limit
        self.offset = offset


async def page_of(
    limit: Annotated[int, Query(ge=1, le=200, description="page size")] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Page:
    return Page(limit, offset)


PageDep = Annotated[Page, Depends(page_of)]
