"""The dialect choices made in `welfare.db`: one place picks PostgreSQL's or SQLite's SQL."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import select

from welfare.db import for_update, upsert
from welfare.outbox.models import OutboxMessage


def _sql(statement: object, dialect: object) -> str:
    return str(statement.compile(dialect=dialect))  # type: ignore[attr-defined]


def test_for_update_locks_rows_on_postgresql_only() -> None:
    query = select(OutboxMessage.id).where(OutboxMessage.attempts == 0)
    assert _sql(for_update("postgresql", query), postgresql.dialect()).endswith(" FOR UPDATE")
    skipping = for_update("postgresql", query, skip_locked=True)
    assert _sql(skipping, postgresql.dialect()).endswith(" FOR UPDATE SKIP LOCKED")
    # SQLite: BEGIN IMMEDIATE already serialises writers; the statement is the one given.
    assert for_update("sqlite", query, skip_locked=True) is query


def test_upsert_is_the_dialects_insert() -> None:
    assert upsert("postgresql") is postgresql.insert
    assert upsert("sqlite") is sqlite.insert
