"""The brief's case on a guard's phone: scan the tag, report found, watch the son confirm by
keypress, hand over; a report made without signal is queued with its photo and sent once (the
console then shows the photo); the public page shows nothing personal."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw
from sqlmodel import Session, select
from twilio.request_validator import RequestValidator

from tests.conftest import SYSTEM
from tests.e2e.conftest import Screenshot
from welfare.channels import ChannelKind
from welfare.incidents import service as incidents
from welfare.incidents.models import Incident, IncidentCreate, IncidentKind
from welfare.outbox.models import OutboxMessage
from welfare.residents import service as residents
from welfare.residents.models import Contact, Resident
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.tags import service as tags
from welfare.users.models import User

TOKEN = "twilio-auth-token-for-browser-tests"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The console channel still sends; an auth token lets signed webhooks in."""
    return settings.model_copy(update={"twilio_auth_token": TOKEN})


@dataclass
class Wang:
    resident: Resident
    son: Contact
    code: str


def portrait() -> bytes:
    image = Image.new("RGB", (480, 480), (214, 226, 236))
    draw = ImageDraw.Draw(image)
    draw.ellipse((150, 80, 330, 280), fill=(233, 196, 160))
    draw.rectangle((110, 300, 370, 480), fill=(90, 100, 120))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture
