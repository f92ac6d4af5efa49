"""Twilio webhooks over HTTP: signatures, the keypress, inbound SMS, status callbacks."""

from __future__ import annotations

import datetime as dt
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select
from twilio.request_validator import RequestValidator

from api.app import create_app
from notifications.dispatcher import Dispatcher
from tests.conftest import SYSTEM
from tests.notifications.fake_channel import FakeChannel
from tests.notifications.test_dispatcher import _events, _rows
from welfare.audit.models import AuditEntry
from welfare.channels import ChannelKind
from welfare.db import utcnow
from welfare.incidents import service as incidents
from welfare.incidents import timeline
from welfare.incidents.models import Incident, IncidentCreate, IncidentStatus
from welfare.outbox.models import OutboxMessage, OutboxStatus
from welfare.residents.models import Contact, Resident
from welfare.settings import Settings

TOKEN = "twilio-auth-token-for-tests"
BASE = "https://welfare.test"
SON = "+85291234567"
DAUGHTER = "+85261234567"


@pytest.fixture
def signed_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"twilio_auth_token": TOKEN})


@pytest.fixture
def twilio(signed_settings: Settings) -> Iterator[TestClient]:
    """A client for the app with an auth token configured, as Twilio sees it."""
    application = create_app(signed_settings)
    with TestClient(application, base_url=BASE) as test_client:
        yield test_client
    application.state.engine.dispose()


def sign(url: str, form: dict[str, str], token: str = TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, form)


def post(
    client: TestClient,
    path: str,
    form: dict[str, str],
    *,
    signed_url: str | None = None,
    token: str = TOKEN,
    signature: str | None = None,
) -> httpx.Response:
    """POST `form` to `path` signed like Twilio (over the public URL unless told otherwise)."""
    sig = signature if signature is not None else sign(signed_url or BASE + path, form, token)
    headers = {"X-Twilio-Signature": sig} if sig else {}
    return client.post(path, data=form, headers=headers)


@pytest.fixture
def dispatcher(
    writers: sessionmaker[Session], channel: FakeChannel, signed_settings: Settings
) -> Dispatcher:
    return Dispatcher(writers, channel, signed_settings)


@pytest.fixture
def resident(
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> Resident:
    resident = make_resident()
    make_consent(resident)
    make_contact(resident, relationship="son", phone="9123 4567", language="zh-CN")
    make_contact(resident, relationship="daughter", phone="6123 4567", language="ko-KR")
    return resident


def open_found(db: Session, resident: Resident) -> uuid.UUID:
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(
            resident_id=resident.id, client_request_id=uuid.uuid4().hex, location="Building 1"
        ),
    )
    db.commit()
    return opened.incident.id


@pytest.fixture
def incident_id(db: Session, resident: Resident) -> uuid.UUID:
    return open_found(db, resident)


def row_for(db: Session, incident_id: uuid.UUID, to: str, kind: str) -> OutboxMessage:
    return next(r for r in _rows(db, incident_id) if r.to_phone == to and r.kind == kind)


def status_of(db: Session, incident_id: uuid.UUID) -> IncidentStatus:
    db.expire_all()
    incident = db.get(Incident, incident_id)
    assert incident is not None
    status = incident.status
    db.rollback()
    return status


def gather_path(row: OutboxMessage, attempt: int = 1) -> str:
    return f"/webhooks/twilio/gather?message_id={row.id}&attempt={attempt}"


def press(client: TestClient, row: OutboxMessage, digits: str, attempt: int = 1) -> ET.Element:
    form = {"CallSid": row.provider_id or "", "Digits": digits, "AccountSid": "ACtest"}
    response = post(client, gather_path(row, attempt), form)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    return ET.fromstring(response.text)


def advance_to_daughter(writers: sessionmaker[Session], incident_id: uuid.UUID) -> None:
    """Two minutes on: the daughter's step is queued (and made due now)."""
    with writers() as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        start = dt.datetime.fromisoformat(incident.escalation["started_at"])
        incidents.advance(session=session, incident=incident, now=start + dt.timedelta(seconds=121))
        session.commit()


