"""A person signs in on a phone and changes the language of the pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from welfare.sites.models import Site
from welfare.users.models import User


def test_staff_signs_in_on_a_phone_and_switches_to_chinese(
    phone: Any, make_user: Callable[..., User], site: Site, sign_in: Callable[..., None]
) -> None:
    staff = make_user("staff", [site], display_name="Office Staff")
    sign_in(phone, staff)
    phone.goto("/account")
    assert phone.get_by_role("heading", name="Your account").is_visible()
    # Nothing runs off the side of a 360 px screen.
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    phone.get_by_label("Language of the pages").select_option("zh-CN")
    phone.get_by_role("button", name="Save language").click()
    phone.wait_for_load_state()
    assert phone.get_by_role("heading", name="我的账户").is_visible()
    assert phone.locator("html").get_attribute("lang") == "zh-CN"


def test_wrong_password_is_explained_in_the_page(
    phone: Any, make_user: Callable[..., User], site: Site, sign_in: Callable[..., None]
) -> None:
    guard = make_user("guard", [site])
    sign_in(phone, guard, password="wrong password")
    assert phone.get_by_role("alert").inner_text() == "Wrong username or password."


def test_a_session_signed_out_from_another_device_is_refused_at_once(
    phone: Any,
    desktop: Any,
    make_user: Callable[..., User],
    site: Site,
    sign_in: Callable[..., None],
) -> None:
    """A guard's phone is lost: from the desk, the guard signs that phone out on the account
    page, and the phone's very next request lands on the sign-in page."""
    guard = make_user("guard", [site], display_name="Chan Tai Man")
    sign_in(phone, guard)
    assert phone.url.endswith("/guard")
    sign_in(desktop, guard)
    desktop.goto("/account")
    rows = desktop.locator("table.sessions tbody tr")
    assert rows.count() == 2
    other = rows.filter(has_not=desktop.locator("strong"))  # not "(this device)"
    other.get_by_role("button", name="Sign out").click()
    desktop.wait_for_load_state()
    assert "That device was signed out." in desktop.get_by_role("status").first.inner_text()
    assert desktop.locator("table.sessions tbody tr").count() == 1
    phone.reload()
    assert "/login" in phone.url
    assert phone.get_by_role("heading", name="Sign in").is_visible()
