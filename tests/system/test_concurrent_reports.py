"""Ten guards report the same resident at the same moment, through two API processes, with a
worker sending: one incident, one escalation, one SMS and one call to the first contact.

Before the database kept one running incident per resident (migration 0016), this opened up to
five incidents on PostgreSQL and the son got five SMS and five calls at once.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from sqlalchemy import text
from twilio.request_validator import RequestValidator

from tests.conftest import PASSWORD
from tests.notifications.fake_twilio import FakeTwilioServer
from tests.system.conftest import AUTH_TOKEN, Processes, free_port, wait_healthy
from welfare.db import make_engine
from welfare.residents.models import Contact, Resident
from welfare.sites.models import Household, Site
from welfare.users.models import User

GUARDS = 10
PUBLIC_BASE_URL = "https://welfare.test"


def _wait_for(condition: Callable[[], Any], what: str, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def test_concurrent_reports_of_one_resident_open_one_incident_and_one_escalation(
    database_url: str,
    processes: Processes,
    twilio: FakeTwilioServer,
    site: Site,
    make_user: Callable[..., User],
    make_household: Callable[..., Household],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> None:
    guards = [make_user("guard", [site]) for _ in range(GUARDS)]
    resident = make_resident(make_household(unit="1609"))
    make_consent(resident)
    son = make_contact(resident, name="Wang Lei", relationship="son", phone="9123 4567")
    daughter = make_contact(resident, name="Wang Mei", relationship="daughter", phone="6123 4567")

    ports = [free_port(), free_port()]
    apis = [f"http://127.0.0.1:{port}" for port in ports]
    for index, port in enumerate(ports):
        processes.start(f"api{index}", "serve", "--port", str(port))
    processes.start("worker", "worker")
    wait_healthy(apis, processes)

    tokens = [
        httpx.post(
            f"{apis[0]}/api/v1/auth/token",
            data={"username": guard.username, "password": PASSWORD},
            timeout=30,
        ).json()["access_token"]
        for guard in guards
    ]
    start = threading.Barrier(GUARDS)

    def report(index: int) -> tuple[int, str]:
        body = {
            "kind": "found",
            "resident_id": str(resident.id),
            "location": "Building 1, 3/F",
            "client_request_id": uuid.uuid4().hex,
        }
        with httpx.Client(base_url=apis[index % 2], timeout=30) as client:
            client.get("/healthz")  # connected before the barrier: the posts leave together
            start.wait()
            response = client.post(
                "/api/v1/incidents",
                json=body,
                headers={"Authorization": f"Bearer {tokens[index]}"},
            )
        return response.status_code, response.json()["id"]

    with ThreadPoolExecutor(max_workers=GUARDS) as pool:
        answers = list(pool.map(report, range(GUARDS)))

    statuses = sorted(status for status, _ in answers)
    assert statuses == [200] * (GUARDS - 1) + [201], answers
    incident_ids = {incident_id for _, incident_id in answers}
    assert len(incident_ids) == 1
    incident_id = incident_ids.pop()

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            running = connection.execute(
                text("SELECT count(*) FROM incident WHERE resident_id = :r"),
                {"r": resident.id},
            ).scalar_one()
            repeats = connection.execute(
                text(
                    "SELECT count(*) FROM incident_event"
                    " WHERE incident_id = :i AND type = 'report_repeated'"
                ),
                {"i": incident_id},
            ).scalar_one()
        assert running == 1
        assert repeats == GUARDS - 1  # every other report is on the one timeline

        # The worker hands the first step over: one SMS and one call, both to the son.
        def drained() -> bool:
            with engine.connect() as connection:
                unsent = connection.execute(
                    text(
                        "SELECT count(*) FROM outbox_message"
                        " WHERE status IN ('pending', 'claimed', 'sending')"
                    )
                ).scalar_one()
            return unsent == 0 and len(twilio.sent("Messages")) + len(twilio.sent("Calls")) >= 2

        _wait_for(drained, "the first contact's SMS and call")
        sms = [r.form.get("To") for r in twilio.sent("Messages")]
        calls = [r.form.get("To") for r in twilio.sent("Calls")]
        assert sms == [son.phone]
        assert calls == [son.phone]

        # The son answers "1" by SMS: the response is confirmed, nothing more goes out.
        form = {"MessageSid": "SM" + "a" * 32, "From": son.phone, "To": "+15005550006"}
        form["Body"] = "1"
        url = f"{PUBLIC_BASE_URL}/webhooks/twilio/inbound-sms"
        signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
        answer = httpx.post(
            f"{apis[1]}/webhooks/twilio/inbound-sms",
            data=form,
            headers={"X-Twilio-Signature": signature},
            timeout=30,
        )
        assert answer.status_code == 200
        with engine.connect() as connection:
            status = connection.execute(
                text("SELECT status FROM incident WHERE id = :i"), {"i": incident_id}
            ).scalar_one()
            to_daughter = connection.execute(
                text(
                    "SELECT count(*) FROM outbox_message WHERE contact_id = :c"
                    " AND status NOT IN ('cancelled')"
                ),
                {"c": daughter.id},
            ).scalar_one()
        assert status == "confirmed"
        assert to_daughter == 0
        assert daughter.phone not in [r.form.get("To") for r in twilio.requests]
    finally:
        engine.dispose()
