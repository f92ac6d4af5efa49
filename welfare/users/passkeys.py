"""Passkeys (WebAuthn): registering them on one's account and signing in with one.

The rules they keep:

- The relying party is the host of `WELFARE_PUBLIC_BASE_URL`, the origin its scheme, host and
  port: a passkey made for one deployment answers no other. Browsers allow WebAuthn only over
  HTTPS (and on http://localhost), and never for an IP address, so neither is offered then.
- Every ceremony starts with a challenge from here, stored hashed (`WebAuthnChallenge`), bound
  to who asked (the session for a registration, the sign-in page's CSRF cookie for a sign-in),
  alive for `CHALLENGE_TTL`, and spent by the first answer that names it, right or wrong: that
  spending is committed at once, so no later error can give a replay a second chance.
- Adding a passkey is as strong as changing the password (a passkey outlives password changes),
  so it wants the current password, unless the session was opened less than `FRESH_SIGN_IN`
  ago: a sign-in just now proved as much, and a user who signs in with passkeys only can add a
  second one (a new phone) without typing a password. A session left open at a desk for longer
  cannot bind a stranger's authenticator.
- The authenticator must verify the user (fingerprint, face or PIN), so a passkey sign-in is two
  factors in one; the session is marked `second_factor="passkey"`.
- Signing in with a passkey shares everything with the password: the throttle (failures count
  against the account the passkey belongs to, and the address), the session (`open_session`),
  the audit entry ("auth.sign_in", with the method). A disabled account is refused.
- A signature counter that does not move forward on a counting authenticator means the key may
  have been copied: refused, and audited.
- The audit names passkeys by their id, never their key material.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import secrets
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete
from sqlmodel import Session, col, select
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from welfare.audit.service import record as audit_record
from welfare.authz import Actor
from welfare.db import utcnow
from welfare.errors import DomainError, NotFound
from welfare.settings import Settings
from welfare.users import service as accounts
from welfare.users import session_rules
from welfare.users.models import (
    PASSKEY_NAME_MAX,
    AuthSession,
    Passkey,
    PasskeyPublic,
    User,
    WebAuthnChallenge,
)

RP_NAME = "Welfare"
CHALLENGE_TTL = dt.timedelta(minutes=3)
# What the browser is told to wait for the person (a hint): well inside the challenge's life.
CEREMONY_TIMEOUT_MS = 120_000
FRESH_SIGN_IN = dt.timedelta(minutes=5)
MAX_PASSKEYS_PER_USER = 10
SECOND_FACTOR = "passkey"
_REGISTER = "register"
_SIGN_IN = "sign_in"
# What garbage from a browser can raise inside py_webauthn's parsers (CBOR and base64 errors
# are ValueErrors): each means "not a valid answer", never a server fault.
_MALFORMED = (WebAuthnException, ValueError, TypeError, KeyError, IndexError, OverflowError)


class PasskeyRefused(DomainError):
    """A passkey ceremony refused. `reason` says why in one word, for the pages' own words:
    unavailable, password, expired, malformed, invalid, unknown, cloned, disabled, duplicate,
    too_many."""

    def __init__(self, reason: str, detail: str, *, status: int = 422) -> None:
        super().__init__(detail)
        self.reason = reason
        self.status_hint = status


@dataclass(frozen=True)
class RelyingParty:
    id: str  # the host: "welfare.example.org", "localhost"
    origin: str  # "https://welfare.example.org", "http://localhost:8000"


def relying_party(settings: Settings) -> RelyingParty | None:
    """From `WELFARE_PUBLIC_BASE_URL`; None where browsers refuse WebAuthn (an IP address, or
    plain HTTP anywhere but localhost)."""
    parts = urlsplit(settings.public_base_url)
    host = (parts.hostname or "").lower()
    if not host or parts.scheme not in ("https", "http"):
        return None
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    if parts.scheme == "http" and host != "localhost" and not host.endswith(".localhost"):
        return None
    origin = f"{parts.scheme}://{host}"
    if parts.port is not None:
        origin += f":{parts.port}"
    return RelyingParty(id=host, origin=origin)


def _party(settings: Settings) -> RelyingParty:
    party = relying_party(settings)
    if party is None:
        raise PasskeyRefused(
            "unavailable",
            "passkeys need WELFARE_PUBLIC_BASE_URL to be an https:// address with a host name "
            "(or http://localhost)",
            status=409,
        )
    return party


def _hash(value: bytes | str) -> str:
    return hashlib.sha256(value.encode() if isinstance(value, str) else value).hexdigest()


def _binding_for_session(session_id: uuid.UUID | None) -> str:
    return _hash(f"session:{session_id}")


def _binding_for_login(login_cookie: str) -> str:
    return _hash(f"login:{login_cookie}")


def _issue(
    session: Session,
    *,
    purpose: str,
    binding_hash: str,
    client_addr: str,
    user_id: uuid.UUID | None = None,
) -> bytes:
    """A new challenge; the one this binding held before (and every expired one) is dropped,
    so each browser holds at most one and the table stays small."""
    now = utcnow()
    session.exec(
        delete(WebAuthnChallenge).where(
            (col(WebAuthnChallenge.binding_hash) == binding_hash)
            | (col(WebAuthnChallenge.expires_at) <= now)
        )
    )
    challenge = secrets.token_bytes(32)
    session.add(
        WebAuthnChallenge(
            challenge_hash=_hash(challenge),
            purpose=purpose,
            binding_hash=binding_hash,
            user_id=user_id,
            client_addr=client_addr[:64],
            created_at=now,
            expires_at=now + CHALLENGE_TTL,
        )
    )
    return challenge


def _spend(
    session: Session,
    *,
    challenge: bytes,
    purpose: str,
    binding_hash: str,
    user_id: uuid.UUID | None = None,
) -> bool:
    """Spend the challenge an answer names: True once, for a live one of this binding.

    Committed here: of two answers racing with the same challenge one deletes the row and the
    other finds none, and an error raised after this cannot roll the spending back."""
    query = delete(WebAuthnChallenge).where(
        col(WebAuthnChallenge.challenge_hash) == _hash(challenge),
        col(WebAuthnChallenge.purpose) == purpose,
        col(WebAuthnChallenge.binding_hash) == binding_hash,
        col(WebAuthnChallenge.expires_at) > utcnow(),
    )
    if user_id is not None:
        query = query.where(col(WebAuthnChallenge.user_id) == user_id)
    spent = session.exec(query).rowcount  # type: ignore[call-overload]
    session.commit()
    return spent == 1


def prune_challenges(session: Session, now: dt.datetime | None = None) -> int:
    """Housekeeping: challenges nobody answered in time."""
    query = delete(WebAuthnChallenge).where(col(WebAuthnChallenge.expires_at) <= (now or utcnow()))
    return session.exec(query).rowcount  # type: ignore[call-overload]


def _expired(status: int) -> PasskeyRefused:
    return PasskeyRefused(
        "expired", "this passkey request expired or was already used; start again", status=status
    )


def _transports(passkey: Passkey) -> list[AuthenticatorTransport]:
    known = {t.value: t for t in AuthenticatorTransport}
    return [known[t] for t in (passkey.transports or "").split(",") if t in known]


def to_public(passkey: Passkey) -> PasskeyPublic:
    return PasskeyPublic(
        id=passkey.id,
        name=passkey.name,
        created_at=passkey.created_at,
        last_used_at=passkey.last_used_at,
        transports=[t.value for t in _transports(passkey)],
        backed_up=passkey.backed_up,
    )


def _passkeys_of(session: Session, user_id: uuid.UUID) -> list[Passkey]:
    return list(
        session.exec(
            select(Passkey).where(Passkey.user_id == user_id).order_by(col(Passkey.created_at))
        ).all()
    )


# --- registering a passkey --------------------------------------------------------------------


def _session_is_fresh(session: Session, actor: Actor, now: dt.datetime) -> bool:
    if actor.session_id is None:
        return False
    created = session.exec(
        select(AuthSession.created_at).where(AuthSession.id == actor.session_id)
    ).first()
    return created is not None and now - created <= FRESH_SIGN_IN


def needs_password(*, session: Session, actor: Actor) -> bool:
    """Whether adding a passkey now wants the current password (see the module's rules)."""
    return not _session_is_fresh(session, actor, utcnow())


def registration_options(
    *, session: Session, settings: Settings, actor: Actor, password: str | None
) -> str:
    """The options for `navigator.credentials.create`, as JSON; starts a registration."""
    party = _party(settings)
    user = accounts.current_user(session=session, actor=actor)
    if needs_password(session=session, actor=actor):
        # A wrong password here is a guess at the same secret as at sign-in: same counts.
        client_addr = (actor.client_addr or "unknown").replace("\x00", "\ufffd")
        accounts._check_throttle(
            session, settings, user.username, client_addr, accounts._PASSWORD_THROTTLED
        )
        if not password or not accounts.password_hasher.verify(password, user.password_hash):
            if password:
                accounts._record_failure(session, user.username, client_addr)
            raise PasskeyRefused(
                "password", "enter your current password to add a passkey", status=422
            )
    existing = _passkeys_of(session, user.id)
    if len(existing) >= MAX_PASSKEYS_PER_USER:
        raise PasskeyRefused(
            "too_many",
            f"at most {MAX_PASSKEYS_PER_USER} passkeys per account; remove one first",
            status=409,
        )
    challenge = _issue(
        session,
        purpose=_REGISTER,
        binding_hash=_binding_for_session(actor.session_id),
        client_addr=actor.client_addr or "unknown",
        user_id=user.id,
    )
    options = generate_registration_options(
        rp_id=party.id,
        rp_name=RP_NAME,
        # The user handle is the account's id: opaque, no personal data.
        user_id=user.id.bytes,
        user_name=user.username,
        user_display_name=user.display_name,
        challenge=challenge,
        timeout=CEREMONY_TIMEOUT_MS,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            # Discoverable, so sign-in needs no username; verified, so it is two factors.
            resident_key=ResidentKeyRequirement.REQUIRED,
            require_resident_key=True,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        # The same authenticator twice would only be two names for one key.
        exclude_credentials=[
            PublicKeyCredentialDescriptor(
                id=base64url_to_bytes(p.credential_id), transports=_transports(p) or None
            )
            for p in existing
        ],
    )
    return options_to_json(options)


def _parse_registration(credential: Any) -> tuple[RegistrationCredential, bytes]:
    try:
        parsed = parse_registration_credential_json(credential)
        challenge = parse_client_data_json(parsed.response.client_data_json).challenge
    except _MALFORMED:
        raise PasskeyRefused("malformed", "not a passkey registration", status=422) from None
    return parsed, challenge


def _clean_name(name: str | None, user_agent: str | None) -> str:
    text = " ".join((name or "").replace("\x00", " ").split())
    text = "".join(ch for ch in text if ord(ch) >= 32 and ord(ch) != 127)
    if not text:
        text = session_rules.describe_device(user_agent) or "Passkey"
    return text[:PASSKEY_NAME_MAX]


def register_passkey(
    *,
    session: Session,
    settings: Settings,
    actor: Actor,
    credential: Any,
    name: str | None,
    user_agent: str | None = None,
) -> Passkey:
    """Verify the browser's answer to `registration_options` and keep the new passkey."""
    party = _party(settings)
    user = accounts.current_user(session=session, actor=actor)
    parsed, challenge = _parse_registration(credential)
    if not _spend(
        session,
        challenge=challenge,
        purpose=_REGISTER,
        binding_hash=_binding_for_session(actor.session_id),
        user_id=user.id,
    ):
        raise _expired(422)
    try:
        verified = verify_registration_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=party.id,
            expected_origin=party.origin,
            require_user_verification=True,
        )
    except _MALFORMED:
        raise PasskeyRefused(
            "invalid", "the passkey could not be verified for this site", status=422
        ) from None
    credential_id = bytes_to_base64url(verified.credential_id)
    if session.exec(select(Passkey.id).where(Passkey.credential_id == credential_id)).first():
        raise PasskeyRefused("duplicate", "this passkey is already registered", status=409)
    known = {t.value for t in AuthenticatorTransport}
    transports = [t.value for t in (parsed.response.transports or []) if t.value in known]
    passkey = Passkey(
        user_id=user.id,
        credential_id=credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=",".join(dict.fromkeys(transports))[:200] or None,
        aaguid=str(verified.aaguid)[:36],
        backed_up=verified.credential_backed_up,
        name=_clean_name(name, user_agent),
    )
    session.add(passkey)
    session.flush()
    audit_record(
        session,
        actor=actor,
        action="passkey.add",
        entity="passkey",
        entity_id=passkey.id,
        detail={"user_id": str(user.id), "backed_up": passkey.backed_up},
    )
    return passkey


