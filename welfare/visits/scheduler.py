"""The scheduler's jobs, one leader among the workers, and the APScheduler that runs them.

Every job is a function of (session, now) that reads its state from the database and writes its
effects there in the caller's transaction, idempotently: running a job twice, or after a crash,
changes nothing more. Nothing is kept in memory between runs.

Leadership: on PostgreSQL a session-level advisory lock (`pg_try_advisory_lock`) held on a
dedicated connection makes one worker the leader; the others try again every tick and one takes
over when the leader's connection dies (PostgreSQL drops the lock with the session). On SQLite
there is one process, and it leads.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, func, text
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from welfare import outbox
from welfare.audit.service import record as audit_record
from welfare.authz import Actor, Role
from welfare.channels import ChannelKind
from welfare.consent.models import Consent, ConsentScope
from welfare.db import session_scope, upsert, utcnow
from welfare.incidents import timeline
from welfare.incidents.models import Incident
from welfare.residents import unverified as unverified_contacts
from welfare.residents.models import Resident
from welfare.sites.models import Site
from welfare.visits import service as visits
from welfare.visits.models import OPEN_STATUSES, Visit, VisitKind, VisitSchedule, VisitStatus
from welfare.visits.recurrence import occurrences

log = logging.getLogger("welfare.scheduler")

HORIZON = dt.timedelta(days=14)
# A schedule is extended once its visits reach less than HORIZON - STEP ahead: a tick every
# 30 seconds then touches no schedule at all most of the time.
GENERATE_STEP = dt.timedelta(days=1)
REMIND_BEFORE = dt.timedelta(hours=1)
MISSED_GRACE = dt.timedelta(hours=12)  # after the window's end, an overdue visit is missed
CALL_OFFSETS = (dt.timedelta(0), dt.timedelta(minutes=5), dt.timedelta(minutes=10))
CALL_GIVE_UP = dt.timedelta(minutes=15)  # no keypress by then: a welfare concern
REVIEW_REMINDERS = (60, 30)  # days before a consent's review is due
ADVISORY_LOCK_KEY = 0x5745_4C46_5649_5331 & 0x7FFF_FFFF_FFFF_FFFF  # "WELFVIS1"
TICK_SECONDS = 30
GENERATE_BATCH = 500

SYSTEM = Actor.system()


# --- generation ---------------------------------------------------------------------------------


def _residents_consenting(session: Session, resident_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    rows = session.exec(
        select(Consent.resident_id, Consent.scopes).where(
            col(Consent.resident_id).in_(resident_ids), col(Consent.withdrawn_at).is_(None)
        )
    ).all()
    return {rid for rid, scopes in rows if ConsentScope.welfare_visits.value in scopes}


def generate_ahead(session: Session, now: dt.datetime, horizon: dt.timedelta = HORIZON) -> int:
    """Create the visits of every active schedule up to `now + horizon`; return how many were
    new. Carries on from each schedule's `generated_until` (from `now` the first time, so a new
    schedule has no past visits) once that falls a GENERATE_STEP short of the horizon; the unique
    (schedule, window start) makes a repeat a no-op."""
    until = now + horizon
    stale = until - min(GENERATE_STEP, horizon / 2)
    timezones = dict(session.exec(select(Site.id, Site.timezone)).all())
    created = 0
    last_id: uuid.UUID | None = None
    while True:
        query = select(VisitSchedule).where(
            col(VisitSchedule.active),
            (col(VisitSchedule.generated_until).is_(None))
            | (col(VisitSchedule.generated_until) <= stale),
        )
        if last_id is not None:
            query = query.where(col(VisitSchedule.id) > last_id)
        batch = list(session.exec(query.order_by(col(VisitSchedule.id)).limit(GENERATE_BATCH)))
        if not batch:
            return created
        last_id = batch[-1].id
        consenting = _residents_consenting(session, [s.resident_id for s in batch])
        rows: list[dict[str, Any]] = []
        for schedule in batch:
            if schedule.resident_id not in consenting:
                _stop_without_consent(session, schedule, now)
                continue
            rows.extend(_occurrence_rows(schedule, timezones[schedule.site_id], now, until))
            schedule.generated_until = until
            session.add(schedule)
        created += _insert_visits(session, rows, [schedule.id for schedule in batch])
        session.flush()


def generate_schedule(
    session: Session, schedule: VisitSchedule, now: dt.datetime, horizon: dt.timedelta = HORIZON
) -> int:
    """`generate_ahead` for one schedule, in the caller's transaction: a schedule just saved
    shows its coming visits at once instead of at the scheduler's next tick. Returns how many
    visits were new (0 for an inactive schedule or one without welfare-visits consent)."""
    if not schedule.active:
        return 0
    session.flush()
    if schedule.resident_id not in _residents_consenting(session, [schedule.resident_id]):
        _stop_without_consent(session, schedule, now)
        return 0
    until = now + horizon
    if schedule.generated_until is not None and schedule.generated_until >= until:
        return 0
    timezone = session.exec(select(Site.timezone).where(Site.id == schedule.site_id)).one()
    rows = _occurrence_rows(schedule, timezone, now, until)
    schedule.generated_until = until
    session.add(schedule)
    created = _insert_visits(session, rows, [schedule.id])
    session.flush()
    return created


def _occurrence_rows(
    schedule: VisitSchedule, timezone: str, now: dt.datetime, until: dt.datetime
) -> list[dict[str, Any]]:
    """The schedule's visits from where its generation got to (from `now` the first time)."""
    return [
        {
            "id": uuid.uuid4(),
            "schedule_id": schedule.id,
            "site_id": schedule.site_id,
            "resident_id": schedule.resident_id,
            "kind": schedule.kind,
            "assignee_user_id": schedule.assignee_user_id,
            "window_start": start,
            "window_end": end,
            "status": VisitStatus.scheduled,
            "follow_up": False,
            "call_attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for start, end in occurrences(
            rule=schedule.rrule,
            timezone=timezone,
            start_date=schedule.start_date,
            end_date=schedule.end_date,
            window_start=schedule.window_start,
            window_end=schedule.window_end,
            after=schedule.generated_until or now,
            before=until,
        )
    ]


