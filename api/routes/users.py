from __future__ import annotations

import uuid

from fastapi import APIRouter, status
from pydantic import BaseModel

from api.deps import ActorDep, PageDep, SessionDep, SettingsDep, TransactionRoute
from api.schemas import ListResponse
from welfare.users import passkeys, quick_sign_in, second_factor
from welfare.users import service as users
from welfare.users.models import (
    DevicePinPublic,
    PasskeyPublic,
    SessionPublic,
    UserCreate,
    UserPublic,
    UserUpdate,
)

router = APIRouter(route_class=TransactionRoute, prefix="/api/v1/users", tags=["users"])


class RevokedSessions(BaseModel):
    revoked: int


@router.get("", response_model=ListResponse[UserPublic])
def list_users(
    session: SessionDep, actor: ActorDep, page: PageDep, site_id: uuid.UUID | None = None
) -> ListResponse[UserPublic]:
    rows, total = users.list_users(
        session=session, actor=actor, limit=page.limit, offset=page.offset, site_id=site_id
    )
    return ListResponse(
        items=[users.to_public(session, u) for u in rows],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.post("", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
def create_user(data: UserCreate, session: SessionDep, actor: ActorDep) -> UserPublic:
    return users.to_public(session, users.create_user(session=session, actor=actor, data=data))


@router.get("/{user_id}", response_model=UserPublic)
def read_user(user_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> UserPublic:
    return users.to_public(session, users.get_user(session=session, actor=actor, user_id=user_id))


@router.patch("/{user_id}", response_model=UserPublic)
def update_user(
    user_id: uuid.UUID, data: UserUpdate, session: SessionDep, actor: ActorDep
) -> UserPublic:
    """A new password, a role or site change, or deactivation signs the user out everywhere."""
    user = users.update_user(session=session, actor=actor, user_id=user_id, data=data)
    return users.to_public(session, user)


@router.post("/{user_id}/revoke-sessions", response_model=RevokedSessions)
def revoke_sessions(user_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> RevokedSessions:
    count = users.admin_revoke_sessions(session=session, actor=actor, user_id=user_id)
    return RevokedSessions(revoked=count)


@router.get("/{user_id}/sessions", response_model=list[SessionPublic])
def list_sessions(
    user_id: uuid.UUID, session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> list[SessionPublic]:
    """The user's sessions still in use, most recently used first."""
    return users.admin_list_sessions(
        session=session, settings=settings, actor=actor, user_id=user_id
    )


@router.delete("/{user_id}/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_session(
    user_id: uuid.UUID, session_id: uuid.UUID, session: SessionDep, actor: ActorDep
) -> None:
    """Signs one session of the user out: its next request is refused."""
    users.admin_revoke_session(session=session, actor=actor, user_id=user_id, session_id=session_id)


@router.get("/{user_id}/quick-sign-in", response_model=list[DevicePinPublic])
def list_pins(user_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> list[DevicePinPublic]:
    """The shared phones where the user's quick-sign-in PIN works."""
    return quick_sign_in.admin_list(session=session, actor=actor, user_id=user_id)


@router.post("/{user_id}/quick-sign-in/revoke", response_model=RevokedSessions)
def revoke_pins(user_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> RevokedSessions:
    """Every quick-sign-in PIN of the user stops working (a lost phone, a guard who left)."""
    count = quick_sign_in.admin_revoke_all(session=session, actor=actor, user_id=user_id)
    return RevokedSessions(revoked=count)


@router.post("/{user_id}/second-factor/reset", response_model=RevokedSessions)
def reset_second_factor(
    user_id: uuid.UUID, session: SessionDep, actor: ActorDep
) -> RevokedSessions:
    """Removes the user's TOTP and recovery codes (a lost phone) and signs them out
    everywhere; where a site requires it, their next sign-in sets it up again. Audited."""
    count = second_factor.admin_reset(session=session, actor=actor, user_id=user_id)
    return RevokedSessions(revoked=count)


@router.get("/{user_id}/passkeys", response_model=list[PasskeyPublic])
def list_passkeys(user_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> list[PasskeyPublic]:
    """The user's passkeys (audited: an admin looked)."""
    return passkeys.admin_list_passkeys(session=session, actor=actor, user_id=user_id)


@router.delete("/{user_id}/passkeys/{passkey_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_passkey(
    user_id: uuid.UUID, passkey_id: uuid.UUID, session: SessionDep, actor: ActorDep
) -> None:
    """Removes one of the user's passkeys (a lost phone reported to the office)."""
    passkeys.admin_remove_passkey(
        session=session, actor=actor, user_id=user_id, passkey_id=passkey_id
    )
