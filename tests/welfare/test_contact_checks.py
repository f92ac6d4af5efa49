# Fixtures imported from other tests are parameters here, which ruff reads as redefinitions.
"""Testing a family contact before it matters (issue 15 item 5): the test SMS and its link, the
test call, what verifies, what a new number undoes, who is listed as unverified, and the races
(a double click, two taps at once) on PostgreSQL with real connections."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from notifications.console_channel import ConsoleChannel
from notifications.dispatcher import Dispatcher
from notifications.messages import sms_segments
from tests.conftest import SYSTEM, TEST_SECRET
from tests.notifications.fake_channel import FakeChannel
from welfare import contact_checks
from welfare.audit.models import AuditEntry
from welfare.authz import Actor, Role
from welfare.channels import ChannelKind
from welfare.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from welfare.outbox import reach
from welfare.outbox.models import OutboxMessage
from welfare.residents import service as residents
from welfare.residents import unverified
from welfare.residents.models import (
    Contact,
    ContactTestLink,
    ContactUpdate,
    Resident,
    VerifiedVia,
)
from welfare.settings import Settings
from welfare.sites.models import Site

SON = "+85291234567"
LINK = re.compile(r"https://welfare\.test/v/([A-Za-z0-9_-]+)")
PERSONAL = ["Wang", "Jianguo", "Lei", "Alzheimer", "grandson", "son"]


@pytest.fixture
def resident(make_resident: Callable[..., Resident], make_consent: Callable[..., Any]) -> Resident:
    resident = make_resident()
    make_consent(resident)
    return resident


@pytest.fixture
def son(resident: Resident, make_contact: Callable[..., Contact]) -> Contact:
    return make_contact(resident)


@pytest.fixture
def son_token(
    db: Session, site: Site, son: Contact, dispatcher: Dispatcher, channel: FakeChannel
) -> str:
    """A test SMS sent to the son: the token of the link it carries."""
    send(db, site, son, ChannelKind.sms)
    dispatcher.run_once()
    return sent_token(channel)


def change_phone(db: Session, contact: Contact, phone: str) -> None:
    residents.update_contact(
        session=db,
        actor=SYSTEM,
        resident_id=contact.resident_id,
        contact_id=contact.id,
        data=ContactUpdate(phone=phone),
    )
    db.commit()


def staff_of(site: Site) -> Actor:
    return Actor(user_id=uuid.uuid4(), role=Role.staff, site_ids=frozenset({site.id}))


def send(
    db: Session, site: Site, contact: Contact, channel: ChannelKind, request_id: str = "req-0001"
) -> OutboxMessage:
    message = contact_checks.send_contact_test(db, staff_of(site), contact.id, channel, request_id)
    db.commit()
    return message


def fresh(db: Session, contact_id: uuid.UUID) -> Contact:
    """The contact as committed now (a new read transaction: SQLite keeps the old snapshot)."""
    db.rollback()
    db.expire_all()
    contact = db.get(Contact, contact_id)
    assert contact is not None
    return contact


def audit_actions(db: Session, action: str) -> list[AuditEntry]:
    db.rollback()
    query = select(AuditEntry).where(AuditEntry.action == action).order_by(col(AuditEntry.id))
    rows = list(db.exec(query).all())
    db.rollback()
    return rows


def verify(writers: sessionmaker[Session], token: str, now: dt.datetime | None = None) -> Any:
    with writers() as session:
        page = contact_checks.verify_by_link(session, token, now)
        session.commit()
        return page


def sent_token(channel: FakeChannel) -> str:
    (body,) = [content for kind, to, content in channel.sent if kind == "sms" and to == SON]
    found = LINK.search(body)
    assert found, body
    return found.group(1)


# --- sending -----------------------------------------------------------------------------------


def test_a_test_sms_is_one_outbox_row_with_a_link_and_an_audit_entry_and_no_incident(
    db: Session, site: Site, son: Contact
) -> None:
    message = send(db, site, son, ChannelKind.sms)
    assert message.template == "contact_test" and message.incident_id is None
    assert message.kind is ChannelKind.sms and message.to_phone == SON
    assert message.contact_id == son.id and message.language == "zh-CN"
    (link,) = db.exec(select(ContactTestLink)).all()
    assert message.params["link_id"] == str(link.id)
    assert link.expires_at - link.created_at == dt.timedelta(days=7)
    (entry,) = audit_actions(db, "contact.test")
    assert entry.entity_id == str(son.id) and entry.detail["channel"] == "sms"


def test_the_same_request_id_queues_nothing_twice(db: Session, site: Site, son: Contact) -> None:
    first = send(db, site, son, ChannelKind.sms, "double-click")
    again = send(db, site, son, ChannelKind.sms, "double-click")
    assert again.id == first.id
    assert len(db.exec(select(OutboxMessage)).all()) == 1
    assert len(db.exec(select(ContactTestLink)).all()) == 1
    assert len(audit_actions(db, "contact.test")) == 1
    other = send(db, site, son, ChannelKind.sms, "another-click")
    assert other.id != first.id


@pytest.mark.parametrize(
    ("overrides", "channel", "error", "words"),
    [
        ({"consent_to_contact": False}, ChannelKind.voice, Conflict, "not agreed"),
        ({"channels": ["voice"]}, ChannelKind.sms, InvalidInput, "takes no SMS"),
        ({"channels": ["sms"]}, ChannelKind.voice, InvalidInput, "takes no calls"),
        ({"phone": "2345 6780"}, ChannelKind.sms, InvalidInput, "landline"),
    ],
)
def test_a_test_the_contact_rule_refuses_is_refused_in_its_words(
    db: Session,
    site: Site,
    resident: Resident,
    make_contact: Callable[..., Contact],
    overrides: dict[str, Any],
    channel: ChannelKind,
    error: type[Exception],
    words: str,
) -> None:
    contact = make_contact(resident, **overrides)
    with pytest.raises(error, match=words):
        contact_checks.send_contact_test(db, staff_of(site), contact.id, channel, "refused-1")
    db.rollback()
    assert db.exec(select(OutboxMessage)).all() == []


def test_an_opted_out_contact_gets_no_test_sms(db: Session, site: Site, son: Contact) -> None:
    stored = fresh(db, son.id)
    stored.sms_opted_out = True
    db.add(stored)
    db.commit()
    with pytest.raises(Conflict, match="opted out"):
        contact_checks.send_contact_test(db, staff_of(site), son.id, ChannelKind.sms, "opted-1")


def test_guards_may_not_send_tests_and_other_sites_do_not_see_the_contact(
    db: Session, site: Site, son: Contact, make_site: Callable[..., Site]
) -> None:
    guard = Actor(user_id=uuid.uuid4(), role=Role.guard, site_ids=frozenset({site.id}))
    with pytest.raises(PermissionDenied):
        contact_checks.send_contact_test(db, guard, son.id, ChannelKind.sms, "guard-001")
    elsewhere = staff_of(make_site())
    with pytest.raises(NotFound):
        contact_checks.send_contact_test(db, elsewhere, son.id, ChannelKind.sms, "other-001")
    with pytest.raises(NotFound):
        contact_checks.send_contact_test(
            db, staff_of(site), son.id, ChannelKind.sms, "wrong-res", resident_id=uuid.uuid4()
        )


# --- the SMS and its link ----------------------------------------------------------------------


def test_the_dispatcher_sends_the_test_sms_with_its_link_in_two_segments_and_no_names(
    db: Session, site: Site, son: Contact, dispatcher: Dispatcher, channel: FakeChannel
) -> None:
    send(db, site, son, ChannelKind.sms)
    dispatcher.run_once()
    (body,) = [content for kind, _, content in channel.sent]
    token = sent_token(channel)
    assert body.endswith(f" https://welfare.test/v/{token}") and "Harbour View Gardens" in body
    assert "测试" in body and sms_segments(body) <= 2
    for word in PERSONAL:
        assert word not in body
    assert len(token) == 16 and len(base64.urlsafe_b64decode(token)) == 12  # 96 bits
    db.expire_all()
    (link,) = db.exec(select(ContactTestLink)).all()
    assert link.token_hash == hashlib.sha256(token.encode()).hexdigest()
    stored = [str(value) for value in link.model_dump().values()]
    for row in db.exec(select(OutboxMessage)).all():
        stored += [str(value) for value in row.model_dump().values()]
    assert not [value for value in stored if token in value]


def test_the_console_channel_prints_the_test_link(
    db: Session, site: Site, son: Contact, writers: sessionmaker[Session], settings: Settings
) -> None:
    printed: list[str] = []
    console = ConsoleChannel(echo=printed.append)
    send(db, site, son, ChannelKind.sms)
    Dispatcher(writers, console, settings).run_once()
    assert any(LINK.search(block) for block in printed), printed


def test_a_resend_carries_the_same_link_and_another_test_another_link(
    db: Session, site: Site, son: Contact, settings: Settings
) -> None:
    message = send(db, site, son, ChannelKind.sms)
    link_id = uuid.UUID(message.params["link_id"])
    first = contact_checks.token_for(db, link_id, TEST_SECRET)
    assert first == contact_checks.token_for(db, link_id, TEST_SECRET)
    other = send(db, site, son, ChannelKind.sms, "second-test")
    assert contact_checks.token_for(db, uuid.UUID(other.params["link_id"]), TEST_SECRET) != first
    assert settings.secret_key == TEST_SECRET


def test_opening_the_link_verifies_once_and_a_second_tap_changes_nothing(
    db: Session,
    son: Contact,
    son_token: str,
    writers: sessionmaker[Session],
) -> None:
    token = son_token
    assert fresh(db, son.id).verified_at is None
    page = verify(writers, token)
    assert page.site_name == "Harbour View Gardens" and page.language == "zh-CN"
    verified = fresh(db, son.id)
    assert verified.verified_via is VerifiedVia.sms_link and verified.verified_at is not None
    first_at = verified.verified_at
    db.rollback()
    assert verify(writers, token) == page
    assert fresh(db, son.id).verified_at == first_at
    (entry,) = audit_actions(db, "contact.verified")
    assert entry.detail == {"via": "sms_link"} and entry.entity_id == str(son.id)


def test_unknown_malformed_and_expired_links_verify_nothing(
    db: Session,
    son: Contact,
    son_token: str,
    writers: sessionmaker[Session],
) -> None:
    token = son_token
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=7, minutes=1)
    assert verify(writers, token, later) is None
    assert verify(writers, "A" * 16) is None
    assert verify(writers, "not a token") is None
    assert fresh(db, son.id).verified_at is None


def test_a_new_number_is_unverified_and_the_old_numbers_link_dies(
    db: Session,
    site: Site,
    resident: Resident,
    son: Contact,
    dispatcher: Dispatcher,
    channel: FakeChannel,
    writers: sessionmaker[Session],
) -> None:
    send(db, site, son, ChannelKind.sms)
    dispatcher.run_once()
    stale = sent_token(channel)
    send(db, site, son, ChannelKind.sms, "second-test")
    dispatcher.run_once()
    assert verify(writers, LINK.findall(channel.sent[-1][2])[0]) is not None
    assert fresh(db, son.id).verified_at is not None
    db.rollback()
    # The same number typed again changes nothing.
    change_phone(db, son, "9123 4567")
    assert fresh(db, son.id).verified_at is not None
    change_phone(db, son, "9876 5432")
    changed = fresh(db, son.id)
    assert changed.verified_at is None and changed.verified_via is None
    assert db.exec(select(ContactTestLink)).all() == []
    updates = audit_actions(db, "contact.update")
    assert updates[-1].detail.get("verification_cleared") is True
    assert "verification_cleared" not in updates[-2].detail
    assert verify(writers, stale) is None
    assert fresh(db, son.id).verified_at is None


# --- the call ----------------------------------------------------------------------------------


def test_the_test_call_says_its_a_test_and_asks_for_1(
    db: Session, site: Site, son: Contact, dispatcher: Dispatcher, channel: FakeChannel
) -> None:
    stored = fresh(db, son.id)
    stored.language = "en"
    db.add(stored)
    db.commit()
    send(db, site, son, ChannelKind.voice)
    dispatcher.run_once()
    ((kind, to, twiml),) = channel.sent
    assert kind == "call" and to == SON
    assert "This is a test from Harbour View Gardens." in twiml
    assert "Press 1 to confirm this number." in twiml
    for word in PERSONAL:
        assert word not in twiml


def test_key_1_on_the_test_call_verifies_unless_the_number_changed_since(
    db: Session, site: Site, resident: Resident, son: Contact
) -> None:
    message = send(db, site, son, ChannelKind.voice)
    assert contact_checks.verify_by_key(db, message)
    db.commit()
    assert fresh(db, son.id).verified_via is VerifiedVia.keypress
    change_phone(db, son, "9876 5432")
    row = db.get(OutboxMessage, message.id)
    assert row is not None and row.to_phone == SON
    assert not contact_checks.verify_by_key(db, row)
    db.commit()
    assert fresh(db, son.id).verified_at is None


# --- who is unverified -------------------------------------------------------------------------


def test_unverified_lists_consented_contacts_never_or_not_verified_for_12_months(
    db: Session,
    site: Site,
    resident: Resident,
    make_contact: Callable[..., Contact],
    make_resident: Callable[..., Resident],
    make_site: Callable[..., Site],
    make_household: Callable[..., Any],
) -> None:
    now = dt.datetime.now(dt.UTC)
    never = make_contact(resident, name="Never")
    stale = make_contact(resident, name="Stale", phone="6123 4567")
    recent = make_contact(resident, name="Recent", phone="6123 4568")
    make_contact(resident, name="NoConsent", phone="6123 4569", consent_to_contact=False)
    for contact, when in ((stale, now - dt.timedelta(days=366)), (recent, now)):
        stored = fresh(db, contact.id)
        stored.verified_at, stored.verified_via = when, VerifiedVia.keypress
        db.add(stored)
    other_site = make_site()
    elsewhere = make_resident(household=make_household(site_=other_site))
    make_contact(elsewhere, name="Elsewhere")
    db.commit()
    listed = unverified.unverified_contacts(db, site.id, now)
    assert [c.name for c, _ in listed] == ["Never", "Stale"]
    assert unverified.count_unverified(db, site.id, now) == 2
    assert never.id in {c.id for c, _ in listed}
    rows = unverified.list_unverified(db, staff_of(site), site.id, now)
    db.commit()
    assert len(rows) == 2
    (entry,) = audit_actions(db, "contact.unverified_list")
    assert entry.detail == {"contacts": 2}
    with pytest.raises(NotFound):
        unverified.list_unverified(db, staff_of(other_site), site.id, now)


# --- races (PostgreSQL: real connections at once) ----------------------------------------------


def test_a_double_click_at_once_queues_one_test(
    database_url: str,
    db: Session,
    site: Site,
    son: Contact,
    writers: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both requests get past the first look before either inserts (PostgreSQL; SQLite runs
    writers one after the other, so the second simply finds the first's row)."""
    racers = 2 if database_url.startswith("postgresql") else 1
    barrier = threading.Barrier(racers, timeout=30)
    refuse = reach.refuse_if_barred

    def refuse_then_wait(contact: Contact, channel: ChannelKind) -> None:
        refuse(contact, channel)
        barrier.wait()

    monkeypatch.setattr(reach, "refuse_if_barred", refuse_then_wait)

    def click(_: int) -> uuid.UUID:
        with writers() as session:
            message = contact_checks.send_contact_test(
                session, staff_of(site), son.id, ChannelKind.sms, "same-click"
            )
            session.commit()
            return message.id

    with ThreadPoolExecutor(max_workers=2) as pool:
        ids = list(pool.map(click, range(racers)))
    if racers == 1:
        monkeypatch.setattr(reach, "refuse_if_barred", refuse)
        ids.append(click(1))
    assert ids[0] == ids[1]
    db.expire_all()
    assert len(db.exec(select(OutboxMessage)).all()) == 1
    assert len(db.exec(select(ContactTestLink)).all()) == 1


def test_two_taps_at_once_verify_once(
    database_url: str,
    db: Session,
    son: Contact,
    son_token: str,
    writers: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = son_token
    racers = 2 if database_url.startswith("postgresql") else 1
    barrier = threading.Barrier(racers, timeout=30)
    live = contact_checks._live

    def live_then_wait(session: Session, token: str, now: dt.datetime) -> Any:
        found = live(session, token, now)
        barrier.wait()
        return found

    monkeypatch.setattr(contact_checks, "_live", live_then_wait)
    with ThreadPoolExecutor(max_workers=2) as pool:
        pages = list(pool.map(lambda _: verify(writers, token), range(racers)))
    if racers == 1:
        monkeypatch.setattr(contact_checks, "_live", live)
        pages.append(verify(writers, token))
    assert pages[0] == pages[1] and pages[0] is not None
    assert len(audit_actions(db, "contact.verified")) == 1
