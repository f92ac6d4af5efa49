"""The answer link in each alert SMS (issue 15): its token, what each answer does to the
escalation, and two taps at once (PostgreSQL, real connections)."""

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

from notifications.channels import Text
from notifications.dispatcher import Dispatcher, render
from tests.conftest import SYSTEM, TEST_SECRET
from tests.notifications.fake_channel import FakeChannel
from welfare.channels import ChannelKind
from welfare.incidents import answer_links, timeline
from welfare.incidents import service as incidents
from welfare.incidents.answer_links import Answer, AnswerLink, State
from welfare.incidents.escalation import EngineState, Policy, contact_declined, due_time, plan
from welfare.incidents.models import Incident, IncidentCreate, IncidentStatus, Resolution
from welfare.outbox.models import OutboxMessage, OutboxStatus
from welfare.residents.models import Contact, Resident
from welfare.settings import Settings

SON = "+85291234567"
DAUGHTER = "+85261234567"
LINK = re.compile(r"https://welfare\.test/r/([A-Za-z0-9_-]+)")


@pytest.fixture
def family(
    db: Session,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """Mr. Wang found: (incident, son, daughter); the son (Chinese) first, the daughter
    (Korean) second."""
    resident = make_resident()
    make_consent(resident)
    son = make_contact(resident, name="Wang Lei", relationship="son", phone="9123 4567")
    daughter = make_contact(
        resident, name="Wang Mei", relationship="daughter", phone="6123 4567", language="ko-KR"
    )
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(
            resident_id=resident.id, location="Building 1, 3/F", client_request_id=uuid.uuid4().hex
        ),
    )
    db.commit()
    return opened.incident.id, son.id, daughter.id


def sms_to(channel: FakeChannel, phone: str) -> list[str]:
    return [content for kind, to, content in channel.sent if kind == "sms" and to == phone]


def token_sent_to(channel: FakeChannel, phone: str) -> str:
    (body,) = sms_to(channel, phone)[:1]
    found = LINK.search(body)
    assert found, body
    return found.group(1)


def _events(db: Session, incident_id: uuid.UUID) -> list[Any]:
    db.expire_all()
    events = timeline.events_of(db, incident_id)
    db.rollback()
    return events


def _advance(
    writers: sessionmaker[Session], incident_id: uuid.UUID, after: dt.timedelta
) -> dt.datetime:
    """Start the steps due `after` the escalation began; returns that moment (the rows they
    queue fall due then: `run_once(now=...)`)."""
    with writers() as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        start = dt.datetime.fromisoformat(incident.escalation["started_at"])
        incidents.advance(session=session, incident=incident, now=start + after)
        session.commit()
    return start + after


def _answer(writers: sessionmaker[Session], token: str, value: Answer) -> State | None:
    with writers() as session:
        page = answer_links.answer(session=session, token=token, value=value)
        session.commit()
        return page.state if page else None


# --- the token ---------------------------------------------------------------------------------


def test_the_token_has_96_bits_and_only_its_sha256_is_stored(
    db: Session,
    family: tuple[uuid.UUID, uuid.UUID, uuid.UUID],
    dispatcher: Dispatcher,
    channel: FakeChannel,
) -> None:
    incident_id, son_id, _ = family
    dispatcher.run_once()
    token = token_sent_to(channel, SON)
    assert len(token) == 16 and len(base64.urlsafe_b64decode(token)) == 12  # 96 bits
    (link,) = db.exec(select(AnswerLink)).all()
    assert (link.incident_id, link.contact_id) == (incident_id, son_id)
    assert link.token_hash == hashlib.sha256(token.encode()).hexdigest()
    # Nowhere in the database: not on the link, not on the outbox rows.
    stored = [str(v) for v in link.model_dump().values()]
    for row in db.exec(select(OutboxMessage)).all():
        stored += [str(v) for v in row.model_dump().values()]
    assert not [value for value in stored if token in value]


