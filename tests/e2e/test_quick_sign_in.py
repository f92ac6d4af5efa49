"""Two guards share one phone: each sets a PIN there and the next shift signs in with it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conftest import PASSWORD
from tests.e2e.conftest import Screenshot
from welfare.sites.models import Site
from welfare.users.models import User


def _set_pin(phone: Any, pin: str) -> None:
    phone.goto("/account")
    phone.get_by_role("link", name="Set up quick sign-in").click()
    phone.get_by_label("New PIN (6 to 8 digits)").fill(pin)
    phone.get_by_label("The same PIN again").fill(pin)
    phone.get_by_label("Current password").fill(PASSWORD)
    phone.get_by_role("button", name="Save PIN").click()
    phone.wait_for_load_state()
    assert "PIN saved" in phone.get_by_role("status").first.inner_text()


def _sign_out(phone: Any) -> None:
    phone.get_by_role("button", name="Sign out").first.click()
    phone.wait_for_load_state()


def test_the_next_guard_on_a_shared_phone_taps_their_name_and_types_a_pin(
    phone: Any,
    make_user: Callable[..., User],
    site: Site,
    sign_in: Callable[..., None],
    screenshot: Screenshot,
) -> None:
    day = make_user("guard", [site], display_name="Chan Tai Man")
    night = make_user("guard", [site], display_name="Lee Ka Yan")
    for guard, pin in ((day, "480215"), (night, "730964")):
        sign_in(phone, guard)
        _set_pin(phone, pin)
        _sign_out(phone)
    # Signing out on the shared phone opens the PIN page, with both guards to choose from.
    assert phone.url.endswith("/login/pin")
    assert phone.get_by_role("heading", name="Sign in with your PIN").is_visible()
    phone.get_by_label("Lee Ka Yan").check()
    phone.get_by_label("PIN", exact=True).fill("480215")  # the other guard's PIN
    phone.get_by_role("button", name="Sign in").click()
    phone.wait_for_load_state()
    assert "Wrong PIN. 4 more tries" in phone.get_by_role("alert").inner_text()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    for name in ("Chan Tai Man", "Lee Ka Yan", "Sign in"):
        box = phone.get_by_text(name, exact=True).first.bounding_box()
        assert box is not None and box["height"] >= 44, name  # tap targets for one thumb
    screenshot(phone, "guard-pin-sign-in")
    phone.get_by_label("Lee Ka Yan").check()
    phone.get_by_label("PIN", exact=True).fill("730964")
    phone.get_by_role("button", name="Sign in").click()
    phone.wait_for_load_state()
    assert phone.url.endswith("/guard")
    assert phone.get_by_role("link", name="Lee Ka Yan").is_visible()