# --- signing in with a passkey ----------------------------------------------------------------


def sign_in_options(
    *, session: Session, settings: Settings, login_cookie: str, client_addr: str
) -> str:
    """The options for `navigator.credentials.get`, as JSON: no allowed credentials listed,
    so the browser offers the passkeys it holds for this site (no username typed)."""
    party = _party(settings)
    challenge = _issue(
        session,
        purpose=_SIGN_IN,
        binding_hash=_binding_for_login(login_cookie),
        client_addr=client_addr,
    )
    options = generate_authentication_options(
        rp_id=party.id,
        challenge=challenge,
        timeout=CEREMONY_TIMEOUT_MS,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return options_to_json(options)


def _parse_assertion(credential: Any) -> tuple[AuthenticationCredential, bytes]:
    try:
        parsed = parse_authentication_credential_json(credential)
        challenge = parse_client_data_json(parsed.response.client_data_json).challenge
    except _MALFORMED:
        raise PasskeyRefused("malformed", "not a passkey sign-in", status=422) from None
    return parsed, challenge


def _failed(
    session: Session, username: str, client_addr: str, reason: str, detail: str
) -> PasskeyRefused:
    """Count a failed sign-in (committed, with the spent challenge) and say why."""
    accounts._record_failure(session, username, client_addr)
    return PasskeyRefused(reason, detail, status=401)


def authenticate(
    *,
    session: Session,
    settings: Settings,
    credential: Any,
    login_cookie: str,
    client_addr: str,
    user_agent: str | None = None,
    language: str | None = None,
) -> tuple[str, AuthSession, User]:
    """Verify the browser's answer to `sign_in_options` and open a session, as a password
    sign-in does; the raw token is returned once."""
    party = _party(settings)
    client_addr = client_addr.replace("\x00", "\ufffd")
    user_agent = user_agent.replace("\x00", "\ufffd") if user_agent else None
    parsed, challenge = _parse_assertion(credential)
    if not _spend(
        session,
        challenge=challenge,
        purpose=_SIGN_IN,
        binding_hash=_binding_for_login(login_cookie),
    ):
        raise _expired(401)
    credential_id = bytes_to_base64url(parsed.raw_id)
    passkey = session.exec(select(Passkey).where(Passkey.credential_id == credential_id)).first()
    user = session.get(User, passkey.user_id) if passkey else None
    # Failures count against the account the passkey belongs to, as wrong passwords do; an
    # unknown credential counts against itself (and the address).
    username = user.username if user else f"passkey:{_hash(credential_id)[:24]}"
    accounts._check_throttle(session, settings, username, client_addr)
    if passkey is None or user is None:
        raise _failed(
            session,
            username,
            client_addr,
            "unknown",
            "this passkey is not registered here (it may have been removed)",
        )
    handle = parsed.response.user_handle
    try:
        if handle is not None and handle != user.id.bytes:
            raise WebAuthnException("user handle does not match the credential's account")
        # The counter is checked below, after the signature: a refusal for a copied key must
        # come from the key itself, not from anyone who replays its id.
        verified = verify_authentication_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=party.id,
            expected_origin=party.origin,
            credential_public_key=passkey.public_key,
            credential_current_sign_count=0,
            require_user_verification=True,
        )
    except _MALFORMED:
        raise _failed(
            session, username, client_addr, "invalid", "the passkey could not be verified"
        ) from None
    if (verified.new_sign_count or passkey.sign_count) and (
        verified.new_sign_count <= passkey.sign_count
    ):
        audit_record(
            session,
            actor=Actor(user_id=user.id, role=user.role, client_addr=client_addr),
            action="passkey.counter_regressed",
            entity="passkey",
            entity_id=passkey.id,
            detail={"stored": passkey.sign_count, "presented": verified.new_sign_count},
        )
        raise _failed(
            session,
            username,
            client_addr,
            "cloned",
            "this passkey's signature counter went backwards, so it may have been copied: "
            "refused. Remove it from your account and add a new one",
        )
    if not user.is_active:
        raise _failed(session, username, client_addr, "disabled", "account disabled")
    now = utcnow()
    passkey.sign_count = verified.new_sign_count
    passkey.backed_up = verified.credential_backed_up
    passkey.last_used_at = now
    session.add(passkey)
    token, auth_session = accounts.open_session(
        session=session,
        settings=settings,
        user=user,
        client_addr=client_addr,
        user_agent=user_agent,
        language=language,
        second_factor=SECOND_FACTOR,
        detail={"method": SECOND_FACTOR, "passkey_id": str(passkey.id)},
    )
    return token, auth_session, user


