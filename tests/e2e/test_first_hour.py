"""A new user's first hour on the demo data, per role, in Chromium: the guard at 360 x 740, staff
and the manager at 1366 x 900. Each step is something a first-time user hit before: a card that
did not say how to recognise someone, a printed code that did not work when typed, a console
that could not raise a missing alert, a timeline in codes, reports with nothing to show.
"""

from __future__ import annotations

import re
from typing import Any

from sqlmodel import Session, col, select

from tests.e2e.conftest import Screenshot
from welfare.demo import DEMO_USERS, seed_demo
from welfare.incidents.models import Incident
from welfare.residents.models import Resident
from welfare.settings import Settings
from welfare.tags.models import ResidentTag
from welfare.visits.models import VisitSchedule

PASSWORDS = {user.username: user.password for user in DEMO_USERS}
RAW_CODES = re.compile(r"\b(public_report|visit_concern|report_repeated|[a-z]+\.[a-z_]+)\b")


def _seed(db: Session, settings: Settings) -> None:
    seed_demo(db, settings=settings)
    db.commit()


def _sign_in(page: Any, username: str) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORDS[username])
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_load_state()


def test_the_guard_recognises_mr_wang_and_finds_him_by_the_typed_code(
    phone: Any, db: Session, settings: Settings, screenshot: Screenshot
) -> None:
    _seed(db, settings)
    wang_id = db.exec(select(Resident.id).where(Resident.preferred_name == "Mr. Wang")).one()
    code = db.exec(
        select(ResidentTag.code).where(
            ResidentTag.resident_id == wang_id, col(ResidentTag.revoked_at).is_(None)
        )
    ).one()
    db.commit()  # the writer's lock is released before the app is used
    _sign_in(phone, "guard")
    phone.goto("/guard/search?q=grey+coat")
    highlighted = phone.locator("mark").all_inner_texts()
    assert "grey" in highlighted and "coat" in highlighted
    phone.locator("a[href^='/guard/residents/']").first.click()
    phone.wait_for_load_state()
    card = phone.locator("main").inner_text()
    for words in ("Height", "Clothing", "Walking aid", "walking stick", "Illustration"):
        assert words in card, words
    assert phone.locator("h1").count() == 1
    emergency = phone.locator("a[href^='tel:999']").bounding_box()
    assert emergency and emergency["width"] >= 44 and emergency["height"] >= 44
    screenshot(phone, "first-hour-guard-card")
    # The code printed under the QR, typed as a person would: lower case, spaces, an O for a 0.
    typed = code.lower().replace("-", " ").replace("0", "o")
    phone.goto("/guard/scan")
    phone.locator("input[name=code]").fill(typed)
    phone.locator("form:has(input[name=code]) button[type=submit]").click()
    phone.wait_for_load_state()
    assert "Mr. Wang" in phone.locator("main").inner_text()


def test_staff_preview_a_missing_alert_and_read_a_past_timeline_in_words(
    desktop: Any, db: Session, settings: Settings, screenshot: Screenshot
) -> None:
    _seed(db, settings)
    wang_id = db.exec(select(Resident.id).where(Resident.preferred_name == "Mr. Wang")).one()
    past_id = db.exec(
        select(Incident.id)
        .where(col(Incident.closed_at).is_not(None))
        .order_by(col(Incident.opened_at))
    ).first()
    db.commit()
    assert past_id is not None  # the demo's history
    _sign_in(desktop, "staff")
    desktop.goto(f"/console/residents/{wang_id}")
    desktop.locator("#report-missing").click()
    desktop.wait_for_load_state()
    preview = desktop.locator("main").inner_text()
    assert "What guards will see" in preview and "Mr. Wang" in preview
    screenshot(desktop, "first-hour-staff-missing-preview")
    desktop.goto(f"/console/incidents/{past_id}")
    timeline = desktop.locator("table").last.inner_text()
    assert "Reported" in timeline
    assert not RAW_CODES.search(timeline), RAW_CODES.search(timeline)


def test_the_manager_sees_real_shapes_in_the_reports_and_a_schedules_coming_visits(
    desktop: Any, db: Session, settings: Settings, screenshot: Screenshot
) -> None:
    _seed(db, settings)
    schedule_id = db.exec(
        select(VisitSchedule.id).where(col(VisitSchedule.active).is_(True))
    ).first()
    db.commit()
    assert schedule_id is not None
    _sign_in(desktop, "manager")
    desktop.goto("/manage/reports")
    figure = desktop.locator(".big-figure").inner_text()
    done, due = map(int, re.search(r"(\d+) of (\d+) due", figure).groups())  # type: ignore[union-attr]
    assert due > 0 and 0 < done <= due
    assert desktop.locator("svg.bar-chart rect.bar").count() > 0
    screenshot(desktop, "first-hour-manager-reports")
    desktop.goto(f"/manage/schedules/{schedule_id}")
    coming = desktop.get_by_role("heading", name="Coming visits")
    assert coming.is_visible()
    section = desktop.locator("main").inner_text().split("Coming visits", 1)[1]
    assert re.search(r"\d{4}-\d{2}-\d{2}|\b\d{1,2}:\d{2}\b", section), section[:300]
