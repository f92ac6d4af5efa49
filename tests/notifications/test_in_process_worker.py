"""The demo's path: on SQLite the worker runs inside the API process with the console channel;
a found report reaches the (simulated) provider at once and its news lands on the timeline."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from api.app import create_app
from welfare.residents.models import Contact, Resident
from welfare.settings import Settings


def test_found_report_is_sent_and_delivered_without_any_other_process(
    settings: Settings,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
    make_user: Callable[..., Any],
    site: Any,
) -> None:
    if not settings.is_sqlite:
        return  # the in-process worker is the SQLite deployment; PostgreSQL runs `welfare worker`
    resident = make_resident()
    make_consent(resident)
    make_contact(resident, phone="9123 4567")
    guard = make_user("guard", [site])
    app = create_app(
        settings.model_copy(
            update={"run_worker_in_process": True, "console_call_ring_seconds": 1.5}
        )
    )
    with TestClient(app, base_url="https://welfare.test") as client:
        token = client.post(
            "/api/v1/auth/token",
            data={"username": guard.username, "password": "correct horse battery"},
        )
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        client.cookies.clear()
        incident = client.post(
            "/api/v1/incidents",
            headers=headers,
            json={
                "resident_id": str(resident.id),
                "client_request_id": uuid.uuid4().hex,
            },
        ).json()
        deadline = time.monotonic() + 15
        types: list[str] = []
        while time.monotonic() < deadline:
            body = client.get(f"/api/v1/incidents/{incident['id']}", headers=headers).json()
            types = [e["type"] for e in body["timeline"]]
            if "delivered" in types and "no_answer" in types:
                break
            time.sleep(0.2)
    app.state.engine.dispose()
    assert types.count("sent") == 2, types
    assert "delivered" in types and "ringing" in types and "no_answer" in types, types
    statuses = {n["channel"]: n["status"] for n in body["notifications"]}
    assert statuses == {"sms": "sent", "voice": "sent"}
