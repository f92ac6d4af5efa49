"""Users, sign-in sessions and login throttling."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import math
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pwdlib import PasswordHash
from sqlalchemy import delete, func, or_, update
from sqlmodel import Session, col, select

from welfare.audit.service import record as audit_record
from welfare.authz import Actor, Permission, Role, require
from welfare.db import utcnow, write_without_waiting
from welfare.errors import Conflict, InvalidInput, NotAuthenticated, NotFound, Throttled
from welfare.phones import normalise_phone
from welfare.sealed import SealBroken, unseal
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.users import session_rules, totp
from welfare.users.models import (
    UI_LANGUAGES,
    AuthSession,
    LoginFailure,
    PasswordChange,
    ProfileUpdate,
    RecoveryCode,
    SessionPublic,
    SignInChallenge,
    User,
    UserCreate,
    UserPublic,
    UserSite,
    UserUpdate,
)

log = logging.getLogger("welfare.users")
password_hasher = PasswordHash.recommended()
# Verified against when the username is unknown, so both paths cost the same time.
_DUMMY_HASH = password_hasher.hash(secrets.token_urlsafe(16))
# Region used to read a user's own phone when written without a country code.
_USER_PHONE_DEFAULT_REGION = "GB"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def site_ids_of(session: Session, user_id: uuid.UUID) -> list[uuid.UUID]:
    return list(session.exec(select(UserSite.site_id).where(UserSite.user_id == user_id)).all())


def usernames(session: Session, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Each user's username (the access audit names who acted by it)."""
    if not ids:
        return {}
    rows = session.exec(select(User.id, User.username).where(col(User.id).in_(list(ids)))).all()
    return dict(rows)


def find_by_username(session: Session, username: str) -> User | None:
    return session.exec(select(User).where(User.username == username.strip().lower())).first()


def to_public(session: Session, user: User) -> UserPublic:
    return UserPublic.model_validate(
        user,
        update={
            "site_ids": site_ids_of(session, user.id),
            "second_factor_enabled": has_second_factor(user),
        },
    )


def _user_phone(session: Session, raw: str | None, site_ids: Sequence[uuid.UUID]) -> str | None:
    if raw is None or not raw.strip():
        return None
    region = _USER_PHONE_DEFAULT_REGION
    if site_ids:
        site = session.get(Site, site_ids[0])
        if site:
            region = site.phone_region
    return normalise_phone(raw, region, "phone")


def _set_sites(session: Session, user: User, site_ids: Sequence[uuid.UUID]) -> None:
    unique = list(dict.fromkeys(site_ids))
    found = set(session.exec(select(Site.id).where(col(Site.id).in_(unique))).all())
    missing = [str(s) for s in unique if s not in found]
    if missing:
        raise InvalidInput("site_ids", f"unknown site id(s): {', '.join(missing)}")
    session.exec(delete(UserSite).where(col(UserSite.user_id) == user.id))
    for site_id in unique:
        session.add(UserSite(user_id=user.id, site_id=site_id))


def _check_email_free(session: Session, email: str | None, user_id: uuid.UUID | None) -> None:
    if email is None:
        return
    holder = session.exec(select(User.id).where(User.email == email)).first()
    if holder is not None and holder != user_id:
        raise Conflict("that e-mail address belongs to another user", field="email")


def create_user(*, session: Session, actor: Actor, data: UserCreate) -> User:
    require(actor, Permission.users_manage)
    if session.exec(select(User).where(User.username == data.username)).first():
        raise Conflict(f"username {data.username!r} is taken")
    _check_email_free(session, data.email, None)
    user = User(
        username=data.username,
        display_name=data.display_name,
        role=data.role,
        language=data.language,
        phone=_user_phone(session, data.phone, data.site_ids),
        email=data.email,
        is_active=data.is_active,
        password_hash=password_hasher.hash(data.password),
    )
    session.add(user)
    session.flush()
    _set_sites(session, user, data.site_ids)
    audit_record(
        session,
        actor=actor,
        action="user.create",
        entity="user",
        entity_id=user.id,
        detail={"role": user.role.value},
    )
    return user


def get_user(*, session: Session, actor: Actor, user_id: uuid.UUID) -> User:
    require(actor, Permission.users_manage)
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("user")
    return user