def _insert_visits(
    session: Session, rows: list[dict[str, Any]], schedule_ids: list[uuid.UUID]
) -> int:
    """Insert the rows, skipping those already there; return how many were new."""
    if not rows:
        return 0
    # A plain executemany (the drivers' fast path); what was new is counted by the unique
    # index before and after, since an executemany's rowcount is not reliable.
    insert = upsert(session)
    before = _count_visits(session, schedule_ids)
    statement = insert(Visit).on_conflict_do_nothing(index_elements=["schedule_id", "window_start"])
    session.connection().execute(statement, rows)
    return _count_visits(session, schedule_ids) - before


def _count_visits(session: Session, schedule_ids: list[uuid.UUID]) -> int:
    return session.exec(
        select(func.count()).select_from(Visit).where(col(Visit.schedule_id).in_(schedule_ids))
    ).one()


def _stop_without_consent(session: Session, schedule: VisitSchedule, now: dt.datetime) -> None:
    schedule.active = False
    schedule.generated_until = None
    session.add(schedule)
    visits._drop_future(session, schedule, now)
    audit_record(
        session,
        actor=SYSTEM,
        action="visit_schedule.stopped",
        entity="visit_schedule",
        entity_id=schedule.id,
        resident_id=schedule.resident_id,
        site_id=schedule.site_id,
        detail={"reason": "no welfare-visits consent"},
    )


# --- reminders, overdue, missed -----------------------------------------------------------------


def send_reminders(session: Session, now: dt.datetime) -> int:
    """Remind the assignee (or the site's staff) before the window of a visit by a person."""
    due = session.exec(
        select(Visit).where(
            Visit.status == VisitStatus.scheduled,
            Visit.kind != VisitKind.automated_call,
            col(Visit.window_start) <= now + REMIND_BEFORE,
            col(Visit.window_end) > now,
        )
    ).all()
    for visit in due:
        for user in visits.assignees_of(session, visit):
            visits.queue_notice(
                session,
                key=f"visit:{visit.id}:visit_reminder:{user.id}",
                user=user,
                template="visit_reminder",
                params=visits.visit_params(visit),
                now=now,
            )
        visit.status = VisitStatus.reminded
        visit.reminded_at = visit.updated_at = now
        session.add(visit)
    return len(due)


def mark_overdue(session: Session, now: dt.datetime) -> int:
    """The window ended with nothing recorded: overdue, and the site's managers are alerted."""
    due = session.exec(
        select(Visit).where(
            col(Visit.status).in_([VisitStatus.scheduled, VisitStatus.reminded]),
            Visit.kind != VisitKind.automated_call,
            col(Visit.window_end) <= now,
        )
    ).all()
    for visit in due:
        visit.status = VisitStatus.overdue
        visit.overdue_at = visit.updated_at = now
        session.add(visit)
        visits.alert_managers(session, visit, "visit_overdue", now)
    return len(due)


