"""One scheduler leader among workers: a PostgreSQL advisory lock on a dedicated connection."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from tests.conftest import POSTGRES_URL
from welfare.db import make_engine, make_sessionmaker
from welfare.settings import Settings
from welfare.visits import scheduler
from welfare.visits.scheduler import Leader

needs_postgres = pytest.mark.skipif(
    not POSTGRES_URL, reason="set WELFARE_TEST_POSTGRES_URL to run on PostgreSQL"
)


@pytest.fixture
def two_workers(settings: Settings) -> Iterator[tuple[Engine, Engine]]:
    """Two engines, as two worker processes would have (separate pools and connections)."""
    first, second = make_engine(settings.database_url), make_engine(settings.database_url)
    yield first, second
    first.dispose()
    second.dispose()


def _backend_pid(leader: Leader) -> int:
    assert leader.connection is not None
    return int(leader.connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _eventually(check: object, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_on_sqlite_the_single_process_leads(settings: Settings) -> None:
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("the SQLite rule")
    engine = make_engine(settings.database_url)
    assert Leader(engine).ensure() and Leader(engine).ensure()
    engine.dispose()


@needs_postgres
def test_a_second_worker_takes_over_when_the_leaders_connection_dies(
    settings: Settings, two_workers: tuple[Engine, Engine]
) -> None:
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("advisory locks are PostgreSQL's")
    key = scheduler.ADVISORY_LOCK_KEY + 17  # not the key a stray worker of this run might hold
    first, second = Leader(two_workers[0], key), Leader(two_workers[1], key)
    assert first.ensure() is True
    assert second.ensure() is False
    assert first.ensure() is True  # still alive, still leading
    assert second.ensure() is False

    # The leader's process dies (its connection is killed from outside).
    pid = _backend_pid(first)
    killer = make_engine(settings.database_url)
    with killer.begin() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    killer.dispose()

    assert _eventually(second.ensure), "the second worker never took over"
    # The old leader notices its connection is gone and does not lead any more.
    assert first.ensure() is False
    assert second.ensure() is True

    # A clean shutdown hands over too.
    second.release()
    assert _eventually(first.ensure)
    assert second.ensure() is False
    first.release()


@needs_postgres
def test_only_the_leader_runs_the_jobs(
    settings: Settings, two_workers: tuple[Engine, Engine]
) -> None:
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("advisory locks are PostgreSQL's")
    key = scheduler.ADVISORY_LOCK_KEY + 18
    first, second = Leader(two_workers[0], key), Leader(two_workers[1], key)
    assert scheduler.tick(first, make_sessionmaker(two_workers[0])) is not None
    assert scheduler.tick(second, make_sessionmaker(two_workers[1])) is None
    first.release()
    assert scheduler.tick(second, make_sessionmaker(two_workers[1])) is not None
    second.release()
