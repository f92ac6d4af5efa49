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

from api.pages.manager import visits as manager_visits
from api.pages.rendering import STATIC_DIR
from tests.conftest import SYSTEM
from welfare.db import utcnow
from welfare.incidents.models import Incident
from welfare.residents.models import Resident
from welfare.sites.models import Site
from welfare.users.models import User
from welfare.visits import scheduler
from welfare.visits import service as visits
from welfare.visits.models import (
    CalendarToken,
    ScheduleCreate,
    Visit,
    VisitSchedule,
    VisitStatus,
)

HTML = {"accept": "text/html"}
DASH = "\u2013"  # the en dash between a window's start and end
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


# --- helpers ------------------------------------------------------------------------------------


def _days(html: str) -> list[str]:
    """The week view's day boxes, Monday first."""
    return re.findall(r'<li class="day[^"]*">(.*?)</li>', html, flags=re.S)


def _assert_no_inline_code(html: str) -> None:
    """The CSP forbids inline styles and scripts: the pages must not rely on them."""
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"<style", html)
    for tag in re.findall(r"<script[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, tag


# --- roles --------------------------------------------------------------------------------------

GET_PATHS = [
    "/manage",
    "/manage/visits",
    "/manage/schedules",
    "/manage/schedules/new",
    "/manage/reports",
    "/manage/calendar-feed",
]


def test_signed_out_visitors_are_sent_to_sign_in(client: TestClient) -> None:
    for path in GET_PATHS:
        response = client.get(path, headers=HTML, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=/manage"), path


def test_guards_are_refused_every_manager_page(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    page_login: PagesLogin,
    consenting: Callable[..., Resident],
) -> None:
    schedule = _schedule(db, consenting())
    visit = _visit(db, schedule, utcnow() - dt.timedelta(hours=1))
    csrf = page_login(make_user("guard", [site]))
    for path in [*GET_PATHS, f"/manage/visits/{visit.id}", f"/manage/schedules/{schedule.id}"]:
        assert client.get(path, headers=HTML).status_code == 403, path
    recorded = client.post(
        f"/manage/visits/{visit.id}/record",
        data={"csrf_token": csrf, "outcome": "well"},
        headers=HTML,
    )
    assert recorded.status_code == 403
    feed = client.post("/manage/calendar-feed", data={"csrf_token": csrf, "action": "issue"})
    assert feed.status_code == 403
    db.expire_all()
    assert db.get(Visit, visit.id).status == VisitStatus.scheduled  # type: ignore[union-attr]


def test_staff_see_visits_and_schedules_but_not_the_manager_only_pages(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    page_login: PagesLogin,
    consenting: Callable[..., Resident],
) -> None:
    schedule = _schedule(db, consenting())
    csrf = page_login(make_user("staff", [site]))
    assert client.get("/manage/visits", headers=HTML).status_code == 200
    listed = client.get("/manage/schedules", headers=HTML)
    assert listed.status_code == 200 and "Mr. Wang" in listed.text
    assert "/manage/schedules/new" not in listed.text  # no button they could not use
    assert "/manage/reports" not in listed.text  # nor a nav link
    for path in ["/manage/schedules/new", f"/manage/schedules/{schedule.id}", "/manage/reports"]:
        assert client.get(path, headers=HTML).status_code == 403, path
    ended = client.post(f"/manage/schedules/{schedule.id}/end", data={"csrf_token": csrf})
    assert ended.status_code == 403
    db.expire_all()
    assert db.get(VisitSchedule, schedule.id).active  # type: ignore[union-attr]
    assert client.get("/manage/calendar-feed", headers=HTML).status_code == 200


# --- cross-site isolation -----------------------------------------------------------------------


def test_a_manager_of_site_b_sees_nothing_of_site_a(
    client: TestClient,
    db: Session,
    site: Site,
    make_site: Callable[..., Site],
    make_user: Callable[..., User],
    make_household: Callable[..., Any],
    page_login: PagesLogin,
    consenting: Callable[..., Resident],
) -> None:
    site_b = make_site(name="Site B")
    a_resident = consenting(full_name="Alpha Resident", preferred_name="Alpha")
    b_resident = consenting(
        household=make_household(site_=site_b), full_name="Bravo Resident", preferred_name="Bravo"
    )
    a_schedule, b_schedule = _schedule(db, a_resident), _schedule(db, b_resident)
    now = utcnow()
    a_visit = _visit(db, a_schedule, now - dt.timedelta(hours=1), status=VisitStatus.missed)
    _visit(db, b_schedule, now - dt.timedelta(hours=1), status=VisitStatus.missed)
    csrf = page_login(make_user("manager", [site_b]))

    for view in ("week", "month", "list"):
        page = client.get(f"/manage/visits?view={view}", headers=HTML)
        assert page.status_code == 200
        assert "Bravo" in page.text and "Alpha" not in page.text, view
        assert "Harbour View Gardens" not in page.text
        assert client.get(f"/manage/visits?view={view}&site_id={site.id}").status_code == 404
    schedules = client.get("/manage/schedules", headers=HTML)
    assert "Bravo" in schedules.text and "Alpha" not in schedules.text
    new_form = client.get("/manage/schedules/new", headers=HTML)
    assert "Bravo" in new_form.text and "Alpha" not in new_form.text
    reports = client.get("/manage/reports", headers=HTML)
    assert "Bravo" in reports.text and "Alpha" not in reports.text
    for path in [
        f"/manage/visits/{a_visit.id}",
        f"/manage/schedules/{a_schedule.id}",
        f"/manage/reports?site_id={site.id}",
        f"/manage/schedules?site_id={site.id}",
        f"/manage/schedules/new?site_id={site.id}",
    ]:
        assert client.get(path, headers=HTML).status_code == 404, path
    recorded = client.post(
        f"/manage/visits/{a_visit.id}/record", data={"csrf_token": csrf, "outcome": "well"}
    )
    assert recorded.status_code == 404
    created = client.post(
        "/manage/schedules/new",
        data={
            "csrf_token": csrf,
            "resident_id": str(a_resident.id),
            "kind": "home_visit",
            "preset": "weekly",
            "weekdays": ["MO"],
            "window_start": "10:00",
            "window_end": "11:00",
            "start_date": "2026-12-01",
            "active": "true",
        },
    )
    assert created.status_code == 404  # site A's resident looks absent to this manager
    assert (
        client.post(f"/manage/schedules/{a_schedule.id}/end", data={"csrf_token": csrf}).status_code
        == 404
    )
    db.expire_all()
    assert db.get(Visit, a_visit.id).status == VisitStatus.missed  # type: ignore[union-attr]
    assert db.exec(
        select(VisitSchedule).where(VisitSchedule.resident_id == a_resident.id)
    ).all() == [db.get(VisitSchedule, a_schedule.id)]


# --- the calendar -------------------------------------------------------------------------------


def test_a_daylight_saving_week_shows_visits_at_their_local_times(
    client: TestClient,
    db: Session,
    make_site: Callable[..., Site],
    make_user: Callable[..., User],
    make_household: Callable[..., Any],
    page_login: PagesLogin,
    consenting: Callable[..., Resident],
) -> None:
    """Europe/London moves to summer time on Sunday 29 March 2026 at 01:00 UTC."""
    from welfare.visits.recurrence import occurrences

    london = make_site(
        name="London House",
        timezone="Europe/London",
        phone_region="GB",
        office_phone="020 7946 0000",
    )
    resident = consenting(household=make_household(site_=london))
    schedule = _schedule(db, resident, rrule="FREQ=DAILY", start_date=dt.date(2026, 3, 20))
    starts = occurrences(
        rule="FREQ=DAILY",
        timezone="Europe/London",
        start_date=dt.date(2026, 3, 20),
        end_date=None,
        window_start=dt.time(10),
        window_end=dt.time(11),
        after=dt.datetime(2026, 3, 22, tzinfo=dt.UTC),
        before=dt.datetime(2026, 4, 1, tzinfo=dt.UTC),
    )
    for start, _end in starts:
        _visit(db, schedule, start)
    # Late on the last Sunday (22:30 UTC = 23:30 BST) is still this week; 23:30 UTC is Monday.
    _visit(db, schedule, dt.datetime(2026, 3, 29, 22, 30, tzinfo=dt.UTC))
    _visit(db, schedule, dt.datetime(2026, 3, 29, 23, 30, tzinfo=dt.UTC))
    sunday_utc = [s for s, _e in starts if s.date() == dt.date(2026, 3, 29)]
    assert sunday_utc[0].hour == 9  # the stored UTC time did move by the hour

    page_login(make_user("manager", [london]))
    page = client.get("/manage/visits?view=week&date=2026-03-25", headers=HTML)
    assert page.status_code == 200
    assert "Europe/London" in page.text
    days = _days(page.text)
    assert len(days) == 7
    assert "2026-03-23" in days[0] and "2026-03-29" in days[6]
    for day in days:
        assert day.count(f"10:00{DASH}11:00") == 1, day
        assert "09:00" not in day and f"11:00{DASH}12:00" not in day
    assert f"23:30{DASH}00:30" in days[6]  # the late Sunday visit in local time
    assert f"00:30{DASH}01:30" not in page.text  # Monday 30 March belongs to the next week
    next_week = client.get("/manage/visits?view=week&date=2026-03-30", headers=HTML)
    assert f"00:30{DASH}01:30" in _days(next_week.text)[0]


def test_the_month_grid_and_the_week_link_each_visit(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    page_login: PagesLogin,
    consenting: Callable[..., Resident],
) -> None:
    schedule = _schedule(db, consenting())
    # 10:00 Hong Kong time on 2 and 3 December 2026 (UTC+8).
    first = _visit(db, schedule, dt.datetime(2026, 12, 2, 2, tzinfo=dt.UTC))
    _visit(db, schedule, dt.datetime(2026, 12, 3, 2, tzinfo=dt.UTC))
    page_login(make_user("manager", [site]))
    month = client.get("/manage/visits?view=month&date=2026-12-15", headers=HTML)
    assert month.status_code == 200
    assert "2026-12" in month.text
    weeks = re.findall(r"<tr>\s*<td", month.text)
    assert len(weeks) == 5  # 30 Nov (Mon) to 3 Jan
    assert month.text.count(f"/manage/visits/{first.id}") == 1
    assert "10:00 Mr. Wang" in month.text
    assert "view=week&amp;date=2026-12-02" in month.text
    _assert_no_inline_code(month.text)
    week = client.get("/manage/visits?view=week&date=2026-12-02", headers=HTML)
    days = _days(week.text)
    assert f"/manage/visits/{first.id}" in days[2]  # Wednesday
    assert "date=2026-11-23" in week.text and "date=2026-12-07" in week.text  # prev / next
    _assert_no_inline_code(week.text)


def test_the_list_filters_by_assignee_status_and_dates_and_pages(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    page_login: PagesLogin,
    consenting: Callable[..., Resident],
) -> None:
    staff = make_user("staff", [site], display_name="Ada Staff")
    schedule = _schedule(db, consenting())
    base = dt.datetime(2026, 6, 1, 2, tzinfo=dt.UTC)
    for i in range(55):
        _visit(db, schedule, base + dt.timedelta(hours=i), assignee=staff.id)
    missed = _visit(db, schedule, base + dt.timedelta(days=10), status=VisitStatus.missed)
    page_login(make_user("manager", [site]))
    everything = client.get("/manage/visits?view=list", headers=HTML)
    assert "56 visits" in everything.text and "Page 1 of 2" in everything.text
    second = client.get("/manage/visits?view=list&page=2", headers=HTML)
    assert second.text.count('<a href="/manage/visits/') == 6
    by_status = client.get("/manage/visits?view=list&status=missed", headers=HTML)
    assert "1 visits" in by_status.text and f"/manage/visits/{missed.id}" in by_status.text
    by_assignee = client.get(f"/manage/visits?view=list&assignee={staff.id}", headers=HTML)
    assert "55 visits" in by_assignee.text and f"/manage/visits/{missed.id}" not in by_assignee.text
    unassigned = client.get("/manage/visits?view=list&assignee=site", headers=HTML)
    assert f"/manage/visits/{missed.id}" in unassigned.text
    dated = client.get("/manage/visits?view=list&start=2026-06-11&end=2026-06-11", headers=HTML)
    assert "1 visits" in dated.text
    kept = client.get("/manage/visits?view=list&start=2026-06-12&end=2026-06-01", headers=HTML)
    assert kept.status_code == 422
    assert "The date range ends before it starts." in kept.text
    assert 'value="2026-06-12"' in kept.text  # the input is kept
    bad = client.get("/manage/visits?view=list&start=yesterday", headers=HTML)
    assert bad.status_code == 422 and 'value="yesterday"' in bad.text
    assert client.get("/manage/visits?status=lost", headers=HTML).status_code == 422
    assert client.get("/manage/visits?assignee=nobody", headers=HTML).status_code == 422


# --- recording an outcome -----------------------------------------------------------------------


def test_staff_record_a_concern_and_get_a_link_to_the_incident(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    page_login: PagesLogin,
    consenting: Callable[..., Resident],
) -> None:
    schedule = _schedule(db, consenting())
    visit = _visit(db, schedule, utcnow() - dt.timedelta(minutes=30))
    csrf = page_login(make_user("staff", [site]))
    form = client.get(f"/manage/visits/{visit.id}", headers=HTML)
    assert form.status_code == 200 and 'name="outcome"' in form.text
    _assert_no_inline_code(form.text)
    response = client.post(
        f"/manage/visits/{visit.id}/record",
        data={"csrf_token": csrf, "outcome": "concern", "notes": "Confused, no food"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/manage/visits/{visit.id}?saved=1"
    db.expire_all()
    stored = db.get(Visit, visit.id)
    assert stored is not None and stored.status == VisitStatus.completed
    assert stored.incident_id is not None
    incident = db.get(Incident, stored.incident_id)
    assert incident is not None and incident.kind == "welfare_concern"
    db.rollback()
    shown = client.get(response.headers["location"], headers=HTML)
    assert f'href="/console/incidents/{stored.incident_id}"' in shown.text
    assert "Outcome recorded." in shown.text and "Confused, no food" in shown.text
    assert 'name="outcome"' not in shown.text  # recorded: no second form
    again = client.post(
        f"/manage/visits/{visit.id}/record",
        data={"csrf_token": csrf, "outcome": "well"},
        headers=HTML,
    )
    assert again.status_code == 409 and "already recorded" in again.text


def test_a_well_visit_opens_no_incident_and_a_follow_up_does(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    page_login: PagesLogin,
    consenting: Callable[..., Resident],
) -> None:
    schedule = _schedule(db, consenting())
    well = _visit(db, schedule, utcnow() - dt.timedelta(hours=3))
    follow = _visit(db, schedule, utcnow() - dt.timedelta(hours=2))
    csrf = page_login(make_user("manager", [site]))
    client.post(f"/manage/visits/{well.id}/record", data={"csrf_token": csrf, "outcome": "well"})
    client.post(
        f"/manage/visits/{follow.id}/record",
        data={"csrf_token": csrf, "outcome": "refused", "follow_up": "true"},
    )
    db.expire_all()
    assert db.get(Visit, well.id).incident_id is None  # type: ignore[union-attr]
    assert db.get(Visit, follow.id).incident_id is not None  # type: ignore[union-attr]
    db.rollback()
    assert "/console/incidents/" not in client.get(f"/manage/visits/{well.id}").text


def test_recording_without_csrf_or_outcome_is_refused_and_keeps_the_notes(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    page_login: PagesLogin,
    consenting: Callable[..., Resident],
) -> None:
    schedule = _schedule(db, consenting())
    visit = _visit(db, schedule, utcnow() - dt.timedelta(minutes=30))
    future = _visit(db, schedule, utcnow() + dt.timedelta(days=3))
    csrf = page_login(make_user("staff", [site]))
    no_token = client.post(
        f"/manage/visits/{visit.id}/record", data={"outcome": "well"}, headers=HTML
    )
    assert no_token.status_code == 403
    wrong = client.post(
        f"/manage/visits/{visit.id}/record",
        data={"outcome": "well", "csrf_token": "x" * 20},
        headers=HTML,
    )
    assert wrong.status_code == 403
    missing = client.post(
        f"/manage/visits/{visit.id}/record",
        data={"csrf_token": csrf, "notes": "Door locked <b>twice</b>"},
        headers=HTML,
    )
    assert missing.status_code == 422
    assert "Choose what you found." in missing.text
    assert "Door locked &lt;b&gt;twice&lt;/b&gt;" in missing.text
    early = client.post(
        f"/manage/visits/{future.id}/record",
        data={"csrf_token": csrf, "outcome": "not_home", "notes": "early", "follow_up": "true"},
        headers=HTML,
    )
    assert early.status_code == 422 and "has not started yet" in early.text
    assert 'value="not_home" checked' in early.text and "early</textarea>" in early.text
    db.expire_all()
    for row in (visit, future):
        assert db.get(Visit, row.id).status == VisitStatus.scheduled  # type: ignore[union-attr]


# --- schedules ----------------------------------------------------------------------------------


def _schedule_form(csrf: str, **overrides: Any) -> dict[str, Any]:
    return {
        "csrf_token": csrf,
        "kind": "home_visit",
        "preset": "weekly",
        "weekdays": ["MO", "WE"],
        "every_days": "1",
        "month_day": "1",
        "rrule_raw": "",
        "window_start": "10:00",
        "window_end": "11:00",
        "assignee": "",
        "start_date": "2026-12-01",
        "end_date": "",
        "active": "true",
    } | overrides


def test_a_manager_creates_edits_and_ends_a_schedule_with_the_builder(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    page_login: PagesLogin,
    consenting: Callable[..., Resident],
) -> None:
    resident = consenting()
    staff = make_user("staff", [site], display_name="Ada Staff")
    csrf = page_login(make_user("manager", [site]))
    form = client.get(f"/manage/schedules/new?resident_id={resident.id}", headers=HTML)
    assert form.status_code == 200 and f'value="{resident.id}" selected' in form.text
    _assert_no_inline_code(form.text)
    created = client.post(
        "/manage/schedules/new",
        data=_schedule_form(csrf, resident_id=str(resident.id), assignee=str(staff.id)),
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text
    schedule_id = uuid.UUID(created.headers["location"].split("/")[-1].split("?")[0])
    stored = db.get(VisitSchedule, schedule_id)
    assert stored is not None and stored.rrule == "FREQ=WEEKLY;BYDAY=MO,WE"
    assert stored.assignee_user_id == staff.id
    db.rollback()
    listed = client.get("/manage/schedules", headers=HTML)
    assert "Weekly: Mon, Wed" in listed.text and "Ada Staff" in listed.text

    edit = client.get(f"/manage/schedules/{schedule_id}", headers=HTML)
    assert 'value="MO" checked' in edit.text and 'value="TU" checked' not in edit.text
    for overrides, rule in [
        ({"preset": "monthly", "month_day": "5"}, "FREQ=MONTHLY;BYMONTHDAY=5"),
        ({"preset": "every_n_days", "every_days": "3"}, "FREQ=DAILY;INTERVAL=3"),
        (
            {"preset": "raw", "rrule_raw": "freq=weekly;interval=2;byday=tu"},
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU",
        ),
    ]:
        saved = client.post(
            f"/manage/schedules/{schedule_id}",
            data=_schedule_form(csrf, **overrides),
            follow_redirects=False,
        )
        assert saved.status_code == 303, saved.text
        db.expire_all()
        assert db.get(VisitSchedule, schedule_id).rrule == rule  # type: ignore[union-attr]
        db.rollback()
    raw_again = client.get(f"/manage/schedules/{schedule_id}", headers=HTML)
    assert 'value="raw" checked' in raw_again.text

    ended = client.post(
        f"/manage/schedules/{schedule_id}/end", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert ended.status_code == 303
    db.expire_all()
    assert db.get(VisitSchedule, schedule_id).active is False  # type: ignore[union-attr]
    db.rollback()
    assert "Mr. Wang" not in client.get("/manage/schedules", headers=HTML).text
    assert "Mr. Wang" in client.get("/manage/schedules?show=all", headers=HTML).text


@pytest.mark.parametrize(
    ("overrides", "message", "kept"),
    [
        (
            {"preset": "raw", "rrule_raw": "FREQ=HOURLY;X=1"},
            "This recurrence rule is not valid",
            'value="FREQ=HOURLY;X=1"',
        ),
        (
            {"preset": "raw", "rrule_raw": "FREQ=DAILY;UNTIL=20270101"},
            "This recurrence rule is not valid",
            "UNTIL=20270101",
        ),
        ({"weekdays": []}, "Choose at least one day of the week.", 'value="10:00"'),
        ({"weekdays": ["MO", "XX"]}, "Choose at least one day of the week.", 'value="MO" checked'),
        ({"preset": "every_n_days", "every_days": "0"}, "from 1 to 365", 'value="0"'),
        ({"preset": "monthly", "month_day": "31"}, "from 1 to 28", 'value="31"'),
        ({"window_end": "09:00"}, "must end after it starts", 'value="09:00"'),
        ({"window_start": "ten"}, "as times", 'value="ten"'),
        (
            {"end_date": "2026-11-01"},
            "The end date is before the start date.",
            'value="2026-11-01"',
        ),
        (
            {"kind": "automated_call"},
            "need the resident&#39;s own phone",
            'value="automated_call" selected',
        ),
        ({"assignee": str(uuid.uuid4())}, "Choose an active staff member", 'value="MO" checked'),
    ],
)
def test_bad_schedule_input_is_re_rendered_with_422_keeping_the_input(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    page_login: PagesLogin,
    consenting: Callable[..., Resident],
    overrides: dict[str, Any],
    message: str,
    kept: str,
) -> None:
    resident = consenting(phone=None)
    csrf = page_login(make_user("manager", [site]))
    response = client.post(
        "/manage/schedules/new",
        data=_schedule_form(csrf, resident_id=str(resident.id), **overrides),
        headers=HTML,
    )
    assert response.status_code == 422, response.text[-500:]
    assert message in response.text
    assert kept in response.text
    assert f'value="{resident.id}" selected' in response.text
    assert db.exec(select(VisitSchedule)).all() == []


def test_a_bad_edit_changes_nothing_and_a_resident_without_consent_is_refused(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    make_resident: Callable[..., Resident],
    page_login: PagesLogin,
    consenting: Callable[..., Resident],
) -> None:
    schedule = _schedule(db, consenting())
    csrf = page_login(make_user("manager", [site]))
    bad = client.post(
        f"/manage/schedules/{schedule.id}",
        data=_schedule_form(csrf, preset="raw", rrule_raw="NOT A RULE"),
        headers=HTML,
    )
    assert bad.status_code == 422 and 'value="NOT A RULE"' in bad.text
    db.expire_all()
    assert db.get(VisitSchedule, schedule.id).rrule == "FREQ=WEEKLY;BYDAY=MO,TH"  # type: ignore[union-attr]
    db.rollback()
    no_consent = make_resident(full_name="No Consent")
    refused = client.post(
        "/manage/schedules/new",
        data=_schedule_form(csrf, resident_id=str(no_consent.id)),
        headers=HTML,
    )
    assert refused.status_code == 422 and "consented to welfare visits" in refused.text
    no_csrf = client.post(
        "/manage/schedules/new",
        data={**_schedule_form("", resident_id=str(no_consent.id))},
        headers=HTML,
    )
    assert no_csrf.status_code == 403
    no_csrf_edit = client.post(f"/manage/schedules/{schedule.id}", data=_schedule_form(""))
    assert no_csrf_edit.status_code == 403
    assert client.post(f"/manage/schedules/{schedule.id}/end", data={}).status_code == 403


# --- reports ------------------------------------------------------------------------------------


def test_reports_draw_completion_and_response_times_as_svg_with_tables(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    page_login: PagesLogin,
    consenting: Callable[..., Resident],
) -> None:
    staff = make_user("staff", [site], display_name="Ada Staff")
    schedule = _schedule(db, consenting())
    now = utcnow()
    for hours, status in [
        (30, VisitStatus.completed),
        (40, VisitStatus.completed),
        (50, VisitStatus.missed),
    ]:
        _visit(db, schedule, now - dt.timedelta(hours=hours), status=status, assignee=staff.id)
    opened = now - dt.timedelta(days=2)
    db.add(
        Incident(
            site_id=site.id,
            kind="welfare_concern",
            reference="W-1",
            opened_at=opened,
            first_sent_at=opened + dt.timedelta(seconds=30),
            confirmed_at=opened + dt.timedelta(minutes=12),
            handed_over_at=opened + dt.timedelta(minutes=40),
        )
    )
    db.commit()
    page_login(make_user("manager", [site]))
    page = client.get("/manage/reports", headers=HTML)
    assert page.status_code == 200, page.text[-1500:]
    _assert_no_inline_code(page.text)
    assert page.text.count("<svg") >= 5
    assert "67%" in page.text and "Ada Staff" in page.text and "Mr. Wang" in page.text
    assert "2 of 3 due visits completed, 1 missed" in page.text
    month = opened.astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m")
    assert f'<th scope="row">{month}</th>' in page.text
    assert "30 s" in page.text and "12 min" in page.text and "40 min" in page.text
    assert f"/api/v1/reports/visits.csv?site_id={site.id}" in page.text
    assert f"/api/v1/reports/incidents.csv?site_id={site.id}" in page.text
    visits_csv = re.search(r'href="(/api/v1/reports/visits\.csv[^"]+)"', page.text)
    assert visits_csv is not None
    exported = client.get(visits_csv.group(1).replace("&amp;", "&"))
    assert exported.status_code == 200 and exported.text.count("\n") == 4
    incidents_csv = re.search(r'href="(/api/v1/reports/incidents\.csv[^"]+)"', page.text)
    assert incidents_csv is not None
    assert "W-1" in client.get(incidents_csv.group(1).replace("&amp;", "&")).text
    chinese = client.get("/manage/reports", headers={**HTML, "accept-language": "zh-CN"})
    assert chinese.status_code == 200


def _luminance(colour: str) -> float:
    """WCAG 2 relative luminance of #rgb or #rrggbb."""
    digits = colour.lstrip("#")
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    light, dark = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_contrast_is_computed_as_wcag_says() -> None:
    assert contrast("#000", "#fff") == pytest.approx(21)
    assert contrast("#777", "#fff") == pytest.approx(4.48, abs=0.01)  # the classic near miss
    assert contrast("#fff", "#fff") == pytest.approx(1)


def test_report_chart_text_reaches_wcag_aa_contrast_on_the_card(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    page_login: PagesLogin,
    consenting: Callable[..., Resident],
) -> None:
    schedule = _schedule(db, consenting())
    _visit(db, schedule, utcnow() - dt.timedelta(hours=30), status=VisitStatus.completed)
    opened = utcnow() - dt.timedelta(days=2)
    db.add(
        Incident(
            site_id=site.id,
            kind="welfare_concern",
            reference="W-2",
            opened_at=opened,
            first_sent_at=opened + dt.timedelta(seconds=30),
            confirmed_at=opened + dt.timedelta(minutes=12),
        )
    )
    db.commit()
    page_login(make_user("manager", [site]))
    page = client.get("/manage/reports", headers=HTML)
    assert page.status_code == 200
    # The charts sit on a card; its background is the one the text is read against.
    css = (STATIC_DIR / "app.css").read_text(encoding="utf-8")
    card = re.search(r"^\.card \{[^}]*background: (#[0-9a-fA-F]{3,6})", css, re.M)
    assert card is not None
    background = card.group(1)
    svgs = re.findall(r"<svg class=\"chart.*?</svg>", page.text, re.S)
    assert len(svgs) >= 3  # bars and lines both drawn
    texts = [t for svg in svgs for t in re.findall(r"<text\b[^>]*>", svg)]
    assert texts
    for text in texts:
        fill = re.search(r'fill="(#[0-9a-fA-F]{3,6})"', text)
        assert fill is not None, text  # no text left to a default colour
        assert contrast(fill.group(1), background) >= 4.5, text
    # Lines, points and bars are graphics: 3:1 against the card (WCAG 1.4.11).
    manager_css = (STATIC_DIR / "manager.css").read_text(encoding="utf-8")
    series = re.findall(
        r"\.series-[a-z0-9]+ [^{]*\{ (?:stroke|fill): (#[0-9a-fA-F]{3,6})", manager_css
    )
    bars = re.findall(r'class="bar" [^>]*fill="(#[0-9a-fA-F]{3,6})"', page.text)
    assert series and bars
    for colour in series + bars:
        assert contrast(colour, background) >= 3, colour


def test_reports_in_chinese_for_a_chinese_reading_manager(
    client: TestClient,
    site: Site,
    make_user: Callable[..., User],
    page_login: PagesLogin,
) -> None:
    page_login(make_user("manager", [site], language="zh-CN"))
    page = client.get("/manage/reports", headers=HTML)
    assert "探访完成情况" in page.text and "事件响应时间" in page.text
    week = client.get("/manage/visits", headers=HTML)
    assert "星期一" in week.text and "上一周" in week.text


def test_reports_in_korean_for_a_korean_reading_manager(
    client: TestClient,
    site: Site,
    make_user: Callable[..., User],
    page_login: PagesLogin,
) -> None:
    page_login(make_user("manager", [site], language="ko-KR"))
    page = client.get("/manage/reports", headers=HTML)
    assert "방문 완료 현황" in page.text and "사건 대응 시간" in page.text
    week = client.get("/manage/visits", headers=HTML)
    assert "월요일" in week.text and "이전 주" in week.text


# --- calendar feed ------------------------------------------------------------------------------


def test_a_user_issues_reissues_and_revokes_their_own_feed(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    page_login: PagesLogin,
) -> None:
    staff = make_user("staff", [site])
    csrf = page_login(staff)
    page = client.get("/manage/calendar-feed", headers=HTML)
    assert "You have no feed address." in page.text
    _assert_no_inline_code(page.text)
    assert client.post("/manage/calendar-feed", data={"action": "issue"}).status_code == 403
    issued = client.post("/manage/calendar-feed", data={"csrf_token": csrf, "action": "issue"})
    assert issued.status_code == 200
    found = re.search(r'value="(https?://[^"]+/calendar/([^"]+)\.ics)"', issued.text)
    assert found is not None and "data-copy" in issued.text
    _url, token = found.groups()
    assert issued.headers["cache-control"] == "no-store"
    assert client.get(f"/calendar/{token}.ics").status_code == 200
    later = client.get("/manage/calendar-feed", headers=HTML)
    assert token not in later.text and "Re-issue the address" in later.text  # shown once
    reissued = client.post("/manage/calendar-feed", data={"csrf_token": csrf, "action": "issue"})
    new_token = re.search(r"/calendar/([^\"]+)\.ics", reissued.text)
    assert new_token is not None and new_token.group(1) != token
    assert client.get(f"/calendar/{token}.ics").status_code == 404
    revoked = client.post(
        "/manage/calendar-feed",
        data={"csrf_token": csrf, "action": "revoke"},
        follow_redirects=False,
    )
    assert revoked.status_code == 303
    assert client.get(f"/calendar/{new_token.group(1)}.ics").status_code == 404
    assert db.get(CalendarToken, staff.id) is None
    bad = client.post("/manage/calendar-feed", data={"csrf_token": csrf, "action": "steal"})
    assert bad.status_code == 422


def test_months_past_the_rolling_window_show_the_schedules_planned_visits(
    monkeypatch: pytest.MonkeyPatch,
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    page_login: PagesLogin,
    consenting: Callable[..., Resident],
) -> None:
    schedule = _schedule(db, consenting())
    scheduler.generate_ahead(db, utcnow())
    db.commit()
    page_login(make_user("manager", [site]))
    later = (utcnow() + dt.timedelta(days=75)).date()
    month = client.get(f"/manage/visits?view=month&date={later.isoformat()}", headers=HTML)
    assert month.status_code == 200
    # Mondays and Thursdays of a month two and a half months ahead: no visit rows yet, each
    # occurrence planned and linked to its schedule.
    planned = month.text.count(f'class="status-planned" href="/manage/schedules/{schedule.id}"')
    assert planned >= 8
    assert "/manage/visits/" not in month.text.split('class="month"')[1]
    assert "each becomes a visit to record 14 days before it" in month.text
    week = client.get(f"/manage/visits?view=week&date={later.isoformat()}", headers=HTML)
    assert week.text.count("Planned</span>") == 2
    assert "the calendar shows the first" not in week.text
    _assert_no_inline_code(week.text)
    # More than the calendar holds: it shows the first ones and says so.
    monkeypatch.setattr(manager_visits, "CALENDAR_LIMIT", 1)
    crowded = client.get(f"/manage/visits?view=week&date={later.isoformat()}", headers=HTML)
    assert crowded.text.count("Planned</span>") == 1
    assert "This range has more than 1 visits: the calendar shows the first 1." in crowded.text


def test_a_schedule_saved_on_the_page_shows_its_coming_visits_at_once(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    page_login: PagesLogin,
    consenting: Callable[..., Resident],
) -> None:
    resident = consenting()
    csrf = page_login(make_user("manager", [site]))
    created = client.post(
        "/manage/schedules/new",
        data=_schedule_form(
            csrf,
            resident_id=str(resident.id),
            preset="every_n_days",
            every_days="1",
            start_date=dt.date.today().isoformat(),
        ),
        follow_redirects=True,
        headers=HTML,
    )
    assert created.status_code == 200, created.text
    assert "Schedule saved." in created.text
    section = created.text.split('id="coming-visits"')[1].split("</section>")[0]
    links = re.findall(r'href="/manage/visits/([0-9a-f-]+)"', section)
    assert len(links) == 10  # the first ten of the fortnight generated on saving
    db.rollback()
    stored = db.exec(select(Visit).where(Visit.resident_id == resident.id)).all()
    assert 13 <= len(stored) <= 14 and all(v.window_start > utcnow() for v in stored)
    assert {str(v.id) for v in stored} >= set(links)

    # Saved inactive, it has none, and says so.
    schedule_id = created.url.path.split("/")[-1]
    paused = client.post(
        f"/manage/schedules/{schedule_id}",
        data=_schedule_form(csrf, active="", start_date=dt.date.today().isoformat()),
        follow_redirects=True,
        headers=HTML,
    )
    assert paused.status_code == 200
    assert "No coming visits in the next two weeks." in paused.text


def test_recording_a_visit_before_its_window_asks_first(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    page_login: PagesLogin,
    consenting: Callable[..., Resident],
) -> None:
    schedule = _schedule(db, consenting())
    soon = _visit(db, schedule, utcnow() + dt.timedelta(hours=3))
    csrf = page_login(make_user("staff", [site]))
    form = {"csrf_token": csrf, "outcome": "well", "notes": "met in the lobby"}
    asked = client.post(f"/manage/visits/{soon.id}/record", data=form, headers=HTML)
    assert asked.status_code == 409
    assert "has not opened yet" in asked.text and 'id="confirm-early"' in asked.text
    assert 'name="confirm_early" value="true"' in asked.text
    assert 'value="well" checked' in asked.text and "met in the lobby</textarea>" in asked.text
    db.expire_all()
    assert db.get(Visit, soon.id).status is VisitStatus.scheduled  # type: ignore[union-attr]
    db.rollback()
    # The first form does not carry the answer: only the question's form does.
    first = client.get(f"/manage/visits/{soon.id}", headers=HTML).text
    assert 'name="confirm_early"' not in first
    confirmed = client.post(
        f"/manage/visits/{soon.id}/record",
        data={**form, "confirm_early": "true"},
        follow_redirects=False,
    )
    assert confirmed.status_code == 303
    db.expire_all()
    assert db.get(Visit, soon.id).status is VisitStatus.completed  # type: ignore[union-attr]


def test_a_long_name_on_a_bar_chart_is_cut_with_an_ellipsis_and_a_short_one_is_whole() -> None:
    from api.pages.manager.views import bar_chart

    chart = bar_chart([("Joyce Ng (office staff)", 0.82, "82%"), ("Site staff", 0.6, "60%")])
    assert [bar.label for bar in chart.bars] == ["Joyce Ng (of\u2026", "Site staff"]
