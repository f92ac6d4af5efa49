"""A voicemail is never an answer, and a call that ends without a key moves on at once.

Through the HTTP routes with Twilio's signatures, the real SDK against the fake at its HTTP
boundary, and the dispatcher: answering-machine detection is asked for, a machine gets the
voicemail in the contact's language, a person's call is left alone, and every call that ends
without a key (voicemail, no answer, busy, hung up) starts the next contact's step at once
unless the policy says `advance_on_miss: false`.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from api.app import create_app
from notifications.dispatcher import Dispatcher
from notifications.twilio.client import TwilioChannel
from tests.api.test_webhooks import BASE, TOKEN, post
from tests.conftest import SYSTEM
from tests.notifications.fake_twilio import FakeTwilio
from welfare.channels import ChannelKind
from welfare.incidents import policies, timeline
from welfare.incidents import service as incidents
from welfare.incidents.models import (
    Incident,
    IncidentCreate,
    IncidentEvent,
    IncidentStatus,
    Resolution,
)
from welfare.incidents.policies import PolicyBody
from welfare.outbox.models import OutboxMessage
from welfare.residents.models import Contact, Resident
from welfare.settings import Settings
from welfare.sites.models import Site

ACCOUNT = "AC" + "4" * 32
SON, DAUGHTER = "+85291234567", "+85261234567"


@dataclass
class Line:
    """The app, the dispatcher and the fake Twilio they both talk to."""

    client: TestClient
    fake: FakeTwilio
    dispatcher: Dispatcher
    factory: sessionmaker[Session]


@pytest.fixture
def live(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "twilio_account_sid": ACCOUNT,
            "twilio_auth_token": TOKEN,
            "twilio_from_number": "+15005550006",
            "public_base_url": BASE,
        }
    )


@pytest.fixture
def line(live: Settings, writers: sessionmaker[Session]) -> Iterator[Line]:
    fake = FakeTwilio(ACCOUNT, TOKEN)
    app = create_app(live)
    # The app's own Twilio channel, pointed at the fake (create_app builds one for real HTTP).
    app.state.call_control = TwilioChannel(live, fake)
    dispatcher = Dispatcher(writers, TwilioChannel(live, fake), live)
    with TestClient(app, base_url=BASE) as client:
        yield Line(client, fake, dispatcher, writers)
    app.state.engine.dispose()
    app.state.read_engine.dispose()


@pytest.fixture
def wang(
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> Resident:
    resident = make_resident(full_name="Wang Jianguo", preferred_name="Mr. Wang")
    make_consent(resident)
    make_contact(resident, name="Wang Lei", relationship="son", phone="9123 4567", language="ko-KR")
    make_contact(
        resident, name="Wang Mei", relationship="daughter", phone="6123 4567", language="zh-CN"
    )
    return resident


def open_found(db: Session, resident: Resident) -> Incident:
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(
            resident_id=resident.id, location="Building 1", client_request_id=uuid.uuid4().hex
        ),
    )
    db.commit()
    incident = opened.incident
    db.refresh(incident)
    db.expunge(incident)  # detached, loaded: reading it later opens no old snapshot
    db.rollback()
    return incident


# The helpers read in a transaction of their own and hand back detached rows: reading an expired
# attribute later would open a snapshot older than the next webhook's commit.


def call_row(db: Session, incident_id: uuid.UUID, phone: str) -> OutboxMessage:
    db.rollback()
    row = db.exec(
        select(OutboxMessage).where(
            OutboxMessage.incident_id == incident_id,
            OutboxMessage.to_phone == phone,
            OutboxMessage.kind == ChannelKind.voice,
        )
    ).one()
    db.expunge(row)
    db.rollback()
    return row


def rows_to(db: Session, incident_id: uuid.UUID, phone: str) -> list[OutboxMessage]:
    db.rollback()
    rows = list(
        db.exec(
            select(OutboxMessage).where(
                OutboxMessage.incident_id == incident_id, OutboxMessage.to_phone == phone
            )
        ).all()
    )
    for row in rows:
        db.expunge(row)
    db.rollback()
    return rows


def events(db: Session, incident_id: uuid.UUID, type_: str | None = None) -> list[IncidentEvent]:
    db.rollback()
    found = [e for e in timeline.events_of(db, incident_id) if type_ in (None, e.type)]
    for event in found:
        db.expunge(event)
    db.rollback()
    return found


def amd(line: Line, sid: str, answered_by: str, **kwargs: Any) -> Any:
    """Post Twilio's AMD verdict for `sid` to the URL the call was created with, signed."""
    url, form = line.fake.amd_callback_form(sid, answered_by)
    assert url is not None
    parts = urlsplit(url)
    return post(line.client, f"{parts.path}?{parts.query}", form, **kwargs)