def make_due(writers: sessionmaker[Session], incident_id: uuid.UUID) -> None:
    with writers() as session:
        for row in session.exec(
            select(OutboxMessage).where(
                OutboxMessage.incident_id == incident_id,
                OutboxMessage.status == OutboxStatus.pending,
            )
        ):
            row.next_attempt_at = utcnow() - dt.timedelta(seconds=1)
            session.add(row)
        session.commit()


# --- signatures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["message-status", "call-status", "gather", "inbound-sms"])
def test_unsigned_and_forged_webhooks_are_refused(twilio: TestClient, name: str) -> None:
    path = f"/webhooks/twilio/{name}"
    form = {"MessageSid": "SMx", "CallSid": "CAx", "From": SON, "Body": "1"}
    missing = post(twilio, path, form, signature="")
    assert missing.status_code == 403
    assert "X-Twilio-Signature" in missing.json()["detail"]
    forged = post(twilio, path, form, token="not-the-token")
    assert forged.status_code == 403
    assert post(twilio, path, form).status_code == 200


def test_a_signature_for_another_url_or_other_fields_is_refused(
    twilio: TestClient, db: Session, dispatcher: Dispatcher, incident_id: uuid.UUID
) -> None:
    dispatcher.run_once()
    call = row_for(db, incident_id, SON, "voice")
    form = {"CallSid": call.provider_id or "", "Digits": "1"}
    path = gather_path(call)
    # Replayed to a different path, query or host: the signature was for another URL.
    for elsewhere in (
        f"{BASE}/webhooks/twilio/inbound-sms",
        f"{BASE}{path.replace('attempt=1', 'attempt=2')}",
        f"http://127.0.0.1:8000{path}",
    ):
        assert post(twilio, path, form, signed_url=elsewhere).status_code == 403
    # A field changed after signing.
    signature = sign(BASE + path, form)
    tampered = twilio.post(
        path, data={**form, "Digits": "2"}, headers={"X-Twilio-Signature": signature}
    )
    assert tampered.status_code == 403
    assert status_of(db, incident_id) is IncidentStatus.notifying
    assert "key_pressed" not in _events(db, incident_id)


def test_the_signature_is_checked_against_the_public_url_not_the_request_url(
    signed_settings: Settings, incident_id: uuid.UUID
) -> None:
    # Behind a proxy: the app is reached on another host, Twilio signed the public URL.
    application = create_app(signed_settings)
    with TestClient(application, base_url="http://10.0.0.5:8000") as inner:
        form = {"MessageSid": "SMunknown", "MessageStatus": "delivered"}
        path = "/webhooks/twilio/message-status?message_id=" + str(uuid.uuid4())
        assert post(inner, path, form).status_code == 200
        assert post(inner, path, form, signed_url="http://10.0.0.5:8000" + path).status_code == 403
    application.state.engine.dispose()


def test_without_an_auth_token_every_webhook_is_refused(client: TestClient) -> None:
    form = {"MessageSid": "SMx", "MessageStatus": "delivered"}
    response = post(client, "/webhooks/twilio/message-status", form)
    assert response.status_code == 403
    assert "auth token" in response.json()["detail"]


# --- the keypress -------------------------------------------------------------------------------


def test_keypress_1_confirms_and_stops_pending_calls(
    twilio: TestClient,
    db: Session,
    dispatcher: Dispatcher,
    channel: FakeChannel,
    writers: sessionmaker[Session],
    incident_id: uuid.UUID,
) -> None:
    dispatcher.run_once()  # the son's SMS and call
    advance_to_daughter(writers, incident_id)  # the daughter's step waits in the outbox
    call = row_for(db, incident_id, SON, "voice")
    answer = press(twilio, call, "1")
    assert answer.find("Hangup") is not None and answer.find("Dial") is None
    assert status_of(db, incident_id) is IncidentStatus.confirmed
    daughter_rows = [r for r in _rows(db, incident_id) if r.to_phone == DAUGHTER]
    assert daughter_rows and all(r.status == OutboxStatus.cancelled for r in daughter_rows)
    make_due(writers, incident_id)
    channel.sent.clear()
    dispatcher.run_once()
    assert channel.sent == []  # nothing more goes out
    db.expire_all()
    events = timeline.events_of(db, incident_id)
    pressed = [e for e in events if e.type == "key_pressed"]
    assert [e.detail["digit"] for e in pressed] == ["1"]
    confirmed = next(e for e in events if e.type == "confirmed")
    assert confirmed.detail["via"] == "keypress"
    assert confirmed.detail["contact_id"] == str(call.contact_id)