def list_users(
    *, session: Session, actor: Actor, limit: int, offset: int, site_id: uuid.UUID | None = None
) -> tuple[list[User], int]:
    require(actor, Permission.users_manage)
    query = select(User)
    if site_id:
        query = query.join(UserSite).where(UserSite.site_id == site_id)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(col(User.username)).offset(offset).limit(limit)).all()
    return list(rows), total


def update_user(*, session: Session, actor: Actor, user_id: uuid.UUID, data: UserUpdate) -> User:
    user = get_user(session=session, actor=actor, user_id=user_id)
    # An explicit null means "no change" for every field but the phone and the e-mail, where it
    # clears them.
    changes = {
        name: value
        for name, value in data.model_dump(exclude_unset=True).items()
        if value is not None or name in ("phone", "email")
    }
    if user.id == actor.user_id and (
        changes.get("is_active") is False or changes.get("role", Role.admin) != Role.admin
    ):
        raise Conflict("admins cannot demote or deactivate themselves; ask another admin")
    # Only a real change of access signs the user out: a form that re-sends the same role and
    # sites with a new display name must not.
    revoke = (
        changes.get("is_active") is False
        or ("role" in changes and changes["role"] != user.role)
        or (
            "site_ids" in changes and set(changes["site_ids"]) != set(site_ids_of(session, user.id))
        )
    )
    for name in ("display_name", "role", "language", "is_active"):
        if name in changes:
            setattr(user, name, changes[name])
    if "site_ids" in changes:
        _set_sites(session, user, changes["site_ids"])
    if "phone" in changes:
        user.phone = _user_phone(session, changes["phone"], site_ids_of(session, user.id))
    if "email" in changes:
        _check_email_free(session, changes["email"], user.id)
        user.email = changes["email"]
    if changes.get("password"):
        user.password_hash = password_hasher.hash(changes["password"])
        user.password_changed_at = utcnow()
        revoke = True
    session.add(user)
    if revoke:
        revoke_sessions(session=session, user_id=user.id)
    audit_record(
        session,
        actor=actor,
        action="user.update",
        entity="user",
        entity_id=user.id,
        detail={"fields": sorted(changes)},
    )
    return user


def admin_revoke_sessions(*, session: Session, actor: Actor, user_id: uuid.UUID) -> int:
    get_user(session=session, actor=actor, user_id=user_id)
    count = revoke_sessions(session=session, user_id=user_id)
    audit_record(
        session,
        actor=actor,
        action="user.revoke_sessions",
        entity="user",
        entity_id=user_id,
        detail={"sessions": count},
    )
    return count


