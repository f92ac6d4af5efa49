"""Engine, sessions, column types and migrations.

SQLite runs in WAL mode with foreign keys and a busy timeout, and every transaction starts with
BEGIN IMMEDIATE: a read-then-write transaction (the audit hash chain, the outbox) would otherwise
fail with SQLITE_BUSY_SNAPSHOT when another writer commits in between, which the busy timeout
does not cover. PostgreSQL is reached through psycopg 3.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, DateTime, Engine, String, create_engine, event, func
from sqlalchemy import column as sa_column
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import sessionmaker
from sqlalchemy.sql.selectable import GenerativeSelect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_AUTOCHECKPOINT_PAGES = 16_384  # 64 MB of WAL at the default 4 KB page
_GATE_HELD = "welfare_write_gate"

# A select of any kind (SQLAlchemy's or SQLModel's), given back as the same kind.
SelectT = TypeVar("SelectT", bound=GenerativeSelect)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every database (SQLite keeps no offset by itself)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware UTC one is required")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def normalise_url(url: str) -> str:
    """Accept the usual `postgresql://` spelling and route it to psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _json_dumps(value: Any) -> str:
    # Readable UTF-8 (not \\u escapes) so names in JSON columns can be searched.
    return json.dumps(value, ensure_ascii=False)


def make_engine(url: str, *, immediate_transactions: bool = True, **kwargs: Any) -> Engine:
    """`immediate_transactions=False` is for read-mostly tools (and test inspection) that must
    never hold SQLite's write lock while reading."""
    url = normalise_url(url)
    kwargs.setdefault("json_serializer", _json_dumps)
    # SQL errors would otherwise quote their parameters (names, phone numbers) into logs.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        # A connection per thread that may want one (the request thread pool, the dispatcher's
        # senders, the worker): SQLite connections are cheap, and a thread waiting in the pool
        # queue behind others waiting for the write gate is a long, unfair wait.
        if make_url(url).database not in (None, "", ":memory:"):  # a file: QueuePool
            kwargs.setdefault("pool_size", 20)
            kwargs.setdefault("max_overflow", 60)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            **kwargs,
        )
        _configure_sqlite(engine, immediate_transactions)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kwargs)


class FairLock:
    """A lock handed to its waiters in arrival order. `threading.Lock` lets whoever asks at the
    right moment barge in, so a stream of request threads can keep the worker (whose claim is
    the next SMS of an accepted report) waiting for long stretches."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiters: deque[threading.Lock] = deque()
        self._held = False

    def acquire(self, timeout: float) -> bool:
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            waiter = threading.Lock()
            waiter.acquire()
            self._waiters.append(waiter)
        if waiter.acquire(timeout=timeout):
            return True  # handed over by `release`
        with self._mutex:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
                return False
        return True  # handed over just as the wait timed out

    def release(self) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().release()  # still held: now by that waiter
            else:
                self._held = False


def _configure_sqlite(engine: Engine, immediate_transactions: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so BEGIN IMMEDIATE below is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # The app checkpoints from a thread of its own (`WalCheckpointer`); this is the safety
        # net for processes without one (the CLI) or a checkpointer that falls behind.
        cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT_PAGES}")
        # Deleted personal data must not linger in free pages.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    if not immediate_transactions:

        @event.listens_for(engine, "begin")
        def _on_begin_deferred(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN")

        return

    # Writers of this process queue on a lock before BEGIN IMMEDIATE. SQLite's busy handler
    # makes a waiter sleep and retry (up to 100 ms a nap), so under load the lock sits idle
    # between holders and an unlucky waiter can starve past the busy timeout; a lock hands over
    # at once. A waiter gives up on the lock after the busy timeout and falls back to SQLite's
    # own waiting, so this never deadlocks (two transactions of one thread on one engine).
    gate = FairLock()

    def _release(info: dict[str, Any]) -> None:
        if info.pop(_GATE_HELD, False):
            gate.release()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if not connection.info.get(_GATE_HELD):
            connection.info[_GATE_HELD] = gate.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            _release(connection.info)
            raise

    @event.listens_for(engine, "commit")
    def _on_commit(connection: Any) -> None:
        _release(connection.info)

    @event.listens_for(engine, "rollback")
    def _on_rollback(connection: Any) -> None:
        _release(connection.info)

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        _release(record.info)


class WalCheckpointer:
    """SQLite: copies the write-ahead log into the database file from a thread of its own,
    every `interval` seconds (PASSIVE: it never waits for, or blocks, readers and writers).

    Left to SQLite, the commit that takes the WAL past its autocheckpoint size does the copy
    and the fsync itself, and the request behind that commit waits for them: that alone made a
    guard lookup's p99 two to three times its p50 (bench/lookup.py)."""

    def __init__(self, engine: Engine, interval: float = 0.5) -> None:
        self.engine = engine
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> WalCheckpointer:
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def checkpoint(self) -> tuple[int, int, int]:
        """One PASSIVE checkpoint: (busy, WAL frames, frames copied)."""
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            busy, frames, copied = cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            cursor.close()
            return int(busy), int(frames), int(copied)
        finally:
            connection.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.checkpoint()
            except Exception:  # a locked or closing database: try again next time
                logging.getLogger("welfare.db").debug("WAL checkpoint skipped", exc_info=True)