def test_the_daughter_pressing_1_sends_only_the_coming_notice_to_the_son(
    twilio: TestClient,
    db: Session,
    dispatcher: Dispatcher,
    channel: FakeChannel,
    writers: sessionmaker[Session],
    incident_id: uuid.UUID,
) -> None:
    dispatcher.run_once()
    advance_to_daughter(writers, incident_id)
    make_due(writers, incident_id)
    dispatcher.run_once()  # the daughter's SMS and call
    call = row_for(db, incident_id, DAUGHTER, "voice")
    press(twilio, call, "1")
    channel.sent.clear()
    dispatcher.run_once()
    assert [(kind, to) for kind, to, _ in channel.sent] == [("sms", SON)]
    assert "女儿" in channel.sent[0][2]  # "your sister (daughter) is coming", in Chinese


def test_a_repeated_keypress_callback_records_and_confirms_once(
    twilio: TestClient, db: Session, dispatcher: Dispatcher, incident_id: uuid.UUID
) -> None:
    dispatcher.run_once()
    call = row_for(db, incident_id, SON, "voice")
    first = press(twilio, call, "1")
    again = press(twilio, call, "1")
    assert ET.tostring(first) == ET.tostring(again)  # Twilio gets the same answer
    types = _events(db, incident_id)
    assert types.count("key_pressed") == 1
    assert types.count("confirmed") == 1


def test_keypress_2_dials_the_site_office(
    twilio: TestClient, db: Session, dispatcher: Dispatcher, incident_id: uuid.UUID
) -> None:
    dispatcher.run_once()
    call = row_for(db, incident_id, SON, "voice")
    answer = press(twilio, call, "2")
    dial = answer.find("Dial")
    assert dial is not None
    assert [n.text for n in dial.iter("Number")] == ["+85223456789"]  # the site's office
    assert status_of(db, incident_id) is IncidentStatus.notifying  # not a confirmation
    db.expire_all()
    pressed = [e for e in timeline.events_of(db, incident_id) if e.type == "key_pressed"]
    assert [e.detail["digit"] for e in pressed] == ["2"]


@pytest.mark.parametrize("digits", ["", "7"])
def test_no_key_or_a_wrong_key_repeats_once_then_says_goodbye(
    twilio: TestClient, db: Session, dispatcher: Dispatcher, incident_id: uuid.UUID, digits: str
) -> None:
    dispatcher.run_once()
    call = row_for(db, incident_id, SON, "voice")
    first = press(twilio, call, digits, attempt=1)
    gather = first.find("Gather")
    assert gather is not None
    assert gather.get("action", "").endswith(f"message_id={call.id}&attempt=2")
    said = " ".join(s.text or "" for s in gather.iter("Say"))
    assert "Building 1" in said  # the message itself is read again, in Chinese
    assert all(s.get("language") == "cmn-CN" for s in gather.iter("Say"))
    second = press(twilio, call, digits, attempt=2)
    assert second.find("Gather") is None and second.find("Hangup") is not None
    assert status_of(db, incident_id) is IncidentStatus.notifying


def test_an_answered_call_without_a_key_is_not_a_confirmation(
    twilio: TestClient, db: Session, dispatcher: Dispatcher, incident_id: uuid.UUID
) -> None:
    dispatcher.run_once()
    call = row_for(db, incident_id, SON, "voice")
    path = f"/webhooks/twilio/call-status?message_id={call.id}"
    for status in ("ringing", "in-progress", "completed"):
        form = {"CallSid": call.provider_id or "", "CallStatus": status, "AnsweredBy": "human"}
        assert post(twilio, path, form).status_code == 200
    types = _events(db, incident_id)
    assert [t for t in types if t in {"ringing", "answered", "call_ended"}] == [
        "ringing",
        "answered",
        "call_ended",
    ]
    assert status_of(db, incident_id) is IncidentStatus.notifying


