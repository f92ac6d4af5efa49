"""A person signs in with their company account: the sign-in page's button, through the
provider (a local one, tests/oidc_provider.py), back signed in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlmodel import select

from tests.e2e.conftest import Screenshot
from tests.oidc_provider import LocalOidcProvider
from welfare.authz import Role
from welfare.sites.models import Site
from welfare.users.models import User


def test_the_company_button_signs_a_guard_in_on_a_phone(
    phone: Any,
    oidc_provider: LocalOidcProvider,
    make_identity_provider: Callable[..., Any],
    reader: Callable[[Any], list[Any]],
    screenshot: Screenshot,
) -> None:
    make_identity_provider(oidc_provider, display_name="Sign in with Acme")
    phone.goto("/login")
    button = phone.get_by_role("link", name="Sign in with Acme")
    assert button.is_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    screenshot(phone, "login-company-phone")
    button.click()
    phone.wait_for_url("**/guard**")
    created = reader(select(User).where(User.email == "li.na@acme.example"))
    assert [u.role for u in created] == [Role.guard]
    phone.goto("/account")
    assert phone.get_by_role("heading", name="Your account").is_visible()


def test_staff_matched_by_email_lands_on_the_console(
    browser: Any,
    live_server: str,
    site: Site,
    make_user: Callable[..., User],
    oidc_provider: LocalOidcProvider,
    make_identity_provider: Callable[..., Any],
    screenshot: Screenshot,
) -> None:
    make_user(Role.staff, [site], email="li.na@acme.example")
    make_identity_provider(oidc_provider, display_name="Sign in with Acme")
    context = browser.new_context(base_url=live_server, viewport={"width": 1366, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        page.goto("/login")
        screenshot(page, "login-company-desktop")
        page.get_by_role("link", name="Sign in with Acme").click()
        page.wait_for_url("**/console**")
        assert page.get_by_role("link", name="Residents").first.is_visible()
    finally:
        context.close()


def test_a_refusal_is_a_clear_page_in_the_browser(
    phone: Any,
    oidc_provider: LocalOidcProvider,
    make_identity_provider: Callable[..., Any],
) -> None:
    make_identity_provider(oidc_provider, display_name="Sign in with Acme")
    oidc_provider.deny = True
    phone.goto("/login")
    phone.get_by_role("link", name="Sign in with Acme").click()
    phone.wait_for_load_state()
    assert "cancelled or refused" in phone.get_by_role("alert").inner_text()
    phone.get_by_role("link", name="Back to sign-in").click()
    phone.wait_for_url("**/login")
