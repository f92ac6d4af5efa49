"""Provider faults against the Twilio fake, on a controllable clock.

Ten incidents open at once (each resident with two contacts, default policy: the first contact
at once, the next two minutes later). The fake then misbehaves: 30% of create requests answer
5xx or time out, some more answer 20429 with Retry-After, every accepted create has its status
callback in flight before the create response returns, and at the end every message gets its
callbacks again, duplicated and shuffled. The real SDK path and signed webhooks run throughout.

What must hold: every contact is reached (an SMS or a call accepted by the provider) within
its step of the policy, before the next step falls due; no message is accepted twice; the
outbox keeps to the per-sender rate; every callback is answered 200 and recorded once; the
provider ends each message at its furthest status, never moved back.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlmodel import Session, select

from api.app import create_app
from notifications.dispatcher import Dispatcher
from notifications.ratelimit import SenderRateLimit
from notifications.twilio.client import TwilioChannel
from tests.api.test_webhooks import BASE, post
from tests.api.test_webhooks import TOKEN as AUTH_TOKEN
from tests.conftest import SYSTEM
from tests.notifications.fake_twilio import FakeTwilio, _Reply
from welfare.db import make_engine, make_sessionmaker, utcnow
from welfare.incidents import service as incidents
from welfare.incidents import timeline
from welfare.incidents.models import IncidentCreate
from welfare.outbox.models import OutboxMessage
from welfare.residents.models import Contact, Resident
from welfare.settings import Settings
from welfare.worker import escalation_round

ACCOUNT = "AC" + "3" * 32
FROM = "+15005550006"
INCIDENTS = 15
STEP_SECONDS = 120  # the default policy: the next contact after two minutes
RATE = 10  # messages per second per sender and kind
SEED = 20261128
# The worker starts due steps every second; every 5 virtual seconds here keeps the run short
# (each round visits every notifying incident) and still shows each step reached in time.
ESCALATION_EVERY = 5


class VirtualClock:
    def __init__(self) -> None:
        self.start = utcnow()
        self.at = self.start

    def seconds(self) -> float:
        return (self.at - self.start).total_seconds()


class FaultyTwilio(FakeTwilio):
    """The fake with random faults on creates and early status callbacks."""

    def __init__(self, clock: VirtualClock, rng: random.Random) -> None:
        super().__init__(ACCOUNT, AUTH_TOKEN)
        self.clock = clock
        self.rng = rng
        self.attempts: list[tuple[float, str]] = []  # (virtual second, "Messages"/"Calls")
        self.faults = Counter[str]()
        self.early: Callable[[str, str], None] | None = None

    def _answer(
        self, method: str, url: str, form: Any, headers: Any, auth: Any, timeout: Any = None
    ):  # type: ignore[no-untyped-def]
        creating = method.upper() == "POST"
        if creating:
            resource = "Messages" if "/Messages" in url else "Calls"
            self.attempts.append((self.clock.seconds(), resource))
            roll = self.rng.random()
            if roll < 0.15:
                status = self.rng.choice([500, 502, 503])
                self.fail_next(status, code=20500 if status == 500 else None)
                self.faults[f"http {status}"] += 1
            elif roll < 0.30:
                self.timeout_next()
                self.faults["timeout"] += 1
            elif roll < 0.36:
                self.fail_next(429, code=20429, message="Too Many Requests", retry_after=3)
                self.faults["20429"] += 1
        planned = super()._answer(method, url, form, headers, auth, timeout)
        if creating and isinstance(planned, _Reply) and planned.status == 201 and self.early:
            sid = planned.body.split('"sid": "', 1)[1].split('"', 1)[0]
            self.early(sid, "sent" if "/Messages" in url else "initiated")
        return planned


@pytest.fixture
def live(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "twilio_account_sid": ACCOUNT,
            "twilio_auth_token": AUTH_TOKEN,
            "twilio_from_number": FROM,
            "outbox_max_per_second": RATE,
        }
    )


@pytest.fixture
def webhooks(live: Settings) -> Iterator[TestClient]:
    app = create_app(live)
    with TestClient(app, base_url=BASE) as client:
        yield client
    app.state.engine.dispose()


def _provider_errors() -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name == "welfare_provider_errors":
            total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return total


def test_every_contact_is_reached_within_its_step_despite_provider_faults(
    live: Settings,
    db: Session,
    webhooks: TestClient,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> None:
    clock = VirtualClock()  # starts before the incidents open: their steps fall due after it
    contacts: dict[str, int] = {}  # phone -> its position in the policy (0: first)
    incident_ids = []
    for i in range(INCIDENTS):
        resident = make_resident(full_name=f"Resident {i}")
        make_consent(resident)
        for position, prefix in enumerate(("9", "6")):
            phone = f"{prefix}12345{i:02d}"
            make_contact(resident, phone=f"{phone[:4]} {phone[4:]}", relationship=f"r{position}")
            contacts[f"+852{phone}"] = position
        opened = incidents.open_incident(
            session=db,
            actor=SYSTEM,
            data=IncidentCreate(resident_id=resident.id, client_request_id=uuid.uuid4().hex),
        )
        db.commit()
        incident_ids.append(opened.incident.id)

    fake = FaultyTwilio(clock, random.Random(SEED))
    callbacks: list[tuple[str, str, int]] = []  # (sid, status, HTTP answer)
    threads: list[threading.Thread] = []
    lock = threading.Lock()
    message_ids: dict[str, uuid.UUID] = {}

    def deliver_callback(sid: str, status: str) -> None:
        url, form = fake.status_callback_form(sid, status)
        assert url is not None and url.startswith(BASE)
        response = post(webhooks, url[len(BASE) :], form)
        with lock:
            callbacks.append((sid, status, response.status_code))

    def early(sid: str, status: str) -> None:
        """Twilio's first callback, in flight before the create response reaches us."""
        thread = threading.Thread(target=deliver_callback, args=(sid, status))
        thread.start()
        threads.append(thread)
        thread.join(timeout=0.05)

    fake.early = early
    engine = make_engine(live.database_url)
    factory = make_sessionmaker(engine)
    limiter = SenderRateLimit(RATE, clock=clock.seconds)
    dispatcher = Dispatcher(factory, TwilioChannel(live, fake), live, rate_limit=limiter)
    errors_before = _provider_errors()

    reached: dict[str, float] = {}
    # Up to the end of the list (at 240 s the duty manager is alerted and the list repeats).
    for tick in range(2 * STEP_SECONDS):
        clock.at = clock.start + dt.timedelta(seconds=tick)
        if tick % ESCALATION_EVERY == 0:
            escalation_round(factory, now=clock.at)
        while dispatcher.run_once(limit=50, now=clock.at):
            pass
        for record in [*fake.messages.values(), *fake.calls.values()]:
            reached.setdefault(record["to"], tick)
    for thread in threads:
        thread.join(timeout=30)

    # Every contact reached within its step of the policy.
    late = {
        phone: (reached.get(phone), position)
        for phone, position in contacts.items()
        if reached.get(phone) is None or reached[phone] >= (position + 1) * STEP_SECONDS
    }
    assert not late, late
    # The faults really happened, and were counted by code.
    server_side = sum(n for fault, n in fake.faults.items() if fault != "20429")
    assert 0.2 * len(fake.attempts) <= server_side <= 0.45 * len(fake.attempts), fake.faults
    assert {"timeout", "20429"} <= set(fake.faults), fake.faults
    assert _provider_errors() - errors_before == sum(fake.faults.values())
    # Nothing accepted twice: one SMS and one call per contact.
    accepted = Counter(
        (r["to"], kind)
        for kind, store in (("sms", fake.messages), ("call", fake.calls))
        for r in store.values()
    )
    assert set(accepted.values()) == {1}
    assert len(accepted) == 2 * len(contacts)
    # The outbox kept to the sender's rate, per kind, in every one-second window.
    per_second = Counter((int(second), resource) for second, resource in fake.attempts)
    assert max(per_second.values()) <= RATE, per_second.most_common(3)

    # Later callbacks: duplicated and out of order, for every message.
    rng = random.Random(SEED + 1)
    for sid in fake.messages:
        news = ["delivered", "sent", "delivered"]
        rng.shuffle(news)
        for status in news:
            deliver_callback(sid, status)
    for sid in fake.calls:
        news = ["no-answer", "ringing", "no-answer"]
        rng.shuffle(news)
        for status in news:
            deliver_callback(sid, status)
    assert {code for _, _, code in callbacks} == {200}

    with factory() as session:
        rows = session.exec(
            select(OutboxMessage).where(OutboxMessage.provider_id.is_not(None))
        ).all()  # type: ignore[union-attr]
        for row in rows:
            message_ids[row.provider_id or ""] = row.id
            expected = "delivered" if row.kind == "sms" else "no-answer"
            assert row.provider_status == expected, (row.kind, row.provider_status)
        assert set(message_ids) == set(fake.messages) | set(fake.calls)
        for incident_id in incident_ids:
            events = timeline.events_of(session, incident_id)
            counted = Counter(
                (e.detail.get("message_id"), e.type)
                for e in events
                if e.type in ("delivered", "sent_to_carrier", "no_answer", "ringing")
            )
            assert counted and set(counted.values()) == {1}, counted
            assert not any(e.type == "confirmed" for e in events)  # no callback confirms
    engine.dispose()
    print(
        f"\nprovider faults: {sum(fake.faults.values())} of {len(fake.attempts)} create requests"
        f" ({dict(fake.faults)}); {len(callbacks)} callbacks; contacts reached at"
        f" {sorted(Counter(reached.values()).items())[:8]}..."
    )


