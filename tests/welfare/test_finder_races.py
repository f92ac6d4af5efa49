"""Finders who report the same resident at once (PostgreSQL, real connections): one incident,
the guards on duty alerted once, the family's escalation planned once, every report on it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, select

from tests.conftest import ALL_SCOPES, SYSTEM
from tests.welfare.test_incident_races import _skip_unless_postgres
from welfare.db import utcnow
from welfare.incidents import public_reports
from welfare.incidents import service as incidents
from welfare.incidents.models import Incident, IncidentEvent
from welfare.outbox.models import OutboxMessage
from welfare.residents.models import Contact, Resident
from welfare.sites.models import Site
from welfare.tags import service as tags
from welfare.users.models import User

FINDERS = 3


def test_finders_racing_open_one_incident_and_alert_everyone_once(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    session_factory: sessionmaker[Session],
    db: Session,
    site: Site,
    make_household: Callable[..., Any],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
    make_user: Callable[..., User],
) -> None:
    _skip_unless_postgres(database_url)
    resident = make_resident(make_household("1", "1609"))
    make_consent(resident, scopes=[*ALL_SCOPES, "finder_alerts"])
    make_contact(resident)
    code = tags.issue_tag(session=db, actor=SYSTEM, resident_id=resident.id).code
    guard = make_user("guard", [site], phone="9345 1609")
    guard.on_duty_since = utcnow()
    db.add(guard)
    db.commit()

    # Every finder is held after looking for a running incident and finding none.
    barrier = threading.Barrier(FINDERS, timeout=30)
    new_incident = incidents._new_incident

    def after_everyone_looked(*args: Any, **kwargs: Any) -> Incident:
        barrier.wait()
        return new_incident(*args, **kwargs)

    monkeypatch.setattr(incidents, "_new_incident", after_everyone_looked)

    def finder(number: int) -> bool:
        with session_factory() as session:
            sent = public_reports.alert_office(
                session=session,
                secret="s",
                code=code,
                client_addr=f"10.0.0.{number}",
                message=f"finder {number}",
            )
            session.commit()
            return sent.incident is not None

    with ThreadPoolExecutor(max_workers=FINDERS) as pool:
        assert all(pool.map(finder, range(FINDERS)))

    db.expire_all()
    [incident] = db.exec(select(Incident)).all()
    types = list(
        db.exec(select(IncidentEvent.type).where(IncidentEvent.incident_id == incident.id)).all()
    )
    assert types.count("reported") == 1 and types.count("report_repeated") == FINDERS - 1
    assert types.count("public_report") == FINDERS and types.count("note") == FINDERS
    assert types.count("guards_alerted") == 1 and types.count("escalation_planned") == 1
    rows = db.exec(select(OutboxMessage).where(OutboxMessage.incident_id == incident.id)).all()
    assert sorted(m.template for m in rows if m.user_id) == ["finder_alert"]
    assert sorted(m.kind.value for m in rows if m.contact_id) == ["sms", "voice"]
