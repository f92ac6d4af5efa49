"""A user's second factor: setting up TOTP, recovery codes, turning it off, an admin's reset.

Signing in with it is in `welfare.users.service` (`authenticate`, `begin_sign_in`,
`complete_sign_in`), and whether a session satisfied the requirement in
`welfare.users.session_rules.satisfies_second_factor`.

- The TOTP seed is sealed at rest (`welfare.sealed`): it must be read back to check codes.
  Enrolment stores it as soon as it is shown; it counts only once a first code confirmed it.
- Ten recovery codes are made at enrolment and on request, shown once, stored as hashes; each
  signs in once. Making new ones voids the old.
- Confirming enrolment makes the current session a two-factor one and signs every other
  session out, as a password change does.
- Every change is audited; no secret, code or hash ever goes into the audit detail.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import delete, update
from sqlmodel import Session, col, func, select

from welfare.audit.service import record as audit_record
from welfare.authz import Actor, Role
from welfare.db import utcnow
from welfare.errors import Conflict
from welfare.sealed import SealBroken, seal, unseal
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.users import service as users
from welfare.users import session_rules, totp
from welfare.users.models import AuthSession, RecoveryCode, SecondFactorStatus, User, UserSite


@dataclass(frozen=True)
class Enrolment:
    """What the account page shows to set up an authenticator app."""

    secret: str  # in groups of four, to type in by hand
    uri: str  # otpauth://, what the QR code holds
    qr_data_uri: str


def required_for(session: Session, user: User) -> bool:
    """Whether the user's sites (for an admin: any site) require a second factor of them."""
    own = session.exec(
        select(Site.require_second_factor_staff, Site.require_second_factor_guards)
        .join(UserSite, col(UserSite.site_id) == Site.id)
        .where(col(UserSite.user_id) == user.id)
    ).all()
    any_site = user.role == Role.admin and (
        session.exec(
            select(Site.id).where(col(Site.require_second_factor_staff).is_(True)).limit(1)
        ).first()
        is not None
    )
    return session_rules.second_factor_required(user.role, [tuple(row) for row in own], any_site)


def _codes_left(session: Session, user: User) -> int:
    return session.exec(
        select(func.count()).where(
            col(RecoveryCode.user_id) == user.id, col(RecoveryCode.used_at).is_(None)
        )
    ).one()


def status_of(session: Session, user: User) -> SecondFactorStatus:
    return SecondFactorStatus(
        enabled=users.has_second_factor(user),
        enabled_at=user.totp_enabled_at,
        recovery_codes_left=_codes_left(session, user) if users.has_second_factor(user) else 0,
        required=required_for(session, user),
    )


def own_status(*, session: Session, actor: Actor) -> SecondFactorStatus:
    return status_of(session, users.current_user(session=session, actor=actor))


def _enrolment(user: User, secret: str) -> Enrolment:
    uri = totp.provisioning_uri(secret, user.username)
    return Enrolment(secret=totp.grouped(secret), uri=uri, qr_data_uri=totp.qr_svg_data_uri(uri))


def start_enrolment(*, session: Session, settings: Settings, actor: Actor) -> Enrolment:
    """A new seed, sealed on the user, not yet in force (a first code confirms it)."""
    user = users.current_user(session=session, actor=actor)
    if users.has_second_factor(user):
        raise Conflict("two-factor sign-in is already on")
    secret = totp.new_secret()
    user.totp_secret_sealed = seal(settings.secret_key, secret)
    user.totp_enabled_at = None
    user.totp_last_step = None
    session.add(user)
    return _enrolment(user, secret)


def pending_enrolment(*, session: Session, settings: Settings, actor: Actor) -> Enrolment | None:
    """The enrolment started and not yet confirmed, to show again (None if there is none)."""
    user = users.current_user(session=session, actor=actor)
    if users.has_second_factor(user) or user.totp_secret_sealed is None:
        return None
    try:
        return _enrolment(user, unseal(settings.secret_key, user.totp_secret_sealed))
    except SealBroken:
        return None  # sealed under an older secret key: start again


