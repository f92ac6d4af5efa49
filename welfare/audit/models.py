from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Integer
from sqlmodel import Field, SQLModel

from welfare.db import UTCDateTime, utcnow


class AuditEntry(SQLModel, table=True):
    """One append-only entry, chained to the previous one by `hash`.

    `detail` holds field names and ids, never personal data: an erased resident must not live on
    in the audit trail.
    """

    __tablename__ = "audit_entry"

    id: int | None = Field(
        default=None,
        # INTEGER on SQLite so the key is the rowid and autoincrements.
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )
    at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    actor_id: uuid.UUID | None = Field(default=None, index=True)
    actor_role: str | None = Field(default=None, max_length=20)
    action: str = Field(max_length=64)
    entity: str = Field(max_length=64)
    entity_id: str | None = Field(default=None, max_length=64, index=True)
    resident_id: uuid.UUID | None = Field(default=None, index=True)
    site_id: uuid.UUID | None = Field(default=None, index=True)
    purpose: str | None = Field(default=None, max_length=200)
    client_addr: str | None = Field(default=None, max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)


class AuditPublic(SQLModel):
    id: int
    at: dt.datetime
    actor_id: uuid.UUID | None
    actor_role: str | None
    action: str
    entity: str
    entity_id: str | None
    resident_id: uuid.UUID | None
    site_id: uuid.UUID | None
    purpose: str | None
    client_addr: str | None
    detail: dict[str, Any]


class AuditHead(SQLModel, table=True):
    """The chain's newest hash, in one row that appenders lock from reading or moving it to
    committing: `SELECT ... FOR UPDATE` takes the lock and reads the head in one statement, and
    on PostgreSQL an append that knows the head moves it with a conditional UPDATE (the lock
    again) and inserts in one statement. A waiter sees the head its predecessor committed. Only
    `welfare.audit.service` writes it, in the same transaction as the entries; `verify_chain`
    never trusts it. An edit of this row (or a cut of the newest entries) shows as a broken
    link at the next entry appended.

    Row 2 (`welfare.audit.anchor.ANCHORED_ROW_ID`) holds the hash of the newest head a worker
    anchored, so that several workers anchor each head once; appenders never touch it."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    hash: str = Field(max_length=64)
