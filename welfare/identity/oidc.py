"""Company sign-in: the OpenID Connect authorisation-code flow with PKCE, state and nonce.

The rules it keeps:

- A sign-in under way is a server-side row (`OidcLogin`) found by the hash of its `state`,
  tied to the starting browser by a cookie secret (`browser_hash`), valid for ten minutes and
  deleted by the first callback that names it, whatever happens next: a replayed callback
  finds nothing.
- The ID token's signature is checked against the provider's JWKS (from its discovery
  document), and so are `iss`, `aud`, `exp` and `nonce`. Its e-mail must be verified
  (`email_verified` true) and, when the provider lists domains, in one of them.
- People are found by (provider, `sub`) once linked; the first time by a verified e-mail equal
  to a user's e-mail, which links them; otherwise a guard with no sites is created, who sees
  nothing until an admin assigns sites. Nobody gets more from a provider than a local admin
  gave them. Admins always sign in with their password (their rights span every site, more
  than one company's provider may vouch for), and a user with a site the provider was not
  configured for is refused, so one company's provider cannot sign in another's staff.
- No database transaction is held open while the provider is asked: on SQLite that would hold
  the process's write gate for as long as the provider takes. So `begin_sign_in` and
  `complete_sign_in` commit the caller's session before each trip to the provider.
- Every refusal is `SignInRefused` with a reason code (the page words it in the user's
  language) and is logged with the reason and the provider's id only: no e-mail, no `sub`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from welfare.audit.service import record as audit_record
from welfare.authz import Actor, Role
from welfare.db import utcnow
from welfare.errors import DomainError
from welfare.identity import service as providers
from welfare.identity.models import IdentityProvider, OidcLogin, UserIdentity
from welfare.sealed import SealBroken
from welfare.settings import Settings
from welfare.users import service as users
from welfare.users.models import UI_LANGUAGES, USERNAME_PATTERN, User, UserSite, normalise_email

logger = logging.getLogger("welfare.identity")

SIGN_IN_TTL = dt.timedelta(minutes=10)
HTTP_TIMEOUT = (5, 10)  # connect, read (seconds)
METADATA_TTL_SECONDS = 600
CLOCK_LEEWAY_SECONDS = 60
ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"]
SCOPE = "openid email profile"

# Reason codes and the status each answers with: 4xx throughout (the request could not be
# completed as sent), never a 5xx, even when the provider is down.
REASON_STATUS = {
    "unknown_provider": 404,
    "provider_unavailable": 400,
    "bad_state": 400,
    "access_denied": 403,
    "provider_error": 400,
    "bad_token": 400,
    "email_unverified": 403,
    "domain_not_allowed": 403,
    "account_disabled": 403,
    "admin_local_only": 403,
    "outside_sites": 403,
}


class SignInRefused(DomainError):
    """A company sign-in that did not sign anyone in; `reason` is one of REASON_STATUS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.status_hint = REASON_STATUS[reason]


def _refuse(reason: str, detail: str, provider_id: uuid.UUID | None) -> SignInRefused:
    # Reason and provider only: the message never carries an e-mail, a name or a `sub`.
    logger.warning("company sign-in refused: %s (provider %s)", reason, provider_id)
    return SignInRefused(reason, detail)


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# --- what the provider publishes ----------------------------------------------------------------


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    token_auth_method: str  # client_secret_basic or client_secret_post


_cache_lock = threading.Lock()
_metadata_cache: dict[str, tuple[float, ProviderMetadata]] = {}
_jwks_cache: dict[str, tuple[float, KeySet]] = {}


def forget_cached_metadata() -> None:
    """Drop cached discovery documents and key sets (tests; an admin's issuer change)."""
    with _cache_lock:
        _metadata_cache.clear()
        _jwks_cache.clear()


def _get_json(url: str, provider_id: uuid.UUID) -> dict[str, Any]:
    try:
        response = requests.get(url, timeout=HTTP_TIMEOUT, headers={"Accept": "application/json"})
        response.raise_for_status()
        body = response.json()
    except (requests.RequestException, ValueError):
        raise _refuse(
            "provider_unavailable", "the sign-in provider could not be reached", provider_id
        ) from None
    if not isinstance(body, dict):
        raise _refuse("provider_unavailable", "the sign-in provider answered nonsense", provider_id)
    return body


