"""Two-factor sign-in in a real browser: a member of staff whose site requires it is sent to set
it up, scans (here: reads) the key, confirms with a code, keeps the recovery codes, signs out,
and signs in again with the password and a code, then with a recovery code; the code step is
readable on a desktop and on a phone, in English, Chinese and Korean."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pyotp

from tests.conftest import PASSWORD
from tests.e2e.conftest import Screenshot
from welfare.db import utcnow
from welfare.sites.models import Site
from welfare.users.models import User

TAP_MIN = 44


def _password_step(page: Any, user: User, lang: str | None = None) -> None:
    page.goto("/login" + (f"?lang={lang}" if lang else ""))
    page.locator("input[name=username]").fill(user.username)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form[action='/login'] button[type=submit]").click()
    page.wait_for_load_state()


def _sign_out(page: Any) -> None:
    page.locator("form[action='/logout'] button").first.click()
    page.wait_for_url("**/login")


def _small_targets(page: Any) -> list[str]:
    """Visible buttons, fields and the recovery-code toggle shorter than a fingertip."""
    return page.evaluate(
        """(least) => [...document.querySelectorAll('main button, main input:not([type=hidden]),'
            + ' main summary, main a.button')]
          .filter(el => el.offsetParent !== null)
          .filter(el => el.getBoundingClientRect().height < least)
          .map(el => el.outerHTML.slice(0, 80))""",
        TAP_MIN,
    )


def test_staff_sets_up_two_factor_sign_in_and_signs_in_with_a_code_and_a_recovery_code(
    browser: Any,
    live_server: str,
    phone: Any,
    make_site: Callable[..., Site],
    make_user: Callable[..., User],
    screenshot: Screenshot,
) -> None:
    strict = make_site(require_second_factor_staff=True)
    staff = make_user("staff", [strict], display_name="Office Staff")
    context = browser.new_context(base_url=live_server, viewport={"width": 1366, "height": 900})
    context.set_default_timeout(10_000)
    desktop = context.new_page()
    try:
        # A password alone reaches only the enrolment page.
        _password_step(desktop, staff)
        assert desktop.url.endswith("/account/two-factor")
        desktop.goto("/console")
        assert desktop.url.endswith("/account/two-factor")
        desktop.get_by_role("button", name="Set up two-factor sign-in").click()
        desktop.wait_for_load_state()
        assert desktop.get_by_role("img", name="QR code for your authenticator app").is_visible()
        secret = desktop.locator("[data-secret]").inner_text().replace(" ", "")
        app = pyotp.TOTP(secret)
        desktop.get_by_label("Enter the six-digit code from your authenticator app").fill(app.now())
        desktop.get_by_role("button", name="Turn on two-factor sign-in").click()
        desktop.wait_for_load_state()
        assert desktop.get_by_role("heading", name="Recovery codes").is_visible()
        codes = desktop.locator(".recovery-codes code").all_inner_texts()
        assert len(codes) == 10
        desktop.get_by_role("link", name="Continue").click()
        desktop.wait_for_load_state()
        assert desktop.url.endswith("/console")
        _sign_out(desktop)

        # Password, then the code step; no session until the code.
        _password_step(desktop, staff)
        assert desktop.get_by_role("heading", name="Two-factor sign-in").is_visible()
        assert not [c for c in context.cookies() if c["name"] == "welfare_session"]
        screenshot(desktop, "two-factor-code-step-desktop")
        # The enrolment used this time step: the app's next code is the one to type.
        next_code = app.at(utcnow() + dt.timedelta(seconds=30))
        desktop.get_by_label("Enter the six-digit code from your authenticator app").fill(next_code)
        desktop.get_by_role("button", name="Sign in", exact=True).click()
        desktop.wait_for_load_state()
        assert desktop.url.endswith("/console")
        _sign_out(desktop)

        # A recovery code instead of the phone.
        _password_step(desktop, staff)
        desktop.get_by_text("Use a recovery code").click()
        desktop.get_by_label("Recovery code").fill(codes[0])
        desktop.get_by_role("button", name="Sign in with a recovery code").click()
        desktop.wait_for_load_state()
        assert desktop.url.endswith("/console")
    finally:
        context.close()

    # On a phone, in Chinese: the words fit, every target is big enough for a thumb.
    _password_step(phone, staff, lang="zh")
    assert phone.locator("html").get_attribute("lang") == "zh-CN"
    assert phone.get_by_text("输入身份验证器应用中的六位数验证码").is_visible()
    assert phone.get_by_text("使用恢复码").is_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    phone.get_by_text("使用恢复码").click()
    assert _small_targets(phone) == []
    screenshot(phone, "two-factor-code-step-phone-zh")
    phone.locator("input[name=recovery_code]").fill(codes[1])
    phone.locator("input[name=recovery_code]").press("Enter")
    phone.wait_for_load_state()
    assert phone.url.endswith("/console")
    _sign_out(phone)
    _password_step(phone, staff, lang="ko")
    assert phone.get_by_text("인증 앱에 표시된 6자리 코드를 입력하세요").is_visible()
    assert phone.get_by_text("복구 코드 사용").is_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
