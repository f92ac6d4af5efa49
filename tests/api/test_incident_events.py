"""Live updates: the incident's server-sent-events stream and the commit wake-ups behind it.

The fallback poll is made far longer than the test waits, so a frame that arrives proves the
commit's wake-up carried it (in this process directly; on PostgreSQL also by NOTIFY)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from api.routes import incidents as incident_routes
from welfare import wakeup
from welfare.incidents import service as incidents
from welfare.incidents import timeline
from welfare.incidents.models import Incident, IncidentCreate
from welfare.residents.models import Contact, Resident
from welfare.settings import Settings
from welfare.sites.models import Site

Headers = Callable[..., dict[str, str]]
POSTGRES_ONLY = "LISTEN/NOTIFY is PostgreSQL's"


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


@pytest.fixture
def slow_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(incident_routes, "FALLBACK_POLL_SECONDS", 60.0)


def _report(client: TestClient, headers: dict[str, str], resident: Resident) -> str:
    response = client.post(
        "/api/v1/incidents",
        headers=headers,
        json={"resident_id": str(resident.id), "client_request_id": uuid.uuid4().hex},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _frames(lines: Iterator[str]) -> Iterator[tuple[str, Any, str | None]]:
    """(event, data, id) per SSE frame; comments (keep-alives) are skipped."""
    name, data, event_id = None, None, None
    for line in lines:
        if line.startswith(":"):
            continue
        if not line:
            if name is not None:
                yield name, json.loads(data or "null"), event_id
            name, data, event_id = None, None, None
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line.startswith("id: "):
            event_id = line[4:]


def _later(action: Callable[[], None], delay: float = 0.3) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _confirm(writers: sessionmaker[Session], incident_id: str) -> Callable[[], None]:
    def act() -> None:
        with writers() as session:
            incident = session.get(Incident, uuid.UUID(incident_id))
            assert incident is not None
            incidents.confirm(session=session, incident=incident, via="keypress")
            session.commit()

    return act


def _resolve(client: TestClient, headers: dict[str, str], incident_id: str) -> Callable[[], None]:
    def act() -> None:
        response = client.post(
            f"/api/v1/incidents/{incident_id}/resolve",
            headers=headers,
            json={"outcome": "handed_over", "handed_to": "son"},
        )
        assert response.status_code == 200, response.text

    return act


def test_stream_starts_with_the_current_state_and_pushes_confirmation_at_once(
    client: TestClient,
    wang: Resident,
    headers_for: Headers,
    writers: sessionmaker[Session],
    slow_poll: None,
) -> None:
    guard = headers_for("guard")
    incident_id = _report(client, guard, wang)
    url = f"/api/v1/incidents/{incident_id}/events"
    seen: list[tuple[str, Any, str | None]] = []
    with client.stream("GET", url, headers=guard, params={"max_seconds": 30}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = _frames(response.iter_lines())
        for frame in frames:
            seen.append(frame)
            if frame[0] == "notifications":
                break  # the current state is complete: now change it from elsewhere
        thread = _later(_confirm(writers, incident_id))
        for frame in frames:
            seen.append(frame)
            if frame[0] == "status" and frame[1]["status"] == "confirmed":
                break
        thread.join()
        closing = _later(_resolve(client, guard, incident_id))
        seen.extend(frames)  # runs until the server ends the stream
        closing.join()

    names = [name for name, _, _ in seen]
    types = [data["type"] for name, data, _ in seen if name == "timeline"]
    assert types[:2] == ["reported", "escalation_planned"]
    assert "confirmed" in types and "resolved" in types
    statuses = [data["status"] for name, data, _ in seen if name == "status"]
    assert statuses == ["notifying", "confirmed", "resolved"]
    notifications = [data for name, data, _ in seen if name == "notifications"]
    assert {n["status"] for n in notifications[0]} == {"pending"}
    assert {n["status"] for n in notifications[-1]} == {"cancelled"}
    assert names[-1] == "end"
    ids = [int(i) for name, _, i in seen if name == "timeline" and i is not None]
    assert ids == sorted(set(ids))


def test_a_reconnect_gets_only_what_it_missed(
    client: TestClient, wang: Resident, headers_for: Headers
) -> None:
    guard = headers_for("guard")
    incident_id = _report(client, guard, wang)
    url = f"/api/v1/incidents/{incident_id}/events"
    with client.stream("GET", url, headers=guard, params={"max_seconds": 0.2}) as response:
        first = [f for f in _frames(response.iter_lines()) if f[0] == "timeline"]
    assert len(first) >= 3
    resume = first[1][2]
    assert resume is not None
    headers = guard | {"Last-Event-ID": resume}
    with client.stream("GET", url, headers=headers, params={"max_seconds": 0.2}) as response:
        again = [f for f in _frames(response.iter_lines()) if f[0] == "timeline"]
    assert [f[2] for f in again] == [f[2] for f in first[2:]]


def test_the_stream_ends_after_max_seconds_without_changes(
    client: TestClient, wang: Resident, headers_for: Headers
) -> None:
    guard = headers_for("guard")
    incident_id = _report(client, guard, wang)
    started = time.monotonic()
    with client.stream(
        "GET", f"/api/v1/incidents/{incident_id}/events", headers=guard, params={"max_seconds": 1}
    ) as response:
        names = [name for name, _, _ in _frames(response.iter_lines())]
    assert time.monotonic() - started < 20  # bounded, not a timing target
    assert "end" not in names and "status" in names


def test_the_stream_is_never_compressed_so_frames_arrive_one_by_one(
    client: TestClient, wang: Resident, headers_for: Headers, slow_poll: None
) -> None:
    """A browser asks for gzip on every request; a compressed stream would be held back in the
    compressor until a block fills, and the guard would see no status change for minutes."""
    guard = headers_for("guard")
    incident_id = _report(client, guard, wang)
    url = f"/api/v1/incidents/{incident_id}/events"
    headers = guard | {"Accept-Encoding": "gzip, deflate, br"}
    started = time.monotonic()
    with client.stream("GET", url, headers=headers, params={"max_seconds": 60}) as response:
        assert response.status_code == 200
        assert "content-encoding" not in response.headers
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = b""
        for chunk in response.iter_raw():
            raw += chunk
            if b"event: notifications" in raw:
                break
        # The current state came as plain text while the stream is still open (for a minute).
        assert time.monotonic() - started < 20
    assert raw.startswith(b"id: 1\nevent: timeline\ndata: {")


@pytest.mark.parametrize("max_seconds", ["0", "-1", "3601", "soon"])
def test_bad_max_seconds_is_422(
    client: TestClient, wang: Resident, headers_for: Headers, max_seconds: str
) -> None:
    guard = headers_for("guard")
    incident_id = _report(client, guard, wang)
    response = client.get(
        f"/api/v1/incidents/{incident_id}/events",
        headers=guard,
        params={"max_seconds": max_seconds},
    )
    assert response.status_code == 422


def test_other_sites_and_strangers_get_no_stream(
    client: TestClient, wang: Resident, headers_for: Headers, make_site: Callable[..., Site]
) -> None:
    incident_id = _report(client, headers_for("guard"), wang)
    url = f"/api/v1/incidents/{incident_id}/events"
    assert client.get(url).status_code == 401
    other = headers_for("staff", [make_site(name="Elsewhere")])
    assert client.get(url, headers=other).status_code == 404
    assert client.get(f"/api/v1/incidents/{uuid.uuid4()}/events", headers=other).status_code == 404


# --- the wake-ups behind it -----------------------------------------------------------------------


def _open(writers: sessionmaker[Session], resident: Resident) -> uuid.UUID:
    with writers() as session:
        opened = incidents.open_incident(
            session=session,
            actor=wakeup_actor(),
            data=IncidentCreate(resident_id=resident.id, client_request_id=uuid.uuid4().hex),
        )
        session.commit()
        return opened.incident.id


def wakeup_actor() -> Any:
    from tests.conftest import SYSTEM

    return SYSTEM


def test_a_commit_that_queues_messages_wakes_the_worker_and_a_rollback_does_not(
    writers: sessionmaker[Session], wang: Resident
) -> None:
    wakeup.work_ready.clear()
    with writers() as session:
        incidents.open_incident(
            session=session,
            actor=wakeup_actor(),
            data=IncidentCreate(resident_id=wang.id, client_request_id=uuid.uuid4().hex),
        )
        session.rollback()
    assert not wakeup.work_ready.is_set()
    _open(writers, wang)
    assert wakeup.work_ready.is_set()


@pytest.fixture
def postgres_only(settings: Settings) -> None:
    if not settings.database_url.startswith("postgresql"):
        pytest.skip(POSTGRES_ONLY)


@pytest.fixture
def only_notify(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Commits wake nothing in this process: only PostgreSQL's NOTIFY can carry the news, as it
    does from another process."""
    event.remove(Session, "after_commit", wakeup._wake_this_process)
    yield
    event.listen(Session, "after_commit", wakeup._wake_this_process)


