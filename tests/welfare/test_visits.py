"""Visit schedules and the scheduler's jobs, driven by a controllable clock."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from tests.conftest import SYSTEM
from welfare import consents
from welfare.audit.models import AuditEntry
from welfare.authz import Actor, Role
from welfare.errors import InvalidInput
from welfare.incidents.models import Incident, IncidentKind
from welfare.outbox.models import OutboxMessage
from welfare.residents.models import Resident
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.visits import recurrence, scheduler
from welfare.visits import service as visits
from welfare.visits.models import (
    ScheduleCreate,
    ScheduleUpdate,
    Visit,
    VisitKind,
    VisitOutcome,
    VisitRecord,
    VisitSchedule,
    VisitStatus,
)

NY = zoneinfo.ZoneInfo("America/New_York")


@pytest.fixture
def ny_site(make_site: Callable[..., Site]) -> Site:
    return make_site(
        name="Riverside Court",
        timezone="America/New_York",
        phone_region="US",
        office_phone="+1 212 736 5000",
    )


@pytest.fixture
def resident_at(
    make_household: Callable[..., Any],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
) -> Callable[..., Resident]:
    def make(site: Site, scopes: list[str] | None = None, **overrides: Any) -> Resident:
        resident = make_resident(household=make_household(site_=site), **overrides)
        make_consent(resident, scopes=scopes)
        return resident

    return make


def _schedule(db: Session, resident: Resident, **overrides: Any) -> VisitSchedule:
    data = {
        "resident_id": resident.id,
        "kind": "home_visit",
        "rrule": "FREQ=DAILY",
        "window_start": dt.time(10, 0),
        "window_end": dt.time(11, 0),
        "start_date": dt.date(2026, 10, 26),
    } | overrides
    schedule = visits.create_schedule(session=db, actor=SYSTEM, data=ScheduleCreate(**data))
    db.commit()
    return schedule


def _visits(db: Session, schedule: VisitSchedule | None = None) -> list[Visit]:
    db.rollback()
    query = select(Visit).order_by(col(Visit.window_start))
    if schedule is not None:
        query = query.where(Visit.schedule_id == schedule.id)
    return list(db.exec(query).all())


def _run(
    writers: sessionmaker[Session], job: Callable[[Session, dt.datetime], int], now: Any
) -> int:
    with writers() as session:
        result = job(session, now)
        session.commit()
    return result


# --- recurrence ---------------------------------------------------------------------------------


def test_a_daily_window_stays_at_ten_local_across_the_autumn_change() -> None:
    # New York leaves daylight saving on Sunday 1 November 2026 at 02:00.
    found = recurrence.occurrences(
        rule="FREQ=DAILY",
        timezone="America/New_York",
        start_date=dt.date(2026, 10, 28),
        end_date=None,
        window_start=dt.time(10, 0),
        window_end=dt.time(11, 0),
        after=dt.datetime(2026, 10, 28, tzinfo=dt.UTC),
        before=dt.datetime(2026, 11, 4, tzinfo=dt.UTC),
    )
    assert [s.astimezone(NY).time() for s, _ in found] == [dt.time(10, 0)] * 7
    assert [e - s for s, e in found] == [dt.timedelta(hours=1)] * 7
    utc_hours = [s.hour for s, _ in found]
    assert utc_hours == [14, 14, 14, 14, 15, 15, 15]  # EDT (UTC-4) then EST (UTC-5)


def test_a_weekly_rule_across_the_spring_change_keeps_its_days_and_hour() -> None:
    # Daylight saving starts on Sunday 8 March 2026; Mondays and Thursdays at 10:00.
    found = recurrence.occurrences(
        rule="RRULE:FREQ=WEEKLY;BYDAY=MO,TH",
        timezone="America/New_York",
        start_date=dt.date(2026, 3, 1),
        end_date=dt.date(2026, 3, 12),
        window_start=dt.time(10, 0),
        window_end=dt.time(11, 30),
        after=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
        before=dt.datetime(2026, 4, 1, tzinfo=dt.UTC),
    )
    local = [s.astimezone(NY) for s, _ in found]
    assert [d.date().isoformat() for d in local] == [
        "2026-03-02",
        "2026-03-05",
        "2026-03-09",
        "2026-03-12",  # end_date is inclusive
    ]
    assert {d.time() for d in local} == {dt.time(10, 0)}
    assert [s.hour for s, _ in found] == [15, 15, 14, 14]


@pytest.mark.parametrize(
    "rule",
    [
        "",
        "FREQ=HOURLY",
        "FREQ=MINUTELY",
        "FREQ=WEEKLY;BYDAY=XX",
        "DTSTART:20260101T000000",
        "FREQ=DAILY;BYHOUR=1,2,3",
        "FREQ=DAILY;UNTIL=20270101T000000",
    ],
)
def test_bad_rules_are_refused_with_the_field_named(rule: str) -> None:
    with pytest.raises(InvalidInput) as error:
        recurrence.validate_rule(rule)
    assert error.value.loc == ("rrule",)


# --- schedules ----------------------------------------------------------------------------------


def test_no_schedule_without_welfare_visits_consent(
    db: Session, ny_site: Site, resident_at: Callable[..., Resident]
) -> None:
    resident = resident_at(ny_site, scopes=["registry", "lost_person_response"])
    with pytest.raises(InvalidInput, match="consented to welfare visits"):
        _schedule(db, resident)


def test_automated_calls_need_the_residents_own_phone(
    db: Session, ny_site: Site, resident_at: Callable[..., Resident]
) -> None:
    resident = resident_at(ny_site)
    with pytest.raises(InvalidInput, match="own phone"):
        _schedule(db, resident, kind="automated_call")
    with_phone = resident_at(ny_site, phone="917 555 1234")
    assert with_phone.phone == "+19175551234"
    assert _schedule(db, with_phone, kind="automated_call").kind is VisitKind.automated_call


def test_a_window_must_end_after_it_starts(
    db: Session, ny_site: Site, resident_at: Callable[..., Resident]
) -> None:
    with pytest.raises(InvalidInput, match="window"):
        _schedule(db, resident_at(ny_site), window_end=dt.time(9, 0))


# --- generation ---------------------------------------------------------------------------------


def test_generation_over_a_daylight_saving_week_is_idempotent(
    db: Session,
    writers: sessionmaker[Session],
    ny_site: Site,
    resident_at: Callable[..., Resident],
) -> None:
    schedule = _schedule(db, resident_at(ny_site), start_date=dt.date(2026, 10, 28))
    now = dt.datetime(2026, 10, 28, 4, 0, tzinfo=dt.UTC)  # midnight in New York
    horizon = dt.timedelta(days=7)

    created = _run(writers, lambda s, n: scheduler.generate_ahead(s, n, horizon), now)
    assert created == 7
    again = _run(writers, lambda s, n: scheduler.generate_ahead(s, n, horizon), now)
    assert again == 0
    # Forgetting how far it got does not duplicate either: the unique key holds.
    with writers() as session:
        row = session.get(VisitSchedule, schedule.id)
        assert row is not None
        row.generated_until = None
        session.add(row)
        session.commit()
    assert _run(writers, lambda s, n: scheduler.generate_ahead(s, n, horizon), now) == 0

    rows = _visits(db, schedule)
    assert len(rows) == 7
    assert {r.window_start.astimezone(NY).time() for r in rows} == {dt.time(10, 0)}
    assert [r.window_start.hour for r in rows] == [14, 14, 14, 14, 15, 15, 15]

    # Within a day nothing is extended; a day later the horizon moves on: one new visit.
    soon = now + dt.timedelta(hours=23)
    assert _run(writers, lambda s, n: scheduler.generate_ahead(s, n, horizon), soon) == 0
    later = now + dt.timedelta(days=1)
    assert _run(writers, lambda s, n: scheduler.generate_ahead(s, n, horizon), later) == 1


def test_changing_the_rule_regenerates_only_future_unrecorded_visits(
    db: Session,
    writers: sessionmaker[Session],
    ny_site: Site,
    resident_at: Callable[..., Resident],
) -> None:
    schedule = _schedule(db, resident_at(ny_site), start_date=dt.date(2026, 10, 28))
    now = dt.datetime(2026, 10, 28, 4, 0, tzinfo=dt.UTC)
    _run(writers, lambda s, n: scheduler.generate_ahead(s, n, dt.timedelta(days=14)), now)
    with writers() as session:
        visits.update_schedule(
            session=session,
            actor=SYSTEM,
            schedule_id=schedule.id,
            data=ScheduleUpdate(rrule="FREQ=WEEKLY;BYDAY=WE"),
            now=now,
        )
        session.commit()
    _run(writers, lambda s, n: scheduler.generate_ahead(s, n, dt.timedelta(days=14)), now)
    rows = _visits(db, schedule)
    assert [r.window_start.astimezone(NY).strftime("%a") for r in rows] == ["Wed", "Wed"]


def test_withdrawn_consent_stops_generation(
    db: Session,
    writers: sessionmaker[Session],
    settings: Settings,
    ny_site: Site,
    resident_at: Callable[..., Resident],
) -> None:
    resident = resident_at(ny_site)
    schedule = _schedule(db, resident, start_date=dt.date(2026, 10, 28))
    consent = consents.consents_of(db, resident.id)[0]
    consents.withdraw_consent(
        session=db,
        actor=SYSTEM,
        settings=settings,
        resident_id=resident.id,
        consent_id=consent.id,
    )
    db.commit()
    now = dt.datetime(2026, 10, 28, 4, 0, tzinfo=dt.UTC)
    assert _run(writers, scheduler.generate_ahead, now) == 0
    db.expire_all()  # a rollback with no transaction open expires nothing: read the database
    assert db.get(VisitSchedule, schedule.id).active is False  # type: ignore[union-attr]


def test_withdrawing_only_the_welfare_visits_scope_stops_the_schedule_at_the_next_generation(
    db: Session,
    writers: sessionmaker[Session],
    settings: Settings,
    ny_site: Site,
    resident_at: Callable[..., Resident],
    make_consent: Callable[..., Any],
) -> None:
    """The registry stays (no erasure, which ends schedules by itself): the generator is what
    notices the lapsed scope, stops the schedule and forgets its untouched future visits."""
    resident = resident_at(ny_site, scopes=["registry", "lost_person_response"])
    visits_consent = make_consent(resident, scopes=["welfare_visits"])
    schedule = _schedule(db, resident, start_date=dt.date(2026, 10, 28))
    now = dt.datetime(2026, 10, 28, 4, 0, tzinfo=dt.UTC)
    assert _run(writers, scheduler.generate_ahead, now) == 14
    consents.withdraw_consent(
        session=db,
        actor=SYSTEM,
        settings=settings,
        resident_id=resident.id,
        consent_id=visits_consent.id,
    )
    db.commit()
    db.expire_all()  # read what the database holds, not what this session last saw
    assert db.get(VisitSchedule, schedule.id).active is True  # type: ignore[union-attr]
    assert db.get(Resident, resident.id).erased_at is None  # type: ignore[union-attr]
    db.rollback()

    later = now + scheduler.HORIZON  # the next generation this schedule is due for
    assert _run(writers, scheduler.generate_ahead, later) == 0
    db.expire_all()
    assert db.get(VisitSchedule, schedule.id).active is False  # type: ignore[union-attr]
    assert [v.window_start for v in _visits(db, schedule) if v.window_start > later] == []
    (stopped,) = db.exec(
        select(AuditEntry).where(AuditEntry.action == "visit_schedule.stopped")
    ).all()
    assert stopped.entity_id == str(schedule.id)
    assert stopped.detail == {"reason": "no welfare-visits consent"}


def test_a_consent_overdue_for_review_keeps_the_schedule_generating(
    db: Session,
    writers: sessionmaker[Session],
    ny_site: Site,
    make_household: Callable[..., Any],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
) -> None:
    """Overdue for review is 'unverified', not lapsed: the scope still holds (README)."""
    resident = make_resident(household=make_household(site_=ny_site))
    make_consent(
        resident,
        given_at=dt.datetime(2025, 1, 6, tzinfo=dt.UTC),
        review_due=dt.datetime(2025, 7, 6, tzinfo=dt.UTC),
    )
    schedule = _schedule(db, resident, start_date=dt.date(2026, 10, 28))
    now = dt.datetime(2026, 10, 28, 4, 0, tzinfo=dt.UTC)
    assert consents.derive_state(consents.consents_of(db, resident.id), now) == "unverified"
    assert _run(writers, scheduler.generate_ahead, now) == 14
    db.expire_all()
    assert db.get(VisitSchedule, schedule.id).active is True  # type: ignore[union-attr]
    assert len(_visits(db, schedule)) == 14


# --- reminders, overdue, missed -----------------------------------------------------------------


def test_missed_visit_escalates_to_the_manager(
    db: Session,
    writers: sessionmaker[Session],
    ny_site: Site,
    resident_at: Callable[..., Resident],
    make_user: Callable[..., Any],
) -> None:
    visitor = make_user("staff", [ny_site], phone="+1 917 555 2000", language="en")
    manager = make_user("manager", [ny_site], phone="+1 917 555 3000", language="ko-KR")
    schedule = _schedule(
        db,
        resident_at(ny_site),
        start_date=dt.date(2026, 11, 2),
        rrule="FREQ=WEEKLY;BYDAY=MO",
        assignee_user_id=visitor.id,
    )
    start = dt.datetime(2026, 11, 2, 15, 0, tzinfo=dt.UTC)  # 10:00 EST
    _run(writers, scheduler.generate_ahead, start - dt.timedelta(days=1))
    (visit,) = [v for v in _visits(db, schedule) if v.window_start == start]

    def outbox_to(user: Any) -> list[str]:
        db.rollback()
        return [
            m.template
            for m in db.exec(
                select(OutboxMessage)
                .where(OutboxMessage.user_id == user.id)
                .order_by(col(OutboxMessage.created_at))
            ).all()
        ]

    # Two hours before: nothing. One hour before: the visitor is reminded, once.
    assert _run(writers, scheduler.send_reminders, start - dt.timedelta(hours=2)) == 0
    assert _run(writers, scheduler.send_reminders, start - dt.timedelta(minutes=59)) == 1
    assert _run(writers, scheduler.send_reminders, start - dt.timedelta(minutes=30)) == 0
    assert outbox_to(visitor) == ["visit_reminder"]

    # The window ends with nothing recorded: overdue, the manager hears it.
    assert _run(writers, scheduler.mark_overdue, start + dt.timedelta(minutes=59)) == 0
    assert _run(writers, scheduler.mark_overdue, start + dt.timedelta(hours=1)) == 1
    assert _run(writers, scheduler.mark_overdue, start + dt.timedelta(hours=2)) == 0
    assert outbox_to(manager) == ["visit_overdue"]
    assert db.get(Visit, visit.id).status is VisitStatus.overdue  # type: ignore[union-attr]

    # After the grace period: missed, and the manager is told again (once).
    grace_end = visit.window_end + scheduler.MISSED_GRACE
    assert _run(writers, scheduler.mark_missed, grace_end - dt.timedelta(minutes=1)) == 0
    assert _run(writers, scheduler.mark_missed, grace_end) == 1
    assert _run(writers, scheduler.mark_missed, grace_end + dt.timedelta(hours=1)) == 0
    assert outbox_to(manager) == ["visit_overdue", "visit_missed"]
    db.rollback()
    missed = db.get(Visit, visit.id)
    assert missed is not None and missed.status is VisitStatus.missed
    row = db.exec(
        select(OutboxMessage).where(
            OutboxMessage.user_id == manager.id, OutboxMessage.template == "visit_missed"
        )
    ).one()
    assert row.language == "ko-KR" and row.to_phone == "+19175553000"
    assert set(row.params) == {"visit_id", "site_id", "kind", "window_start"}
    assert db.exec(select(AuditEntry).where(AuditEntry.action == "visit.missed")).first()


def test_recording_a_concern_opens_a_welfare_concern_for_staff(
    db: Session,
    writers: sessionmaker[Session],
    ny_site: Site,
    resident_at: Callable[..., Resident],
    make_user: Callable[..., Any],
    make_contact: Callable[..., Any],
) -> None:
    resident = resident_at(ny_site)
    make_contact(resident, phone="+1 917 555 4000", language="en")
    staff = make_user("staff", [ny_site])
    actor = Actor(user_id=staff.id, role=Role.staff, site_ids=frozenset({ny_site.id}))
    schedule = _schedule(db, resident, start_date=dt.date(2026, 11, 2))
    now = dt.datetime(2026, 11, 2, 4, 0, tzinfo=dt.UTC)
    _run(writers, scheduler.generate_ahead, now)
    first = _visits(db, schedule)[0]
    with writers() as session:
        visits.record_visit(
            session=session,
            actor=actor,
            visit_id=first.id,
            data=VisitRecord(outcome=VisitOutcome.concern, notes="short of breath"),
            now=first.window_start,
        )
        session.commit()
    db.rollback()
    visit = db.get(Visit, first.id)
    assert visit is not None and visit.status is VisitStatus.completed
    incident = db.get(Incident, visit.incident_id)
    assert incident is not None and incident.kind is IncidentKind.welfare_concern
    assert incident.status == "open" and not incident.escalation  # staff handle it
    assert incident.note is None  # the visit's notes stay on the visit
    assert not db.exec(select(OutboxMessage).where(OutboxMessage.incident_id == incident.id)).all()


def test_not_home_twice_in_a_row_alerts_the_manager(
    db: Session,
    writers: sessionmaker[Session],
    ny_site: Site,
    resident_at: Callable[..., Resident],
    make_user: Callable[..., Any],
) -> None:
    manager = make_user("manager", [ny_site], phone="+1 917 555 3000")
    staff = make_user("staff", [ny_site])
    actor = Actor(user_id=staff.id, role=Role.staff, site_ids=frozenset({ny_site.id}))
    schedule = _schedule(db, resident_at(ny_site), start_date=dt.date(2026, 11, 2))
    _run(writers, scheduler.generate_ahead, dt.datetime(2026, 11, 2, 4, 0, tzinfo=dt.UTC))
    first, second, third = _visits(db, schedule)[:3]

    def record(visit: Visit, outcome: VisitOutcome) -> None:
        with writers() as session:
            visits.record_visit(
                session=session,
                actor=actor,
                visit_id=visit.id,
                data=VisitRecord(outcome=outcome),
                now=visit.window_start,
            )
            session.commit()

    def alerts() -> int:
        db.rollback()
        return len(
            db.exec(
                select(OutboxMessage).where(
                    OutboxMessage.user_id == manager.id,
                    OutboxMessage.template == "visit_not_home",
                )
            ).all()
        )

    record(first, VisitOutcome.not_home)
    assert alerts() == 0
    record(second, VisitOutcome.not_home)
    assert alerts() == 1
    record(third, VisitOutcome.well)
    assert alerts() == 1


# --- consent reviews ----------------------------------------------------------------------------


def test_consent_review_reminders_at_60_and_30_days_then_unverified(
    db: Session,
    writers: sessionmaker[Session],
    ny_site: Site,
    resident_at: Callable[..., Resident],
    make_user: Callable[..., Any],
) -> None:
    staff = make_user("staff", [ny_site], phone="+1 917 555 2000")
    resident = resident_at(ny_site)
    consent = consents.consents_of(db, resident.id)[0]
    due = consent.review_due
    db.rollback()

    def notices() -> list[str]:
        db.rollback()
        return [
            m.params["stage"]
            for m in db.exec(
                select(OutboxMessage)
                .where(OutboxMessage.user_id == staff.id)
                .order_by(col(OutboxMessage.created_at))
            ).all()
        ]

    assert _run(writers, scheduler.consent_reviews, due - dt.timedelta(days=61)) == 0
    assert _run(writers, scheduler.consent_reviews, due - dt.timedelta(days=60)) == 1
    assert _run(writers, scheduler.consent_reviews, due - dt.timedelta(days=45)) == 0
    assert _run(writers, scheduler.consent_reviews, due - dt.timedelta(days=30)) == 1
    assert _run(writers, scheduler.consent_reviews, due - dt.timedelta(days=1)) == 0
    assert notices() == ["60", "30"]
    assert _run(writers, scheduler.consent_reviews, due + dt.timedelta(minutes=1)) == 1
    assert _run(writers, scheduler.consent_reviews, due + dt.timedelta(days=3)) == 0
    assert notices() == ["60", "30", "overdue"]
    flagged = db.exec(select(AuditEntry).where(AuditEntry.action == "consent.unverified")).all()
    assert len(flagged) == 1 and flagged[0].entity_id == str(consent.id)
    # The state is derived from the review date and the time, never stored by the job.
    live = consents.consents_of(db, resident.id)
    assert consents.derive_state(live, due - dt.timedelta(minutes=1)) == "active"
    assert consents.derive_state(live, due + dt.timedelta(minutes=1)) == "unverified"
    assert consents.state_of(db, resident) == "active"  # now: given today, due in a year


def test_run_jobs_twice_at_the_same_instant_changes_nothing_the_second_time(
    db: Session,
    writers: sessionmaker[Session],
    ny_site: Site,
    resident_at: Callable[..., Resident],
    make_user: Callable[..., Any],
) -> None:
    make_user("manager", [ny_site], phone="+1 917 555 3000")
    _schedule(db, resident_at(ny_site), start_date=dt.date(2026, 11, 2))
    now = dt.datetime(2026, 11, 3, 18, 0, tzinfo=dt.UTC)
    with writers() as session:
        session.exec(select(Visit)).all()
    first = scheduler.run_jobs(writers, now - dt.timedelta(days=2))
    assert first["generate"] > 0
    scheduler.run_jobs(writers, now)
    db.rollback()
    snapshot = sorted((v.id, v.status) for v in db.exec(select(Visit)).all())
    outbox = len(db.exec(select(OutboxMessage)).all())
    db.rollback()
    second = scheduler.run_jobs(writers, now)
    assert second == {k: 0 for k in second}
    db.rollback()
    assert sorted((v.id, v.status) for v in db.exec(select(Visit)).all()) == snapshot
    assert len(db.exec(select(OutboxMessage)).all()) == outbox


def test_the_worker_runs_the_jobs_through_apscheduler(
    db: Session,
    settings: Settings,
    writers: sessionmaker[Session],
    ny_site: Site,
    resident_at: Callable[..., Resident],
) -> None:
    import threading
    import time

    from welfare.worker import run_worker

    schedule = _schedule(db, resident_at(ny_site), start_date=dt.date.today())
    db.rollback()
    stop = threading.Event()
    thread = threading.Thread(target=run_worker, args=(settings, writers, stop), daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    generated: list[Visit] = []
    while time.monotonic() < deadline and not generated:
        time.sleep(0.2)
        generated = _visits(db, schedule)
        db.rollback()
    stop.set()
    thread.join(timeout=15)
    assert not thread.is_alive()
    assert len(generated) >= 13  # two weeks ahead, daily


def test_withdrawal_erases_the_residents_phone_from_checkin_calls(
    db: Session,
    writers: sessionmaker[Session],
    settings: Settings,
    ny_site: Site,
    resident_at: Callable[..., Resident],
) -> None:
    resident = resident_at(ny_site, phone="+1 917 555 1234")
    schedule = _schedule(db, resident, kind="automated_call", start_date=dt.date(2026, 11, 2))
    start = dt.datetime(2026, 11, 2, 15, 0, tzinfo=dt.UTC)
    _run(writers, scheduler.generate_ahead, start - dt.timedelta(days=1))
    assert _run(writers, scheduler.run_checkin_calls, start) == 1
    db.rollback()
    (row,) = db.exec(select(OutboxMessage)).all()
    assert row.to_phone == "+19175551234" and row.template == "checkin_call"
    assert "+1917" not in str(row.params)
    consent = consents.consents_of(db, resident.id)[0]
    consents.withdraw_consent(
        session=db,
        actor=SYSTEM,
        settings=settings,
        resident_id=resident.id,
        consent_id=consent.id,
    )
    db.commit()
    db.rollback()
    assert db.exec(select(OutboxMessage)).one().to_phone is None
    assert db.get(Resident, resident.id).phone is None  # type: ignore[union-attr]
    assert db.get(VisitSchedule, schedule.id).active is False  # type: ignore[union-attr]
