"""Quick sign-in for guards on a shared phone: a short PIN, bound to the phone it was set on.

Guards change shifts on one phone, and typing a full password with one hand at the start of a
patrol is what makes people share accounts. So a guard who has signed in fully on a phone may
set a PIN there. The phone is known by a long random token kept in a cookie (only its hash is
stored); the PIN works only together with that token, so it is a second thing the guard has
(the phone) plus a short thing they know. A few wrong PINs lock it until the next full sign-in,
and the address and account limits of password sign-in apply too.
"""

from __future__ import annotations

import itertools
import secrets
import uuid

from sqlalchemy import update
from sqlmodel import Session, col, select

from welfare.audit.service import record as audit_record
from welfare.authz import Actor, Permission, Role, require
from welfare.db import insert_unless_conflict, utcnow
from welfare.errors import InvalidInput, NotAuthenticated, NotFound, PermissionDenied
from welfare.settings import Settings
from welfare.users import session_rules
from welfare.users.models import (
    AuthSession,
    DevicePin,
    DevicePinPublic,
    PinSetup,
    SharedDevice,
    User,
)
from welfare.users.service import (
    _check_throttle,
    _record_failure,
    current_user,
    hash_token,
    open_session,
    password_hasher,
)

# Wrong PINs in a row before the PIN stops working (a six-digit PIN: 5 guesses in a million).
PIN_LOCK_AFTER = 5
PIN_DIGITS = (6, 8)
_WRONG_PIN = "wrong PIN"
_NOT_SET_UP = "quick sign-in is not set up on this phone; sign in with your password"


class WrongPin(NotAuthenticated):
    def __init__(self, tries_left: int) -> None:
        super().__init__(_WRONG_PIN)
        self.tries_left = tries_left  # 0: the PIN is locked now


def check_pin(pin: str) -> None:
    """6 to 8 digits, not all the same and not a run such as 123456 or 987654."""
    low, high = PIN_DIGITS
    if not (low <= len(pin) <= high) or not pin.isascii() or not pin.isdigit():
        raise InvalidInput("pin", f"the PIN must be {low} to {high} digits")
    steps = {(int(b) - int(a)) % 10 for a, b in itertools.pairwise(pin)}
    if steps in ({0}, {1}, {9}):
        raise InvalidInput("pin", "the PIN is too easy to guess: avoid repeats and runs")


def new_device_token() -> str:
    return secrets.token_urlsafe(32)


def _device(session: Session, device_token: str | None) -> SharedDevice | None:
    if not device_token or len(device_token) > 100:
        return None
    return session.exec(
        select(SharedDevice).where(SharedDevice.token_hash == hash_token(device_token))
    ).first()


def guards_on_device(session: Session, device_token: str | None) -> list[tuple[DevicePin, User]]:
    """Whose PIN works on this phone: active guards with a PIN that is not revoked."""
    device = _device(session, device_token)
    if device is None:
        return []
    rows = session.exec(
        select(DevicePin, User)
        .join(User, col(User.id) == DevicePin.user_id)
        .where(
            DevicePin.device_id == device.id,
            col(DevicePin.revoked_at).is_(None),
            col(User.is_active).is_(True),
            User.role == Role.guard,
        )
        .order_by(col(User.display_name), col(User.id))
    ).all()
    return [(pin, user) for pin, user in rows]


def set_up(
    *,
    session: Session,
    settings: Settings,
    actor: Actor,
    data: PinSetup,
    device_token: str | None,
    user_agent: str | None,
) -> str:
    """Set (or replace) the signed-in guard's PIN on this phone; returns the phone's token.

    The current password is asked for: setting a PIN must be a full sign-in's act, not
    something a session left open on the phone can do."""
    user = current_user(session=session, actor=actor)
    if user.role is not Role.guard:
        raise PermissionDenied("quick sign-in with a PIN is for guards on shared phones")
    client_addr = (actor.client_addr or "unknown").replace("\x00", "\ufffd")
    _check_throttle(session, settings, user.username, client_addr)
    if not password_hasher.verify(data.current_password, user.password_hash):
        _record_failure(session, user.username, client_addr)
        raise InvalidInput("current_password", "the current password is wrong")
    check_pin(data.pin)
    device = _device(session, device_token)
    token = device_token or ""
    if device is None:
        token = new_device_token()
        device = SharedDevice(
            token_hash=hash_token(token),
            created_by=user.id,
            user_agent=(user_agent or "")[:300].replace("\x00", "\ufffd") or None,
        )
        session.add(device)
        session.flush()
    pin_hash = password_hasher.hash(data.pin)
    row = DevicePin(device_id=device.id, user_id=user.id, pin_hash=pin_hash)
    if not insert_unless_conflict(session, row):  # a PIN of this guard's on this phone already
        session.exec(
            update(DevicePin)
            .where(col(DevicePin.device_id) == device.id, col(DevicePin.user_id) == user.id)
            .values(pin_hash=pin_hash, failures=0, revoked_at=None, created_at=utcnow())
        )
    audit_record(
        session,
        actor=actor,
        action="auth.pin_set",
        entity="shared_device",
        entity_id=device.id,
    )
    return token