def mark_missed(session: Session, now: dt.datetime) -> int:
    """Still nothing after the grace period: missed, and the managers hear it again."""
    due = session.exec(
        select(Visit).where(
            Visit.status == VisitStatus.overdue,
            col(Visit.window_end) <= now - MISSED_GRACE,
        )
    ).all()
    for visit in due:
        visit.status = VisitStatus.missed
        visit.missed_at = visit.updated_at = now
        session.add(visit)
        visits.alert_managers(session, visit, "visit_missed", now)
        audit_record(
            session,
            actor=SYSTEM,
            action="visit.missed",
            entity="visit",
            entity_id=visit.id,
            resident_id=visit.resident_id,
            site_id=visit.site_id,
        )
    return len(due)


# --- automated check-in calls -------------------------------------------------------------------


def run_checkin_calls(session: Session, now: dt.datetime) -> int:
    """Call at the window's start, again at +5 and +10 minutes; at +15 with no keypress the
    visit is missed and a welfare_concern incident runs the contact escalation. Returns the
    number of calls queued plus concerns opened."""
    due = session.exec(
        select(Visit).where(
            Visit.kind == VisitKind.automated_call,
            col(Visit.status).in_(OPEN_STATUSES),
            col(Visit.window_start) <= now,
        )
    ).all()
    acted = 0
    for visit in due:
        attempt = visit.call_attempts
        if attempt < len(CALL_OFFSETS):
            if now < visit.window_start + CALL_OFFSETS[attempt]:
                continue
            resident = session.get(Resident, visit.resident_id)
            if resident is None or not resident.phone or resident.erased_at is not None:
                visit.call_attempts = len(CALL_OFFSETS)  # nobody to call: straight to concern
            else:
                _queue_call(session, visit, resident, attempt + 1, now)
                visit.call_attempts = attempt + 1
                visit.last_call_at = now
            visit.updated_at = now
            session.add(visit)
            acted += 1
            continue
        if now < visit.window_start + CALL_GIVE_UP:
            continue
        visit.status = VisitStatus.missed
        visit.missed_at = visit.updated_at = now
        session.add(visit)
        session.flush()
        visit.incident_id = visits._open_concern(session, SYSTEM, visit, escalate=True, now=now)
        session.add(visit)
        if visit.incident_id is not None:
            incident = session.get(Incident, visit.incident_id)
            assert incident is not None
            timeline.record(session, incident, "checkin_unanswered", calls=visit.call_attempts)
        acted += 1
    return acted


def _queue_call(
    session: Session, visit: Visit, resident: Resident, attempt: int, now: dt.datetime
) -> None:
    outbox.enqueue(
        session,
        kind=ChannelKind.voice,
        to=resident.phone,
        language=(resident.languages or ["en"])[0],
        template="checkin_call",
        key=f"visit:{visit.id}:call:{attempt}",
        params={"visit_id": visit.id, "site_id": visit.site_id, "attempt": str(attempt)},
        once=True,
        now=now,
    )


# --- consent reviews ----------------------------------------------------------------------------


