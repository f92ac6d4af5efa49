"""The guard app's pages over HTTP: sign-in redirects, CSRF, site isolation, the found flow,
the live incident page, hand-over, alerts, and the PWA files."""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlmodel import Session, select

from tests.conftest import SYSTEM
from welfare.audit.models import AuditEntry
from welfare.incidents import service as incidents
from welfare.incidents.models import Incident, IncidentCreate, IncidentKind
from welfare.residents import service as residents
from welfare.residents.models import Resident
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.tags import service as tags
from welfare.users.models import User

HTML = {"accept": "text/html"}


@dataclass
class Case:
    resident: Resident
    code: str


@pytest.fixture
def wang(
    db: Session,
    make_household: Callable[..., Any],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Any],
) -> Case:
    """Mr. Wang of 1-1609 with a consent, a son and a daughter, and a tag."""
    resident = make_resident(make_household("1", "1609"))
    make_consent(resident)
    make_contact(resident)
    make_contact(resident, name="Wang Mei", relationship="daughter", phone="6123 4567")
    tag = tags.issue_tag(session=db, actor=SYSTEM, resident_id=resident.id)
    code = tag.code
    db.commit()
    return Case(resident, code)


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (400, 400), (120, 90, 60)).save(buffer, "JPEG")
    return buffer.getvalue()


def _has_phone(text: str) -> bool:
    """The son's number in any spelling (whole: four digits also turn up in random tokens)."""
    return any(spelling in text for spelling in ("91234567", "9123 4567", "+852 9123"))


def incident_count(db: Session) -> int:
    db.rollback()
    return len(db.exec(select(Incident)).all())


# --- sign-in and roles ---------------------------------------------------------------------------


# Fixed, so pytest-xdist's workers collect the same test ids.
SOME_ID = "6f1d2b9e-0c4a-4f7e-9a51-3b8e2d7c1a40"