def test_tokens_differ_per_link_and_under_another_secret_key() -> None:
    ids = [uuid.uuid4() for _ in range(500)]
    tokens = {answer_links.derive_token("k" * 40, link_id) for link_id in ids}
    assert len(tokens) == 500
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{16}", t) for t in tokens)
    assert answer_links.derive_token("k" * 40, ids[0]) != answer_links.derive_token(
        "j" * 40, ids[0]
    )


def test_a_resend_and_the_contacts_later_sms_carry_the_same_link(
    db: Session,
    writers: sessionmaker[Session],
    family: tuple[uuid.UUID, uuid.UUID, uuid.UUID],
    dispatcher: Dispatcher,
    channel: FakeChannel,
    settings: Settings,
) -> None:
    incident_id, _, _ = family
    dispatcher.run_once()
    token = token_sent_to(channel, SON)
    # A dispatcher that crashed after the provider call renders the row again: the same text.
    row = db.exec(
        select(OutboxMessage).where(
            OutboxMessage.to_phone == SON, OutboxMessage.kind == ChannelKind.sms
        )
    ).one()
    with writers() as session:
        again = render(session, session.get(OutboxMessage, row.id), settings)  # type: ignore[arg-type]
        session.commit()
    assert isinstance(again, Text) and f"/r/{token}" in again.body
    # The second round (after the duty manager) would text the son again with his one link:
    # the very text he has, so it is held back (the limits per recipient) and he is called.
    at = _advance(writers, incident_id, dt.timedelta(minutes=4))
    dispatcher.run_once(now=at)
    assert len(sms_to(channel, SON)) == 1
    db.rollback()
    second = db.exec(
        select(OutboxMessage).where(
            OutboxMessage.to_phone == SON,
            OutboxMessage.kind == ChannelKind.sms,
            OutboxMessage.id != row.id,
        )
    ).one()
    assert second.status is OutboxStatus.held
    with writers() as session:
        again = render(session, session.get(OutboxMessage, second.id), settings)  # type: ignore[arg-type]
        session.commit()
    assert isinstance(again, Text) and f"/r/{token}" in again.body
    assert (
        len(db.exec(select(AnswerLink).where(AnswerLink.contact_id == row.contact_id)).all()) == 1
    )


def test_each_contact_gets_a_link_of_their_own(
    writers: sessionmaker[Session],
    family: tuple[uuid.UUID, uuid.UUID, uuid.UUID],
    dispatcher: Dispatcher,
    channel: FakeChannel,
) -> None:
    incident_id, _, _ = family
    dispatcher.run_once()
    at = _advance(writers, incident_id, dt.timedelta(minutes=2))
    dispatcher.run_once(now=at)
    assert token_sent_to(channel, SON) != token_sent_to(channel, DAUGHTER)


# --- the answers -------------------------------------------------------------------------------


def test_coming_confirms_like_key_1_and_stops_the_escalation(
    db: Session,
    writers: sessionmaker[Session],
    family: tuple[uuid.UUID, uuid.UUID, uuid.UUID],
    dispatcher: Dispatcher,
    channel: FakeChannel,
) -> None:
    incident_id, son_id, _ = family
    dispatcher.run_once()
    # The daughter is texted and called too.
    at = _advance(writers, incident_id, dt.timedelta(minutes=2))
    dispatcher.run_once(now=at)
    channel.sent.clear()
    assert _answer(writers, _token_of(db, son_id), Answer.coming) is State.you_are_coming
    incident = db.get(Incident, incident_id)
    db.refresh(incident)
    assert incident is not None and incident.status is IncidentStatus.confirmed
    assert (incident.confirmed_via, incident.confirmed_contact_id) == ("answer_link", son_id)
    # Only the "coming" notice to the daughter goes out; later steps never do.
    dispatcher.run_once()
    at = _advance(writers, incident_id, dt.timedelta(minutes=20))
    dispatcher.run_once(now=at)
    assert [(kind, to) for kind, to, _ in channel.sent] == [("sms", DAUGHTER)]
    assert "아드님" in channel.sent[0][2]  # "the resident's son is coming", in Korean
    types = [e.type for e in _events(db, incident_id)]
    assert types.count("confirmed") == 1 and types.count(answer_links.COMING_EVENT) == 1


