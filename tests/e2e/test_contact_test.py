"""Testing a family contact in a browser (issue 15 item 5): staff click "Send test SMS" on the
resident's page, the console channel prints the SMS with its link as `welfare demo` does, the
son opens the link on his phone, and the resident's page then shows him verified."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from notifications import runtime
from tests.e2e.conftest import PHONE
from welfare.residents.models import Contact, Resident
from welfare.sites.models import Site
from welfare.users.models import User

LINK = re.compile(r"http://127\.0\.0\.1:\d+/v/[A-Za-z0-9_-]{16}")


@pytest.fixture
def printed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """What the console channel prints, as in `welfare demo` (set up before the live server
    builds its dispatcher)."""
    blocks: list[str] = []
    build = runtime.dispatcher

    def showing(*args: Any, **kwargs: Any) -> Any:
        return build(*args, **{**kwargs, "show_sends": True})

    monkeypatch.setattr(runtime, "print_to_terminal", blocks.append)
    monkeypatch.setattr(runtime, "dispatcher", showing)  # what the app's worker_jobs builds
    yield blocks


def _printed_link(blocks: list[str], timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for block in blocks:
            found = LINK.search(block)
            if found:
                return found.group(0)
        time.sleep(0.05)  # the worker sends on its own thread; nothing to wait on but the list
    raise AssertionError(f"no test link printed: {blocks}")


def test_staff_send_a_test_sms_and_the_tapped_link_shows_the_contact_verified(
    printed: list[str],
    browser: Any,
    desktop: Any,
    live_server: str,
    site: Site,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
    make_user: Callable[..., User],
    sign_in: Callable[..., None],
) -> None:
    resident = make_resident()
    make_consent(resident)
    make_contact(resident, name="Wang Lei", relationship="son", phone="9123 4567")
    sign_in(desktop, make_user("staff", [site], display_name="Office Staff"))
    desktop.goto(f"/console/residents/{resident.id}")
    contacts = desktop.locator("#contacts")
    contacts.get_by_text("Never verified").wait_for()
    contacts.get_by_role("button", name="Send test SMS").click()
    desktop.get_by_text("Test SMS sent.").wait_for()

    link = _printed_link(printed)
    assert "Wang" not in " ".join(printed)  # the SMS names nobody
    son = browser.new_context(**PHONE)
    phone = son.new_page()
    phone.goto(link)
    phone.locator("[data-verified=yes]").wait_for()
    assert "Harbour View Gardens" in phone.locator("main").inner_text()
    son.close()

    desktop.goto(f"/console/residents/{resident.id}")
    contacts.locator("[data-verified=yes]").wait_for()
    assert "Verified on" in contacts.inner_text()
    assert contacts.get_by_text("Never verified").count() == 0