def sign_in(
    *,
    session: Session,
    settings: Settings,
    device_token: str | None,
    pin_id: uuid.UUID,
    pin: str,
    client_addr: str,
    user_agent: str | None,
) -> tuple[str, AuthSession, User]:
    """Open a session with a PIN on the phone it was set on, or NotAuthenticated.

    Wrong PINs count against the PIN (locked after PIN_LOCK_AFTER in a row) and, like wrong
    passwords, against the account and the address (Throttled)."""
    client_addr = client_addr.replace("\x00", "\ufffd")
    device = _device(session, device_token)
    found = (
        session.exec(
            select(DevicePin, User)
            .join(User, col(User.id) == DevicePin.user_id)
            .where(
                DevicePin.id == pin_id,
                DevicePin.device_id == device.id,
                col(DevicePin.revoked_at).is_(None),
            )
        ).first()
        if device is not None
        else None
    )
    if found is None:
        raise NotAuthenticated(_NOT_SET_UP)
    row, user = found
    _check_throttle(session, settings, user.username, client_addr)
    if not password_hasher.verify(pin.replace("\x00", ""), row.pin_hash):
        raise WrongPin(_count_wrong_pin(session, row, user, client_addr))
    if not user.is_active or user.role is not Role.guard:
        raise NotAuthenticated(_NOT_SET_UP)
    now = utcnow()
    session.exec(
        update(DevicePin).where(col(DevicePin.id) == row.id).values(failures=0, last_used_at=now)
    )
    # The phone's token (something the guard has) and the PIN (something they know), set up
    # after a full sign-in there, count as the second factor.
    token, auth_session = open_session(
        session,
        settings,
        user,
        client_addr=client_addr,
        user_agent=user_agent,
        language=None,
        second_factor="device_pin",
        detail={"method": "pin", "device_id": str(row.device_id)},
    )
    return token, auth_session, user


def _count_wrong_pin(session: Session, row: DevicePin, user: User, client_addr: str) -> int:
    """One more wrong try, counted in the database (racing tries each count); the try that
    reaches the limit locks the PIN, once. Committed with the sign-in failure. Returns the
    tries left."""
    failures = session.exec(
        update(DevicePin)
        .where(col(DevicePin.id) == row.id)
        .values(failures=DevicePin.failures + 1)
        .returning(DevicePin.failures)
    ).scalar_one()
    locked = session.exec(
        update(DevicePin)
        .where(
            col(DevicePin.id) == row.id,
            col(DevicePin.failures) >= PIN_LOCK_AFTER,
            col(DevicePin.revoked_at).is_(None),
        )
        .values(revoked_at=utcnow())
    ).rowcount  # type: ignore[attr-defined]
    if locked:
        audit_record(
            session,
            actor=Actor(user_id=user.id, role=user.role, client_addr=client_addr),
            action="auth.pin_locked",
            entity="shared_device",
            entity_id=row.device_id,
            detail={"wrong_tries": PIN_LOCK_AFTER},
        )
    _record_failure(session, user.username, client_addr)  # commits
    return max(0, PIN_LOCK_AFTER - failures)


def _public(
    session: Session, rows: list[DevicePin], device_token: str | None
) -> list[DevicePinPublic]:
    this_device = _device(session, device_token)
    devices = (
        {
            d.id: d
            for d in session.exec(
                select(SharedDevice).where(col(SharedDevice.id).in_({r.device_id for r in rows}))
            )
        }
        if rows
        else {}
    )
    return [
        DevicePinPublic(
            id=r.id,
            device=session_rules.describe_device(devices[r.device_id].user_agent),
            created_at=r.created_at,
            last_used_at=r.last_used_at,
            this_device=this_device is not None and r.device_id == this_device.id,
        )
        for r in rows
    ]


def _active_pins(session: Session, user_id: uuid.UUID) -> list[DevicePin]:
    return list(
        session.exec(
            select(DevicePin)
            .where(DevicePin.user_id == user_id, col(DevicePin.revoked_at).is_(None))
            .order_by(col(DevicePin.created_at).desc(), col(DevicePin.id))
        ).all()
    )


def list_own(
    *, session: Session, actor: Actor, device_token: str | None = None
) -> list[DevicePinPublic]:
    if actor.user_id is None:
        return []
    return _public(session, _active_pins(session, actor.user_id), device_token)


def revoke_own(*, session: Session, actor: Actor, pin_id: uuid.UUID) -> None:
    revoked = session.exec(
        update(DevicePin)
        .where(
            col(DevicePin.id) == pin_id,
            col(DevicePin.user_id) == actor.user_id,
            col(DevicePin.revoked_at).is_(None),
        )
        .values(revoked_at=utcnow())
    ).rowcount  # type: ignore[attr-defined]
    if not revoked:
        raise NotFound("no such quick sign-in")
    audit_record(
        session, actor=actor, action="auth.pin_removed", entity="device_pin", entity_id=pin_id
    )


def admin_list(*, session: Session, actor: Actor, user_id: uuid.UUID) -> list[DevicePinPublic]:
    require(actor, Permission.users_manage)
    if session.get(User, user_id) is None:
        raise NotFound("user not found")
    return _public(session, _active_pins(session, user_id), None)


def admin_revoke_all(*, session: Session, actor: Actor, user_id: uuid.UUID) -> int:
    """An admin ends every quick sign-in of a user (a lost phone, a guard who left)."""
    require(actor, Permission.users_manage)
    if session.get(User, user_id) is None:
        raise NotFound("user not found")
    count = session.exec(
        update(DevicePin)
        .where(col(DevicePin.user_id) == user_id, col(DevicePin.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    ).rowcount  # type: ignore[attr-defined]
    audit_record(
        session,
        actor=actor,
        action="user.pins_revoked",
        entity="user",
        entity_id=user_id,
        detail={"count": count},
    )
    return count
