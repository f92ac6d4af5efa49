"""Every log line of a whole incident (reported, escalated, confirmed, resolved), the access log
included, holds no resident name, phone number or medical note.

The app runs under a real uvicorn server (so uvicorn's access log is written), the dispatcher
sends through the real Twilio SDK to the fake, webhooks are signed, and every record of every
logger at DEBUG and above is captured.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, select

from api.app import create_app
from notifications.dispatcher import Dispatcher
from notifications.twilio.client import TwilioChannel
from tests.api.test_webhooks import TOKEN as AUTH_TOKEN
from tests.api.test_webhooks import post
from tests.conftest import PASSWORD
from tests.notifications.fake_twilio import FakeTwilio
from welfare.db import make_engine, make_sessionmaker
from welfare.incidents import service as incidents
from welfare.incidents.models import Incident
from welfare.outbox.models import OutboxMessage
from welfare.residents.models import Contact, Resident
from welfare.settings import Settings
from welfare.sites.models import Site

ACCOUNT = "AC" + "5" * 32
# The test's own HTTP client logs the URLs it requests; that is the caller, not the service.
CLIENT_SIDE = ("httpx", "httpcore")
SON, DAUGHTER = "+85291234567", "+85261234567"
SECRETS = [
    "Wang Jianguo",
    "Jianguo",
    "Mr. Wang",
    "Wang Lei",
    "Wang Mei",
    "Alzheimer",
    "Donepezil",
    "91234567",
    "9123 4567",
    "61234567",
    "6123 4567",
    PASSWORD,
]


@pytest.fixture
def live(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "twilio_account_sid": ACCOUNT,
            "twilio_auth_token": AUTH_TOKEN,
            "twilio_from_number": "+15005550006",
        }
    )


@pytest.fixture
def server(live: Settings) -> Iterator[tuple[str, Any]]:
    """The app under uvicorn on an ephemeral port, logging through the root logger."""
    app = create_app(live)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, access_log=True, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", app
    server.should_exit = True
    thread.join(timeout=10)
    app.state.engine.dispose()


def _row(factory: sessionmaker[Session], to: str, kind: str) -> OutboxMessage:
    with factory() as session:
        return session.exec(
            select(OutboxMessage).where(OutboxMessage.to_phone == to, OutboxMessage.kind == kind)
        ).one()


def test_logs_of_a_whole_incident_hold_no_names_numbers_or_notes(
    caplog: pytest.LogCaptureFixture,
    server: tuple[str, Any],
    live: Settings,
    db: Session,
    site: Site,
    make_household: Callable[..., Any],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
    make_user: Callable[..., Any],
) -> None:
    base_url, _app = server
    wang = make_resident(
        household=make_household("1", "1609"),
        full_name="Wang Jianguo",
        preferred_name="Mr. Wang",
        medical_notes="Alzheimer's disease; takes Donepezil at night",
    )
    make_consent(wang)
    make_contact(wang, name="Wang Lei", relationship="son", phone="9123 4567")
    make_contact(wang, name="Wang Mei", relationship="daughter", phone="6123 4567")
    guard_user, staff_user = make_user("guard", [site]), make_user("staff", [site])
    fake = FakeTwilio(ACCOUNT, AUTH_TOKEN)
    engine = make_engine(live.database_url)
    factory = make_sessionmaker(engine)
    dispatcher = Dispatcher(factory, TwilioChannel(live, fake), live)

    caplog.set_level(logging.DEBUG)
    with httpx.Client(base_url=base_url, timeout=20) as client:

        def sign_in(username: str) -> dict[str, str]:
            form = {"username": username, "password": PASSWORD}
            token = client.post("/api/v1/auth/token", data=form).json()["access_token"]
            return {"Authorization": f"Bearer {token}"}

        guard, staff = sign_in(guard_user.username), sign_in(staff_user.username)
        client.post("/api/v1/auth/token", data={"username": "Wang Jianguo", "password": "x"})

        # Looked up by name (the query string must not reach the access log), reported found.
        cards = client.get("/api/v1/lookup", params={"q": "Wang Jianguo"}, headers=guard).json()
        resident_id = cards["items"][0]["resident_id"]
        staff_view = client.get(f"/api/v1/residents/{resident_id}", headers=staff)
        assert "Alzheimer" in staff_view.text  # staff may read it; logs may not
        opened = client.post(
            "/api/v1/incidents",
            headers=guard,
            json={
                "resident_id": resident_id,
                "location": "Building 1, 3/F",
                "note": "Says he is Wang Jianguo; his son Wang Lei is on 9123 4567",
                "client_request_id": uuid.uuid4().hex,
            },
        )
        assert opened.status_code == 201, opened.text
        incident_id = uuid.UUID(opened.json()["id"])

        # SMS and call to the son; his SMS is delivered, his call goes unanswered.
        dispatcher.run_once()
        sms, call = _row(factory, SON, "sms"), _row(factory, SON, "voice")
        for row, path, status in (
            (sms, "message-status", "delivered"),
            (call, "call-status", "no-answer"),
        ):
            url, fields = fake.status_callback_form(row.provider_id or "", status)
            assert url == f"{live.public_base_url}/webhooks/twilio/{path}?message_id={row.id}"
            response = post(client, f"/webhooks/twilio/{path}?message_id={row.id}", fields)  # type: ignore[arg-type]
            assert response.status_code == 200

        # Escalated: two minutes on, the daughter is called; she presses 1.
        with factory() as session:
            current = session.get(Incident, incident_id)
            assert current is not None
            start = dt.datetime.fromisoformat(current.escalation["started_at"])
            incidents.advance(
                session=session, incident=current, now=start + dt.timedelta(seconds=121)
            )
            session.commit()
        dispatcher.run_once(now=start + dt.timedelta(seconds=121))
        daughter_call = _row(factory, DAUGHTER, "voice")
        pressed = post(
            client,  # type: ignore[arg-type]
            f"/webhooks/twilio/gather?message_id={daughter_call.id}&attempt=1",
            {"CallSid": daughter_call.provider_id or "", "Digits": "1", "From": DAUGHTER},
        )
        assert pressed.status_code == 200
        # The daughter also replies by SMS (a duplicate confirmation, with her words).
        inbound = {
            "MessageSid": "SM" + uuid.uuid4().hex,
            "From": DAUGHTER,
            "To": "+15005550006",
            "Body": "yes, Wang Mei coming for Mr. Wang",
            "AccountSid": ACCOUNT,
        }
        assert post(client, "/webhooks/twilio/inbound-sms", inbound).status_code == 200  # type: ignore[arg-type]
        dispatcher.run_once()

        # Resolved by staff, handed to the daughter by name, with a note.
        resolved = client.post(
            f"/api/v1/incidents/{incident_id}/resolve",
            headers=staff,
            json={
                "outcome": "handed_over",
                "handed_to": "Wang Mei",
                "note": "Wang Mei took him home; Alzheimer's medication due",
            },
        )
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["status"] == "resolved"
    engine.dispose()

    loggers = {record.name for record in caplog.records}
    assert "uvicorn.access" in loggers  # the access log was really captured
    assert any(r.name.startswith("notifications") for r in caplog.records)  # and the SDK path
    leaks = []
    for record in caplog.records:
        if record.name.startswith(CLIENT_SIDE):
            continue
        text = record.getMessage() + repr(record.args) + (record.exc_text or "")
        leaks += [(record.name, word, text[:200]) for word in SECRETS if word in text]
    assert not leaks
