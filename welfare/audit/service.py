"""The access audit: append-only, every entry chained to the previous one by SHA-256."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
import weakref
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, event, func, insert, literal, text, true, update
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, col, select

# Imported for its order: its before-commit hook (NOTIFY) is then registered before ours, so
# the appenders' lock is taken as late as possible.
import welfare.wakeup  # noqa: F401
from welfare.audit.models import AuditEntry, AuditHead
from welfare.authz import Actor, Permission, visible_site_ids
from welfare.db import upsert as db_upsert
from welfare.db import utcnow

GENESIS_HASH = "0" * 64
_PENDING = "welfare_audit_pending"
_HEAD_ID = 1


def _entry_digest(prev_hash: str, entry: Any) -> str:
    """The hash of an entry (an AuditEntry, or its column values as attributes)."""
    payload = {
        "at": entry.at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "actor_id": str(entry.actor_id) if entry.actor_id else None,
        "actor_role": entry.actor_role,
        "action": entry.action,
        "entity": entry.entity,
        "entity_id": entry.entity_id,
        "resident_id": str(entry.resident_id) if entry.resident_id else None,
        "site_id": str(entry.site_id) if entry.site_id else None,
        "purpose": entry.purpose,
        "client_addr": entry.client_addr,
        "detail": entry.detail,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


@dataclass(frozen=True)
class AuditSubject:
    """Whom one entry of a `record_many` batch is about."""

    resident_id: uuid.UUID | None
    site_id: uuid.UUID | None
    detail: dict[str, Any]


# Serialises appenders that do not know the head (on PostgreSQL, see `_last_head`; SQLite's
# BEGIN IMMEDIATE already serialises them and leaves the FOR UPDATE out): the row stays locked
# to the end of the transaction, and a waiter reads the head its predecessor committed. Taking
# the lock and reading the head is one round trip.
_HEAD_FOR_UPDATE = select(AuditHead.hash).where(AuditHead.id == _HEAD_ID).with_for_update()


def _start_head(dialect: str) -> Any:
    """The head row when it is missing (a table emptied by hand): the newest entry's hash, or
    the genesis hash. An upsert, so concurrent first appenders still queue on one row."""
    insert = db_upsert(dialect)
    newest = select(AuditEntry.hash).order_by(col(AuditEntry.id).desc()).limit(1)
    start = select(literal(_HEAD_ID), func.coalesce(newest.scalar_subquery(), GENESIS_HASH))
    return (
        insert(AuditHead)
        # WHERE: SQLite would read the ON of ON CONFLICT as a join's.
        .from_select(["id", "hash"], start.where(true()))
        .on_conflict_do_update(index_elements=["id"], set_={"hash": AuditHead.hash})
        .returning(AuditHead.hash)
    )


def _lock_and_head(session: Session) -> str:
    """Take the appenders' lock (held to the end of the transaction) and read the chain's head."""
    connection = session.connection()
    head = connection.execute(_HEAD_FOR_UPDATE).scalar()
    if head is None:
        head = connection.execute(_start_head(connection.dialect.name)).scalar_one()
    return head


# PostgreSQL: every entry of a commit in one INSERT whose text does not depend on how many there
# are, so it is prepared once per connection; the head's UPDATE rides in the same statement.
# The entries travel as one JSON array: psycopg composes a JSON text in C, where thirteen arrays
# (one per column) cost it ~0.3 ms of Python per commit. WITH ORDINALITY and ORDER BY keep the
# ids in chain order.
_PG_COLUMNS = (
    ("at", "timestamptz"),
    ("actor_id", "uuid"),
    ("actor_role", "text"),
    ("action", "text"),
    ("entity", "text"),
    ("entity_id", "text"),
    ("resident_id", "uuid"),
    ("site_id", "uuid"),
    ("purpose", "text"),
    ("client_addr", "text"),
    ("detail", "json"),
    ("prev_hash", "text"),
    ("hash", "text"),
)
_PG_APPEND = text(
    "WITH moved AS (UPDATE audit_head SET hash = :head WHERE id = {head_id} AND hash = :prev "
    "RETURNING id), "
    "appended AS (INSERT INTO audit_entry ({names}) SELECT {names} FROM "
    "ROWS FROM (json_to_recordset(CAST(:entries AS json)) AS ({columns})) "
    "WITH ORDINALITY AS entry({names}, position) WHERE EXISTS (SELECT FROM moved) "
    "ORDER BY position) "
    "SELECT count(*) FROM moved".format(
        names=", ".join(name for name, _ in _PG_COLUMNS),
        columns=", ".join(f"{name} {type_}" for name, type_ in _PG_COLUMNS),
        head_id=_HEAD_ID,
    )
)
# The head each engine's last append wrote. The next append first assumes it is still the
# head: on PostgreSQL `_PG_APPEND` then moves the head and inserts in one round trip, taking
# the head row's lock as the UPDATE does; on SQLite a conditional UPDATE and the INSERT. Where
# it is not (another process or thread appended since, or that transaction rolled back), the
# UPDATE changes nothing and the append locks and reads the head as usual. The head row stays
# the only truth: a wrong guess costs a round trip, never a wrong link.
_last_head: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def _pg_append(connection: Connection, prev_hash: str, rows: list[dict[str, Any]]) -> bool:
    """Chain the rows to `prev_hash` and append them if that is still the head."""
    _chain(prev_hash, rows)
    # Readable UTF-8, as the engine writes JSON columns (welfare.db); anything else as text, as
    # `_entry_digest` hashes it (times and ids come back from that text unchanged).
    entries = json.dumps(rows, ensure_ascii=False, default=str)
    params = {"entries": entries, "prev": prev_hash, "head": rows[-1]["hash"]}
    if not connection.execute(_PG_APPEND, params).scalar_one():
        return False
    _last_head[connection.engine] = rows[-1]["hash"]
    return True


def _append(session: Session, rows: list[dict[str, Any]]) -> None:
    """Chain the rows to the head, insert them and move the head to the last one."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        guess = _last_head.get(connection.engine)
        appended = guess is not None and _pg_append(connection, guess, rows)
        if not appended and not _pg_append(connection, _lock_and_head(session), rows):
            raise RuntimeError("the audit head moved while this transaction held its lock")
        return
    # SQLite: the same guess, in two statements (BEGIN IMMEDIATE already made this transaction
    # the only writer, so nothing moves the head between them).
    guess = _last_head.get(connection.engine)
    appended = guess is not None and _sqlite_append(connection, guess, rows)
    if not appended and not _sqlite_append(connection, _lock_and_head(session), rows):
        raise RuntimeError("the audit head moved while this transaction held the write lock")


