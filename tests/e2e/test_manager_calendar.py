"""A manager opens the week calendar, records a visit outcome and sees it in the report, on a
desktop (the week as 7 columns) and on a 360 px phone (the week as a day list)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session

from tests.conftest import SYSTEM
from tests.e2e.conftest import Screenshot
from welfare.db import utcnow
from welfare.incidents.models import Incident
from welfare.residents.models import Resident
from welfare.sites.models import Site
from welfare.users.models import User
from welfare.visits import service as visits
from welfare.visits.models import ScheduleCreate, Visit, VisitOutcome, VisitStatus


def _seed(
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
) -> tuple[User, Visit]:
    manager = make_user("manager", [site], display_name="Mei Manager")
    staff = make_user("staff", [site], display_name="Ada Staff")
    other = make_user("staff", [site], display_name="Ben Staff")
    residents = []
    for full, preferred in [("Wang Jianguo", "Mr. Wang"), ("Chan Siu Ling", "Mrs. Chan")]:
        resident = make_resident(full_name=full, preferred_name=preferred)
        make_consent(resident)
        residents.append(resident)
    schedules = [
        visits.create_schedule(
            session=db,
            actor=SYSTEM,
            data=ScheduleCreate(
                resident_id=resident.id,
                kind=kind,
                rrule=rule,
                window_start=dt.time(hour),
                window_end=dt.time(hour + 1),
                start_date=utcnow().date() - dt.timedelta(days=60),
                assignee_user_id=assignee.id,
            ),
        )
        for resident, kind, rule, hour, assignee in [
            (residents[0], "home_visit", "FREQ=WEEKLY;BYDAY=MO,TH", 10, staff),
            (residents[1], "phone_checkin", "FREQ=DAILY;INTERVAL=2", 15, other),
        ]
    ]
    db.commit()
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    zone = ZoneInfo(site.timezone)
    # The past weeks: some done, some missed, so the report has figures to draw.
    for days_ago in range(1, 29, 3):
        for schedule, assignee in ((schedules[0], staff), (schedules[1], other)):
            status = VisitStatus.missed if days_ago % 4 == 0 else VisitStatus.completed
            day = now.astimezone(zone).date() - dt.timedelta(days=days_ago)
            hour = 10 if schedule is schedules[0] else 15
            start = dt.datetime.combine(day, dt.time(hour), zone).astimezone(dt.UTC)
            db.add(
                Visit(
                    schedule_id=schedule.id,
                    site_id=site.id,
                    resident_id=schedule.resident_id,
                    kind=schedule.kind,
                    assignee_user_id=assignee.id,
                    window_start=start,
                    window_end=start + dt.timedelta(hours=1),
                    status=status,
                    outcome=VisitOutcome.well if status == VisitStatus.completed else None,
                    recorded_at=start if status == VisitStatus.completed else None,
                )
            )
    due = Visit(
        schedule_id=schedules[0].id,
        site_id=site.id,
        resident_id=residents[0].id,
        kind=schedules[0].kind,
        assignee_user_id=staff.id,
        window_start=now,
        window_end=now + dt.timedelta(hours=1),
    )
    db.add(due)
    # Incidents over the last months, closed, for the response-time charts.
    for months_ago in range(5):
        for n in range(3):
            opened = now - dt.timedelta(days=30 * months_ago + 2 + n * 5)
            db.add(
                Incident(
                    site_id=site.id,
                    kind="welfare_concern",
                    reference=f"W-{months_ago}{n}",
                    status="resolved",
                    opened_at=opened,
                    first_sent_at=opened + dt.timedelta(seconds=20 + 15 * n + 5 * months_ago),
                    confirmed_at=opened + dt.timedelta(minutes=4 + 3 * n + months_ago),
                    handed_over_at=opened + dt.timedelta(minutes=25 + 10 * n - 2 * months_ago),
                    closed_at=opened + dt.timedelta(hours=2),
                )
            )
    db.commit()
    db.refresh(due)
    db.expunge(due)
    # The refresh began a transaction, which holds the write lock: end it, by a commit (a
    # rollback would expire `manager`, and touching it would open another).
    db.commit()
    return manager, due


@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_a_manager_records_a_visit_from_the_week_and_sees_the_report(
    device: str,
    request: pytest.FixtureRequest,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    sign_in: Callable[..., None],
    screenshot: Screenshot,
) -> None:
    manager, due = _seed(db, site, make_user, make_resident, make_consent)
    page = request.getfixturevalue(device)
    width = 360 if device == "phone" else 1280
    suffix = "-phone" if device == "phone" else ""
    sign_in(page, manager)

    page.goto("/manage/visits")
    assert page.get_by_role("heading", name="Visits", exact=True).is_visible()
    columns = page.eval_on_selector(".week", "e => getComputedStyle(e).gridTemplateColumns")
    assert len(columns.split()) == (1 if device == "phone" else 7), columns
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    screenshot(page, f"manager-calendar-week{suffix}")

    entry = page.locator(f'a.visit-entry[href="/manage/visits/{due.id}"]')
    entry.click()
    page.wait_for_load_state()
    page.get_by_role("radio", name="Concern", exact=True).check()
    page.get_by_label("Notes").fill("Seemed confused; fridge empty.")
    page.get_by_role("button", name="Save the outcome").click()
    page.wait_for_load_state()
    assert page.get_by_role("status").filter(has_text="Outcome recorded.").is_visible()
    assert page.get_by_role("link", name="Open the incident").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= width

    page.goto("/manage/visits?view=month")
    assert page.locator("table.month").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    screenshot(page, f"manager-calendar-month{suffix}")

    page.goto("/manage/reports")
    assert page.get_by_role("heading", name="Visit completion").is_visible()
    assert page.locator("svg.bar-chart").first.is_visible()
    assert page.locator("svg.line-chart").count() == 3
    assert (
        page.get_by_role("cell", name="Ada Staff").count()
        + page.get_by_role("rowheader", name="Ada Staff").count()
        >= 1
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    screenshot(page, f"manager-reports{suffix}")


def test_the_rule_builder_shows_only_the_chosen_preset_on_a_phone(
    phone: Any,
    site: Site,
    make_user: Callable[..., User],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    sign_in: Callable[..., None],
    screenshot: Screenshot,
) -> None:
    make_consent(make_resident())
    sign_in(phone, make_user("manager", [site]))
    phone.goto("/manage/schedules/new")
    every = phone.locator('input[name="every_days"]')
    weekday = phone.locator('input[name="weekdays"][value="MO"]')
    assert weekday.is_visible() and not every.is_visible()
    phone.get_by_label("Every N days").check()
    assert every.is_visible() and not weekday.is_visible()
    phone.get_by_label("Every how many days").fill("0")
    phone.get_by_label("Resident").select_option(label="Mr. Wang")
    # The browser's own min= check would stop the form; the server's answer is what is tested.
    phone.evaluate("document.querySelector('input[name=every_days]').removeAttribute('min')")
    phone.get_by_role("button", name="Save schedule").click()
    phone.wait_for_load_state()
    assert phone.get_by_role("alert").inner_text() == "Give a number of days from 1 to 365."
    assert every.is_visible() and every.input_value() == "0"  # kept, and its preset still shown
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    screenshot(phone, "manager-schedule-form-phone")