def discover(issuer: str, provider_id: uuid.UUID) -> ProviderMetadata:
    with _cache_lock:
        cached = _metadata_cache.get(issuer)
    if cached and time.monotonic() - cached[0] < METADATA_TTL_SECONDS:
        return cached[1]
    body = _get_json(f"{issuer}/.well-known/openid-configuration", provider_id)
    needed = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
    if any(not isinstance(body.get(name), str) for name in needed):
        raise _refuse(
            "provider_unavailable", "the provider's discovery document is incomplete", provider_id
        )
    # OpenID Connect Discovery 1.0, section 4.3: the document must name the issuer it came from.
    if body["issuer"].rstrip("/") != issuer:
        raise _refuse(
            "provider_unavailable",
            "the provider's discovery document names another issuer",
            provider_id,
        )
    methods = body.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    method = "client_secret_basic" if "client_secret_basic" in methods else "client_secret_post"
    metadata = ProviderMetadata(
        issuer=body["issuer"],
        authorization_endpoint=body["authorization_endpoint"],
        token_endpoint=body["token_endpoint"],
        jwks_uri=body["jwks_uri"],
        token_auth_method=method,
    )
    with _cache_lock:
        _metadata_cache[issuer] = (time.monotonic(), metadata)
    return metadata


def _key_set(jwks_uri: str, provider_id: uuid.UUID, *, fresh: bool) -> tuple[KeySet, bool]:
    """The provider's keys, and whether they were fetched just now."""
    with _cache_lock:
        cached = _jwks_cache.get(jwks_uri)
    if not fresh and cached and time.monotonic() - cached[0] < METADATA_TTL_SECONDS:
        return cached[1], False
    body = _get_json(jwks_uri, provider_id)
    try:
        keys = KeySet.import_key_set(body)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError):
        raise _refuse(
            "provider_unavailable", "the provider's signing keys are unreadable", provider_id
        ) from None
    with _cache_lock:
        _jwks_cache[jwks_uri] = (time.monotonic(), keys)
    return keys, True


# --- starting ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartedSignIn:
    authorization_url: str
    browser_secret: str  # for the cookie that ties the callback to this browser


def _active_provider(session: Session, provider_id: uuid.UUID) -> IdentityProvider:
    provider = session.get(IdentityProvider, provider_id)
    if provider is None or not provider.is_active:
        raise _refuse("unknown_provider", "no such sign-in provider", provider_id)
    return provider


def begin_sign_in(
    *,
    session: Session,
    settings: Settings,
    provider_id: uuid.UUID,
    next_path: str | None = None,
    language: str | None = None,
) -> StartedSignIn:
    provider = _active_provider(session, provider_id)
    issuer = provider.issuer
    session.commit()  # nothing held while the provider is asked (see the module's docstring)
    metadata = discover(issuer, provider_id)
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)  # 86 characters: RFC 7636 wants 43-128
    browser_secret = secrets.token_urlsafe(32)
    now = utcnow()
    session.exec(delete(OidcLogin).where(col(OidcLogin.expires_at) < now))
    session.add(
        OidcLogin(
            state_hash=_hash(state),
            browser_hash=_hash(browser_secret),
            provider_id=provider_id,
            nonce=nonce,
            code_verifier=verifier,
            next_path=next_path,
            language=language if language in UI_LANGUAGES else None,
            created_at=now,
            expires_at=now + SIGN_IN_TTL,
        )
    )
    client = OAuth2Session(
        provider.client_id,
        scope=SCOPE,
        redirect_uri=providers.redirect_uri(settings, provider_id),
        code_challenge_method="S256",
    )
    url, _ = client.create_authorization_url(
        metadata.authorization_endpoint, state=state, code_verifier=verifier, nonce=nonce
    )
    return StartedSignIn(authorization_url=url, browser_secret=browser_secret)


# --- coming back ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompletedSignIn:
    token: str
    user: User
    next_path: str | None
    # The admin ticked "the provider enforces two-factor": this sign-in counts as the second
    # factor too. Otherwise a second factor, where one is required, is still to be asked.
    two_factor_satisfied: bool


@dataclass(frozen=True)
class _Pending:
    provider_id: uuid.UUID
    display_name: str
    issuer: str
    client_id: str
    client_secret: str
    allowed_domains: list[str]
    site_ids: frozenset[uuid.UUID]
    enforces_two_factor: bool
    nonce: str
    code_verifier: str
    next_path: str | None
    language: str | None  # picked on the sign-in page: a new user's language