@pytest.mark.parametrize(
    "path",
    [
        "/guard",
        "/guard/search?q=1609",
        "/guard/scan",
        f"/guard/residents/{SOME_ID}",
        f"/guard/residents/{SOME_ID}/found",
        f"/guard/incidents/{SOME_ID}",
        "/guard/alerts",
        f"/guard/alerts/{SOME_ID}",
        "/guard/offline",
    ],
)
def test_guard_pages_send_signed_out_visitors_to_sign_in(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=/guard")


@pytest.mark.parametrize(
    "path",
    [
        "/guard/duty",
        f"/guard/residents/{SOME_ID}/found",
        f"/guard/incidents/{SOME_ID}/handover",
    ],
)
def test_guard_forms_send_signed_out_visitors_to_sign_in(client: TestClient, path: str) -> None:
    response = client.post(path, data={"csrf_token": "x"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


def test_guard_home_shows_duty_search_and_scan(
    client: TestClient, make_user: Callable[..., User], site: Site, page_login: Callable[..., str]
) -> None:
    page_login(make_user("guard", [site]))
    response = client.get("/guard")
    assert response.status_code == 200
    assert "You are off duty" in response.text
    assert 'action="/guard/search"' in response.text
    assert 'href="/guard/scan"' in response.text
    assert 'rel="manifest" href="/manifest.webmanifest"' in response.text
    assert "content-security-policy" in response.headers


def duty_since(db: Session, user: User) -> Any:
    db.rollback()
    return db.exec(select(User.on_duty_since).where(User.id == user.id)).one()


def test_going_on_duty_needs_the_form_token(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
) -> None:
    guard = make_user("guard", [site])
    csrf = page_login(guard)
    refused = client.post("/guard/duty", data={"on_duty": "true", "csrf_token": "no"}, headers=HTML)
    assert refused.status_code == 403
    assert duty_since(db, guard) is None
    bad = client.post("/guard/duty", data={"on_duty": "maybe", "csrf_token": csrf}, headers=HTML)
    assert bad.status_code == 422
    done = client.post(
        "/guard/duty", data={"on_duty": "true", "csrf_token": csrf}, follow_redirects=False
    )
    assert done.status_code == 303 and done.headers["location"] == "/guard"
    assert "You are on duty" in client.get("/guard").text
    assert duty_since(db, guard) is not None
    client.post("/guard/duty", data={"on_duty": "false", "csrf_token": csrf})
    assert "You are off duty" in client.get("/guard").text


# --- search, card, tag URL -----------------------------------------------------------------------


def test_search_by_flat_shows_the_card_and_links_to_it(
    client: TestClient,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    wang: Case,
) -> None:
    page_login(make_user("guard", [site]))
    response = client.get("/guard/search", params={"q": "1609"})
    assert response.status_code == 200
    assert "Mr. Wang" in response.text and "1-1609" in response.text
    # The search goes along, so that the card highlights what was looked for.
    assert f'href="/guard/residents/{wang.resident.id}?q=1609"' in response.text
    assert "Talk about his grandson." in response.text
    assert "Speaks: Chinese" in response.text  # the language named, not its code
    assert "Alzheimer" not in response.text  # medical notes never reach a guard
    empty = client.get("/guard/search", params={"q": "  "})
    assert empty.status_code == 422
    assert "Type a flat" in empty.text
    nobody = client.get("/guard/search", params={"q": "9999"})
    assert "Nobody registered matches" in nobody.text


def test_card_page_shows_approach_and_found_button_and_is_audited(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    wang: Case,
) -> None:
    guard = make_user("guard", [site])
    page_login(guard)
    response = client.get(f"/guard/residents/{wang.resident.id}")
    assert response.status_code == 200
    assert "Talk about his grandson." in response.text
    assert f'href="/guard/residents/{wang.resident.id}/found"' in response.text
    assert "Alzheimer" not in response.text and not _has_phone(response.text)
    # The person's name is the page's one heading of the first level.
    assert re.findall(r"<h1\b[^>]*>([^<]*)</h1>", response.text) == [wang.resident.preferred_name]
    db.rollback()
    audited = db.exec(
        select(AuditEntry).where(
            AuditEntry.actor_id == guard.id, AuditEntry.resident_id == wang.resident.id
        )
    ).all()
    assert [e.action for e in audited] == ["lookup.card"]


def test_unverified_consent_is_flagged_on_the_card(
    client: TestClient,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
) -> None:
    import datetime as dt

    overdue = make_resident(preferred_name="Mrs. Park")
    now = dt.datetime.now(dt.UTC)
    make_consent(
        overdue,
        given_at=now - dt.timedelta(days=400),
        review_due=now - dt.timedelta(days=35),
    )
    page_login(make_user("guard", [site]))
    response = client.get(f"/guard/residents/{overdue.id}")
    assert response.status_code == 200
    assert "Consent review overdue" in response.text


def test_tag_url_takes_a_signed_in_guard_straight_to_the_card(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    wang: Case,
) -> None:
    guard = make_user("guard", [site])
    page_login(guard)
    response = client.get(f"/t/{wang.code}")
    assert response.status_code == 200
    assert "Mr. Wang" in response.text
    assert f'href="/guard/residents/{wang.resident.id}/found"' in response.text
    db.rollback()
    actions = db.exec(select(AuditEntry.action).where(AuditEntry.actor_id == guard.id)).all()
    assert "lookup.tag" in actions


def test_scan_page_takes_a_typed_code_or_a_scanned_url_to_the_tag(
    client: TestClient,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    wang: Case,
) -> None:
    page_login(make_user("guard", [site]))
    assert 'id="scan-start"' in client.get("/guard/scan").text
    for typed in (wang.code, f"https://welfare.example/t/{wang.code}", f" {wang.code} "):
        response = client.get("/guard/scan", params={"code": typed}, follow_redirects=False)
        assert response.status_code == 303, typed
        assert response.headers["location"] == f"/t/{wang.code}"
    bad = client.get("/guard/scan", params={"code": "a/b/c/"}, headers=HTML)
    assert bad.status_code == 422
    assert "That is not a tag code" in bad.text


def test_a_code_typed_loosely_on_the_scan_page_opens_the_card(
    client: TestClient,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    wang: Case,
) -> None:
    page_login(make_user("guard", [site]))
    loose = wang.code.lower().replace("-", " ").replace("0", "o").replace("1", "l")
    for typed in (loose, wang.code.replace("-", ""), f" {wang.code.lower()} "):
        response = client.get("/guard/scan", params={"code": typed}, follow_redirects=False)
        assert response.status_code == 303, typed
        assert response.headers["location"] == f"/t/{wang.code}"
    card = client.get("/guard/scan", params={"code": loose})
    assert card.status_code == 200 and "Mr. Wang" in card.text


def test_a_mistyped_code_on_the_scan_page_says_check_the_code(
    client: TestClient,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    wang: Case,
) -> None:
    page_login(make_user("guard", [site]))
    canonical = wang.code.replace("-", "")
    wrong = canonical[:-1] + ("2" if canonical[-1] != "2" else "3")
    response = client.get("/guard/scan", params={"code": wrong.lower()}, headers=HTML)
    assert response.status_code == 422
    assert "Check the code" in response.text and "not yours to see" not in response.text
    assert f'value="{wrong.lower()}"' in response.text  # kept in the box to correct
    direct = client.get(f"/t/{wrong}", headers=HTML)
    assert direct.status_code == 422 and "Check the code" in direct.text


# --- site isolation ------------------------------------------------------------------------------


def test_a_guard_of_another_site_gets_not_found_for_card_incident_and_alert(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    make_site: Callable[..., Site],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    page_login: Callable[..., str],
    wang: Case,
) -> None:
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(resident_id=wang.resident.id, client_request_id="isolation-1"),
    )
    park = make_resident(full_name="Park Soon-ja", preferred_name="Mrs. Park")
    make_consent(park)
    missing = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(
            kind=IncidentKind.missing, resident_id=park.id, client_request_id="isolation-2"
        ),
    )
    db.commit()
    incident_id, alert_id = opened.incident.id, missing.incident.id
    page_login(make_user("guard", [make_site(name="Other Estate")]))
    for path in (
        f"/guard/residents/{wang.resident.id}",
        f"/guard/residents/{wang.resident.id}/found",
        f"/guard/incidents/{incident_id}",
        f"/guard/alerts/{alert_id}",
    ):
        response = client.get(path, headers=HTML)
        assert response.status_code == 404, path
        assert "Mr. Wang" not in response.text and "1609" not in response.text
        assert "Mrs. Park" not in response.text
    # The tag URL answers as for a passer-by: the public finder page, nothing of the resident.
    finder = client.get(f"/t/{wang.code}", headers=HTML)
    assert finder.status_code == 200 and "Alert the office" in finder.text
    assert "Mr. Wang" not in finder.text and "1609" not in finder.text
    assert "Mrs. Park" not in client.get("/guard/alerts").text
    refused = client.post(
        f"/guard/incidents/{incident_id}/handover",
        data={"handed_to": "me", "csrf_token": form_token(client)},
        headers=HTML,
    )
    assert refused.status_code == 404


def form_token(client: TestClient) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/guard").text)
    assert match
    return match.group(1)


# --- found, live incident, hand-over -------------------------------------------------------------


def test_found_form_shows_conditions_and_the_ambulance_number_of_the_site(
    client: TestClient,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    wang: Case,
) -> None:
    page_login(make_user("guard", [site]))
    response = client.get(f"/guard/residents/{wang.resident.id}/found")
    assert response.status_code == 200
    assert 'value="injured"' in response.text
    assert "Call an ambulance first" in response.text
    assert 'href="tel:999"' in response.text  # a Hong Kong site
    assert re.search(r'name="client_request_id" value="[0-9a-f-]{36}"', response.text)


def test_ambulance_number_follows_the_site_region(
    client: TestClient,
    make_user: Callable[..., User],
    make_site: Callable[..., Site],
    make_household: Callable[..., Any],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    page_login: Callable[..., str],
) -> None:
    for region, phone, number in (("US", "212 555 0100", "911"), ("DE", "030 123456", "112")):
        other = make_site(phone_region=region, office_phone=phone)
        resident = make_resident(make_household(site_=other))
        make_consent(resident)
        page_login(make_user("guard", [other]))
        text = client.get(f"/guard/residents/{resident.id}/found").text
        assert f'href="tel:{number}"' in text, region


def test_found_form_without_script_opens_one_incident_and_shows_it_live(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    wang: Case,
) -> None:
    csrf = page_login(make_user("guard", [site]))
    form = {
        "csrf_token": csrf,
        "client_request_id": str(uuid.uuid4()),
        "condition": "distressed",
        "location": "Building 1, 3rd floor, meter box",
        "latitude": "22.3",
        "longitude": "114.2",
        "note": "asks why his door won't open",
    }
    path = f"/guard/residents/{wang.resident.id}/found"
    refused = client.post(path, data={**form, "csrf_token": "forged"}, headers=HTML)
    assert refused.status_code == 403
    assert incident_count(db) == 0
    first = client.post(path, data=form, follow_redirects=False)
    again = client.post(path, data=form, follow_redirects=False)  # a double tap
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    assert incident_count(db) == 1
    incident = db.exec(select(Incident)).one()
    assert incident.condition.value == "distressed" and incident.latitude == 22.3
    page = client.get(first.headers["location"])
    assert page.status_code == 200
    assert f"Incident {incident.reference}" in page.text
    live = json.loads(
        re.search(r'id="live-data">(.*?)</script>', page.text, re.S).group(1)  # type: ignore[union-attr]
    )
    assert live["incident_id"] == str(incident.id)
    assert [c["relationship"] for c in live["contacts"]] == ["son", "daughter"]
    assert "Wang Lei" not in page.text and not _has_phone(page.text)  # roles, not people
    assert live["words"]["sms_delivered"] == "SMS delivered"


def test_found_form_refuses_bad_values(
    client: TestClient,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    wang: Case,
) -> None:
    csrf = page_login(make_user("guard", [site]))
    path = f"/guard/residents/{wang.resident.id}/found"
    base = {"csrf_token": csrf, "client_request_id": str(uuid.uuid4())}
    assert client.post(path, data={**base, "condition": "asleep"}, headers=HTML).status_code == 422
    assert client.post(path, data={**base, "latitude": "north"}, headers=HTML).status_code == 422
    assert client.post(path, data={**base, "latitude": "91"}, headers=HTML).status_code == 422
    short = {"csrf_token": csrf, "client_request_id": "x"}
    assert client.post(path, data=short, headers=HTML).status_code == 422


def test_the_guard_page_is_in_the_users_language(
    client: TestClient,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    wang: Case,
) -> None:
    page_login(make_user("guard", [site], language="zh-CN"))
    text = client.get(f"/guard/residents/{wang.resident.id}/found").text
    assert "先叫救护车" in text


def test_a_korean_reading_guard_gets_the_guard_app_in_korean(
    client: TestClient,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    wang: Case,
) -> None:
    page_login(make_user("guard", [site], language="ko-KR"))
    found = client.get(f"/guard/residents/{wang.resident.id}/found").text
    assert '<html lang="ko-KR">' in found
    assert "먼저 구급차를 부르십시오" in found  # "Call an ambulance first"
    assert "Call an ambulance" not in found
    scan = client.get("/guard/scan").text
    assert "태그 스캔" in scan and "코드 조회" in scan  # "Scan a tag", "Look up the code"
    assert client.get("/manifest.webmanifest?lang=ko-KR").json()["name"] == "돌봄 경비원"


def test_hand_over_resolves_the_incident_with_who_took_the_person(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    wang: Case,
) -> None:
    csrf = page_login(make_user("guard", [site]))
    opened = client.post(
        f"/guard/residents/{wang.resident.id}/found",
        data={"csrf_token": csrf, "client_request_id": str(uuid.uuid4())},
        follow_redirects=False,
    )
    page_path = opened.headers["location"]
    handover = page_path + "/handover"
    forged = client.post(handover, data={"csrf_token": "no", "handed_to": "son"}, headers=HTML)
    assert forged.status_code == 403
    blank = client.post(handover, data={"csrf_token": csrf, "handed_to": " "}, headers=HTML)
    assert blank.status_code == 422
    assert "Say who took the person over." in blank.text
    done = client.post(
        handover, data={"csrf_token": csrf, "handed_to": "his son"}, follow_redirects=False
    )
    assert done.status_code == 303
    db.rollback()
    incident = db.exec(select(Incident)).one()
    assert incident.status.value == "resolved"
    assert incident.outcome is not None and incident.outcome.value == "handed_over"
    assert incident.handed_to == "his son"
    assert "Handed over to his son." in client.get(page_path).text
    twice = client.post(handover, data={"csrf_token": csrf, "handed_to": "x"}, headers=HTML)
    assert twice.status_code == 409


# --- missing-resident alerts ---------------------------------------------------------------------


def test_alerts_list_and_page_show_photo_description_and_places(
    client: TestClient,
    db: Session,
    settings: Settings,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
) -> None:
    park = make_resident(
        full_name="Park Soon-ja",
        preferred_name="Mrs. Park",
        languages=["ko-KR"],
        clothing="red cardigan",
        places=["the bus stop on Harbour Road", "the Korean church"],
    )
    make_consent(park)
    residents.set_photo(
        session=db, actor=SYSTEM, settings=settings, resident_id=park.id, data=jpeg()
    )
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(
            kind=IncidentKind.missing,
            resident_id=park.id,
            location="lobby of Building 2",
            client_request_id="missing-park-1",
        ),
    )
    db.commit()
    page_login(make_user("guard", [site]))
    assert "Missing residents: 1" in client.get("/guard").text
    listing = client.get("/guard/alerts")
    assert listing.status_code == 200
    assert "Mrs. Park" in listing.text and "lobby of Building 2" in listing.text
    assert f'src="/api/v1/lookup/{park.id}/photo"' in listing.text
    page = client.get(f"/guard/alerts/{opened.incident.id}")
    assert page.status_code == 200
    for text in ("red cardigan", "the bus stop on Harbour Road", "the Korean church"):
        assert text in page.text
    assert f'href="/guard/residents/{park.id}/found"' in page.text
    assert client.get(f"/api/v1/lookup/{park.id}/photo").status_code == 200
    assert client.get(f"/guard/alerts/{uuid.uuid4()}", headers=HTML).status_code == 404


