"""Web push to guards and managers, against a local push-service stand-in: the real pywebpush
request (encrypted payload, VAPID signature) reaches it; a guard with a subscription gets a push
instead of the SMS, one without still gets the SMS; a failed push falls back to SMS at once, on
the timeline, and a 404/410 removes the subscription (audited)."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from notifications.channels import ChannelError, ChannelRegistry, Notice, Outgoing, PushTarget
from notifications.dispatcher import Dispatcher
from notifications.webpush.sender import GONE, WebPushSender
from tests.conftest import SYSTEM
from tests.notifications.fake_channel import FakeChannel
from tests.notifications.fake_push_service import BrowserKeys, FakePushService, vapid_claims
from welfare.audit.models import AuditEntry
from welfare.channels import ChannelKind
from welfare.db import make_engine, make_sessionmaker, utcnow
from welfare.incidents import service as incidents
from welfare.incidents import timeline
from welfare.incidents.models import Incident, IncidentCreate, IncidentKind
from welfare.outbox.models import OutboxMessage, OutboxStatus
from welfare.push import service as push
from welfare.push.models import PushSubscription, VapidKey
from welfare.residents.models import Resident
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.users.models import User

GUARD_PHONE, OTHER_PHONE = "+85293451609", "+85293451610"


@pytest.fixture
def push_service() -> Iterator[FakePushService]:
    service = FakePushService()
    yield service
    service.close()


def _sender(db: Session, settings: Settings) -> WebPushSender:
    keys = push.vapid_keys(db, settings)
    db.commit()
    return WebPushSender(keys.private_key, "mailto:ops@welfare.test", ttl_seconds=600)


def _notice(keys: BrowserKeys, endpoint: str) -> Outgoing:
    target = PushTarget(endpoint, keys.p256dh, keys.subscription(endpoint)["keys"]["auth"])
    return Outgoing(
        message_id=uuid.uuid4(),
        kind=ChannelKind.push,
        to=GUARD_PHONE,
        language="en",
        idempotency_key="k",
        content=Notice("Resident missing", "Harbour: a resident...", "/guard/alerts/x", target),
    )


def test_the_push_reaches_the_push_service_encrypted_for_the_phone_and_signed_with_our_key(
    db: Session, settings: Settings, push_service: FakePushService
) -> None:
    keys = BrowserKeys()
    sender = _sender(db, settings)
    accepted = sender.send(_notice(keys, push_service.endpoint("phone-1")))
    assert accepted.status == "accepted" and accepted.provider_id
    [request] = push_service.requests
    assert request.path == "/push/phone-1"
    assert request.headers["content-encoding"] == "aes128gcm"
    assert request.headers["ttl"] == "600" and request.headers["urgency"] == "high"
    assert b"Resident missing" not in request.body  # encrypted
    assert keys.decrypt(request.body) == {
        "title": "Resident missing",
        "body": "Harbour: a resident...",
        "url": "/guard/alerts/x",
        "image": None,
        "tag": "",
    }
    claims, public_key = vapid_claims(request.headers["authorization"])
    assert public_key == push.vapid_keys(db, settings).public_key
    assert claims["aud"] == push_service.base_url and claims["sub"] == "mailto:ops@welfare.test"


@pytest.mark.parametrize(
    ("status", "permanent"), [(404, True), (410, True), (413, True), (500, False), (429, False)]
)
def test_what_the_push_service_answers_decides_between_retry_and_giving_up(
    db: Session, settings: Settings, push_service: FakePushService, status: int, permanent: bool
) -> None:
    push_service.answer_next(status)
    with pytest.raises(ChannelError) as failure:
        _sender(db, settings).send(_notice(BrowserKeys(), push_service.endpoint()))
    assert failure.value.code == str(status) and failure.value.permanent is permanent
    assert "127.0.0.1" not in failure.value.reason


def test_an_unreachable_push_service_is_retried(db: Session, settings: Settings) -> None:
    with pytest.raises(ChannelError) as failure:
        _sender(db, settings).send(_notice(BrowserKeys(), "http://127.0.0.1:9/push/x"))
    assert failure.value.code == "network" and not failure.value.permanent


# --- the escalation's side ---------------------------------------------------------------------


@pytest.fixture
def resident(make_resident: Callable[..., Resident], make_consent: Callable[..., Any]) -> Resident:
    """A resident under a lost-person consent (the default consent), who goes missing."""
    found = make_resident()
    make_consent(found)
    return found


def _guard(make_user: Callable[..., User], db: Session, site: Site, phone: str) -> User:
    guard = make_user("guard", [site], phone=phone)
    guard.on_duty_since = utcnow()
    db.add(guard)
    db.commit()
    return guard


def _subscribe(db: Session, user: User, endpoint: str, keys: BrowserKeys) -> PushSubscription:
    """As the API leaves it (the API wants https; the stand-in is plain HTTP on 127.0.0.1)."""
    body = keys.subscription(endpoint)["keys"]
    row = PushSubscription(user_id=user.id, endpoint=endpoint, **body)
    db.add(row)
    db.commit()
    return row


def _missing(db: Session, resident: Resident) -> Incident:
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(
            kind=IncidentKind.missing, resident_id=resident.id, client_request_id=uuid.uuid4().hex
        ),
    )
    db.commit()
    return opened.incident


def _rows(db: Session, incident_id: uuid.UUID) -> list[tuple[str, str | None, OutboxStatus]]:
    db.expire_all()
    rows = db.exec(
        select(OutboxMessage)
        .where(OutboxMessage.incident_id == incident_id)
        .order_by(col(OutboxMessage.created_at), col(OutboxMessage.kind))
    ).all()
    found = [(r.kind.value, r.to_phone, r.status) for r in rows]
    db.rollback()
    return found


def _dispatcher(
    writers: sessionmaker[Session], settings: Settings, db: Session
) -> tuple[Dispatcher, FakeChannel]:
    sms = FakeChannel()
    registry = ChannelRegistry.every_kind(sms)
    registry.register(ChannelKind.push, _sender(db, settings))
    return Dispatcher(writers, registry, settings), sms


@dataclass(frozen=True)
class Alerted:
    """A guard on duty whose phone subscribed at the stand-in, and the missing alert for them."""

    guard_id: uuid.UUID
    subscription_id: uuid.UUID
    incident_id: uuid.UUID


@pytest.fixture
def alerted(
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    resident: Resident,
    push_service: FakePushService,
) -> Alerted:
    guard = _guard(make_user, db, site, "9345 1609")
    subscription = _subscribe(db, guard, push_service.endpoint(), BrowserKeys())
    ids = guard.id, subscription.id
    return Alerted(*ids, _missing(db, resident).id)


@pytest.fixture
def sending(
    writers: sessionmaker[Session], settings: Settings, db: Session
) -> tuple[Dispatcher, FakeChannel]:
    """The dispatcher with the real push sender, and a fake for SMS and calls."""
    return _dispatcher(writers, settings, db)


def _drain(dispatcher: Dispatcher, now: dt.datetime | None = None) -> None:
    while dispatcher.run_once(now=now):
        pass


def test_a_subscribed_guard_gets_the_alert_by_push_and_one_without_by_sms(
    db: Session,
    writers: sessionmaker[Session],
    settings: Settings,
    site: Site,
    make_user: Callable[..., User],
    resident: Resident,
    push_service: FakePushService,
) -> None:
    subscribed = _guard(make_user, db, site, "9345 1609")
    _guard(make_user, db, site, "9345 1610")
    keys = BrowserKeys()
    subscription = _subscribe(db, subscribed, push_service.endpoint("guard-phone"), keys)
    incident = _missing(db, resident)
    queued = sorted(_rows(db, incident.id))
    assert queued == [
        ("push", GUARD_PHONE, OutboxStatus.pending),  # the number stays for the fallback
        ("sms", OTHER_PHONE, OutboxStatus.pending),
    ]
    dispatcher, sms = _dispatcher(writers, settings, db)
    _drain(dispatcher)
    assert [(kind, to) for kind, to, _ in sms.sent] == [("sms", OTHER_PHONE)]
    [request] = push_service.requests
    shown = keys.decrypt(request.body)
    assert shown["url"] == f"/guard/alerts/{incident.id}" and shown["title"] == "Resident missing"
    assert "reported missing" in shown["body"] and shown["tag"] == str(incident.id)
    resident = db.get(Resident, incident.resident_id)
    assert resident is not None and resident.full_name not in str(shown)
    assert {status for _, _, status in _rows(db, incident.id)} == {OutboxStatus.sent}
    db.refresh(subscription)
    assert subscription.last_success_at is not None


@pytest.mark.parametrize("status", [410, 404])
def test_a_gone_subscription_is_removed_and_the_alert_goes_by_sms_at_once(
    db: Session,
    alerted: Alerted,
    sending: tuple[Dispatcher, FakeChannel],
    push_service: FakePushService,
    status: int,
) -> None:
    push_service.answer_next(status)
    dispatcher, sms = sending
    _drain(dispatcher)
    assert [(kind, to) for kind, to, _ in sms.sent] == [("sms", GUARD_PHONE)]
    assert _rows(db, alerted.incident_id) == [
        ("push", GUARD_PHONE, OutboxStatus.failed),
        ("sms", GUARD_PHONE, OutboxStatus.sent),
    ]
    db.expire_all()
    assert db.get(PushSubscription, alerted.subscription_id) is None
    gone = db.exec(select(AuditEntry).where(AuditEntry.action == "push.subscription_gone")).all()
    assert [entry.entity_id for entry in gone] == [str(alerted.subscription_id)]
    events = timeline.events_of(db, alerted.incident_id)
    fallback = [e for e in events if e.type == "push_fallback"]
    assert len(fallback) == 1 and fallback[0].detail["channel"] == "sms"
    assert fallback[0].detail["reason"] == GONE[status]
    # The next alert goes by SMS from the start.
    assert push.target_for(db, alerted.guard_id) is None


def test_a_push_service_that_keeps_failing_gets_three_tries_then_the_sms_goes(
    db: Session,
    alerted: Alerted,
    sending: tuple[Dispatcher, FakeChannel],
    push_service: FakePushService,
) -> None:
    push_service.answer_next(500, 500, 500)
    dispatcher, sms = sending
    now = utcnow()
    for seconds in (0, 3, 10):  # past each backoff
        _drain(dispatcher, now + dt.timedelta(seconds=seconds))
        if sms.sent:
            break
    assert len(push_service.requests) == 3
    assert [(kind, to) for kind, to, _ in sms.sent] == [("sms", GUARD_PHONE)]
    db.expire_all()
    assert db.get(PushSubscription, alerted.subscription_id) is not None  # a 500 is not gone
    types = [e.type for e in timeline.events_of(db, alerted.incident_id)]
    assert types.count("retry_scheduled") == 2 and types.count("push_fallback") == 1


def test_a_subscription_removed_after_queueing_sends_the_sms_instead(
    db: Session,
    alerted: Alerted,
    sending: tuple[Dispatcher, FakeChannel],
    push_service: FakePushService,
) -> None:
    db.delete(db.get(PushSubscription, alerted.subscription_id))
    db.commit()
    dispatcher, sms = sending
    _drain(dispatcher)
    assert push_service.requests == []
    assert [(kind, to) for kind, to, _ in sms.sent] == [("sms", GUARD_PHONE)]
    events = timeline.events_of(db, alerted.incident_id)
    [event] = [e for e in events if e.type == "push_fallback"]
    assert event.detail["reason"] == "the phone's push subscription was removed"


def test_without_a_push_sender_the_push_still_becomes_an_sms(
    db: Session,
    writers: sessionmaker[Session],
    settings: Settings,
    site: Site,
    make_user: Callable[..., User],
    resident: Resident,
) -> None:
    guard = _guard(make_user, db, site, "9345 1609")
    _subscribe(db, guard, "https://push.example/x", BrowserKeys())
    _missing(db, resident)
    sms = FakeChannel()
    _drain(Dispatcher(writers, sms, settings))
    assert [(kind, to) for kind, to, _ in sms.sent] == [("sms", GUARD_PHONE)]


def test_the_duty_manager_with_a_subscription_gets_a_push_and_the_call(
    db: Session,
    settings: Settings,
    site: Site,
    make_user: Callable[..., User],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Any],
) -> None:
    manager = make_user("manager", [site], phone="9456 1609")
    _subscribe(db, manager, "https://push.example/manager", BrowserKeys())
    resident = make_resident()
    make_consent(resident)
    make_contact(resident, relationship="son", phone="9123 4567")
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(resident_id=resident.id, client_request_id=uuid.uuid4().hex),
    )
    db.commit()
    incident = opened.incident
    later = utcnow() + dt.timedelta(hours=2)
    for minutes in range(0, 120, 5):  # past every contact step: the manager's comes
        incidents.advance(
            session=db, incident=incident, now=utcnow() + dt.timedelta(minutes=minutes)
        )
        db.commit()
    incidents.advance(session=db, incident=incident, now=later)
    db.commit()
    rows = db.exec(
        select(OutboxMessage).where(
            OutboxMessage.incident_id == incident.id, OutboxMessage.user_id == manager.id
        )
    ).all()
    assert sorted(r.kind.value for r in rows) == ["push", "voice"]
    [pushed] = [r for r in rows if r.kind is ChannelKind.push]
    assert pushed.to_phone == "+85294561609" and pushed.template == "manager_escalation"


# --- the VAPID key pair ------------------------------------------------------------------------


def test_the_vapid_keys_are_made_once_and_kept_sealed(db: Session, settings: Settings) -> None:
    first = push.vapid_keys(db, settings)
    db.commit()
    again = push.vapid_keys(db, settings)
    assert again == first
    row = db.get(VapidKey, 1)
    assert row is not None and first.private_key not in row.private_key_sealed
    assert row.public_key == first.public_key and len(push._unb64(first.public_key)) == 65


def test_keys_in_the_settings_win_and_a_wrong_pair_is_refused(settings: Settings) -> None:
    pair = push.new_key_pair()
    chosen = settings.model_copy(update={"vapid_private_key": pair.private_key})
    assert push._configured(chosen) == pair
    other = push.new_key_pair()
    wrong = chosen.model_copy(update={"vapid_public_key": other.public_key})
    with pytest.raises(push.VapidKeyError, match="not the public half"):
        push._configured(wrong)
    with pytest.raises(push.VapidKeyError, match="base64url"):
        push._configured(settings.model_copy(update={"vapid_private_key": "short"}))


def test_processes_starting_at_once_agree_on_one_key_pair_on_postgresql(
    settings: Settings,
) -> None:
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("real connections racing: PostgreSQL")
    engine = make_engine(settings.database_url)
    factory = make_sessionmaker(engine)
    barrier = threading.Barrier(4)
    found: list[str] = []

    def start() -> None:
        barrier.wait()
        found.append(push.ensure_vapid_keys(factory, settings).public_key)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()
    assert len(found) == 4 and len(set(found)) == 1
