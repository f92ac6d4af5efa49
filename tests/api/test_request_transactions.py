"""A request's transaction begins and ends inside the endpoint's own trip to the thread pool.

FastAPI runs the dependencies, the endpoint, the response's validation and the session
dependency's exit as separate trips to its thread pool. A transaction held from one trip to the
next (SQLite's write gate, a pooled connection) could wait for a pool thread while every pool
thread waits for that transaction. Here the pool has three threads and twelve guards report at
once: every report must be accepted (before the fix they failed after the busy timeout)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import anyio.to_thread
from fastapi.testclient import TestClient

from welfare.residents.models import Contact, Resident

REPORTS = 12


def _limit_pool(client: TestClient, threads: int) -> None:
    def set_tokens() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads

    assert client.portal is not None
    client.portal.call(set_tokens)


def test_more_simultaneous_reports_than_pool_threads_are_all_accepted(
    client: TestClient,
    headers_for: Callable[..., dict[str, str]],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> None:
    residents = []
    for n in range(REPORTS):
        resident = make_resident()
        make_consent(resident)
        make_contact(resident, relationship="son", phone=f"9123 {n:04d}")
        residents.append(resident)
    guards = [headers_for("guard") for _ in range(REPORTS)]
    _limit_pool(client, 3)
    start = threading.Barrier(REPORTS)
    statuses: list[int] = []

    def report(n: int) -> None:
        start.wait(timeout=30)
        response = client.post(
            "/api/v1/incidents",
            headers=guards[n],
            json={"resident_id": str(residents[n].id), "client_request_id": uuid.uuid4().hex},
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=report, args=(n,)) for n in range(REPORTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert statuses == [201] * REPORTS
