"""The passer-by who finds him (issue 20), as a stranger at 360 px with no sign-in: scan, share
the location (granted in the browser with a fixed position) and a message; the office board, a
guard's alert and, under the finder_alerts consent, the family's SMS (console channel) get it;
the finder's page says the family has been told; the son taps "coming" on his answer link; the
finder's page says someone is on the way. Screenshots of the finder page in English and
Chinese."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlmodel import Session, select

from notifications.dispatcher import render
from tests.conftest import ALL_SCOPES, SYSTEM, TEST_SECRET
from tests.e2e.conftest import PHONE, Screenshot
from tests.e2e.test_answer_link import _check_layout
from welfare.channels import ChannelKind
from welfare.db import utcnow
from welfare.incidents import answer_links
from welfare.incidents.models import Incident
from welfare.outbox.models import OutboxMessage
from welfare.residents.models import Contact, Resident
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.tags import service as tags
from welfare.users.models import User

WHERE = {"latitude": 22.28012, "longitude": 114.15013}
MAP = "https://maps.google.com/?q=22.28012,114.15013"
# The page reloads itself every 8 seconds; the worker sends within a second or two.
SELF_UPDATE_MS = 25_000


def _finder_context(browser: Any, live_server: str, locale: str) -> Any:
    context = browser.new_context(
        base_url=live_server,
        locale=locale,
        geolocation=WHERE,
        permissions=["geolocation"],
        **PHONE,
    )
    context.set_default_timeout(10_000)
    return context


def test_a_stranger_reports_where_he_is_and_sees_help_coming(
    browser: Any,
    live_server: str,
    settings: Settings,
    db: Session,
    reader: Callable[[Any], list[Any]],
    site: Site,
    make_household: Callable[..., Any],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
    make_user: Callable[..., User],
    sign_in: Callable[..., None],
    screenshot: Screenshot,
) -> None:
    resident = make_resident(
        make_household("1", "1609"),
        public_care_tips="May be confused\nSpeaks Mandarin\nCalm him by talking about his grandson",
    )
    make_consent(resident, scopes=[*ALL_SCOPES, "finder_alerts", "public_care_tips"])
    son = make_contact(resident, name="Wang Lei", relationship="son", language="zh-CN")
    code = tags.issue_tag(session=db, actor=SYSTEM, resident_id=resident.id).code
    guard = make_user("guard", [site], phone="9345 1609")
    guard.on_duty_since = utcnow()
    db.add(guard)
    site.voice_number = "+85223001234"
    db.add(site)
    db.commit()
    staff = make_user("staff", [site])

    finder = _finder_context(browser, live_server, "en-GB")
    page = finder.new_page()
    elsewhere: list[str] = []
    page.on(
        "request",
        lambda request: (
            None if request.url.startswith(live_server) else elsewhere.append(request.url)
        ),
    )
    page.goto(f"/t/{code}")
    page.get_by_role("heading", name="Please stay with this person").wait_for()
    main = page.locator("main").inner_text()
    assert "In danger or injured? Call 999 first." in main
    assert "Their name: Mr. Wang" in main and "Speaks Mandarin" in main
    assert "1609" not in main and "Alzheimer" not in main
    assert page.locator("a[href='tel:+85223001234']").count() == 1
    _check_layout(page)
    screenshot(page, "finder-en")
    page.get_by_role("button", name="Share my location").click()
    page.get_by_text("Your location will be sent with the report.").wait_for()
    page.get_by_label("A short message (optional)").fill("He is on the bench by the bus stop")
    page.get_by_role("button", name="Alert the office").click()
    page.locator("[data-progress=office]").wait_for()
    _check_layout(page)

    (incident,) = reader(select(Incident))
    assert incident.public_finder and (incident.latitude, incident.longitude) == (
        22.28012,
        114.15013,
    )

    # The office board shows it at once, with the map link.
    office = browser.new_context(base_url=live_server, viewport={"width": 1280, "height": 900})
    desk = office.new_page()
    sign_in(desk, staff)
    desk.goto("/console")
    row = desk.locator(f"tr[data-id='{incident.id}']")
    row.get_by_text("Found by a member of the public").wait_for()
    assert row.locator("[data-map-link]").get_attribute("href") == MAP
    office.close()

    # The guard on duty: an SMS pointing at the alert, and the alert shows the map link.
    guard_phone = browser.new_context(base_url=live_server, **PHONE)
    alert_page = guard_phone.new_page()
    sign_in(alert_page, guard)
    alert_page.goto(f"/guard/alerts/{incident.id}")
    alert_page.locator("[data-found-by-public]").wait_for()
    assert alert_page.locator("[data-map-link]").get_attribute("href") == MAP
    guard_phone.close()
    to_guard = reader(
        select(OutboxMessage).where(
            OutboxMessage.incident_id == incident.id, OutboxMessage.user_id == guard.id
        )
    )
    assert [m.template for m in to_guard] == ["finder_alert"]

    # The family is told (the console channel sends the son's SMS, with the map link)...
    page.locator("[data-progress=family_told]").wait_for(timeout=SELF_UPDATE_MS)
    (sms,) = reader(
        select(OutboxMessage).where(
            OutboxMessage.incident_id == incident.id,
            OutboxMessage.contact_id == son.id,
            OutboxMessage.kind == ChannelKind.sms,
        )
    )
    text = render(db, sms, settings).body  # type: ignore[union-attr]
    db.commit()
    assert MAP in text and "/r/" in text and "Wang" not in text

    # ... the son taps "coming" on his answer link ...
    token = answer_links.token_for(
        db, incident_id=incident.id, contact_id=son.id, secret_key=TEST_SECRET
    )
    db.commit()
    family = browser.new_context(base_url=live_server, **PHONE)
    son_page = family.new_page()
    son_page.goto(f"/r/{token}?lang=en")
    son_page.get_by_role("button", name="I'm coming").click()
    son_page.locator("[data-answered=coming]").wait_for()
    family.close()

    # ... and the finder's page says someone is on the way, by itself.
    page.locator("[data-progress=on_the_way]").wait_for(timeout=SELF_UPDATE_MS)
    assert "Someone is on the way" in page.locator("main").inner_text()
    _check_layout(page)
    screenshot(page, "finder-status-en")
    assert elsewhere == []
    finder.close()

    chinese = _finder_context(browser, live_server, "zh-CN")
    page = chinese.new_page()
    page.goto(f"/t/{code}")
    page.get_by_role("heading", name="请陪伴此人").wait_for()
    _check_layout(page)
    screenshot(page, "finder-zh")
    chinese.close()
