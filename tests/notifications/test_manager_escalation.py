# Chinese text uses fullwidth punctuation on purpose.
# ruff: noqa: RUF001
"""The duty manager's step end to end: no contact confirmed, so the escalation reaches the
manager, and the manager's SMS and call, rendered in the manager's language, reach the channel.

If the step queued a template the dispatcher does not render (or renders as something else),
the manager would never be contacted and nothing but a "no message text" row would say so."""

from __future__ import annotations

import datetime as dt
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from notifications.dispatcher import Dispatcher
from tests.conftest import SYSTEM
from tests.notifications.fake_channel import FakeChannel
from welfare.authz import Role
from welfare.incidents import service as incidents
from welfare.incidents.models import Incident, IncidentCreate
from welfare.outbox.models import OutboxMessage, OutboxStatus
from welfare.residents.models import Contact, Resident
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.users.models import User

SON, MANAGER = "+85291234567", "+85294561609"
SITE = "Harbour View Gardens"

# What the manager reads and hears, written out here (not rebuilt from notifications/messages.py,
# so a changed or lost template shows): (SMS, spoken message, prompt, Say language).
EXPECTED: dict[str, tuple[str, str, str, str]] = {
    "en": (
        f"{SITE}: no emergency contact has confirmed for incident {{ref}}. "
        "Please take over the response.",
        f"This is {SITE}. No emergency contact has confirmed for incident {{ref}}. "
        "Please take over the response.",
        "If you are coming, press 1. To be connected to the office, press 2.",
        "en-GB",
    ),
    "zh-CN": (
        f"{SITE}：事件{{ref}}仍无紧急联系人确认，请您接手处理。",
        f"这里是{SITE}。事件{{ref}}仍无紧急联系人确认，请您接手处理。",
        "如果您会前来，请按1。如需转接管理处，请按2。",
        "cmn-CN",
    ),
    "ko-KR": (
        f"{SITE}: 사건 {{ref}}에 대해 확인한 비상연락처가 없습니다. 대응을 맡아 주세요.",
        f"{SITE}입니다. 사건 {{ref}}에 대해 확인한 비상연락처가 없습니다. 대응을 맡아 주세요.",
        "오실 수 있으면 1번을, 관리사무소와 연결하시려면 2번을 눌러 주세요.",
        "ko-KR",
    ),
}


def _open(
    db: Session,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> Incident:
    """A found report for a resident with one contact: the manager's step comes after it."""
    resident = make_resident()
    make_consent(resident)
    make_contact(resident, relationship="son", phone="9123 4567", language="zh-CN")
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(resident_id=resident.id, client_request_id=uuid.uuid4().hex),
    )
    db.commit()
    return opened.incident


def _advance(writers: sessionmaker[Session], incident_id: uuid.UUID, now: dt.datetime) -> None:
    with writers() as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        incidents.advance(session=session, incident=incident, now=now)
        session.commit()


def _manager_rows(db: Session, incident_id: uuid.UUID) -> list[OutboxMessage]:
    db.expire_all()
    rows = list(
        db.exec(
            select(OutboxMessage)
            .where(
                OutboxMessage.incident_id == incident_id, col(OutboxMessage.user_id).is_not(None)
            )
            .order_by(col(OutboxMessage.kind))
        ).all()
    )
    for row in rows:
        db.expunge(row)  # keep the loaded values past the rollback
    db.rollback()
    return rows


def _says(twiml: str) -> list[tuple[str, str]]:
    """(language, text) of every <Say> in the call, in document order."""
    return [(say.get("language") or "", say.text or "") for say in ET.fromstring(twiml).iter("Say")]


@pytest.mark.parametrize("language", sorted(EXPECTED))
def test_no_confirmation_reaches_the_duty_manager_by_sms_and_call_in_their_language(
    db: Session,
    writers: sessionmaker[Session],
    settings: Settings,
    site: Site,
    make_user: Callable[..., User],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
    language: str,
) -> None:
    manager_id = make_user(Role.manager, [site], phone="9456 1609", language=language).id
    incident = _open(db, make_resident, make_consent, make_contact)
    incident_id, ref = incident.id, incident.reference
    start = dt.datetime.fromisoformat(incident.escalation["started_at"])
    channel = FakeChannel()
    dispatcher = Dispatcher(writers, channel, settings)

    assert dispatcher.run_once(now=start) == 2  # the son's SMS and call
    _advance(writers, incident_id, start + dt.timedelta(seconds=119))
    assert _manager_rows(db, incident_id) == []  # not before the manager's time
    # One contact, two minutes apart: the manager's step falls at 120 s (with the son's second
    # round, the list again after the manager: his call again, his SMS held back as the same
    # text he has had since 0 s).
    _advance(writers, incident_id, start + dt.timedelta(seconds=120))
    channel.sent.clear()
    assert dispatcher.run_once(now=start + dt.timedelta(seconds=120)) == 4
    assert sorted((to, kind) for kind, to, _ in channel.sent) == [
        (SON, "call"),
        (MANAGER, "call"),
        (MANAGER, "sms"),
    ]

    sms_text, spoken, prompt, say_language = EXPECTED[language]
    sent = {kind: content for kind, to, content in channel.sent if to == MANAGER}
    assert sorted(sent) == ["call", "sms"]
    assert sent["sms"] == sms_text.format(ref=ref)
    twiml = sent["call"]
    says = _says(twiml)
    # The message and the prompt, once more if no key is pressed, then goodbye.
    assert says[:4] == [(say_language, spoken.format(ref=ref)), (say_language, prompt)] * 2
    gather = ET.fromstring(twiml).find("Gather")
    assert gather is not None and "/webhooks/twilio/gather?message_id=" in gather.get("action", "")

    rows = _manager_rows(db, incident_id)
    assert [(r.kind.value, r.template, r.status) for r in rows] == [
        ("sms", "manager_escalation", OutboxStatus.sent),
        ("voice", "manager_escalation", OutboxStatus.sent),
    ]
    assert {r.user_id for r in rows} == {manager_id}
    assert {r.language for r in rows} == {language}
