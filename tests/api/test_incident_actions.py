"""What staff and guards do on a running incident: who may close it, whom a note is for, and the
audit entry every change of its state leaves."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from welfare.audit.models import AuditEntry
from welfare.residents.models import Contact, Resident
from welfare.sites.models import Site
from welfare.users.models import User

Headers = Callable[..., dict[str, str]]


@pytest.fixture
def wang(
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> Resident:
    resident = make_resident()
    make_consent(resident)
    make_contact(resident, relationship="son", phone="9123 4567")
    return resident


def _open(client: TestClient, headers: dict[str, str], **body: Any) -> Any:
    body.setdefault("client_request_id", uuid.uuid4().hex)
    response = client.post("/api/v1/incidents", headers=headers, json=body)
    assert response.status_code in (200, 201), response.text
    return response


def _notes(client: TestClient, headers: dict[str, str], incident_id: str) -> list[dict[str, Any]]:
    body = client.get(f"/api/v1/incidents/{incident_id}", headers=headers).json()
    return [e["detail"] for e in body["timeline"] if e["type"] == "note"]


def _stream_notes(client: TestClient, headers: dict[str, str], incident_id: str) -> str:
    response = client.get(
        f"/api/v1/incidents/{incident_id}/events",
        headers=headers,
        params={"max_seconds": 0.1},
    )
    assert response.status_code == 200
    return response.text


def test_a_guard_who_neither_reported_nor_claimed_cannot_close_the_incident(
    client: TestClient,
    site: Site,
    wang: Resident,
    make_user: Callable[..., User],
    login: Callable[..., dict[str, str]],
) -> None:
    reporter = login(make_user("guard", [site]))
    colleague = login(make_user("guard", [site]))
    incident_id = _open(client, reporter, resident_id=str(wang.id)).json()["id"]

    for verb, body in (("resolve", {"outcome": "false_alarm"}), ("cancel", None)):
        refused = client.post(
            f"/api/v1/incidents/{incident_id}/{verb}", headers=colleague, json=body
        )
        assert refused.status_code == 403
        assert "reported or claimed" in refused.json()["detail"]
    assert client.get(f"/api/v1/incidents/{incident_id}", headers=colleague).json()["status"] == (
        "notifying"
    )
    # Claiming it makes the colleague a responder, who may then close it.
    assert client.post(f"/api/v1/incidents/{incident_id}/claim", headers=colleague).is_success
    done = client.post(
        f"/api/v1/incidents/{incident_id}/resolve",
        headers=colleague,
        json={"outcome": "handed_over", "handed_to": "son"},
    )
    assert done.status_code == 200
    assert done.json()["status"] == "resolved"


def test_staff_notes_are_for_staff_unless_meant_for_everyone(
    client: TestClient,
    site: Site,
    wang: Resident,
    make_user: Callable[..., User],
    login: Callable[..., dict[str, str]],
    headers_for: Headers,
) -> None:
    guard = login(make_user("guard", [site]))
    staff = headers_for("staff")
    incident_id = _open(client, guard, resident_id=str(wang.id)).json()["id"]
    for text, visibility in (
        ("on insulin, check his sugar", None),
        ("daughter has dementia too", "staff"),
        ("son is coming by taxi", "everyone"),
    ):
        body = {"text": text} | ({"visibility": visibility} if visibility else {})
        added = client.post(f"/api/v1/incidents/{incident_id}/notes", headers=staff, json=body)
        assert added.status_code == 200
    assert client.post(
        f"/api/v1/incidents/{incident_id}/notes", headers=guard, json={"text": "he is calm now"}
    ).is_success

    staff_sees = [n.get("text") for n in _notes(client, staff, incident_id)]
    assert staff_sees == [
        "on insulin, check his sugar",
        "daughter has dementia too",
        "son is coming by taxi",
        "he is calm now",
    ]
    guard_sees = [n.get("text") for n in _notes(client, guard, incident_id)]
    assert guard_sees == [None, None, "son is coming by taxi", "he is calm now"]
    stream = _stream_notes(client, guard, incident_id)
    assert "son is coming by taxi" in stream
    assert "insulin" not in stream and "dementia" not in stream
    assert "insulin" in _stream_notes(client, staff, incident_id)


def test_a_guard_cannot_hide_a_note_from_other_guards(
    client: TestClient,
    site: Site,
    wang: Resident,
    make_user: Callable[..., User],
    login: Callable[..., dict[str, str]],
) -> None:
    guard = login(make_user("guard", [site]))
    incident_id = _open(client, guard, resident_id=str(wang.id)).json()["id"]
    refused = client.post(
        f"/api/v1/incidents/{incident_id}/notes",
        headers=guard,
        json={"text": "x", "visibility": "staff"},
    )
    assert refused.status_code == 403


def test_every_change_of_an_incidents_state_is_in_the_audit(
    client: TestClient,
    db: Session,
    site: Site,
    wang: Resident,
    make_user: Callable[..., User],
    login: Callable[..., dict[str, str]],
    headers_for: Headers,
) -> None:
    guard_user = make_user("guard", [site])
    guard = login(guard_user)
    staff = headers_for("staff")
    first = _open(client, guard, resident_id=str(wang.id)).json()["id"]
    client.post(f"/api/v1/incidents/{first}/claim", headers=headers_for("guard"))
    client.post(f"/api/v1/incidents/{first}/notes", headers=staff, json={"text": "called"})
    client.post(f"/api/v1/incidents/{first}/acknowledge", headers=staff, json={})
    client.post(
        f"/api/v1/incidents/{first}/resolve", headers=guard, json={"outcome": "returned_home"}
    )
    second = _open(client, guard, resident_id=str(wang.id)).json()["id"]
    assert client.post(f"/api/v1/incidents/{second}/cancel", headers=staff).is_success

    db.expire_all()
    entries = db.exec(
        select(AuditEntry).where(AuditEntry.entity == "incident").order_by(AuditEntry.id)
    ).all()
    trail = [(e.action, e.entity_id) for e in entries]
    assert trail == [
        ("incident.open", first),
        ("incident.claim", first),
        ("incident.note", first),
        ("incident.confirm", first),
        ("incident.resolve", first),
        ("incident.open", second),
        ("incident.cancel", second),
    ]
    resolve = next(e for e in entries if e.action == "incident.resolve")
    assert resolve.actor_id == guard_user.id
    assert resolve.resident_id == wang.id
    assert "called" not in str([e.detail for e in entries])  # the note's words stay out


def test_an_unknown_person_report_retried_answers_its_incident(
    client: TestClient, site: Site, make_user: Callable[..., User], login: Callable[..., Any]
) -> None:
    guard = login(make_user("guard", [site]))
    body = {"description": "grey coat, asks for his wife", "client_request_id": uuid.uuid4().hex}
    first = client.post("/api/v1/incidents", headers=guard, json=body)
    again = client.post("/api/v1/incidents", headers=guard, json=body)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]


def test_resolving_through_the_api_shows_the_all_clear_queued_for_the_son(
    client: TestClient,
    site: Site,
    wang: Resident,
    make_user: Callable[..., User],
    login: Callable[..., dict[str, str]],
    writers: Any,
    settings: Any,
) -> None:
    from notifications.dispatcher import Dispatcher
    from tests.notifications.fake_channel import FakeChannel

    guard = login(make_user("guard", [site]))
    incident_id = _open(client, guard, resident_id=str(wang.id)).json()["id"]
    assert Dispatcher(writers, FakeChannel(), settings).run_once() == 2  # the son's SMS and call
    done = client.post(
        f"/api/v1/incidents/{incident_id}/resolve", headers=guard, json={"outcome": "handed_over"}
    )
    assert done.status_code == 200
    body = client.get(f"/api/v1/incidents/{incident_id}", headers=guard).json()
    clears = [n for n in body["notifications"] if n["template"] == "all_clear"]
    assert [(n["channel"], n["status"], n["recipient"]) for n in clears] == [
        ("sms", "pending", "contact")
    ]
    assert [e["type"] for e in body["timeline"]].count("all_clear_queued") == 1
