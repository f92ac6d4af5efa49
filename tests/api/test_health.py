"""Liveness and readiness probes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import DataError
from sqlmodel import Session

from api.app import create_app
from tests.conftest import TEST_SECRET
from welfare.db import head_revision, utcnow
from welfare.heartbeat import service as heartbeats
from welfare.settings import Settings


@pytest.fixture
def set_revision(engine: Engine, database_url: str) -> Iterator:
    """Change alembic_version directly; put the real head back afterwards (the PostgreSQL
    database is shared by the whole run and its truncation leaves alembic_version alone)."""
    head = head_revision(database_url)

    def change(value: str) -> None:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": value})

    yield change
    change(head)


def test_healthz_is_200(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.fixture
def worker_alive(db: Session) -> None:
    """A separate worker that wrote its heartbeat just now."""
    heartbeats.beat(db, heartbeats.WorkerIdentity())
    db.commit()


def test_health_probes_need_no_sign_in_and_carry_security_headers(
    client: TestClient, worker_alive: None
) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.headers["x-content-type-options"] == "nosniff"


def test_readyz_is_200_with_the_migration_at_head_and_a_live_worker(
    client: TestClient, database_url: str, worker_alive: None
) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    head = head_revision(database_url)
    assert head is not None
    assert response.json() == {"status": "ok", "database": "ok", "migration": head, "worker": "ok"}


def test_readyz_is_503_when_no_worker_ever_beat(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["worker"] == "missing"
    assert response.json()["status"] == "unavailable"


def test_readyz_is_503_when_the_last_heartbeat_is_too_old(
    client: TestClient, db: Session, settings: Settings
) -> None:
    old = utcnow() - dt.timedelta(seconds=settings.worker_heartbeat_max_age_seconds + 5)
    heartbeats.beat(db, heartbeats.WorkerIdentity(), now=old)
    db.commit()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["worker"] == "stale"
    # A second worker that is alive makes the service ready again.
    heartbeats.beat(db, heartbeats.WorkerIdentity())
    db.commit()
    assert client.get("/readyz").json()["worker"] == "ok"


def test_readyz_checks_the_in_process_worker_thread(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"run_worker_in_process": True}))
    try:
        with TestClient(app) as client:
            assert client.get("/readyz").json()["worker"] == "ok"
            app.state.worker.stop()
            app.state.worker.thread.join(timeout=10)
            response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["worker"] == "stopped"
    finally:
        app.state.engine.dispose()


def test_readyz_is_503_when_the_schema_is_not_at_head(
    client: TestClient, database_url: str, set_revision
) -> None:
    set_revision("0000_old")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "database": "ok",
        "migration": "0000_old",
        "expected": head_revision(database_url),
    }
    assert client.get("/healthz").status_code == 200  # alive, just not ready


def test_readyz_is_503_when_the_database_was_never_migrated(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'empty.db'}",
        secret_key=TEST_SECRET,
        _env_file=None,  # type: ignore[call-arg]
    )
    app = create_app(settings)
    try:
        with TestClient(app) as client:
            response = client.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["migration"] is None
        assert body["database"] == "ok"
    finally:
        app.state.engine.dispose()


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'welfare.db'}",
        secret_key=TEST_SECRET,
        _env_file=None,  # type: ignore[call-arg]
    )
    app = create_app(settings)
    try:
        with TestClient(app) as client:
            response = client.get("/readyz")
            assert client.get("/healthz").status_code == 200
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "database": "unreachable"}
    finally:
        app.state.engine.dispose()


def test_a_value_the_database_refuses_is_422_not_500(app) -> None:
    """The error mapping every route shares: a DataError (say, NUL on PostgreSQL) is bad input."""

    def refuse() -> None:
        raise DataError("INSERT INTO site ...", {}, Exception("cannot contain NUL"))

    app.add_api_route("/test-data-error", refuse)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/test-data-error")
    assert response.status_code == 422
    assert response.json() == {
        "detail": "a value was refused by the database (out of range or a NUL character)"
    }