def _listener(writers: sessionmaker[Session], **kwargs: Any) -> wakeup.PgListener:
    engine = writers.kw["bind"]
    listener = wakeup.PgListener(engine, **kwargs).start()
    assert listener.connected.wait(10), "LISTEN connection did not come up"
    return listener


def test_notify_is_sent_on_commit_only(
    postgres_only: None, writers: sessionmaker[Session], wang: Resident
) -> None:
    import psycopg

    engine = writers.kw["bind"]
    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    incident_id = _open(writers, wang)
    with psycopg.connect(dsn, autocommit=True) as listen:
        listen.execute(f"LISTEN {wakeup.INCIDENT_CHANNEL}")
        listen.execute(f"LISTEN {wakeup.OUTBOX_CHANNEL}")
        with writers() as session:
            incident = session.get(Incident, incident_id)
            assert incident is not None
            timeline.record(session, incident, "note", text="rolled back")
            session.rollback()
        assert [n for n in listen.notifies(timeout=0.5) if n.payload == str(incident_id)] == []
        with writers() as session:
            incident = session.get(Incident, incident_id)
            assert incident is not None
            incidents.advance(session=session, incident=incident)  # nothing due: no write
            timeline.record(session, incident, "note", text="committed")
            timeline.record(session, incident, "note", text="twice in one transaction")
            session.commit()
        notes = [(n.channel, n.payload) for n in listen.notifies(timeout=2, stop_after=1)]
        notes += [(n.channel, n.payload) for n in listen.notifies(timeout=0.3)]
    # Channels are database-wide: other work on the database may notify too; ours is exact.
    ours = [note for note in notes if note[1] == str(incident_id)]
    assert ours == [(wakeup.INCIDENT_CHANNEL, str(incident_id))]


def test_the_worker_wakes_on_notify_for_rows_queued_elsewhere(
    postgres_only: None, only_notify: None, writers: sessionmaker[Session], wang: Resident
) -> None:
    listener = _listener(writers, on_incident=False)
    try:
        wakeup.work_ready.clear()
        _open(writers, wang)
        assert wakeup.work_ready.wait(10), "no NOTIFY reached the worker's listener"
    finally:
        listener.close(timeout=5)


def test_the_stream_wakes_on_notify_from_another_process(
    postgres_only: None,
    client: TestClient,
    wang: Resident,
    headers_for: Headers,
    writers: sessionmaker[Session],
    slow_poll: None,
    only_notify: None,
) -> None:
    guard = headers_for("guard")
    incident_id = _report(client, guard, wang)
    url = f"/api/v1/incidents/{incident_id}/events"
    with client.stream("GET", url, headers=guard, params={"max_seconds": 30}) as response:
        frames = _frames(response.iter_lines())
        for frame in frames:
            if frame[0] == "notifications":
                break
        thread = _later(_confirm(writers, incident_id), delay=1.0)
        statuses = []
        for name, data, _ in frames:
            if name == "status":
                statuses.append(data["status"])
                break
        thread.join()
    assert statuses == ["confirmed"]
