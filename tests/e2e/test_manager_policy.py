"""A manager turns off "move on at once when a call is missed" on the escalation-policy page in a
desktop browser, sees it saved in words, and a Chinese-reading manager reads the page in Chinese."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlmodel import Session, select

from tests.e2e.conftest import Screenshot
from welfare.incidents.models import EscalationPolicy
from welfare.residents.models import Resident
from welfare.sites.models import Site
from welfare.users.models import User

WIDE = {"width": 1366, "height": 900}  # a common office laptop


def test_a_manager_turns_off_advance_on_miss_and_reads_it_back(
    desktop: Any,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    make_resident: Callable[..., Resident],
    sign_in: Callable[..., None],
    screenshot: Screenshot,
) -> None:
    desktop.set_viewport_size(WIDE)
    manager = make_user("manager", [site], display_name="Mei Manager")
    sign_in(desktop, manager)
    desktop.goto("/manage/visits")
    desktop.get_by_role("link", name="Escalation policy").click()
    box = desktop.get_by_label(
        "Move to the next contact at once when a call goes to voicemail or is not answered"
    )
    assert box.is_checked()
    desktop.get_by_label("Wait for each contact before trying the next (seconds)").fill("90")
    box.uncheck()
    desktop.get_by_role("button", name="Save policy").click()
    desktop.wait_for_load_state()
    assert desktop.get_by_role("status").inner_text().startswith("Policy saved.")
    assert "waits the full time before the next contact" in desktop.content()
    assert not box.is_checked()
    db.expire_all()
    row = db.exec(select(EscalationPolicy).where(EscalationPolicy.site_id == site.id)).one()
    assert row.settings["advance_on_miss"] is False
    assert row.settings["contact_interval_seconds"] == 90
    screenshot(desktop, "manager-policy-en")


def test_a_chinese_reading_manager_sees_the_policy_page_in_chinese(
    desktop: Any,
    site: Site,
    make_user: Callable[..., User],
    sign_in: Callable[..., None],
    screenshot: Screenshot,
) -> None:
    desktop.set_viewport_size(WIDE)
    sign_in(desktop, make_user("manager", [site], language="zh-CN"))
    desktop.goto("/manage/policy")
    assert desktop.get_by_role("heading", level=1).inner_text() == "升级规则"
    screenshot(desktop, "manager-policy-zh")