def status(line: Line, sid: str, word: str, **extra: str) -> Any:
    url, form = line.fake.status_callback_form(sid, word, **extra)
    assert url is not None
    parts = urlsplit(url)
    return post(line.client, f"{parts.path}?{parts.query}", form)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- the call asks for answering-machine detection ---------------------------------------------


def test_incident_calls_ask_twilio_for_asynchronous_answering_machine_detection(
    line: Line, db: Session, wang: Resident
) -> None:
    incident = open_found(db, wang)
    line.dispatcher.run_once()
    son = call_row(db, incident.id, SON)
    (created,) = [r for r in line.fake.sent("Calls") if r.form["To"] == SON]
    assert created.form["MachineDetection"] == "DetectMessageEnd"
    assert created.form["AsyncAmd"] == "true"
    assert created.form["AsyncAmdStatusCallbackMethod"] == "POST"
    callback = f"{BASE}/webhooks/twilio/answered-by?message_id={son.id}"
    assert created.form["AsyncAmdStatusCallback"] == callback
    # The script still plays at once: the keypress prompt is the call's own TwiML.
    assert "<Gather" in str(created.form["Twiml"])
    assert line.fake.calls[son.provider_id or ""]["_async_amd"] is True


# --- a machine gets the voicemail ------------------------------------------------------------


def test_a_machine_at_the_beep_gets_the_voicemail_in_the_contacts_language(
    line: Line, db: Session, site: Site, wang: Resident
) -> None:
    incident = open_found(db, wang)
    line.dispatcher.run_once()
    son = call_row(db, incident.id, SON)
    left = metric("welfare_voicemails_total", result="left")

    assert amd(line, son.provider_id or "", "machine_end_beep").status_code == 200

    (update,) = line.fake.updates(son.provider_id)
    spoken = str(update.form["Twiml"])
    assert 'language="ko-KR"' in spoken and "<Gather" not in spoken and "<Hangup" in spoken
    assert " ".join(incident.reference) in spoken  # read out one character at a time
    assert "2, 3, 4, 5" not in spoken and "2 3 4 5, 6 7 8 9" in spoken  # the office phone
    for private in ("Wang", "Mr.", "Building 1", site.name):
        assert private not in spoken
    assert metric("welfare_voicemails_total", result="left") == left + 1
    (voicemail,) = events(db, incident.id, "voicemail")
    assert voicemail.detail["answered_by"] == "machine_end_beep"
    assert voicemail.detail["left_message"] is True
    (missed,) = events(db, incident.id, "call_missed")
    assert missed.detail["outcome"] == "voicemail" and missed.detail["moves_on"] is True


@pytest.mark.parametrize("answered_by", ["machine_end_silence", "machine_end_other", "fax"])
def test_every_machine_verdict_gets_the_voicemail(
    line: Line, db: Session, wang: Resident, answered_by: str
) -> None:
    incident = open_found(db, wang)
    line.dispatcher.run_once()
    son = call_row(db, incident.id, SON)
    amd(line, son.provider_id or "", answered_by)
    assert len(line.fake.updates(son.provider_id)) == 1
    assert [e.detail["answered_by"] for e in events(db, incident.id, "voicemail")] == [answered_by]


