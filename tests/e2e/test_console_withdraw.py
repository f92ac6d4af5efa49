"""Office staff withdraw a consent from the console: a confirmation page explains what is
erased, then the resident shows as erased. At a desk and on a 360 px phone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import Session

from tests.conftest import SYSTEM
from tests.e2e.conftest import Screenshot
from welfare.residents.models import Contact, Resident
from welfare.sites.models import Household, Site
from welfare.tags import service as tags
from welfare.users.models import User


@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_staff_withdraws_a_consent_after_reading_what_is_erased(
    device: str,
    request: pytest.FixtureRequest,
    db: Session,
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
    make_contact(resident)
    make_contact(resident, name="Wang Fang", relationship="daughter", phone="9876 5432")
    tags.issue_tag(session=db, actor=SYSTEM, resident_id=resident.id)
    db.commit()
    resident_id = resident.id
    db.expunge_all()
    db.rollback()
    sign_in(page, make_user("staff", [site], display_name="Office Staff"))

    page.goto("/console/residents?q=1609")
    page.get_by_role("link", name="Wang Jianguo").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Wang Jianguo").is_visible()
    assert page.locator("#consent-state").inner_text() == "Consent active"
    if device == "desktop":
        screenshot(page, "console-resident")
    else:
        assert page.evaluate("document.documentElement.scrollWidth") <= 360

    page.get_by_role("link", name="Withdraw…").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Withdraw consent").is_visible()
    erased = page.locator("#what-is-erased")
    assert "This erases the resident's personal data" in erased.inner_text()
    assert "All 2 emergency contacts" in erased.inner_text()
    assert "printed labels stop working" in erased.inner_text()
    if device == "desktop":
        screenshot(page, "console-withdraw")
    else:
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        screenshot(page, "console-withdraw-phone")

    # The box must be ticked: the browser refuses the form without it.
    page.get_by_role("button", name="Withdraw consent").click()
    assert page.url.endswith("/withdraw")
    assert page.get_by_role("heading", name="Withdraw consent").is_visible()
    page.get_by_label("Reason (optional, no personal details)").fill("family asked")
    page.get_by_label("I have read what is erased").check()
    page.get_by_role("button", name="Withdraw consent").click()
    page.wait_for_url(f"**/console/residents/{resident_id}?done=withdrawn*")
    assert page.get_by_role("heading", name="Erased record").is_visible()
    assert page.locator("#consent-state").inner_text() == "Withdrawn"
    assert page.get_by_role("heading", name="Personal data erased").is_visible()
    body = page.locator("main").inner_text()
    assert "Wang Jianguo" not in body and "Wang Fang" not in body and "1-1609" not in body
