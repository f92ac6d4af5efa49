"""Office staff follow an incident on the board: it appears without a reload, is marked when it
runs late, and its page follows the family's confirmation."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from tests.conftest import SYSTEM
from tests.e2e.conftest import Screenshot
from welfare.incidents import service as incidents
from welfare.incidents.models import Incident, IncidentCreate
from welfare.residents.models import Contact, Resident
from welfare.sites.models import Household, Site
from welfare.users.models import User

WAIT_MS = 8_000  # the board polls every 3 s


# True once the incident page shows what the server has (its own check would not reload it).
SETTLED = """async () => {
  const live = document.getElementById("incident-live");
  if (!live || document.readyState !== "complete") return false;
  const data = await window.welfare.api("GET", live.dataset.url);
  return data.status === live.dataset.status
    && String(data.event_count) === live.dataset.eventCount;
}"""


def wait_until_settled(page: Any) -> None:
    """The incident page reloads itself when the timeline grows (the console channel reports
    statuses a second or two after sending). Wait until what it shows is what the server has,
    so a form is not filled in just before a reload."""
    deadline = time.monotonic() + 10
    while True:
        left_ms = max(deadline - time.monotonic(), 0.1) * 1000
        try:
            page.wait_for_function(SETTLED, polling=250, timeout=left_ms)
            return
        except PlaywrightTimeoutError as error:
            raise AssertionError("the incident page kept changing") from error
        except PlaywrightError as error:
            if "navigation" not in str(error) and "context was destroyed" not in str(error):
                raise
            # It reloaded while being checked: check the new page.


@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_staff_follow_a_found_report_on_the_board_and_the_incident_page(
    device: str,
    request: pytest.FixtureRequest,
    db: Session,
    writers: sessionmaker[Session],
    make_user: Callable[..., User],
    site: Site,
    make_household: Callable[..., Household],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
    sign_in: Callable[..., None],
    screenshot: Screenshot,
) -> None:
    page = request.getfixturevalue(device)
    resident = make_resident(household=make_household(building="1", unit="1609"))
    make_consent(resident)
    son = make_contact(resident)
    resident_id, son_id = resident.id, son.id
    db.expunge_all()
    db.rollback()
    sign_in(page, make_user("staff", [site], display_name="Office Staff"))
    page.goto("/console")
    assert page.get_by_role("heading", name="Open incidents").is_visible()
    assert page.get_by_text("No open incidents.").is_visible()

    # A guard reports Mr. Wang found: the board shows it without anyone reloading.
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(
            resident_id=resident_id, client_request_id=uuid.uuid4().hex, location="3/F meter room"
        ),
    )
    db.commit()
    incident: Incident = opened.incident
    reference, incident_id = incident.reference, incident.id
    db.expunge_all()
    db.rollback()
    row = page.locator("#board tbody tr", has_text=reference)
    row.wait_for(timeout=WAIT_MS)
    assert "Mr. Wang" in row.inner_text() and "1-1609" in row.inner_text()
    assert "overdue" not in (row.get_attribute("class") or "")
    if device == "desktop":
        screenshot(page, "console-board")
    else:
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        screenshot(page, "console-board-phone")

    page.get_by_role("link", name=reference).click()
    wait_until_settled(page)
    assert page.get_by_role("heading", name=f"Incident {reference}").is_visible()
    assert "3/F meter room" in page.locator("main").inner_text()
    contacts = page.locator("table.contacts")
    assert "Wang Lei" in contacts.inner_text()
    if device == "phone":
        assert page.evaluate("document.documentElement.scrollWidth") <= 360

    # The son presses 1 on the call: the page follows by itself. Written like a webhook
    # request (BEGIN IMMEDIATE), since the live server's worker may be writing just then.
    with writers() as session:
        stored = session.get(Incident, incident_id)
        assert stored is not None
        incidents.confirm(session=session, incident=stored, via="keypress", contact_id=son_id)
        session.commit()
    page.locator("#incident-status", has_text="Confirmed").wait_for(timeout=WAIT_MS)
    assert page.get_by_text("Confirmed: someone is coming").is_visible()
    assert "Coming" in page.locator("tr.confirmed").inner_text()
    if device == "desktop":
        screenshot(page, "console-incident")

    # Staff record the hand-over and close it; the board is empty again.
    wait_until_settled(page)
    page.get_by_label("Outcome").select_option("handed_over")
    page.get_by_label("Handed to (name and relationship)").fill("son, Wang Lei")
    page.get_by_role("button", name="Resolve incident").click()
    page.wait_for_load_state()
    assert page.get_by_text("Incident resolved.").is_visible()
    page.goto("/console")
    assert page.get_by_text("No open incidents.").is_visible()


def test_staff_send_an_sms_now_and_record_reached_by_phone(
    desktop: Any,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
    sign_in: Callable[..., None],
) -> None:
    resident = make_resident()
    make_consent(resident)
    make_contact(resident)
    # Every row this test writes goes in before the incident opens: from then on the live
    # server's worker is writing, and a deferred SQLite transaction that reads, then writes
    # after another commit fails at once ("database is locked"), busy timeout or not.
    staff = make_user("staff", [site])
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(resident_id=resident.id, client_request_id=uuid.uuid4().hex),
    )
    db.commit()
    incident_id = opened.incident.id
    db.expunge_all()
    db.rollback()
    sign_in(desktop, staff)
    desktop.goto(f"/console/incidents/{incident_id}")
    wait_until_settled(desktop)
    desktop.get_by_role("button", name="SMS now").click()
    desktop.wait_for_load_state()
    assert desktop.get_by_text("Message queued. Its status appears below.").is_visible()
    assert "sent by staff" in desktop.locator("table.timeline").inner_text()
    wait_until_settled(desktop)
    desktop.once("dialog", lambda dialog: dialog.accept())
    desktop.get_by_role("button", name="Reached by phone").click()
    desktop.wait_for_load_state()
    assert desktop.locator("#incident-status").inner_text() == "Confirmed"
    assert desktop.get_by_role("button", name="SMS now").count() == 0
