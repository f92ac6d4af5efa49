"""Push subscriptions, the VAPID key pair, and SMS as the fallback when a push fails.

A signed-in user subscribes a phone (`subscribe`); the escalation then queues a `push` row for
them instead of the SMS (`target_for`). The row keeps the user's phone in `to_phone` (so the
gate's rule for erased numbers holds, and the fallback has its number) and the subscription's
id in its params. When the push fails for good, `fall_back_to_sms` queues the SMS at once, on
the timeline; a push service that says the subscription is gone (404, 410) has it removed.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import delete, update
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from welfare.audit.service import record as audit_record
from welfare.authz import Actor
from welfare.channels import ChannelKind
from welfare.db import insert_unless_conflict, session_scope, utcnow
from welfare.errors import InvalidInput, NotFound
from welfare.outbox import queue as outbox_queue
from welfare.outbox.models import OutboxMessage
from welfare.push.models import (
    USER_AGENT_MAX,
    PushSubscription,
    SubscriptionCreate,
    SubscriptionPublic,
    VapidKey,
)
from welfare.sealed import SealBroken, seal, unseal
from welfare.settings import Settings
from welfare.users.service import current_user

# Phones one user may have subscribed at once; the oldest goes when another subscribes.
MAX_PER_USER = 5
# What the push services say when the subscription no longer exists.
GONE_CODES = frozenset({"404", "410"})
SYSTEM = Actor.system()


# --- the VAPID key pair ------------------------------------------------------------------------


@dataclass(frozen=True)
class VapidKeys:
    private_key: str  # base64url of the raw 32-byte private value (what pywebpush takes)
    public_key: str  # base64url of the uncompressed point (the browser's applicationServerKey)


class VapidKeyError(RuntimeError):
    """The configured or stored keys cannot be used; the words say how to mend it."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _public_of(private_key: ec.EllipticCurvePrivateKey) -> str:
    point = private_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return _b64(point)


def _private_from(raw: str) -> ec.EllipticCurvePrivateKey:
    try:
        value = _unb64(raw.strip())
        if len(value) != 32:
            raise ValueError("not 32 bytes")
        return ec.derive_private_key(int.from_bytes(value, "big"), ec.SECP256R1())
    except (ValueError, binascii.Error) as exc:
        raise VapidKeyError(
            "WELFARE_VAPID_PRIVATE_KEY must be the base64url of a raw 32-byte P-256 private key "
            "(for example from `npx web-push generate-vapid-keys`)"
        ) from exc


def new_key_pair() -> VapidKeys:
    key = ec.generate_private_key(ec.SECP256R1())
    raw = key.private_numbers().private_value.to_bytes(32, "big")
    return VapidKeys(_b64(raw), _public_of(key))


def _configured(settings: Settings) -> VapidKeys | None:
    if not settings.vapid_private_key:
        if settings.vapid_public_key:
            raise VapidKeyError(
                "WELFARE_VAPID_PUBLIC_KEY is set without WELFARE_VAPID_PRIVATE_KEY: set both, or "
                "neither (the service then makes and keeps its own pair)"
            )
        return None
    public = _public_of(_private_from(settings.vapid_private_key))
    if settings.vapid_public_key and settings.vapid_public_key.strip() != public:
        raise VapidKeyError(
            "WELFARE_VAPID_PUBLIC_KEY is not the public half of WELFARE_VAPID_PRIVATE_KEY"
        )
    return VapidKeys(settings.vapid_private_key.strip(), public)


def vapid_keys(session: Session, settings: Settings) -> VapidKeys:
    """The key pair to sign with: the settings', else the stored one, else a new pair stored
    now. Two processes starting at once both insert row 1: the database keeps the first, and the
    second reads it back, so every process signs with the same key."""
    configured = _configured(settings)
    if configured is not None:
        return configured
    row = session.get(VapidKey, 1)
    if row is None:
        fresh = new_key_pair()
        candidate = VapidKey(
            id=1,
            private_key_sealed=seal(settings.secret_key, fresh.private_key),
            public_key=fresh.public_key,
        )
        if insert_unless_conflict(session, candidate):
            return fresh
        row = session.exec(
            select(VapidKey).where(VapidKey.id == 1).execution_options(populate_existing=True)
        ).one()
    try:
        return VapidKeys(unseal(settings.secret_key, row.private_key_sealed), row.public_key)
    except SealBroken as exc:
        raise VapidKeyError(
            "the stored VAPID key was sealed under another WELFARE_SECRET_KEY: restore that key, "
            "or set WELFARE_VAPID_PRIVATE_KEY (phones then subscribe again)"
        ) from exc