def _new_recovery_codes(session: Session, user: User) -> list[str]:
    session.exec(delete(RecoveryCode).where(col(RecoveryCode.user_id) == user.id))
    codes = totp.new_recovery_codes()
    for code in codes:
        code_hash = totp.hash_recovery_code(code)
        assert code_hash is not None  # made by new_recovery_codes, so always well formed
        session.add(RecoveryCode(user_id=user.id, code_hash=code_hash))
    return codes


def confirm_enrolment(
    *, session: Session, settings: Settings, actor: Actor, code: str
) -> list[str]:
    """Turn TOTP on with a first code from the app; returns the recovery codes, shown once."""
    user = users.current_user(session=session, actor=actor)
    if users.has_second_factor(user):
        raise Conflict("two-factor sign-in is already on")
    if user.totp_secret_sealed is None:
        raise Conflict("start setting up two-factor sign-in first")
    users.check_own_code(
        session=session, settings=settings, user=user, client_addr=actor.client_addr, code=code
    )
    user.totp_enabled_at = utcnow()
    session.add(user)
    codes = _new_recovery_codes(session, user)
    if actor.session_id is not None:
        # This session has just shown a code: it is a two-factor session from now on.
        session.exec(
            update(AuthSession)
            .where(col(AuthSession.id) == actor.session_id)
            .values(second_factor="totp")
        )
    signed_out = users.revoke_sessions(session=session, user_id=user.id, keep=actor.session_id)
    audit_record(
        session,
        actor=actor,
        action="user.second_factor_enrol",
        entity="user",
        entity_id=user.id,
        detail={"method": "totp", "sessions_signed_out": signed_out},
    )
    return codes


def regenerate_recovery_codes(
    *, session: Session, settings: Settings, actor: Actor, code: str
) -> list[str]:
    """Ten new recovery codes (the old ones stop working), for a current TOTP code."""
    user = users.current_user(session=session, actor=actor)
    if not users.has_second_factor(user):
        raise Conflict("two-factor sign-in is not on")
    users.check_own_code(
        session=session, settings=settings, user=user, client_addr=actor.client_addr, code=code
    )
    codes = _new_recovery_codes(session, user)
    audit_record(
        session,
        actor=actor,
        action="user.recovery_codes_regenerate",
        entity="user",
        entity_id=user.id,
    )
    return codes


def _clear(session: Session, user: User) -> None:
    user.totp_secret_sealed = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    session.add(user)
    session.exec(delete(RecoveryCode).where(col(RecoveryCode.user_id) == user.id))


def disable_own(*, session: Session, settings: Settings, actor: Actor, code: str) -> None:
    """Turn one's own TOTP off, for a current code; refused where a site requires it."""
    user = users.current_user(session=session, actor=actor)
    if not users.has_second_factor(user):
        raise Conflict("two-factor sign-in is not on")
    if required_for(session, user):
        raise Conflict("your site requires two-factor sign-in; it cannot be turned off")
    users.check_own_code(
        session=session, settings=settings, user=user, client_addr=actor.client_addr, code=code
    )
    _clear(session, user)
    audit_record(
        session, actor=actor, action="user.second_factor_disable", entity="user", entity_id=user.id
    )


def admin_reset(*, session: Session, actor: Actor, user_id: uuid.UUID) -> int:
    """An admin removes a user's second factor (a lost phone): their TOTP and recovery codes
    go, and so do their sessions. Where it is required, the next sign-in enrols again.
    Returns how many sessions were signed out."""
    user = users.get_user(session=session, actor=actor, user_id=user_id)
    had = users.has_second_factor(user)
    _clear(session, user)
    signed_out = users.revoke_sessions(session=session, user_id=user.id)
    audit_record(
        session,
        actor=actor,
        action="user.second_factor_reset",
        entity="user",
        entity_id=user.id,
        detail={"had_second_factor": had, "sessions_signed_out": signed_out},
    )
    return signed_out
