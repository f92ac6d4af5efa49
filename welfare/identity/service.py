"""Admins configure company identity providers; the sign-in page lists the active ones.

The client secret is sealed (`welfare/sealed.py`) before it is stored and never leaves the
service again except to the provider's token endpoint (`welfare/identity/oidc.py`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from welfare.audit.service import record as audit_record
from welfare.authz import Actor, Permission, require
from welfare.db import utcnow
from welfare.errors import InvalidInput, NotFound
from welfare.identity.models import (
    IdentityProvider,
    IdentityProviderCreate,
    IdentityProviderPublic,
    IdentityProviderSite,
    IdentityProviderUpdate,
    LoginButton,
)
from welfare.sealed import SealBroken, seal, unseal
from welfare.settings import Settings
from welfare.sites.models import Site


def redirect_uri(settings: Settings, provider_id: uuid.UUID) -> str:
    """Where the provider sends the browser back; the admin registers it with the provider."""
    return f"{settings.public_base_url}/login/oidc/{provider_id}/callback"


def site_ids_of(session: Session, provider_id: uuid.UUID) -> list[uuid.UUID]:
    return list(
        session.exec(
            select(IdentityProviderSite.site_id).where(
                IdentityProviderSite.provider_id == provider_id
            )
        ).all()
    )


def to_public(
    session: Session, settings: Settings, provider: IdentityProvider
) -> IdentityProviderPublic:
    return IdentityProviderPublic.model_validate(
        provider.model_dump(exclude={"client_secret_sealed"}),
        update={
            "site_ids": site_ids_of(session, provider.id),
            "has_client_secret": bool(provider.client_secret_sealed),
            "redirect_uri": redirect_uri(settings, provider.id),
        },
    )


def client_secret(settings: Settings, provider: IdentityProvider) -> str:
    """The secret for the token request. A changed `WELFARE_SECRET_KEY` makes it unreadable:
    the admin enters it again (SealBroken)."""
    return unseal(settings.secret_key, provider.client_secret_sealed)


def secret_readable(settings: Settings, provider: IdentityProvider) -> bool:
    try:
        client_secret(settings, provider)
    except SealBroken:
        return False
    return True


def _set_sites(session: Session, provider: IdentityProvider, site_ids: Sequence[uuid.UUID]) -> None:
    unique = list(dict.fromkeys(site_ids))
    found = set(session.exec(select(Site.id).where(col(Site.id).in_(unique))).all())
    missing = [str(s) for s in unique if s not in found]
    if missing:
        raise InvalidInput("site_ids", f"unknown site id(s): {', '.join(missing)}")
    session.exec(
        delete(IdentityProviderSite).where(col(IdentityProviderSite.provider_id) == provider.id)
    )
    for site_id in unique:
        session.add(IdentityProviderSite(provider_id=provider.id, site_id=site_id))


def create_provider(
    *, session: Session, settings: Settings, actor: Actor, data: IdentityProviderCreate
) -> IdentityProvider:
    require(actor, Permission.users_manage)
    provider = IdentityProvider(
        display_name=data.display_name,
        issuer=data.issuer,
        client_id=data.client_id,
        allowed_domains=data.allowed_domains,
        enforces_two_factor=data.enforces_two_factor,
        is_active=data.is_active,
        client_secret_sealed=seal(settings.secret_key, data.client_secret),
    )
    session.add(provider)
    session.flush()
    _set_sites(session, provider, data.site_ids)
    audit_record(
        session,
        actor=actor,
        action="identity_provider.create",
        entity="identity_provider",
        entity_id=provider.id,
        detail={"issuer": provider.issuer, "enforces_two_factor": provider.enforces_two_factor},
    )
    return provider


def get_provider(*, session: Session, actor: Actor, provider_id: uuid.UUID) -> IdentityProvider:
    require(actor, Permission.users_manage)
    provider = session.get(IdentityProvider, provider_id)
    if provider is None:
        raise NotFound("identity provider")
    return provider


def list_providers(
    *, session: Session, actor: Actor, limit: int, offset: int
) -> tuple[list[IdentityProvider], int]:
    require(actor, Permission.users_manage)
    total = session.exec(select(func.count()).select_from(IdentityProvider)).one()
    rows = session.exec(
        select(IdentityProvider)
        .order_by(col(IdentityProvider.display_name), col(IdentityProvider.id))
        .offset(offset)
        .limit(limit)
    ).all()
    return list(rows), total


def update_provider(
    *,
    session: Session,
    settings: Settings,
    actor: Actor,
    provider_id: uuid.UUID,
    data: IdentityProviderUpdate,
) -> IdentityProvider:
    provider = get_provider(session=session, actor=actor, provider_id=provider_id)
    # null means "no change" throughout: no field here can be cleared.
    changes = {k: v for k, v in data.model_dump(exclude_unset=True).items() if v is not None}
    for name in (
        "display_name",
        "issuer",
        "client_id",
        "allowed_domains",
        "enforces_two_factor",
        "is_active",
    ):
        if name in changes:
            setattr(provider, name, changes[name])
    if "client_secret" in changes:
        provider.client_secret_sealed = seal(settings.secret_key, changes["client_secret"])
    if "site_ids" in changes:
        _set_sites(session, provider, changes["site_ids"])
    provider.updated_at = utcnow()
    session.add(provider)
    audit_record(
        session,
        actor=actor,
        action="identity_provider.update",
        entity="identity_provider",
        entity_id=provider.id,
        detail={"fields": sorted(changes)},  # names only: never the secret
    )
    return provider


def delete_provider(*, session: Session, actor: Actor, provider_id: uuid.UUID) -> None:
    """Removes the provider, its links to users and its sign-ins under way; the users stay."""
    provider = get_provider(session=session, actor=actor, provider_id=provider_id)
    session.delete(provider)
    audit_record(
        session,
        actor=actor,
        action="identity_provider.delete",
        entity="identity_provider",
        entity_id=provider_id,
        detail={"issuer": provider.issuer},
    )


def login_buttons(*, session: Session) -> list[LoginButton]:
    """The active providers, for the sign-in page (which anyone may open)."""
    rows = session.exec(
        select(IdentityProvider)
        .where(col(IdentityProvider.is_active).is_(True))
        .order_by(col(IdentityProvider.display_name), col(IdentityProvider.id))
    ).all()
    return [LoginButton(id=row.id, display_name=row.display_name) for row in rows]