def test_no_alerts_says_so(
    client: TestClient, make_user: Callable[..., User], site: Site, page_login: Callable[..., str]
) -> None:
    page_login(make_user("guard", [site]))
    assert "No missing residents at your sites." in client.get("/guard/alerts").text


# --- the installable app -------------------------------------------------------------------------


def test_manifest_and_service_worker_are_served_from_the_root(client: TestClient) -> None:
    manifest = client.get("/manifest.webmanifest")
    assert manifest.status_code == 200
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    data = manifest.json()
    assert data["start_url"] == "/guard" and data["display"] == "standalone"
    for icon in data["icons"]:
        picture = client.get(icon["src"])
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
        width, height = Image.open(io.BytesIO(picture.content)).size
        assert f"{width}x{height}" == icon["sizes"]
    worker = client.get("/sw.js")
    assert worker.status_code == 200
    assert worker.headers["content-type"].startswith("text/javascript")
    config = json.loads(re.match(r"self\.WELFARE_SW = (.*?);\n", worker.text).group(1))  # type: ignore[union-attr]
    assert config["shell"] == "/guard/offline"
    for url in config["precache"]:
        assert client.get(url).status_code == 200, url
    assert "Welfare guard" in client.get("/manifest.webmanifest?lang=en").text
    assert client.get("/manifest.webmanifest?lang=zh-CN").json()["name"] != "Welfare guard"