def write_without_waiting(session: Session, statement: Any) -> bool:
    """Run one small write and commit it, unless that means waiting for a lock: then roll back
    and return False. For bookkeeping a request must never wait on (a session's last-seen time).

    PostgreSQL: the caller's statement should skip locked rows (`FOR UPDATE SKIP LOCKED`); a
    lock timeout backs that up. SQLite: the busy timeout is off for the statement, so a write
    lock held elsewhere fails at once instead of waiting up to `SQLITE_BUSY_TIMEOUT_MS`.
    """
    connection = session.connection()
    sqlite = connection.dialect.name == "sqlite"
    try:
        if sqlite:
            connection.exec_driver_sql("PRAGMA busy_timeout=0")
        elif connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SET LOCAL lock_timeout = '200ms'")
        try:
            session.exec(statement)
        finally:
            if sqlite:  # the connection goes back to the pool: as it came
                connection.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        session.commit()
    except OperationalError:
        session.rollback()
        return False
    return True


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, class_=Session, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    root = PROJECT_ROOT if (PROJECT_ROOT / "alembic").is_dir() else Path.cwd()
    config = Config(str(root / "alembic.ini")) if (root / "alembic.ini").exists() else Config()
    config.set_main_option("script_location", str(root / "alembic"))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def upgrade_database(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def head_revision(url: str) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def dialect_name(dialect: str | Session | Connection) -> str:
    """The dialect's name ("postgresql", "sqlite") of a session or a connection."""
    if isinstance(dialect, Session):
        return dialect.get_bind().dialect.name
    if isinstance(dialect, Connection):
        return dialect.dialect.name
    return dialect


def upsert(dialect: str | Session | Connection) -> Any:
    """The dialect's INSERT, which has `on_conflict_do_nothing` / `on_conflict_do_update` (the
    one place that picks PostgreSQL's or SQLite's): `upsert(session)(table).values(...)`."""
    return pg_insert if dialect_name(dialect) == "postgresql" else sqlite_insert


def for_update(
    dialect: str | Session | Connection,
    query: SelectT,
    *,
    skip_locked: bool = False,
    of: Any = None,
) -> SelectT:
    """`query` with row locks on PostgreSQL (`FOR UPDATE [OF ...] [SKIP LOCKED]`); on SQLite
    unchanged, as BEGIN IMMEDIATE already makes each transaction the only writer."""
    if dialect_name(dialect) != "postgresql":
        return query
    return query.with_for_update(skip_locked=skip_locked, of=of)


def takes_row_locks(dialect: str | Session | Connection) -> bool:
    """Whether locking a row serialises work on it across processes: on PostgreSQL; SQLite's
    BEGIN IMMEDIATE already makes each transaction the only writer."""
    return dialect_name(dialect) == "postgresql"


def json_array_elements(dialect: str | Session | Connection, column: Any) -> Any:
    """A JSON list column's elements as a table with one text column, `value` (PostgreSQL's
    json_array_elements_text, SQLite's json_each), to search each element on its own."""
    if dialect_name(dialect) == "postgresql":
        function = func.json_array_elements_text(column)
    else:
        function = func.json_each(column)
    return function.table_valued(sa_column("value", String))


def insert_unless_conflict(session: Session, row: Any) -> bool:
    """Insert `row` now, in a savepoint of its own; False, with the transaction as it was, when
    a unique constraint or index refuses it (another request inserted the same thing first).

    On PostgreSQL the INSERT waits for a concurrent transaction holding the same key and fails
    once that one commits, so the caller can then read the winner's row."""
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return False
    return True


def on_commit(session: Session, callback: Any) -> None:
    """Run `callback()` once the session's current transaction has committed (files, wake-ups)."""
    session.info.setdefault("welfare_after_commit", []).append(callback)


def on_rollback(session: Session, callback: Any) -> None:
    """Run `callback()` if the current transaction rolls back (undo side effects on disk)."""
    session.info.setdefault("welfare_after_rollback", []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint was released: nothing is committed yet
        return
    session.info.pop("welfare_after_rollback", None)
    for callback in session.info.pop("welfare_after_commit", []):
        callback()


@event.listens_for(Session, "after_soft_rollback")
def _run_after_rollback(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is not None:  # only the outermost transaction matters
        return
    session.info.pop("welfare_after_commit", None)
    for callback in session.info.pop("welfare_after_rollback", []):
        callback()
