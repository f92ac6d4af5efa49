"""`overdue` and `reached_manager` on the JSON incident (welfare/incidents/staff_view.py): the same
rule the console's board shows, so an app and a desk never disagree on which incident is late."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlmodel import Session

from tests.conftest import SYSTEM
from welfare.authz import Actor, Role
from welfare.db import utcnow
from welfare.incidents import service as incidents
from welfare.incidents import staff_view
from welfare.incidents.models import Incident, IncidentCreate
from welfare.residents.models import Contact, Resident
from welfare.sites.models import Site
from welfare.users.models import User


@pytest.fixture
def open_for(
    db: Session,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> Callable[..., uuid.UUID]:
    """Opens a found incident for a consented resident with one contact; returns its id."""

    def make(opened_at: dt.datetime | None = None) -> uuid.UUID:
        resident = make_resident()
        make_consent(resident)
        make_contact(resident)
        opened = incidents.open_incident(
            session=db,
            actor=SYSTEM,
            data=IncidentCreate(resident_id=resident.id, client_request_id=uuid.uuid4().hex),
            now=opened_at,
        )
        db.commit()
        incident_id = opened.incident.id
        db.expunge_all()
        db.rollback()
        return incident_id

    return make


def _detail(client: TestClient, headers: dict[str, str], incident_id: uuid.UUID) -> Any:
    response = client.get(f"/api/v1/incidents/{incident_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_an_incident_past_its_target_is_overdue_and_a_fresh_one_is_not(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    login: Callable[..., dict[str, str]],
    open_for: Callable[..., uuid.UUID],
) -> None:
    fresh = open_for()
    late = open_for(opened_at=utcnow() - dt.timedelta(minutes=11))
    staff = login(make_user("staff", [site]))
    assert _detail(client, staff, fresh)["overdue"] is False
    assert _detail(client, staff, late)["overdue"] is True
    assert _detail(client, staff, late)["reached_manager"] is False
    # The board says the same of both.
    desk = Actor(user_id=uuid.uuid4(), role=Role.staff, site_ids=frozenset({site.id}))
    board = {row.id: row.overdue for row in staff_view.board(session=db, actor=desk)}
    db.rollback()
    assert board == {fresh: False, late: True}
    # Once someone answers, it is no longer late.
    confirmed = client.post(f"/api/v1/incidents/{late}/acknowledge", headers=staff, json={})
    assert confirmed.status_code == 200
    assert confirmed.json()["overdue"] is False


def test_an_incident_whose_escalation_reached_the_duty_manager_says_so(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    login: Callable[..., dict[str, str]],
    open_for: Callable[..., uuid.UUID],
) -> None:
    incident_id = open_for()
    staff = login(make_user("staff", [site]))
    before = _detail(client, staff, incident_id)
    assert (before["reached_manager"], before["overdue"]) == (False, False)
    stored = db.get(Incident, incident_id)
    assert stored is not None
    # Two minutes per contact: with one contact the list is done and the manager is next.
    incidents.advance(session=db, incident=stored, now=utcnow() + dt.timedelta(minutes=5))
    db.commit()
    db.rollback()
    after = _detail(client, staff, incident_id)
    assert after["reached_manager"] is True
    assert after["overdue"] is True  # before its ten minutes: the list ran out
    # A guard's view of the same incident carries the same flags.
    guard = login(make_user("guard", [site]))
    assert _detail(client, guard, incident_id)["reached_manager"] is True
    # Answered: no longer overdue, though the manager was reached.
    done = client.post(f"/api/v1/incidents/{incident_id}/acknowledge", headers=staff, json={})
    assert (done.json()["reached_manager"], done.json()["overdue"]) == (True, False)


def test_the_board_runs_as_many_queries_for_one_incident_as_for_five(
    db: Session, site: Site, open_for: Callable[..., uuid.UUID]
) -> None:
    actor = Actor(user_id=uuid.uuid4(), role=Role.staff, site_ids=frozenset({site.id}))
    engine = db.get_bind()

    def queries_of_a_poll() -> int:
        count = 0

        def counted(*_args: object) -> None:
            nonlocal count
            count += 1

        event.listen(engine, "before_cursor_execute", counted)
        try:
            rows = staff_view.board(session=db, actor=actor)
        finally:
            event.remove(engine, "before_cursor_execute", counted)
        db.rollback()
        assert rows
        return count

    open_for(opened_at=utcnow() - dt.timedelta(minutes=11))
    one = queries_of_a_poll()
    for _ in range(4):
        open_for()
    assert queries_of_a_poll() == one
