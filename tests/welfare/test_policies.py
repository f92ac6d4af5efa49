from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session

from welfare.incidents.models import Incident
from welfare.residents.models import Contact, Resident
from welfare.sites.models import Site

Headers = Callable[..., dict[str, str]]


def _resident(
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> Resident:
    resident = make_resident()
    make_consent(resident)
    make_contact(resident, phone="9123 4567")
    make_contact(resident, phone="6123 4567")
    return resident


def _offsets(db: Session, incident_id: str) -> list[int]:
    db.expire_all()
    incident = db.get(Incident, uuid.UUID(incident_id))
    assert incident is not None
    offsets = [s["offset_seconds"] for s in incident.escalation["steps"]]
    db.rollback()
    return offsets


def test_default_then_site_then_resident_policy(
    client: TestClient,
    site: Site,
    headers_for: Headers,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> None:
    resident = _resident(make_resident, make_consent, make_contact)
    manager = headers_for("manager")
    url = f"/api/v1/residents/{resident.id}/escalation-policy"
    assert client.get(url, headers=manager).json()["source"] == "default"
    site_url = f"/api/v1/sites/{site.id}/escalation-policy"
    body = client.put(site_url, headers=manager, json={"contact_interval_seconds": 60}).json()
    assert body["source"] == "site" and body["contact_interval_seconds"] == 60
    assert client.get(url, headers=manager).json()["source"] == "site"
    mine = client.put(url, headers=manager, json={"channels": ["voice"], "urgent": True}).json()
    assert mine["source"] == "resident" and mine["channels"] == ["voice"] and mine["urgent"]
    assert client.delete(url, headers=manager).status_code == 204
    assert client.get(url, headers=manager).json()["source"] == "site"


def test_new_incidents_snapshot_the_policy_and_running_ones_keep_theirs(
    client: TestClient,
    db: Session,
    site: Site,
    headers_for: Headers,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> None:
    manager, guard = headers_for("manager"), headers_for("guard")
    site_url = f"/api/v1/sites/{site.id}/escalation-policy"
    client.put(site_url, headers=manager, json={"contact_interval_seconds": 60})
    first = _resident(make_resident, make_consent, make_contact)
    running = client.post(
        "/api/v1/incidents",
        headers=guard,
        json={"resident_id": str(first.id), "client_request_id": uuid.uuid4().hex},
    ).json()["id"]
    assert _offsets(db, running) == [0, 60, 120, 120, 180]
    client.put(site_url, headers=manager, json={"contact_interval_seconds": 300})
    assert _offsets(db, running) == [0, 60, 120, 120, 180]  # unchanged by the later edit
    second = _resident(make_resident, make_consent, make_contact)
    later = client.post(
        "/api/v1/incidents",
        headers=guard,
        json={"resident_id": str(second.id), "client_request_id": uuid.uuid4().hex},
    ).json()["id"]
    assert _offsets(db, later) == [0, 300, 600, 600, 900]


def test_bad_policies_are_422(client: TestClient, site: Site, headers_for: Headers) -> None:
    url = f"/api/v1/sites/{site.id}/escalation-policy"
    manager = headers_for("manager")
    for body in (
        {"contact_interval_seconds": 5},
        {"channels": []},
        {"channels": ["fax"]},
        {"repeat_list": 9},
        {"manager_after_seconds": -1},
    ):
        assert client.put(url, headers=manager, json=body).status_code == 422, body
