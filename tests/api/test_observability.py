"""GET /metrics, request ids and JSON log lines."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session, select

from api.app import create_app
from tests.conftest import SYSTEM
from welfare.db import utcnow
from welfare.incidents import service as incidents
from welfare.incidents.models import Incident, IncidentCreate
from welfare.logs import JsonFormatter, RequestIdFilter, logging_config, sane_request_id
from welfare.outbox.models import OutboxMessage, OutboxStatus
from welfare.residents.models import Resident
from welfare.settings import Settings


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def open_incident(
    db: Session,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Any],
) -> Incident:
    resident = make_resident()
    make_consent(resident)
    make_contact(resident)
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(
            kind="found", resident_id=resident.id, location="lobby", client_request_id="obs-0001"
        ),
    )
    db.commit()
    return opened.incident


def test_metrics_is_prometheus_text_without_sign_in(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert value(response.text, "welfare_metrics_database_up") == 1
    assert value(response.text, "welfare_outbox_oldest_pending_age_seconds") == 0


def test_request_latency_is_labelled_by_route_template_not_path(
    client: TestClient, headers_for: Callable[..., dict[str, str]]
) -> None:
    headers = headers_for("staff")
    missing = uuid.uuid4()
    assert client.get(f"/api/v1/residents/{missing}", headers=headers).status_code == 404
    text = client.get("/metrics").text
    labels = {"route": "/api/v1/residents/{resident_id}", "method": "GET", "status": "4xx"}
    assert (value(text, "welfare_http_request_duration_seconds_count", **labels) or 0) >= 1
    assert str(missing) not in text
    # A path no route matches is one label value, not one per path tried.
    client.get("/no/such/path/Wang")
    text = client.get("/metrics").text
    assert "Wang" not in text
    labels = {"route": "unmatched", "method": "GET", "status": "4xx"}
    assert (value(text, "welfare_http_request_duration_seconds_count", **labels) or 0) >= 1


def test_outbox_depth_oldest_due_age_and_open_incidents_come_from_the_database(
    client: TestClient, db: Session, open_incident: Incident
) -> None:
    # The incident queued an SMS and a call to its contact: make one of them late by a minute.
    rows = list(
        db.exec(select(OutboxMessage).where(OutboxMessage.incident_id == open_incident.id)).all()
    )
    assert rows
    rows[0].next_attempt_at = utcnow() - dt.timedelta(seconds=60)
    db.add(rows[0])
    db.commit()
    text = client.get("/metrics").text
    assert value(text, "welfare_outbox_messages", status="pending") == len(rows)
    assert value(text, "welfare_outbox_due_messages") == len(rows)
    age = value(text, "welfare_outbox_oldest_pending_age_seconds")
    assert age is not None and 59 <= age < 120
    assert value(text, "welfare_incidents_open", status="notifying") == 1
    assert value(text, "welfare_incidents_open", status="open") == 0
    # Sent rows are no longer waiting.
    for row in rows:
        row.status = OutboxStatus.sent
        db.add(row)
    db.commit()
    text = client.get("/metrics").text
    assert value(text, "welfare_outbox_messages", status="pending") == 0
    assert value(text, "welfare_outbox_oldest_pending_age_seconds") == 0


def test_time_to_confirmation_is_observed_when_staff_record_it(
    client: TestClient,
    open_incident: Incident,
    headers_for: Callable[..., dict[str, str]],
) -> None:
    name = "welfare_incident_time_to_confirmation_seconds_count"
    before = value(client.get("/metrics").text, name, kind="found") or 0
    response = client.post(
        f"/api/v1/incidents/{open_incident.id}/acknowledge", headers=headers_for("staff"), json={}
    )
    assert response.status_code == 200, response.text
    after = value(client.get("/metrics").text, name, kind="found")
    assert after == before + 1


def test_metrics_token_is_required_when_set(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"metrics_token": "s3cret-scrape-token"}))
    try:
        with TestClient(app) as client:
            assert client.get("/metrics").status_code == 401
            wrong = {"Authorization": "Bearer nope"}
            assert client.get("/metrics", headers=wrong).status_code == 401
            right = {"Authorization": "Bearer s3cret-scrape-token"}
            assert client.get("/metrics", headers=right).status_code == 200
    finally:
        app.state.engine.dispose()


def test_metrics_hold_no_personal_data(
    client: TestClient, open_incident: Incident, headers_for: Callable[..., dict[str, str]]
) -> None:
    client.get("/api/v1/lookup", params={"q": "Wang Jianguo"}, headers=headers_for("guard"))
    text = client.get("/metrics").text
    for word in ("Wang", "Jianguo", "+852", "91234567", "9123 4567", "Alzheimer"):
        assert word not in text


# --- request ids -------------------------------------------------------------------------


def test_a_sane_request_id_is_echoed(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "lb-7f3a.19:2"})
    assert response.headers["x-request-id"] == "lb-7f3a.19:2"


@pytest.mark.parametrize(
    "given",
    ["", "has space", "x" * 200, "semi;colon", 'quote"d', "-leading-dash", "\u202etxt"],
)
def test_an_insane_request_id_is_replaced_by_a_fresh_one(client: TestClient, given: str) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": given.encode()})
    echoed = response.headers["x-request-id"]
    assert echoed != given and len(echoed) == 32
    assert sane_request_id(echoed) == echoed


def test_every_request_gets_its_own_id(client: TestClient) -> None:
    first = client.get("/healthz").headers["x-request-id"]
    second = client.get("/healthz").headers["x-request-id"]
    assert first != second


def test_log_lines_during_a_request_carry_its_id_as_json(app: Any) -> None:
    def noisy() -> dict[str, str]:
        logging.getLogger("welfare.test").warning("inside the request")
        return {}

    app.add_api_route("/test-noisy", noisy)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("welfare.test")
    logger.addHandler(handler)
    try:
        with TestClient(app) as client:
            response = client.get("/test-noisy", headers={"X-Request-ID": "trace-42"})
        logger.warning("outside any request")
    finally:
        logger.removeHandler(handler)
    assert response.headers["x-request-id"] == "trace-42"
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["request_id"] == "trace-42"
    assert inside["message"] == "inside the request"
    assert inside["level"] == "WARNING" and inside["logger"] == "welfare.test"
    assert outside["request_id"] is None


def test_json_formatter_keeps_the_exception_and_the_uvicorn_loggers_route_through_it() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("here",), True)
        import sys

        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "failed here"
    assert "ValueError: boom" in line["exception"]
    config = logging_config()
    assert config["loggers"]["uvicorn.access"]["propagate"] is True
    assert config["root"]["handlers"] == ["json"]
