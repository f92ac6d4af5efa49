"""The public finder at /t/{code}: no personal data, the office phone, "alert the office" with a
double-submit CSRF token, rate limits per tag and per address, and the same page for dead codes."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlmodel import Session, select

from tests.conftest import SYSTEM, form_csrf
from welfare.errors import Throttled
from welfare.incidents import public_reports
from welfare.incidents.models import Incident, IncidentEvent, PublicReport
from welfare.outbox.models import OutboxMessage
from welfare.residents import service as residents
from welfare.residents.models import Resident
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.tags import service as tags
from welfare.tags.models import ResidentTag
from welfare.users.models import User

HTML = {"accept": "text/html"}
PERSONAL = (
    "Wang Jianguo",
    "Mr. Wang",
    "1609",
    "grandson",
    "Alzheimer",
    "Wang Lei",
    "91234567",
    "9123 4567",
)


@pytest.fixture
def tagged(
    db: Session,
    settings: Settings,
    make_household: Callable[..., Any],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Any],
) -> tuple[Resident, str]:
    resident = make_resident(make_household("1", "1609"))
    make_consent(resident)
    make_contact(resident)
    buffer = io.BytesIO()
    Image.new("RGB", (300, 300), (10, 120, 30)).save(buffer, "JPEG")
    residents.set_photo(
        session=db, actor=SYSTEM, settings=settings, resident_id=resident.id, data=buffer.getvalue()
    )
    code = tags.issue_tag(session=db, actor=SYSTEM, resident_id=resident.id).code
    db.commit()
    return resident, code


def incidents_of(db: Session) -> list[Incident]:
    db.rollback()
    return list(db.exec(select(Incident)).all())


def alert(client: TestClient, code: str, **form: str) -> Any:
    page = client.get(f"/t/{code}")
    return client.post(
        f"/t/{code}/alert",
        data={"csrf_token": form_csrf(page.text), **form},
        headers=HTML,
        follow_redirects=False,
    )


def test_public_page_shows_the_office_phone_and_no_personal_data(
    client: TestClient, tagged: tuple[Resident, str]
) -> None:
    resident, code = tagged
    response = client.get(f"/t/{code}")
    assert response.status_code == 200
    assert 'href="tel:+85223456789"' in response.text
    assert "Alert the office" in response.text
    for text in PERSONAL:
        assert text not in response.text, text
    assert str(resident.id) not in response.text
    assert "/photo" not in response.text
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "noindex" in response.headers["x-robots-tag"]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_unknown_and_revoked_codes_get_the_same_generic_page(
    client: TestClient, db: Session, tagged: tuple[Resident, str]
) -> None:
    resident, code = tagged
    unknown = client.get("/t/not-a-real-code-at-all")
    tags.revoke_tag(session=db, actor=SYSTEM, resident_id=resident.id)
    db.commit()
    revoked = client.get(f"/t/{code}")
    for response in (unknown, revoked):
        assert response.status_code == 200
        assert "tel:" not in response.text
        assert "Please call the management office" in response.text
        assert "Alert the office" in response.text
    strip = lambda text, c: text.replace(c, "CODE")  # noqa: E731
    assert strip(unknown.text, "not-a-real-code-at-all").replace(
        form_csrf(unknown.text), "T"
    ) == strip(revoked.text, code).replace(form_csrf(revoked.text), "T")


def _mistyped(code: str) -> str:
    """The code with its check character replaced by another one."""
    return code[:-1] + ("2" if code[-1] != "2" else "3")


def test_the_tag_url_works_with_the_code_typed_in_any_case_with_spaces_or_dashes(
    client: TestClient, tagged: tuple[Resident, str]
) -> None:
    _resident, code = tagged
    canonical = code.replace("-", "")
    for typed in (code.lower(), canonical, quote(code.lower().replace("-", " "))):
        response = client.get(f"/t/{typed}")
        assert response.status_code == 200, typed
        assert 'href="tel:+85223456789"' in response.text, typed
        assert "Alert the office" in response.text


def test_a_tag_issued_before_printed_codes_still_shows_the_office_phone(
    client: TestClient, db: Session, tagged: tuple[Resident, str]
) -> None:
    resident, _code = tagged
    tags.revoke_tag(session=db, actor=SYSTEM, resident_id=resident.id)
    token = "Zq3r_-8kT0bNw9LmPa2vXg"  # secrets.token_urlsafe(16), as tags were issued before
    db.add(ResidentTag(resident_id=resident.id, code=token))
    db.commit()
    assert 'href="tel:+85223456789"' in client.get(f"/t/{token}").text
    assert "tel:" not in client.get(f"/t/{token.lower()}").text  # old tokens stay exact


def test_a_mistyped_code_says_check_the_code_and_alerts_nobody(
    client: TestClient, db: Session, tagged: tuple[Resident, str]
) -> None:
    _resident, code = tagged
    wrong = _mistyped(code)
    response = client.get(f"/t/{wrong}", headers=HTML)
    assert response.status_code == 422
    assert "Check the code" in response.text
    assert "Alert the office" not in response.text and "tel:+852" not in response.text
    assert "Please call the management office" in response.text
    chinese = client.get(f"/t/{wrong}", headers={"accept-language": "zh-CN"})
    assert chinese.status_code == 422 and "Check the code" not in chinese.text
    # A form posted anyway answers as for any unknown code, and opens nothing.
    token = form_csrf(client.get(f"/t/{code}").text)
    posted = client.post(
        f"/t/{wrong}/alert", data={"csrf_token": token}, headers=HTML, follow_redirects=False
    )
    assert posted.status_code == 303
    assert incidents_of(db) == []
    assert "The office has been alerted" not in client.get(posted.headers["location"]).text


def test_alert_the_office_opens_a_found_incident_for_staff(
    client: TestClient, db: Session, tagged: tuple[Resident, str]
) -> None:
    resident, code = tagged
    response = alert(client, code, location="car park B2")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/f/")
    thanks = client.get(response.headers["location"])
    assert "The office has been alerted" in thanks.text
    for text in PERSONAL:
        assert text not in thanks.text
    [incident] = incidents_of(db)
    assert incident.kind.value == "found" and incident.resident_id == resident.id
    assert incident.location == "car park B2"
    assert incident.note == public_reports.PUBLIC_NOTE
    types = db.exec(
        select(IncidentEvent.type).where(IncidentEvent.incident_id == incident.id)
    ).all()
    assert "reported" in types and "public_report" in types
    # Without the finder_alerts scope staff decide whether to call the family: an anonymous
    # button never rings them itself.
    assert (
        db.exec(select(OutboxMessage).where(OutboxMessage.incident_id == incident.id)).all() == []
    )
    assert incident.status.value == "open"
    # A second press while it is open joins the same incident.
    assert alert(client, code).status_code == 303
    assert len(incidents_of(db)) == 1


def test_alert_without_the_double_submit_token_is_refused(
    client: TestClient, db: Session, tagged: tuple[Resident, str]
) -> None:
    _resident, code = tagged
    page = client.get(f"/t/{code}")
    token = form_csrf(page.text)
    forged = client.post(f"/t/{code}/alert", data={"csrf_token": "guess"}, headers=HTML)
    assert forged.status_code == 403
    client.cookies.clear()  # a cross-site form post carries no strict cookie
    no_cookie = client.post(f"/t/{code}/alert", data={"csrf_token": token}, headers=HTML)
    assert no_cookie.status_code == 403
    assert incidents_of(db) == []


def test_alert_for_an_unknown_code_answers_the_same_and_opens_nothing(
    client: TestClient, db: Session
) -> None:
    response = alert(client, "no-such-code-here")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/f/")
    assert "The office has been alerted" in client.get(response.headers["location"]).text
    assert incidents_of(db) == []
    assert len(db.exec(select(PublicReport)).all()) == 1


def test_alerts_are_limited_per_tag(
    client: TestClient, db: Session, tagged: tuple[Resident, str]
) -> None:
    _resident, code = tagged
    for _ in range(public_reports.PER_TAG_LIMIT):
        assert alert(client, code).status_code == 303
    limited = alert(client, code)
    assert limited.status_code == 429
    assert "already been alerted several times" in limited.text
    assert int(limited.headers["retry-after"]) > 0
    assert 'href="tel:+85223456789"' in limited.text  # they can still call
    # Another tag from the same address is still heard.
    assert alert(client, "another-code").status_code == 303


def test_one_tag_typed_differently_is_still_one_tag_for_the_limit(
    client: TestClient, tagged: tuple[Resident, str]
) -> None:
    _resident, code = tagged
    spellings = [code, code.lower(), code.replace("-", ""), code.lower().replace("-", "")]
    for typed in spellings[: public_reports.PER_TAG_LIMIT]:
        assert alert(client, typed).status_code == 303
    assert alert(client, spellings[-1]).status_code == 429


def test_alerts_are_limited_per_address(client: TestClient, db: Session) -> None:
    for number in range(public_reports.PER_ADDRESS_LIMIT):
        assert alert(client, f"code-{number}").status_code == 303
    assert alert(client, "code-last").status_code == 429


def test_limits_count_only_their_window(db: Session, tagged: tuple[Resident, str]) -> None:
    _resident, code = tagged
    start = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    for minute in range(public_reports.PER_TAG_LIMIT):
        public_reports.alert_office(
            session=db,
            secret="s",
            code=code,
            client_addr=f"10.0.0.{minute}",
            now=start + dt.timedelta(minutes=minute),
        )
    with pytest.raises(Throttled):
        public_reports.alert_office(
            session=db, secret="s", code=code, client_addr="10.0.0.9", now=start
        )
    later = start + public_reports.PER_TAG_WINDOW + dt.timedelta(minutes=3)
    assert public_reports.alert_office(
        session=db, secret="s", code=code, client_addr="10.0.0.9", now=later
    )
    # Neither the code nor the address is stored as such.
    rows = db.exec(select(PublicReport)).all()
    assert all(code not in (r.tag_key, r.addr_key) for r in rows)
    assert all(not r.addr_key.startswith("10.") for r in rows)
    db.rollback()


def _without_tokens(html: str) -> str:
    return html.replace(form_csrf(html), "TOKEN")


def test_a_guard_of_another_site_gets_the_public_finder_page_and_the_sites_guard_the_card(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    make_site: Callable[..., Site],
    site: Site,
    page_login: Callable[..., str],
    tagged: tuple[Resident, str],
) -> None:
    resident, code = tagged
    passer_by = client.get(f"/t/{code}", headers=HTML)
    outsider = make_user("guard", [make_site(name="Elsewhere")], display_name="Guard Chan B")
    page_login(outsider)
    response = client.get(f"/t/{code}", headers=HTML)
    assert response.status_code == 200
    assert 'href="tel:+85223456789"' in response.text and "Alert the office" in response.text
    for text in (*PERSONAL, str(resident.id), "/photo", "/guard/residents"):
        assert text not in response.text, text
    # Their session shows them nothing more than a passer-by sees: not even their own menu.
    assert "Guard Chan B" not in response.text and "Sign out" not in response.text
    assert 'name="csrf-token"' not in response.text
    assert _without_tokens(response.text) == _without_tokens(passer_by.text)
    # And the alert button works for them as for anyone.
    assert alert(client, code).status_code == 303
    assert [i.resident_id for i in incidents_of(db)] == [resident.id]

    page_login(make_user("guard", [site]))
    card = client.get(f"/t/{code}", headers=HTML)
    assert card.status_code == 200
    assert "Mr. Wang" in card.text and f"/guard/residents/{resident.id}/found" in card.text


def test_a_signed_in_guard_gets_the_same_finder_page_for_unknown_and_revoked_codes(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    tagged: tuple[Resident, str],
) -> None:
    resident, code = tagged
    page_login(make_user("guard", [site]))
    unknown = client.get("/t/not-a-real-code-at-all", headers=HTML)
    tags.revoke_tag(session=db, actor=SYSTEM, resident_id=resident.id)
    db.commit()
    revoked = client.get(f"/t/{code}", headers=HTML)
    for response in (unknown, revoked):
        assert response.status_code == 200
        assert "Please call the management office" in response.text
        assert "Mr. Wang" not in response.text and "Sign out" not in response.text


def test_staff_of_the_site_also_go_straight_to_the_card(
    client: TestClient,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    tagged: tuple[Resident, str],
) -> None:
    _resident, code = tagged
    page_login(make_user("staff", [site]))
    response = client.get(f"/t/{code}")
    assert response.status_code == 200 and "Mr. Wang" in response.text


def test_a_stale_session_cookie_sees_the_public_page(
    client: TestClient, tagged: tuple[Resident, str]
) -> None:
    _resident, code = tagged
    client.cookies.set("welfare_session", "expired-or-forged")
    response = client.get(f"/t/{code}")
    assert response.status_code == 200
    assert "Alert the office" in response.text and "Mr. Wang" not in response.text


def test_the_public_page_speaks_the_visitors_language(
    client: TestClient, tagged: tuple[Resident, str]
) -> None:
    _resident, code = tagged
    response = client.get(f"/t/{code}", headers={"accept-language": "zh-CN,zh;q=0.9"})
    assert '<html lang="zh-CN">' in response.text
    assert "Alert the office" not in response.text
