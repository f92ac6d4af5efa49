"""Requests that once answered 500 (or dropped the connection) now answer 4xx and change nothing.

One test per class of input, each fixed at its root in `welfare.times` (timezones, naive times,
the product's years), `api.pages.forms` (a form value a domain model refuses), the SSE stream's
id bound and the webhooks' media type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from tests.api.test_pages_manager import _schedule_form
from tests.api.test_webhooks import TOKEN
from welfare.residents.models import Resident
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.users.models import User
from welfare.visits.models import VisitSchedule

HTML = {"accept": "text/html"}
Headers = Callable[..., dict[str, str]]


@pytest.mark.parametrize(
    "timezone",
    ["\U0001f600" * 64, "../../../../etc/passwd", "Asia/Nowhere", "asia/hong_kong", " UTC"],
)
def test_a_timezone_that_is_not_an_iana_name_is_refused_on_create_and_patch(
    client: TestClient, site: Site, headers_for: Headers, timezone: str
) -> None:
    admin = headers_for("admin")
    created = client.post(
        "/api/v1/sites", headers=admin, json={"name": "Elsewhere", "timezone": timezone}
    )
    assert created.status_code == 422, created.text
    assert "unknown IANA timezone" in created.text
    patched = client.patch(f"/api/v1/sites/{site.id}", headers=admin, json={"timezone": timezone})
    assert patched.status_code == 422, patched.text
    assert client.get(f"/api/v1/sites/{site.id}", headers=admin).json()["timezone"] == (
        "Asia/Hong_Kong"
    )


def test_the_response_times_report_refuses_an_unknown_timezone(
    client: TestClient, headers_for: Headers
) -> None:
    manager = headers_for("manager")
    response = client.get(
        "/api/v1/reports/response-times", headers=manager, params={"timezone": "\U0001f600" * 64}
    )
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/v1/visits", "start_from"),
        ("/api/v1/visits", "start_to"),
        ("/api/v1/audit", "since"),
        ("/api/v1/audit", "until"),
        ("/api/v1/reports/visit-completion", "start"),
        ("/api/v1/reports/response-times", "end"),
    ],
)
@pytest.mark.parametrize(
    "value", ["2026-01-01", "2026-01-01T10:00:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59Z"]
)
def test_a_time_without_offset_or_outside_the_years_is_a_422_naming_the_parameter(
    client: TestClient, headers_for: Headers, path: str, name: str, value: str
) -> None:
    response = client.get(path, headers=headers_for("admin"), params={name: value})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", name]


def test_a_time_with_an_offset_is_still_taken(client: TestClient, headers_for: Headers) -> None:
    response = client.get(
        "/api/v1/visits",
        headers=headers_for("admin"),
        params={"start_from": "2026-01-01T00:00:00+08:00", "start_to": "2026-02-01T00:00:00Z"},
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("view", ["week", "month", "list"])
@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "2026-13-01", "2026-02-30"])
def test_the_visit_calendar_refuses_a_day_outside_the_years_with_its_page(
    client: TestClient,
    site: Site,
    make_user: Callable[..., User],
    page_login: Callable[..., str],
    view: str,
    day: str,
) -> None:
    page_login(make_user("manager", [site]))
    params = {"view": view, "date": day} if view != "list" else {"view": view, "start": day}
    response = client.get("/manage/visits", params=params, headers=HTML)
    assert response.status_code == 422, response.text[-400:]
    assert "Give a date between 1880 and 2200, like 2026-11-01." in response.text


@pytest.mark.parametrize(
    "params", [{"since": "0001-01-01"}, {"until": "9999-12-31"}, {"since": "2026-02-30"}]
)
def test_the_audit_page_refuses_a_day_outside_the_years_in_words(
    client: TestClient,
    site: Site,
    make_user: Callable[..., User],
    page_login: Callable[..., str],
    params: dict[str, str],
) -> None:
    page_login(make_user("admin", [site]))
    response = client.get("/console/audit", params=params, headers=HTML)
    assert response.status_code == 422, response.text[-400:]
    assert "Dates look like 2026-11-01." in response.text


@pytest.mark.parametrize(
    "overrides",
    [
        {"preset": "raw", "rrule_raw": "FREQ=WEEKLY;BYDAY=MO\x00"},
        {"start_date": "9999-12-31"},
        {"start_date": "2026-12-01", "end_date": "0001-01-01"},
    ],
)
def test_a_schedule_form_value_the_model_refuses_is_shown_on_the_form(
    client: TestClient,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    page_login: Callable[..., str],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    overrides: dict[str, str],
) -> None:
    resident = make_resident()
    make_consent(resident)
    csrf = page_login(make_user("manager", [site]))
    response = client.post(
        "/manage/schedules/new",
        data=_schedule_form(csrf, resident_id=str(resident.id), **overrides),
        headers=HTML,
    )
    assert response.status_code == 422, response.text[-400:]
    assert 'name="rrule_raw"' in response.text  # the form again, not an error page
    assert db.exec(select(VisitSchedule)).all() == []


def test_the_event_stream_refuses_an_id_past_64_bits_before_it_starts(
    client: TestClient,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    headers_for: Headers,
) -> None:
    resident = make_resident()
    make_consent(resident)
    guard = headers_for("guard")
    report = client.post(
        "/api/v1/incidents",
        headers=guard,
        json={"kind": "found", "resident_id": str(resident.id), "client_request_id": "sse-ids-1"},
    )
    assert report.status_code == 201, report.text
    url = f"/api/v1/incidents/{report.json()['id']}/events"
    for headers, params in [
        ({"Last-Event-ID": str(2**63)}, {}),
        ({"Last-Event-ID": str(10**30)}, {}),
        ({}, {"after": str(2**63)}),
    ]:
        response = client.get(url, headers=guard | headers, params=params | {"max_seconds": 1})
        assert response.status_code == 422, response.text
    last = client.get(
        url, headers=guard | {"Last-Event-ID": str(2**63 - 1)}, params={"max_seconds": 0.2}
    )
    assert last.status_code == 200 and "event: status" in last.text


@pytest.fixture
def twilio_client(settings: Settings) -> Any:
    from api.app import create_app

    application = create_app(settings.model_copy(update={"twilio_auth_token": TOKEN}))
    with TestClient(application, base_url="https://welfare.test") as test_client:
        yield test_client
    application.state.engine.dispose()


@pytest.mark.parametrize(
    "send",
    [
        {"files": {"Digits": ("x.txt", b"1", "text/plain")}, "data": {"CallSid": "CA1"}},
        {"content": b'{"Digits": "1"}', "headers": {"content-type": "application/json"}},
        {"content": b"Digits=1", "headers": {"content-type": "text/plain"}},
        {"content": b"Digits=1"},
    ],
)
def test_a_webhook_that_is_not_a_url_encoded_form_is_a_415(
    twilio_client: TestClient, send: dict[str, Any]
) -> None:
    for path in ["/webhooks/twilio/message-status", "/webhooks/twilio/inbound-sms"]:
        response = twilio_client.post(path, **send)
        assert response.status_code == 415, (path, response.text)
        assert "application/x-www-form-urlencoded" in response.json()["detail"]
