"""Reports that race: the database keeps one running incident per resident, and the request
that loses the race answers with the winner's incident (PostgreSQL, real connections).

Each racer is held at a barrier after it has looked for a running incident (or an earlier
request) and found none, right before it inserts: the exact window in which two plain
look-then-insert requests both insert. SQLite never gets there: its writers take the database
lock before they look (BEGIN IMMEDIATE).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from welfare.authz import Actor, Role
from welfare.incidents import service as incidents
from welfare.incidents.models import Incident, IncidentCreate, IncidentEvent, IncidentStatus
from welfare.outbox.models import OutboxMessage
from welfare.residents.models import Contact, Resident
from welfare.sites.models import Site
from welfare.users.models import User

RACERS = 4


@pytest.fixture
def wang(
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
    make_household: Callable[..., Any],
) -> Resident:
    resident = make_resident(household=make_household("1", "1609"))
    make_consent(resident)
    make_contact(resident, name="Wang Lei", relationship="son", phone="9123 4567")
    make_contact(resident, name="Wang Mei", relationship="daughter", phone="6123 4567")
    return resident


def _actor(user: User, site: Site) -> Actor:
    return Actor(user_id=user.id, role=Role.guard, site_ids=frozenset({site.id}))


def _race(
    monkeypatch: pytest.MonkeyPatch,
    session_factory: sessionmaker[Session],
    reports: list[tuple[Actor, IncidentCreate]],
) -> list[tuple[uuid.UUID, bool]]:
    """Run the reports at once, each in its own session; all of them insert together."""
    barrier = threading.Barrier(len(reports), timeout=30)
    held = threading.local()
    new_incident = incidents._new_incident

    def new_incident_after_everyone_looked(*args: Any, **kwargs: Any) -> Incident:
        if not getattr(held, "done", False):
            held.done = True
            barrier.wait()
        return new_incident(*args, **kwargs)

    monkeypatch.setattr(incidents, "_new_incident", new_incident_after_everyone_looked)

    def report(actor: Actor, data: IncidentCreate) -> tuple[uuid.UUID, bool]:
        with session_factory() as session:
            opened = incidents.open_incident(session=session, actor=actor, data=data)
            session.commit()
            return opened.incident.id, opened.created

    with ThreadPoolExecutor(max_workers=len(reports)) as pool:
        return list(pool.map(lambda r: report(*r), reports))


def _skip_unless_postgres(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite takes its write lock before the look: no such race there")


def test_racing_reports_of_one_resident_open_one_incident(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    session_factory: sessionmaker[Session],
    db: Session,
    site: Site,
    wang: Resident,
    make_user: Callable[..., User],
) -> None:
    _skip_unless_postgres(database_url)
    guards = [_actor(make_user("guard", [site]), site) for _ in range(RACERS)]
    reports = [
        (g, IncidentCreate(resident_id=wang.id, client_request_id=uuid.uuid4().hex)) for g in guards
    ]
    answers = _race(monkeypatch, session_factory, reports)

    assert len({incident_id for incident_id, _ in answers}) == 1
    assert sorted(created for _, created in answers) == [False] * (RACERS - 1) + [True]
    db.expire_all()
    rows = db.exec(select(Incident).where(Incident.resident_id == wang.id)).all()
    assert len(rows) == 1
    assert rows[0].status is IncidentStatus.notifying
    types = list(
        db.exec(select(IncidentEvent.type).where(IncidentEvent.incident_id == rows[0].id)).all()
    )
    assert types.count("reported") == 1
    assert types.count("report_repeated") == RACERS - 1
    assert types.count("escalation_planned") == 1
    # One escalation: the son's SMS and call, once each.
    messages = db.exec(select(OutboxMessage).where(OutboxMessage.incident_id == rows[0].id)).all()
    assert sorted(m.kind.value for m in messages) == ["sms", "voice"]
    assert len({m.contact_id for m in messages}) == 1


def test_the_same_request_twice_at_once_answers_both_with_one_incident(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    session_factory: sessionmaker[Session],
    db: Session,
    site: Site,
    wang: Resident,
    make_user: Callable[..., User],
) -> None:
    _skip_unless_postgres(database_url)
    guard = _actor(make_user("guard", [site]), site)
    data = IncidentCreate(resident_id=wang.id, client_request_id=uuid.uuid4().hex)
    answers = _race(monkeypatch, session_factory, [(guard, data), (guard, data)])

    assert answers[0][0] == answers[1][0]
    assert sorted(created for _, created in answers) == [False, True]
    db.expire_all()
    rows = db.exec(select(Incident).where(Incident.resident_id == wang.id)).all()
    assert len(rows) == 1
    # A retry is not a second report: nothing about it on the timeline.
    repeats = db.exec(
        select(IncidentEvent).where(
            IncidentEvent.incident_id == rows[0].id, IncidentEvent.type == "report_repeated"
        )
    ).all()
    assert repeats == []


def test_an_unknown_person_report_sent_twice_at_once_opens_one_incident(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    session_factory: sessionmaker[Session],
    db: Session,
    site: Site,
    make_user: Callable[..., User],
) -> None:
    _skip_unless_postgres(database_url)
    guard = _actor(make_user("guard", [site]), site)
    data = IncidentCreate(description="grey coat, confused", client_request_id=uuid.uuid4().hex)
    answers = _race(monkeypatch, session_factory, [(guard, data), (guard, data)])

    assert answers[0][0] == answers[1][0]
    db.expire_all()
    rows = db.exec(
        select(Incident).where(Incident.client_request_id == data.client_request_id)
    ).all()
    assert len(rows) == 1


def test_the_database_refuses_a_second_running_incident(
    db: Session, site: Site, wang: Resident
) -> None:
    def running(status: IncidentStatus) -> Incident:
        return Incident(
            reference=incidents.new_reference(),
            site_id=site.id,
            resident_id=wang.id,
            kind="found",
            status=status,
        )

    db.add(running(IncidentStatus.confirmed))
    db.add(running(IncidentStatus.resolved))  # closed ones never count
    db.add(running(IncidentStatus.cancelled))
    db.commit()
    db.add(running(IncidentStatus.open))
    with pytest.raises(IntegrityError):
        db.commit()
    db.rollback()
    assert len(db.exec(select(Incident).where(col(Incident.resident_id) == wang.id)).all()) == 3


def test_a_keypress_on_a_closed_duplicate_confirms_the_residents_running_incident(
    db: Session, site: Site, wang: Resident
) -> None:
    # What 0016 leaves behind on a database that had duplicates: the kept one runs.
    kept = Incident(
        reference="KEPT01", site_id=site.id, resident_id=wang.id, kind="found", status="notifying"
    )
    duplicate = Incident(
        reference="DUPL01", site_id=site.id, resident_id=wang.id, kind="found", status="cancelled"
    )
    db.add_all([kept, duplicate])
    db.commit()
    assert incidents.answered_incident(db, duplicate).id == kept.id
    assert incidents.answered_incident(db, kept).id == kept.id


def _lose_the_first_look(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The first call of `incidents.<name>` answers None, as a look made just before another
    request committed would: the insert that follows meets the winner's row."""
    real = getattr(incidents, name)
    calls: list[object] = []

    def first_look_misses(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return None if len(calls) == 1 else real(*args, **kwargs)

    monkeypatch.setattr(incidents, name, first_look_misses)


def test_a_report_that_lost_the_race_takes_the_running_incident(
    monkeypatch: pytest.MonkeyPatch, db: Session, site: Site, wang: Resident, make_user: Any
) -> None:
    first, second = (_actor(make_user("guard", [site]), site) for _ in range(2))
    winner = incidents.open_incident(
        session=db,
        actor=first,
        data=IncidentCreate(resident_id=wang.id, client_request_id=uuid.uuid4().hex),
    ).incident
    db.commit()
    _lose_the_first_look(monkeypatch, "running_incident")
    loser = incidents.open_incident(
        session=db,
        actor=second,
        data=IncidentCreate(resident_id=wang.id, client_request_id=uuid.uuid4().hex),
    )
    db.commit()
    assert (loser.incident.id, loser.created) == (winner.id, False)
    types = list(
        db.exec(select(IncidentEvent.type).where(IncidentEvent.incident_id == winner.id)).all()
    )
    assert types.count("report_repeated") == 1
    assert len(db.exec(select(Incident).where(Incident.resident_id == wang.id)).all()) == 1


def test_a_retry_that_lost_the_race_takes_its_own_incident(
    monkeypatch: pytest.MonkeyPatch, db: Session, site: Site, make_user: Any
) -> None:
    guard = _actor(make_user("guard", [site]), site)
    data = IncidentCreate(description="grey coat", client_request_id=uuid.uuid4().hex)
    first = incidents.open_incident(session=db, actor=guard, data=data).incident
    db.commit()
    _lose_the_first_look(monkeypatch, "_same_request")
    again = incidents.open_incident(session=db, actor=guard, data=data)
    db.commit()
    assert (again.incident.id, again.created) == (first.id, False)
