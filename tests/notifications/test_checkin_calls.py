"""Automated check-in calls end to end: the scheduler queues the call, the dispatcher places it
through the real Twilio SDK against the fake, the resident's keypress arrives as a signed Gather
webhook. No keypress after the retries: a welfare_concern incident calls the family."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from api.app import create_app
from notifications.dispatcher import Dispatcher
from notifications.twilio.client import TwilioChannel
from tests.api.test_webhooks import BASE, post
from tests.api.test_webhooks import TOKEN as AUTH_TOKEN
from tests.conftest import SYSTEM
from tests.notifications.fake_twilio import FakeTwilio
from welfare import consents
from welfare import delivery as outbox
from welfare.db import make_engine, make_sessionmaker
from welfare.incidents.models import Incident, IncidentKind, IncidentStatus
from welfare.outbox.models import OutboxMessage, OutboxStatus
from welfare.residents.models import Resident
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.visits import scheduler
from welfare.visits import service as visits
from welfare.visits.models import ScheduleCreate, Visit, VisitOutcome, VisitStatus

ACCOUNT = "AC" + "8" * 32
RESIDENT_PHONE, SON = "+85298765432", "+85291234567"
# 10:00 in Hong Kong on 1 December 2026.
T0 = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)


@dataclass
class World:
    client: TestClient
    fake: FakeTwilio
    dispatcher: Dispatcher
    writers: sessionmaker[Session]
    visit_id: uuid.UUID

    def job(self, now: dt.datetime) -> int:
        with self.writers() as session:
            acted = scheduler.run_checkin_calls(session, now)
            session.commit()
        while self.dispatcher.run_once(now=now):
            pass
        return acted

    def calls_to(self, number: str) -> list[Any]:
        return [r for r in self.fake.sent("Calls") if r.form.get("To") == number]

    def visit(self) -> Visit:
        with self.writers() as session:
            visit = session.get(Visit, self.visit_id)
            assert visit is not None
            session.expunge(visit)
            return visit

    def call_rows(self) -> list[OutboxMessage]:
        with self.writers() as session:
            rows = list(
                session.exec(
                    select(OutboxMessage)
                    .where(col(OutboxMessage.idempotency_key).startswith(f"visit:{self.visit_id}"))
                    .order_by(col(OutboxMessage.idempotency_key))
                ).all()
            )
            for row in rows:
                session.expunge(row)
            return rows


@pytest.fixture
def world(
    settings: Settings,
    db: Session,
    site: Site,
    make_household: Callable[..., Any],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Any],
) -> Iterator[World]:
    resident = make_resident(
        household=make_household("2", "0803"), languages=["zh-CN"], phone="9876 5432"
    )
    make_consent(resident)
    make_contact(resident, relationship="son", phone="9123 4567", language="zh-CN")
    schedule = visits.create_schedule(
        session=db,
        actor=SYSTEM,
        data=ScheduleCreate(
            resident_id=resident.id,
            kind="automated_call",
            rrule="FREQ=DAILY",
            window_start=dt.time(10, 0),
            window_end=dt.time(10, 30),
            start_date=dt.date(2026, 12, 1),
        ),
    )
    db.commit()
    live = settings.model_copy(
        update={
            "twilio_account_sid": ACCOUNT,
            "twilio_auth_token": AUTH_TOKEN,
            "twilio_from_number": "+15005550006",
        }
    )
    fake = FakeTwilio(ACCOUNT, AUTH_TOKEN)
    engine = make_engine(settings.database_url)
    writers = make_sessionmaker(engine)
    with writers() as session:
        scheduler.generate_ahead(session, T0 - dt.timedelta(hours=1), dt.timedelta(days=2))
        session.commit()
        visit_id = session.exec(
            select(Visit.id).where(Visit.schedule_id == schedule.id, Visit.window_start == T0)
        ).one()
    app = create_app(live)
    with TestClient(app, base_url=BASE) as client:
        yield World(
            client, fake, Dispatcher(writers, TwilioChannel(live, fake), live), writers, visit_id
        )
    app.state.engine.dispose()
    engine.dispose()


def test_pressing_1_completes_the_visit_as_well_and_stops_the_retries(world: World) -> None:
    assert world.job(T0 - dt.timedelta(minutes=1)) == 0
    assert world.job(T0) == 1
    (call,) = world.calls_to(RESIDENT_PHONE)
    twiml = call.form["Twiml"]
    assert 'language="cmn-CN"' in twiml and "如果您一切安好" in twiml

    (row,) = world.call_rows()
    answer = post(
        world.client,
        f"/webhooks/twilio/gather?message_id={row.id}&attempt=1",
        {"CallSid": row.provider_id or "", "Digits": "1"},
    )
    assert answer.status_code == 200 and "很高兴知道您一切安好" in answer.text
    # Twilio retries the callback: still one completion.
    again = post(
        world.client,
        f"/webhooks/twilio/gather?message_id={row.id}&attempt=1",
        {"CallSid": row.provider_id or "", "Digits": "1"},
    )
    assert again.status_code == 200

    visit = world.visit()
    assert visit.status is VisitStatus.completed and visit.outcome is VisitOutcome.well
    assert world.job(T0 + dt.timedelta(minutes=5)) == 0
    assert world.job(T0 + dt.timedelta(minutes=30)) == 0
    assert len(world.calls_to(RESIDENT_PHONE)) == 1
    assert world.fake.sent("Messages") == []


def test_a_forged_keypress_completes_nothing(world: World) -> None:
    world.job(T0)
    (row,) = world.call_rows()
    forged = post(
        world.client,
        f"/webhooks/twilio/gather?message_id={row.id}&attempt=1",
        {"CallSid": row.provider_id or "", "Digits": "1"},
        token="not-the-auth-token",
    )
    assert forged.status_code == 403
    assert world.visit().status is VisitStatus.scheduled


def test_an_unanswered_checkin_retries_then_calls_the_family(world: World) -> None:
    assert world.job(T0) == 1
    assert world.job(T0 + dt.timedelta(minutes=4)) == 0
    assert world.job(T0 + dt.timedelta(minutes=5)) == 1
    assert world.job(T0 + dt.timedelta(minutes=10)) == 1
    assert world.job(T0 + dt.timedelta(minutes=14)) == 0
    assert len(world.calls_to(RESIDENT_PHONE)) == 3
    assert [r.status for r in world.call_rows()] == [OutboxStatus.sent] * 3
    # A wrong key is not a confirmation.
    first = world.call_rows()[0]
    post(
        world.client,
        f"/webhooks/twilio/gather?message_id={first.id}&attempt=1",
        {"CallSid": first.provider_id or "", "Digits": "7"},
    )
    assert world.visit().status is VisitStatus.scheduled
    assert world.calls_to(SON) == []

    # Fifteen minutes and no keypress: missed, and the contact escalation starts.
    assert world.job(T0 + dt.timedelta(minutes=15)) == 1
    visit = world.visit()
    assert visit.status is VisitStatus.missed and visit.incident_id is not None
    with world.writers() as session:
        incident = session.get(Incident, visit.incident_id)
        assert incident is not None
        assert incident.kind is IncidentKind.welfare_concern
        assert incident.status is IncidentStatus.notifying
    (family_call,) = world.calls_to(SON)
    assert "例行问候未能联系上" in family_call.form["Twiml"]
    (family_sms,) = [r for r in world.fake.sent("Messages") if r.form.get("To") == SON]
    assert "Wang" not in family_sms.form["Body"]

    # Running the job again opens nothing more and calls no one more.
    assert world.job(T0 + dt.timedelta(minutes=20)) == 0
    assert len(world.calls_to(SON)) == 1 and len(world.calls_to(RESIDENT_PHONE)) == 3
    # The son presses 1: the concern is confirmed like any incident.
    with world.writers() as session:
        son_row = session.exec(
            select(OutboxMessage).where(
                OutboxMessage.incident_id == visit.incident_id, OutboxMessage.kind == "voice"
            )
        ).one()
        session.expunge(son_row)
    post(
        world.client,
        f"/webhooks/twilio/gather?message_id={son_row.id}&attempt=1",
        {"CallSid": son_row.provider_id or "", "Digits": "1"},
    )
    with world.writers() as session:
        incident = session.get(Incident, visit.incident_id)
        assert incident is not None and incident.status is IncidentStatus.confirmed


def _erase_resident(world: World, settings: Settings) -> None:
    """Every consent withdrawn: the record is erased, its number with it (on queued rows too)."""
    resident_id = world.visit().resident_id
    with world.writers() as session:
        for consent in consents.consents_of(session, resident_id):
            consents.withdraw_consent(
                session=session,
                actor=SYSTEM,
                settings=settings,
                resident_id=resident_id,
                consent_id=consent.id,
            )
        session.commit()


def test_a_checkin_call_queued_before_the_number_was_erased_fails_for_good_without_a_call(
    world: World, settings: Settings
) -> None:
    with world.writers() as session:
        assert scheduler.run_checkin_calls(session, T0) == 1  # queued, not yet handed over
        session.commit()
    _erase_resident(world, settings)
    assert world.dispatcher.run_once(now=T0) == 1
    (row,) = world.call_rows()
    # Failed at the gate, never handed over: no attempt counted.
    assert (row.status, row.to_phone, row.attempts) == (OutboxStatus.failed, None, 0)
    assert row.error_reason == outbox.ERASED_NUMBER
    assert world.fake.sent("Calls") == []
    # Failed for good: not taken up again, however long the worker runs on.
    later = T0 + outbox.STALE_CLAIM + dt.timedelta(minutes=10)
    assert world.dispatcher.run_once(now=later) == 0
    assert world.call_rows()[0].status is OutboxStatus.failed


def test_a_call_reaching_the_send_without_a_number_fails_for_good_instead_of_looping(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The send path's backstop, through the worker's pump (which only logs what a hand-over
    raises): a row that reaches it without a number (erased between the gate and the send, or
    a gate that missed it) fails at once in words. An exception there left the row 'sending',
    to be taken up again after every stale window, for ever."""
    gate = outbox.open_sends

    def gate_missing_the_erasure(session: Session, claims: Any, now: Any = None) -> Any:
        opened = gate(session, claims, now=now)
        for item in opened:
            if item is not None:
                item[0].to_phone = None
        return opened

    monkeypatch.setattr(outbox, "open_sends", gate_missing_the_erasure)
    with world.writers() as session:
        assert scheduler.run_checkin_calls(session, T0) == 1
        session.commit()
    dispatcher = Dispatcher(world.writers, world.dispatcher.channels, world.dispatcher.settings)
    try:
        assert dispatcher.pump() == 1  # claimed, through the gate, handed to a send slot
        recorded = 0
        for _ in range(200):
            recorded += dispatcher.pump()
            if recorded:
                break
            threading.Event().wait(0.01)
    finally:
        dispatcher.close()
    (row,) = world.call_rows()
    assert (row.status, row.attempts) == (OutboxStatus.failed, 1)
    assert row.error_reason == outbox.ERASED_NUMBER and row.error_code is None
    assert world.fake.sent("Calls") == []
