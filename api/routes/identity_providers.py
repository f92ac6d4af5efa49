"""Company identity providers (OpenID Connect), for admins. The client secret goes in and
never comes out: answers say only whether one is set."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from api.deps import ActorDep, PageDep, SessionDep, SettingsDep, TransactionRoute
from api.schemas import ListResponse
from welfare.identity import service as identity
from welfare.identity.models import (
    IdentityProviderCreate,
    IdentityProviderPublic,
    IdentityProviderUpdate,
)

router = APIRouter(
    route_class=TransactionRoute, prefix="/api/v1/identity-providers", tags=["identity providers"]
)


@router.get("", response_model=ListResponse[IdentityProviderPublic])
def list_providers(
    session: SessionDep, settings: SettingsDep, actor: ActorDep, page: PageDep
) -> ListResponse[IdentityProviderPublic]:
    rows, total = identity.list_providers(
        session=session, actor=actor, limit=page.limit, offset=page.offset
    )
    return ListResponse(
        items=[identity.to_public(session, settings, p) for p in rows],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.post("", response_model=IdentityProviderPublic, status_code=status.HTTP_201_CREATED)
def create_provider(
    data: IdentityProviderCreate, session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> IdentityProviderPublic:
    """Register `redirect_uri` from the answer with the provider as the allowed callback."""
    provider = identity.create_provider(session=session, settings=settings, actor=actor, data=data)
    return identity.to_public(session, settings, provider)


@router.get("/{provider_id}", response_model=IdentityProviderPublic)
def read_provider(
    provider_id: uuid.UUID, session: SessionDep, settings: SettingsDep, actor: ActorDep
) -> IdentityProviderPublic:
    provider = identity.get_provider(session=session, actor=actor, provider_id=provider_id)
    return identity.to_public(session, settings, provider)


@router.patch("/{provider_id}", response_model=IdentityProviderPublic)
def update_provider(
    provider_id: uuid.UUID,
    data: IdentityProviderUpdate,
    session: SessionDep,
    settings: SettingsDep,
    actor: ActorDep,
) -> IdentityProviderPublic:
    """Absent fields stay; a `client_secret` replaces the stored one."""
    provider = identity.update_provider(
        session=session, settings=settings, actor=actor, provider_id=provider_id, data=data
    )
    return identity.to_public(session, settings, provider)


@router.delete("/{provider_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_provider(provider_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> None:
    """Its users stay; their links to it and any sign-in under way through it go."""
    identity.delete_provider(session=session, actor=actor, provider_id=provider_id)