def _token_of(db: Session, contact_id: uuid.UUID) -> str:
    """The token the dispatcher derived for the contact's link (as the SMS carried it)."""
    link_id = db.exec(select(AnswerLink.id).where(AnswerLink.contact_id == contact_id)).one()
    db.rollback()
    return answer_links.derive_token(TEST_SECRET, link_id)


def test_coming_twice_is_a_no_op_with_the_same_page(
    db: Session,
    writers: sessionmaker[Session],
    family: tuple[uuid.UUID, uuid.UUID, uuid.UUID],
    dispatcher: Dispatcher,
    channel: FakeChannel,
) -> None:
    incident_id, _, _ = family
    dispatcher.run_once()
    token = token_sent_to(channel, SON)
    assert _answer(writers, token, Answer.coming) is State.you_are_coming
    before = len(_events(db, incident_id))
    assert _answer(writers, token, Answer.coming) is State.you_are_coming
    assert len(_events(db, incident_id)) == before
    # Once someone is coming, "cannot" is moot: nothing recorded, nothing moves.
    assert _answer(writers, token, Answer.cannot) is State.you_are_coming
    assert len(_events(db, incident_id)) == before


def test_cannot_starts_the_next_contacts_step_at_once(
    db: Session,
    writers: sessionmaker[Session],
    family: tuple[uuid.UUID, uuid.UUID, uuid.UUID],
    dispatcher: Dispatcher,
    channel: FakeChannel,
) -> None:
    incident_id, son_id, daughter_id = family
    dispatcher.run_once()
    assert sms_to(channel, DAUGHTER) == []
    assert _answer(writers, token_sent_to(channel, SON), Answer.cannot) is State.declined
    events = _events(db, incident_id)
    cannot = next(e for e in events if e.type == answer_links.CANNOT_EVENT)
    assert cannot.detail["contact_id"] == str(son_id) and cannot.actor == "contact"
    step = [e for e in events if e.type == "escalation_step"][-1]
    assert step.detail["contact_id"] == str(daughter_id) and step.at >= cannot.at
    # Her SMS goes out now, not two minutes after the son's.
    dispatcher.run_once()
    assert len(sms_to(channel, DAUGHTER)) == 1
    incident = db.get(Incident, incident_id)
    db.refresh(incident)
    assert incident is not None and incident.status is IncidentStatus.notifying
    # Changed their mind: "coming" after "cannot" confirms.
    assert _answer(writers, token_sent_to(channel, SON), Answer.coming) is State.you_are_coming


def test_another_contacts_page_says_someone_is_on_the_way(
    db: Session,
    writers: sessionmaker[Session],
    family: tuple[uuid.UUID, uuid.UUID, uuid.UUID],
    dispatcher: Dispatcher,
    channel: FakeChannel,
) -> None:
    incident_id, _, _ = family
    dispatcher.run_once()
    at = _advance(writers, incident_id, dt.timedelta(minutes=2))
    dispatcher.run_once(now=at)
    _answer(writers, token_sent_to(channel, DAUGHTER), Answer.coming)
    with writers() as session:
        page = answer_links.open_page(session=session, token=token_sent_to(channel, SON))
        session.commit()
    assert page is not None and page.state is State.on_the_way


def test_the_link_dies_when_the_incident_closes(
    writers: sessionmaker[Session],
    family: tuple[uuid.UUID, uuid.UUID, uuid.UUID],
    dispatcher: Dispatcher,
    channel: FakeChannel,
) -> None:
    incident_id, _, _ = family
    dispatcher.run_once()
    token = token_sent_to(channel, SON)
    with writers() as session:
        assert answer_links.is_live(session, token)
        incidents.resolve(
            session=session,
            actor=SYSTEM,
            incident_id=incident_id,
            data=Resolution(outcome="handed_over"),  # type: ignore[arg-type]
        )
        session.commit()
    with writers() as session:
        assert not answer_links.is_live(session, token)
        assert answer_links.open_page(session=session, token=token) is None
    assert _answer(writers, token, Answer.coming) is None