def test_an_unknown_call_gets_a_goodbye_and_leaves_nothing(
    twilio: TestClient, db: Session, incident_id: uuid.UUID
) -> None:
    before = _events(db, incident_id)
    path = f"/webhooks/twilio/gather?message_id={uuid.uuid4()}&attempt=1"
    response = post(twilio, path, {"CallSid": "CAnobody", "Digits": "1"})
    assert response.status_code == 200
    assert ET.fromstring(response.text).find("Hangup") is not None
    assert _events(db, incident_id) == before


# --- inbound SMS --------------------------------------------------------------------------------


def reply(client: TestClient, sender: str, body: str, sid: str | None = None) -> httpx.Response:
    form = {
        "MessageSid": sid or f"SM{uuid.uuid4().hex}",
        "From": sender,
        "To": "+85230001111",
        "Body": body,
        "NumMedia": "0",
        "FromCountry": "HK",  # an extra field we do not know about
    }
    response = post(client, "/webhooks/twilio/inbound-sms", form)
    assert response.status_code == 200
    assert ET.fromstring(response.text).tag == "Response"
    return response


@pytest.mark.parametrize("body", ["1", "yes", "好的", "네"])
def test_an_sms_reply_confirms(
    twilio: TestClient, db: Session, dispatcher: Dispatcher, incident_id: uuid.UUID, body: str
) -> None:
    dispatcher.run_once()
    reply(twilio, SON, body)
    assert status_of(db, incident_id) is IncidentStatus.confirmed
    db.expire_all()
    events = timeline.events_of(db, incident_id)
    replies = [e.detail for e in events if e.type == "sms_reply"]
    assert [d["reply"] for d in replies] == ["confirm"]
    assert next(e for e in events if e.type == "confirmed").detail["via"] == "sms_reply"


def test_a_reply_that_says_no_does_not_confirm(
    twilio: TestClient, db: Session, dispatcher: Dispatcher, incident_id: uuid.UUID
) -> None:
    dispatcher.run_once()
    reply(twilio, SON, "not coming, sorry")
    assert status_of(db, incident_id) is IncidentStatus.notifying
    assert _events(db, incident_id).count("sms_reply") == 1


def test_a_duplicate_inbound_message_records_once(
    twilio: TestClient, db: Session, dispatcher: Dispatcher, incident_id: uuid.UUID
) -> None:
    dispatcher.run_once()
    reply(twilio, SON, "ok", sid="SMsame")
    reply(twilio, SON, "ok", sid="SMsame")
    types = _events(db, incident_id)
    assert types.count("sms_reply") == 1
    assert types.count("confirmed") == 1


def test_stop_opts_out_and_the_next_report_only_calls_that_contact(
    twilio: TestClient,
    db: Session,
    dispatcher: Dispatcher,
    resident: Resident,
    incident_id: uuid.UUID,
) -> None:
    dispatcher.run_once()
    reply(twilio, SON, "STOP")
    db.expire_all()
    son = db.exec(select(Contact).where(Contact.phone == SON)).one()
    assert son.sms_opted_out
    assert status_of(db, incident_id) is IncidentStatus.notifying
    assert "sms_opt_out" in _events(db, incident_id)
    db.rollback()
    stop_audit = _opt_audits(db)
    assert [(a.action, a.entity_id, a.purpose) for a in stop_audit] == [
        ("contact.sms_opt_out", str(son.id), f"incident {incident_id}")
    ]
    assert stop_audit[0].resident_id == resident.id
    # The incident is closed; the next found report plans only a call to the son.
    incidents.cancel(session=db, actor=SYSTEM, incident_id=incident_id)
    db.commit()
    again = open_found(db, resident)
    first_step = [r for r in _rows(db, again) if r.to_phone == SON]
    assert [r.kind for r in first_step] == [ChannelKind.voice]

    reply(twilio, SON, "START")
    db.expire_all()
    assert not db.exec(select(Contact).where(Contact.phone == SON)).one().sms_opted_out
    db.rollback()
    assert "sms_opt_in" in _events(db, again)
    assert [(a.action, a.detail) for a in _opt_audits(db)] == [
        ("contact.sms_opt_out", {"via": "sms_reply", "sms_opted_out": True}),
        ("contact.sms_opt_in", {"via": "sms_reply", "sms_opted_out": False}),
    ]
    reply(twilio, SON, "START", sid="SMstartagain")  # no change: nothing more to audit
    assert len(_opt_audits(db)) == 2


