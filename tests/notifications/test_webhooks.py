"""notifications/twilio/webhooks.py without HTTP: status news, lookups, idempotency, keys."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, select

from notifications.dispatcher import Dispatcher
from notifications.twilio import webhooks
from tests.conftest import SYSTEM
from tests.notifications.test_dispatcher import _events, _rows
from welfare.audit.models import AuditEntry
from welfare.channels import ChannelKind
from welfare.errors import PermissionDenied
from welfare.incidents import service as incidents
from welfare.incidents import timeline
from welfare.incidents.models import Incident, IncidentCreate, IncidentStatus
from welfare.outbox.models import OutboxMessage, OutboxStatus
from welfare.residents.models import Contact, Resident
from welfare.settings import Settings
from welfare.users.models import User
from welfare.webhooks.models import WebhookReceipt

TOKEN = "twilio-auth-token-for-tests"


@pytest.fixture
def incident_id(
    db: Session,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> uuid.UUID:
    resident = make_resident()
    make_consent(resident)
    make_contact(resident, relationship="son", phone="9123 4567", language="zh-CN")
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(resident_id=resident.id, client_request_id=uuid.uuid4().hex),
    )
    db.commit()
    return opened.incident.id


def status(
    writers: sessionmaker[Session],
    row: OutboxMessage,
    value: str,
    sid: str | None = None,
    **form: str,
) -> bool:
    """Deliver one status callback for `row` in its own transaction, as a request would."""
    sid = sid or row.provider_id
    key = "MessageSid" if row.kind == ChannelKind.sms else "CallSid"
    with writers() as session:
        changed = webhooks.provider_status(
            session,
            message_id=str(row.id),
            sid=sid,
            status=value,
            form={key: sid or "", **form},
        )
        session.commit()
    return changed


def fetch(db: Session, row_id: uuid.UUID) -> OutboxMessage:
    db.expire_all()
    row = db.get(OutboxMessage, row_id)
    assert row is not None
    db.expunge(row)
    db.rollback()
    return row


def test_check_signature_accepts_twilios_and_refuses_the_rest(settings: Settings) -> None:
    from twilio.request_validator import RequestValidator

    signed = settings.model_copy(update={"twilio_auth_token": TOKEN})
    url = webhooks.public_url(signed, "/webhooks/twilio/gather", "message_id=x&attempt=1")
    assert url == "https://welfare.test/webhooks/twilio/gather?message_id=x&attempt=1"
    form = {"CallSid": "CA1", "Digits": "1"}
    good = RequestValidator(TOKEN).compute_signature(url, form)
    webhooks.check_signature(signed, url=url, params=form, signature=good)
    for bad in (None, "", "AAAA", RequestValidator("other").compute_signature(url, form)):
        with pytest.raises(PermissionDenied):
            webhooks.check_signature(signed, url=url, params=form, signature=bad)
    with pytest.raises(PermissionDenied, match="auth token"):
        webhooks.check_signature(settings, url=url, params=form, signature=good)


def test_repeated_status_news_is_recorded_once(
    db: Session, dispatcher: Dispatcher, writers: sessionmaker[Session], incident_id: uuid.UUID
) -> None:
    dispatcher.run_once()
    sms = next(r for r in _rows(db, incident_id) if r.kind == ChannelKind.sms)
    assert status(writers, sms, "delivered")
    assert not status(writers, sms, "delivered")
    assert _events(db, incident_id).count("delivered") == 1
    assert db.exec(select(WebhookReceipt)).all()  # the receipt holds ids only
    db.rollback()


def test_news_out_of_order_never_moves_the_status_back(
    db: Session, dispatcher: Dispatcher, writers: sessionmaker[Session], incident_id: uuid.UUID
) -> None:
    dispatcher.run_once()
    sms = next(r for r in _rows(db, incident_id) if r.kind == ChannelKind.sms)
    assert status(writers, sms, "delivered")
    assert status(writers, sms, "sent")  # late, but still news for the timeline
    assert fetch(db, sms.id).provider_status == "delivered"
    types = _events(db, incident_id)
    assert types.count("delivered") == 1 and types.count("sent_to_carrier") == 1
    assert status_of(db, incident_id) is IncidentStatus.notifying


def test_a_callback_before_the_sid_was_stored_finds_the_row_and_stores_it(
    db: Session, writers: sessionmaker[Session], incident_id: uuid.UUID
) -> None:
    # The dispatcher claimed the row and is waiting for Twilio's answer when the news arrives.
    sms = next(r for r in _rows(db, incident_id) if r.kind == ChannelKind.sms)
    with writers() as session:
        row = session.get(OutboxMessage, sms.id)
        assert row is not None
        row.status = OutboxStatus.sending
        session.add(row)
        session.commit()
    assert status(writers, sms, "sent", sid="SMearly")
    row = fetch(db, sms.id)
    assert (row.provider_id, row.provider_status) == ("SMearly", "sent")
    assert "sent_to_carrier" in _events(db, incident_id)


def test_failed_delivery_is_recorded_in_words_and_is_not_a_confirmation(
    db: Session, dispatcher: Dispatcher, writers: sessionmaker[Session], incident_id: uuid.UUID
) -> None:
    dispatcher.run_once()
    rows = _rows(db, incident_id)
    sms = next(r for r in rows if r.kind == ChannelKind.sms)
    call = next(r for r in rows if r.kind == ChannelKind.voice)
    assert status(writers, sms, "undelivered", ErrorCode="30003")
    assert status(writers, call, "no-answer")
    db.expire_all()
    events = {e.type: e.detail for e in timeline.events_of(db, incident_id)}
    assert events["undelivered"]["error_code"] == "30003"
    assert "unreachable" in events["undelivered"]["reason"]
    assert "no_answer" in events
    db.rollback()
    assert fetch(db, sms.id).error_code == "30003"
    assert status_of(db, incident_id) is IncidentStatus.notifying


@pytest.mark.parametrize("value", ["busy", "failed", "canceled", "completed"])
def test_call_endings_are_not_confirmations(
    db: Session,
    dispatcher: Dispatcher,
    writers: sessionmaker[Session],
    incident_id: uuid.UUID,
    value: str,
) -> None:
    dispatcher.run_once()
    call = next(r for r in _rows(db, incident_id) if r.kind == ChannelKind.voice)
    assert status(writers, call, value)
    assert status_of(db, incident_id) is IncidentStatus.notifying


def test_unknown_sids_and_statuses_change_nothing(
    db: Session, dispatcher: Dispatcher, writers: sessionmaker[Session], incident_id: uuid.UUID
) -> None:
    dispatcher.run_once()
    before = _events(db, incident_id)
    with writers() as session:
        form = {"MessageSid": "SMnobody"}
        assert not webhooks.provider_status(
            session, message_id=None, sid="SMnobody", status="delivered", form=form
        )
        assert not webhooks.provider_status(
            session, message_id="not-a-uuid", sid="SMnobody", status="delivered", form=form
        )
        session.commit()
    sms = next(r for r in _rows(db, incident_id) if r.kind == ChannelKind.sms)
    assert not status(writers, sms, "accepted")  # a status we do not report
    assert _events(db, incident_id) == before
    assert db.exec(select(WebhookReceipt)).all() == []
    db.rollback()


def test_news_of_an_earlier_send_of_a_resent_row_does_not_overwrite_its_status(
    db: Session, dispatcher: Dispatcher, writers: sessionmaker[Session], incident_id: uuid.UUID
) -> None:
    dispatcher.run_once()
    call = next(r for r in _rows(db, incident_id) if r.kind == ChannelKind.voice)
    assert status(writers, call, "ringing")
    assert status(writers, call, "no-answer", sid="CAfirstsendlostinacrash")
    row = fetch(db, call.id)
    assert (row.provider_id, row.provider_status) == (call.provider_id, "ringing")
    db.expire_all()
    ended = next(e for e in timeline.events_of(db, incident_id) if e.type == "no_answer")
    assert ended.detail["earlier_attempt"] is True
    db.rollback()


def test_the_duty_manager_pressing_1_takes_over(
    db: Session,
    settings: Settings,
    writers: sessionmaker[Session],
    make_user: Callable[..., User],
    incident_id: uuid.UUID,
) -> None:
    manager = make_user("manager")
    with writers() as session:
        row = OutboxMessage(
            idempotency_key=f"test-manager-{uuid.uuid4()}",
            incident_id=incident_id,
            user_id=manager.id,
            kind=ChannelKind.voice,
            to_phone="+85290000000",
            language="en",
            template="manager_escalation",
            status=OutboxStatus.sent,
            provider_id="CAmanager",
        )
        session.add(row)
        session.commit()
        row_id = row.id
    with writers() as session:
        answer = webhooks.gather(
            session,
            settings,
            message_id=str(row_id),
            attempt="1",
            form={"CallSid": "CAmanager", "Digits": "1"},
        )
        session.commit()
    assert "<Hangup" in answer
    assert status_of(db, incident_id) is IncidentStatus.confirmed
    db.expire_all()
    confirmed = next(e for e in timeline.events_of(db, incident_id) if e.type == "confirmed")
    assert confirmed.detail["via"] == "manager"
    assert (confirmed.actor, confirmed.actor_id) == ("manager", manager.id)
    db.rollback()


def test_an_opt_out_from_a_contact_without_an_open_incident_is_still_kept(
    db: Session, writers: sessionmaker[Session], incident_id: uuid.UUID
) -> None:
    incidents.cancel(session=db, actor=SYSTEM, incident_id=incident_id)
    db.commit()
    before = _events(db, incident_id)
    with writers() as session:
        webhooks.inbound_sms(
            session, form={"MessageSid": "SMstop", "From": "+85291234567", "Body": "退订"}
        )
        session.commit()
    db.expire_all()
    contact = db.exec(select(Contact)).one()
    assert contact.sms_opted_out
    entry = db.exec(select(AuditEntry).where(AuditEntry.action == "contact.sms_opt_out")).one()
    assert (entry.entity_id, entry.resident_id, entry.purpose) == (
        str(contact.id),
        contact.resident_id,
        None,  # no open incident to name
    )
    db.rollback()
    assert _events(db, incident_id) == before  # a closed incident's timeline is left alone


def status_of(db: Session, incident_id: uuid.UUID) -> IncidentStatus:
    db.expire_all()
    incident = db.get(Incident, incident_id)
    assert incident is not None
    value = incident.status
    db.rollback()
    return value
