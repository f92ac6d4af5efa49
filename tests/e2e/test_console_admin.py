"""Admins manage users and managers read the access audit, at a desk and on a phone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import Screenshot
from welfare.residents.models import Resident
from welfare.sites.models import Site
from welfare.users.models import User


@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_admin_adds_a_guard_and_a_manager_reads_the_audit(
    device: str,
    request: pytest.FixtureRequest,
    make_user: Callable[..., User],
    site: Site,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    sign_in: Callable[..., None],
    screenshot: Screenshot,
) -> None:
    page = request.getfixturevalue(device)
    resident = make_resident(full_name="Park Mi-ja", preferred_name="Mrs. Park")
    make_consent(resident)
    resident_id = resident.id
    sign_in(page, make_user("admin", [site], display_name="Admin"))
    page.goto("/console/users")
    page.get_by_label("Username").fill("guard-chan")
    page.get_by_label("Name shown to others").fill("Chan Tai Man")
    page.get_by_label("Role").select_option("guard")
    page.get_by_label(site.name).check()
    page.get_by_label("First password (at least 10 characters)").fill("a long first secret")
    page.get_by_role("button", name="Add user").click()
    page.wait_for_load_state()
    assert page.get_by_text("User added.").is_visible()
    page.goto("/console/users")
    assert page.get_by_role("link", name="guard-chan").is_visible()
    if device == "desktop":
        screenshot(page, "console-users")
    else:
        assert page.evaluate("document.documentElement.scrollWidth") <= 360

    manager = make_user("manager", [site], username=f"manager-{device}")
    page.context.clear_cookies()
    sign_in(page, manager)
    page.goto(f"/console/residents/{resident_id}")
    page.goto("/console/audit")
    page.get_by_label("Resident (name or unit)").fill("Park")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_load_state()
    assert page.get_by_text("Showing entries about: Park Mi-ja").is_visible()
    assert "Read the full record" in page.locator("table.audit").inner_text()
    page.get_by_role("button", name="Check the chain now").click()
    page.wait_for_load_state()
    assert page.get_by_text("The chain is intact").is_visible()
    if device == "desktop":
        screenshot(page, "console-audit")
    else:
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
