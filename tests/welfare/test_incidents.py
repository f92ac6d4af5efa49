"""The found-resident response up to the outbox: opening, escalation with a controllable clock,
confirmation and closing. (Handing rows to the provider is the dispatcher's, tested apart.)"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from tests.conftest import SYSTEM
from welfare.authz import Actor, Role
from welfare.db import utcnow
from welfare.incidents import service as incidents
from welfare.incidents.models import Incident, IncidentCreate, IncidentEvent
from welfare.outbox.models import OutboxMessage, OutboxStatus
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
    resident = make_resident(household=make_household("1", "1609"))
    make_consent(resident)
    make_contact(resident, name="Wang Lei", relationship="son", phone="9123 4567")
    make_contact(resident, name="Wang Mei", relationship="daughter", phone="6123 4567")
    return resident


def _report(client: TestClient, headers: dict[str, str], **body: Any) -> Any:
    body.setdefault("client_request_id", uuid.uuid4().hex)
    return client.post("/api/v1/incidents", headers=headers, json=body)


def _outbox(db: Session, incident_id: str | uuid.UUID) -> list[OutboxMessage]:
    db.expire_all()
    return list(
        db.exec(
            select(OutboxMessage)
            .where(OutboxMessage.incident_id == uuid.UUID(str(incident_id)))
            .order_by(col(OutboxMessage.created_at), col(OutboxMessage.kind))
        ).all()
    )


def _phones(db: Session, incident_id: str) -> list[tuple[str | None, str, str]]:
    return [(m.to_phone, m.kind.value, m.status.value) for m in _outbox(db, incident_id)]


def _advance(db: Session, incident_id: str, seconds: int) -> None:
    incident = db.get(Incident, uuid.UUID(incident_id))
    assert incident is not None
    start = dt.datetime.fromisoformat(incident.escalation["started_at"])
    incidents.advance(session=db, incident=incident, now=start + dt.timedelta(seconds=seconds))
    db.commit()


def test_found_report_queues_sms_and_call_to_the_first_contact_at_once(
    client: TestClient, db: Session, wang: Resident, headers_for: Headers
) -> None:
    response = _report(
        client,
        headers_for("guard"),
        resident_id=str(wang.id),
        location="Building 1, 3/F stairwell",
        condition="well",
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "notifying" and body["kind"] == "found"
    assert _phones(db, body["id"]) == [
        ("+85291234567", "sms", "pending"),
        ("+85291234567", "voice", "pending"),
    ]
    types = [e["type"] for e in body["timeline"]]
    assert types == ["reported", "escalation_planned", "escalation_step", "queued", "queued"]
    assert {n["channel"] for n in body["notifications"]} == {"sms", "voice"}


def test_the_reports_answer_is_what_the_incident_holds_once_committed(
    client: TestClient, wang: Resident, headers_for: Headers
) -> None:
    """The answer to a report that opened the incident is built from the rows it made before
    they were inserted: it must be exactly what reading the incident back shows."""
    guard = headers_for("guard")
    reported = _report(client, guard, resident_id=str(wang.id), location="lobby").json()
    read_back = client.get(f"/api/v1/incidents/{reported['id']}", headers=guard).json()
    assert len(reported["timeline"]) == 5 and len(reported["notifications"]) == 2
    assert reported == read_back


def test_the_same_request_twice_opens_one_incident(
    client: TestClient, db: Session, wang: Resident, headers_for: Headers
) -> None:
    guard = headers_for("guard")
    first = _report(client, guard, resident_id=str(wang.id), client_request_id="tap-0001-abc")
    again = _report(client, guard, resident_id=str(wang.id), client_request_id="tap-0001-abc")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert len(_outbox(db, first.json()["id"])) == 2
    assert len(db.exec(select(Incident)).all()) == 1


def test_an_open_incident_for_the_resident_is_reused_and_noted(
    client: TestClient, db: Session, wang: Resident, headers_for: Headers
) -> None:
    first = _report(client, headers_for("guard"), resident_id=str(wang.id)).json()
    second = _report(client, headers_for("guard"), resident_id=str(wang.id))
    assert second.status_code == 200 and second.json()["id"] == first["id"]
    assert "report_repeated" in [e["type"] for e in second.json()["timeline"]]
    assert len(_outbox(db, first["id"])) == 2


def test_escalation_moves_down_the_list_every_two_minutes_then_the_manager(
    client: TestClient,
    db: Session,
    wang: Resident,
    headers_for: Headers,
    make_user: Callable[..., User],
    site: Site,
) -> None:
    make_user(Role.manager, [site], phone="9456 1609")
    incident_id = _report(client, headers_for("guard"), resident_id=str(wang.id)).json()["id"]
    _advance(db, incident_id, 119)
    assert len(_outbox(db, incident_id)) == 2
    _advance(db, incident_id, 120)
    assert [p for p, *_ in _phones(db, incident_id)][2:] == ["+85261234567", "+85261234567"]
    _advance(db, incident_id, 240)
    phones = [p for p, *_ in _phones(db, incident_id)]
    assert sorted(phones[4:]) == ["+85291234567"] * 2 + ["+85294561609"] * 2  # manager + repeat
    _advance(db, incident_id, 240)  # running a round twice queues nothing new
    assert len(_outbox(db, incident_id)) == 8


def test_the_worker_round_picks_an_incident_only_when_a_step_is_due(
    client: TestClient, db: Session, wang: Resident, headers_for: Headers
) -> None:
    incident_id = _report(client, headers_for("guard"), resident_id=str(wang.id)).json()["id"]
    db.expire_all()
    incident = db.get(Incident, uuid.UUID(incident_id))
    assert incident is not None
    start = dt.datetime.fromisoformat(incident.escalation["started_at"])
    # The daughter's step is the next one, two minutes after the start.
    assert incident.next_step_at == start + dt.timedelta(seconds=120)
    assert incidents.due_incident_ids(db, start + dt.timedelta(seconds=119)) == []
    assert incidents.due_incident_ids(db, start + dt.timedelta(seconds=120)) == [incident.id]
    _advance(db, incident_id, 120)
    db.refresh(incident)
    assert incident.next_step_at == start + dt.timedelta(seconds=240)
    assert incidents.due_incident_ids(db, start + dt.timedelta(seconds=121)) == []


def test_quiet_hours_skip_a_contact_and_pull_the_next_forward(
    client: TestClient,
    db: Session,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
    headers_for: Headers,
) -> None:
    resident = make_resident()
    make_consent(resident)
    always_quiet = {"quiet_hours_start": "00:00:00", "quiet_hours_end": "23:59:59"}
    make_contact(resident, phone="9123 4567", **always_quiet)
    make_contact(resident, phone="6123 4567")
    body = _report(client, headers_for("guard"), resident_id=str(resident.id)).json()
    events = [e for e in body["timeline"] if e["type"] == "step_failed"]
    assert events and events[0]["detail"]["reasons"] == ["quiet hours"]
    # Pulled forward: the next contact is due when the quiet one was skipped, not 3 minutes on.
    # (Advanced to that moment rather than "a second later": a slow request must not matter.)
    incident = db.get(Incident, uuid.UUID(body["id"]))
    assert incident is not None and incident.next_step_at is not None
    started = dt.datetime.fromisoformat(incident.escalation["started_at"])
    assert incident.next_step_at - started < dt.timedelta(seconds=60)
    incidents.advance(session=db, incident=incident, now=incident.next_step_at)
    db.commit()
    assert {p for p, *_ in _phones(db, body["id"])} == {"+85261234567"}


def test_injured_makes_the_response_urgent_past_quiet_hours(
    client: TestClient,
    db: Session,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
    headers_for: Headers,
) -> None:
    resident = make_resident()
    make_consent(resident)
    make_contact(
        resident, phone="9123 4567", quiet_hours_start="00:00:00", quiet_hours_end="23:59:59"
    )
    body = _report(
        client, headers_for("guard"), resident_id=str(resident.id), condition="injured"
    ).json()
    assert {p for p, *_ in _phones(db, body["id"])} == {"+85291234567"}


def test_landline_gets_a_call_not_an_sms_and_opt_out_stops_sms(
    client: TestClient,
    db: Session,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
    headers_for: Headers,
) -> None:
    resident = make_resident()
    make_consent(resident)
    make_contact(resident, phone="2345 6789")  # an HK fixed line
    body = _report(client, headers_for("guard"), resident_id=str(resident.id)).json()
    assert [(k, s) for _, k, s in _phones(db, body["id"])] == [("voice", "pending")]


def test_staff_acknowledgement_confirms_and_cancels_what_is_pending(
    client: TestClient, db: Session, wang: Resident, headers_for: Headers
) -> None:
    incident_id = _report(client, headers_for("guard"), resident_id=str(wang.id)).json()["id"]
    sms = next(m for m in _outbox(db, incident_id) if m.kind == "sms")
    sms.status = OutboxStatus.sent  # the son's SMS went out before the daughter was reached
    db.add(sms)
    db.commit()
    _advance(db, incident_id, 120)
    daughter = [m for m in _outbox(db, incident_id) if m.to_phone == "+85261234567"]
    response = client.post(
        f"/api/v1/incidents/{incident_id}/acknowledge",
        headers=headers_for("staff"),
        json={"contact_id": str(daughter[0].contact_id)},
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "confirmed"
    rows = _outbox(db, incident_id)
    assert [m.status.value for m in rows if m.template != "coming_notice"].count("pending") == 0
    notices = [m for m in rows if m.template == "coming_notice"]
    assert [(m.to_phone, m.params["relationship"]) for m in notices] == [
        ("+85291234567", "daughter")
    ]
    _advance(db, incident_id, 10_000)  # nothing more after confirmation
    assert len(_outbox(db, incident_id)) == len(rows)
    again = client.post(
        f"/api/v1/incidents/{incident_id}/acknowledge", headers=headers_for("staff"), json={}
    )
    assert again.status_code == 409


def test_resolving_handed_over_adds_to_the_wandering_history(
    client: TestClient, db: Session, wang: Resident, headers_for: Headers
) -> None:
    guard = headers_for("guard")
    incident_id = _report(client, guard, resident_id=str(wang.id), location="3/F stairwell").json()[
        "id"
    ]
    response = client.post(
        f"/api/v1/incidents/{incident_id}/resolve",
        headers=guard,
        json={"outcome": "handed_over", "handed_to": "son"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "resolved" and body["outcome"] == "handed_over"
    types = [e["type"] for e in body["timeline"]]
    assert {"handed_over", "resolved", "photo_refresh_due"} <= set(types)
    db.expire_all()
    history = db.get(Resident, wang.id).wandering_history  # type: ignore[union-attr]
    assert history[-1]["location"] == "3/F stairwell"
    assert history[-1]["incident_id"] == incident_id
    assert all(m.status != OutboxStatus.pending for m in _outbox(db, incident_id))
    assert (
        client.post(
            f"/api/v1/incidents/{incident_id}/cancel", headers=headers_for("staff")
        ).status_code
        == 409
    )


def test_unknown_person_needs_a_description_and_opens_without_messages(
    client: TestClient, db: Session, headers_for: Headers
) -> None:
    guard = headers_for("guard")
    assert _report(client, guard).status_code == 422
    body = _report(client, guard, description="elderly man, grey coat, walking stick").json()
    assert body["resident_id"] is None and body["status"] == "open"
    assert _outbox(db, body["id"]) == []


def test_a_resident_without_lost_person_consent_cannot_be_reported_by_name(
    client: TestClient,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    headers_for: Headers,
) -> None:
    resident = make_resident()
    response = _report(client, headers_for("guard"), resident_id=str(resident.id))
    assert response.status_code == 422
    make_consent(resident, scopes=["registry", "welfare_visits"])
    assert _report(client, headers_for("guard"), resident_id=str(resident.id)).status_code == 422


def test_a_guard_of_another_site_reaches_nothing(
    client: TestClient, wang: Resident, headers_for: Headers, make_site: Callable[..., Site]
) -> None:
    incident_id = _report(client, headers_for("guard"), resident_id=str(wang.id)).json()["id"]
    outsider = headers_for("guard", [make_site(name="Elsewhere")])
    assert _report(client, outsider, resident_id=str(wang.id)).status_code == 422
    assert client.get(f"/api/v1/incidents/{incident_id}", headers=outsider).status_code == 404
    assert client.get("/api/v1/incidents", headers=outsider).json()["total"] == 0


def test_report_by_tag(
    client: TestClient, db: Session, wang: Resident, headers_for: Headers
) -> None:
    from welfare.tags import service as tags

    code = tags.issue_tag(session=db, actor=SYSTEM, resident_id=wang.id).code
    db.commit()
    body = _report(client, headers_for("guard"), tag=code).json()
    assert body["resident_id"] == str(wang.id)
    assert _report(client, headers_for("guard"), tag="not-a-real-tag").status_code == 422
    typed = _report(client, headers_for("guard"), tag=code.lower().replace("-", " "))
    assert typed.json()["resident_id"] == str(wang.id)  # the same open incident, found by typing
    wrong = code[:-1] + ("2" if code[-1] != "2" else "3")
    mistyped = _report(client, headers_for("guard"), tag=wrong)
    assert mistyped.status_code == 422 and "check the code" in mistyped.text


def test_timeline_and_outbox_params_carry_no_names_or_numbers(
    client: TestClient, db: Session, wang: Resident, headers_for: Headers
) -> None:
    incident_id = _report(client, headers_for("guard"), resident_id=str(wang.id)).json()["id"]
    events = db.exec(select(IncidentEvent)).all()
    blob = str([e.detail for e in events]) + str([m.params for m in _outbox(db, incident_id)])
    blob = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>", blob)
    for personal in ("Wang", "91234567", "9123 4567", "61234567", "6123 4567", "+852"):
        assert personal not in blob


@pytest.mark.parametrize(
    "body",
    [
        {"client_request_id": "short"},
        {"client_request_id": "x" * 65},
        {"client_request_id": "abcdefgh", "condition": "fine"},
        {"client_request_id": "abcdefgh", "latitude": 91},
        {"client_request_id": "abcdefgh", "kind": "lost"},
        {"client_request_id": "abcdefgh", "note": "a\x00b"},
    ],
)
def test_bad_reports_are_422(client: TestClient, headers_for: Headers, body: dict) -> None:
    assert (
        client.post("/api/v1/incidents", headers=headers_for("guard"), json=body).status_code == 422
    )


def test_open_incident_service_is_idempotent_for_the_system_clock(
    db: Session, wang: Resident, site: Site, make_user: Callable[..., User]
) -> None:
    guard = make_user(Role.guard, [site])
    actor = Actor(user_id=guard.id, role=Role.guard, site_ids=frozenset({site.id}))
    data = IncidentCreate(resident_id=wang.id, client_request_id="svc-req-0001")
    first = incidents.open_incident(session=db, actor=actor, data=data, now=utcnow())
    second = incidents.open_incident(session=db, actor=actor, data=data, now=utcnow())
    assert first.created and not second.created and first.incident.id == second.incident.id


def test_withdrawing_consent_scrubs_the_residents_incidents(
    client: TestClient, db: Session, wang: Resident, headers_for: Headers
) -> None:
    from welfare.consent.models import Consent

    guard = headers_for("guard")
    incident_id = _report(
        client, guard, resident_id=str(wang.id), location="3/F meter box", note="asked for Wang Lei"
    ).json()["id"]
    client.post(
        f"/api/v1/incidents/{incident_id}/notes",
        headers=guard,
        json={"text": "Wang Lei phoned back"},
    )
    consent = db.exec(select(Consent).where(Consent.resident_id == wang.id)).one()
    db.rollback()
    withdraw = f"/api/v1/residents/{wang.id}/consents/{consent.id}/withdraw"
    assert client.post(withdraw, headers=headers_for("staff"), json={}).status_code == 200

    body = client.get(f"/api/v1/incidents/{incident_id}", headers=guard).json()
    assert body["status"] == "cancelled" and body["location"] is None and body["note"] is None
    assert "Wang" not in str(body["timeline"])
    assert all(m.to_phone is None for m in _outbox(db, incident_id))
    assert all(m.status != OutboxStatus.pending for m in _outbox(db, incident_id))