def _take_pending(
    session: Session,
    settings: Settings,
    provider_id: uuid.UUID,
    state: str | None,
    browser_secret: str | None,
) -> _Pending:
    """Find and delete the sign-in `state` names: one callback, once, from the same browser."""
    bad_state = "this sign-in link has expired or was already used; start again"
    if not state or len(state) > 200:
        raise _refuse("bad_state", bad_state, provider_id)
    row = session.exec(select(OidcLogin).where(OidcLogin.state_hash == _hash(state))).first()
    if row is None:
        raise _refuse("bad_state", bad_state, provider_id)
    taken = session.exec(delete(OidcLogin).where(col(OidcLogin.id) == row.id)).rowcount  # type: ignore[attr-defined]
    session.commit()  # used up now, whatever happens next
    if not taken:  # a concurrent callback with the same state took it first
        raise _refuse("bad_state", bad_state, provider_id)
    sent = _hash(browser_secret or "")
    if (
        row.provider_id != provider_id
        or row.expires_at <= utcnow()
        or not hmac.compare_digest(sent, row.browser_hash)
    ):
        raise _refuse("bad_state", bad_state, provider_id)
    provider = _active_provider(session, provider_id)
    try:
        secret = providers.client_secret(settings, provider)
    except SealBroken:
        raise _refuse(
            "provider_unavailable",
            "the provider's client secret must be entered again (the secret key changed)",
            provider_id,
        ) from None
    pending = _Pending(
        provider_id=provider.id,
        display_name=provider.display_name,
        issuer=provider.issuer,
        client_id=provider.client_id,
        client_secret=secret,
        allowed_domains=list(provider.allowed_domains),
        site_ids=frozenset(providers.site_ids_of(session, provider.id)),
        enforces_two_factor=provider.enforces_two_factor,
        nonce=row.nonce,
        code_verifier=row.code_verifier,
        next_path=row.next_path,
        language=row.language,
    )
    session.commit()  # nothing held while the provider is asked
    return pending


def _exchange_code(
    settings: Settings, pending: _Pending, metadata: ProviderMetadata, code: str
) -> str:
    client = OAuth2Session(
        pending.client_id,
        pending.client_secret,
        token_endpoint_auth_method=metadata.token_auth_method,
        redirect_uri=providers.redirect_uri(settings, pending.provider_id),
    )
    try:
        token = client.fetch_token(
            metadata.token_endpoint,
            grant_type="authorization_code",
            code=code,
            code_verifier=pending.code_verifier,
            timeout=HTTP_TIMEOUT,
        )
    except requests.RequestException:
        raise _refuse(
            "provider_unavailable",
            "the sign-in provider could not be reached",
            pending.provider_id,
        ) from None
    except (AuthlibBaseError, ValueError, KeyError):
        raise _refuse(
            "bad_token", "the sign-in provider refused to finish the sign-in", pending.provider_id
        ) from None
    id_token = token.get("id_token") if isinstance(token, dict) else None
    if not isinstance(id_token, str):
        raise _refuse("bad_token", "the provider sent no ID token", pending.provider_id)
    return id_token


def _verified_claims(
    pending: _Pending, metadata: ProviderMetadata, id_token: str
) -> dict[str, Any]:
    keys, fresh = _key_set(metadata.jwks_uri, pending.provider_id, fresh=False)
    try:
        try:
            token = jwt.decode(id_token, keys, algorithms=ID_TOKEN_ALGORITHMS)
        except JoseError:
            if fresh:
                raise
            # The provider may have rotated its keys since they were cached: fetch them once.
            keys, _ = _key_set(metadata.jwks_uri, pending.provider_id, fresh=True)
            token = jwt.decode(id_token, keys, algorithms=ID_TOKEN_ALGORITHMS)
        claims = dict(token.claims)
        jwt.JWTClaimsRegistry(
            leeway=CLOCK_LEEWAY_SECONDS,
            iss={"essential": True, "value": pending.issuer},
            aud={"essential": True, "value": pending.client_id},
            exp={"essential": True},
            sub={"essential": True},
            nonce={"essential": True, "value": pending.nonce},
        ).validate(claims)
    except (JoseError, ValueError, TypeError):
        raise _refuse(
            "bad_token", "the sign-in could not be verified; start again", pending.provider_id
        ) from None
    audience = claims.get("aud")
    # OpenID Connect Core 1.0, 3.1.3.7: with several audiences, `azp` must be this client.
    if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != pending.client_id:
        raise _refuse(
            "bad_token", "the sign-in could not be verified; start again", pending.provider_id
        )
    if not isinstance(claims.get("sub"), str) or not 0 < len(claims["sub"]) <= 255:
        raise _refuse("bad_token", "the provider sent no usable subject", pending.provider_id)
    return claims


def _checked_email(pending: _Pending, claims: dict[str, Any]) -> str:
    email = claims.get("email")
    # Some providers send the flag as the string "true".
    verified = claims.get("email_verified") in (True, "true")
    try:
        normalised = normalise_email(email) if isinstance(email, str) else None
    except ValueError:
        normalised = None
    if normalised is None or not verified:
        raise _refuse(
            "email_unverified",
            "the provider has not verified your e-mail address",
            pending.provider_id,
        )
    domain = normalised.rsplit("@", 1)[1]
    if pending.allowed_domains and domain not in pending.allowed_domains:
        raise _refuse(
            "domain_not_allowed",
            "your e-mail address is not in a domain allowed for this provider",
            pending.provider_id,
        )
    return normalised


_NOT_NAME = re.compile(r"[^a-z0-9._-]+")


