"""Limits per recipient (welfare/outbox/limits.py): the same text goes to one number once a
day; messages that are not about an incident go to one number at most N times per window; both
hold under two workers racing on PostgreSQL; a held message is on the timeline or in the audit."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, select

from notifications import dispatcher as dispatcher_module
from notifications.channels import ChannelError
from notifications.dispatcher import Dispatcher
from notifications.status import record_status
from tests.conftest import SYSTEM
from tests.notifications.fake_channel import FakeChannel
from welfare import outbox
from welfare.audit.models import AuditEntry
from welfare.channels import ChannelKind
from welfare.db import make_engine, make_sessionmaker, utcnow
from welfare.incidents import service as incidents
from welfare.incidents import timeline
from welfare.incidents.models import Incident, IncidentCreate
from welfare.outbox import limits
from welfare.outbox.models import OutboxMessage, OutboxStatus, RecipientAllowance, RecipientText
from welfare.residents.models import Contact, Resident
from welfare.settings import Settings
from welfare.sites.models import Site

NUMBER = "+85291234567"
OTHER = "+85261234567"


def _visit_notice(
    db: Session, site: Site, *, to: str = NUMBER, visit_id: uuid.UUID | None = None
) -> uuid.UUID:
    """A staff notice outside any incident: a welfare visit's reminder (its text names the visit,
    so two visits' reminders differ and one visit's twice is the same text)."""
    row = outbox.enqueue(
        db,
        kind=ChannelKind.sms,
        to=to,
        language="en",
        template="visit_reminder",
        key=f"test:{uuid.uuid4()}",
        params={
            "site_id": site.id,
            "visit_id": visit_id or uuid.uuid4(),
            "window_start": "2026-12-03T02:00:00+00:00",
            "kind": "home visit",
        },
    )
    db.commit()
    assert row is not None
    return row.id


def _row(db: Session, message_id: uuid.UUID) -> OutboxMessage:
    """The row as it is now, detached: reading it leaves no transaction open."""
    db.rollback()
    row = db.get(OutboxMessage, message_id)
    assert row is not None
    db.refresh(row)
    db.expunge(row)
    db.rollback()
    return row


def _held_entries(db: Session) -> list[AuditEntry]:
    db.rollback()
    return list(db.exec(select(AuditEntry).where(AuditEntry.action == "message.held_back")).all())


# --- the same text once ------------------------------------------------------------------------


def test_the_same_text_to_one_number_goes_once_a_day_and_the_repeat_is_held_in_the_audit(
    db: Session, site: Site, channel: FakeChannel, dispatcher: Dispatcher
) -> None:
    visit = uuid.uuid4()
    first = _visit_notice(db, site, visit_id=visit)
    assert dispatcher.run_once() == 1
    again = _visit_notice(db, site, visit_id=visit)  # the same visit's reminder once more
    _visit_notice(db, site, visit_id=visit, to=OTHER)
    assert dispatcher.run_once() == 2
    assert [to for _, to, _ in channel.sent] == [NUMBER, OTHER]
    assert _row(db, first).status is OutboxStatus.sent
    held = _row(db, again)
    assert held.status is OutboxStatus.held
    assert held.error_reason == limits.SAME_TEXT
    assert held.attempts == 0  # nothing went out
    (entry,) = _held_entries(db)
    assert entry.entity_id == str(again) and entry.site_id == site.id
    assert entry.detail["reason"] == limits.SAME_TEXT and entry.detail["channel"] == "sms"
    # Nothing personal is kept: the tables hold keyed hashes, never the number or the text.
    stored = db.exec(select(RecipientText)).all()
    assert len(stored) == 2
    assert all(NUMBER not in row.phone_key and "9123" not in row.phone_key for row in stored)

    # A day later the same text may go again.
    later = _visit_notice(db, site, visit_id=visit)
    assert dispatcher.run_once(now=utcnow() + dt.timedelta(hours=24, seconds=1)) == 1
    assert _row(db, later).status is OutboxStatus.sent
    assert len(channel.sent) == 3


def test_a_text_that_never_arrived_does_not_hold_back_the_next(
    db: Session,
    site: Site,
    channel: FakeChannel,
    dispatcher: Dispatcher,
    writers: sessionmaker[Session],
) -> None:
    visit = uuid.uuid4()
    _visit_notice(db, site, visit_id=visit)
    channel.failures.append(ChannelError("unreachable", code="21610", permanent=True))
    dispatcher.run_once()
    second = _visit_notice(db, site, visit_id=visit)
    dispatcher.run_once()
    assert _row(db, second).status is OutboxStatus.sent

    # Reported undelivered after it was taken: forgotten too.
    with writers() as session:
        sid = session.get(OutboxMessage, second).provider_id  # type: ignore[union-attr]
        assert record_status(session, message_id=str(second), sid=sid, status="undelivered")
        session.commit()
    third = _visit_notice(db, site, visit_id=visit)
    dispatcher.run_once()
    assert _row(db, third).status is OutboxStatus.sent
    assert len(channel.sent) == 2


def test_the_limits_can_be_turned_off(
    db: Session,
    site: Site,
    channel: FakeChannel,
    writers: sessionmaker[Session],
    settings: Settings,
) -> None:
    off = settings.model_copy(update={"identical_text_hours": 0, "recipient_limit": 0})
    dispatcher = Dispatcher(writers, channel, off)
    visit = uuid.uuid4()
    for _ in range(8):
        _visit_notice(db, site, visit_id=visit)
    while dispatcher.run_once():
        pass
    assert len(channel.sent) == 8


@pytest.fixture
def report_found(
    db: Session,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> Callable[[], Incident]:
    """A found report for a resident whose one contact takes SMS and calls on NUMBER."""

    def report() -> Incident:
        resident = make_resident()
        make_consent(resident)
        make_contact(resident, relationship="son", phone="9123 4567", language="en")
        opened = incidents.open_incident(
            session=db,
            actor=SYSTEM,
            data=IncidentCreate(resident_id=resident.id, client_request_id=uuid.uuid4().hex),
        )
        db.commit()
        return opened.incident

    return report


def test_the_escalations_second_round_calls_again_and_holds_its_sms_on_the_timeline(
    db: Session,
    channel: FakeChannel,
    dispatcher: Dispatcher,
    writers: sessionmaker[Session],
    report_found: Callable[[], Incident],
) -> None:
    incident = report_found()
    incident_id = incident.id
    start = dt.datetime.fromisoformat(incident.escalation["started_at"])
    repeat = next(s for s in incident.escalation["steps"] if s["round"] == 2)
    at = start + dt.timedelta(seconds=repeat["offset_seconds"])
    dispatcher.run_once(now=start)
    assert sorted(kind for kind, _, _ in channel.sent) == ["call", "sms"]
    with writers() as session:
        found = session.get(Incident, incident_id)
        assert found is not None
        incidents.advance(session=session, incident=found, now=at)
        session.commit()
    channel.sent.clear()
    while dispatcher.run_once(now=at):
        pass
    assert [(kind, to) for kind, to, _ in channel.sent] == [("call", NUMBER)]
    db.rollback()
    held = db.exec(
        select(OutboxMessage).where(
            OutboxMessage.incident_id == incident_id,
            OutboxMessage.step_index == repeat["index"],
            OutboxMessage.kind == ChannelKind.sms,
        )
    ).one()
    assert held.status is OutboxStatus.held
    events = [e for e in timeline.events_of(db, incident_id) if e.type == "held_back"]
    assert [e.detail["message_id"] for e in events] == [str(held.id)]
    assert events[0].detail["reason"] == limits.SAME_TEXT
    assert events[0].detail["since"]  # when the same text went
    assert _held_entries(db) == []  # an incident's rows are on its timeline, not in the audit


def test_two_incidents_texts_differ_so_neither_is_held(
    db: Session,
    channel: FakeChannel,
    dispatcher: Dispatcher,
    report_found: Callable[[], Incident],
) -> None:
    report_found()
    dispatcher.run_once()
    report_found()  # another resident with the same son, the same day
    dispatcher.run_once()
    assert [kind for kind, _, _ in channel.sent].count("sms") == 2


# --- at most N per window outside an escalation -----------------------------------------------


def test_notices_beyond_the_allowance_wait_for_the_window_and_then_go(
    db: Session,
    site: Site,
    channel: FakeChannel,
    writers: sessionmaker[Session],
    settings: Settings,
) -> None:
    dispatcher = Dispatcher(writers, channel, settings.model_copy(update={"recipient_limit": 3}))
    ids = [_visit_notice(db, site) for _ in range(5)]
    _visit_notice(db, site, to=OTHER)  # another number has its own allowance
    start = utcnow()
    dispatcher.run_once(now=start)
    assert [to for _, to, _ in channel.sent].count(NUMBER) == 3
    assert [to for _, to, _ in channel.sent].count(OTHER) == 1
    waiting = [row for row in (_row(db, i) for i in ids) if row.status is not OutboxStatus.sent]
    assert len(waiting) == 2
    for row in waiting:
        assert row.status is OutboxStatus.pending and row.attempts == 0
        assert row.error_reason == limits.TOO_MANY
        # Until the first of the three leaves the 15-minute window.
        assert abs(row.next_attempt_at - (start + dt.timedelta(minutes=15))) < dt.timedelta(
            seconds=5
        )
    assert sorted(e.entity_id for e in _held_entries(db)) == sorted(str(r.id) for r in waiting)

    # Still waiting a minute later: held again, but the audit says so only once per row.
    dispatcher.run_once(now=start + dt.timedelta(minutes=15, seconds=10))
    assert [to for _, to, _ in channel.sent].count(NUMBER) == 5
    assert len(_held_entries(db)) == 2


def test_an_incidents_messages_are_never_slowed_and_use_no_allowance(
    db: Session,
    site: Site,
    channel: FakeChannel,
    writers: sessionmaker[Session],
    settings: Settings,
    report_found: Callable[[], Incident],
) -> None:
    dispatcher = Dispatcher(writers, channel, settings.model_copy(update={"recipient_limit": 2}))
    for _ in range(2):
        _visit_notice(db, site)
    dispatcher.run_once()
    report_found()  # the son's alert SMS and call, with the allowance used up
    dispatcher.run_once()
    assert [to for _, to, _ in channel.sent].count(NUMBER) == 4
    db.rollback()
    (allowance,) = db.exec(select(RecipientAllowance)).all()
    assert len(allowance.recent) == 2  # the two notices only


def test_housekeeping_drops_what_no_limit_looks_at_any_more(
    db: Session, site: Site, dispatcher: Dispatcher, settings: Settings
) -> None:
    _visit_notice(db, site)
    dispatcher.run_once()
    rules = limits.RecipientLimits.from_settings(settings)
    assert limits.prune(db, rules, utcnow() + dt.timedelta(hours=23)) == 0
    assert limits.prune(db, rules, utcnow() + dt.timedelta(hours=24, seconds=1)) == 2
    db.commit()
    assert db.exec(select(RecipientText)).all() == []


# --- two workers racing (PostgreSQL: real connections; SQLite queues its writers) --------------


def _race(engines: list[Engine], channel: FakeChannel, settings: Settings, limit: int) -> None:
    """Two dispatchers, as two worker processes, each taking `limit` rows at the same moment and
    passing them through the gate in one transaction (the worker loop's round, `pump`)."""
    dispatchers = [
        Dispatcher(make_sessionmaker(e), channel, settings, concurrency=limit) for e in engines
    ]
    barrier = threading.Barrier(len(dispatchers))
    errors: list[BaseException] = []

    def run(dispatcher: Dispatcher) -> None:
        try:
            barrier.wait(timeout=10)
            dispatcher.pump()
            dispatcher.close()  # the sends finish and are recorded
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(d,)) for d in dispatchers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []


