"""The background worker: `welfare worker`, or a thread inside `demo`/`serve` on SQLite.

Each round starts the escalation steps that fell due and (given a `dispatch_round`, wired by the
entry point since welfare does not import notifications) hands due outbox rows to the provider;
every few seconds it refreshes its heartbeat row (readiness checks it); every minute it also
does housekeeping (expired sign-in sessions, old login failures, heartbeats of gone workers,
photos of incidents closed longer than the retention period, passkey challenges nobody
answered in time). Every minute while the audit
chain grows, and when it stops, it logs the chain's signed head (`welfare.audit.anchor`), once
per head whichever worker gets there first: shipped off the machine with the logs, those lines
let `welfare audit verify --anchor LOG` detect a chain that was later cut or rewritten, and say
how many entries came after the last one. They hold a count, an id, hashes and a time, no
personal data.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import delete
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col

from welfare.audit.anchor import anchor_if_moved, anchor_line, current_head
from welfare.db import session_scope, utcnow
from welfare.heartbeat import service as heartbeats
from welfare.identity.models import OidcLogin
from welfare.incidents import photos as incident_photos
from welfare.outbox import limits
from welfare.settings import Settings
from welfare.users.models import AuthSession, SignInChallenge
from welfare.users.passkeys import prune_challenges
from welfare.users.service import prune_login_failures
from welfare.wakeup import PgListener, work_ready
from welfare.webhooks.models import WebhookReceipt

log = logging.getLogger("welfare.worker")

HOUSEKEEPING_INTERVAL_SECONDS = 60
# Entries newer than the last anchor are not protected yet: at most this long while it grows.
AUDIT_ANCHOR_INTERVAL_SECONDS = 60
POLL_SECONDS = 1.0
# Ended sessions are kept a while so "who was signed in" questions can still be answered.
ENDED_SESSION_RETENTION = dt.timedelta(days=30)
RECEIPT_RETENTION = dt.timedelta(days=30)


@dataclass(frozen=True)
class HousekeepingResult:
    login_failures: int
    sessions: int
    webhook_receipts: int = 0
    heartbeats: int = 0
    incident_photos: int = 0
    passkey_challenges: int = 0
    pending_sign_ins: int = 0  # password-then-code steps and company sign-ins never finished
    recipient_limits: int = 0  # what the limits per recipient no longer look at


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
    gone = heartbeats.prune(session, now)
    # Photos guards took are kept only a while after the incident closes (incidents/photos.py).
    photos = incident_photos.expire_photos(session, settings, now)
    challenges = prune_challenges(session, now)
    pending = sum(
        session.exec(delete(table).where(col(table.expires_at) <= now)).rowcount  # type: ignore[call-overload]
        for table in (SignInChallenge, OidcLogin)
    )
    recipient_rows = limits.prune(session, limits.RecipientLimits.from_settings(settings), now)
    return HousekeepingResult(
        login_failures=failures,
        sessions=sessions,
        webhook_receipts=receipts,
        heartbeats=gone,
        incident_photos=photos,
        passkey_challenges=challenges,
        pending_sign_ins=pending,
        recipient_limits=recipient_rows,
    )


def log_audit_head(factory: sessionmaker[Session], settings: Settings) -> str:
    """Log the audit chain's signed head as one JSON line, whether or not it moved; returns
    the line."""
    with session_scope(factory) as session:
        line = anchor_line(current_head(session), settings.secret_key)
    log.info("audit head %s", line)
    return line


def anchor_audit_head(factory: sessionmaker[Session], settings: Settings) -> str | None:
    """Log the audit chain's signed head if entries were added since the last anchor (by this
    worker or another); returns the line, or None when nothing changed. Logged after the
    commit that records it as anchored."""
    with session_scope(factory) as session:
        line = anchor_if_moved(session, settings.secret_key)
    if line is not None:
        log.info("audit head %s", line)
    return line


@dataclass
class AuditAnchoring:
    """The worker's anchoring job: `tick` each round anchors when the interval has passed (at
    once on the first round) and the chain moved. `clock` is for tests."""

    factory: sessionmaker[Session]
    settings: Settings
    interval: float = AUDIT_ANCHOR_INTERVAL_SECONDS
    clock: Callable[[], float] = field(default=time.monotonic)
    next_at: float | None = None

    def tick(self) -> str | None:
        now = self.clock()
        if self.next_at is not None and now < self.next_at:
            return None
        self.next_at = now + self.interval  # a failure waits for the next interval too
        return anchor_audit_head(self.factory, self.settings)


def escalation_round(factory: sessionmaker[Session], now: dt.datetime | None = None) -> int:
    """Start every escalation step that has fallen due; each incident in its own transaction."""
    from welfare.incidents import service as incidents
    from welfare.incidents.models import Incident

    with session_scope(factory) as session:
        ids = incidents.due_incident_ids(session, now)
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
    scheduler: bool = True,
    identity: heartbeats.WorkerIdentity | None = None,
    on_stop: Callable[[], None] | None = None,
) -> None:
    """Loop until `stop` is set: escalation steps and the outbox every second (at once when a
    commit wakes it: in this process directly, from others by PostgreSQL's NOTIFY), the
    heartbeat every few seconds, housekeeping every minute, the audit head every minute when the
    chain moved. A failing round is logged, never fatal.

    `on_stop` runs once the loop has ended (the dispatcher waits for its sends in flight); the
    head is anchored last, so that what the worker wrote up to its end is covered.

    With `scheduler`, an APScheduler thread also runs the visit and consent jobs while this
    worker holds the scheduler leadership (welfare/visits/scheduler.py)."""
    identity = identity or heartbeats.WorkerIdentity()
    log.info("worker %s started (pid %d)", identity.worker_id, identity.pid)
    engine = factory.kw.get("bind")
    listener = (
        PgListener(engine, on_incident=False).start()
        if engine is not None and engine.dialect.name == "postgresql"
        else None
    )
    visit_scheduler = None
    if scheduler:
        from welfare.visits.scheduler import start_scheduler

        visit_scheduler = start_scheduler(factory)
    try:
        _loop(settings, factory, stop, dispatch_round, identity, AuditAnchoring(factory, settings))
    finally:
        if on_stop is not None:
            on_stop()
        if visit_scheduler is not None:
            visit_scheduler.shutdown(wait=True)
            visit_scheduler.leader.release()
        try:
            anchor_audit_head(factory, settings)
        except Exception:
            log.exception("anchoring the audit head at shutdown failed")
        if listener is not None:
            listener.close()
    log.info("worker %s stopped", identity.worker_id)


def _loop(
    settings: Settings,
    factory: sessionmaker[Session],
    stop: threading.Event,
    dispatch_round: Callable[[], int] | None,
    identity: heartbeats.WorkerIdentity,
    anchoring: AuditAnchoring,
) -> None:
    next_housekeeping = 0.0
    next_escalation = 0.0
    next_heartbeat = 0.0
    while not stop.is_set():
        work_ready.clear()
        if time.monotonic() >= next_heartbeat:
            try:
                with session_scope(factory) as session:
                    heartbeats.beat(session, identity)
                next_heartbeat = time.monotonic() + heartbeats.HEARTBEAT_SECONDS
            except Exception:
                log.exception("heartbeat failed; retrying next round")
        try:
            # Rows a commit just queued (a found report's first SMS and call) go out first; the
            # escalation round (a transaction per running incident) comes after, then its rows.
            # Steps fall due with time, so that round runs once a poll interval, not at every
            # wake-up (each finished send wakes the loop to record it).
            _drain(dispatch_round)
            if time.monotonic() >= next_escalation:
                next_escalation = time.monotonic() + POLL_SECONDS
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
                if result.incident_photos:
                    log.info(
                        "housekeeping deleted %d expired incident photos", result.incident_photos
                    )
            except Exception:
                log.exception("housekeeping round failed; retrying next round")
        try:
            anchoring.tick()
        except Exception:
            log.exception("anchoring the audit head failed; retrying next interval")
        work_ready.wait(POLL_SECONDS)
        if stop.is_set():
            break


def _drain(dispatch_round: Callable[[], int] | None) -> None:
    if dispatch_round is not None:
        while dispatch_round():
            pass


@dataclass(frozen=True)
class InProcessWorker:
    """The worker thread inside the API process: `alive` for readiness, `stop` to end it."""

    thread: threading.Thread
    stop_event: threading.Event

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self) -> None:
        self.stop_event.set()


def start_in_thread(
    settings: Settings,
    factory: sessionmaker[Session],
    dispatch_round: Callable[[], int] | None = None,
    on_stop: Callable[[], None] | None = None,
) -> InProcessWorker:
    stop = threading.Event()
    thread = threading.Thread(
        target=run_worker,
        args=(settings, factory, stop, dispatch_round),
        kwargs={"on_stop": on_stop},
        name="welfare-worker",
        daemon=True,
    )
    thread.start()
    return InProcessWorker(thread=thread, stop_event=stop)
