"""Staff raise a missing-resident alert from the console: preview, confirm, the guards' alert."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from notifications.channels import Text
from notifications.dispatcher import render
from welfare.audit.models import AuditEntry
from welfare.db import utcnow
from welfare.incidents.models import Incident, IncidentEvent, IncidentKind
from welfare.outbox.models import OutboxMessage
from welfare.residents.models import Resident
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.users.models import User

HTML = {"accept": "text/html"}
ARTICLE = re.compile(r'<article class="card alert-detail">.*?</article>', re.S)


@pytest.fixture
def park(make_resident: Callable[..., Resident], make_consent: Callable[..., Any]) -> Resident:
    resident = make_resident(
        full_name="Park Soon-ja",
        preferred_name="Mrs. Park",
        languages=["ko-KR"],
        clothing="red cardigan",
        places=["the bus stop on Harbour Road"],
        medical_notes="Alzheimer's disease",
    )
    make_consent(resident)
    return resident


@pytest.fixture
def guard_on_duty(db: Session, site: Site, make_user: Callable[..., User]) -> User:
    guard = make_user("guard", [site], phone="9345 1609")
    row = db.get(User, guard.id)
    assert row is not None
    row.on_duty_since = utcnow()
    db.add(row)
    db.commit()
    return guard


def _raise(client: TestClient, resident: Resident, csrf: str, **fields: str) -> Any:
    page = client.get(f"/console/residents/{resident.id}/missing")
    request_id = re.search(r'name="request_id" value="([^"]+)"', page.text)
    assert request_id is not None
    data = {"csrf_token": csrf, "request_id": request_id.group(1), "action": "send", **fields}
    return client.post(
        f"/console/residents/{resident.id}/missing", data=data, follow_redirects=False
    )


def test_staff_raise_a_missing_alert_from_the_resident_page_and_guards_get_it(
    client: TestClient,
    db: Session,
    site: Site,
    settings: Settings,
    park: Resident,
    guard_on_duty: User,
    make_user: Callable[..., User],
    page_login: Callable[..., str],
) -> None:
    csrf = page_login(make_user("staff", [site]))
    record = client.get(f"/console/residents/{park.id}")
    assert f'href="/console/residents/{park.id}/missing"' in record.text
    typed = {"last_seen": "lobby of Building 2, 9:40", "clothing": "blue raincoat"}
    preview = client.post(
        f"/console/residents/{park.id}/missing",
        data={"csrf_token": csrf, "request_id": "preview-1234", "action": "preview", **typed},
    )
    assert preview.status_code == 200
    assert "lobby of Building 2, 9:40" in preview.text and "blue raincoat" in preview.text
    assert "Alzheimer" not in preview.text  # no more than guards get
    assert db.exec(select(Incident)).first() is None  # a preview raises nothing
    db.rollback()

    sent = _raise(client, park, csrf, **typed)
    assert sent.status_code == 303
    incident_id = uuid.UUID(sent.headers["location"].split("/")[-1].split("?")[0])
    assert sent.headers["location"].endswith("?done=missing")
    db.rollback()
    db.rollback()  # reading `park` above began a snapshot older than the POST
    incident = db.get(Incident, incident_id)
    assert incident is not None and incident.kind is IncidentKind.missing
    assert (incident.location, incident.description) == (typed["last_seen"], typed["clothing"])
    (sms,) = db.exec(select(OutboxMessage).where(OutboxMessage.incident_id == incident_id)).all()
    assert sms.user_id == guard_on_duty.id and sms.template == "missing_alert"
    content = render(db, sms, settings)
    assert isinstance(content, Text)
    text = content.body
    db.rollback()
    page = client.get(sent.headers["location"])
    assert "Missing alert sent to the guards on duty." in page.text
    assert "Wearing when last seen" in page.text and "blue raincoat" in page.text

    page_login(guard_on_duty)
    listing = client.get("/guard/alerts")
    assert "Mrs. Park" in listing.text and "lobby of Building 2, 9:40" in listing.text
    alert = client.get(f"/guard/alerts/{incident_id}")
    assert alert.status_code == 200 and "blue raincoat" in alert.text
    # The preview showed exactly the guard's card and SMS.
    guard_card = ARTICLE.search(alert.text)
    preview_card = ARTICLE.search(preview.text)
    assert guard_card is not None and preview_card is not None
    assert preview_card.group(0) == guard_card.group(0)
    assert text.replace(str(incident_id), "…") in preview.text


def test_the_preview_is_audited_and_says_when_no_guard_is_on_duty(
    client: TestClient,
    db: Session,
    site: Site,
    park: Resident,
    make_user: Callable[..., User],
    page_login: Callable[..., str],
) -> None:
    make_user("guard", [site], phone="9345 1610")  # not on duty
    page_login(make_user("staff", [site]))
    page = client.get(f"/console/residents/{park.id}/missing")
    assert page.status_code == 200
    assert "No guard is on duty at this site now" in page.text
    db.rollback()
    actions = db.exec(select(AuditEntry.action).where(AuditEntry.resident_id == park.id)).all()
    assert "alert.preview" in actions


def test_a_second_alert_for_the_same_resident_reuses_the_running_incident(
    client: TestClient,
    db: Session,
    site: Site,
    park: Resident,
    make_user: Callable[..., User],
    page_login: Callable[..., str],
) -> None:
    csrf = page_login(make_user("staff", [site]))
    first = _raise(client, park, csrf, last_seen="the lobby")
    again = _raise(client, park, csrf, last_seen="the car park")
    assert first.status_code == again.status_code == 303
    assert first.headers["location"].split("?")[0] == again.headers["location"].split("?")[0]
    assert again.headers["location"].endswith("?done=missing_running")
    rows = db.exec(select(Incident).where(Incident.resident_id == park.id)).all()
    assert len(rows) == 1
    types = db.exec(
        select(IncidentEvent.type)
        .where(IncidentEvent.incident_id == rows[0].id)
        .order_by(col(IncidentEvent.id))
    ).all()
    assert "report_repeated" in types


def test_a_guard_cannot_use_the_console_route(
    client: TestClient,
    db: Session,
    site: Site,
    park: Resident,
    make_user: Callable[..., User],
    page_login: Callable[..., str],
) -> None:
    csrf = page_login(make_user("guard", [site]))
    data = {"csrf_token": csrf, "request_id": "guard-try-1", "action": "send"}
    refused = client.post(
        f"/console/residents/{park.id}/missing", data=data, headers=HTML, follow_redirects=False
    )
    assert refused.status_code == 403
    page = client.get(f"/console/residents/{park.id}/missing", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/guard"
    assert db.exec(select(Incident)).first() is None


def test_without_a_lost_person_consent_no_alert_can_be_sent(
    client: TestClient,
    db: Session,
    site: Site,
    make_resident: Callable[..., Resident],
    make_user: Callable[..., User],
    page_login: Callable[..., str],
) -> None:
    unconsented = make_resident(full_name="Lee Min-ho")
    csrf = page_login(make_user("staff", [site]))
    page = client.get(f"/console/residents/{unconsented.id}/missing")
    assert page.status_code == 200 and 'value="send"' not in page.text
    refused = _raise(client, unconsented, csrf)
    assert refused.status_code == 422 and "no lost-person consent" in refused.text
    assert db.exec(select(Incident)).first() is None


def test_the_board_leads_to_the_resident_to_report_missing(
    client: TestClient,
    site: Site,
    park: Resident,
    make_user: Callable[..., User],
    page_login: Callable[..., str],
) -> None:
    page_login(make_user("staff", [site]))
    assert 'href="/console/missing"' in client.get("/console").text
    found = client.get("/console/missing", params={"q": "Park"})
    assert found.status_code == 200
    assert f'href="/console/residents/{park.id}/missing"' in found.text