def revoke_sessions(*, session: Session, user_id: uuid.UUID, keep: uuid.UUID | None = None) -> int:
    query = (
        update(AuthSession)
        .where(col(AuthSession.user_id) == user_id, col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    )
    if keep is not None:
        query = query.where(col(AuthSession.id) != keep)
    return session.exec(query).rowcount  # type: ignore[call-overload,attr-defined]


# --- signing in -------------------------------------------------------------------------------


_SIGN_IN_THROTTLED = "too many failed sign-in attempts; try again later"
_PASSWORD_THROTTLED = "too many wrong passwords; try again later"
_CODE_THROTTLED = "too many wrong codes; try again later"


def _check_throttle(
    session: Session,
    settings: Settings,
    username: str,
    client_addr: str,
    message: str = _SIGN_IN_THROTTLED,
) -> None:
    """Throttled when the account or the address has too many failures in the window.

    Sign-in and the password change share these counts: a wrong current password is a guess
    at the same secret, so a stolen session must not get more guesses than a stranger.
    """
    now = utcnow()
    since = now - dt.timedelta(minutes=settings.login_window_minutes)
    for column, value, limit in (
        (LoginFailure.username, username, settings.login_max_failures_per_account),
        (LoginFailure.client_addr, client_addr, settings.login_max_failures_per_address),
    ):
        row = session.exec(
            select(func.count(), func.min(LoginFailure.at)).where(
                column == value, col(LoginFailure.at) >= since
            )
        ).one()
        count, oldest = row
        if count >= limit:
            # Wait until the oldest counted failure leaves the window.
            oldest_at = oldest if oldest.tzinfo else oldest.replace(tzinfo=dt.UTC)
            wait = oldest_at + dt.timedelta(minutes=settings.login_window_minutes) - now
            raise Throttled(
                message,
                retry_after_seconds=max(1, math.ceil(wait.total_seconds())),
            )


def _record_failure(session: Session, username: str, client_addr: str) -> None:
    # Committed here, not by the caller: the failure must outlive the error raised after it.
    session.add(LoginFailure(username=username, client_addr=client_addr[:64]))
    session.commit()


class SecondFactorRequired(NotAuthenticated):
    """The password was right, and the account signs in with a code as well."""

    def __init__(self) -> None:
        super().__init__("mfa_required")


@dataclass(frozen=True)
class SignIn:
    """The first step's outcome: a session (`token`), or a code still to come (`pending_token`,
    for `complete_sign_in`)."""

    user: User
    token: str | None = None
    auth_session: AuthSession | None = None
    pending_token: str | None = None


def _clean(text: str) -> str:
    # PostgreSQL text cannot hold NUL: such a name matches nobody, and is counted as typed.
    return text.replace("\x00", "\ufffd")


def _check_password(
    session: Session, settings: Settings, username: str, password: str, client_addr: str
) -> User:
    _check_throttle(session, settings, username, client_addr)
    user = session.exec(select(User).where(User.username == username)).first()
    valid, updated_hash = password_hasher.verify_and_update(
        password, user.password_hash if user else _DUMMY_HASH
    )
    if user is None or not valid or not user.is_active:
        _record_failure(session, username, client_addr)
        raise NotAuthenticated("wrong username or password")
    if updated_hash:  # parameters moved on since this hash was made
        user.password_hash = updated_hash
        session.add(user)
    return user


def has_second_factor(user: User) -> bool:
    return user.totp_enabled_at is not None and user.totp_secret_sealed is not None


def use_totp_code(
    session: Session, settings: Settings, user: User, code: str, now: dt.datetime | None = None
) -> bool:
    """Whether `code` is the user's current TOTP code and its time step was not used before;
    the step is then recorded, by one conditional UPDATE, so of two requests racing with the
    same code one wins (PostgreSQL re-checks the condition after the first commits)."""
    if user.totp_secret_sealed is None:
        return False
    try:
        secret = unseal(settings.secret_key, user.totp_secret_sealed)
    except SealBroken:
        log.warning("a TOTP seed cannot be unsealed: was WELFARE_SECRET_KEY changed?")
        return False
    step = totp.matching_step(secret, code, now or utcnow())
    if step is None:
        return False
    done = session.exec(
        update(User)
        .where(
            col(User.id) == user.id,
            or_(col(User.totp_last_step).is_(None), col(User.totp_last_step) < step),
        )
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    return bool(done)


def use_recovery_code(session: Session, user: User, code: str) -> bool:
    """Whether `code` is one of the user's unused recovery codes; it is then used up (one
    conditional UPDATE: of two requests racing with the same code, one wins)."""
    code_hash = totp.hash_recovery_code(code)
    if code_hash is None:
        return False
    done = session.exec(
        update(RecoveryCode)
        .where(
            col(RecoveryCode.user_id) == user.id,
            col(RecoveryCode.code_hash) == code_hash,
            col(RecoveryCode.used_at).is_(None),
        )
        .values(used_at=utcnow())
    ).rowcount  # type: ignore[attr-defined]
    return bool(done)


def check_own_code(
    *, session: Session, settings: Settings, user: User, client_addr: str | None, code: str
) -> None:
    """A signed-in user's TOTP code, for a change to their own second factor: InvalidInput
    when wrong or already used, counted and throttled like a wrong password (a stolen session
    gets no more guesses than a stranger)."""
    addr = _clean(client_addr or "unknown")
    _check_throttle(session, settings, user.username, addr, _CODE_THROTTLED)
    if not use_totp_code(session, settings, user, code):
        _record_failure(session, user.username, addr)
        raise InvalidInput("code", "the code is not right, or was used already")


def _verify_second_factor(
    session: Session,
    settings: Settings,
    user: User,
    client_addr: str,
    *,
    otp: str | None,
    recovery_code: str | None,
) -> str:
    """Which second factor the code proves ("totp" or "recovery"), or NotAuthenticated.

    Wrong codes count as failed sign-ins of the account and the address (the password's
    throttle, so a known password gives no more guesses at the code than a stranger gets at
    the password)."""
    _check_throttle(session, settings, user.username, client_addr)
    if otp and use_totp_code(session, settings, user, otp):
        return "totp"
    if not otp and recovery_code and use_recovery_code(session, user, recovery_code):
        left = session.exec(
            select(func.count()).where(
                col(RecoveryCode.user_id) == user.id, col(RecoveryCode.used_at).is_(None)
            )
        ).one()
        audit_record(
            session,
            actor=Actor(user_id=user.id, role=user.role, client_addr=client_addr),
            action="auth.recovery_code_used",
            entity="user",
            entity_id=user.id,
            detail={"recovery_codes_left": left},
        )
        return "recovery"
    _record_failure(session, user.username, client_addr)
    raise NotAuthenticated("wrong code")


def open_session(
    session: Session,
    settings: Settings,
    user: User,
    *,
    client_addr: str,
    user_agent: str | None,
    language: str | None = None,
    second_factor: str | None = None,
    detail: dict[str, Any] | None = None,
) -> tuple[str, AuthSession]:
    """A new sign-in for a user whose credentials were just checked, audited as `auth.sign_in`
    (with `detail` saying how, when not by password alone); the raw token is returned once."""
    session.exec(delete(LoginFailure).where(col(LoginFailure.username) == user.username))
    token = secrets.token_urlsafe(32)
    now = utcnow()
    auth_session = AuthSession(
        user_id=user.id,
        token_hash=hash_token(token),
        created_at=now,
        last_seen_at=now,
        expires_at=now + dt.timedelta(hours=settings.session_ttl_hours),
        client_addr=client_addr[:64],
        user_agent=(user_agent or "")[:300] or None,
        second_factor=second_factor,
    )
    session.add(auth_session)
    actor = Actor(user_id=user.id, role=user.role, client_addr=client_addr)
    detail = dict(detail or {})
    if second_factor:
        detail["second_factor"] = second_factor
    if language in UI_LANGUAGES and language != user.language:
        detail["language"] = language
        user.language = language
        session.add(user)
    audit_record(
        session,
        actor=actor,
        action="auth.sign_in",
        entity="session",
        entity_id=auth_session.id,
        detail=detail or None,
    )
    return token, auth_session


def authenticate(
    *,
    session: Session,
    settings: Settings,
    username: str,
    password: str,
    client_addr: str,
    user_agent: str | None = None,
    language: str | None = None,
    otp: str | None = None,
    recovery_code: str | None = None,
) -> tuple[str, AuthSession, User]:
    """Check the password (and, for an account with TOTP, the code) and open a session; the raw
    token is returned once and never stored. SecondFactorRequired when the code is missing.

    `language` is a UI language the person picked on the sign-in page just now: it becomes
    their language, as if saved in their account settings (a language merely remembered by the
    device, perhaps from someone else, is not passed and changes nothing).
    """
    username = _clean(username.strip().lower())[:256]
    client_addr = _clean(client_addr)
    user_agent = _clean(user_agent) if user_agent else None
    user = _check_password(session, settings, username, password, client_addr)
    second_factor = None
    if has_second_factor(user):
        if not otp and not recovery_code:
            raise SecondFactorRequired()
        second_factor = _verify_second_factor(
            session, settings, user, client_addr, otp=otp, recovery_code=recovery_code
        )
    token, auth_session = open_session(
        session,
        settings,
        user,
        client_addr=client_addr,
        user_agent=user_agent,
        language=language,
        second_factor=second_factor,
    )
    return token, auth_session, user


def begin_sign_in(
    *,
    session: Session,
    settings: Settings,
    username: str,
    password: str,
    client_addr: str,
    user_agent: str | None = None,
    language: str | None = None,
) -> SignIn:
    """The sign-in page's first step: the password. An account with TOTP gets no session yet,
    only a short-lived, signed, single-use token for the code step (`complete_sign_in`)."""
    username = _clean(username.strip().lower())[:256]
    client_addr = _clean(client_addr)
    user = _check_password(session, settings, username, password, client_addr)
    if has_second_factor(user):
        now = utcnow()
        challenge = SignInChallenge(
            user_id=user.id, created_at=now, expires_at=now + SIGN_IN_CHALLENGE_TTL
        )
        session.add(challenge)
        return SignIn(user=user, pending_token=_challenge_token(settings, challenge.id))
    token, auth_session = open_session(
        session,
        settings,
        user,
        client_addr=client_addr,
        user_agent=_clean(user_agent) if user_agent else None,
        language=language,
        second_factor=None,
    )
    return SignIn(user=user, token=token, auth_session=auth_session)


def complete_sign_in(
    *,
    session: Session,
    settings: Settings,
    pending_token: str,
    client_addr: str,
    user_agent: str | None = None,
    language: str | None = None,
    otp: str | None = None,
    recovery_code: str | None = None,
) -> tuple[str, AuthSession, User]:
    """The code step: NotAuthenticated("sign-in expired") when the pending token is forged,
    expired or used, NotAuthenticated("wrong code") (throttled) when the code is wrong."""
    client_addr = _clean(client_addr)
    challenge = _open_challenge(session, settings, pending_token)
    user = session.get(User, challenge.user_id)
    if user is None or not user.is_active or not has_second_factor(user):
        raise NotAuthenticated(SIGN_IN_EXPIRED)
    second_factor = _verify_second_factor(
        session, settings, user, client_addr, otp=otp, recovery_code=recovery_code
    )
    used = session.exec(
        update(SignInChallenge)
        .where(col(SignInChallenge.id) == challenge.id, col(SignInChallenge.used_at).is_(None))
        .values(used_at=utcnow())
    ).rowcount  # type: ignore[attr-defined]
    if not used:
        raise NotAuthenticated(SIGN_IN_EXPIRED)
    token, auth_session = open_session(
        session,
        settings,
        user,
        client_addr=client_addr,
        user_agent=_clean(user_agent) if user_agent else None,
        language=language,
        second_factor=second_factor,
    )
    return token, auth_session, user


SIGN_IN_CHALLENGE_TTL = dt.timedelta(minutes=5)
_CHALLENGE_PURPOSE = "welfare-sign-in-challenge:"
SIGN_IN_EXPIRED = "sign-in expired; enter your username and password again"


def _challenge_signature(settings: Settings, challenge_id: uuid.UUID) -> str:
    message = (_CHALLENGE_PURPOSE + challenge_id.hex).encode()
    return hmac.new(settings.secret_key.encode(), message, "sha256").hexdigest()


def _challenge_token(settings: Settings, challenge_id: uuid.UUID) -> str:
    return f"{challenge_id.hex}.{_challenge_signature(settings, challenge_id)}"


def _open_challenge(session: Session, settings: Settings, token: str) -> SignInChallenge:
    raw_id, _, signature = token.partition(".")
    try:
        challenge_id = uuid.UUID(hex=raw_id)
    except ValueError:
        raise NotAuthenticated(SIGN_IN_EXPIRED) from None
    expected = _challenge_signature(settings, challenge_id).encode()
    if not hmac.compare_digest(signature.encode("latin-1", "replace"), expected):
        raise NotAuthenticated(SIGN_IN_EXPIRED)
    challenge = session.get(SignInChallenge, challenge_id)
    if challenge is None or challenge.used_at is not None or challenge.expires_at <= utcnow():
        raise NotAuthenticated(SIGN_IN_EXPIRED)
    return challenge


def unusable_password_hash() -> str:
    """For accounts made by company sign-in: a hash no typed password matches, until an admin
    sets one."""
    return password_hasher.hash(secrets.token_urlsafe(32))


def actor_for_token(
    session: Session,
    token: str,
    client_addr: str | None,
    *,
    settings: Settings,
    now: dt.datetime | None = None,
) -> Actor:
    """The Actor behind a bearer token or cookie, or NotAuthenticated.

    `session` is a read session of the caller's own (see `api.deps.auth_session`): at most once
    a minute per sign-in it also records when the session was last used, and it marks an idle
    session revoked; both writes are committed here and skipped rather than waited for.
    """
    now = now or utcnow()
    # One statement on every request: the session, its user and the user's sites (a row each).
    rows = session.exec(
        select(
            AuthSession,
            User,
            UserSite.site_id,
            Site.require_second_factor_staff,
            Site.require_second_factor_guards,
        )
        .join(User, col(User.id) == AuthSession.user_id)
        .outerjoin(UserSite, col(UserSite.user_id) == User.id)
        .outerjoin(Site, col(Site.id) == UserSite.site_id)
        .where(AuthSession.token_hash == hash_token(token))
    ).all()
    if not rows:
        raise NotAuthenticated("not signed in")
    auth_session, user, *_ = rows[0]
    if auth_session.revoked_at is not None or auth_session.expires_at <= now:
        raise NotAuthenticated("session expired or signed out; sign in again")
    if not user.is_active:
        raise NotAuthenticated("account disabled")
    if session_rules.is_idle(auth_session.last_seen_at, user.role, settings, now):
        write_without_waiting(
            session,
            update(AuthSession)
            .where(_unlocked(auth_session.id), col(AuthSession.revoked_at).is_(None))
            .values(revoked_at=now),
        )
        raise NotAuthenticated("session expired or signed out; sign in again")
    enrolment_only = False
    if not session_rules.satisfies_second_factor(auth_session.second_factor):
        own_sites = [(staff, guards) for _, _, site_id, staff, guards in rows if site_id]
        enrolment_only = session_rules.second_factor_required(
            user.role,
            own_sites,
            user.role == Role.admin and _any_site_requires_second_factor(session),
        )
    actor = Actor(
        user_id=user.id,
        role=user.role,
        site_ids=frozenset(site_id for _, _, site_id, _, _ in rows if site_id is not None),
        client_addr=client_addr,
        session_id=auth_session.id,
        enrolment_only=enrolment_only,
    )
    if session_rules.needs_touch(auth_session.last_seen_at, now):
        # Conditional: of requests racing past the check above, one writes.
        write_without_waiting(
            session,
            update(AuthSession)
            .where(
                _unlocked(auth_session.id),
                col(AuthSession.last_seen_at) <= now - session_rules.TOUCH_EVERY,
            )
            .values(last_seen_at=now),
        )
    return actor


def _any_site_requires_second_factor(session: Session) -> bool:
    query = select(Site.id).where(col(Site.require_second_factor_staff).is_(True)).limit(1)
    return session.exec(query).first() is not None


def _unlocked(session_id: uuid.UUID) -> Any:
    """`auth_session.id = :id`, unless another transaction has that row locked (PostgreSQL
    skips it instead of waiting; SQLite has no row locks)."""
    return col(AuthSession.id).in_(
        select(AuthSession.id)
        .where(col(AuthSession.id) == session_id)
        .with_for_update(skip_locked=True)
    )


# --- the sessions a user can see -------------------------------------------------------------


def _active_sessions(
    session: Session, settings: Settings, user: User, now: dt.datetime
) -> list[AuthSession]:
    rows = session.exec(
        select(AuthSession)
        .where(
            col(AuthSession.user_id) == user.id,
            col(AuthSession.revoked_at).is_(None),
            col(AuthSession.expires_at) > now,
        )
        .order_by(col(AuthSession.last_seen_at).desc())
    ).all()
    return [
        row for row in rows if not session_rules.is_idle(row.last_seen_at, user.role, settings, now)
    ]


def _session_public(row: AuthSession, current: uuid.UUID | None) -> SessionPublic:
    return SessionPublic(
        id=row.id,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        expires_at=row.expires_at,
        device=session_rules.describe_device(row.user_agent),
        client_addr=row.client_addr,
        current=row.id == current,
    )


def list_own_sessions(
    *, session: Session, settings: Settings, actor: Actor, now: dt.datetime | None = None
) -> list[SessionPublic]:
    """The actor's sessions still in use, most recently used first."""
    user = current_user(session=session, actor=actor)
    rows = _active_sessions(session, settings, user, now or utcnow())
    return [_session_public(row, actor.session_id) for row in rows]


def _revoke_one(session: Session, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
    done = session.exec(
        update(AuthSession)
        .where(
            col(AuthSession.id) == session_id,
            col(AuthSession.user_id) == user_id,
            col(AuthSession.revoked_at).is_(None),
        )
        .values(revoked_at=utcnow())
    ).rowcount  # type: ignore[attr-defined]
    if not done:
        raise NotFound("session")


def revoke_own_session(*, session: Session, actor: Actor, session_id: uuid.UUID) -> None:
    """Sign one of one's own sessions out (the current one too: that is signing out)."""
    user = current_user(session=session, actor=actor)
    _revoke_one(session, user.id, session_id)
    audit_record(
        session, actor=actor, action="auth.revoke_session", entity="session", entity_id=session_id
    )


def revoke_other_sessions(*, session: Session, actor: Actor) -> int:
    """Sign out every session of the actor but the one making the request."""
    user = current_user(session=session, actor=actor)
    count = revoke_sessions(session=session, user_id=user.id, keep=actor.session_id)
    audit_record(
        session,
        actor=actor,
        action="auth.sign_out_others",
        entity="user",
        entity_id=user.id,
        detail={"sessions": count},
    )
    return count


def admin_list_sessions(
    *,
    session: Session,
    settings: Settings,
    actor: Actor,
    user_id: uuid.UUID,
    now: dt.datetime | None = None,
) -> list[SessionPublic]:
    user = get_user(session=session, actor=actor, user_id=user_id)
    rows = _active_sessions(session, settings, user, now or utcnow())
    return [_session_public(row, actor.session_id) for row in rows]


def admin_revoke_session(
    *, session: Session, actor: Actor, user_id: uuid.UUID, session_id: uuid.UUID
) -> None:
    get_user(session=session, actor=actor, user_id=user_id)
    _revoke_one(session, user_id, session_id)
    audit_record(
        session,
        actor=actor,
        action="user.revoke_session",
        entity="session",
        entity_id=session_id,
        detail={"user_id": str(user_id)},
    )


def sign_out(*, session: Session, actor: Actor) -> None:
    if actor.session_id is None:
        return
    session.exec(
        update(AuthSession)
        .where(col(AuthSession.id) == actor.session_id)
        .values(revoked_at=utcnow())
    )
    audit_record(
        session, actor=actor, action="auth.sign_out", entity="session", entity_id=actor.session_id
    )


def sign_out_everywhere(*, session: Session, actor: Actor) -> int:
    if actor.user_id is None:
        return 0
    count = revoke_sessions(session=session, user_id=actor.user_id)
    audit_record(
        session,
        actor=actor,
        action="auth.sign_out_everywhere",
        entity="user",
        entity_id=actor.user_id,
        detail={"sessions": count},
    )
    return count


def current_user(*, session: Session, actor: Actor) -> User:
    if actor.user_id is None:
        raise NotAuthenticated("not signed in")
    user = session.get(User, actor.user_id)
    if user is None:
        raise NotAuthenticated("not signed in")
    return user


def set_duty(*, session: Session, actor: Actor, on_duty: bool) -> User:
    """Guards on duty get missing-resident alerts; managers on duty get escalations."""
    require(actor, Permission.guard_ops)
    user = current_user(session=session, actor=actor)
    if on_duty and user.on_duty_since is None:
        user.on_duty_since = utcnow()
    elif not on_duty:
        user.on_duty_since = None
    session.add(user)
    audit_record(
        session,
        actor=actor,
        action="user.on_duty" if on_duty else "user.off_duty",
        entity="user",
        entity_id=user.id,
    )
    return user


def update_profile(*, session: Session, actor: Actor, data: ProfileUpdate) -> User:
    user = current_user(session=session, actor=actor)
    changes = data.model_dump(exclude_unset=True)
    if changes.get("display_name"):
        user.display_name = changes["display_name"]
    if changes.get("language"):
        user.language = changes["language"]
    if "phone" in changes:
        user.phone = _user_phone(session, changes["phone"], site_ids_of(session, user.id))
    session.add(user)
    audit_record(
        session,
        actor=actor,
        action="user.update_profile",
        entity="user",
        entity_id=user.id,
        detail={"fields": sorted(changes)},
    )
    return user


def change_password(
    *, session: Session, settings: Settings, actor: Actor, data: PasswordChange
) -> None:
    """Change one's own password; every other session of the user is signed out.

    A wrong current password counts as a failed sign-in of this account from this address,
    and the same limits apply (Throttled), so a stolen session cannot guess the password.
    """
    user = current_user(session=session, actor=actor)
    client_addr = (actor.client_addr or "unknown").replace("\x00", "\ufffd")
    _check_throttle(session, settings, user.username, client_addr, _PASSWORD_THROTTLED)
    if not password_hasher.verify(data.current_password, user.password_hash):
        _record_failure(session, user.username, client_addr)
        raise InvalidInput("current_password", "the current password is wrong")
    if data.new_password == data.current_password:
        raise InvalidInput("new_password", "the new password must differ from the current one")
    user.password_hash = password_hasher.hash(data.new_password)
    user.password_changed_at = utcnow()
    session.add(user)
    session.exec(delete(LoginFailure).where(col(LoginFailure.username) == user.username))
    revoke_sessions(session=session, user_id=user.id, keep=actor.session_id)
    audit_record(
        session, actor=actor, action="user.change_password", entity="user", entity_id=user.id
    )


def prune_login_failures(*, session: Session, settings: Settings) -> int:
    cutoff = utcnow() - dt.timedelta(minutes=settings.login_window_minutes)
    return session.exec(delete(LoginFailure).where(col(LoginFailure.at) < cutoff)).rowcount  # type: ignore[call-overload,attr-defined]