def consent_reviews(session: Session, now: dt.datetime) -> int:
    """Remind the site's staff 60 and 30 days before a consent's review is due; when it has
    passed, flag the consent unverified (audit entry and a notice), once each."""
    horizon = now + dt.timedelta(days=max(REVIEW_REMINDERS))
    rows = session.exec(
        select(Consent, Resident.site_id)
        .join(Resident, col(Resident.id) == col(Consent.resident_id))
        .where(
            col(Consent.withdrawn_at).is_(None),
            col(Resident.erased_at).is_(None),
            col(Consent.review_due) <= horizon,
        )
    ).all()
    done = 0
    for consent, site_id in rows:
        days_left = (consent.review_due - now).total_seconds() / 86400
        due_day = consent.review_due.date().isoformat()
        if days_left <= 0:
            stage = "overdue"
        else:
            stage = str(min(d for d in REVIEW_REMINDERS if days_left <= d))
        if not visits.mark_once(session, f"consent:{consent.id}:{due_day}:{stage}", now):
            continue
        done += 1
        if stage == "overdue":
            audit_record(
                session,
                actor=SYSTEM,
                action="consent.unverified",
                entity="consent",
                entity_id=consent.id,
                resident_id=consent.resident_id,
                site_id=site_id,
                detail={"review_due": due_day},
            )
        staff = visits.users_at_site(session, site_id, (Role.staff,)) or visits.users_at_site(
            session, site_id, (Role.manager,)
        )
        # The reminder also counts the site's family contacts not verified (no names: its link
        # opens the signed-in list that has them).
        unverified = unverified_contacts.count_unverified(session, site_id, now) if staff else 0
        for user in staff:
            visits.queue_notice(
                session,
                key=f"consent:{consent.id}:{due_day}:{stage}:{user.id}",
                user=user,
                template="consent_review",
                params={
                    "consent_id": consent.id,
                    "resident_id": consent.resident_id,
                    "site_id": site_id,
                    "review_due": consent.review_due.isoformat(),
                    "stage": stage,
                    "unverified_contacts": unverified,
                },
                now=now,
            )
    return done


# --- running them -------------------------------------------------------------------------------

JOBS: tuple[tuple[str, Callable[[Session, dt.datetime], int]], ...] = (
    ("generate", generate_ahead),
    ("reminders", send_reminders),
    ("overdue", mark_overdue),
    ("missed", mark_missed),
    ("checkin_calls", run_checkin_calls),
    ("consent_reviews", consent_reviews),
)


def run_jobs(factory: sessionmaker[Session], now: dt.datetime | None = None) -> dict[str, int]:
    """Every job once, each in its own transaction; a failing job is logged and the rest run."""
    now = now or utcnow()
    results: dict[str, int] = {}
    for name, job in JOBS:
        try:
            with session_scope(factory) as session:
                results[name] = job(session, now)
        except Exception:
            log.exception("scheduler job %s failed; it runs again next tick", name)
            results[name] = -1
    return results


@dataclass
class Leader:
    """Holds (or tries to take) the scheduler leadership for one worker."""

    engine: Engine
    key: int = ADVISORY_LOCK_KEY
    connection: Connection | None = field(default=None, repr=False)

    @property
    def postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def ensure(self) -> bool:
        """True while this worker leads: checks the held connection is alive, else tries to
        take the lock on a fresh one."""
        if not self.postgres:
            return True
        if self.connection is not None:
            try:
                self.connection.execute(text("SELECT 1"))
                self.connection.commit()
                return True
            except Exception:
                log.warning("scheduler leadership lost: its database connection died")
                self._drop()
        connection = self.engine.connect()
        try:
            taken = connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
            ).scalar()
            connection.commit()
        except Exception:
            connection.close()
            raise
        if taken:
            self.connection = connection
            log.info("this worker now leads the scheduler")
            return True
        connection.close()
        return False

    def release(self) -> None:
        if self.connection is None:
            return
        try:
            self.connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            self.connection.commit()
        except Exception:
            log.warning("could not release the scheduler lock; it goes with the connection")
        self._drop()

    def _drop(self) -> None:
        if self.connection is not None:
            try:
                self.connection.invalidate()
                self.connection.close()
            except Exception:
                log.debug("closing a dead leader connection failed", exc_info=True)
        self.connection = None


def tick(leader: Leader, factory: sessionmaker[Session]) -> dict[str, int] | None:
    """One scheduler round: the jobs, if this worker leads."""
    try:
        leading = leader.ensure()
    except Exception:
        log.exception("could not check the scheduler leadership")
        return None
    return run_jobs(factory) if leading else None


def start_scheduler(factory: sessionmaker[Session], interval: float = TICK_SECONDS) -> Any:
    """A started APScheduler BackgroundScheduler ticking every `interval` seconds; call
    `.shutdown()` on it (and the returned scheduler's `leader.release()`) to stop."""
    from apscheduler.schedulers.background import BackgroundScheduler

    engine = factory.kw["bind"]
    leader = Leader(engine)
    scheduler = BackgroundScheduler(timezone=dt.UTC)
    scheduler.add_job(
        tick,
        "interval",
        seconds=interval,
        args=(leader, factory),
        id="welfare-visits",
        max_instances=1,
        coalesce=True,
        next_run_time=dt.datetime.now(dt.UTC),
    )
    scheduler.start()
    scheduler.leader = leader  # type: ignore[attr-defined]
    return scheduler
