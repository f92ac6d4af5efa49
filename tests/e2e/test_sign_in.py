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