def wang(
    db: Session,
    settings: Settings,
    make_household: Callable[..., Any],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> Wang:
    resident = make_resident(make_household("1", "1609"), languages=["zh-CN", "yue"])
    make_consent(resident)
    son = make_contact(resident)
    make_contact(resident, name="Wang Mei", relationship="daughter", phone="6123 4567")
    residents.set_photo(
        session=db, actor=SYSTEM, settings=settings, resident_id=resident.id, data=portrait()
    )
    code = tags.issue_tag(session=db, actor=SYSTEM, resident_id=resident.id).code
    db.commit()
    return Wang(resident, son, code)


Reader = Callable[[Any], list[Any]]


def incidents_in(reader: Reader) -> list[Incident]:
    return reader(select(Incident))


# True once an <img> has loaded and drawn (waited for with page.wait_for_function).
IMAGE_DRAWN = "(img) => img.complete && img.naturalWidth > 0"


def press_one(base_url: str, call: OutboxMessage) -> httpx.Response:
    """The son presses 1: Twilio's Gather action, signed for the public URL."""
    path = f"/webhooks/twilio/gather?message_id={call.id}&attempt=1"
    form = {"CallSid": call.provider_id or "", "Digits": "1", "AccountSid": "AC" + "0" * 32}
    signature = RequestValidator(TOKEN).compute_signature(base_url + path, form)
    return httpx.post(
        base_url + path, data=form, headers={"X-Twilio-Signature": signature}, timeout=5
    )


def test_guard_scans_reports_found_and_sees_the_son_confirm(
    phone: Any,
    live_server: str,
    reader: Reader,
    make_user: Callable[..., User],
    site: Site,
    sign_in: Callable[..., None],
    wang: Wang,
    screenshot: Screenshot,
) -> None:
    guard = make_user("guard", [site], display_name="Guard Chan")
    sign_in(phone, guard)
    assert phone.get_by_text("You are off duty").is_visible()
    phone.get_by_role("button", name="Go on duty").click()
    phone.wait_for_load_state()
    assert phone.get_by_text("You are on duty").is_visible()
    screenshot(phone, "guard-home")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360

    phone.goto(f"/t/{wang.code}")
    assert phone.get_by_role("heading", name="Mr. Wang").is_visible()
    assert phone.get_by_text("Talk about his grandson.").is_visible()
    screenshot(phone, "guard-card")

    phone.get_by_role("link", name="Found: call the family").click()
    phone.get_by_label("Injured").check()
    assert phone.get_by_text("Call an ambulance first").is_visible()
    assert phone.get_by_role("link", name="Call 999").get_attribute("href") == "tel:999"
    phone.get_by_label("Distressed or confused").check()
    assert not phone.get_by_text("Call an ambulance first").is_visible()
    phone.get_by_label("Where are you?").fill("Building 1, 3rd floor, meter box")
    screenshot(phone, "guard-found")
    phone.get_by_role("button", name="Send: call the family now").click()
    phone.wait_for_url("**/guard/incidents/*")

    [incident] = incidents_in(reader)
    assert incident.location == "Building 1, 3rd floor, meter box"
    assert incident.condition.value == "distressed"
    son_row = phone.locator(f'[data-contact-id="{wang.son.id}"]')
    # The console channel "calls" the son at once; the page follows without a reload.
    son_row.get_by_text("Calling").or_(son_row.get_by_text("No answer")).first.wait_for()

    # The call is recorded as handed over (its provider SID stored), as the app tells it.
    phone.wait_for_function(
        """async ([incident, son]) => (await window.welfare.api("GET", "/api/v1/incidents/" +
            incident)).notifications.some((n) => n.contact_id === son && n.channel === "voice"
            && n.status === "sent")""",
        arg=[str(incident.id), str(wang.son.id)],
        polling=200,
    )
    [call] = reader(
        select(OutboxMessage).where(
            OutboxMessage.contact_id == wang.son.id, OutboxMessage.kind == ChannelKind.voice
        )
    )
    assert call.provider_id
    assert press_one(live_server, call).status_code == 200
    status = phone.locator("#incident-status")
    status.get_by_text("son is coming").wait_for(timeout=8000)
    assert son_row.get_by_text("Confirmed: coming").is_visible()
    screenshot(phone, "guard-incident")

    phone.get_by_label("Handed to (who took the person)").fill("his son")
    phone.get_by_role("button", name="Record the hand-over").click()
    phone.get_by_text("Handed over to his son.").wait_for()
    [closed] = incidents_in(reader)
    assert closed.status.value == "resolved" and closed.handed_to == "his son"


COUNT_QUEUED_PHOTOS = """() => new Promise((resolve) => {
  const opening = indexedDB.open("welfare.photos.v1", 1);
  opening.onsuccess = () => {
    const request = opening.result.transaction("photos").objectStore("photos").count();
    request.onsuccess = () => { opening.result.close(); resolve(request.result); };
  };
})"""


def test_a_report_made_without_signal_is_queued_with_its_photo_and_sent_once(
    phone: Any,
    desktop: Any,
    reader: Reader,
    make_user: Callable[..., User],
    site: Site,
    sign_in: Callable[..., None],
    wang: Wang,
) -> None:
    sign_in(phone, make_user("guard", [site]))
    phone.goto(f"/guard/residents/{wang.resident.id}/found")
    # The service worker is installed and holds the offline shell.
    phone.evaluate("navigator.serviceWorker.ready.then(() => true)")
    phone.get_by_label("Where are you?").fill("car park B2, no signal")
    # The guard takes a photo (the camera's file, as the file input hands it over).
    phone.get_by_label("Photo (optional)").set_input_files(
        {"name": "IMG_0001.jpg", "mimeType": "image/jpeg", "buffer": portrait()}
    )
    phone.locator("[data-photo-preview]").wait_for()  # a blob: preview, allowed by the CSP
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    phone.context.set_offline(True)
    phone.get_by_role("button", name="Send: call the family now").click()
    banner = phone.locator("#queue-banner")
    banner.get_by_text("The photo is kept on this phone").wait_for()
    assert incidents_in(reader) == []
    stored = phone.evaluate("JSON.parse(localStorage.getItem('welfare.foundQueue.v1'))")
    assert len(stored) == 1 and stored[0]["body"]["location"] == "car park B2, no signal"
    assert "Wang" not in str(stored)  # the queue holds ids, not names
    assert phone.evaluate(COUNT_QUEUED_PHOTOS) == 1  # the photo waits in IndexedDB

    phone.context.set_offline(False)
    phone.wait_for_url("**/guard/incidents/*?photo=added")
    [incident] = incidents_in(reader)
    assert incident.client_request_id == stored[0]["id"]
    assert incident.photo_file and incident.thumbnail_file
    assert phone.evaluate("localStorage.getItem('welfare.foundQueue.v1')") == "[]"
    assert phone.evaluate(COUNT_QUEUED_PHOTOS) == 0  # sent, so gone from the phone
    assert phone.get_by_text("Photo added.").is_visible()
    phone.wait_for_function(IMAGE_DRAWN, arg=phone.locator("img.incident-photo").element_handle())

    # The office sees the photo on the console's incident page.
    sign_in(desktop, make_user("staff", [site]))
    desktop.goto(f"/console/incidents/{incident.id}")
    shown = desktop.locator("[data-incident-photo]").element_handle()
    desktop.wait_for_function(IMAGE_DRAWN, arg=shown)
    assert desktop.get_by_text("Photo added").first.is_visible()
    # A retry of the same report (the phone never heard the answer) opens nothing new.
    phone.evaluate(
        """(item) => localStorage.setItem('welfare.foundQueue.v1', JSON.stringify([item]))""",
        stored[0],
    )
    phone.goto("/guard")
    phone.locator("#queue-banner").get_by_text("Your found report was sent.").wait_for()
    assert len(incidents_in(reader)) == 1


def test_without_signal_guard_pages_show_the_offline_shell(
    phone: Any, make_user: Callable[..., User], site: Site, sign_in: Callable[..., None]
) -> None:
    sign_in(phone, make_user("guard", [site]))
    phone.goto("/guard")
    phone.evaluate("navigator.serviceWorker.ready.then(() => true)")
    # The shell is precached while installing; wait until it is in the cache.
    phone.wait_for_function("() => caches.match('/guard/offline').then(Boolean)", polling=100)
    phone.context.set_offline(True)
    phone.goto("/guard/alerts")
    assert phone.get_by_role("heading", name="No signal").is_visible()
    phone.context.set_offline(False)


def test_alerts_list_on_the_phone(
    phone: Any,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    sign_in: Callable[..., None],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    settings: Settings,
    screenshot: Screenshot,
) -> None:
    park = make_resident(
        full_name="Park Soon-ja",
        preferred_name="Mrs. Park",
        languages=["ko-KR"],
        clothing="red cardigan, grey trousers",
        places=["bus stop on Harbour Road", "the Korean church on Hill Street"],
    )
    make_consent(park)
    residents.set_photo(
        session=db, actor=SYSTEM, settings=settings, resident_id=park.id, data=portrait()
    )
    incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(
            kind=IncidentKind.missing,
            resident_id=park.id,
            location="lobby of Building 2, 09:40",
            client_request_id="missing-park-e2e",
        ),
    )
    db.commit()
    sign_in(phone, make_user("guard", [site]))
    phone.get_by_role("link", name="Missing residents: 1").click()
    assert phone.get_by_role("heading", name="Mrs. Park").is_visible()
    phone.wait_for_function(
        "() => [...document.images].every((i) => i.complete && i.naturalWidth > 0)"
    )
    screenshot(phone, "guard-alerts")
    phone.get_by_role("heading", name="Mrs. Park").click()
    assert phone.get_by_text("the Korean church on Hill Street").is_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360


