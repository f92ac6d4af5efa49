"""The manager's calendar: visit rows within the scheduler's rolling window, the schedules'
planned occurrences past it, as one list in time order."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import Session, select

from tests.conftest import SYSTEM
from welfare.authz import Actor, Role
from welfare.consent.models import Consent
from welfare.residents.models import Resident
from welfare.sites.models import Site
from welfare.users.models import User
from welfare.visits import recurrence, scheduler
from welfare.visits import service as visits
from welfare.visits.calendar_view import PlannedVisit, calendar_entries
from welfare.visits.models import ScheduleCreate, Visit, VisitSchedule, VisitStatus

NOW = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def resident_with_consent(
    make_household: Callable[..., Any],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Consent],
) -> Callable[..., Resident]:
    def make(site: Site | None = None) -> Resident:
        household = make_household(site_=site) if site else make_household()
        resident = make_resident(household=household)
        make_consent(resident)
        return resident

    return make


def _schedule(db: Session, resident: Resident, **overrides: Any) -> VisitSchedule:
    data = {
        "resident_id": resident.id,
        "kind": "home_visit",
        "rrule": "FREQ=WEEKLY;BYDAY=MO,TH",
        "window_start": dt.time(10, 0),
        "window_end": dt.time(11, 0),
        "start_date": dt.date(2026, 10, 1),
    } | overrides
    schedule = visits.create_schedule(session=db, actor=SYSTEM, data=ScheduleCreate(**data))
    scheduler.generate_ahead(db, NOW)
    db.commit()
    return schedule


def schedule_site_timezone(db: Session, schedule: VisitSchedule) -> str:
    site = db.get(Site, schedule.site_id)
    assert site is not None
    return site.timezone


def _entries(db: Session, actor: Actor = SYSTEM, **filters: Any) -> Any:
    return calendar_entries(
        session=db,
        actor=actor,
        limit=filters.pop("limit", 1000),
        start_from=filters.pop("start_from", NOW),
        start_to=filters.pop("start_to", NOW + dt.timedelta(days=60)),
        now=NOW,
        **filters,
    )


def test_past_the_rolling_window_the_calendar_shows_the_schedules_planned_occurrences(
    db: Session, site: Site, resident_with_consent: Callable[..., Resident]
) -> None:
    schedule = _schedule(db, resident_with_consent())
    shown = _entries(db)
    expected = recurrence.occurrences(
        rule=schedule.rrule,
        timezone=site.timezone,
        start_date=schedule.start_date,
        end_date=None,
        window_start=schedule.window_start,
        window_end=schedule.window_end,
        after=NOW,
        before=NOW + dt.timedelta(days=60),
    )
    # Every occurrence once, in time order: rows up to where generation got, planned after.
    assert [(e.window_start, e.window_end) for e in shown.entries] == expected
    assert shown.more is False
    horizon = NOW + scheduler.HORIZON
    rows = [e for e in shown.entries if isinstance(e, Visit)]
    planned = [e for e in shown.entries if isinstance(e, PlannedVisit)]
    assert rows and planned
    assert all(v.window_start < horizon for v in rows)
    assert all(p.window_start >= horizon and p.id is None for p in planned)
    assert {p.schedule_id for p in planned} == {schedule.id}


def test_a_full_page_of_rows_needs_no_planned_occurrence_and_says_there_is_more(
    db: Session, resident_with_consent: Callable[..., Resident]
) -> None:
    schedule = _schedule(db, resident_with_consent(), rrule="FREQ=DAILY")
    shown = _entries(db, limit=5)
    assert len(shown.entries) == 5 and shown.more is True
    assert all(isinstance(e, Visit) for e in shown.entries)
    # Past the rows, the page fills with planned ones, and still says there is more.
    later = _entries(db, limit=5, start_from=NOW + dt.timedelta(days=30))
    assert [type(e) for e in later.entries] == [PlannedVisit] * 5 and later.more is True
    # Expanded over growing spans: the first five of the range, none skipped.
    expected = recurrence.occurrences(
        rule="FREQ=DAILY",
        timezone=schedule_site_timezone(db, schedule),
        start_date=schedule.start_date,
        end_date=None,
        window_start=schedule.window_start,
        window_end=schedule.window_end,
        after=NOW + dt.timedelta(days=30),
        before=NOW + dt.timedelta(days=60),
    )[:5]
    assert [(e.window_start, e.window_end) for e in later.entries] == expected


def test_a_status_other_than_scheduled_shows_no_planned_occurrence(
    db: Session, resident_with_consent: Callable[..., Resident]
) -> None:
    _schedule(db, resident_with_consent())
    assert _entries(db, statuses=[VisitStatus.completed]).entries == []
    scheduled = _entries(db, statuses=[VisitStatus.scheduled]).entries
    assert any(isinstance(e, PlannedVisit) for e in scheduled)


def test_no_planned_occurrence_once_the_welfare_visits_consent_is_withdrawn(
    db: Session, resident_with_consent: Callable[..., Resident]
) -> None:
    resident = resident_with_consent()
    _schedule(db, resident)
    assert any(isinstance(e, PlannedVisit) for e in _entries(db).entries)
    # Withdrawn outside the service: the schedule stays active until the next generation.
    for consent in db.exec(select(Consent).where(Consent.resident_id == resident.id)):
        consent.withdrawn_at = NOW
        db.add(consent)
    db.commit()
    assert not any(isinstance(e, PlannedVisit) for e in _entries(db).entries)


def test_planned_occurrences_follow_the_assignee_filter_and_the_readers_sites(
    db: Session,
    make_site: Callable[..., Site],
    site: Site,
    make_user: Callable[..., User],
    resident_with_consent: Callable[..., Resident],
) -> None:
    staff = make_user(Role.staff, [site])
    mine = _schedule(db, resident_with_consent(), assignee_user_id=staff.id)
    theirs = _schedule(db, resident_with_consent())
    far = {"start_from": NOW + dt.timedelta(days=30)}
    assert {e.schedule_id for e in _entries(db, assignee_user_id=staff.id, **far).entries} == {
        mine.id
    }
    assert {e.schedule_id for e in _entries(db, unassigned=True, **far).entries} == {theirs.id}
    elsewhere = make_site(name="Elsewhere")
    outsider = Actor(user_id=staff.id, role=Role.manager, site_ids=frozenset({elsewhere.id}))
    assert _entries(db, outsider, **far).entries == []