def test_the_voicemail_is_in_chinese_for_a_chinese_contact(
    line: Line, db: Session, wang: Resident
) -> None:
    incident = open_found(db, wang)
    line.dispatcher.run_once()
    amd(line, call_row(db, incident.id, SON).provider_id or "", "machine_end_beep")
    line.dispatcher.run_once()  # the daughter's step started at once
    daughter = call_row(db, incident.id, DAUGHTER)
    amd(line, daughter.provider_id or "", "machine_end_beep")
    (update,) = line.fake.updates(daughter.provider_id)
    assert 'language="cmn-CN"' in str(update.form["Twiml"]) and "编号" in str(update.form["Twiml"])


def test_a_forged_amd_callback_is_refused_and_changes_nothing(
    line: Line, db: Session, wang: Resident
) -> None:
    incident = open_found(db, wang)
    line.dispatcher.run_once()
    son = call_row(db, incident.id, SON)
    forged = amd(line, son.provider_id or "", "machine_end_beep", token="not-the-token")
    assert forged.status_code == 403
    unsigned = amd(line, son.provider_id or "", "machine_end_beep", signature="")
    assert unsigned.status_code == 403
    assert line.fake.updates() == []
    assert events(db, incident.id, "voicemail") == []
    assert rows_to(db, incident.id, DAUGHTER) == []


def test_a_repeated_amd_callback_leaves_one_voicemail(
    line: Line, db: Session, wang: Resident
) -> None:
    incident = open_found(db, wang)
    line.dispatcher.run_once()
    son = call_row(db, incident.id, SON)
    for _ in range(3):
        assert amd(line, son.provider_id or "", "machine_end_beep").status_code == 200
    assert len(line.fake.updates(son.provider_id)) == 1
    assert len(events(db, incident.id, "voicemail")) == 1
    assert len(events(db, incident.id, "call_missed")) == 1
    assert len(events(db, incident.id, "escalation_step")) == 2  # the son's, the daughter's


@pytest.mark.parametrize("answered_by", ["human", "unknown"])
def test_a_person_answering_leaves_the_call_alone(
    line: Line, db: Session, wang: Resident, answered_by: str
) -> None:
    incident = open_found(db, wang)
    line.dispatcher.run_once()
    son = call_row(db, incident.id, SON)
    assert amd(line, son.provider_id or "", answered_by).status_code == 200
    assert line.fake.updates() == []
    assert events(db, incident.id, "voicemail") == events(db, incident.id, "call_missed") == []
    assert rows_to(db, incident.id, DAUGHTER) == []


def test_a_voicemail_twilio_refuses_is_logged_and_the_escalation_still_moves_on(
    line: Line, db: Session, wang: Resident, caplog: pytest.LogCaptureFixture
) -> None:
    incident = open_found(db, wang)
    line.dispatcher.run_once()
    son = call_row(db, incident.id, SON)
    line.fake.end_call(son.provider_id or "")  # hung up before the update reached Twilio
    not_left = metric("welfare_voicemails_total", result="not_left")
    assert amd(line, son.provider_id or "", "machine_end_beep").status_code == 200
    assert metric("welfare_voicemails_total", result="not_left") == not_left + 1
    assert "21220" in caplog.text and SON not in caplog.text
    assert {r.kind for r in rows_to(db, incident.id, DAUGHTER)} == {
        ChannelKind.sms,
        ChannelKind.voice,
    }


