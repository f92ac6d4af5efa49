"""The per-sender rate limit: the token bucket on its own, then the dispatcher pacing a burst."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from notifications.dispatcher import Dispatcher
from notifications.ratelimit import SenderRateLimit
from notifications.twilio.sender import TwilioSender
from tests.conftest import SYSTEM
from tests.notifications.fake_channel import FakeChannel
from welfare.channels import ChannelKind
from welfare.db import utcnow
from welfare.incidents import service as incidents
from welfare.incidents.models import IncidentCreate
from welfare.outbox.models import OutboxMessage, OutboxStatus
from welfare.residents.models import Contact, Resident
from welfare.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_one_seconds_worth_then_the_steady_rate() -> None:
    clock = Clock()
    limit = SenderRateLimit(10, clock=clock)
    assert [limit.acquire("sms:+1") for _ in range(10)] == [0.0] * 10
    wait = limit.acquire("sms:+1")
    assert wait == pytest.approx(0.1)
    clock.now += 0.1
    assert limit.acquire("sms:+1") == 0.0
    assert limit.acquire("sms:+1") == pytest.approx(0.1)
    # Another sender (or calls from the same number) has its own bucket.
    assert limit.acquire("sms:+2") == 0.0
    assert limit.acquire("call:+1") == 0.0
    # A long pause refills to the burst size, never beyond.
    clock.now += 60
    assert [limit.acquire("sms:+1") for _ in range(11)][-1] > 0


def test_a_fractional_rate_spaces_sends_out() -> None:
    clock = Clock()
    limit = SenderRateLimit(0.5, clock=clock)  # one every two seconds
    assert limit.acquire("sms:+1") == 0.0
    assert limit.acquire("sms:+1") == pytest.approx(2.0)
    clock.now += 2.0
    assert limit.acquire("sms:+1") == 0.0


def test_zero_turns_the_limit_off() -> None:
    limit = SenderRateLimit(0)
    assert not limit.enabled
    assert all(limit.acquire("sms:+1") == 0.0 for _ in range(1000))


def test_the_sender_is_the_messaging_service_for_sms_and_the_number_for_calls(
    settings: Settings,
) -> None:
    channel = FakeChannel()
    number = settings.model_copy(update={"twilio_from_number": "+15005550006"})
    assert TwilioSender(channel, number).rate_key(ChannelKind.sms) == "sms:+15005550006"
    assert TwilioSender(channel, number).rate_key(ChannelKind.voice) == "voice:+15005550006"
    service = number.model_copy(update={"twilio_messaging_service_sid": "MG" + "1" * 32})
    assert TwilioSender(channel, service).rate_key(ChannelKind.sms) == "sms:MG" + "1" * 32
    assert TwilioSender(channel, service).rate_key(ChannelKind.voice) == "voice:+15005550006"
    assert TwilioSender(channel, settings).rate_key(ChannelKind.sms) == "sms:fake"


def _burst(
    db: Session,
    count: int,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> None:
    """`count` incidents, each queuing an SMS and a call to one contact at once."""
    for i in range(count):
        resident = make_resident(full_name=f"Resident {i}")
        make_consent(resident)
        make_contact(resident, phone=f"9123 {4500 + i}")
        incidents.open_incident(
            session=db,
            actor=SYSTEM,
            data=IncidentCreate(resident_id=resident.id, client_request_id=uuid.uuid4().hex),
        )
        db.commit()


def test_the_dispatcher_holds_a_burst_to_the_senders_rate_and_loses_nothing(
    db: Session,
    writers: sessionmaker[Session],
    settings: Settings,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> None:
    _burst(db, 12, make_resident, make_consent, make_contact)  # 12 SMS and 12 calls due now
    clock = Clock()
    channel = FakeChannel()
    limited = settings.model_copy(update={"outbox_max_per_second": 5})
    dispatcher = Dispatcher(writers, channel, limited, rate_limit=SenderRateLimit(5, clock=clock))
    start = utcnow()

    sent_per_second = []
    for second in range(4):
        now = start + dt.timedelta(seconds=second)
        while dispatcher.run_once(limit=50, now=now):
            pass
        kinds = [kind for kind, _, _ in channel.sent]
        sent_per_second.append((kinds.count("sms"), kinds.count("call")))
        clock.now += 1.0
    # Five of each kind in the first second, five more each second after, until all 12 went.
    assert sent_per_second == [(5, 5), (10, 10), (12, 12), (12, 12)]
    db.expire_all()
    rows = db.exec(select(OutboxMessage).order_by(col(OutboxMessage.sent_at))).all()
    assert all(r.status is OutboxStatus.sent for r in rows)
    assert all(r.attempts == 1 for r in rows)  # waiting for the rate is not a failed attempt
    assert len({r.to_phone for r in rows}) == 12
    db.rollback()


def test_a_held_back_row_waits_only_as_long_as_the_bucket_needs(
    db: Session,
    writers: sessionmaker[Session],
    settings: Settings,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> None:
    _burst(db, 3, make_resident, make_consent, make_contact)
    clock = Clock()
    dispatcher = Dispatcher(
        writers, FakeChannel(), settings, rate_limit=SenderRateLimit(2, clock=clock)
    )
    now = utcnow()
    assert dispatcher.run_once(limit=50, now=now) == 4  # two SMS and two calls
    db.expire_all()
    waiting = db.exec(
        select(OutboxMessage).where(OutboxMessage.status == OutboxStatus.pending)
    ).all()
    assert len(waiting) == 2
    for row in waiting:
        assert row.claim_token is None and row.attempts == 0
        assert now < row.next_attempt_at <= now + dt.timedelta(seconds=0.5)
    db.rollback()


def test_idle_keys_are_forgotten_and_busy_ones_kept() -> None:
    clock = Clock()
    limit = SenderRateLimit(0.5, clock=clock, burst=3)
    for _ in range(3):
        assert limit.acquire("busy") == 0.0
    assert limit.acquire("busy") > 0  # the burst is spent
    limit.acquire("once")
    clock.now += 4.0  # "once" has refilled (1 token back in 2 s), "busy" has not (3 in 6 s)
    assert limit.forget_idle() == 1 and limit.keys == 1
    assert limit  # an empty or small limit is still a limit, never falsy