def _sqlite_append(connection: Connection, prev_hash: str, rows: list[dict[str, Any]]) -> bool:
    """Chain the rows to `prev_hash` and append them if that is still the head."""
    _chain(prev_hash, rows)
    moved = connection.execute(
        update(AuditHead)
        .where(col(AuditHead.id) == _HEAD_ID, col(AuditHead.hash) == prev_hash)
        .values(hash=rows[-1]["hash"])
    )
    if moved.rowcount != 1:
        return False
    connection.execute(insert(AuditEntry), rows)
    _last_head[connection.engine] = rows[-1]["hash"]
    return True


def _unchained(
    *,
    actor: Actor,
    action: str,
    entity: str,
    entity_id: uuid.UUID | str | None,
    purpose: str | None,
    subjects: Sequence[AuditSubject],
) -> list[dict[str, Any]]:
    """The column values of one entry per subject, without their place in the chain."""
    at = utcnow()
    return [
        {
            "at": at,
            "actor_id": actor.user_id,
            "actor_role": actor.role.value if actor.user_id else "system",
            "action": action,
            "entity": entity,
            "entity_id": str(entity_id) if entity_id is not None else None,
            "resident_id": subject.resident_id,
            "site_id": subject.site_id,
            "purpose": purpose,
            "client_addr": actor.client_addr,
            "detail": subject.detail,
        }
        for subject in subjects
    ]