def _opt_audits(db: Session) -> list[AuditEntry]:
    db.expire_all()
    rows = list(
        db.exec(
            select(AuditEntry)
            .where(col(AuditEntry.action).startswith("contact.sms_opt"))
            .order_by(col(AuditEntry.id))
        ).all()
    )
    db.rollback()
    return rows


def test_an_unknown_number_gets_an_empty_answer_and_leaves_nothing(
    twilio: TestClient, db: Session, dispatcher: Dispatcher, incident_id: uuid.UUID
) -> None:
    dispatcher.run_once()
    before = _events(db, incident_id)
    response = reply(twilio, "+85299998888", "1")
    assert response.text.endswith("<Response />")
    assert _events(db, incident_id) == before
    assert status_of(db, incident_id) is IncidentStatus.notifying


def test_no_names_phone_numbers_or_reply_texts_in_the_timeline(
    twilio: TestClient, db: Session, dispatcher: Dispatcher, incident_id: uuid.UUID
) -> None:
    dispatcher.run_once()
    call = row_for(db, incident_id, SON, "voice")
    sms = row_for(db, incident_id, SON, "sms")
    post(
        twilio,
        f"/webhooks/twilio/message-status?message_id={sms.id}",
        {"MessageSid": sms.provider_id or "", "MessageStatus": "undelivered", "To": SON},
    )
    press(twilio, call, "2")
    reply(twilio, SON, "on my way, Wang Lei here")  # not a plain confirmation
    reply(twilio, SON, "好的")
    db.expire_all()
    text = repr([(e.type, e.actor, e.detail) for e in timeline.events_of(db, incident_id)])
    for secret in ("Wang", "Lei", "91234567", "9123 4567", "on my way", "好的", "Building"):
        assert secret not in text


# --- replayed webhooks -------------------------------------------------------------------------


def test_replayed_signed_webhooks_cannot_confirm_a_later_incident(
    twilio: TestClient,
    db: Session,
    dispatcher: Dispatcher,
    resident: Resident,
    headers_for: Callable[..., dict[str, str]],
) -> None:
    """An attacker who captured a genuine, signed "yes" SMS and keypress of one incident replays
    them, byte for byte, once a new incident for the same resident is running: nothing moves."""
    staff = headers_for("staff")
    resident_id = resident.id
    first = open_found(db, resident)
    dispatcher.run_once()
    call = row_for(db, first, SON, "voice")
    captured_press = (gather_path(call), {"CallSid": call.provider_id or "", "Digits": "1"})
    assert post(twilio, *captured_press).status_code == 200
    captured_sms = reply(twilio, SON, "yes", sid="SMcaptured")
    assert captured_sms.status_code == 200
    assert status_of(db, first) is IncidentStatus.confirmed
    resolved = twilio.post(
        f"/api/v1/incidents/{first}/resolve",
        json={"outcome": "returned_home"},
        headers=staff,
    )
    assert resolved.status_code == 200, resolved.text

    again = db.get(Resident, resident_id)
    assert again is not None
    second = open_found(db, again)
    dispatcher.run_once()
    assert status_of(db, second) is IncidentStatus.notifying
    assert post(twilio, *captured_press).status_code == 200  # Twilio gets its usual answer
    reply(twilio, SON, "yes", sid="SMcaptured")
    assert status_of(db, second) is IncidentStatus.notifying
    assert status_of(db, first) is IncidentStatus.resolved
    assert _events(db, second).count("confirmed") == 0
    assert _events(db, first).count("confirmed") == 1
