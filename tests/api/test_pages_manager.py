"""Manager pages (/manage): calendar and list, recording an outcome, schedules, reports, feed.

Role checks, cross-site isolation, CSRF, bad input re-rendered with a 4xx keeping the input, and
a daylight-saving week shown at the right local times.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from tests.conftest import SYSTEM
from welfare.db import utcnow
from welfare.incidents.models import Incident
from welfare.residents.models import Resident
from welfare.sites.models import Site
from welfare.users.models import User
from welfare.visits import service as visits
from welfare.visits.models import (
    CalendarToken,
    ScheduleCreate,
    Visit,
    VisitSchedule,
    VisitStatus,
)

HTML = {"accept": "text/html"}
PagesLogin = Callable[..., str]


@pytest.fixture
def consenting(
    make_resident: Callable[..., Resident], make_consent: Callable[..., Any]
) -> Callable[..., Resident]:
    def make(**overrides: Any) -> Resident:
        resident = make_resident(**overrides)
        make_consent(resident)
        return resident

    return make


def _schedule(db: Session, resident: Resident, **overrides: Any) -> VisitSchedule:
    data = {
        "resident_id": resident.id,
        "kind": "home_visit",
        "rrule": "FREQ=WEEKLY;BYDAY=MO,TH",
        "window_start": dt.time(10),
        "window_end": dt.time(11),
        "start_date": dt.date(2026, 1, 1),
    } | overrides
    schedule = visits.create_schedule(session=db, actor=SYSTEM, data=ScheduleCreate(**data))
    db.commit()
    return schedule


def _visit(
    db: Session,
    schedule: VisitSchedule,
    start: dt.datetime,
    *,
    status: VisitStatus = VisitStatus.scheduled,
    assignee: uuid.UUID | None = None,
) -> Visit:
    visit = Visit(
        schedule_id=schedule.id,
        site_id=schedule.site_id,
        resident_id=schedule.resident_id,
        kind=schedule.kind,
        assignee_user_id=assignee,
        window_start=start,
        window_end=start + dt.timedelta(hours=1),
        status=status,
    )
    db.add(visit)
    db.commit()
    db.refresh(visit)
    db.expunge(visit)
    return visit


def test_smoke_every_page_renders(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    page_login: PagesLogin,
    consenting: Callable[..., Resident],
) -> None:
    manager = make_user("manager", [site])
    resident = consenting()
    schedule = _schedule(db, resident)
    visit = _visit(db, schedule, utcnow() - dt.timedelta(hours=1))
    page_login(manager)
    for path in [
        "/manage/visits",
        "/manage/visits?view=month",
        "/manage/visits?view=list",
        f"/manage/visits/{visit.id}",
        "/manage/schedules",
        "/manage/schedules/new",
        f"/manage/schedules/{schedule.id}",
        "/manage/reports",
        "/manage/calendar-feed",
    ]:
        response = client.get(path, headers=HTML)
        assert response.status_code == 200, (path, response.text[-2000:])
