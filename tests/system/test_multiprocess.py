"""Two API processes and two workers on one PostgreSQL database, one worker killed mid-way.

The killed worker leads the visit scheduler; the survivor must take the leadership over.

Every due message must reach the provider; none twice, except rows whose send was in flight in
the killed worker (claimed, maybe handed over, never recorded): those are resent after the stale
claim window, because for an emergency a duplicate SMS beats silence (welfare/delivery.py).
"""

from __future__ import annotations

import collections
import signal
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from sqlalchemy import text

from tests.conftest import PASSWORD
from tests.notifications.fake_twilio import FakeTwilioServer
from tests.system.conftest import Processes, free_port, wait_for_log, wait_healthy
from welfare.db import make_engine
from welfare.residents.models import Contact, Resident
from welfare.sites.models import Household, Site
from welfare.users.models import User

INCIDENTS = 200
LEADER_LINE = "this worker now leads the scheduler"


def _message_ids(twilio: FakeTwilioServer) -> list[str]:
    """The outbox row behind each create request the provider saw (from its callback URL)."""
    ids = []
    for request in twilio.requests:
        callback = request.form.get("StatusCallback")
        if request.method == "POST" and isinstance(callback, str) and "message_id=" in callback:
            ids.append(callback.split("message_id=")[1].split("&")[0])
    return ids


def test_two_apis_two_workers_hand_every_message_over_through_a_worker_kill(
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
    guard = make_user("guard", [site])
    resident_ids = []
    for n in range(INCIDENTS):
        resident = make_resident(
            make_household(unit=str(1000 + n)), full_name=f"Resident {n}", preferred_name=f"R{n}"
        )
        make_consent(resident)
        make_contact(resident, phone=f"9123{n:04d}", name=f"Family {n}")
        resident_ids.append(resident.id)

    ports = [free_port(), free_port()]
    apis = [f"http://127.0.0.1:{port}" for port in ports]
    for index, port in enumerate(ports):
        processes.start(f"api{index}", "serve", "--port", str(port))
    # worker0 first, so it is the scheduler's leader when it is killed.
    workers = [processes.start("worker0", "worker")]
    wait_for_log(processes, "worker0", LEADER_LINE)
    workers.append(processes.start("worker1", "worker"))
    wait_healthy(apis, processes)

    token = httpx.post(
        f"{apis[0]}/api/v1/auth/token",
        data={"username": guard.username, "password": PASSWORD},
        timeout=30,
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}

    def report(index: int) -> int:
        response = httpx.post(
            f"{apis[index % 2]}/api/v1/incidents",
            json={
                "kind": "found",
                "resident_id": str(resident_ids[index]),
                "location": "lobby",
                "client_request_id": uuid.uuid4().hex,
            },
            headers=headers,
            timeout=30,
        )
        return response.status_code

    engine = make_engine(database_url)
    in_flight_at_kill = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        first_half = list(pool.map(report, range(INCIDENTS // 2)))
        # Kill one worker while it is busy handing messages over.
        deadline = time.monotonic() + 30
        while len(twilio.requests) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(timeout=10)
        with engine.connect() as connection:
            in_flight_at_kill = connection.execute(
                text("SELECT count(*) FROM outbox_message WHERE status = 'sending'")
            ).scalar_one()
        second_half = list(pool.map(report, range(INCIDENTS // 2, INCIDENTS)))
    assert set(first_half + second_half) == {201}

    # The survivor takes over the dead worker's stranded claims ('claimed': not yet through the
    # send gate, so sent once; 'sending': maybe handed over already) after the stale window.
    deadline = time.monotonic() + 120
    while True:
        with engine.connect() as connection:
            counts = dict(
                connection.execute(
                    text("SELECT status, count(*) FROM outbox_message GROUP BY status")
                ).all()
            )
        unfinished = sum(counts.get(status, 0) for status in ("pending", "claimed", "sending"))
        if unfinished == 0 and sum(counts.values()):
            break
        assert time.monotonic() < deadline, f"outbox never drained: {counts}"
        time.sleep(0.5)

    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT id, status FROM outbox_message WHERE next_attempt_at <= now()")
        ).all()
    engine.dispose()
    sent_ids = {str(row.id) for row in rows if row.status == "sent"}
    handed = collections.Counter(_message_ids(twilio))
    duplicates = {message_id: n for message_id, n in handed.items() if n > 1}
    print(
        f"\n{INCIDENTS} incidents across 2 APIs, 2 workers (one SIGKILLed): "
        f"{len(rows)} due messages, {len(handed)} handed to the provider, "
        f"{sum(n - 1 for n in duplicates.values())} duplicate hand-overs, "
        f"{in_flight_at_kill} rows in flight at the kill"
    )
    # Drained, and every row went out: none failed, none was cancelled, none is left waiting.
    assert counts == {"sent": 2 * INCIDENTS}, counts
    assert len(rows) == 2 * INCIDENTS  # SMS and call to each first contact, at once
    assert sent_ids == {str(row.id) for row in rows}, counts
    assert set(handed) == sent_ids  # every due message reached the provider
    # Only rows the dead worker had claimed can have gone out twice, and only once more.
    assert sum(n - 1 for n in duplicates.values()) <= in_flight_at_kill
    assert all(n == 2 for n in duplicates.values())
    # The survivor took the scheduler over (its advisory lock went with the dead connection).
    wait_for_log(processes, "worker1", LEADER_LINE)
    print("scheduler leadership moved to the surviving worker")
