"""The access audit: a SHA-256 hash chain that notices edits and deletions."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import threading
import uuid
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, text
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

import welfare.audit.service as audit_service
from welfare.audit.models import AuditEntry
from welfare.audit.service import (
    GENESIS_HASH,
    list_entries,
    record,
    verify_chain,
    write_pending,
)
from welfare.authz import Actor, Role
from welfare.db import make_engine, make_sessionmaker
from welfare.residents.models import Resident
from welfare.settings import Settings
from welfare.sites.models import Site

SYSTEM = Actor.system()


def append(factory: sessionmaker[Session], count: int, **kwargs) -> list[int]:
    with factory() as session:
        before = session.exec(select(func.max(AuditEntry.id))).one() or 0
        for i in range(count):
            record(
                session,
                actor=SYSTEM,
                action=kwargs.get("action", "test.append"),
                entity="test",
                entity_id=str(i),
                detail=kwargs.get("detail", {"n": i}),
            )
        session.commit()
        ids = session.exec(
            select(AuditEntry.id).where(col(AuditEntry.id) > before).order_by(col(AuditEntry.id))
        ).all()
    assert len(ids) == count
    return [i for i in ids if i is not None]


def entries(factory: sessionmaker[Session]) -> list[AuditEntry]:
    with factory() as session:
        return list(session.exec(select(AuditEntry).order_by(col(AuditEntry.id))).all())


def verify(factory: sessionmaker[Session]):
    with factory() as session:
        return verify_chain(session)


def execute(factory: sessionmaker[Session], sql: str, **params) -> None:
    with factory() as session:
        session.exec(text(sql).bindparams(**params))
        session.commit()


def test_entries_chain_each_to_the_one_before(session_factory) -> None:
    append(session_factory, 4)
    rows = entries(session_factory)
    assert len(rows) == 4
    assert rows[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(rows):
        assert after.prev_hash == before.hash
    assert len({r.hash for r in rows}) == 4
    assert all(len(r.hash) == 64 and int(r.hash, 16) >= 0 for r in rows)


def test_hash_covers_the_previous_hash_and_the_canonical_contents(session_factory) -> None:
    append(session_factory, 1, detail={"b": 2, "a": "王"})
    [entry] = entries(session_factory)
    payload = {
        "at": entry.at.isoformat(timespec="microseconds"),
        "actor_id": None,
        "actor_role": "system",
        "action": "test.append",
        "entity": "test",
        "entity_id": "0",
        "resident_id": None,
        "site_id": None,
        "purpose": None,
        "client_addr": None,
        "detail": {"a": "王", "b": 2},
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    assert entry.hash == hashlib.sha256((GENESIS_HASH + canonical).encode()).hexdigest()


def test_every_value_is_stored_as_it_was_hashed(session_factory, monkeypatch) -> None:
    """Quotes, backslashes, non-ASCII text, ids and a whole-second time all come back as they
    went into the hash (PostgreSQL sends the entries as one JSON text)."""
    at = dt.datetime(2026, 3, 1, 8, 30, 0, tzinfo=dt.UTC)
    monkeypatch.setattr(audit_service, "utcnow", lambda: at)
    actor = Actor(
        user_id=uuid.uuid4(), role=Role.manager, site_ids=frozenset(), client_addr="2001:db8::1"
    )
    resident_id, site_id = uuid.uuid4(), uuid.uuid4()
    detail = {"quote": 'say "hi"', "slash": "a\\b\n", "name": "김민준 王", "list": [1, None]}
    with session_factory() as session:
        for purpose in ('incident "7"', None):
            record(
                session,
                actor=actor,
                action="test.values",
                entity="test",
                entity_id="e\\1",
                resident_id=resident_id,
                site_id=site_id,
                purpose=purpose,
                detail=detail,
            )
        session.commit()
    rows = entries(session_factory)
    assert [(r.at, r.actor_id, r.resident_id, r.site_id) for r in rows] == [
        (at, actor.user_id, resident_id, site_id)
    ] * 2
    assert [(r.purpose, r.entity_id, r.client_addr) for r in rows] == [
        ('incident "7"', "e\\1", "2001:db8::1"),
        (None, "e\\1", "2001:db8::1"),
    ]
    assert [r.detail for r in rows] == [detail, detail]
    assert verify(session_factory).ok


def test_verify_chain_passes_on_an_intact_chain(session_factory) -> None:
    assert verify(session_factory).ok  # empty
    append(session_factory, 7)
    report = verify(session_factory)
    assert report.ok
    assert report.checked == 7
    assert report.first_broken_id is None
    assert report.reason is None


def test_verify_chain_walks_in_batches(session_factory) -> None:
    append(session_factory, 12)
    with session_factory() as session:
        report = verify_chain(session, batch=5)
    assert (report.ok, report.checked) == (True, 12)


def test_edited_action_is_caught_at_that_entry(session_factory) -> None:
    ids = append(session_factory, 5)
    execute(session_factory, "UPDATE audit_entry SET action = 'innocent' WHERE id = :id", id=ids[2])
    report = verify(session_factory)
    assert report.first_broken_id == ids[2]
    assert report.checked == 2
    assert report.reason == "contents do not match the stored hash"
    assert not report.ok


def test_edited_detail_is_caught_at_that_entry(session_factory) -> None:
    ids = append(session_factory, 5)
    sql = """UPDATE audit_entry SET detail = '{"n": 99}' WHERE id = :id"""
    execute(session_factory, sql, id=ids[3])
    report = verify(session_factory)
    assert (report.first_broken_id, report.checked) == (ids[3], 3)


def test_edited_time_or_actor_is_caught(session_factory) -> None:
    ids = append(session_factory, 3)
    execute(
        session_factory,
        "UPDATE audit_entry SET actor_id = :actor WHERE id = :id",
        actor=uuid.uuid4(),
        id=ids[0],
    )
    assert verify(session_factory).first_broken_id == ids[0]


def test_recomputed_hash_of_an_edited_entry_breaks_the_next_link(session_factory) -> None:
    ids = append(session_factory, 3)
    execute(
        session_factory,
        "UPDATE audit_entry SET hash = :fake WHERE id = :id",
        fake="f" * 64,
        id=ids[1],
    )
    report = verify(session_factory)
    assert report.first_broken_id == ids[1]


def test_deleted_middle_entry_is_caught_at_the_next_one(session_factory) -> None:
    ids = append(session_factory, 5)
    execute(session_factory, "DELETE FROM audit_entry WHERE id = :id", id=ids[2])
    report = verify(session_factory)
    assert report.first_broken_id == ids[3]
    assert report.reason == "prev_hash does not match the entry before"
    assert report.checked == 2


def test_deleted_first_entry_is_caught(session_factory) -> None:
    ids = append(session_factory, 3)
    execute(session_factory, "DELETE FROM audit_entry WHERE id = :id", id=ids[0])
    assert verify(session_factory).first_broken_id == ids[1]


def test_cutting_the_newest_entries_breaks_the_next_link_appended(session_factory) -> None:
    """Appenders chain to the head row, not to whatever entry is newest now: a cut tail is
    caught as soon as anything is appended after it."""
    ids = append(session_factory, 4)
    execute(session_factory, "DELETE FROM audit_entry WHERE id >= :id", id=ids[2])
    assert verify(session_factory).ok  # a cut alone needs an anchor to be seen
    [new] = append(session_factory, 1)
    assert verify(session_factory).first_broken_id == new


def test_a_lost_head_row_restarts_from_the_newest_entry(session_factory) -> None:
    append(session_factory, 3)
    execute(session_factory, "DELETE FROM audit_head")
    append(session_factory, 2)
    report = verify(session_factory)
    assert (report.ok, report.checked) == (True, 5)


def test_the_head_row_follows_every_append(session_factory) -> None:
    append(session_factory, 1)
    append(session_factory, 3)
    with session_factory() as session:
        [head] = session.exec(text("SELECT hash FROM audit_head")).all()  # type: ignore[call-overload]
    assert head[0] == entries(session_factory)[-1].hash


def test_an_entry_rolls_back_with_its_transaction(session_factory) -> None:
    append(session_factory, 2)
    with session_factory() as session:
        record(session, actor=SYSTEM, action="test.lost", entity="test")
        session.rollback()
    append(session_factory, 1)
    assert [e.action for e in entries(session_factory)] == ["test.append"] * 3
    assert verify(session_factory).ok


def audit_statements(engine, run: Callable[[], object]) -> list[str]:
    seen: list[str] = []

    def note(conn, cursor, statement, *args) -> None:
        if "audit_head" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", note)
    return seen


def _reads_head(statements: list[str]) -> bool:
    """Whether an append read the head (to lock it, on PostgreSQL) rather than guess it."""
    return any(s.lstrip().upper().startswith("SELECT") and "audit_head" in s for s in statements)


def test_appends_after_the_first_guess_the_head(session_factory, settings: Settings) -> None:
    """The engine remembers the head it wrote: the next append moves the head from it and
    inserts, without reading it first (on PostgreSQL in one statement). Another
    process appending in between (a second engine), or a rolled-back append, only sends the
    append back to reading (and on PostgreSQL locking) the head; the chain stays whole."""
    engine = session_factory.kw["bind"]
    other = make_engine(settings.database_url)
    try:
        first = audit_statements(engine, lambda: append(session_factory, 1))
        assert _reads_head(first)
        again = audit_statements(engine, lambda: append(session_factory, 2))
        # One statement touches the head: its move (on PostgreSQL with the insert in it).
        assert len(again) == 1 and not _reads_head(again)
        append(make_sessionmaker(other), 1, action="test.elsewhere")
        after_other = audit_statements(engine, lambda: append(session_factory, 1))
        assert _reads_head(after_other)
        with session_factory() as session:
            record(session, actor=SYSTEM, action="test.lost", entity="test")
            write_pending(session)
            session.rollback()
        after_rollback = audit_statements(engine, lambda: append(session_factory, 1))
        assert _reads_head(after_rollback)
    finally:
        other.dispose()
    rows = entries(session_factory)
    assert [r.action for r in rows] == ["test.append"] * 3 + ["test.elsewhere"] + [
        "test.append"
    ] * 2
    for before, after in itertools.pairwise(rows):
        assert after.prev_hash == before.hash
    assert verify(session_factory).ok


def test_an_open_transaction_holds_no_audit_lock_until_it_commits(
    session_factory, settings: Settings
) -> None:
    """Entries are chained at commit: a long audited transaction (a found report) does not
    make every other audited transaction wait for it. The chain follows the commit order."""
    append(session_factory, 1)
    if settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite serialises whole write transactions anyway")
    engine = make_engine(settings.database_url)
    writers = make_sessionmaker(engine)
    try:
        with writers() as slow:
            record(slow, actor=SYSTEM, action="test.slow", entity="test")
            slow.exec(text("SELECT 1"))  # the transaction is open, its entry recorded
            done = threading.Event()

            def quick() -> None:
                with writers() as other:
                    record(other, actor=SYSTEM, action="test.quick", entity="test")
                    other.commit()
                done.set()

            thread = threading.Thread(target=quick)
            thread.start()
            assert done.wait(10), "the second appender waited for the first one's commit"
            thread.join()
            slow.commit()
    finally:
        engine.dispose()
    assert [e.action for e in entries(session_factory)] == [
        "test.append",
        "test.quick",
        "test.slow",
    ]
    assert verify(session_factory).ok


def test_concurrent_appends_from_several_threads_keep_the_chain_valid(
    session_factory, settings: Settings
) -> None:
    # The application's engine (BEGIN IMMEDIATE on SQLite), not the tests' read-only-minded one:
    # with deferred transactions two appenders reading the same head would collide.
    engine = make_engine(settings.database_url)
    writers = make_sessionmaker(engine)
    threads_n, per_thread = 6, 8
    errors: list[BaseException] = []
    start = threading.Barrier(threads_n)

    def work(n: int) -> None:
        try:
            start.wait(timeout=30)
            for i in range(per_thread):
                with writers() as session:
                    record(
                        session,
                        actor=SYSTEM,
                        action="test.concurrent",
                        entity="thread",
                        entity_id=f"{n}-{i}",
                    )
                    session.commit()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    engine.dispose()
    assert errors == []
    rows = entries(session_factory)
    assert len(rows) == threads_n * per_thread
    assert len({r.prev_hash for r in rows}) == len(rows)  # no fork
    report = verify(session_factory)
    assert (report.ok, report.checked) == (True, threads_n * per_thread)


def test_verify_chain_leaves_the_callers_objects_tracked(session_factory, site: Site) -> None:
    append(session_factory, 3)
    with session_factory() as session:
        loaded = session.get(Site, site.id)
        assert loaded is not None
        assert verify_chain(session, batch=2).ok
        loaded.address = "1 Harbour Road"  # changed after the check: must still be saved
        session.commit()
    with session_factory() as session:
        assert session.get(Site, site.id).address == "1 Harbour Road"


def test_reading_a_resident_is_audited_without_the_residents_name(
    client: TestClient,
    headers_for,
    make_resident: Callable[..., Resident],
    session_factory,
) -> None:
    resident = make_resident(
        full_name="Wang Jianguo",
        preferred_name="Mr. Wang",
        aliases=["王建国"],
        medical_notes="Alzheimer's disease",
    )
    response = client.get(f"/api/v1/residents/{resident.id}", headers=headers_for("staff"))
    assert response.status_code == 200
    rows = [e for e in entries(session_factory) if e.resident_id == resident.id]
    reads = [e for e in rows if e.action == "resident.read"]
    assert len(reads) == 1
    assert reads[0].actor_role == "staff"
    assert reads[0].site_id == resident.site_id
    dumped = json.dumps([e.model_dump(mode="json") for e in rows], ensure_ascii=False)
    for secret in ("Wang", "Jianguo", "王建国", "Alzheimer"):
        assert secret not in dumped
    assert verify(session_factory).ok


def test_listing_the_audit_is_itself_audited(session_factory, site: Site) -> None:
    manager = Actor(user_id=uuid.uuid4(), role=Role.manager, site_ids=frozenset({site.id}))
    with session_factory() as session:
        record(session, actor=SYSTEM, action="resident.read", entity="resident", site_id=site.id)
        record(session, actor=SYSTEM, action="resident.read", entity="resident")
        record(session, actor=SYSTEM, action="resident.read", entity="r", site_id=uuid.uuid4())
        session.commit()
        rows, total = list_entries(session, actor=manager)
        session.commit()
    in_site = [e for e in entries(session_factory) if e.site_id == site.id]
    assert total == len(in_site) == 2  # the site's creation and the read, not the others
    assert [r.id for r in rows] == [e.id for e in reversed(in_site)]
    assert entries(session_factory)[-1].action == "audit.read"
    assert verify(session_factory).ok


@pytest.mark.parametrize("role", [Role.guard, Role.staff])
def test_guards_and_staff_may_not_read_the_audit(session_factory, role: Role) -> None:
    from welfare.errors import PermissionDenied

    actor = Actor(user_id=uuid.uuid4(), role=role)
    with session_factory() as session, pytest.raises(PermissionDenied):
        list_entries(session, actor=actor)