def test_a_status_callback_racing_its_create_answer_neither_deadlocks_nor_is_lost(
    db: Session,
    writers: Any,
    settings: Settings,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> None:
    """Regression (PostgreSQL): the callback stored the SID on the outbox row, then waited for
    the incident the dispatcher had locked, while the dispatcher waited for that row: deadlock.
    Now the callback locks the incident first and simply waits for the send to be recorded."""
    from notifications.twilio.webhooks import provider_status
    from tests.notifications.fake_channel import FakeChannel

    resident = make_resident()
    make_consent(resident)
    make_contact(resident)
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(resident_id=resident.id, client_request_id=uuid.uuid4().hex),
    )
    db.commit()
    outcomes: list[str] = []

    class EarlyNews(FakeChannel):
        def send_sms(self, *, status_callback: str | None, **kwargs: Any) -> Any:
            self.url = status_callback
            return super().send_sms(status_callback=status_callback, **kwargs)

        def place_call(self, *, status_callback: str | None, **kwargs: Any) -> Any:
            self.url = status_callback
            return super().place_call(status_callback=status_callback, **kwargs)

        def _go(self, kind: str, to: str, content: str) -> Any:
            accepted = super()._go(kind, to, content)
            message_id = str(self.url).split("message_id=", 1)[1]

            def callback() -> None:
                try:
                    with writers() as session:
                        status = "sent" if kind == "sms" else "ringing"
                        form = {"MessageStatus": status, "CallStatus": status}
                        provider_status(
                            session,
                            message_id=message_id,
                            sid=accepted.provider_id,
                            status=status,
                            form=form,
                        )
                        session.commit()
                    outcomes.append("ok")
                except Exception as exc:  # a deadlock shows here or in the dispatcher
                    outcomes.append(type(exc).__name__)

            thread = threading.Thread(target=callback)
            thread.start()
            thread.join(timeout=1.5)  # PostgreSQL detects a deadlock after 1 s
            self.threads.append(thread)
            return accepted

    channel = EarlyNews()
    channel.threads = []  # type: ignore[attr-defined]
    Dispatcher(writers, channel, settings).run_once()
    for thread in channel.threads:  # type: ignore[attr-defined]
        thread.join(timeout=15)
    assert outcomes == ["ok", "ok"]
    db.expire_all()
    rows = db.exec(select(OutboxMessage).where(OutboxMessage.incident_id == opened.incident.id))
    statuses = sorted((r.kind.value, r.provider_status) for r in rows)
    assert statuses == [("sms", "sent"), ("voice", "ringing")]
    events = [e.type for e in timeline.events_of(db, opened.incident.id)]
    assert events.count("sent") == 2
    assert events.count("sent_to_carrier") == 1 and events.count("ringing") == 1
    db.rollback()
