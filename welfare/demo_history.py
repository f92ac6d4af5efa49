"""The demo's past: three months of welfare visits and incidents, so that the manager's calendar,
reports and charts have real shapes to show.

Deterministic (one fixed random seed, times relative to `now`) and made once per site: a site
that has visit schedules already is left alone, so `welfare demo` run again adds nothing, and a
demo database made before this existed gets its history on the next run.

Schedules are made by the visits service and their coming visits by the scheduler's generator.
The past cannot be replayed through the services (they act "now", and would text the demo's
phones about visits months old), so past visits and incidents are written as the models hold
them, with timeline events through the one timeline writer, dated when they happened.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from sqlmodel import Session, col, select

from welfare.authz import Actor
from welfare.db import utcnow
from welfare.incidents import timeline
from welfare.incidents.models import (
    Condition,
    Incident,
    IncidentEvent,
    IncidentKind,
    IncidentStatus,
    Outcome,
)
from welfare.incidents.service import REFERENCE_ALPHABET
from welfare.residents.models import Contact, Resident
from welfare.sites.models import Site
from welfare.times import zone
from welfare.users.models import User
from welfare.visits import scheduler
from welfare.visits import service as visits
from welfare.visits.models import (
    ScheduleCreate,
    Visit,
    VisitKind,
    VisitOutcome,
    VisitSchedule,
    VisitStatus,
)
from welfare.visits.recurrence import occurrences

SEED = 1609
HISTORY = dt.timedelta(days=91)


@dataclass(frozen=True)
class DemoSchedule:
    resident: str  # full name
    kind: VisitKind
    rrule: str
    window: tuple[dt.time, dt.time]
    assignee: str | None  # demo username; None: the site's staff
    miss_rate: float


SCHEDULES = (
    DemoSchedule(
        "Wang Jianguo",
        VisitKind.home_visit,
        "FREQ=WEEKLY;BYDAY=MO,TH",
        (dt.time(10, 0), dt.time(11, 0)),
        "staff",
        0.08,
    ),
    DemoSchedule(
        "Park Soon-ja",
        VisitKind.phone_checkin,
        "FREQ=WEEKLY;BYDAY=TU,FR",
        (dt.time(15, 0), dt.time(15, 30)),
        "staff",
        0.15,
    ),
    DemoSchedule(
        "Margaret Lee",
        VisitKind.home_visit,
        "FREQ=WEEKLY;BYDAY=WE",
        (dt.time(14, 0), dt.time(15, 0)),
        None,
        0.2,
    ),
    DemoSchedule(
        "Chan Tai-man",
        VisitKind.phone_checkin,
        "FREQ=DAILY;INTERVAL=3",
        (dt.time(11, 0), dt.time(11, 30)),
        "manager",
        0.1,
    ),
)
# The last visit of this schedule whose window has ended is left overdue (nobody recorded it
# yet); the scheduler turns it missed, and tells the manager, once its grace period is over.
OVERDUE_SCHEDULE = "Margaret Lee"

OUTCOMES = (
    (VisitOutcome.well, 0.72),
    (VisitOutcome.not_home, 0.12),
    (VisitOutcome.concern, 0.06),
    (VisitOutcome.refused, 0.06),
    (VisitOutcome.hospitalised, 0.04),
)
NOTES = {
    VisitOutcome.well: (
        "Well and cheerful; had lunch.",
        "All fine. Talked about the garden.",
        "Fine. Reminded about Thursday's clinic appointment.",
        None,
        None,
    ),
    VisitOutcome.not_home: (
        "No answer at the door; neighbour saw them go out.",
        "Not home. Left a note under the door.",
    ),
    VisitOutcome.concern: (
        "Seemed confused about the day; fridge almost empty.",
        "Had not taken the morning medicine; family asked to check.",
    ),
    VisitOutcome.refused: ("Did not want a visit today; polite.",),
    VisitOutcome.hospitalised: ("Daughter says admitted to hospital for tests.",),
}


@dataclass(frozen=True)
class DemoIncident:
    resident: str
    kind: IncidentKind
    days_ago: int
    local_time: dt.time
    location: str
    outcome: Outcome
    confirmed_via: str | None  # None: nobody confirmed (e.g. a false alarm)


INCIDENTS = (
    DemoIncident(
        "Wang Jianguo",
        IncidentKind.found,
        88,
        dt.time(14, 20),
        "Building 1, 3/F stairwell",
        Outcome.handed_over,
        "sms",
    ),
    DemoIncident(
        "Margaret Lee",
        IncidentKind.found,
        74,
        dt.time(16, 5),
        "Rose beds by the main gate",
        Outcome.handed_over,
        "call",
    ),
    DemoIncident(
        "Wang Jianguo",
        IncidentKind.found,
        61,
        dt.time(13, 45),
        "The old bus stop on Harbour Road",
        Outcome.handed_over,
        "keypress",
    ),
    DemoIncident(
        "Wang Jianguo",
        IncidentKind.missing,
        47,
        dt.time(18, 30),
        "Last seen at the garden",
        Outcome.returned_home,
        "sms",
    ),
    DemoIncident(
        "Park Soon-ja",
        IncidentKind.found,
        33,
        dt.time(11, 10),
        "Korean grocery on Harbour Road",
        Outcome.handed_over,
        "sms",
    ),
    DemoIncident(
        "Margaret Lee",
        IncidentKind.found,
        19,
        dt.time(15, 40),
        "Car park entrance",
        Outcome.handed_over,
        "call",
    ),
    DemoIncident(
        "Chan Tai-man",
        IncidentKind.found,
        12,
        dt.time(10, 15),
        "Lift lobby of Building 2",
        Outcome.false_alarm,
        None,
    ),
    DemoIncident(
        "Wang Jianguo",
        IncidentKind.found,
        4,
        dt.time(14, 55),
        "Building 1, 3/F meter-box door",
        Outcome.handed_over,
        "keypress",
    ),
)


def seed_history(session: Session, site: Site, now: dt.datetime | None = None) -> bool:
    """Schedules with past and coming visits, and past incidents with their timelines, for
    the demo site; False (and nothing done) when the site has visit schedules already."""
    if session.exec(select(VisitSchedule.id).where(VisitSchedule.site_id == site.id)).first():
        return False
    now = (now or utcnow()).replace(microsecond=0)
    rng = random.Random(SEED)
    residents = {
        r.full_name: r
        for r in session.exec(select(Resident).where(Resident.site_id == site.id)).all()
    }
    users = {u.username: u for u in session.exec(select(User)).all()}
    _seed_incidents(session, site, residents, users, rng, now)
    for plan in SCHEDULES:
        resident = residents.get(plan.resident)
        if resident is None:
            continue
        _seed_schedule(session, site, resident, plan, users, rng, now)
    return True


def _seed_schedule(
    session: Session,
    site: Site,
    resident: Resident,
    plan: DemoSchedule,
    users: dict[str, User],
    rng: random.Random,
    now: dt.datetime,
) -> None:
    tz = zone(site.timezone)
    assignee = users.get(plan.assignee) if plan.assignee else None
    recorder = assignee or users.get("staff")
    schedule = visits.create_schedule(
        session=session,
        actor=Actor.system(),
        data=ScheduleCreate(
            resident_id=resident.id,
            kind=plan.kind,
            rrule=plan.rrule,
            window_start=plan.window[0],
            window_end=plan.window[1],
            assignee_user_id=assignee.id if assignee else None,
            start_date=(now - HISTORY).astimezone(tz).date(),
        ),
    )
    windows = occurrences(
        rule=schedule.rrule,
        timezone=site.timezone,
        start_date=schedule.start_date,
        end_date=None,
        window_start=schedule.window_start,
        window_end=schedule.window_end,
        after=now - HISTORY,
        before=now,
    )
    ended = [w for w in windows if w[1] <= now]
    contact = _first_contact(session, resident)
    for start, end in windows:
        visit = Visit(
            schedule_id=schedule.id,
            site_id=site.id,
            resident_id=resident.id,
            kind=schedule.kind,
            assignee_user_id=schedule.assignee_user_id,
            window_start=start,
            window_end=end,
            created_at=start - dt.timedelta(days=14),
            updated_at=start,
        )
        if end > now:  # under way: still open
            visit.status = VisitStatus.reminded
            visit.reminded_at = start - dt.timedelta(hours=1)
        elif plan.resident == OVERDUE_SCHEDULE and ended and (start, end) == ended[-1]:
            visit.status = VisitStatus.overdue
            visit.overdue_at = visit.updated_at = end
        elif rng.random() < plan.miss_rate and end <= now - scheduler.MISSED_GRACE:
            visit.status = VisitStatus.missed
            visit.overdue_at = end
            visit.missed_at = visit.updated_at = end + scheduler.MISSED_GRACE
        else:
            outcome = _pick_outcome(rng)
            visit.status = VisitStatus.completed
            visit.outcome = outcome
            visit.notes = rng.choice(NOTES[outcome])
            visit.follow_up = outcome is VisitOutcome.concern
            visit.recorded_by = recorder.id if recorder else None
            late = rng.randint(5, int((end - start).total_seconds() // 60) + 20)
            visit.recorded_at = visit.updated_at = min(start + dt.timedelta(minutes=late), now)
            if outcome is VisitOutcome.concern:  # as recording it would: a welfare concern
                concern = DemoIncident(
                    plan.resident,
                    IncidentKind.welfare_concern,
                    0,
                    dt.time(0),
                    "",
                    Outcome.returned_home,
                    "sms",
                )
                visit.incident_id = _incident(
                    session,
                    site,
                    resident,
                    concern,
                    f"visit-{start:%Y%m%d}",
                    visit.recorded_at,
                    recorder,
                    None,
                    contact,
                    rng,
                ).id
        session.add(visit)
    session.flush()
    scheduler.generate_schedule(session, schedule, now)


def _pick_outcome(rng: random.Random) -> VisitOutcome:
    roll, total = rng.random(), 0.0
    for outcome, weight in OUTCOMES:
        total += weight
        if roll < total:
            return outcome
    return VisitOutcome.well


def _first_contact(session: Session, resident: Resident) -> Contact | None:
    return session.exec(
        select(Contact)
        .where(Contact.resident_id == resident.id)
        .order_by(col(Contact.priority), col(Contact.id))
    ).first()


def _seed_incidents(
    session: Session,
    site: Site,
    residents: dict[str, Resident],
    users: dict[str, User],
    rng: random.Random,
    now: dt.datetime,
) -> None:
    """The past incidents, each resolved, with the timeline it would have had."""
    tz = zone(site.timezone)
    guard, staff = users.get("guard"), users.get("staff")
    for number, plan in enumerate(INCIDENTS, start=1):
        resident = residents.get(plan.resident)
        if resident is None:
            continue
        day = (now - dt.timedelta(days=plan.days_ago)).astimezone(tz).date()
        opened = dt.datetime.combine(day, plan.local_time, tz).astimezone(dt.UTC)
        reporter = guard if plan.kind is IncidentKind.found else staff
        _incident(
            session,
            site,
            resident,
            plan,
            str(number),
            opened,
            reporter,
            guard,
            _first_contact(session, resident),
            rng,
        )


def _incident(
    session: Session,
    site: Site,
    resident: Resident,
    plan: DemoIncident,
    number: str,
    opened: dt.datetime,
    reporter: User | None,
    guard: User | None,
    contact: Contact | None,
    rng: random.Random,
) -> Incident:
    first_sent = opened + dt.timedelta(seconds=rng.randint(15, 75))
    confirmed = (
        first_sent + dt.timedelta(seconds=rng.randint(90, 900)) if plan.confirmed_via else None
    )
    handed_over = (
        (confirmed or first_sent) + dt.timedelta(seconds=rng.randint(600, 2700))
        if plan.outcome is Outcome.handed_over
        else None
    )
    closed = (handed_over or confirmed or first_sent) + dt.timedelta(seconds=rng.randint(60, 600))
    incident = Incident(
        reference="".join(rng.choice(REFERENCE_ALPHABET) for _ in range(6)),
        site_id=site.id,
        resident_id=resident.id,
        kind=plan.kind,
        status=IncidentStatus.resolved,
        condition=Condition.well,
        reported_by=reporter.id if reporter else None,
        client_request_id=f"demo-history-{number}",
        location=plan.location or None,
        opened_at=opened,
        first_sent_at=first_sent,
        confirmed_at=confirmed,
        confirmed_via=plan.confirmed_via,
        confirmed_contact_id=contact.id if contact and confirmed else None,
        handed_over_at=handed_over,
        closed_at=closed,
        outcome=plan.outcome,
        handed_to=contact.name if contact and handed_over else None,
        updated_at=closed,
    )
    session.add(incident)
    session.flush()

    def actor_of(user: User | None) -> Actor | None:
        return Actor(user_id=user.id, role=user.role) if user else None

    def event(at: dt.datetime, type_: str, actor: Actor | None = None, **detail: object) -> None:
        written: IncidentEvent = timeline.record(session, incident, type_, actor=actor, **detail)
        written.at = at

    reported_by = actor_of(reporter)
    if plan.kind is IncidentKind.welfare_concern:
        event(opened, "reported", reported_by, kind=plan.kind.value, condition="well")
        event(opened, "visit_concern", reported_by, outcome=VisitOutcome.concern.value)
    else:
        event(
            opened,
            "reported",
            reported_by,
            kind=plan.kind.value,
            condition=Condition.well.value,
            unknown_person=False,
            gps=False,
        )
    if contact is not None:
        queued = opened + dt.timedelta(seconds=2)
        event(queued, "queued", channel="sms", step=0, contact_id=contact.id)
        event(
            first_sent,
            "sent",
            channel="sms",
            contact_id=contact.id,
            provider_status="sent_to_carrier",
        )
    if confirmed is not None:
        written = timeline.record(
            session,
            incident,
            "confirmed",
            label="contact",
            via=plan.confirmed_via,
            contact_id=contact.id if contact else None,
            cancelled_messages=0,
        )
        written.at = confirmed
    closer = actor_of(guard) if plan.kind is IncidentKind.found else reported_by
    if handed_over is not None:
        event(handed_over, "handed_over", closer)
    event(closed, "resolved", closer, outcome=plan.outcome.value)
    session.flush()
    return incident