def test_offline_shell_has_no_personal_data(
    client: TestClient,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    wang: Case,
) -> None:
    page_login(make_user("guard", [site]))
    shell = client.get("/guard/offline")
    assert shell.status_code == 200
    assert 'id="queue-list"' in shell.text
    assert "Mr. Wang" not in shell.text and "1609" not in shell.text


# --- photos on found reports and unknown-person reports -----------------------------------------


def _photo_input(html: str) -> str:
    found = re.search(r"<input[^>]*name=\"photo\"[^>]*>", html)
    assert found, "no photo input"
    return found.group(0)


def test_found_form_offers_an_optional_camera_photo_on_a_phone_sized_page(
    client: TestClient,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    wang: Case,
) -> None:
    page_login(make_user("guard", [site]))
    text = client.get(f"/guard/residents/{wang.resident.id}/found").text
    field = _photo_input(text)
    assert 'type="file"' in field and 'accept="image/*"' in field
    assert 'capture="environment"' in field and "required" not in field
    assert 'enctype="multipart/form-data"' in text
    assert 'name="viewport" content="width=device-width' in text  # laid out for a 360 px phone
    assert "<script>" not in text  # the strict CSP allows no inline script
    assert "img-src 'self' data: blob:" in client.get("/guard").headers["content-security-policy"]