def _new_username(session: Session, email: str) -> str:
    base = _NOT_NAME.sub("-", email.split("@", 1)[0].lower()).strip("._-")[:50] or "user"
    if not USERNAME_PATTERN.match(base):
        base = f"u-{base}"[:50]
    candidate = base
    while session.exec(select(User.id).where(User.username == candidate)).first():
        candidate = f"{base}-{secrets.token_hex(3)}"
    return candidate


def _display_name(claims: dict[str, Any], email: str) -> str:
    name = claims.get("name")
    if isinstance(name, str):
        name = "".join(ch for ch in name if ord(ch) >= 32 and ord(ch) != 127).strip()[:200]
        if name:
            return name
    return email.split("@", 1)[0][:200] or "user"


def _find_or_create_user(
    session: Session,
    pending: _Pending,
    subject: str,
    email: str,
    claims: dict[str, Any],
) -> tuple[User, UserIdentity]:
    link = session.exec(
        select(UserIdentity).where(
            UserIdentity.provider_id == pending.provider_id, UserIdentity.subject == subject
        )
    ).first()
    if link is not None:
        user = session.get(User, link.user_id)
        if user is not None:
            return user, link
    through = {"provider": pending.display_name, "provider_id": str(pending.provider_id)}
    user = session.exec(select(User).where(User.email == email)).first()
    if user is None:
        user = User(
            username=_new_username(session, email),
            display_name=_display_name(claims, email),
            role=Role.guard,
            language=pending.language or "en",
            email=email,
            password_hash=users.unusable_password_hash(),
        )
        session.add(user)
        session.flush()
        audit_record(
            session,
            actor=Actor(user_id=user.id, role=user.role),
            action="user.create_company",
            entity="user",
            entity_id=user.id,
            detail={"role": user.role.value, **through},
        )
    link = UserIdentity(provider_id=pending.provider_id, subject=subject, user_id=user.id)
    session.add(link)
    session.flush()
    audit_record(
        session,
        actor=Actor(user_id=user.id, role=user.role),
        action="user.link_company",
        entity="user",
        entity_id=user.id,
        detail=through,
    )
    return user, link


def complete_sign_in(
    *,
    session: Session,
    settings: Settings,
    provider_id: uuid.UUID,
    state: str | None,
    code: str | None,
    error: str | None,
    browser_secret: str | None,
    client_addr: str,
    user_agent: str | None = None,
) -> CompletedSignIn:
    """The callback: check everything, find or create the user, open a normal session."""
    pending = _take_pending(session, settings, provider_id, state, browser_secret)
    if error:
        if error == "access_denied":
            raise _refuse("access_denied", "the sign-in was declined at the provider", provider_id)
        raise _refuse("provider_error", "the sign-in provider reported an error", provider_id)
    if not code or len(code) > 2000:
        raise _refuse("provider_error", "the sign-in provider sent no code", provider_id)
    metadata = discover(pending.issuer, provider_id)
    id_token = _exchange_code(settings, pending, metadata, code)
    claims = _verified_claims(pending, metadata, id_token)
    email = _checked_email(pending, claims)
    try:
        with session.begin_nested():
            user, link = _find_or_create_user(session, pending, claims["sub"], email, claims)
    except IntegrityError:
        # A second sign-in of the same person raced this one and linked or created first.
        user, link = _find_or_create_user(session, pending, claims["sub"], email, claims)
    if not user.is_active:
        raise _refuse("account_disabled", "this account is deactivated", provider_id)
    if user.role == Role.admin:
        raise _refuse("admin_local_only", "admins sign in with their password", provider_id)
    own_sites = set(session.exec(select(UserSite.site_id).where(UserSite.user_id == user.id)).all())
    if not own_sites <= pending.site_ids:
        raise _refuse(
            "outside_sites", "this provider is not set up for every site of yours", provider_id
        )
    # A provider the admin marked as enforcing two-factor sign-in satisfies the requirement.
    token, auth_session = users.open_session(
        session,
        settings,
        user,
        client_addr=client_addr.replace("\x00", "\ufffd"),
        user_agent=user_agent.replace("\x00", "\ufffd") if user_agent else None,
        language=None,
        second_factor="company" if pending.enforces_two_factor else None,
        detail={"method": "company"},
    )
    link.last_sign_in_at = utcnow()
    session.add(link)
    audit_record(
        session,
        actor=Actor(user_id=user.id, role=user.role, client_addr=client_addr),
        action="auth.sign_in_company",
        entity="session",
        entity_id=auth_session.id,
        detail={
            "provider": pending.display_name,
            "provider_id": str(pending.provider_id),
            "two_factor": pending.enforces_two_factor,
        },
    )
    return CompletedSignIn(
        token=token,
        user=user,
        next_path=pending.next_path,
        two_factor_satisfied=pending.enforces_two_factor,
    )