def test_the_public_page_shows_no_personal_data_and_alerts_the_office(
    phone: Any, reader: Reader, wang: Wang, screenshot: Screenshot
) -> None:
    phone.goto(f"/t/{wang.code}")
    assert phone.get_by_role("heading", name="Please stay with this person").is_visible()
    text = phone.locator("body").inner_text()
    html = phone.content()
    for personal in ("Wang", "1609", "grandson", "Alzheimer", "91234567", "9123 4567"):
        assert personal not in text and personal not in html, personal
    assert "/photo" not in html and str(wang.resident.id) not in html
    assert (
        phone.get_by_role("link", name="Call the office")
        .get_attribute("href")
        .startswith("tel:+852")
    )
    screenshot(phone, "public-finder")
    phone.get_by_label("Where are you? (optional)").fill("Building 1 lobby")
    phone.get_by_role("button", name="Alert the office").click()
    phone.get_by_text("The office has been alerted").wait_for()
    assert "Wang" not in phone.locator("body").inner_text()
    [incident] = incidents_in(reader)
    assert incident.resident_id == wang.resident.id and incident.location == "Building 1 lobby"


def test_the_live_page_shows_a_missing_alert_as_sent_to_the_guards_not_the_duty_manager(
    phone: Any,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    sign_in: Callable[..., None],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
) -> None:
    park = make_resident(full_name="Park Soon-ja", preferred_name="Mrs. Park")
    make_consent(park)
    guard = make_user("guard", [site], phone="9345 1609")
    row = db.get(User, guard.id)
    assert row is not None
    row.on_duty_since = row.created_at
    db.add(row)
    db.commit()
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(
            kind=IncidentKind.missing, resident_id=park.id, client_request_id="missing-live-e2e"
        ),
    )
    db.commit()
    sign_in(phone, guard)
    phone.goto(f"/guard/incidents/{opened.incident.id}")
    alerted = phone.locator("[data-guards-alert]")
    alerted.wait_for(state="visible")
    assert "Missing alert to the guards on duty" in alerted.inner_text()
    assert phone.locator("[data-duty-manager]").is_hidden()
