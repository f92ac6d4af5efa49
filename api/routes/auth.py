from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from api.deps import (
    SESSION_COOKIE,
    ActorDep,
    EnrollingActorDep,
    SessionDep,
    SettingsDep,
    TransactionRoute,
    client_addr,
    csrf_token_for,
    set_session_cookie,
)
from welfare.users import passkeys, quick_sign_in, second_factor
from welfare.users import service as users
from welfare.users.models import (
    DevicePinPublic,
    DutyChange,
    PasskeyPublic,
    PasswordChange,
    ProfileUpdate,
    SecondFactorStatus,
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
    otp: Annotated[str | None, Form(max_length=20)] = None,
    recovery_code: Annotated[str | None, Form(max_length=40)] = None,
) -> TokenResponse:
    """OAuth2 password flow. Also sets the same session as an HttpOnly cookie for the pages.

    An account with two-factor sign-in also sends `otp` (the six-digit code from the
    authenticator app) or `recovery_code`: without either the answer is 401 with detail
    `mfa_required`; a wrong code is a plain 401, throttled like a wrong password (429).
    """
    token, auth_session, _user = users.authenticate(
        session=session,
        settings=settings,
        username=form.username,
        password=form.password,
        client_addr=client_addr(request),
        user_agent=request.headers.get("user-agent"),
        otp=otp or None,
        recovery_code=recovery_code or None,
    )
    set_session_cookie(response, settings, token)
    response.headers["X-CSRF-Token"] = csrf_token_for(settings, token)
    response.headers["Cache-Control"] = "no-store"
    return TokenResponse(access_token=token, expires_at=auth_session.expires_at)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def sign_out(response: Response, session: SessionDep, actor: EnrollingActorDep) -> Response:
    users.sign_out(session=session, actor=actor)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.status_code = status.HTTP_204_NO_CONTENT
    return response


@router.post("/auth/logout-everywhere", status_code=status.HTTP_204_NO_CONTENT)
def sign_out_everywhere(
    response: Response, session: SessionDep, actor: EnrollingActorDep
) -> Response:
    users.sign_out_everywhere(session=session, actor=actor)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.status_code = status.HTTP_204_NO_CONTENT
    return response


@router.get("/me", response_model=UserPublic)
def read_me(session: SessionDep, actor: EnrollingActorDep) -> UserPublic:
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


@router.get("/me/quick-sign-in", response_model=list[DevicePinPublic])
def list_my_pins(session: SessionDep, actor: ActorDep) -> list[DevicePinPublic]:
    """The shared phones where your quick-sign-in PIN works (set up on the guard's pages)."""
    return quick_sign_in.list_own(session=session, actor=actor)


@router.delete("/me/quick-sign-in/{pin_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_my_pin(pin_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> None:
    """Your PIN stops working on that phone at once. 404 when not yours."""
    quick_sign_in.revoke_own(session=session, actor=actor, pin_id=pin_id)


@router.get("/me/second-factor", response_model=SecondFactorStatus)
def read_my_second_factor(session: SessionDep, actor: EnrollingActorDep) -> SecondFactorStatus:
    """Whether you have two-factor sign-in, how many recovery codes are left, and whether one
    of your sites requires it (set it up on the account page)."""
    return second_factor.own_status(session=session, actor=actor)


@router.get("/me/passkeys", response_model=list[PasskeyPublic])
def list_my_passkeys(session: SessionDep, actor: ActorDep) -> list[PasskeyPublic]:
    """Your passkeys, oldest first (they are added on the account page, in a browser)."""
    return passkeys.list_own_passkeys(session=session, actor=actor)


@router.delete("/me/passkeys/{passkey_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_my_passkey(passkey_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> None:
    """Removes one of your passkeys: it signs nobody in from now on. 404 when not yours."""
    passkeys.remove_own_passkey(session=session, actor=actor, passkey_id=passkey_id)
