"""The passer-by who finds him (issue 20): share where and a message, who hears it, the finder's
status page, care tips only with their consent, and the staff's "false alarm"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from notifications.dispatcher import render
from tests.api.test_public_finder import alert
from tests.conftest import ALL_SCOPES, SYSTEM
from welfare.db import utcnow
from welfare.incidents import public_reports
from welfare.incidents import service as incidents
from welfare.incidents.models import (
    Incident,
    IncidentCreate,
    IncidentEvent,
    IncidentStatus,
    Outcome,
    Resolution,
)
from welfare.outbox.models import OutboxMessage, OutboxStatus
from welfare.residents.models import Resident
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.tags import service as tags
from welfare.users.models import User

HTML = {"accept": "text/html"}
WHERE = {"latitude": "22.280123", "longitude": "114.150127"}
MAP = "https://maps.google.com/?q=22.28012,114.15013"
PERSONAL = ("Wang Jianguo", "Mr. Wang", "1609", "grandson", "Alzheimer", "Wang Lei", "9123")


@pytest.fixture
def tag_of(
    db: Session,
    make_household: Callable[..., Any],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Any],
) -> Callable[..., tuple[Resident, str]]:
    """Mr. Wang with a tag, his son as contact, and the consent scopes asked for."""

    def make(*extra_scopes: str, unit: str = "1609", **fields: Any) -> tuple[Resident, str]:
        resident = make_resident(make_household("1", unit), **fields)
        make_consent(resident, scopes=[*ALL_SCOPES, *extra_scopes])
        make_contact(resident)
        code = tags.issue_tag(session=db, actor=SYSTEM, resident_id=resident.id).code
        db.commit()
        return resident, code

    return make


@pytest.fixture
def guard_on_duty(db: Session, site: Site, make_user: Callable[..., User]) -> User:
    guard = make_user("guard", [site], phone="9345 1609")
    guard.on_duty_since = utcnow()
    db.add(guard)
    db.commit()
    return guard


def report(client: TestClient, code: str, **form: str) -> Any:
    """A finder's report from the tag's page, as the browser posts it."""
    return alert(client, code, **form)


def _detached(db: Session, rows: list[Any]) -> list[Any]:
    """Rows read and let go: the read ends at once (on SQLite it would hold the lock the app's
    requests need), and the objects keep what was read."""
    for row in rows:
        db.expunge(row)
    db.rollback()
    return rows


def the_incident(db: Session) -> Incident:
    db.rollback()
    [incident] = _detached(db, list(db.exec(select(Incident)).all()))
    return incident


def rows_of(db: Session, incident: Incident) -> list[OutboxMessage]:
    db.rollback()
    query = select(OutboxMessage).where(OutboxMessage.incident_id == incident.id)
    return _detached(db, list(db.exec(query).all()))


def events_of(db: Session, incident: Incident) -> list[IncidentEvent]:
    db.rollback()
    query = (
        select(IncidentEvent)
        .where(IncidentEvent.incident_id == incident.id)
        .order_by(IncidentEvent.id)  # type: ignore[arg-type]
    )
    return _detached(db, list(db.exec(query).all()))


def test_a_finder_shares_where_and_a_message_and_the_office_and_guards_on_duty_hear_it(
    client: TestClient,
    db: Session,
    settings: Settings,
    tag_of: Callable[..., tuple[Resident, str]],
    guard_on_duty: User,
    page_login: Callable[..., str],
    login: Callable[..., dict[str, str]],
    make_user: Callable[..., User],
    site: Site,
) -> None:
    resident, code = tag_of()
    sent = report(
        client, code, location="bus stop", message="He is sitting on the bench\nby the bus stop"
    )
    assert sent.status_code == 303 and sent.headers["location"].startswith("/f/")
    # The location was not shared: no coordinates; a second report shares them.
    incident = the_incident(db)
    assert incident.resident_id == resident.id and incident.kind.value == "found"
    assert incident.public_finder and incident.latitude is None
    assert incident.location == "bus stop"
    notes = [e for e in events_of(db, incident) if e.type == "note"]
    assert [n.detail["text"] for n in notes] == ["He is sitting on the bench\nby the bus stop"]
    assert notes[0].actor == "public" and notes[0].detail["visibility"] == "everyone"
    # Guards on duty get an SMS pointing at the alert; without finder_alerts, no family.
    rows = rows_of(db, incident)
    assert [(r.to_phone, r.template) for r in rows] == [("+85293451609", "finder_alert")]
    text = render(db, rows[0], settings).body  # type: ignore[union-attr]
    db.rollback()
    assert f"/guard/alerts/{incident.id}" in text and "Wang" not in text
    assert incident.status is IncidentStatus.open

    assert report(client, code, **WHERE).status_code == 303
    incident = the_incident(db)
    assert (incident.latitude, incident.longitude) == (22.28012, 114.15013)
    assert len(rows_of(db, incident)) == 1  # the guards were told once

    # The guard's alert shows where the finder is, with the map link.
    page_login(guard_on_duty)
    alert = client.get(f"/guard/alerts/{incident.id}", headers=HTML)
    assert alert.status_code == 200
    assert "A member of the public found this resident" in alert.text and MAP in alert.text
    assert f"/guard/alerts/{incident.id}" in client.get("/guard/alerts", headers=HTML).text
    card = client.get(f"/api/v1/alerts/{incident.id}", headers=login(guard_on_duty)).json()
    assert card["found_by_public"] is True and card["map_url"] == MAP
    assert "medical_notes" not in card and "Alzheimer" not in str(card)
    # The office's board shows it at once, with the map link.
    db.rollback()  # a fresh read: the requests wrote since
    page_login(make_user("staff", [site]))
    board = client.get("/console/board.json").json()["items"]
    assert [(row["kind_label"], row["map_url"]) for row in board] == [
        ("Found by a member of the public", MAP)
    ]
    assert MAP in client.get("/console", headers=HTML).text


def test_a_guard_going_to_a_finder_is_on_the_finders_page(
    client: TestClient,
    db: Session,
    tag_of: Callable[..., tuple[Resident, str]],
    guard_on_duty: User,
    page_login: Callable[..., str],
) -> None:
    _resident, code = tag_of()
    status_url = report(client, code, **WHERE).headers["location"]
    finder = client.cookies.get("welfare_public_csrf")
    page = client.get(status_url)
    assert 'data-progress="office"' in page.text and "guard_coming" not in page.text
    assert 'http-equiv="refresh"' in page.text
    incident = the_incident(db)
    csrf = page_login(guard_on_duty)
    going = client.post(
        f"/guard/alerts/{incident.id}/going", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert going.status_code == 303 and going.headers["location"].endswith(str(incident.id))
    client.cookies.clear()
    assert finder
    assert 'data-progress="guard_coming"' in client.get(status_url).text
    assert "A guard is coming" in client.get(status_url).text


def test_with_finder_alerts_the_family_escalation_runs_and_its_sms_carries_the_map_link(
    client: TestClient,
    db: Session,
    settings: Settings,
    tag_of: Callable[..., tuple[Resident, str]],
) -> None:
    _resident, code = tag_of("finder_alerts")
    status_url = report(client, code, message="by the gate", **WHERE).headers["location"]
    incident = the_incident(db)
    assert incident.status is IncidentStatus.notifying
    [sms] = [r for r in rows_of(db, incident) if r.kind.value == "sms" and r.contact_id]
    text = render(db, sms, settings).body  # type: ignore[union-attr]
    db.commit()  # rendering made the son's answer link
    assert MAP in text and "/r/" in text and "Wang" not in text
    page = client.get(status_url)
    assert "The family has been told" not in page.text  # nothing handed over yet
    sms.status = OutboxStatus.sent
    db.merge(sms)
    db.commit()
    page = client.get(status_url)
    assert 'data-progress="family_told"' in page.text
    incidents.confirm(session=db, incident=the_incident(db), via="answer_link")
    db.commit()
    assert "Someone is on the way" in client.get(status_url).text


def test_the_status_page_speaks_the_language_of_the_finders_browser(
    client: TestClient, tag_of: Callable[..., tuple[Resident, str]]
) -> None:
    _resident, code = tag_of()
    status_url = report(client, code).headers["location"]
    english = client.get(status_url, headers={"accept-language": "en"}).text
    chinese = client.get(status_url, headers={"accept-language": "zh-CN,zh;q=0.9"}).text
    korean = client.get(status_url, headers={"accept-language": "ko-KR"}).text
    assert "The office has it" in english
    assert "The office has it" not in chinese and 'lang="zh-CN"' in chinese
    assert "The office has it" not in korean and 'lang="ko-KR"' in korean
    for text in (english, chinese, korean):
        for personal in PERSONAL:
            assert personal not in text


def test_an_unknown_status_link_gets_the_closed_link_page(client: TestClient) -> None:
    for token in ("not-a-real-token-0", "x"):
        response = client.get(f"/f/{token}")
        assert response.status_code == 404 and "This alert is closed" in response.text


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ("x" * (public_reports.MESSAGE_MAX + 1), "shorten the message to 500"),
        ("by the gate\x07", "shorten the message to 500 characters, in plain text"),
        ("by the gate\x00", "shorten the message to 500 characters, in plain text"),
    ],
)
def test_a_message_too_long_or_with_control_characters_is_refused_with_words(
    client: TestClient,
    db: Session,
    tag_of: Callable[..., tuple[Resident, str]],
    message: str,
    words: str,
) -> None:
    _resident, code = tag_of()
    response = report(client, code, message=message)
    assert response.status_code == 422 and words in response.text
    assert db.exec(select(Incident)).all() == []


def test_coordinates_that_are_not_on_the_globe_are_refused(
    client: TestClient, db: Session, tag_of: Callable[..., tuple[Resident, str]]
) -> None:
    _resident, code = tag_of()
    for where in (
        {"latitude": "91", "longitude": "0"},
        {"latitude": "nan", "longitude": "1"},
        {"latitude": "north", "longitude": "1"},
        {"latitude": "22.3"},
    ):
        response = report(client, code, **where)
        assert response.status_code == 422, where
        assert "The location could not be read" in response.text
    assert db.exec(select(Incident)).all() == []


def test_a_second_finders_report_is_a_note_on_the_running_incident(
    client: TestClient, db: Session, tag_of: Callable[..., tuple[Resident, str]]
) -> None:
    _resident, code = tag_of()
    report(client, code, message="first finder")
    client.cookies.clear()
    report(client, code, message="second finder", **WHERE)
    incident = the_incident(db)
    types = [e.type for e in events_of(db, incident)]
    assert types.count("public_report") == 2 and "report_repeated" in types
    notes = [e.detail["text"] for e in events_of(db, incident) if e.type == "note"]
    assert notes == ["first finder", "second finder"]
    assert incident.latitude == 22.28012  # it had none: the second finder's


@pytest.mark.parametrize("close", ["resolve", "cancel"])
def test_the_finders_location_is_erased_when_the_incident_closes(
    client: TestClient,
    db: Session,
    tag_of: Callable[..., tuple[Resident, str]],
    close: str,
) -> None:
    _resident, code = tag_of()
    status_url = report(client, code, **WHERE).headers["location"]
    incident = the_incident(db)
    assert incident.latitude is not None
    if close == "resolve":
        incidents.resolve(
            session=db,
            actor=SYSTEM,
            incident_id=incident.id,
            data=Resolution(outcome=Outcome.handed_over, handed_to="son"),
        )
    else:
        incidents.cancel(session=db, actor=SYSTEM, incident_id=incident.id)
    db.commit()
    incident = the_incident(db)
    assert incident.latitude is None and incident.longitude is None
    assert "finder_location_erased" in [e.type for e in events_of(db, incident)]
    closed = client.get(status_url)
    assert "This report is closed" in closed.text and 'http-equiv="refresh"' not in closed.text


def test_a_guards_coordinates_are_kept_when_a_guard_reported_it(
    db: Session, tag_of: Callable[..., tuple[Resident, str]]
) -> None:
    resident, _code = tag_of()
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(
            resident_id=resident.id, latitude=22.3, longitude=114.2, client_request_id="g" * 10
        ),
    )
    incidents.cancel(session=db, actor=SYSTEM, incident_id=opened.incident.id)
    db.commit()
    assert the_incident(db).latitude == 22.3


def test_care_tips_show_only_with_their_consent_and_never_medical_notes_or_the_unit(
    client: TestClient, db: Session, tag_of: Callable[..., tuple[Resident, str]]
) -> None:
    tips = "May be confused\nSpeaks Mandarin\nCalm him by talking about his grandson"
    _without, plain = tag_of(public_care_tips=tips)
    page = client.get(f"/t/{plain}").text
    for personal in PERSONAL:
        assert personal not in page
    assert "data-care-tips" not in page

    _with, shown = tag_of("public_care_tips", unit="1610", public_care_tips=tips)
    page = client.get(f"/t/{shown}").text
    assert "Mr. Wang" in page and "Speaks Mandarin" in page and "grandson" in page
    for hidden in ("Alzheimer", "1610", "Wang Jianguo", "Wang Lei", "9123"):
        assert hidden not in page
    status_url = report(client, shown).headers["location"]
    assert "Speaks Mandarin" in client.get(status_url).text


def test_care_tips_are_at_most_three_lines_and_staff_edit_them_through_the_api(
    client: TestClient,
    tag_of: Callable[..., tuple[Resident, str]],
    headers_for: Callable[..., dict[str, str]],
) -> None:
    resident, _code = tag_of()
    staff = headers_for("staff")
    url = f"/api/v1/residents/{resident.id}"
    too_many = client.patch(url, headers=staff, json={"public_care_tips": "a\nb\nc\nd"})
    assert too_many.status_code == 422 and "at most 3 short lines" in too_many.text
    too_long = client.patch(url, headers=staff, json={"public_care_tips": "x" * 301})
    assert too_long.status_code == 422
    saved = client.patch(url, headers=staff, json={"public_care_tips": "Speaks Mandarin\n\n"})
    assert saved.status_code == 200 and saved.json()["public_care_tips"] == "Speaks Mandarin"


def test_the_page_says_in_danger_call_999_first_and_shows_the_voice_line(
    client: TestClient,
    db: Session,
    settings: Settings,
    site: Site,
    tag_of: Callable[..., tuple[Resident, str]],
) -> None:
    _resident, code = tag_of()
    site.voice_number = "+85230001234"
    db.add(site)
    db.commit()
    page = client.get(f"/t/{code}").text
    assert page.index("data-emergency") < page.index("<h1>")
    assert 'href="tel:999"' in page
    assert 'href="tel:+85230001234"' in page
    reference = public_reports.call_reference(settings.secret_key, code)
    assert len(reference) == public_reports.CALL_REFERENCE_DIGITS and reference.isdigit()
    assert reference in page


def test_staff_see_public_reports_and_a_false_alarm_stops_everything(
    client: TestClient,
    db: Session,
    site: Site,
    tag_of: Callable[..., tuple[Resident, str]],
    guard_on_duty: User,
    make_user: Callable[..., User],
    page_login: Callable[..., str],
) -> None:
    _resident, code = tag_of("finder_alerts")
    status_url = report(client, code, **WHERE).headers["location"]
    incident = the_incident(db)
    assert {r.status for r in rows_of(db, incident)} == {OutboxStatus.pending}
    csrf = page_login(make_user("staff", [site]))
    listing = client.get("/console/public-reports", headers=HTML)
    assert listing.status_code == 200 and incident.reference in listing.text
    assert f"/console/incidents/{incident.id}/false-alarm" in listing.text
    closed = client.post(
        f"/console/incidents/{incident.id}/false-alarm",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert closed.status_code == 303
    incident = the_incident(db)
    assert incident.status is IncidentStatus.cancelled and incident.outcome is Outcome.false_alarm
    assert incident.latitude is None
    assert {r.status for r in rows_of(db, incident)} == {OutboxStatus.cancelled}
    after = client.get(closed.headers["location"], headers=HTML).text
    assert "Closed as a false alarm" in after and "/false-alarm" not in after
    # Nothing left anywhere: not on the guard's phone, not on the finder's page.
    page_login(guard_on_duty)
    assert client.get(f"/guard/alerts/{incident.id}", headers=HTML).status_code == 404
    client.cookies.clear()
    assert "This report is closed" in client.get(status_url).text


def test_a_false_alarm_is_for_public_reports_only_and_for_staff(
    client: TestClient,
    db: Session,
    site: Site,
    tag_of: Callable[..., tuple[Resident, str]],
    make_user: Callable[..., User],
    page_login: Callable[..., str],
) -> None:
    resident, _code = tag_of()
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(resident_id=resident.id, client_request_id="guard-report-1"),
    )
    db.commit()
    csrf = page_login(make_user("staff", [site]))
    refused = client.post(
        f"/console/incidents/{opened.incident.id}/false-alarm",
        data={"csrf_token": csrf},
        headers=HTML,
        follow_redirects=False,
    )
    assert refused.status_code == 404
    assert the_incident(db).status is IncidentStatus.notifying


def test_the_consent_page_offers_the_two_new_scopes_in_words(
    client: TestClient,
    db: Session,
    site: Site,
    tag_of: Callable[..., tuple[Resident, str]],
    make_user: Callable[..., User],
    page_login: Callable[..., str],
    headers_for: Callable[..., dict[str, str]],
) -> None:
    resident, _code = tag_of("finder_alerts", "public_care_tips")
    body = client.get(
        f"/api/v1/residents/{resident.id}/consents", headers=headers_for("staff")
    ).json()
    scopes = {s for consent in body["items"] for s in consent["scopes"]}
    assert {"finder_alerts", "public_care_tips"} <= scopes
    page_login(make_user("staff", [site]))
    page = client.get(f"/console/residents/{resident.id}", headers=HTML).text
    assert "Tell the family when a passer-by finds them" in page
    assert "Show a passer-by the preferred name and care tips" in page
