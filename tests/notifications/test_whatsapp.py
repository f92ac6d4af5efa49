"""WhatsApp through Twilio's Messages API, with the real SDK against the Twilio fake: approved
templates (ContentSid + ContentVariables) per message and language, the answer link in them,
SMS at once when WhatsApp cannot deliver (63016 outside the 24-hour window, 63003...), replies
by WhatsApp, and what the contact and policy rules say about the channel."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pydantic
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from api.app import create_app
from notifications.dispatcher import Dispatcher
from notifications.runtime import build_channels
from notifications.twilio.client import TwilioChannel
from tests.api.test_webhooks import BASE, TOKEN, post
from tests.conftest import SYSTEM
from tests.notifications.fake_twilio import FakeTwilio
from welfare.channels import ChannelKind
from welfare.incidents import service as incidents
from welfare.incidents import timeline
from welfare.incidents.models import Incident, IncidentCreate, IncidentStatus
from welfare.outbox.models import OutboxMessage, OutboxStatus
from welfare.residents.models import Contact, ContactCreate, Resident
from welfare.settings import Settings

ACCOUNT = "AC" + "6" * 32
ABROAD = "+447911123456"  # the son in London reads WhatsApp
SENDER = "whatsapp:+14155238886"
TEMPLATES = {
    "found_alert": {
        "content_sid": {"en": "HX" + "a" * 32, "zh-CN": "HX" + "b" * 32},
        "variables": ["site_name", "reference", "link"],
    }
}
LINK = re.compile(r"/r/([A-Za-z0-9_-]{16})")


@dataclass
class Line:
    client: TestClient
    fake: FakeTwilio
    dispatcher: Dispatcher
    settings: Settings


@pytest.fixture
def live(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "twilio_account_sid": ACCOUNT,
            "twilio_auth_token": TOKEN,
            "twilio_from_number": "+15005550006",
            "twilio_whatsapp_from": SENDER,
            "twilio_whatsapp_templates": json.dumps(TEMPLATES),
            "public_base_url": BASE,
        }
    )


@pytest.fixture
def line(live: Settings, writers: sessionmaker[Session]) -> Iterator[Line]:
    fake = FakeTwilio(ACCOUNT, TOKEN)
    app = create_app(live)
    registry = build_channels(live, writers)
    twilio = TwilioChannel(live, fake)
    for kind in registry.kinds():
        registry.register(kind, twilio)  # the same provider, its HTTP pointed at the fake
    with TestClient(app, base_url=BASE) as client:
        yield Line(client, fake, Dispatcher(writers, registry, live), live)
    app.state.engine.dispose()
    app.state.read_engine.dispose()


@pytest.fixture
def family(
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> Callable[..., Resident]:
    def make(channels: list[str], language: str = "en") -> Resident:
        resident = make_resident()
        make_consent(resident)
        make_contact(resident, phone=ABROAD, channels=channels, language=language)
        return resident

    return make


def open_found(db: Session, resident: Resident) -> uuid.UUID:
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(resident_id=resident.id, client_request_id=uuid.uuid4().hex),
    )
    db.commit()
    return opened.incident.id


def rows(db: Session, incident_id: uuid.UUID) -> list[OutboxMessage]:
    db.rollback()
    found = list(
        db.exec(
            select(OutboxMessage)
            .where(OutboxMessage.incident_id == incident_id)
            .order_by(col(OutboxMessage.created_at))
        ).all()
    )
    for row in found:
        db.expunge(row)
    db.rollback()
    return found


def whatsapps(line: Line) -> list[Any]:
    return [r for r in line.fake.sent("Messages") if r.form["To"].startswith("whatsapp:")]


def texts(line: Line) -> list[Any]:
    return [r for r in line.fake.sent("Messages") if not r.form["To"].startswith("whatsapp:")]


def report_status(line: Line, sid: str, word: str, **extra: str) -> None:
    url, form = line.fake.status_callback_form(sid, word, **extra)
    assert url is not None
    parts = urlsplit(url)
    assert post(line.client, f"{parts.path}?{parts.query}", form).status_code == 200


def test_a_contact_who_reads_whatsapp_gets_the_approved_template_with_the_answer_link(
    line: Line, db: Session, family: Callable[..., Resident]
) -> None:
    incident_id = open_found(db, family(["whatsapp", "voice"], "zh-CN"))
    line.dispatcher.run_once()
    (sent,) = whatsapps(line)
    assert sent.form["To"] == f"whatsapp:{ABROAD}" and sent.form["From"] == SENDER
    assert sent.form["ContentSid"] == "HX" + "b" * 32  # the Chinese one
    assert "Body" not in sent.form
    variables = json.loads(sent.form["ContentVariables"])
    assert set(variables) == {"1", "2", "3"}
    reference = db.get(Incident, incident_id).reference  # type: ignore[union-attr]
    assert variables["2"] == reference
    token = LINK.search(variables["3"])
    assert token, variables
    assert texts(line) == []  # no SMS: not among his channels, and WhatsApp took it
    assert sorted(r.kind for r in rows(db, incident_id)) == [
        ChannelKind.voice,
        ChannelKind.whatsapp,
    ]

    # The link in the WhatsApp message answers like the SMS's: "I'm coming" confirms.
    assert line.client.post(f"/r/{token.group(1)}", data={"answer": "coming"}).status_code in (
        200,
        303,
    )
    db.expire_all()
    confirmed = db.get(Incident, incident_id)
    assert confirmed is not None and confirmed.status is IncidentStatus.confirmed


def test_outside_the_24_hour_window_whatsapp_hands_over_to_sms_at_once_and_once(
    line: Line, db: Session, family: Callable[..., Resident]
) -> None:
    incident_id = open_found(db, family(["whatsapp", "voice"]))
    line.dispatcher.run_once()
    assert len(whatsapps(line)) == 1
    (row,) = [r for r in rows(db, incident_id) if r.kind is ChannelKind.whatsapp]
    for _ in range(2):  # Twilio may say it twice
        report_status(line, row.provider_id or "", "failed", ErrorCode="63016")
    line.dispatcher.run_once()
    (sms,) = texts(line)
    assert sms.form["To"] == ABROAD and LINK.search(sms.form["Body"])
    events = [e for e in timeline.events_of(db, incident_id) if e.type == "whatsapp_fallback"]
    assert len(events) == 1
    assert "24-hour window" in events[0].detail["reason"]
    db.rollback()
    kinds = [(r.kind, r.status) for r in rows(db, incident_id)]
    assert (ChannelKind.sms, OutboxStatus.sent) in kinds


def test_a_number_without_whatsapp_refused_at_once_goes_by_sms(
    line: Line, db: Session, family: Callable[..., Resident]
) -> None:
    line.fake.fail_next(400, code=63003, message="Channel could not find To address")
    incident_id = open_found(db, family(["whatsapp"]))
    line.dispatcher.run_once()
    line.dispatcher.run_once()
    (sms,) = texts(line)
    assert sms.form["To"] == ABROAD
    assert [
        (r.kind, r.status, r.error_code) for r in rows(db, incident_id) if r.step_index == 0
    ] == [
        (ChannelKind.whatsapp, OutboxStatus.failed, "63003"),
        (ChannelKind.sms, OutboxStatus.sent, None),
    ]
    steps = [e.type for e in timeline.events_of(db, incident_id)]
    assert steps.index("whatsapp_fallback") < steps.index("sent")


def test_without_a_template_for_the_message_the_text_itself_goes(
    line: Line, db: Session, family: Callable[..., Resident], writers: sessionmaker[Session]
) -> None:
    incident_id = open_found(db, family(["whatsapp", "sms"]))
    line.dispatcher.run_once()
    with writers() as session:  # a message with no template (the all-clear)
        incidents.resolve(
            session=session,
            actor=SYSTEM,
            incident_id=incident_id,
            data=incidents.Resolution(outcome="handed_over", handed_to="son"),
        )
        session.commit()
    line.dispatcher.run_once()
    # The policy's "sms" step reached both his written channels; the all-clear goes by SMS.
    assert len(whatsapps(line)) == 1 and len(texts(line)) == 2
    assert "ContentSid" in whatsapps(line)[0].form


def test_a_whatsapp_reply_of_1_confirms_and_a_whatsapp_stop_leaves_sms_alone(
    line: Line, db: Session, family: Callable[..., Resident]
) -> None:
    resident = family(["whatsapp", "sms"])
    incident_id = open_found(db, resident)
    line.dispatcher.run_once()
    stop = {"MessageSid": "SM" + "1" * 32, "From": f"whatsapp:{ABROAD}", "Body": "STOP"}
    assert post(line.client, "/webhooks/twilio/inbound-sms", stop).status_code == 200
    db.rollback()
    contact = db.exec(select(Contact).where(Contact.resident_id == resident.id)).one()
    assert contact.sms_opted_out is False
    one = {"MessageSid": "SM" + "2" * 32, "From": f"whatsapp:{ABROAD}", "Body": "1"}
    assert post(line.client, "/webhooks/twilio/inbound-sms", one).status_code == 200
    db.rollback()  # a fresh snapshot: the contact's read above opened one
    done = db.get(Incident, incident_id)
    assert done is not None and done.status is IncidentStatus.confirmed
    assert done.confirmed_via == "whatsapp_reply"


def test_without_a_whatsapp_sender_the_message_goes_by_sms(
    settings: Settings,
    writers: sessionmaker[Session],
    db: Session,
    family: Callable[..., Resident],
) -> None:
    registry = build_channels(settings, writers)  # the console, with no WhatsApp of its own
    console = registry.sender(ChannelKind.sms)
    assert console is not None
    no_whatsapp = type(registry)({ChannelKind.sms: console, ChannelKind.voice: console})
    incident_id = open_found(db, family(["whatsapp"]))
    dispatcher = Dispatcher(writers, no_whatsapp, settings)
    dispatcher.run_once()
    dispatcher.run_once()
    assert [(r.kind, r.status, r.error_reason) for r in rows(db, incident_id)][:2] == [
        (ChannelKind.whatsapp, OutboxStatus.failed, "no sender for whatsapp"),
        (ChannelKind.sms, OutboxStatus.sent, None),
    ]
    console.close()  # type: ignore[attr-defined]


def test_a_contacts_channels_take_sms_voice_and_whatsapp_and_nothing_else() -> None:
    base = {"name": "Wang Lei", "relationship": "son", "phone": ABROAD}
    assert ContactCreate(**base, channels=["whatsapp", "whatsapp"]).channels == ["whatsapp"]
    with pytest.raises(pydantic.ValidationError):
        ContactCreate(**base, channels=["pigeon"])


def test_a_wrong_template_table_stops_the_start_in_words() -> None:
    for table, words in [
        ("not json", "not JSON"),
        ('{"found_alert": {"variables": []}}', "content_sid"),
        ('{"found_alert": {"content_sid": {"en": "SM1"}}}', "starts with HX"),
    ]:
        with pytest.raises(pydantic.ValidationError, match=words):
            Settings(twilio_whatsapp_templates=table, _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError, match="whatsapp:"):
        Settings(twilio_whatsapp_from="+14155238886", _env_file=None)  # type: ignore[call-arg]