def test_found_form_without_script_sends_the_photo_with_the_report(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    wang: Case,
    settings: Settings,
) -> None:
    csrf = page_login(make_user("guard", [site]))
    response = client.post(
        f"/guard/residents/{wang.resident.id}/found",
        data={"csrf_token": csrf, "client_request_id": str(uuid.uuid4()), "condition": "well"},
        files={"photo": ("IMG_0001.jpg", jpeg(), "image/jpeg")},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"].endswith("?photo=added")
    db.rollback()
    incident = db.exec(select(Incident)).one()
    assert incident.photo_file and incident.thumbnail_file
    again = client.post(  # a double tap: the same report, the same photo
        f"/guard/residents/{wang.resident.id}/found",
        data={"csrf_token": csrf, "client_request_id": incident.client_request_id},
        files={"photo": ("IMG_0001.jpg", jpeg(), "image/jpeg")},
        follow_redirects=False,
    )
    assert again.headers["location"] == f"/guard/incidents/{incident.id}"
    db.rollback()
    assert db.get(Incident, incident.id).photo_file == incident.photo_file  # type: ignore[union-attr]
    page = client.get(response.headers["location"])
    assert "Photo added." in page.text
    assert f'src="/api/v1/incidents/{incident.id}/photo?thumbnail=true"' in page.text
    # The page's own cookie session may fetch it (that is how the <img> loads).
    image = client.get(f"/api/v1/incidents/{incident.id}/photo?thumbnail=true")
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"


def test_a_refused_photo_does_not_undo_the_report(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    wang: Case,
) -> None:
    csrf = page_login(make_user("guard", [site]))
    response = client.post(
        f"/guard/residents/{wang.resident.id}/found",
        data={"csrf_token": csrf, "client_request_id": str(uuid.uuid4())},
        files={"photo": ("photo.jpg", b"<html>not a photo</html>", "image/jpeg")},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"].endswith("?photo=unsupported")
    assert incident_count(db) == 1
    page = client.get(response.headers["location"])
    assert "it must be a JPEG, PNG or WebP picture" in page.text


def test_an_empty_photo_field_is_no_photo(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    wang: Case,
) -> None:
    csrf = page_login(make_user("guard", [site]))
    response = client.post(
        f"/guard/residents/{wang.resident.id}/found",
        data={"csrf_token": csrf, "client_request_id": str(uuid.uuid4())},
        files={"photo": ("", b"", "application/octet-stream")},  # what a browser sends
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert "photo=" not in response.headers["location"]
    db.rollback()
    assert db.exec(select(Incident)).one().photo_file is None


def test_guard_reports_an_unknown_person_with_description_and_photo(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
) -> None:
    csrf = page_login(make_user("guard", [site]))
    assert 'href="/guard/unknown"' in client.get("/guard").text
    form_page = client.get("/guard/unknown")
    assert form_page.status_code == 200
    assert 'name="description"' in form_page.text and 'name="site_id"' not in form_page.text
    _photo_input(form_page.text)
    base = {"csrf_token": csrf, "client_request_id": str(uuid.uuid4()), "condition": "distressed"}
    missing = client.post("/guard/unknown", data={**base, "description": "  "}, headers=HTML)
    assert missing.status_code == 422
    assert "Describe the person" in missing.text
    forged = client.post(
        "/guard/unknown", data={**base, "csrf_token": "x", "description": "man"}, headers=HTML
    )
    assert forged.status_code == 403
    assert incident_count(db) == 0

    response = client.post(
        "/guard/unknown",
        data={**base, "description": "man, about 80, grey coat", "location": "Block 1, 3/F"},
        files={"photo": ("p.jpg", jpeg(), "image/jpeg")},
        follow_redirects=False,
    )

    assert response.status_code == 303, response.text
    db.rollback()
    incident = db.exec(select(Incident)).one()
    assert incident.resident_id is None and incident.site_id == site.id
    assert incident.description == "man, about 80, grey coat"
    assert incident.condition.value == "distressed" and incident.photo_file
    page = client.get(response.headers["location"])
    assert "man, about 80, grey coat" in page.text
    assert f"/api/v1/incidents/{incident.id}/photo?thumbnail=true" in page.text


def test_a_guard_of_two_sites_chooses_the_site_of_an_unknown_person(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    make_site: Callable[..., Site],
    site: Site,
    page_login: Callable[..., str],
) -> None:
    other = make_site(name="Harbour View")
    csrf = page_login(make_user("guard", [site, other]))
    assert 'name="site_id"' in client.get("/guard/unknown").text
    base = {"csrf_token": csrf, "client_request_id": str(uuid.uuid4()), "description": "woman"}
    assert client.post("/guard/unknown", data=base, headers=HTML).status_code == 422
    response = client.post(
        "/guard/unknown", data={**base, "site_id": str(other.id)}, follow_redirects=False
    )
    assert response.status_code == 303
    db.rollback()
    assert db.exec(select(Incident)).one().site_id == other.id


def test_photo_can_be_added_on_the_live_incident_page_by_the_reporter_only(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    wang: Case,
    settings: Settings,
) -> None:
    csrf = page_login(make_user("guard", [site]))
    report = client.post(
        f"/guard/residents/{wang.resident.id}/found",
        data={"csrf_token": csrf, "client_request_id": str(uuid.uuid4())},
        follow_redirects=False,
    )
    url = report.headers["location"]
    page = client.get(url).text
    assert f'action="{url}/photo"' in page and "Add a photo" in page
    _photo_input(page)

    empty = client.post(f"{url}/photo", data={"csrf_token": csrf}, headers=HTML)
    assert empty.status_code == 422 and "Choose or take a photo first." in empty.text
    bad = client.post(
        f"{url}/photo",
        data={"csrf_token": csrf},
        files={"photo": ("x.jpg", b"GIF89a" + b"\0" * 40, "image/jpeg")},
        headers=HTML,
    )
    assert bad.status_code == 415
    forged = client.post(
        f"{url}/photo",
        data={"csrf_token": "forged"},
        files={"photo": ("x.jpg", jpeg(), "image/jpeg")},
        headers=HTML,
    )
    assert forged.status_code == 403
    added = client.post(
        f"{url}/photo",
        data={"csrf_token": csrf},
        files={"photo": ("x.jpg", jpeg(), "image/jpeg")},
        follow_redirects=False,
    )
    assert added.status_code == 303 and added.headers["location"] == f"{url}?photo=added"
    assert "Replace the photo" in client.get(url).text

    # Another guard of the site sees the incident but neither the photo nor the upload form.
    page_login(make_user("guard", [site]))
    other = client.get(url).text
    assert "/photo?thumbnail=true" not in other and f'action="{url}/photo"' not in other


def test_console_incident_page_shows_the_photo_the_guard_took(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    wang: Case,
) -> None:
    csrf = page_login(make_user("guard", [site]))
    report = client.post(
        f"/guard/residents/{wang.resident.id}/found",
        data={"csrf_token": csrf, "client_request_id": str(uuid.uuid4())},
        files={"photo": ("p.jpg", jpeg(), "image/jpeg")},
        follow_redirects=False,
    )
    incident_id = report.headers["location"].split("/")[-1].split("?")[0]
    page_login(make_user("staff", [site]))
    page = client.get(f"/console/incidents/{incident_id}")
    assert page.status_code == 200
    assert f'src="/api/v1/incidents/{incident_id}/photo?thumbnail=true"' in page.text
    assert "Photo added" in page.text  # the timeline event
    assert client.get(f"/api/v1/incidents/{incident_id}/photo").status_code == 200


def test_results_and_card_show_how_to_recognise_them_and_why_they_matched(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    page_login: Callable[..., str],
    make_household: Callable[..., Any],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
) -> None:
    resident = make_resident(
        make_household("1", "1609"),
        height_cm=168,
        build="slim, slightly stooped",
        hair="white, short",
        eyes="brown, wears glasses",
        clothing="often a Grey padded coat & slippers",
        distinguishing_marks="scar <over> the left eyebrow",
        walking_aid="walking stick with a red handle",
        medical_notes="Alzheimer's disease",
    )
    make_consent(resident)
    db.commit()
    page_login(make_user("guard", [site]))
    found = client.get("/guard/search", params={"q": "grey coat"})
    assert found.status_code == 200
    text = found.text
    for shown in (
        "168 cm",
        "slim, slightly stooped",
        "white, short",
        "brown, wears glasses",
        "walking stick with a red handle",
        "scar &lt;over&gt; the left eyebrow",  # escaped, never markup
    ):
        assert shown in text, shown
    assert "often a <mark>Grey</mark> padded <mark>coat</mark> &amp; slippers" in text
    assert "Why this result: the description has" in text
    assert "<mark>grey</mark> <mark>coat</mark>" in text
    assert "Alzheimer" not in text
    link = f'href="/guard/residents/{resident.id}?q=grey+coat"'
    assert link in text
    card = client.get(f"/guard/residents/{resident.id}", params={"q": "red stick"}).text
    assert "walking <mark>stick</mark> with a <mark>red</mark> handle" in card
    assert "Walking aid" in card and "Distinguishing marks" in card
    plain = client.get(f"/guard/residents/{resident.id}").text
    assert "<mark>" not in plain and "walking stick with a red handle" in plain
    # The walking aid is searched like the rest of the description.
    by_aid = client.get("/guard/search", params={"q": "red handle"}).text
    assert f"/guard/residents/{resident.id}?" in by_aid
    assert "walking stick with a <mark>red</mark> <mark>handle</mark>" in by_aid
