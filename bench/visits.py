"""Visit generation: `python bench/visits.py [--schedules N] [--days D] [--postgres-url URL]`.

Seeds N residents (default 10,000) with `welfare.seed`, gives each a welfare-visits consent and
one schedule (a mix of daily, Monday-and-Thursday, fortnightly and monthly rules in the site's
timezone), then times `welfare.visits.scheduler.generate_ahead()` (the job the scheduler runs)
over D days (default 90) in one transaction, and once more to show the idempotent re-run.
Prints seconds and occurrences per second. Never part of the test run.

PostgreSQL runs in a scratch schema of the given database, dropped afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import func, insert, text
from sqlalchemy.engine import make_url
from sqlmodel import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.lookup import postgres_scratch
from welfare.consent.models import Consent
from welfare.db import make_engine, make_sessionmaker, session_scope, upgrade_database, utcnow
from welfare.residents.models import Resident
from welfare.seed import seed_residents
from welfare.visits.models import Visit, VisitSchedule
from welfare.visits.scheduler import generate_ahead

RULES = (
    "FREQ=DAILY",
    "FREQ=WEEKLY;BYDAY=MO,TH",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=WE",
    "FREQ=MONTHLY;BYMONTHDAY=1,15",
)
KINDS = ("home_visit", "phone_checkin", "home_visit", "phone_checkin")


def arrange(url: str, count: int) -> None:
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
    print(f"  seeded {count:,} residents and schedules in {time.perf_counter() - started:.1f} s")
    engine.dispose()


def bench(url: str, count: int, days: int) -> None:
    print(f"\n== {make_url(url).get_backend_name()}: {count:,} schedules over {days} days")
    arrange(url, count)
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    now = utcnow()
    horizon = dt.timedelta(days=days)
    for label in ("first run", "re-run"):
        started = time.perf_counter()
        with session_scope(factory) as session:
            created = generate_ahead(session, now, horizon)
        seconds = time.perf_counter() - started
        rate = created / seconds if seconds else 0.0
        print(
            f"  {label:<10} {created:>9,} occurrences in {seconds:7.2f} s"
            f"   = {rate:>10,.0f} occurrences/s"
        )
    with factory() as session:
        total = session.exec(select(func.count()).select_from(Visit)).one()
    print(f"  visits in the table: {total:,}")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--database-url", help="default: a new SQLite file in a temp directory")
    parser.add_argument("--postgres-url", help="also run on PostgreSQL (in a scratch schema)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        bench(url, args.schedules, args.days)
        if args.postgres_url:
            pg_url, drop = postgres_scratch(args.postgres_url)
            try:
                bench(pg_url, args.schedules, args.days)
            finally:
                drop()


if __name__ == "__main__":
    main()
