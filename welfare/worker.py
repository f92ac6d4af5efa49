"""The background worker: `welfare worker`, or a thread inside `demo`/`serve` on SQLite.

Each round starts the escalation steps that fell due and (given a `dispatch_round`, wired by the
entry point since welfare does not import notifications) hands due outbox rows to the provider;
every minute it also does housekeeping (expired sign-in sessions, old login failures).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col

from welfare.db import session_scope, utcnow
from welfare.settings import Settings
from welfare.users.models import AuthSession
from welfare.users.service import prune_login_failures
from welfare.wakeup import PgListener, work_ready
from welfare.webhooks.models import WebhookReceipt

log = logging.getLogger("welfare.worker")

HOUSEKEEPING_INTERVAL_SECONDS = 60
POLL_SECONDS = 1.0
# Ended sessions are kept a while so "who was signed in" questions can still be answered.
ENDED_SESSION_RETENTION = dt.timedelta(days=30)
RECEIPT_RETENTION = dt.timedelta(days=30)


@dataclass(frozen=True)
class HousekeepingResult:
    login_failures: int
    sessions: int
    webhook_receipts: int = 0


def housekeeping(session: Session, settings: Settings) -> HousekeepingResult:
    failures = prune_login_failures(session=session, settings=settings)
    now = utcnow()
    sessions = session.exec(  # type: ignore[call-overload]
        delete(AuthSession).where(col(AuthSession.expires_at) < now - ENDED_SESSION_RETENTION)
    ).rowcount
    # Twilio retries a callback for hours, never for weeks: older receipts guard nothing.
    receipts = session.exec(  # type: ignore[call-overload]
        delete(WebhookReceipt).where(col(WebhookReceipt.received_at) < now - RECEIPT_RETENTION)
    ).rowcount
    return HousekeepingResult(login_failures=failures, sessions=sessions, webhook_receipts=receipts)


def escalation_round(factory: sessionmaker[Session], now: dt.datetime | None = None) -> int:
    """Start every escalation step that has fallen due; each incident in its own transaction."""
    from welfare.incidents import service as incidents
    from welfare.incidents.models import Incident

    with session_scope(factory) as session:
        ids = incidents.due_incident_ids(session)
    started = 0
    for incident_id in ids:
        with session_scope(factory) as session:
            incident = session.get(Incident, incident_id)
            if incident is not None:
                started += incidents.advance(session=session, incident=incident, now=now)
    return started


def run_worker(
    settings: Settings,
    factory: sessionmaker[Session],
    stop: threading.Event,
    dispatch_round: Callable[[], int] | None = None,
) -> None:
    """Loop until `stop` is set: escalation steps and the outbox every second (at once when a
    commit wakes it: in this process directly, from others by PostgreSQL's NOTIFY), housekeeping
    every minute. A failing round is logged, never fatal."""
    log.info("worker started")
    engine = factory.kw.get("bind")
    listener = (
        PgListener(engine, on_incident=False).start()
        if engine is not None and engine.dialect.name == "postgresql"
        else None
    )
    try:
        _loop(settings, factory, stop, dispatch_round)
    finally:
        if listener is not None:
            listener.close()
    log.info("worker stopped")


def _loop(
    settings: Settings,
    factory: sessionmaker[Session],
    stop: threading.Event,
    dispatch_round: Callable[[], int] | None,
) -> None:
    next_housekeeping = 0.0
    while not stop.is_set():
        work_ready.clear()
        try:
            # Rows a commit just queued (a found report's first SMS and call) go out first; the
            # escalation round (a transaction per running incident) comes after, then its rows.
            _drain(dispatch_round)
            escalation_round(factory)
            _drain(dispatch_round)
        except Exception:
            log.exception("worker round failed; retrying next round")
        if time.monotonic() >= next_housekeeping:
            next_housekeeping = time.monotonic() + HOUSEKEEPING_INTERVAL_SECONDS
            try:
                with session_scope(factory) as session:
                    result = housekeeping(session, settings)
                if result.login_failures or result.sessions:
                    log.info(
                        "housekeeping removed %d login failures and %d old sessions",
                        result.login_failures,
                        result.sessions,
                    )
            except Exception:
                log.exception("housekeeping round failed; retrying next round")
        work_ready.wait(POLL_SECONDS)


def _drain(dispatch_round: Callable[[], int] | None) -> None:
    if dispatch_round is not None:
        while dispatch_round():
            pass


def start_in_thread(
    settings: Settings,
    factory: sessionmaker[Session],
    dispatch_round: Callable[[], int] | None = None,
) -> threading.Event:
    stop = threading.Event()
    threading.Thread(
        target=run_worker,
        args=(settings, factory, stop, dispatch_round),
        name="welfare-worker",
        daemon=True,
    ).start()
    return stop