def ensure_vapid_keys(factory: sessionmaker[Session], settings: Settings) -> VapidKeys:
    """Make the pair if there is none yet, in a transaction of its own (the first push)."""
    with session_scope(factory) as session:
        return vapid_keys(session, settings)


# --- subscriptions -----------------------------------------------------------------------------


def allowed_push_host(host: str, allowed: str) -> bool:
    """Whether `host` is one of the push services in `allowed` ("a.com,.b.com": a.com itself,
    or any subdomain of b.com)."""
    host = host.lower().rstrip(".")
    for entry in filter(None, (e.strip().lower() for e in allowed.split(","))):
        if host == entry or (entry.startswith(".") and host.endswith(entry)):
            return True
    return False


def _check(data: SubscriptionCreate, allowed_hosts: str) -> None:
    parts = urlsplit(data.endpoint)
    if parts.scheme != "https" or not parts.hostname:
        raise InvalidInput(
            ("endpoint",),
            "the endpoint must be an https:// address from the browser's push service",
        )
    if not allowed_push_host(parts.hostname, allowed_hosts):
        raise InvalidInput(
            ("endpoint",),
            f"the endpoint must be on a browser push service ({allowed_hosts.replace(',', ', ')})",
        )
    for name, size in (("p256dh", 65), ("auth", 16)):
        try:
            value = _unb64(getattr(data.keys, name))
        except (ValueError, binascii.Error):
            value = b""
        if len(value) != size or (name == "p256dh" and value[:1] != b"\x04"):
            raise InvalidInput(
                ("keys", name),
                f"keys.{name} must be the base64url value the browser gave "
                f"({size} bytes): send PushSubscription.toJSON() as it is",
            )


def to_public(row: PushSubscription) -> SubscriptionPublic:
    return SubscriptionPublic(
        id=row.id,
        push_service=urlsplit(row.endpoint).hostname or "",
        user_agent=row.user_agent,
        created_at=row.created_at,
        last_success_at=row.last_success_at,
    )