def test_a_machine_after_someone_confirmed_is_hung_up_on_without_a_message(
    line: Line, db: Session, wang: Resident
) -> None:
    incident = open_found(db, wang)
    line.dispatcher.run_once()
    son = call_row(db, incident.id, SON)
    incidents.acknowledge(session=db, actor=SYSTEM, incident_id=incident.id)
    db.commit()
    amd(line, son.provider_id or "", "machine_end_beep")
    (update,) = line.fake.updates(son.provider_id)
    assert "<Say" not in str(update.form["Twiml"]) and "<Hangup" in str(update.form["Twiml"])
    (voicemail,) = events(db, incident.id, "voicemail")
    assert voicemail.detail["left_message"] is False
    assert events(db, incident.id, "call_missed") == []


# --- a call that ends without a key moves on ---------------------------------------------------


@pytest.mark.parametrize(
    ("word", "outcome"),
    [
        ("no-answer", "no_answer"),
        ("busy", "busy"),
        ("completed", "no_key"),
        ("failed", "failed"),
        ("canceled", "cancelled"),
    ],
)
def test_a_call_ending_without_a_key_starts_the_next_contacts_step_at_once(
    line: Line, db: Session, wang: Resident, word: str, outcome: str
) -> None:
    incident = open_found(db, wang)
    line.dispatcher.run_once()
    son = call_row(db, incident.id, SON)
    assert rows_to(db, incident.id, DAUGHTER) == []
    missed = metric("welfare_calls_missed_total", outcome=outcome)

    assert status(line, son.provider_id or "", word).status_code == 200

    (event,) = events(db, incident.id, "call_missed")
    assert event.detail["outcome"] == outcome and event.detail["step"] == son.step_index
    assert {r.kind for r in rows_to(db, incident.id, DAUGHTER)} == {
        ChannelKind.sms,
        ChannelKind.voice,
    }
    assert metric("welfare_calls_missed_total", outcome=outcome) == missed + 1
    line.dispatcher.run_once()  # no clock moved: the daughter's messages go out now
    assert DAUGHTER in {r.form["To"] for r in line.fake.sent("Calls")}


def test_with_advance_on_miss_off_the_next_contact_waits_for_the_interval(
    line: Line, db: Session, site: Site, wang: Resident
) -> None:
    policies.set_policy(
        session=db, actor=SYSTEM, body=PolicyBody(advance_on_miss=False), site_id=site.id
    )
    db.commit()
    incident = open_found(db, wang)
    line.dispatcher.run_once()
    son = call_row(db, incident.id, SON)
    status(line, son.provider_id or "", "no-answer")
    (event,) = events(db, incident.id, "call_missed")
    assert event.detail["moves_on"] is False
    assert rows_to(db, incident.id, DAUGHTER) == []
    db.expire_all()
    current = db.get(Incident, incident.id)
    assert current is not None and current.next_step_at is not None
    assert (current.next_step_at - current.opened_at).total_seconds() >= 119


def test_a_key_pressed_on_the_call_keeps_the_timer(line: Line, db: Session, wang: Resident) -> None:
    incident = open_found(db, wang)
    line.dispatcher.run_once()
    son = call_row(db, incident.id, SON)
    sid = son.provider_id or ""
    post(
        line.client,
        f"/webhooks/twilio/gather?message_id={son.id}&attempt=1",
        {"CallSid": sid, "Digits": "2"},  # put through to the office: a person heard it
    )
    status(line, sid, "completed")
    assert events(db, incident.id, "call_missed") == []
    assert rows_to(db, incident.id, DAUGHTER) == []


def test_the_completed_news_after_a_voicemail_moves_on_only_once(
    line: Line, db: Session, wang: Resident
) -> None:
    incident = open_found(db, wang)
    line.dispatcher.run_once()
    sid = call_row(db, incident.id, SON).provider_id or ""
    amd(line, sid, "machine_end_beep")
    status(line, sid, "completed")
    assert [e.detail["outcome"] for e in events(db, incident.id, "call_missed")] == ["voicemail"]
    assert len(events(db, incident.id, "escalation_step")) == 2


