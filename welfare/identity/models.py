"""Company identity providers (OpenID Connect), the accounts linked to them, and sign-ins under
way.

A provider applies to a chosen set of sites (the project has no "site group"): only people whose
every site is among them may sign in through it (see `welfare/identity/oidc.py`).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from urllib.parse import urlsplit

from pydantic import field_validator
from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from welfare.db import UTCDateTime, utcnow

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_CLIENT_ID = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces


_ISSUER_HINT = "the provider's issuer URL, such as https://login.example.com"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _check_issuer(value: str) -> str:
    value = value.strip().rstrip("/")
    if any(ord(ch) <= 32 or ord(ch) == 127 for ch in value):
        raise ValueError(_ISSUER_HINT)
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        raise ValueError(_ISSUER_HINT) from None
    # Plain http only on this machine (a provider under test): elsewhere the token, the keys
    # and the secret would cross the network in the clear.
    secure = parts.scheme == "https" or (parts.scheme == "http" and host in _LOOPBACK)
    if not secure or not host or parts.query or parts.fragment or parts.username:
        raise ValueError(_ISSUER_HINT)
    return value


def _check_domains(values: list[str]) -> list[str]:
    out: list[str] = []
    for raw in values:
        domain = raw.strip().lower().lstrip("@")
        if not domain:
            continue
        if not _DOMAIN.match(domain):
            raise ValueError("e-mail domains such as example.com")
        if domain not in out:
            out.append(domain)
    return out


def _check_name(value: str) -> str:
    value = value.strip()
    if not value or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("1-80 characters, such as 'Sign in with Acme'")
    return value


def _check_client_id(value: str) -> str:
    value = value.strip()
    if not _CLIENT_ID.match(value):
        raise ValueError("the client id the provider gave: printable characters, no spaces")
    return value


def _check_secret(value: str | None) -> str | None:
    if value is None:
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("the client secret the provider gave")
    return value


class IdentityProviderFields(SQLModel):
    display_name: str = Field(min_length=1, max_length=80)  # the button: "Sign in with Acme"
    issuer: str = Field(max_length=500)
    client_id: str = Field(max_length=255)
    # Lower-case domains; empty means any domain the provider vouches for.
    allowed_domains: list[str] = Field(default_factory=list, max_length=50)
    # Set by the admin when the provider itself asks for a second factor: such a sign-in then
    # counts as two-factor here too. Never inferred from the token.
    enforces_two_factor: bool = False
    is_active: bool = True


class IdentityProviderCreate(IdentityProviderFields):
    client_secret: str = Field(min_length=1, max_length=2000)
    site_ids: list[uuid.UUID] = Field(min_length=1, max_length=500)

    @field_validator("display_name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value)

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        return _check_issuer(value)

    @field_validator("client_id")
    @classmethod
    def _client(cls, value: str) -> str:
        return _check_client_id(value)

    @field_validator("allowed_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        return _check_domains(value)

    @field_validator("client_secret")
    @classmethod
    def _secret(cls, value: str) -> str:
        return _check_secret(value) or ""


class IdentityProviderUpdate(SQLModel):
    """Absent fields stay as they are; the client secret is only ever replaced, never shown."""

    display_name: str | None = Field(default=None, min_length=1, max_length=80)
    issuer: str | None = Field(default=None, max_length=500)
    client_id: str | None = Field(default=None, max_length=255)
    client_secret: str | None = Field(default=None, min_length=1, max_length=2000)
    allowed_domains: list[str] | None = Field(default=None, max_length=50)
    site_ids: list[uuid.UUID] | None = Field(default=None, min_length=1, max_length=500)
    enforces_two_factor: bool | None = None
    is_active: bool | None = None

    @field_validator("display_name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else _check_name(value)

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str | None) -> str | None:
        return None if value is None else _check_issuer(value)

    @field_validator("client_id")
    @classmethod
    def _client(cls, value: str | None) -> str | None:
        return None if value is None else _check_client_id(value)

    @field_validator("allowed_domains")
    @classmethod
    def _domains(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_domains(value)

    @field_validator("client_secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        return _check_secret(value)


class IdentityProvider(IdentityProviderFields, table=True):
    __tablename__ = "identity_provider"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    allowed_domains: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # `welfare.sealed.seal(settings.secret_key, ...)`: read back for the token request only.
    client_secret_sealed: str = Field(max_length=4000)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class IdentityProviderSite(SQLModel, table=True):
    __tablename__ = "identity_provider_site"

    provider_id: uuid.UUID = Field(
        foreign_key="identity_provider.id", primary_key=True, ondelete="CASCADE"
    )
    site_id: uuid.UUID = Field(
        foreign_key="site.id", primary_key=True, index=True, ondelete="CASCADE"
    )


class IdentityProviderPublic(IdentityProviderFields):
    """What an admin reads back: never the secret, only whether one is set."""

    id: uuid.UUID
    site_ids: list[uuid.UUID]
    has_client_secret: bool
    redirect_uri: str  # to register with the provider
    created_at: dt.datetime
    updated_at: dt.datetime


class LoginButton(SQLModel):
    """What the sign-in page shows of a provider."""

    id: uuid.UUID
    display_name: str


class UserIdentity(SQLModel, table=True):
    """A user linked to an account at a provider: `subject` is the provider's `sub` claim."""

    __tablename__ = "user_identity"
    __table_args__ = (UniqueConstraint("provider_id", "subject", name="uq_user_identity_subject"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    provider_id: uuid.UUID = Field(foreign_key="identity_provider.id", ondelete="CASCADE")
    subject: str = Field(max_length=255)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_sign_in_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class OidcLogin(SQLModel, table=True):
    """A sign-in sent to a provider and not yet back: used once, then deleted.

    `state` arrives in the callback's URL, so only its hash is kept; `browser_hash` ties the
    sign-in to the browser that started it (a cookie), so a callback link handed to someone
    else signs nobody in.
    """

    __tablename__ = "oidc_login"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    state_hash: str = Field(max_length=64, unique=True)
    browser_hash: str = Field(max_length=64)
    provider_id: uuid.UUID = Field(foreign_key="identity_provider.id", ondelete="CASCADE")
    nonce: str = Field(max_length=128)
    code_verifier: str = Field(max_length=128)
    next_path: str | None = Field(default=None, max_length=2000)
    language: str | None = Field(default=None, max_length=16)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: dt.datetime = Field(sa_type=UTCDateTime, index=True)