def test_the_first_opening_is_on_the_timeline_once(
    db: Session,
    writers: sessionmaker[Session],
    family: tuple[uuid.UUID, uuid.UUID, uuid.UUID],
    dispatcher: Dispatcher,
    channel: FakeChannel,
) -> None:
    incident_id, son_id, _ = family
    dispatcher.run_once()
    for _ in range(3):
        with writers() as session:
            assert answer_links.open_page(session=session, token=token_sent_to(channel, SON))
            session.commit()
    opened = [e for e in _events(db, incident_id) if e.type == answer_links.OPENED_EVENT]
    assert len(opened) == 1 and opened[0].detail == {"contact_id": str(son_id)}


@pytest.mark.parametrize("token", ["", "short", "A" * 16, "A" * 17, "../../etc/passwd", "é" * 16])
def test_unknown_and_malformed_tokens_find_nothing(
    writers: sessionmaker[Session], family: Any, token: str
) -> None:
    with writers() as session:
        assert answer_links.open_page(session=session, token=token) is None
        assert answer_links.answer(session=session, token=token, value=Answer.coming) is None


# --- the pure rule -----------------------------------------------------------------------------


def test_cannot_fails_the_contacts_latest_started_step_only() -> None:
    steps = plan(Policy(), ["son", "daughter"])  # son 0 s, daughter 120 s, manager 240 s, ...
    t0 = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
    state = EngineState(started={0: t0})
    contact_declined(steps, state, "son", t0 + dt.timedelta(seconds=30))
    assert state.failed == {0: t0 + dt.timedelta(seconds=30)}
    # The daughter's step is pulled forward to that moment.
    assert due_time(steps, 1, t0, state) == t0 + dt.timedelta(seconds=30)
    # A contact none of whose steps has started: nothing.
    fresh = EngineState(started={0: t0})
    contact_declined(steps, fresh, "daughter", t0 + dt.timedelta(seconds=30))
    assert fresh.failed == {}


# --- two taps at once --------------------------------------------------------------------------


def test_coming_tapped_twice_at_once_confirms_once(
    monkeypatch: pytest.MonkeyPatch,
    db: Session,
    writers: sessionmaker[Session],
    family: tuple[uuid.UUID, uuid.UUID, uuid.UUID],
    dispatcher: Dispatcher,
    channel: FakeChannel,
    database_url: str,
) -> None:
    """Both taps have read the link unanswered before either takes the incident's lock: the
    window in which a look-then-write answer would confirm twice. On SQLite the writers are
    serialised before they look, so only PostgreSQL reaches the barrier together."""
    incident_id, _, _ = family
    dispatcher.run_once()
    token = token_sent_to(channel, SON)
    racers = 2 if database_url.startswith("postgresql") else 1
    barrier = threading.Barrier(racers, timeout=30)
    live = answer_links._live

    def live_then_wait(session: Session, token: str) -> Any:
        found = live(session, token)
        barrier.wait()
        return found

    monkeypatch.setattr(answer_links, "_live", live_then_wait)
    with ThreadPoolExecutor(max_workers=2) as pool:
        states = list(pool.map(lambda _: _answer(writers, token, Answer.coming), range(racers)))
    if racers == 1:  # SQLite: the second tap after the first
        monkeypatch.setattr(answer_links, "_live", live)
        states.append(_answer(writers, token, Answer.coming))
    assert states == [State.you_are_coming, State.you_are_coming]
    types = [e.type for e in _events(db, incident_id)]
    assert types.count("confirmed") == 1 and types.count(answer_links.COMING_EVENT) == 1
    rows = db.exec(
        select(OutboxMessage).where(
            OutboxMessage.incident_id == incident_id,
            col(OutboxMessage.status) == OutboxStatus.pending,
        )
    ).all()
    assert rows == []