def test_a_delivered_sms_does_not_hold_back_the_next_contact(
    line: Line, db: Session, wang: Resident
) -> None:
    incident = open_found(db, wang)
    line.dispatcher.run_once()
    sms = next(r for r in rows_to(db, incident.id, SON) if r.kind is ChannelKind.sms)
    status(line, sms.provider_id or "", "delivered")
    status(line, call_row(db, incident.id, SON).provider_id or "", "no-answer")
    assert {r.kind for r in rows_to(db, incident.id, DAUGHTER)} == {
        ChannelKind.sms,
        ChannelKind.voice,
    }


def test_a_missed_call_on_a_confirmed_incident_moves_nothing(
    line: Line, db: Session, wang: Resident
) -> None:
    incident = open_found(db, wang)
    line.dispatcher.run_once()
    sid = call_row(db, incident.id, SON).provider_id or ""
    incidents.acknowledge(session=db, actor=SYSTEM, incident_id=incident.id)
    db.commit()
    status(line, sid, "no-answer")
    assert events(db, incident.id, "call_missed") == []
    assert rows_to(db, incident.id, DAUGHTER) == []


def test_the_console_says_voicemail_and_moving_on_in_words(
    line: Line,
    db: Session,
    site: Site,
    wang: Resident,
    client: TestClient,
    make_user: Callable[..., Any],
    page_login: Callable[..., str],
) -> None:
    incident = open_found(db, wang)
    line.dispatcher.run_once()
    amd(line, call_row(db, incident.id, SON).provider_id or "", "machine_end_beep")
    line.dispatcher.run_once()
    status(line, call_row(db, incident.id, DAUGHTER).provider_id or "", "busy")
    page_login(make_user("staff", [site]))
    page = client.get(f"/console/incidents/{incident.id}")
    assert page.status_code == 200
    for words in (
        "Voicemail",
        "a short voicemail was left",
        "Call ended without a key",
        "voicemail",
        "busy",
        "the next contact is called now",
    ):
        assert words in page.text, words
    assert "<td>call_missed</td>" not in page.text and "<td>voicemail</td>" not in page.text


# --- the brief's case ------------------------------------------------------------------------


def test_the_sons_voicemail_gets_the_daughter_called_within_seconds_and_her_1_ends_it(
    line: Line, db: Session, wang: Resident
) -> None:
    incident = open_found(db, wang)
    line.dispatcher.run_once()
    son = call_row(db, incident.id, SON)

    # The son's phone goes to voicemail: the message is left, and on the worker's next round
    # (no clock moved) the daughter's phone rings.
    amd(line, son.provider_id or "", "machine_end_beep")
    at_beep = time.monotonic()
    line.dispatcher.run_once()
    assert time.monotonic() - at_beep < 5
    assert DAUGHTER in {r.form["To"] for r in line.fake.sent("Calls")}
    assert len(line.fake.updates(son.provider_id)) == 1

    # She presses 1.
    daughter = call_row(db, incident.id, DAUGHTER)
    pressed = post(
        line.client,
        f"/webhooks/twilio/gather?message_id={daughter.id}&attempt=1",
        {"CallSid": daughter.provider_id or "", "Digits": "1"},
    )
    assert pressed.status_code == 200
    status(line, son.provider_id or "", "completed")
    status(line, daughter.provider_id or "", "completed")

    # Nothing more goes out but the son's "coming" notice, however long we wait.
    texts_before = len(line.fake.sent("Messages"))
    line.dispatcher.run_once()
    with line.factory() as session:
        current = session.get(Incident, incident.id)
        assert current is not None
        later = current.opened_at + dt.timedelta(hours=2)
        incidents.advance(session=session, incident=current, now=later)
        session.commit()
    line.dispatcher.run_once(now=later)
    after = line.fake.sent("Messages")[texts_before:]
    assert [r.form["To"] for r in after] == [SON]  # the coming notice
    assert len(line.fake.sent("Calls")) == 2
    db.expire_all()
    done = db.get(Incident, incident.id)
    assert done is not None and done.status is IncidentStatus.confirmed
    assert done.confirmed_via == "keypress"
    types = [e.type for e in events(db, incident.id)]
    assert types.index("voicemail") < types.index("call_missed") < types.index("confirmed")
    assert types.count("call_missed") == 1  # her completed call had a key
    texts = str([e.detail for e in events(db, incident.id)])
    assert "Wang" not in texts and SON not in texts
    steps = db.exec(
        select(IncidentEvent).where(
            IncidentEvent.incident_id == incident.id,
            col(IncidentEvent.type) == "escalation_step",
        )
    ).all()
    assert len(steps) == 2


