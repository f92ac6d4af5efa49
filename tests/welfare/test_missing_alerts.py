"""Missing residents: on-duty guards are alerted, see what helps them recognise the person, and a
'found' on the alert continues as the found flow."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from notifications.dispatcher import render
from welfare.audit.models import AuditEntry
from welfare.outbox.models import OutboxMessage
from welfare.residents.models import Contact, Resident
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.users.models import User

Headers = Callable[..., dict[str, str]]


@pytest.fixture
def park(
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
    make_household: Callable[..., Any],
) -> Resident:
    resident = make_resident(
        household=make_household("A", "14"),
        full_name="Park Soon-ja",
        preferred_name="Mrs. Park",
        languages=["ko-KR"],
        clothing="purple cardigan",
        walking_aid="a green walking frame",
        places=["Korean grocery"],
        medical_notes="hypertension",
    )
    make_consent(resident)
    make_contact(resident, relationship="son", phone="+82 10-1234-5678", language="ko-KR")
    return resident


def _missing(client: TestClient, headers: dict[str, str], resident: Resident) -> Any:
    return client.post(
        "/api/v1/incidents",
        headers=headers,
        json={
            "kind": "missing",
            "resident_id": str(resident.id),
            "location": "left home at 9am",
            "client_request_id": uuid.uuid4().hex,
        },
    )


def _rows(db: Session, incident_id: str) -> list[OutboxMessage]:
    db.expire_all()
    rows = list(
        db.exec(
            select(OutboxMessage).where(OutboxMessage.incident_id == uuid.UUID(incident_id))
        ).all()
    )
    db.expunge_all()
    db.rollback()
    return rows


def test_on_duty_guards_get_an_sms_and_off_duty_ones_do_not(
    client: TestClient,
    db: Session,
    park: Resident,
    site: Site,
    settings: Settings,
    make_user: Callable[..., User],
    login: Callable[..., dict[str, str]],
    headers_for: Headers,
) -> None:
    on = make_user("guard", [site], phone="9345 1609")
    make_user("guard", [site], phone="9345 1610")  # never goes on duty
    duty = client.post("/api/v1/me/duty", headers=login(on), json={"on_duty": True})
    assert duty.status_code == 200 and duty.json()["on_duty_since"]
    body = _missing(client, headers_for("staff"), park).json()
    assert body["status"] == "open" and body["kind"] == "missing"
    assert "guards_alerted" in [e["type"] for e in body["timeline"]]
    rows = _rows(db, body["id"])
    assert [(r.to_phone, r.template) for r in rows] == [("+85293451609", "missing_alert")]
    text = render(db, rows[0], settings).body  # type: ignore[union-attr]
    assert f"https://welfare.test/guard/alerts/{body['id']}" in text and "Park" not in text
    assert "/api/" not in text


def test_guard_sees_the_alert_card_without_health_data_and_each_view_is_audited(
    client: TestClient, db: Session, park: Resident, headers_for: Headers
) -> None:
    incident_id = _missing(client, headers_for("staff"), park).json()["id"]
    guard = headers_for("guard")
    cards = client.get("/api/v1/alerts", headers=guard).json()["items"]
    assert [c["incident_id"] for c in cards] == [incident_id]
    card = client.get(f"/api/v1/alerts/{incident_id}", headers=guard).json()
    assert card["clothing"] == "purple cardigan" and card["places"] == ["Korean grocery"]
    assert card["walking_aid"] == "a green walking frame"
    assert card["unit"] == "A-14" and card["last_seen"] == "left home at 9am"
    assert "medical_notes" not in card and "hypertension" not in str(card)
    entries = db.exec(select(AuditEntry).where(AuditEntry.action == "alert.read")).all()
    assert len(entries) == 2 and all(e.purpose == f"incident {incident_id}" for e in entries)


def test_found_on_a_missing_alert_continues_as_the_found_flow(
    client: TestClient, db: Session, park: Resident, headers_for: Headers
) -> None:
    incident_id = _missing(client, headers_for("staff"), park).json()["id"]
    guard = headers_for("guard")
    found = client.post(
        "/api/v1/incidents",
        headers=guard,
        json={
            "resident_id": str(park.id),
            "client_request_id": uuid.uuid4().hex,
            "location": "garden bench by Building A",
        },
    )
    assert found.status_code == 200 and found.json()["id"] == incident_id
    assert found.json()["kind"] == "found" and found.json()["status"] == "notifying"
    assert {r.to_phone for r in _rows(db, incident_id)} == {"+821012345678"}
    assert client.get(f"/api/v1/alerts/{incident_id}", headers=guard).status_code == 404


def test_alerts_of_another_site_stay_invisible(
    client: TestClient, park: Resident, headers_for: Headers, make_site: Callable[..., Site]
) -> None:
    incident_id = _missing(client, headers_for("staff"), park).json()["id"]
    outsider = headers_for("guard", [make_site(name="Elsewhere")])
    assert client.get("/api/v1/alerts", headers=outsider).json()["total"] == 0
    assert client.get(f"/api/v1/alerts/{incident_id}", headers=outsider).status_code == 404


def test_going_off_duty_clears_the_flag(client: TestClient, headers_for: Headers) -> None:
    guard = headers_for("guard")
    client.post("/api/v1/me/duty", headers=guard, json={"on_duty": True})
    off = client.post("/api/v1/me/duty", headers=guard, json={"on_duty": False}).json()
    assert off["on_duty_since"] is None
    assert (
        client.post("/api/v1/me/duty", headers=guard, json={"on_duty": "maybe"}).status_code == 422
    )
