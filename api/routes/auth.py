from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from api.deps import (
    SESSION_COOKIE,
    ActorDep,
    SessionDep,
    SettingsDep,
    TransactionRoute,
    client_addr,
    csrf_token_for,
)
from welfare.users import passkeys
from welfare.users import service as users
from welfare.users.models import (
    DutyChange,
    PasskeyPublic,
    PasswordChange,
    ProfileUpdate,
    SessionPublic,
    TokenResponse,
    UserPublic,
)

router = APIRouter(route_class=TransactionRoute, prefix="/api/v1", tags=["auth"])


@router.post("/auth/token", response_model=TokenResponse)
def sign_in(
    request: Request,
    response: Response,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    settings: SettingsDep,
) -> TokenResponse:
    """OAuth2 password flow. Also sets the same session as an HttpOnly cookie for the pages."""
    token, auth_session, _user = users.authenticate(
        session=session,
        settings=settings,
        username=form.username,
        password=form.password,
        client_addr=client_addr(request),
        user_agent=request.headers.get("user-agent"),
    )
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        max_age=settings.session_ttl_hours * 3600,
        path="/",
    )
    response.headers["X-CSRF-Token"] = csrf_token_for(settings, token)
    response.headers["Cache-Control"] = "no-store"
    return TokenResponse(access_token=token, expires_at=auth_session.expires_at)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def sign_out(response: Response, session: SessionDep, actor: ActorDep) -> Response:
    users.sign_out(session=session, actor=actor)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.status_code = status.HTTP_204_NO_CONTENT
    return response


@router.post("/auth/logout-everywhere", status_code=status.HTTP_204_NO_CONTENT)
def sign_out_everywhere(response: Response, session: SessionDep, actor: ActorDep) -> Response:
    users.sign_out_everywhere(session=session, actor=actor)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.status_code = status.HTTP_204_NO_CONTENT
    return response


@router.get("/me", response_model=UserPublic)
def read_me(session: SessionDep, actor: ActorDep) -> UserPublic:
    return users.to_public(session, users.current_user(session=session, actor=actor))


@router.patch("/me", response_model=UserPublic)
def update_me(data: ProfileUpdate, session: SessionDep, actor: ActorDep) -> UserPublic:
    return users.to_public(session, users.update_profile(session=session, actor=actor, data=data))


@router.post("/me/duty", response_model=UserPublic)
def set_duty(data: DutyChange, session: SessionDep, actor: ActorDep) -> UserPublic:
    """Go on or off duty: on-duty guards get missing-resident alerts by SMS and in the app."""
    return users.to_public(
        session, users.set_duty(session=session, actor=actor, on_duty=data.on_duty)
    )


@router.post("/me/password", status_code=status.HTTP_204_NO_CONTENT)
def change_password(
    data: PasswordChange, session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> None:
    """Changes the password and signs out every other session of this user.

    Wrong current passwords are throttled with sign-in's limits (429 with Retry-After).
    """
    users.change_password(session=session, settings=settings, actor=actor, data=data)


class RevokedSessions(BaseModel):
    revoked: int


@router.get("/me/sessions", response_model=list[SessionPublic])
def list_my_sessions(
    session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> list[SessionPublic]:
    """Your sessions still in use, most recently used first; `current` marks this one."""
    return users.list_own_sessions(session=session, settings=settings, actor=actor)


@router.delete("/me/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_my_session(session_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> None:
    """Signs one of your sessions out: its next request is refused. 404 when not yours."""
    users.revoke_own_session(session=session, actor=actor, session_id=session_id)


@router.post("/me/sessions/revoke-others", response_model=RevokedSessions)
def revoke_my_other_sessions(session: SessionDep, actor: ActorDep) -> RevokedSessions:
    """Signs out every session of yours but this one."""
    return RevokedSessions(revoked=users.revoke_other_sessions(session=session, actor=actor))


@router.get("/me/passkeys", response_model=list[PasskeyPublic])
def list_my_passkeys(session: SessionDep, actor: ActorDep) -> list[PasskeyPublic]:
    """Your passkeys, oldest first (they are added on the account page, in a browser)."""
    return passkeys.list_own_passkeys(session=session, actor=actor)


@router.delete("/me/passkeys/{passkey_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_my_passkey(passkey_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> None:
    """Removes one of your passkeys: it signs nobody in from now on. 404 when not yours."""
    passkeys.remove_own_passkey(session=session, actor=actor, passkey_id=passkey_id)