def subscribe(
    *,
    session: Session,
    actor: Actor,
    data: SubscriptionCreate,
    user_agent: str | None,
    allowed_hosts: str,
) -> PushSubscription:
    """This phone's alerts to the signed-in user. The same endpoint again (the app asking once
    more, or another user signing in on a shared phone) moves the row to this user with the new
    keys: a phone alerts whoever subscribed it last."""
    _check(data, allowed_hosts)
    user = current_user(session=session, actor=actor)
    now = utcnow()
    agent = (user_agent or "")[:USER_AGENT_MAX] or None
    row = PushSubscription(
        user_id=user.id,
        endpoint=data.endpoint,
        p256dh=data.keys.p256dh,
        auth=data.keys.auth,
        user_agent=agent,
        created_at=now,
    )
    detail: dict[str, str] = {}
    if not insert_unless_conflict(session, row):
        row = session.exec(
            select(PushSubscription)
            .where(PushSubscription.endpoint == data.endpoint)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one()
        same = (row.user_id, row.p256dh, row.auth) == (user.id, data.keys.p256dh, data.keys.auth)
        if same:  # the app renewing it on a page load: nothing changed, nothing to audit
            return row
        if row.user_id != user.id:
            detail["from_user_id"] = str(row.user_id)
        row.user_id, row.user_agent = user.id, agent
        row.p256dh, row.auth = data.keys.p256dh, data.keys.auth
        session.add(row)
        session.flush()
    _keep_newest(session, actor, user.id)
    audit_record(
        session,
        actor=actor,
        action="push.subscribe",
        entity="push_subscription",
        entity_id=row.id,
        detail={"user_id": str(user.id), **detail},
    )
    return row


def _keep_newest(session: Session, actor: Actor, user_id: uuid.UUID) -> None:
    rows = _subscriptions_of(session, user_id)
    for old in rows[MAX_PER_USER:]:
        session.delete(old)
        audit_record(
            session,
            actor=actor,
            action="push.unsubscribe",
            entity="push_subscription",
            entity_id=old.id,
            detail={"user_id": str(user_id), "reason": "too many phones"},
        )


def _subscriptions_of(session: Session, user_id: uuid.UUID) -> list[PushSubscription]:
    return list(
        session.exec(
            select(PushSubscription)
            .where(PushSubscription.user_id == user_id)
            .order_by(col(PushSubscription.created_at).desc(), col(PushSubscription.id))
        ).all()
    )


def list_own(*, session: Session, actor: Actor) -> list[SubscriptionPublic]:
    user = current_user(session=session, actor=actor)
    return [to_public(row) for row in _subscriptions_of(session, user.id)]


def remove_own(*, session: Session, actor: Actor, subscription_id: uuid.UUID) -> None:
    """This phone gets no more pushes; its alerts come by SMS again. 404 when not yours."""
    user = current_user(session=session, actor=actor)
    done = session.exec(  # type: ignore[call-overload]
        delete(PushSubscription).where(
            col(PushSubscription.id) == subscription_id, col(PushSubscription.user_id) == user.id
        )
    ).rowcount
    if not done:
        raise NotFound("push subscription")
    audit_record(
        session,
        actor=actor,
        action="push.unsubscribe",
        entity="push_subscription",
        entity_id=subscription_id,
        detail={"user_id": str(user.id)},
    )


# --- the escalation's side ---------------------------------------------------------------------


def target_for(session: Session, user_id: uuid.UUID) -> PushSubscription | None:
    """The subscription a push to this user goes to: the phone that last took one, else the
    newest. None: the user gets the SMS."""
    rows = _subscriptions_of(session, user_id)
    if not rows:
        return None
    return max(rows, key=lambda row: (row.last_success_at or row.created_at, row.created_at))


def subscription(session: Session, subscription_id: str | None) -> PushSubscription | None:
    try:
        return session.get(PushSubscription, uuid.UUID(str(subscription_id)))
    except ValueError:
        return None


def mark_success(session: Session, subscription_ids: Iterable[str], now: dt.datetime) -> None:
    ids = []
    for value in subscription_ids:
        try:
            ids.append(uuid.UUID(value))
        except ValueError:
            continue
    if ids:
        session.exec(  # type: ignore[call-overload]
            update(PushSubscription)
            .where(col(PushSubscription.id).in_(ids))
            .values(last_success_at=now)
        )


def fall_back_to_sms(
    session: Session,
    message: OutboxMessage,
    incident: outbox_queue.Incident | None,
    *,
    reason: str,
    code: str | None,
    now: dt.datetime,
) -> OutboxMessage | None:
    """A push row failed for good: its SMS goes out at once instead, through `enqueue`, with
    the push's failure in words on the timeline. A subscription the push service called gone
    is removed (audited), so the next alert goes by SMS from the start."""
    if code in GONE_CODES:
        _remove_gone(session, message)
    if incident is None or message.to_phone is None or message.user_id is None:
        return None
    params = {k: v for k, v in message.params.items() if k != "subscription_id"}
    return outbox_queue.enqueue(
        session,
        kind=ChannelKind.sms,
        to=message.to_phone,
        language=message.language,
        template=message.template,
        key=outbox_queue.incident_key(
            incident,
            ChannelKind.sms,
            cause=message.template if message.step_index is None else message.step_index,
            recipient=message.user_id,
        ),
        params=params,
        incident=incident,
        step_index=message.step_index,
        user_id=message.user_id,
        event="push_fallback",
        event_detail={"reason": reason, "push_message_id": str(message.id)},
        once=True,
        now=now,
    )


def _remove_gone(session: Session, message: OutboxMessage) -> None:
    row = subscription(session, message.params.get("subscription_id"))
    if row is None:
        return
    session.delete(row)
    audit_record(
        session,
        actor=SYSTEM,
        action="push.subscription_gone",
        entity="push_subscription",
        entity_id=row.id,
        detail={"user_id": str(row.user_id)},
    )
