"""A passkey in a real browser: Chromium's virtual authenticator stands in for a phone's."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.conftest import DESKTOP, Screenshot
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.users.models import User


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """WebAuthn refuses an IP address as the relying party: serve the same app as localhost."""
    return settings.model_copy(
        update={"public_base_url": settings.public_base_url.replace("127.0.0.1", "localhost")}
    )


@pytest.fixture
def laptop(browser: Any, live_server: str) -> Iterator[tuple[Any, Any]]:
    """A desktop page with a platform authenticator that verifies its user (a fingerprint)."""
    context = browser.new_context(base_url=live_server, **DESKTOP)
    context.set_default_timeout(10_000)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    authenticator = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )
    yield page, (cdp, authenticator["authenticatorId"])
    context.close()


def test_a_manager_adds_a_passkey_and_signs_in_with_it_without_the_password(
    laptop: tuple[Any, Any],
    make_user: Callable[..., User],
    site: Site,
    sign_in: Callable[..., None],
    screenshot: Screenshot,
) -> None:
    page, (cdp, authenticator_id) = laptop
    manager = make_user("manager", [site], display_name="Duty Manager")
    sign_in(page, manager)
    page.goto("/account")
    add = page.get_by_role("button", name="Add a passkey")
    assert add.is_visible()  # the browser has WebAuthn, so the script shows the control
    page.get_by_label("Name for the new passkey").fill("Office laptop")
    add.click()
    page.wait_for_url("**/account?saved=passkey**")
    assert "Office laptop" in page.locator("#passkeys").inner_text()
    credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})
    assert (
        len(credentials["credentials"]) == 1
        and credentials["credentials"][0]["isResidentCredential"]
    )
    screenshot(page, "account-passkeys")

    page.get_by_role("button", name="Sign out").first.click()
    page.wait_for_url("**/login**")
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.wait_for_url("**/console**")
    assert page.get_by_role("link", name="Duty Manager").is_visible()
    after = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})
    assert after["credentials"][0]["signCount"] >= 1
