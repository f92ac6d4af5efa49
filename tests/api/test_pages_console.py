"""The staff console's incident board and incident page, over HTTP as a browser uses them."""

from __future__ import annotations

import datetime as dt
import importlib
import pkgutil
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from tests.conftest import SYSTEM
from welfare import delivery as outbox
from welfare.audit.models import AuditEntry
from welfare.db import utcnow
from welfare.incidents import service as incidents
from welfare.incidents.models import Incident, IncidentCreate, IncidentEvent, Outcome, Resolution
from welfare.outbox.models import OutboxMessage, OutboxStatus
from welfare.residents.models import Contact, Resident
from welfare.sites.models import Site
from welfare.users.models import User

HTML = {"accept": "text/html"}


@pytest.fixture
def world(
    db: Session,
    site: Site,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> Callable[..., tuple[Incident, Contact]]:
    """An open found incident for a consented resident with one contact (the son)."""

    def make(opened_at: dt.datetime | None = None, **contact: Any) -> tuple[Incident, Contact]:
        resident = make_resident()
        make_consent(resident)
        son = make_contact(resident, **contact)
        opened = incidents.open_incident(
            session=db,
            actor=SYSTEM,
            data=IncidentCreate(resident_id=resident.id, client_request_id=uuid.uuid4().hex),
            now=opened_at,
        )
        db.commit()
        incident = opened.incident
        db.expunge_all()
        db.rollback()
        return incident, son

    return make


def _detached(db: Session, rows: list[Any]) -> list[Any]:
    """Rows that stay readable after the read transaction ends (no lazy reload, no snapshot
    held across the next client call)."""
    for row in rows:
        db.expunge(row)
    db.rollback()
    return rows


def _messages(db: Session, incident_id: uuid.UUID) -> list[OutboxMessage]:
    rows = list(
        db.exec(select(OutboxMessage).where(OutboxMessage.incident_id == incident_id)).all()
    )
    return _detached(db, rows)


def _events(db: Session, incident_id: uuid.UUID) -> list[IncidentEvent]:
    rows = list(
        db.exec(
            select(IncidentEvent)
            .where(IncidentEvent.incident_id == incident_id)
            .order_by(col(IncidentEvent.id))
        ).all()
    )
    return _detached(db, rows)


# --- access ---------------------------------------------------------------------------------------


def test_signed_out_visitors_are_sent_to_sign_in_with_the_page_to_return_to(
    client: TestClient,
) -> None:
    response = client.get("/console/residents?q=1609", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/console/residents%3Fq%3D1609"
    response = client.post("/console/incidents/00000000-0000-0000-0000-000000000000/note")
    assert response.history and response.history[0].status_code == 303


def test_guards_are_sent_to_their_app_and_cannot_post_console_forms(
    client: TestClient,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    world: Callable[..., tuple[Incident, Contact]],
) -> None:
    incident, _son = world()
    csrf = page_login(make_user("guard", [site]))
    for path in ("/console", "/console/residents", f"/console/incidents/{incident.id}"):
        response = client.get(path, headers=HTML, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/guard"
    assert client.get("/console/board.json", follow_redirects=False).status_code == 303
    response = client.post(
        f"/console/incidents/{incident.id}/note",
        data={"csrf_token": csrf, "text": "hello"},
        headers=HTML,
    )
    assert response.status_code == 403


def test_console_forms_without_the_csrf_token_are_refused(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    world: Callable[..., tuple[Incident, Contact]],
) -> None:
    incident, son = world()
    page_login(make_user("staff", [site]))
    for path, data in [
        (f"/console/incidents/{incident.id}/note", {"text": "forged"}),
        (f"/console/incidents/{incident.id}/cancel", {}),
        (f"/console/incidents/{incident.id}/acknowledge", {}),
        (
            f"/console/incidents/{incident.id}/notify",
            {"contact_id": str(son.id), "channel": "sms", "request_id": "forged-request"},
        ),
    ]:
        for token in (None, "forged"):
            body = data if token is None else {**data, "csrf_token": token}
            response = client.post(path, data=body, headers=HTML)
            assert response.status_code == 403, (path, token)
    assert [e.type for e in _events(db, incident.id)].count("note") == 0
    stored = db.get(Incident, incident.id)
    assert stored is not None and stored.status.value == "notifying"


def test_staff_of_another_site_get_not_found_for_this_sites_incident(
    client: TestClient,
    make_user: Callable[..., User],
    make_site: Callable[..., Site],
    page_login: Callable[..., str],
    world: Callable[..., tuple[Incident, Contact]],
) -> None:
    incident, son = world()
    elsewhere = make_site(name="Other Court")
    csrf = page_login(make_user("staff", [elsewhere]))
    assert client.get(f"/console/incidents/{incident.id}", headers=HTML).status_code == 404
    assert client.get(f"/console/incidents/{incident.id}/live.json").status_code == 404
    response = client.post(
        f"/console/incidents/{incident.id}/notify",
        data={
            "csrf_token": csrf,
            "contact_id": str(son.id),
            "channel": "sms",
            "request_id": "other-site-1",
        },
        headers=HTML,
    )
    assert response.status_code == 404
    board = client.get("/console/board.json").json()
    assert board["items"] == []


# --- the board ------------------------------------------------------------------------------------


def test_board_lists_open_incidents_and_marks_those_past_their_target(
    client: TestClient,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    world: Callable[..., tuple[Incident, Contact]],
) -> None:
    fresh, _ = world()
    late, _ = world(opened_at=utcnow() - dt.timedelta(minutes=11))
    page_login(make_user("staff", [site]))
    page = client.get("/console")
    assert page.status_code == 200
    assert fresh.reference in page.text and late.reference in page.text
    assert 'data-url="/console/board.json"' in page.text
    items = client.get("/console/board.json").json()["items"]
    by_ref = {item["reference"]: item for item in items}
    assert by_ref[late.reference]["overdue"] is True
    assert by_ref[fresh.reference]["overdue"] is False
    assert items[0]["reference"] == late.reference  # overdue first
    assert by_ref[fresh.reference]["who"] == "Mr. Wang"
    # The board is the name card only: no health data travels with it.
    assert "Alzheimer" not in page.text and "Alzheimer" not in str(items)


def test_board_marks_an_incident_whose_escalation_reached_the_duty_manager(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    world: Callable[..., tuple[Incident, Contact]],
) -> None:
    incident, _ = world()
    stored = db.get(Incident, incident.id)
    assert stored is not None
    # Two minutes per contact: with one contact the list is done and the manager is next.
    incidents.advance(session=db, incident=stored, now=utcnow() + dt.timedelta(minutes=5))
    db.commit()
    db.rollback()
    page_login(make_user("staff", [site]))
    items = client.get("/console/board.json").json()["items"]
    assert [i["overdue"] for i in items] == [True]


def test_board_drops_closed_incidents_and_shows_it_in_chinese(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    world: Callable[..., tuple[Incident, Contact]],
) -> None:
    incident, _ = world()
    incidents.cancel(session=db, actor=SYSTEM, incident_id=incident.id)
    db.commit()
    db.rollback()
    page_login(make_user("staff", [site], language="zh-CN"))
    page = client.get("/console")
    assert "没有未结事件。" in page.text and "事件看板" in page.text
    assert client.get("/console/board.json").json()["items"] == []
    client.cookies.clear()
    page_login(make_user("staff", [site], language="ko-KR"))
    page = client.get("/console")
    assert "진행 중인 사건이 없습니다." in page.text and "사건 현황판" in page.text
    assert "입주민" in page.text and "세대" in page.text  # the menu: Residents, Households


def test_closed_incidents_list_newest_closed_first_with_how_each_ended_and_only_this_site(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    make_site: Callable[..., Site],
    site: Site,
    page_login: Callable[..., str],
    world: Callable[..., tuple[Incident, Contact]],
) -> None:
    hour_ago = utcnow() - dt.timedelta(hours=1)
    first, _ = world(opened_at=hour_ago)
    second, _ = world(opened_at=hour_ago)
    still_open, _ = world()
    incidents.resolve(
        session=db,
        actor=SYSTEM,
        incident_id=first.id,
        data=Resolution(outcome=Outcome.handed_over, handed_to="Son"),
    )
    db.commit()
    incidents.cancel(session=db, actor=SYSTEM, incident_id=second.id)
    db.commit()
    db.rollback()
    page_login(make_user("staff", [site]))
    page = client.get("/console/incidents", headers=HTML)
    assert page.status_code == 200
    text = page.text
    assert second.reference in text and first.reference in text
    assert still_open.reference not in text
    assert text.index(second.reference) < text.index(first.reference)  # closed last, shown first
    assert "Handed over" in text and "Cancelled" in text and "60 min" in text
    assert 'href="/console/incidents"' in client.get("/console", headers=HTML).text
    client.cookies.clear()
    page_login(make_user("staff", [make_site()]))
    other = client.get("/console/incidents", headers=HTML).text
    assert first.reference not in other and "No closed incidents yet." in other
    assert client.get("/console/incidents?offset=-1", headers=HTML).status_code == 422


# --- the incident page ----------------------------------------------------------------------------


def test_incident_page_shows_timeline_contacts_and_their_status_and_audits_the_read(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    world: Callable[..., tuple[Incident, Contact]],
) -> None:
    incident, son = world()
    staff = make_user("staff", [site])
    page_login(staff)
    page = client.get(f"/console/incidents/{incident.id}")
    assert f'name="contact_id" value="{son.id}"' in page.text
    assert page.status_code == 200
    assert incident.reference in page.text
    assert "Wang Lei" in page.text and "(son)" in page.text
    assert "Talk about his grandson." in page.text
    assert "Escalation step started" in page.text and "Message queued" in page.text
    assert "waiting" in page.text  # the son's SMS and call are queued
    reads = db.exec(
        select(AuditEntry).where(
            AuditEntry.actor_id == staff.id, AuditEntry.action == "resident.read"
        )
    ).all()
    assert [r.purpose for r in reads] == [f"incident {incident.id}"]
    db.rollback()
    live = client.get(f"/console/incidents/{incident.id}/live.json").json()
    assert live == {"status": "notifying", "event_count": len(_events(db, incident.id))}


def test_sms_now_queues_one_message_however_often_the_form_is_sent(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    world: Callable[..., tuple[Incident, Contact]],
) -> None:
    incident, son = world()
    staff = make_user("staff", [site])
    csrf = page_login(staff)
    before = len(_messages(db, incident.id))
    form = {
        "csrf_token": csrf,
        "contact_id": str(son.id),
        "channel": "sms",
        "request_id": "double-click-1",
    }
    for _ in range(2):
        response = client.post(
            f"/console/incidents/{incident.id}/notify", data=form, follow_redirects=False
        )
        assert response.status_code == 303
        assert response.headers["location"].endswith("?done=notify")
    rows = _messages(db, incident.id)
    manual = [m for m in rows if m.step_index == -3]
    assert len(rows) == before + 1 and len(manual) == 1
    assert manual[0].kind.value == "sms" and manual[0].contact_id == son.id
    assert manual[0].template == "found_alert" and manual[0].status is OutboxStatus.pending
    queued = [e for e in _events(db, incident.id) if e.detail.get("manual")]
    assert len(queued) == 1 and queued[0].actor == "staff"
    audit = db.exec(select(AuditEntry).where(AuditEntry.action == "incident.notify")).all()
    assert [(a.actor_id, a.detail["channel"]) for a in audit] == [(staff.id, "sms")]
    db.rollback()
    assert "Message queued." in client.get(f"/console/incidents/{incident.id}?done=notify").text


def test_sms_now_to_a_landline_and_after_confirmation_is_refused_with_a_reason(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    world: Callable[..., tuple[Incident, Contact]],
) -> None:
    incident, home = world(phone="2345 6700", relationship="home")  # an HK landline
    csrf = page_login(make_user("staff", [site]))
    url = f"/console/incidents/{incident.id}/notify"
    form = {"csrf_token": csrf, "contact_id": str(home.id), "request_id": "landline-sms"}
    response = client.post(url, data={**form, "channel": "sms"})
    assert response.status_code == 422
    assert "This number is a landline: call it instead." in response.text
    response = client.post(
        url,
        data={**form, "channel": "voice", "request_id": "landline-call"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    incidents.acknowledge(session=db, actor=SYSTEM, incident_id=incident.id)
    db.commit()
    db.rollback()
    response = client.post(url, data={**form, "channel": "voice", "request_id": "after-ack"})
    assert response.status_code == 409
    assert "already confirmed or closed" in response.text
    assert not [m for m in _messages(db, incident.id) if m.idempotency_key.endswith("after-ack")]


def test_reached_by_phone_confirms_and_stops_every_pending_message(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    world: Callable[..., tuple[Incident, Contact]],
) -> None:
    incident, son = world()
    csrf = page_login(make_user("staff", [site]))
    response = client.post(
        f"/console/incidents/{incident.id}/acknowledge",
        data={"csrf_token": csrf, "contact_id": str(son.id)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    stored = db.get(Incident, incident.id)
    assert stored is not None and stored.status.value == "confirmed"
    assert stored.confirmed_contact_id == son.id and stored.confirmed_via == "staff"
    db.rollback()
    assert {m.status for m in _messages(db, incident.id)} == {OutboxStatus.cancelled}
    page = client.get(f"/console/incidents/{incident.id}")
    assert "Confirmed: someone is coming" in page.text and "Coming" in page.text
    again = client.post(
        f"/console/incidents/{incident.id}/acknowledge",
        data={"csrf_token": csrf, "contact_id": str(son.id)},
    )
    assert again.status_code == 409
    bad = client.post(
        f"/console/incidents/{incident.id}/acknowledge",
        data={"csrf_token": csrf, "contact_id": "not-a-uuid"},
    )
    assert bad.status_code == 422


def test_a_send_cut_off_by_a_crash_shows_as_possibly_sent_after_the_confirmation(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    world: Callable[..., tuple[Incident, Contact]],
) -> None:
    incident, son = world()
    # The worker passed the son's SMS and call through the gate and died with them at the
    # provider, before its answer was recorded.
    claims = outbox.claim_due(db)
    assert None not in outbox.open_sends(db, claims)
    db.commit()
    csrf = page_login(make_user("staff", [site]))
    response = client.post(
        f"/console/incidents/{incident.id}/acknowledge",
        data={"csrf_token": csrf, "contact_id": str(son.id)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    rows = _messages(db, incident.id)
    found = [m for m in rows if m.template == "found_alert"]
    assert {(m.status, m.attempts) for m in found} == {(OutboxStatus.unknown, 1)}
    page = client.get(f"/console/incidents/{incident.id}")
    assert "possibly sent" in page.text
    assert "not sent (stopped)" not in page.text
    body = client.get(f"/api/v1/incidents/{incident.id}").json()
    alerts = [n for n in body["notifications"] if n["message_id"] in {str(m.id) for m in found}]
    assert [(n["status"], n["status_text"], n["attempts"]) for n in alerts] == [
        ("unknown", "possibly sent", 1)
    ] * 2


def test_note_resolve_and_cancel_from_the_page(
    client: TestClient,
    db: Session,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    world: Callable[..., tuple[Incident, Contact]],
) -> None:
    incident, _ = world()
    other, _ = world()
    csrf = page_login(make_user("staff", [site]))
    base = f"/console/incidents/{incident.id}"
    assert client.post(f"{base}/note", data={"csrf_token": csrf, "text": "  "}).status_code == 422
    response = client.post(
        f"{base}/note", data={"csrf_token": csrf, "text": "Son called back"}, follow_redirects=False
    )
    assert response.status_code == 303
    response = client.post(
        f"{base}/note",
        data={"csrf_token": csrf, "text": "Son is on his way", "visibility": "everyone"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    page = client.get(base, headers=HTML).text
    assert "staff only · Son called back" in page
    assert "staff only · Son is on his way" not in page and "Son is on his way" in page
    notes = [e.detail for e in _events(db, incident.id) if e.type == "note"]
    assert [n["visibility"] for n in notes] == ["staff", "everyone"]
    response = client.post(
        f"{base}/note", data={"csrf_token": csrf, "text": "x", "visibility": "all"}
    )
    assert response.status_code == 422
    # Handed over needs a name: the page comes back with what was typed.
    response = client.post(
        f"{base}/resolve",
        data={"csrf_token": csrf, "outcome": "handed_over", "note": "waited in the lobby"},
    )
    assert response.status_code == 422
    assert "Say to whom the resident was handed over." in response.text
    assert '<option value="handed_over" selected>' in response.text
    assert "waited in the lobby</textarea>" in response.text
    response = client.post(
        f"{base}/resolve",
        data={"csrf_token": csrf, "outcome": "nonsense"},
    )
    assert response.status_code == 422
    response = client.post(
        f"{base}/resolve",
        data={"csrf_token": csrf, "outcome": "handed_over", "handed_to": "son\x00"},
    )
    assert response.status_code == 422
    assert "invisible control character" in response.text
    response = client.post(
        f"{base}/resolve",
        data={"csrf_token": csrf, "outcome": "handed_over", "handed_to": "son, Wang Lei"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    stored = db.get(Incident, incident.id)
    assert stored is not None and stored.status.value == "resolved"
    assert stored.handed_to == "son, Wang Lei" and stored.handed_over_at is not None
    db.rollback()
    types = [e.type for e in _events(db, incident.id)]
    # No photo on file: resolving a found incident asks for one.
    assert types[-3:] == ["handed_over", "resolved", "photo_refresh_due"] and "note" in types
    response = client.post(f"{base}/cancel", data={"csrf_token": csrf})
    assert response.status_code == 409  # already resolved
    response = client.post(
        f"/console/incidents/{other.id}/cancel", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    cancelled = db.get(Incident, other.id)
    assert cancelled is not None and cancelled.status.value == "cancelled"
    db.rollback()


# --- the JSON route behind "SMS or call now" ------------------------------------------------------


def test_notify_api_queues_a_call_and_refuses_a_contact_of_another_resident(
    client: TestClient,
    db: Session,
    headers_for: Callable[..., dict[str, str]],
    world: Callable[..., tuple[Incident, Contact]],
) -> None:
    incident, son = world()
    _other_incident, stranger = world()
    headers = headers_for("staff")
    url = f"/api/v1/incidents/{incident.id}/contacts/{son.id}/notify"
    response = client.post(
        url, json={"channel": "voice", "request_id": "api-call-0001"}, headers=headers
    )
    assert response.status_code == 202
    body = response.json()
    assert body["channel"] == "voice" and body["status"] == "pending"
    again = client.post(
        url, json={"channel": "voice", "request_id": "api-call-0001"}, headers=headers
    )
    assert again.json()["message_id"] == body["message_id"]
    clash = client.post(
        url, json={"channel": "sms", "request_id": "api-call-0001"}, headers=headers
    )
    assert clash.status_code == 409
    wrong = client.post(
        f"/api/v1/incidents/{incident.id}/contacts/{stranger.id}/notify",
        json={"channel": "sms"},
        headers=headers,
    )
    assert wrong.status_code == 404
    bad = client.post(url, json={"channel": "fax"}, headers=headers)
    assert bad.status_code == 422


def test_notify_api_respects_opt_out_and_missing_consent_to_be_contacted(
    client: TestClient,
    db: Session,
    headers_for: Callable[..., dict[str, str]],
    world: Callable[..., tuple[Incident, Contact]],
) -> None:
    incident, son = world(consent_to_contact=False)
    headers = headers_for("manager")
    url = f"/api/v1/incidents/{incident.id}/contacts/{son.id}/notify"
    response = client.post(url, json={"channel": "voice"}, headers=headers)
    assert response.status_code == 409
    assert "not agreed" in response.json()["detail"]
    incident2, daughter = world(relationship="daughter")
    stored = db.get(Contact, daughter.id)
    assert stored is not None
    stored.sms_opted_out = True
    db.add(stored)
    db.commit()
    db.rollback()
    url = f"/api/v1/incidents/{incident2.id}/contacts/{daughter.id}/notify"
    response = client.post(url, json={"channel": "sms"}, headers=headers)
    assert response.status_code == 409 and "opted out" in response.json()["detail"]


def _console_routes() -> list[tuple[str, str]]:
    """Every console route with its path parameters filled with random ids."""
    import api.pages.console

    out: list[tuple[str, str]] = []
    # Every page module of the console, a new one included without being listed.
    modules = [
        importlib.import_module(info.name)
        for info in pkgutil.iter_modules(api.pages.console.__path__, "api.pages.console.")
    ]
    routes = [
        route for module in modules if hasattr(module, "router") for route in module.router.routes
    ]
    for route in routes:
        path = getattr(route, "path", "")
        if not path.startswith("/console"):
            continue
        # Every path parameter of the console is an id.
        filled = re.sub(r"\{[a-z_]+_id\}", lambda _: str(uuid.uuid4()), path)
        assert "{" not in filled, path
        for method in sorted(route.methods):
            out.append((method, filled))
    return out


def test_every_console_route_sends_signed_out_visitors_to_sign_in_and_keeps_guards_out(
    client: TestClient,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
) -> None:
    routes = _console_routes()
    assert len(routes) > 30  # the walk found the console
    for method, path in routes:
        response = client.request(method, path, headers=HTML, follow_redirects=False)
        assert response.status_code == 303, (method, path)
        assert response.headers["location"].startswith("/login?next=/console"), (method, path)
    csrf = page_login(make_user("guard", [site]))
    for method, path in routes:
        data = {"csrf_token": csrf} if method == "POST" else None
        response = client.request(method, path, data=data, headers=HTML, follow_redirects=False)
        expected = 303 if method == "GET" else 403
        assert response.status_code == expected, (method, path)
