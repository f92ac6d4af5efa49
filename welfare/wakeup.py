"""Wake-ups on commit: the worker when outbox rows were queued, live views when an incident changed.

Writers call `outbox_queued(session)` / `incident_changed(session, incident_id)` inside their
transaction. Nothing happens unless it commits; then:

- in this process, `outbox_ready` and `work_ready` are set (the worker thread hands the first
  message to the provider at once instead of at its next poll) and `incidents` wakes every
  live view of that incident;
- on PostgreSQL the same news crosses processes: just before the commit the transaction issues
  `pg_notify('welfare_outbox', '')` and `pg_notify('welfare_incident', '<id>')`, which
  PostgreSQL delivers only if (and when) it commits. `PgListener` (run by the worker and by each
  API process) turns them back into `outbox_ready`, `work_ready` and `incidents.publish(...)`.

A wake-up is only ever a hint to look at the database: listeners re-read the rows, so a missed or
duplicated signal costs a poll interval or a cheap query, never a wrong answer.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from sqlalchemy import Engine, event, text
from sqlmodel import Session

log = logging.getLogger("welfare.wakeup")

OUTBOX_CHANNEL = "welfare_outbox"
INCIDENT_CHANNEL = "welfare_incident"

work_ready = threading.Event()  # wake the worker loop: something may be to do
# Rows were queued (a commit here, a NOTIFY from elsewhere): the dispatcher looks for due rows.
# Other wake-ups (a send came back) need no look at the outbox unless its last look was full.
outbox_ready = threading.Event()

_CHANGED = "welfare_changed_incidents"
_QUEUED = "welfare_outbox_queued"


class IncidentSignals:
    """Per-incident wake-ups for asyncio consumers (the server-sent-events stream), fired from
    any thread. A subscriber gets an `asyncio.Event` that is set when its incident changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[uuid.UUID | None, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]]
        self._waiters = {}

    @contextmanager
    def subscribe(self, incident_id: uuid.UUID | None) -> Iterator[asyncio.Event]:
        """`None` subscribes to every incident. Call from inside a running event loop."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.setdefault(incident_id, set()).add(waiter)
        try:
            yield waiter[1]
        finally:
            with self._lock:
                group = self._waiters.get(incident_id)
                if group is not None:
                    group.discard(waiter)
                    if not group:
                        del self._waiters[incident_id]

    def publish(self, incident_id: uuid.UUID | None) -> None:
        """Wake the subscribers of `incident_id` (None: everyone, e.g. after a reconnect)."""
        with self._lock:
            if incident_id is None:
                waiters = [w for group in self._waiters.values() for w in group]
            else:
                waiters = [*self._waiters.get(incident_id, ()), *self._waiters.get(None, ())]
        for loop, ready in waiters:
            # A closed loop raises: its subscription goes with it.
            with suppress(RuntimeError):
                loop.call_soon_threadsafe(ready.set)


incidents = IncidentSignals()


def incident_changed(session: Session, incident_id: uuid.UUID) -> None:
    """The incident's timeline or notifications changed in this transaction."""
    session.info.setdefault(_CHANGED, set()).add(incident_id)


def outbox_queued(session: Session) -> None:
    """This transaction queued outbox rows that may be due now."""
    session.info[_QUEUED] = True


@event.listens_for(Session, "before_commit")
def _notify_other_processes(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint: the real commit comes later
        return
    changed: set[uuid.UUID] = session.info.get(_CHANGED, set())
    queued = session.info.get(_QUEUED, False)
    if not (changed or queued):
        return
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return
    # Delivered by PostgreSQL at commit, and only if the transaction commits. One statement
    # for all of them: this runs on every commit that touched an incident.
    notices = [(INCIDENT_CHANNEL, str(incident_id)) for incident_id in sorted(changed, key=str)]
    if queued:
        notices.append((OUTBOX_CHANNEL, ""))
    calls = ", ".join(f"pg_notify(:channel{n}, :payload{n})" for n in range(len(notices)))
    params: dict[str, str] = {}
    for n, (channel, payload) in enumerate(notices):
        params[f"channel{n}"], params[f"payload{n}"] = channel, payload
    session.execute(text(f"SELECT {calls}"), params)


@event.listens_for(Session, "after_commit")
def _wake_this_process(session: Session) -> None:
    if session.in_nested_transaction():
        return
    changed: set[uuid.UUID] = session.info.pop(_CHANGED, set())
    if session.info.pop(_QUEUED, False):
        outbox_ready.set()
        work_ready.set()
    for incident_id in changed:
        incidents.publish(incident_id)


@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is not None:
        return
    session.info.pop(_CHANGED, None)
    session.info.pop(_QUEUED, None)


class PgListener:
    """LISTEN on PostgreSQL in a thread of its own and turn notifications into local wake-ups.

    On every (re)connect it wakes everyone once: what was committed while it was away is picked
    up by the listeners' own re-reads.
    """

    def __init__(self, engine: Engine, *, on_outbox: bool = True, on_incident: bool = True) -> None:
        self.dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.channels = [
            c
            for c, wanted in ((OUTBOX_CHANNEL, on_outbox), (INCIDENT_CHANNEL, on_incident))
            if wanted
        ]
        self.stop = threading.Event()
        self.connected = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> PgListener:
        self._thread = threading.Thread(target=self._run, name="welfare-listen", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 0) -> None:
        self.stop.set()
        if self._thread is not None and timeout:
            self._thread.join(timeout)

    def _run(self) -> None:
        import psycopg

        backoff = 0.5
        while not self.stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True) as connection:
                    for channel in self.channels:
                        connection.execute(f"LISTEN {channel}")
                    self.connected.set()
                    backoff = 0.5
                    self._deliver(None)
                    while not self.stop.is_set():
                        for note in connection.notifies(timeout=1.0):
                            self._deliver(note)
            except Exception:
                log.warning("LISTEN connection lost; reconnecting", exc_info=True)
            finally:
                self.connected.clear()
            self.stop.wait(backoff)
            backoff = min(backoff * 2, 10.0)

    @staticmethod
    def _deliver(note: Any) -> None:
        if note is None:
            outbox_ready.set()
            work_ready.set()
            incidents.publish(None)
        elif note.channel == OUTBOX_CHANNEL:
            outbox_ready.set()
            work_ready.set()
        elif note.channel == INCIDENT_CHANNEL:
            with suppress(ValueError):
                incidents.publish(uuid.UUID(note.payload))
