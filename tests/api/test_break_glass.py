"""Break-glass access: the guard who reported or claimed an incident sees the resident's card and
household while it is open, and only then; every view is audited with the incident as purpose."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from welfare.audit.models import AuditEntry
from welfare.incidents.models import IncidentEvent
from welfare.residents.models import Contact, Resident
from welfare.sites.models import Site
from welfare.users.models import User

Headers = Callable[..., dict[str, str]]


@pytest.fixture
def wang(
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
    make_household: Callable[..., Any],
) -> Resident:
    resident = make_resident(household=make_household("1", "1609"), places=["meter room"])
    make_consent(resident)
    make_contact(resident, name="Wang Lei", relationship="son", phone="+852 9123 4567")
    make_contact(resident, name="Wang Mei", relationship="daughter", phone="+852 9876 5432")
    return resident


def _report(client: TestClient, headers: dict[str, str], resident: Resident, kind: str = "found"):
    response = client.post(
        "/api/v1/incidents",
        headers=headers,
        json={"kind": kind, "resident_id": str(resident.id), "client_request_id": uuid.uuid4().hex},
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _audits(db: Session, action: str) -> list[AuditEntry]:
    db.expire_all()
    rows = list(db.exec(select(AuditEntry).where(AuditEntry.action == action)).all())
    db.rollback()
    return rows


def test_reporting_guard_sees_card_and_household_without_phones_or_health_data(
    client: TestClient, db: Session, wang: Resident, site: Site, headers_for: Headers
) -> None:
    guard = headers_for("guard")
    incident_id = _report(client, guard, wang)

    response = client.get(f"/api/v1/incidents/{incident_id}/resident", headers=guard)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["preferred_name"] == "Mr. Wang"
    assert body["approach"] == "Talk about his grandson."
    assert body["places"] == ["meter room"]
    assert body["household"]["unit_label"] == "1-1609"
    assert [(c["name"], c["relationship"]) for c in body["contacts"]] == [
        ("Wang Lei", "son"),
        ("Wang Mei", "daughter"),
    ]
    text = response.text
    for secret in ("91234567", "9123 4567", "98765432", "9876 5432", "+852", "Alzheimer"):
        assert secret not in text
    entries = _audits(db, "incident.resident_read")
    assert len(entries) == 1
    assert entries[0].purpose == f"incident {incident_id}"
    assert entries[0].entity_id == incident_id
    assert entries[0].resident_id == wang.id


def test_other_guards_may_not_until_they_claim(
    client: TestClient, db: Session, wang: Resident, headers_for: Headers
) -> None:
    incident_id = _report(client, headers_for("guard"), wang)
    colleague = headers_for("guard")
    url = f"/api/v1/incidents/{incident_id}/resident"

    assert client.get(url, headers=colleague).status_code == 403
    assert _audits(db, "incident.resident_read") == []

    claimed = client.post(f"/api/v1/incidents/{incident_id}/claim", headers=colleague)
    assert claimed.status_code == 201, claimed.text
    again = client.post(f"/api/v1/incidents/{incident_id}/claim", headers=colleague)
    assert again.status_code == 200
    assert [e["type"] for e in again.json()["timeline"]].count("claimed") == 1

    assert client.get(url, headers=colleague).status_code == 200
    assert len(_audits(db, "incident.resident_read")) == 1


def test_access_ends_when_the_incident_closes(
    client: TestClient, wang: Resident, headers_for: Headers
) -> None:
    guard = headers_for("guard")
    incident_id = _report(client, guard, wang)
    url = f"/api/v1/incidents/{incident_id}/resident"
    assert client.get(url, headers=guard).status_code == 200

    resolved = client.post(
        f"/api/v1/incidents/{incident_id}/resolve",
        headers=guard,
        json={"outcome": "handed_over", "handed_to": "son"},
    )
    assert resolved.status_code == 200

    after = client.get(url, headers=guard)
    assert after.status_code == 403
    assert "ended" in after.json()["detail"]
    assert client.post(f"/api/v1/incidents/{incident_id}/claim", headers=guard).status_code == 409


def test_cancelled_incident_ends_a_claimants_access(
    client: TestClient, wang: Resident, headers_for: Headers
) -> None:
    staff = headers_for("staff")
    incident_id = _report(client, staff, wang, kind="missing")
    guard = headers_for("guard")
    assert client.post(f"/api/v1/incidents/{incident_id}/claim", headers=guard).status_code == 201
    url = f"/api/v1/incidents/{incident_id}/resident"
    assert client.get(url, headers=guard).status_code == 200

    assert client.post(f"/api/v1/incidents/{incident_id}/cancel", headers=staff).status_code == 200
    assert client.get(url, headers=guard).status_code == 403


def test_guards_of_another_site_see_nothing(
    client: TestClient,
    wang: Resident,
    headers_for: Headers,
    make_site: Callable[..., Site],
) -> None:
    incident_id = _report(client, headers_for("guard"), wang)
    stranger = headers_for("guard", [make_site(name="Elsewhere")])
    assert (
        client.post(f"/api/v1/incidents/{incident_id}/claim", headers=stranger).status_code == 404
    )
    assert (
        client.get(f"/api/v1/incidents/{incident_id}/resident", headers=stranger).status_code == 404
    )


def test_unknown_person_has_no_resident_to_show(
    client: TestClient, site: Site, headers_for: Headers
) -> None:
    guard = headers_for("guard")
    response = client.post(
        "/api/v1/incidents",
        headers=guard,
        json={"description": "man in a grey coat", "client_request_id": uuid.uuid4().hex},
    )
    assert response.status_code == 201, response.text
    url = f"/api/v1/incidents/{response.json()['id']}/resident"
    assert client.get(url, headers=guard).status_code == 404


def test_claim_is_on_the_timeline_with_the_guard_as_actor(
    client: TestClient,
    db: Session,
    wang: Resident,
    make_user: Callable[..., User],
    login: Callable[..., dict[str, str]],
    site: Site,
    headers_for: Headers,
) -> None:
    incident_id = _report(client, headers_for("staff"), wang)
    guard = make_user("guard", [site])
    assert (
        client.post(f"/api/v1/incidents/{incident_id}/claim", headers=login(guard)).status_code
        == 201
    )
    db.expire_all()
    events = db.exec(
        select(IncidentEvent)
        .where(IncidentEvent.incident_id == uuid.UUID(incident_id), IncidentEvent.type == "claimed")
        .order_by(col(IncidentEvent.id))
    ).all()
    db.rollback()
    assert [(e.actor, e.actor_id) for e in events] == [("guard", guard.id)]


def test_withdrawing_the_lost_person_scope_ends_the_responders_view_of_an_open_incident(
    client: TestClient,
    db: Session,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
    headers_for: Headers,
) -> None:
    """The registry stays (no erasure): the incident stays open, but the consent the view rests
    on is gone, so the guard who reported it sees the resident no more (and nothing is read)."""
    resident = make_resident()
    make_consent(resident, scopes=["registry", "welfare_visits", "photo"])
    response_consent = make_consent(
        resident, scopes=["lost_person_response", "share_with_responders"]
    )
    make_contact(resident, name="Wang Lei", relationship="son", phone="+852 9123 4567")
    guard = headers_for("guard")
    incident_id = _report(client, guard, resident)
    url = f"/api/v1/incidents/{incident_id}/resident"
    assert client.get(url, headers=guard).status_code == 200

    withdrawn = client.post(
        f"/api/v1/residents/{resident.id}/consents/{response_consent.id}/withdraw",
        headers=headers_for("staff"),
        json={"reason": "family's wish"},
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert client.get(f"/api/v1/incidents/{incident_id}", headers=guard).json()["status"] == (
        "notifying"
    )
    after = client.get(url, headers=guard)
    assert after.status_code == 404
    assert "Mr. Wang" not in after.text and "grandson" not in after.text
    assert len(_audits(db, "incident.resident_read")) == 1  # the view before, none after


def test_a_consent_overdue_for_review_still_opens_the_responders_view(
    client: TestClient,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    headers_for: Headers,
) -> None:
    """Overdue for review is 'unverified', still usable in an emergency (README)."""
    resident = make_resident()
    make_consent(
        resident,
        given_at=dt.datetime(2025, 1, 6, tzinfo=dt.UTC),
        review_due=dt.datetime(2025, 7, 6, tzinfo=dt.UTC),
    )
    staff = headers_for("staff")
    state = client.get(f"/api/v1/residents/{resident.id}", headers=staff).json()["consent_state"]
    assert state == "unverified"
    guard = headers_for("guard")
    incident_id = _report(client, guard, resident)
    response = client.get(f"/api/v1/incidents/{incident_id}/resident", headers=guard)
    assert response.status_code == 200, response.text
    assert response.json()["approach"] == "Talk about his grandson."