# --- one's own passkeys, and an admin's view of another user's --------------------------------


def list_own_passkeys(*, session: Session, actor: Actor) -> list[PasskeyPublic]:
    user = accounts.current_user(session=session, actor=actor)
    return [to_public(p) for p in _passkeys_of(session, user.id)]


def _remove(session: Session, actor: Actor, user_id: uuid.UUID, passkey_id: uuid.UUID) -> None:
    done = session.exec(  # type: ignore[call-overload]
        delete(Passkey).where(col(Passkey.id) == passkey_id, col(Passkey.user_id) == user_id)
    ).rowcount
    if not done:
        raise NotFound("passkey")
    audit_record(
        session,
        actor=actor,
        action="passkey.remove",
        entity="passkey",
        entity_id=passkey_id,
        detail={"user_id": str(user_id)},
    )


def remove_own_passkey(*, session: Session, actor: Actor, passkey_id: uuid.UUID) -> None:
    """Remove one of one's passkeys: it signs nobody in from now on."""
    user = accounts.current_user(session=session, actor=actor)
    _remove(session, actor, user.id, passkey_id)


def admin_list_passkeys(
    *, session: Session, actor: Actor, user_id: uuid.UUID
) -> list[PasskeyPublic]:
    user = accounts.get_user(session=session, actor=actor, user_id=user_id)
    rows = _passkeys_of(session, user.id)
    audit_record(
        session,
        actor=actor,
        action="user.list_passkeys",
        entity="user",
        entity_id=user.id,
        detail={"passkeys": len(rows)},
    )
    return [to_public(p) for p in rows]


def admin_remove_passkey(
    *, session: Session, actor: Actor, user_id: uuid.UUID, passkey_id: uuid.UUID
) -> None:
    """An admin removes a user's passkey (a lost phone reported to the office)."""
    accounts.get_user(session=session, actor=actor, user_id=user_id)
    _remove(session, actor, user_id, passkey_id)
