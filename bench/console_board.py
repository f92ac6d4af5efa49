"""Console board latency: `python bench/console_board.py [--residents N] [--incidents K]`.

Seeds N residents (default 2,000) with `welfare.seed`, opens K found incidents (default 100; the
board shows up to 200) through the incident service, then times what the board's poll does
(the read model `welfare.incidents.staff_view.board`: the open incidents, their name card, and
the overdue check) and what the incident page reads (`staff_view.staff_incident`, audit entries
included), and counts the queries of one poll (it must not grow with K). Prints p50 and p99.
SQLite in a temporary file. Never part of the test run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlmodel import col, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event

from welfare.authz import Actor, Role
from welfare.consent.models import Consent
from welfare.db import make_engine, make_sessionmaker, session_scope, upgrade_database
from welfare.incidents import service as incidents
from welfare.incidents import staff_view
from welfare.incidents.models import IncidentCreate
from welfare.residents.models import Resident
from welfare.seed import seed_residents


def timed(runs: int, work: Callable[[], object]) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--residents", type=int, default=2000)
    parser.add_argument("--incidents", type=int, default=100)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        upgrade_database(url)
        factory = make_sessionmaker(make_engine(url))
        with session_scope(factory) as session:
            site = seed_residents(session, args.residents)
            site_id = site.id
        system = Actor.system()
        with session_scope(factory) as session:
            consented = session.exec(
                select(Resident.id)
                .join(Consent, col(Consent.resident_id) == Resident.id)
                .where(Resident.site_id == site_id)
                .limit(args.incidents)
            ).all()
            for resident_id in consented:
                incidents.open_incident(
                    session=session,
                    actor=system,
                    data=IncidentCreate(
                        resident_id=resident_id, client_request_id=uuid.uuid4().hex
                    ),
                )
        actor = Actor(user_id=uuid.uuid4(), role=Role.staff, site_ids=frozenset({site_id}))

        def poll() -> None:
            with session_scope(factory) as session:
                staff_view.board(session=session, actor=actor)

        with session_scope(factory) as session:
            statements: list[str] = []

            def count(*_args: object) -> None:
                statements.append("")

            engine = session.get_bind()
            event.listen(engine, "before_cursor_execute", count)
            shown = len(staff_view.board(session=session, actor=actor))
            event.remove(engine, "before_cursor_execute", count)
            first = incidents.list_incidents(
                session=session, actor=system, limit=1, offset=0, open_only=True
            )[0][0].id

        def page() -> None:
            with session_scope(factory) as session:
                staff_view.staff_incident(session=session, actor=actor, incident_id=first)

        p50, p99 = timed(args.runs, poll)
        print(f"board poll, {shown} open incidents: {len(statements)} queries")
        print(f"board poll, {shown} open incidents: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        p50, p99 = timed(args.runs, page)
        print(f"incident page data (audited reads): p50 {p50:.1f} ms, p99 {p99:.1f} ms")


if __name__ == "__main__":
    main()
