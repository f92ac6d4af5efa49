"""The performance targets in one table: `python bench/all.py [--postgres-url URL] [--quick]`.

Runs each bench briefly, through the function each bench's own command line calls, and prints
one row per measure: the figure, the baseline measured in the same run where the target is a
ratio, the ratio, the target, and "met" or "MISSED". Then the machine (cores, load average
before and after) and the command. Exits 1 when a target is missed (or a bench failed), 0 when
every target measured is met. Without `--postgres-url` the PostgreSQL rows say "skipped".

What runs, at which size (`--quick` where it differs):

- bench/report_cost.py: 50 found reports (20) on each database, after 5 warm-up reports; CPU
  per report (request and worker round) against the one-row-insert app, and the statements.
  Neither depends on the registry's size, so only as many residents as reports are seeded.
- bench/response.py: 20 concurrent reporters, 40 reports (20: one round), on each database;
  one reporter, 40 reports one after another (20), on SQLite. Provider latency 150 ms. Only the
  report -> first SMS p99 is read; its one-row-insert baseline is not run (no ratio is asked).
- bench/load.py: PostgreSQL only, two API processes and two bare-SELECT processes, 5,000
  residents (lookup by unit and the found report barely depend on the size), concurrency 16,
  10 s per scenario (4 s) after a 1 s warm-up.
- bench/visits.py: 10,000 schedules (the size the targets name), generated over the scheduler's
  rolling window (visit rows exist only 14 days ahead; calendars further out expand the
  schedules' rules), a 90-day calendar, on SQLite, and on PostgreSQL unless `--quick`; the
  calendar 30 calls (15), the month past the window and the report 6 calls (3).
- bench/lookup.py: 100,000 residents (the LIKE scan grows with the registry, the lookup should
  not, so the ratio needs the size), 100 queries per kind (50), on each database; no HTTP.

bench/console_board.py has no target in the table and is not run. Never part of the
test run. PostgreSQL runs in scratch schemas (bench/load.py: a scratch database) beside the
given URL's, dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import load as load_bench
from bench import lookup as lookup_bench
from bench import report_cost
from bench import response as response_bench
from bench import visits as visits_bench
from bench.lookup import postgres_scratch
from welfare.visits.scheduler import HORIZON

SKIPPED = "skipped (no --postgres-url)"


@dataclass
class Row:
    measure: str
    database: str
    figure: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    met: bool | None = None  # None: not measured (skipped)


@dataclass
class Sizes:
    reports: int
    concurrent_samples: int
    single_samples: int
    load_residents: int
    load_seconds: float
    visit_schedules: int
    visit_days: int
    visits_on_postgres: bool
    calendar_samples: int
    lookup_residents: int
    lookup_queries: int


FULL = Sizes(50, 40, 40, 5_000, 10.0, 10_000, 90, True, 30, 100_000, 100)
QUICK = Sizes(20, 20, 20, 5_000, 4.0, 10_000, 90, False, 15, 100_000, 50)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def databases(postgres_url: str | None) -> list[tuple[str, str | None]]:
    """(label, the PostgreSQL URL or None for SQLite); PostgreSQL always listed."""
    return [("SQLite", None), ("PostgreSQL", postgres_url)]


def cost_rows(postgres_url: str | None, sizes: Sizes) -> list[Row]:
    rows = []
    for label, url in databases(postgres_url):
        cpu = "CPU per found report vs one-row insert"
        statements = "SQL statements per found report"
        if label == "PostgreSQL" and url is None:
            rows += [Row(cpu, label, SKIPPED), Row(statements, label, SKIPPED)]
            continue
        f = report_cost.measure(url, sizes.reports)
        ratio = f["report_ms"] / f["baseline_ms"]
        total = f["request_statements"] + f["worker_statements"]
        rows.append(
            Row(
                cpu,
                label,
                f"{f['report_ms']:.2f} ms",
                f"{f['baseline_ms']:.2f} ms",
                f"{ratio:.1f}x",
                "<= 8x",
                ratio <= 8,
            )
        )
        split = f"{total:.0f} ({f['request_statements']:.0f} + {f['worker_statements']:.0f})"
        rows.append(Row(statements, label, split, target="<= 14", met=total <= 14))
    return rows


def response_rows(postgres_url: str | None, sizes: Sizes) -> list[Row]:
    rows = []
    for label, url in databases(postgres_url):
        measure = "report -> first SMS p99, 20 concurrent reporters"
        limit = 0.250 if label == "SQLite" else 0.300
        if label == "PostgreSQL" and url is None:
            rows.append(Row(measure, label, SKIPPED))
            continue
        kind = "sqlite" if url is None else "postgresql"
        result = response_bench.measure(
            kind, url, 20, sizes.concurrent_samples, 0.15, baseline=False
        )
        note = f" ({result.refused} refused)" if result.refused else ""
        rows.append(
            Row(
                measure,
                label,
                ms(result.sms_p99) + note,
                target=f"<= {limit * 1000:.0f} ms",
                met=result.sms_p99 <= limit and not result.refused,
            )
        )
    result = response_bench.measure("sqlite", None, 1, sizes.single_samples, 0.15, baseline=False)
    rows.append(
        Row(
            "report -> first SMS p99, one reporter",
            "SQLite",
            ms(result.sms_p99),
            target="<= 15 ms",
            met=result.sms_p99 <= 0.015 and not result.refused,
        )
    )
    return rows


def load_rows(postgres_url: str | None, sizes: Sizes) -> list[Row]:
    names = {"lookup": "GET /api/v1/lookup", "found": "POST found report"}
    if postgres_url is None:
        return [
            Row(f"load, 2 API processes: {names[n]} {what} vs bare SELECT", "PostgreSQL", SKIPPED)
            for n in names
            for what in ("p99", "throughput")
        ]
    load = load_bench.measure(postgres_url, sizes.load_residents, sizes.load_seconds, 16)
    base = load.scenarios["baseline"]
    rows = []
    for name, label in names.items():
        row = load.scenarios[name]
        errors = f" ({row['errors']:.0f} errors)" if row["errors"] else ""
        p99 = load.p99_ratio(name)
        rows.append(
            Row(
                f"load, 2 API processes: {label} p99 vs bare SELECT",
                "PostgreSQL",
                f"{row['p99']:.1f} ms{errors}",
                f"{base['p99']:.1f} ms",
                f"{p99:.2f}x",
                "<= 2x",
                p99 <= 2 and not row["errors"],
            )
        )
        lower = load.throughput_ratio(name)
        rows.append(
            Row(
                f"load, 2 API processes: {label} throughput vs bare SELECT",
                "PostgreSQL",
                f"{row['rps']:.0f} req/s",
                f"{base['rps']:.0f} req/s",
                f"{lower:.2f}x lower",
                "<= 2.5x lower",
                lower <= 2.5,
            )
        )
    return rows


def visit_rows(postgres_url: str | None, sizes: Sizes) -> list[Row]:
    n, days = sizes.visit_schedules, sizes.visit_days
    tick = f"scheduler tick over {n:,} schedules (a day later)"
    calendar = f"manager's {days}-day calendar of a {n:,}-schedule site, p99"
    far = "the same site's calendar for a month wholly past the window, p99"
    report = "30-day visit completion report, p99"
    generation = f"visit generation, {n:,} schedules x the scheduler's {HORIZON.days}-day window"
    rows = []
    for label, url in databases(postgres_url):
        if label == "PostgreSQL" and (url is None or not sizes.visits_on_postgres):
            why = SKIPPED if url is None else "skipped (--quick)"
            rows += [Row(m, label, why) for m in (tick, calendar, far, report, generation)]
            continue
        with tempfile.TemporaryDirectory() as tmp:
            if url is None:
                f = visits_bench.measure(
                    f"sqlite:///{Path(tmp) / 'visits.db'}", n, days, sizes.calendar_samples
                )
            else:
                pg_url, drop = postgres_scratch(url)
                try:
                    f = visits_bench.measure(pg_url, n, days, sizes.calendar_samples)
                finally:
                    drop()
        calendar_p99 = visits_bench.percentile(f.calendar, 0.99)
        far_p99 = visits_bench.percentile(f.far_calendar, 0.99)
        report_p99 = visits_bench.percentile(f.report, 0.99)
        rate = f"{f.created:,} visits, {f.created / f.generation_seconds:,.0f}/s"
        rows += [
            Row(tick, label, f"{f.tick_seconds:.2f} s", target="<= 2 s", met=f.tick_seconds <= 2),
            Row(calendar, label, ms(calendar_p99), target="<= 150 ms", met=calendar_p99 <= 0.15),
            Row(far, label, f"{ms(far_p99)} ({f.far_planned:,} planned)", target="(none)"),
            Row(report, label, ms(report_p99), target="<= 500 ms", met=report_p99 <= 0.5),
            Row(
                generation,
                label,
                f"{f.generation_seconds:.1f} s ({rate})",
                target="<= 5 s",
                met=f.generation_seconds <= 5,
            ),
        ]
    return rows


def lookup_rows(postgres_url: str | None, sizes: Sizes) -> list[Row]:
    kinds = ("unit", "name", "typo-name", "description")
    n = sizes.lookup_residents
    rows = []
    for label, url in databases(postgres_url):
        if label == "PostgreSQL" and url is None:
            rows += [Row(f"lookup p99 at {n:,} residents: {k}", label, SKIPPED) for k in kinds]
            continue
        with tempfile.TemporaryDirectory() as tmp:
            if url is None:
                f = lookup_bench.measure(
                    f"sqlite:///{Path(tmp) / 'lookup.db'}", n, sizes.lookup_queries, False
                )
            else:
                pg_url, drop = postgres_scratch(url)
                try:
                    f = lookup_bench.measure(pg_url, n, sizes.lookup_queries, False)
                finally:
                    drop()
        like = lookup_bench.percentile(f.baseline, 0.99)
        for kind in kinds:
            ratio = f.ratio(kind)
            rows.append(
                Row(
                    f"lookup p99 at {n:,} residents: {kind}",
                    label,
                    f"{lookup_bench.percentile(f.kinds[kind], 0.99):.2f} ms",
                    f"{like:.2f} ms LIKE",
                    f"{ratio:.1f}x faster",
                    ">= 10x faster",
                    ratio >= 10,
                )
            )
        # What the ratio is made of: the search and its cards (what the index decides), and
        # what every lookup pays whatever it finds (its audit entries and the commit).
        parts = f.parts.values()
        found = [s + c for p in parts for s, c in zip(p.search, p.cards, strict=True)]
        fixed = lookup_bench.percentile([t for p in parts for t in p.fixed], 0.99)
        found_p99 = lookup_bench.percentile(found, 0.99)
        rows += [
            Row(
                "lookup p99, search and cards only (every kind)",
                label,
                f"{found_p99:.2f} ms",
                f"{like:.2f} ms LIKE",
                f"{like / found_p99:.1f}x faster",
                "(none)",
            ),
            Row(
                "lookup p99, its audit entries and commit only",
                label,
                f"{fixed:.2f} ms",
                f"{like:.2f} ms LIKE",
                f"{like / fixed:.1f}x faster",
                "(none)",
            ),
        ]
    return rows


BENCHES: tuple[tuple[str, Callable[[str | None, Sizes], list[Row]]], ...] = (
    ("bench/report_cost.py", cost_rows),
    ("bench/response.py", response_rows),
    ("bench/load.py", load_rows),
    ("bench/visits.py", visit_rows),
    ("bench/lookup.py", lookup_rows),
)

COLUMNS = ("measure", "database", "figure", "baseline", "ratio", "target", "")


def verdict(row: Row) -> str:
    if row.met is None:
        return "skipped" if row.figure.startswith("skipped") else ""
    return "met" if row.met else "MISSED"


def table(rows: list[Row]) -> str:
    cells = [COLUMNS] + [
        (r.measure, r.database, r.figure, r.baseline, r.ratio, r.target, verdict(r)) for r in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres-url", help="also run on PostgreSQL (scratch schemas)")
    parser.add_argument("--quick", action="store_true", help="fewer samples (see the docstring)")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    load_before = os.getloadavg()
    started = time.perf_counter()
    rows: list[Row] = []
    for name, bench in BENCHES:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        begun = time.perf_counter()
        try:
            rows += bench(args.postgres_url, sizes)
        except Exception:
            traceback.print_exc()
            rows.append(Row(f"{name} failed (traceback above)", "", "error", met=False))
        print(f"  {name} took {time.perf_counter() - begun:.0f} s", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg()
    print()
    print(table(rows))
    print()
    print(
        f"machine: {os.cpu_count()} cores; load average (1, 5, 15 min) "
        f"{' '.join(f'{x:.2f}' for x in load_before)} before, "
        f"{' '.join(f'{x:.2f}' for x in load_after)} after; run took {elapsed / 60:.1f} min"
    )
    command = ["python", "bench/all.py"]
    if args.postgres_url:  # without its password, if it has one
        shown = make_url(args.postgres_url).render_as_string(hide_password=True)
        command += ["--postgres-url", shown]
    command += ["--quick"] if args.quick else []
    print(f"command: {shlex.join(command)}")
    missed = [r for r in rows if r.met is False]
    print(f"{len(missed)} target(s) missed" if missed else "every target measured is met")
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