ANSWER_LINK = re.compile(r"/r/([A-Za-z0-9_-]{16})")


def test_after_the_sons_voicemail_the_daughter_taps_coming_on_her_sms_and_all_get_the_all_clear(
    line: Line, db: Session, wang: Resident
) -> None:
    """The issue's case with the link: son on voicemail -> daughter called and texted within
    seconds -> she taps "I'm coming" on her SMS link -> nothing more but the coming notice ->
    the guard hands over -> every contact sent anything gets the all-clear."""
    incident = open_found(db, wang)
    line.dispatcher.run_once()
    son = call_row(db, incident.id, SON)
    amd(line, son.provider_id or "", "machine_end_beep")
    at_beep = time.monotonic()
    line.dispatcher.run_once()
    assert time.monotonic() - at_beep < 5
    to_daughter = [r for r in line.fake.sent("Messages") if r.form["To"] == DAUGHTER]
    assert DAUGHTER in {r.form["To"] for r in line.fake.sent("Calls")} and len(to_daughter) == 1

    # Her SMS carries her link; she opens it and taps "I'm coming" (no sign-in, no key).
    found = ANSWER_LINK.search(to_daughter[0].form["Body"])
    assert found, to_daughter[0].form["Body"]
    page = line.client.get(f"/r/{found.group(1)}")
    assert page.status_code == 200 and "Wang" not in page.text
    tapped = line.client.post(f"/r/{found.group(1)}", data={"answer": "coming"})
    assert tapped.status_code in (200, 303)
    db.expire_all()
    confirmed = db.get(Incident, incident.id)
    assert confirmed is not None and confirmed.status is IncidentStatus.confirmed
    assert confirmed.confirmed_via == "answer_link"
    daughter = call_row(db, incident.id, DAUGHTER)
    status(line, son.provider_id or "", "completed")
    status(line, daughter.provider_id or "", "no-answer")  # her phone rang out meanwhile

    # Nothing more goes out but the son's "coming" notice, however long we wait.
    texts_before = len(line.fake.sent("Messages"))
    calls_before = len(line.fake.sent("Calls"))
    with line.factory() as session:
        current = session.get(Incident, incident.id)
        assert current is not None
        later = current.opened_at + dt.timedelta(hours=2)
        incidents.advance(session=session, incident=current, now=later)
        session.commit()
    line.dispatcher.run_once(now=later)
    assert [r.form["To"] for r in line.fake.sent("Messages")[texts_before:]] == [SON]
    assert len(line.fake.sent("Calls")) == calls_before

    # The guard hands him over: both contacts, each sent something, get the all-clear once.
    with line.factory() as session:
        incidents.resolve(
            session=session,
            actor=SYSTEM,
            incident_id=incident.id,
            data=Resolution(outcome="handed_over", handed_to="his daughter"),
        )
        session.commit()
    texts_before = len(line.fake.sent("Messages"))
    line.dispatcher.run_once()
    line.dispatcher.run_once()
    all_clears = line.fake.sent("Messages")[texts_before:]
    assert sorted(r.form["To"] for r in all_clears) == sorted([SON, DAUGHTER])
    assert all("Wang" not in r.form["Body"] for r in all_clears)
    types = [e.type for e in events(db, incident.id)]
    assert types.index("voicemail") < types.index("confirmed") < types.index("resolved")
    assert types.count("all_clear_sent") == 2
