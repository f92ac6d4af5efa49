"""The all-clear: closing an incident sends each contact who was sent anything one short SMS."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from notifications.dispatcher import Dispatcher
from notifications.messages import sms_segments
from tests.conftest import SYSTEM
from tests.notifications.fake_channel import FakeChannel
from welfare import delivery as outbox
from welfare.channels import ChannelKind
from welfare.errors import Conflict
from welfare.incidents import service as incidents
from welfare.incidents import timeline
from welfare.incidents.models import Incident, IncidentCreate, IncidentStatus, Resolution
from welfare.outbox import queue as outbox_queue
from welfare.outbox.models import ALL_CLEAR, OutboxMessage, OutboxStatus
from welfare.residents.models import Contact, Resident
from welfare.times import zone

SON = "+85291234567"
DAUGHTER = "+85261234567"


@pytest.fixture
def incident_id(
    db: Session,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> uuid.UUID:
    """Mr. Wang found; his son (Chinese) first on the list, his daughter (Korean) second."""
    resident = make_resident()
    make_consent(resident)
    make_contact(resident, name="Wang Lei", relationship="son", phone="9123 4567")
    make_contact(
        resident, name="Wang Mei", relationship="daughter", phone="6123 4567", language="ko-KR"
    )
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(resident_id=resident.id, client_request_id=uuid.uuid4().hex),
    )
    db.commit()
    return opened.incident.id


def _rows(db: Session, incident_id: uuid.UUID) -> list[OutboxMessage]:
    db.expire_all()
    rows = list(
        db.exec(
            select(OutboxMessage)
            .where(OutboxMessage.incident_id == incident_id)
            .order_by(col(OutboxMessage.created_at), col(OutboxMessage.kind))
        ).all()
    )
    db.expunge_all()
    db.rollback()
    return rows


def _events(db: Session, incident_id: uuid.UUID) -> list[str]:
    db.expire_all()
    types = [e.type for e in timeline.events_of(db, incident_id)]
    db.rollback()
    return types


def _son_reached_daughter_queued(
    dispatcher: Dispatcher, writers: sessionmaker[Session], incident_id: uuid.UUID
) -> None:
    """The son is sent his SMS and called; two minutes on, the daughter's step queues her rows,
    which the close then stops before they go out: she is never contacted."""
    assert dispatcher.run_once() == 2
    with writers() as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None and incident.escalation
        start = dt.datetime.fromisoformat(incident.escalation["started_at"])
        incidents.advance(session=session, incident=incident, now=start + dt.timedelta(minutes=2))
        session.commit()


def _close(writers: sessionmaker[Session], incident_id: uuid.UUID, how: str) -> Incident:
    with writers() as session:
        if how == "resolve":
            incident = incidents.resolve(
                session=session,
                actor=SYSTEM,
                incident_id=incident_id,
                data=Resolution(outcome="handed_over"),  # type: ignore[arg-type]
            )
        else:
            incident = incidents.cancel(session=session, actor=SYSTEM, incident_id=incident_id)
        session.commit()
        session.refresh(incident)
        session.expunge(incident)
        return incident


def _all_clears(db: Session, incident_id: uuid.UUID) -> list[OutboxMessage]:
    return [r for r in _rows(db, incident_id) if r.template == ALL_CLEAR]


def test_resolving_sends_the_son_one_all_clear_in_chinese_and_the_daughter_nothing(
    db: Session,
    dispatcher: Dispatcher,
    channel: FakeChannel,
    writers: sessionmaker[Session],
    site: Any,
    incident_id: uuid.UUID,
) -> None:
    timezone = site.timezone  # read now: the rows' reads below detach what the session holds
    _son_reached_daughter_queued(dispatcher, writers, incident_id)
    assert {r.to_phone for r in _rows(db, incident_id)} == {SON, DAUGHTER}
    incident = _close(writers, incident_id, "resolve")
    channel.sent.clear()
    assert dispatcher.run_once() == 1
    assert [(kind, to) for kind, to, _ in channel.sent] == [("sms", SON)]
    text = channel.sent[0][2]
    assert incident.handed_over_at is not None
    clock = incident.handed_over_at.astimezone(zone(timezone)).strftime("%H:%M")
    assert incident.reference in text and clock in text and "安全" in text
    assert 1 <= sms_segments(text) <= 2
    assert "Wang" not in text and "Mr." not in text
    # One row, once sent; the daughter's stopped rows reached no one and get nothing.
    (row,) = _all_clears(db, incident_id)
    assert row.status == OutboxStatus.sent and row.language == "zh-CN"
    assert {r.status for r in _rows(db, incident_id) if r.to_phone == DAUGHTER} == {
        OutboxStatus.cancelled
    }
    events = _events(db, incident_id)
    assert events.count("all_clear_queued") == 1 and events.count("all_clear_sent") == 1
    assert events.index("resolved") < events.index("all_clear_queued")
    assert dispatcher.run_once() == 0


def test_cancelling_sends_the_neutral_wording(
    db: Session,
    dispatcher: Dispatcher,
    channel: FakeChannel,
    writers: sessionmaker[Session],
    incident_id: uuid.UUID,
) -> None:
    _son_reached_daughter_queued(dispatcher, writers, incident_id)
    incident = _close(writers, incident_id, "cancel")
    channel.sent.clear()
    dispatcher.run_once()
    assert [(kind, to) for kind, to, _ in channel.sent] == [("sms", SON)]
    text = channel.sent[0][2]
    assert "不再需要" in text and incident.reference in text
    assert "安全" not in text and "交接" not in text  # a cancel says nothing about the resident


def test_a_resolution_other_than_a_hand_over_is_not_called_safe(
    db: Session,
    dispatcher: Dispatcher,
    channel: FakeChannel,
    writers: sessionmaker[Session],
    incident_id: uuid.UUID,
) -> None:
    dispatcher.run_once()
    with writers() as session:
        incidents.resolve(
            session=session,
            actor=SYSTEM,
            incident_id=incident_id,
            data=Resolution(outcome="hospital"),  # type: ignore[arg-type]
        )
        session.commit()
    channel.sent.clear()
    dispatcher.run_once()
    (text,) = [content for _, _, content in channel.sent]
    assert "不再需要" in text and "安全" not in text


def test_a_contact_who_opted_out_of_sms_gets_no_all_clear(
    db: Session,
    dispatcher: Dispatcher,
    channel: FakeChannel,
    writers: sessionmaker[Session],
    incident_id: uuid.UUID,
) -> None:
    dispatcher.run_once()  # the son is sent an SMS and called, then replies STOP
    son = db.exec(select(Contact).where(Contact.relationship == "son")).one()
    son.sms_opted_out = True
    db.add(son)
    db.commit()
    _close(writers, incident_id, "resolve")
    assert _all_clears(db, incident_id) == []
    assert "all_clear_queued" not in _events(db, incident_id)


def test_resolving_twice_or_a_resolve_racing_a_cancel_sends_one_all_clear(
    db: Session,
    dispatcher: Dispatcher,
    channel: FakeChannel,
    writers: sessionmaker[Session],
    incident_id: uuid.UUID,
) -> None:
    dispatcher.run_once()
    _close(writers, incident_id, "resolve")
    with pytest.raises(Conflict):
        _close(writers, incident_id, "resolve")
    with pytest.raises(Conflict):
        _close(writers, incident_id, "cancel")
    # A closer that got past the status check anyway (the race the locks exist for): the
    # database's idempotency key refuses its second all-clear, and the close still commits.
    with writers() as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        incident.status = IncidentStatus.cancelled
        assert incidents._queue_all_clears(session, incident, incident.updated_at) == 0
        session.commit()
    assert len(_all_clears(db, incident_id)) == 1
    channel.sent.clear()
    dispatcher.run_once()
    assert [(kind, to) for kind, to, _ in channel.sent] == [("sms", SON)]


def test_a_resolve_and_a_cancel_at_the_same_moment_send_one_all_clear(
    db: Session,
    dispatcher: Dispatcher,
    channel: FakeChannel,
    writers: sessionmaker[Session],
    incident_id: uuid.UUID,
) -> None:
    """Two closers in two transactions at once (two API processes on PostgreSQL): the incident's
    lock lets one close it; the other finds it closed and queues nothing."""
    dispatcher.run_once()
    start = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def close(how: str) -> None:
        start.wait()
        try:
            _close(writers, incident_id, how)
            outcomes[how] = "closed"
        except Conflict:
            outcomes[how] = "conflict"

    threads = [threading.Thread(target=close, args=(how,)) for how in ("resolve", "cancel")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes.values()) == ["closed", "conflict"]
    assert len(_all_clears(db, incident_id)) == 1
    channel.sent.clear()
    dispatcher.run_once()
    assert [(kind, to) for kind, to, _ in channel.sent] == [("sms", SON)]


def test_a_missing_alert_to_guards_only_gets_no_all_clear(
    db: Session,
    dispatcher: Dispatcher,
    channel: FakeChannel,
    writers: sessionmaker[Session],
    site: Any,
    make_user: Callable[..., Any],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> None:
    guard = make_user("guard", [site], phone="+852 5123 4567")
    guard.on_duty_since = guard.created_at
    db.add(guard)
    db.commit()
    resident = make_resident()
    make_consent(resident)
    make_contact(resident)
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(
            resident_id=resident.id, kind="missing", client_request_id=uuid.uuid4().hex
        ),  # type: ignore[arg-type]
    )
    db.commit()
    incident_id = opened.incident.id
    assert dispatcher.run_once() == 1  # the guard's alert
    _close(writers, incident_id, "resolve")
    assert _all_clears(db, incident_id) == []


@pytest.mark.parametrize("status", [IncidentStatus.resolved, IncidentStatus.cancelled])
def test_the_gate_lets_the_all_clear_through_a_closed_incident_and_stops_every_escalation_row(
    db: Session,
    dispatcher: Dispatcher,
    channel: FakeChannel,
    writers: sessionmaker[Session],
    incident_id: uuid.UUID,
    status: IncidentStatus,
) -> None:
    """Rows a stop missed (claimed before it, written by an older version) and an all-clear,
    all at the gate of a closed incident: only the all-clear goes out."""
    _queue_raw_all_clear(writers, incident_id)
    with writers() as session:
        claimed = outbox.claim_due(session)
        incident = session.get(Incident, incident_id)
        assert incident is not None
        incident.status = status  # closed without cancelling the rows
        session.add(incident)
        session.commit()
    assert len(claimed) == 3
    for claim in claimed:
        dispatcher.deliver(claim)
    assert [(kind, to) for kind, to, _ in channel.sent] == [("sms", SON)]
    assert {(r.template, r.status) for r in _rows(db, incident_id)} == {
        ("found_alert", OutboxStatus.cancelled),
        (ALL_CLEAR, OutboxStatus.sent),
    }


def test_the_gate_refuses_an_all_clear_while_the_incident_is_only_confirmed(
    db: Session,
    dispatcher: Dispatcher,
    channel: FakeChannel,
    writers: sessionmaker[Session],
    incident_id: uuid.UUID,
) -> None:
    _queue_raw_all_clear(writers, incident_id)
    with writers() as session:
        claimed = outbox.claim_due(session)
        incident = session.get(Incident, incident_id)
        assert incident is not None
        incident.status = IncidentStatus.confirmed
        session.add(incident)
        session.commit()
    for claim in claimed:
        dispatcher.deliver(claim)
    assert channel.sent == []
    assert {r.status for r in _rows(db, incident_id)} == {OutboxStatus.cancelled}


def _queue_raw_all_clear(writers: sessionmaker[Session], incident_id: uuid.UUID) -> None:
    with writers() as session:
        incident = session.get(Incident, incident_id)
        son = session.exec(select(Contact).where(Contact.relationship == "son")).one()
        assert incident is not None
        outbox_queue.enqueue(
            session,
            kind=ChannelKind.sms,
            to=son.phone,
            language=son.language,
            template=ALL_CLEAR,
            key=outbox_queue.incident_key(
                incident, ChannelKind.sms, cause=ALL_CLEAR, recipient=son.id
            ),
            params={"wording": "closed"},
            incident=incident,
            contact_id=son.id,
            event="all_clear_queued",
            now=incident.opened_at,
        )
        session.commit()
