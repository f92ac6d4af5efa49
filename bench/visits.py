"""Visits at scale: `python bench/visits.py [--schedules N] [--days D] [--postgres-url URL]`.

Seeds N residents (default 10,000) with `welfare.seed`, gives each a welfare-visits consent and
one schedule (a mix of daily, Monday-and-Thursday, fortnightly and monthly rules in the site's
timezone), then times `welfare.visits.scheduler.generate_ahead()` (the job the scheduler runs)
over the scheduler's rolling window (`scheduler.HORIZON`, 14 days: visit rows exist only that
far ahead), in one transaction, and once more to show the idempotent re-run. Prints seconds and
occurrences per second.

Then, on the visits so made, the figures the performance targets name at this size:

- the scheduler's tick a day later: every job of `welfare.visits.scheduler.JOBS`, each in its
  own transaction as `run_jobs` runs them (so every schedule is extended by a day, and the first
  day's visits fall overdue); and a steady tick 30 seconds after it;
- a manager's D-day calendar of the site (default 90): `welfare.visits.calendar_view.
  calendar_entries` for the site from now to now + D days, as the week and month pages ask it
  (the calendar's limit of 1,000 entries: visit rows, then the schedules' planned occurrences
  past the window), p50 and p99 over `--samples` calls (default 50); and a month that lies
  wholly past the window (from now + 60 days), where every entry is a planned occurrence;
- the 30-day completion report: `welfare.reports.visits.visit_completion` for the site over
  the 30 days that follow now (when visits fall due), p99 over `--samples` / 5 calls, after
  generation has carried on for those 30 days (the rows a month of ticks leaves; not timed).

Never part of the test run. PostgreSQL runs in a scratch schema of the given database, dropped
afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from sqlalchemy import Engine, func, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.lookup import postgres_scratch
from welfare.authz import Actor, Role
from welfare.consent.models import Consent
from welfare.db import make_engine, make_sessionmaker, session_scope, upgrade_database, utcnow
from welfare.process import freeze_startup_objects
from welfare.reports.visits import visit_completion
from welfare.residents.models import Resident
from welfare.seed import seed_residents
from welfare.visits.calendar_view import CALENDAR_LIMIT, calendar_entries
from welfare.visits.models import Visit, VisitSchedule
from welfare.visits.scheduler import HORIZON, JOBS, generate_ahead

FAR_MONTH = (dt.timedelta(days=60), dt.timedelta(days=90))  # wholly past the rolling window

RULES = (
    "FREQ=DAILY",
    "FREQ=WEEKLY;BYDAY=MO,TH",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=WE",
    "FREQ=MONTHLY;BYMONTHDAY=1,15",
)
KINDS = ("home_visit", "phone_checkin", "home_visit", "phone_checkin")


def arrange(url: str, count: int) -> tuple[uuid.UUID, float]:
    """The site and its schedules; returns the site's id and the seconds it took."""
    upgrade_database(url)
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    started = time.perf_counter()
    with session_scope(factory) as session:
        site = seed_residents(session, count)
        now = utcnow()
        residents = list(session.exec(select(Resident.id).where(Resident.site_id == site.id)))
        session.execute(
            insert(Consent),
            [
                {
                    "id": uuid.uuid4(),
                    "resident_id": r,
                    "given_by_kind": "resident",
                    "method": "written",
                    "scopes": ["welfare_visits"],
                    "given_at": now,
                    "review_due": now + dt.timedelta(days=365),
                    "created_at": now,
                }
                for r in residents
            ],
        )
        session.execute(
            insert(VisitSchedule),
            [
                {
                    "id": uuid.uuid4(),
                    "site_id": site.id,
                    "resident_id": r,
                    "kind": KINDS[i % len(KINDS)],
                    "rrule": RULES[i % len(RULES)],
                    "window_start": dt.time(9 + i % 8, 0),
                    "window_end": dt.time(10 + i % 8, 0),
                    "start_date": now.date(),
                    "active": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for i, r in enumerate(residents)
            ],
        )
    seconds = time.perf_counter() - started
    engine.dispose()
    return site.id, seconds


@dataclass
class Figures:
    """One database's figures; times in seconds."""

    backend: str
    schedules: int
    days: int
    seed_seconds: float
    created: int  # by the first run, over the scheduler's window
    generation_seconds: float
    rerun_created: int
    rerun_seconds: float
    visits: int  # in the table after both runs
    tick_seconds: float  # the tick a day later: every schedule extended by a day
    tick_jobs: dict[str, int]  # what each of its jobs did
    steady_tick_seconds: float  # the next tick, 30 seconds after it
    calendar: list[float]  # one call each
    calendar_rows: int  # visit rows among the entries
    calendar_planned: int  # planned occurrences among them
    far_calendar: list[float]  # a month wholly past the window
    far_planned: int
    report: list[float]
    report_due: int


def percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def scheduler_tick(factory: sessionmaker[Session], now: dt.datetime) -> dict[str, int]:
    """What `welfare.visits.scheduler.run_jobs` does each tick: every job in its own
    transaction."""
    results: dict[str, int] = {}
    for name, job in JOBS:
        with session_scope(factory) as session:
            results[name] = job(session, now)
    return results


def measure(url: str, count: int, days: int, samples: int = 50) -> Figures:
    """Seed `count` schedules in the database at `url` (migrated here) and time generation,
    the tick, the calendars and the report on them."""
    site_id, seed_seconds = arrange(url, count)
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    analyze(engine)
    now = utcnow()
    runs: list[tuple[int, float]] = []
    for _ in ("first run", "re-run"):
        started = time.perf_counter()
        with session_scope(factory) as session:
            created = generate_ahead(session, now)
        runs.append((created, time.perf_counter() - started))
    with factory() as session:
        total = session.exec(select(func.count()).select_from(Visit)).one()
    analyze(engine)
    day_later = now + dt.timedelta(days=1)
    started = time.perf_counter()
    tick_jobs = scheduler_tick(factory, day_later)
    tick = time.perf_counter() - started
    steady = timed(lambda: scheduler_tick(factory, day_later + dt.timedelta(seconds=30)))

    manager = Actor(user_id=uuid.uuid4(), role=Role.manager, site_ids=frozenset({site_id}))
    shown: list[list[object]] = []
    freeze_startup_objects()  # as `welfare serve` does before it takes requests

    def calendar(start: dt.datetime, end: dt.datetime) -> None:
        with session_scope(factory) as session:
            entries = calendar_entries(
                session=session,
                actor=manager,
                limit=CALENDAR_LIMIT,  # as the week and month pages ask
                start_from=start,
                start_to=end,
                now=day_later,
                site_id=site_id,
            )
            shown.append(list(entries.entries))

    near = partial(calendar, day_later, day_later + dt.timedelta(days=days))
    far = partial(calendar, day_later + FAR_MONTH[0], day_later + FAR_MONTH[1])
    near()  # warm the statement caches
    calendar_times = [timed(near) for _ in range(samples)]
    calendar_rows = sum(isinstance(e, Visit) for e in shown[-1])
    calendar_planned = len(shown[-1]) - calendar_rows
    far_times = [timed(far) for _ in range(max(1, samples // 5))]
    far_planned = sum(not isinstance(e, Visit) for e in shown[-1])

    # A month of ticks: the rows the report reads (not timed).
    with session_scope(factory) as session:
        generate_ahead(session, day_later, dt.timedelta(days=30) + HORIZON)
    analyze(engine)
    due: list[int] = []

    def report() -> None:
        with session_scope(factory) as session:
            completion = visit_completion(
                session=session, actor=manager, now=now + dt.timedelta(days=30), site_id=site_id
            )
            due.append(completion.total.due)

    report()
    report_times = [timed(report) for _ in range(max(1, samples // 5))]
    engine.dispose()
    return Figures(
        backend=make_url(url).get_backend_name(),
        schedules=count,
        days=days,
        seed_seconds=seed_seconds,
        created=runs[0][0],
        generation_seconds=runs[0][1],
        rerun_created=runs[1][0],
        rerun_seconds=runs[1][1],
        visits=total,
        tick_seconds=tick,
        tick_jobs=tick_jobs,
        steady_tick_seconds=steady,
        calendar=calendar_times,
        calendar_rows=calendar_rows,
        calendar_planned=calendar_planned,
        far_calendar=far_times,
        far_planned=far_planned,
        report=report_times,
        report_due=due[-1],
    )


def analyze(engine: Engine) -> None:
    """PostgreSQL plans from fresh statistics after a bulk change, as autovacuum would soon."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))


def bench(url: str, count: int, days: int, samples: int) -> None:
    print(f"\n== {make_url(url).get_backend_name()}: {count:,} schedules")
    f = measure(url, count, days, samples)
    print(f"  seeded {count:,} residents and schedules in {f.seed_seconds:.1f} s")
    for label, created, seconds in (
        (f"first run ({HORIZON.days} days)", f.created, f.generation_seconds),
        ("re-run", f.rerun_created, f.rerun_seconds),
    ):
        rate = created / seconds if seconds else 0.0
        print(
            f"  {label:<20} {created:>9,} occurrences in {seconds:7.2f} s"
            f"   = {rate:>10,.0f} occurrences/s"
        )
    print(f"  visits in the table: {f.visits:,}")
    jobs = ", ".join(f"{name} {n:,}" for name, n in f.tick_jobs.items())
    print(f"  scheduler tick a day later {f.tick_seconds:7.2f} s ({jobs})")
    print(f"  the next tick, 30 s later  {f.steady_tick_seconds:7.2f} s")
    print(
        f"  {days}-day calendar of the site: p50 {percentile(f.calendar, 0.5) * 1000:7.1f} ms"
        f"   p99 {percentile(f.calendar, 0.99) * 1000:7.1f} ms"
        f"   ({f.calendar_rows:,} visits and {f.calendar_planned:,} planned, n={len(f.calendar)})"
    )
    print(
        f"  a month past the window:   p50 {percentile(f.far_calendar, 0.5) * 1000:7.1f} ms"
        f"   p99 {percentile(f.far_calendar, 0.99) * 1000:7.1f} ms"
        f"   ({f.far_planned:,} planned, n={len(f.far_calendar)})"
    )
    print(
        f"  30-day completion report:   p50 {percentile(f.report, 0.5) * 1000:7.1f} ms"
        f"   p99 {percentile(f.report, 0.99) * 1000:7.1f} ms"
        f"   ({f.report_due:,} visits due, n={len(f.report)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--samples", type=int, default=50, help="calendar calls (report: / 5)")
    parser.add_argument("--database-url", help="default: a new SQLite file in a temp directory")
    parser.add_argument("--postgres-url", help="also run on PostgreSQL (in a scratch schema)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        bench(url, args.schedules, args.days, args.samples)
        if args.postgres_url:
            pg_url, drop = postgres_scratch(args.postgres_url)
            try:
                bench(pg_url, args.schedules, args.days, args.samples)
            finally:
                drop()


if __name__ == "__main__":
    main()
