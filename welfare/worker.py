"""The background worker: `welfare worker`, or a thread inside `demo`/`serve` on SQLite.

Today it does housekeeping (expired sign-in sessions, old login failures); the outbox dispatcher
and the scheduler join it with the response and visit modules.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col

from welfare.db import session_scope, utcnow
from welfare.settings import Settings
from welfare.users.models import AuthSession
from welfare.users.service import prune_login_failures

log = logging.getLogger("welfare.worker")

HOUSEKEEPING_INTERVAL_SECONDS = 60
# Ended sessions are kept a while so "who was signed in" questions can still be answered.
ENDED_SESSION_RETENTION = dt.timedelta(days=30)


@dataclass(frozen=True)
class HousekeepingResult:
    login_failures: int
    sessions: int


def housekeeping(session: Session, settings: Settings) -> HousekeepingResult:
    failures = prune_login_failures(session=session, settings=settings)
    cutoff = utcnow() - ENDED_SESSION_RETENTION
    sessions = session.exec(  # type: ignore[call-overload]
        delete(AuthSession).where(col(AuthSession.expires_at) < cutoff)
    ).rowcount
    return HousekeepingResult(login_failures=failures, sessions=sessions)


def run_worker(settings: Settings, factory: sessionmaker[Session], stop: threading.Event) -> None:
    """Loop until `stop` is set; a failing round is logged and retried, never fatal."""
    log.info("worker started")
    while not stop.is_set():
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
        stop.wait(HOUSEKEEPING_INTERVAL_SECONDS)
    log.info("worker stopped")


def start_in_thread(settings: Settings, factory: sessionmaker[Session]) -> threading.Event:
    stop = threading.Event()
    threading.Thread(
        target=run_worker, args=(settings, factory, stop), name="welfare-worker", daemon=True
    ).start()
    return stop