@pytest.fixture
def two_workers(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Engine]]:
    """Two workers' engines, their gates slowed down (each text takes 50 ms to render) so that
    the two gate transactions overlap whatever the machine's speed."""
    render = dispatcher_module.render

    def slow_render(*args: Any, **kwargs: Any) -> Any:
        content = render(*args, **kwargs)
        time.sleep(0.05)
        return content

    monkeypatch.setattr(dispatcher_module, "render", slow_render)
    engines = [make_engine(settings.database_url) for _ in range(2)]
    yield engines
    for engine in engines:
        engine.dispose()


def test_two_workers_send_the_same_text_to_one_number_once(
    db: Session, site: Site, channel: FakeChannel, settings: Settings, two_workers: list[Engine]
) -> None:
    if db.get_bind().dialect.name != "postgresql":
        pytest.skip("SQLite has one writer: nothing races")
    visit = uuid.uuid4()
    ids = [_visit_notice(db, site, visit_id=visit) for _ in range(2)]
    _race(two_workers, channel, settings, limit=1)
    assert len(channel.sent) == 1
    statuses = sorted(_row(db, i).status.value for i in ids)
    assert statuses == ["held", "sent"]


def test_two_workers_never_send_one_number_more_than_its_allowance(
    db: Session, site: Site, channel: FakeChannel, settings: Settings, two_workers: list[Engine]
) -> None:
    if db.get_bind().dialect.name != "postgresql":
        pytest.skip("SQLite has one writer: nothing races")
    limited = settings.model_copy(update={"recipient_limit": 3})
    # One notice first: the number's allowance row exists, as it does in a running system (the
    # very first insert of it would make the second worker wait for the first anyway).
    first = _visit_notice(db, site)
    Dispatcher(make_sessionmaker(two_workers[0]), channel, limited).run_once()
    ids = [_visit_notice(db, site) for _ in range(8)]
    _race(two_workers, channel, limited, limit=4)
    assert len(channel.sent) == 3
    rows = [_row(db, i) for i in [first, *ids]]
    assert sum(r.status is OutboxStatus.sent for r in rows) == 3
    assert all(r.status in (OutboxStatus.sent, OutboxStatus.pending) for r in rows)
    db.rollback()
    (allowance,) = db.exec(select(RecipientAllowance)).all()
    assert len(allowance.recent) == 3