def _chain(prev_hash: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for values in rows:
        values["prev_hash"] = prev_hash
        values["hash"] = prev_hash = _entry_digest(prev_hash, SimpleNamespace(**values))
    return rows


def record(
    session: Session,
    *,
    actor: Actor,
    action: str,
    entity: str,
    entity_id: uuid.UUID | str | None = None,
    resident_id: uuid.UUID | None = None,
    site_id: uuid.UUID | None = None,
    purpose: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one entry to the caller's transaction: it is written when (and only if) the
    transaction commits (see `write_pending`)."""
    record_many(
        session,
        actor=actor,
        action=action,
        entity=entity,
        entity_id=entity_id,
        purpose=purpose,
        subjects=[AuditSubject(resident_id, site_id, detail or {})],
    )


class AboutResident(Protocol):
    """What an entry about a resident takes from the record (a `Resident`): its ids."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def site_id(self) -> uuid.UUID: ...


def audit_resident(
    session: Session,
    actor: Actor,
    action: str,
    resident: AboutResident,
    *,
    entity: str = "resident",
    entity_id: uuid.UUID | None = None,
    purpose: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """An audit entry about (something of) one resident: ids only, never the person's data."""
    record(
        session,
        actor=actor,
        action=action,
        entity=entity,
        entity_id=entity_id or resident.id,
        resident_id=resident.id,
        site_id=resident.site_id,
        purpose=purpose,
        detail=detail,
    )


def record_many(
    session: Session,
    *,
    actor: Actor,
    action: str,
    entity: str,
    subjects: Sequence[AuditSubject],
    entity_id: uuid.UUID | str | None = None,
    purpose: str | None = None,
) -> None:
    """One event about several residents (a lookup showing several cards): one entry per
    resident, so each is found by `resident_id`, chained in order."""
    session.info.setdefault(_PENDING, []).extend(
        _unchained(
            actor=actor,
            action=action,
            entity=entity,
            entity_id=entity_id,
            purpose=purpose,
            subjects=subjects,
        )
    )


def write_pending(session: Session) -> None:
    """Chain and insert the entries recorded in this transaction: on PostgreSQL usually one
    statement (see `_last_head`), else two (lock and read the head; insert and move the head),
    then the commit.

    Runs just before the commit (a session hook below): the chain's order is the order of
    commits, so appenders must be serialised from reading the head to committing. Taking that
    lock here rather than at the first `record` keeps it for the INSERT and the commit only,
    not for the whole request (on PostgreSQL every audited transaction waits on it)."""
    rows = session.info.pop(_PENDING, None)
    if not rows:
        return
    session.flush()  # the rows the entries point at (a new resident) go first
    _append(session, rows)


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    if not session.in_nested_transaction():
        write_pending(session)


@event.listens_for(Session, "after_transaction_end")
def _forget_on_end(session: Session, transaction: SessionTransaction) -> None:
    # Committed: already written. Rolled back: they never happened.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


@dataclass(frozen=True)
class ChainReport:
    checked: int
    first_broken_id: int | None
    reason: str | None
    # For each watched id met in the intact part: (its position, 1-based; its hash).
    watched: dict[int, tuple[int, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.first_broken_id is None


def verify_chain(session: Session, batch: int = 5000, watch: Collection[int] = ()) -> ChainReport:
    """Walk the whole chain in id order and name the first entry that does not fit. The
    position and hash of each `watch` id met on the way are reported (for the anchors)."""
    prev_hash = GENESIS_HASH
    checked = 0
    after = 0
    watched: dict[int, tuple[int, str]] = {}
    watch = frozenset(watch)
    while True:
        rows = session.exec(
            select(AuditEntry)
            .where(col(AuditEntry.id) > after)
            .order_by(col(AuditEntry.id))
            .limit(batch)
        ).all()
        if not rows:
            return ChainReport(checked, None, None, watched)
        for entry in rows:
            if entry.prev_hash != prev_hash:
                return ChainReport(
                    checked, entry.id, "prev_hash does not match the entry before", watched
                )
            if _entry_digest(prev_hash, entry) != entry.hash:
                return ChainReport(
                    checked, entry.id, "contents do not match the stored hash", watched
                )
            prev_hash = entry.hash
            checked += 1
            if entry.id in watch:
                watched[entry.id] = (checked, entry.hash)
            after = entry.id or after
            # Keep memory flat over a long chain, but leave the caller's own objects tracked:
            # `expunge_all()` here silently dropped their later changes.
            session.expunge(entry)


def list_entries(
    session: Session,
    *,
    actor: Actor,
    resident_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    action: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[AuditEntry], int]:
    """Newest first. Managers see their sites' entries; admins also those tied to no site
    (sign-ins, user and site administration)."""
    sites = visible_site_ids(actor, Permission.audit_read)
    query = select(AuditEntry)
    if sites is not None:
        in_sites = col(AuditEntry.site_id).in_(sites)
        if actor.can(Permission.users_manage):
            in_sites = in_sites | col(AuditEntry.site_id).is_(None)
        query = query.where(in_sites)
    if action:
        query = query.where(col(AuditEntry.action).startswith(action, autoescape=True))
    if resident_id:
        query = query.where(AuditEntry.resident_id == resident_id)
    if user_id:
        query = query.where(AuditEntry.actor_id == user_id)
    if since:
        query = query.where(col(AuditEntry.at) >= since)
    if until:
        query = query.where(col(AuditEntry.at) < until)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(col(AuditEntry.id).desc()).offset(offset).limit(limit)).all()
    record(
        session,
        actor=actor,
        action="audit.read",
        entity="audit",
        resident_id=resident_id,
        detail={"user_id": str(user_id) if user_id else None, "returned": len(rows)},
    )
    return list(rows), total
