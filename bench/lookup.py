"""Guard lookup latency: `python bench/lookup.py [--residents N] [--postgres-url URL]`.

`--database-url URL --reuse` times a database seeded before (`welfare seed --residents N`), so
a large run can be timed again without seeding it again.

Seeds N residents (default 100,000) with `welfare.seed` (which also indexes them), then times
`welfare.lookup.service.lookup()` (the function the route calls, audit entry and commit included,
as a guard of the site) for unit, name, typo-name and description queries, one HTTP figure through
the app, and a baseline: a plain LIKE '%1609%' scan over resident and household rows in the same
database. Prints p50 and p99 per kind. Never part of the test run.

PostgreSQL runs in a scratch schema of the given database, dropped afterwards. Its seeding is
a bulk load (`bulk_load`): the same rows through COPY, the lookup's GIN indexes built once at the
end from their own definitions, so 1,000,000 residents seed in minutes rather than hours.
"""

from __future__ import annotations

import argparse
import random
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from welfare.authz import Actor, Permission, Role, visible_site_ids
from welfare.db import (
    WalCheckpointer,
    make_engine,
    make_sessionmaker,
    normalise_url,
    session_scope,
    upgrade_database,
)
from welfare.lookup import service
from welfare.lookup.index import TRIGRAM_INDEXES
from welfare.lookup.service import lookup
from welfare.residents.models import Resident
from welfare.seed import BENCH_SITE_NAME, seed_residents
from welfare.sites.models import Site

TYPOS = ("swap", "drop", "double")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def misspell(name: str, rng: random.Random) -> str:
    """One or two typos in the longer words of a Latin name: 'Wang Wei' -> 'Wnag Wei'."""
    words = name.split()
    for index in rng.sample(range(len(words)), k=min(len(words), rng.choice((1, 2)))):
        word = words[index]
        if len(word) < 4:
            continue
        i = rng.randrange(1, len(word) - 1)
        kind = rng.choice(TYPOS)
        if kind == "swap":
            word = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        elif kind == "drop":
            word = word[:i] + word[i + 1 :]
        else:
            word = word[:i] + word[i] + word[i:]
        words[index] = word
    return " ".join(words)


def queries(session: Session, rng: random.Random, count: int) -> dict[str, list[str]]:
    sample = (
        session.connection()
        .execute(
            text(
                "SELECT r.full_name, r.aliases, h.building, h.unit FROM resident r "
                "JOIN household h ON h.id = r.household_id ORDER BY r.id LIMIT 5000"
            )
        )
        .all()
    )
    latin = [r[0] for r in sample if r[0] and r[0].isascii()]
    other = [r[0] for r in sample if r[0] and not r[0].isascii()]
    units = [(r[2], r[3]) for r in sample]

    def unit_query() -> str:
        building, unit = rng.choice(units)
        return rng.choice(
            [f"{building}-{unit}", unit, f"Building {building} {unit}", f"B{building}-{unit}"]
        )

    descriptions = [
        "grey coat",
        "walking stick",
        "red scarf",
        "hearing aid",
        "beige raincoat glasses",
        "wheelchair",
        "purple cardigan",
        "brown slippers limp",
    ]
    return {
        "unit": [unit_query() for _ in range(count)],
        "name": [rng.choice(latin + other) for _ in range(count)],
        "typo-name": [misspell(rng.choice(latin), rng) for _ in range(count)],
        "description": [rng.choice(descriptions) for _ in range(count)],
    }


def timed(run: Callable[[], object], times: int) -> list[float]:
    out = []
    for _ in range(times):
        started = time.perf_counter()
        run()
        out.append((time.perf_counter() - started) * 1000)
    return out


def report(label: str, samples: list[float], baseline: float | None = None) -> None:
    p50, p99 = percentile(samples, 0.50), percentile(samples, 0.99)
    ratio = f"   p99 = {baseline / p99:5.1f}x faster than the LIKE scan" if baseline else ""
    print(f"  {label:<24} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   (n={len(samples)}){ratio}")


def _copy_executemany(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
    """A plain multi-row INSERT (no ON CONFLICT, no RETURNING) as COPY, with the parameters
    SQLAlchemy prepared for it (defaults filled in, every value through its column type's bind
    processing): the same rows, some ten times faster than executemany's one INSERT per row."""
    compiled = context.compiled
    insert = compiled.statement if compiled is not None else None
    if (
        not context.isinsert
        or not parameters
        or not isinstance(parameters[0], dict)
        or insert is None
        or getattr(insert, "_post_values_clause", None) is not None
        or getattr(insert, "_returning", ())
    ):
        return False
    table = insert.table
    names = list(parameters[0])
    if not set(names) <= set(table.c.keys()):
        return False
    columns = ", ".join(f'"{table.c[n].name}"' for n in names)
    with cursor.copy(f'COPY "{table.name}" ({columns}) FROM STDIN') as copy:
        for row in parameters:
            copy.write_row([row[n] for n in names])
    return True


@contextmanager
def bulk_load(engine: Engine) -> Iterator[None]:
    """Seed PostgreSQL as a bulk load: plain INSERTs go as COPY, and the lookup's GIN indexes
    are dropped first and built again afterwards from the definitions they had (fastupdate
    off included), so they end as production has them, only freshly packed. Upserts (the
    vocabulary's reference counts) run as they do in production."""
    with engine.begin() as connection:
        indexes = connection.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes "
                "WHERE schemaname = current_schema() AND indexname IN :names"
            ).bindparams(bindparam("names", expanding=True)),
            {"names": list(TRIGRAM_INDEXES)},
        ).all()
        for name, _ in indexes:
            connection.execute(text(f'DROP INDEX "{name}"'))
    event.listen(engine, "do_executemany", _copy_executemany)
    try:
        yield
    finally:
        event.remove(engine, "do_executemany", _copy_executemany)
        with engine.begin() as connection:
            connection.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
            for _, definition in indexes:
                connection.execute(text(definition))


@dataclass
class Parts:
    """One kind's lookups timed part by part (milliseconds), each part on its own: `search`
    the candidate statements and their ranking (`service.find`), `cards` the cards' statement
    and checks (`service._cards`, which the card page shares), `fixed` what every lookup pays
    whatever it finds: a transaction of its own holding only the lookup's audit entries, from
    taking the connection to the commit. `statements` is how many statements a whole lookup
    sends, commit included."""

    search: list[float] = field(default_factory=list)
    cards: list[float] = field(default_factory=list)
    fixed: list[float] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)


@dataclass
class Figures:
    """One database's lookup times in milliseconds, per kind of query, and the LIKE scan's."""

    backend: str
    residents: int
    reused: bool
    seed_seconds: float
    checkpointed: bool  # False on PostgreSQL when the user may not run CHECKPOINT
    kinds: dict[str, list[float]]
    baseline: list[float]
    http: list[float] = field(default_factory=list)
    parts: dict[str, Parts] = field(default_factory=dict)

    def ratio(self, kind: str) -> float:
        """How many times faster the kind's p99 is than the LIKE scan's p99."""
        return percentile(self.baseline, 0.99) / percentile(self.kinds[kind], 0.99)


def time_parts(engine: Engine, factory: Any, guard: Actor, qs: list[str]) -> Parts:
    """The lookups of `qs` again, part by part (see `Parts`), after a whole lookup of each
    that counts its statements (a commit is one round trip too)."""
    sent = [0]

    def count(*_: Any) -> None:
        sent[0] += 1

    parts = Parts()
    sites = visible_site_ids(guard, Permission.guard_ops)
    for q in qs:
        sent[0] = 0
        event.listen(engine, "before_cursor_execute", count)
        event.listen(engine, "commit", count)
        try:
            with session_scope(factory) as session:
                lookup(session=session, actor=guard, q=q)
        finally:
            event.remove(engine, "before_cursor_execute", count)
            event.remove(engine, "commit", count)
        parts.statements.append(sent[0])
        with factory() as session:  # read only: rolled back at close, nothing to commit
            started = time.perf_counter()
            hits, kind = service.find(session=session, sites=sites, q=q)
            found = time.perf_counter()
            cards = service._cards(session, guard, hits, 10)
            shown = time.perf_counter()
        parts.search.append((found - started) * 1000)
        parts.cards.append((shown - found) * 1000)
        started = time.perf_counter()
        with session_scope(factory) as session:
            service.audit_lookup(session=session, actor=guard, by_tag=False, kind=kind, shown=cards)
        parts.fixed.append((time.perf_counter() - started) * 1000)
    return parts


def measure(url: str, residents: int, count: int, http: bool, reuse: bool = False) -> Figures:
    """Seed `residents` (or reuse the benchmark site) in the database at `url` and time
    `count` lookups per kind, the LIKE scan, and (if `http`) the lookup through the app."""
    upgrade_database(url)
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    seed_seconds = 0.0
    if reuse:
        with session_scope(factory) as session:
            site = session.exec(select(Site).where(Site.name == BENCH_SITE_NAME)).one()
            residents = session.exec(
                select(func.count()).select_from(Resident).where(Resident.site_id == site.id)
            ).one()
    else:
        started = time.perf_counter()
        postgres = engine.dialect.name == "postgresql"
        with bulk_load(engine) if postgres else nullcontext(), session_scope(factory) as session:
            site = seed_residents(session, residents)
        seed_seconds = time.perf_counter() - started
    # Start from a steady state, as a registry in use is: not a log full of seeding for the
    # checkpointer (and, on PostgreSQL, autovacuum) to work through while the lookups are timed.
    checkpointed = True
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()  # outside a transaction, as a checkpoint must be
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    else:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
            try:
                connection.exec_driver_sql("CHECKPOINT")
            except DBAPIError:  # not a superuser (nor pg_checkpoint): the figures may be noisier
                checkpointed = False
    guard = Actor(user_id=uuid.uuid4(), role=Role.guard, site_ids=frozenset({site.id}))
    rng = random.Random(1609)
    with factory() as session:
        sets = queries(session, rng, count)

    def call(q: str) -> None:
        with session_scope(factory) as session:
            lookup(session=session, actor=guard, q=q)

    for q in sets["name"][:20] + sets["unit"][:20]:  # warm the caches
        call(q)
    # The baseline: what the lookup would cost as a plain scan of the registry's rows.
    like = text("SELECT h.id FROM household h WHERE h.building || '-' || h.unit LIKE :p")

    def scan() -> None:
        with engine.connect() as connection:
            connection.execute(like, {"p": "%1609%"}).all()

    scan()
    baseline = timed(scan, max(20, count // 5))
    # As in the app: SQLite's log is checkpointed by a thread of its own, not by a lookup.
    checkpointer = WalCheckpointer(engine).start() if engine.dialect.name == "sqlite" else None
    kinds: dict[str, list[float]] = {}
    for kind, qs in sets.items():
        samples = []
        for q in qs:
            samples += timed(lambda q=q: call(q), 1)
        kinds[kind] = samples
    parts = {kind: time_parts(engine, factory, guard, qs) for kind, qs in sets.items()}
    if checkpointer is not None:
        checkpointer.close()
    figures = Figures(
        backend=make_url(url).get_backend_name(),
        residents=residents,
        reused=reuse,
        seed_seconds=seed_seconds,
        checkpointed=checkpointed,
        kinds=kinds,
        baseline=baseline,
        parts=parts,
    )
    if http:
        figures.http = http_bench(url, site.id, sets, count)
    engine.dispose()
    return figures


def bench(url: str, residents: int, count: int, http: bool, reuse: bool = False) -> None:
    figures = measure(url, residents, count, http, reuse)
    reused = " (reused)" if reuse else ""
    print(f"\n== {figures.backend} with {figures.residents:,} residents{reused}")
    if not reuse:
        how = " (COPY, GIN indexes built after)" if figures.backend == "postgresql" else ""
        print(f"  seeded and indexed in {figures.seed_seconds:.1f} s{how}")
    if not figures.checkpointed:
        print("  (no CHECKPOINT: the database user may not run one)")
    base_p99 = percentile(figures.baseline, 0.99)
    print("  lookup() (audit entry and commit included):")
    everything: list[float] = []
    for kind, samples in figures.kinds.items():
        everything += samples
        report(kind, samples, base_p99)
    report("all kinds", everything, base_p99)
    report("baseline LIKE '%1609%'", figures.baseline)
    print(
        f"  where a lookup's time goes (each part timed on its own; LIKE p99 / 10 = "
        f"{base_p99 / 10:.2f} ms):"
    )
    for kind, parts in figures.parts.items():
        statements = sum(parts.statements) / len(parts.statements)
        print(f"  {kind} ({statements:.1f} statements a lookup, commit included)")
        report("  search (find)", parts.search)
        report("  cards", parts.cards)
        report("  audit entry + commit", parts.fixed)
    fixed_p99 = percentile([t for p in figures.parts.values() for t in p.fixed], 0.99)
    if fixed_p99 > base_p99 / 10:
        print(
            f"  the fixed cost alone (audit entry + commit, p99 {fixed_p99:.2f} ms) exceeds "
            f"LIKE p99 / 10 ({base_p99 / 10:.2f} ms): no lookup can be 10x faster here"
        )
    if figures.http:
        report("HTTP GET /api/v1/lookup", figures.http)


def http_bench(url: str, site_id: uuid.UUID, sets: dict[str, list[str]], count: int) -> list[float]:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from welfare.settings import Settings
    from welfare.users import service as users
    from welfare.users.models import UserCreate

    settings = Settings(
        database_url=url,
        secret_key=secrets.token_hex(32),
        run_worker_in_process=False,
        _env_file=None,  # type: ignore[call-arg]
    )
    app = create_app(settings)
    password = secrets.token_urlsafe(16)
    with session_scope(app.state.sessionmaker) as session:
        user = users.create_user(
            session=session,
            actor=Actor.system(),
            data=UserCreate(
                username=f"bench-{uuid.uuid4().hex[:8]}",
                display_name="bench guard",
                role=Role.guard,
                password=password,
                site_ids=[site_id],
            ),
        )
        username = user.username
    with TestClient(app) as client:
        token = client.post(
            "/api/v1/auth/token", data={"username": username, "password": password}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        mixed = [q for qs in sets.values() for q in qs[: max(1, count // 4)]]
        for q in mixed[:20]:
            client.get("/api/v1/lookup", params={"q": q}, headers=headers)
        samples = []
        for q in mixed:
            samples += timed(
                lambda q=q: client.get("/api/v1/lookup", params={"q": q}, headers=headers), 1
            )
    app.state.engine.dispose()
    return samples


def postgres_scratch(base: str) -> tuple[str, Callable[[], None]]:
    schema = f"bench_lookup_{uuid.uuid4().hex[:8]}"
    admin = make_engine(normalise_url(base))
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(normalise_url(base)).update_query_dict({"options": f"-csearch_path={schema}"})

    def drop() -> None:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return url.render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--residents", type=int, default=100_000)
    parser.add_argument("--database-url", help="default: a new SQLite file in a temp directory")
    parser.add_argument("--postgres-url", help="also run on PostgreSQL (in a scratch schema)")
    parser.add_argument("--queries", type=int, default=400, help="queries per kind")
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="time the benchmark site already in --database-url (e.g. from `welfare seed "
        "--residents N`) instead of seeding N more; only with --database-url",
    )
    args = parser.parse_args()
    if args.reuse and not args.database_url:
        parser.error("--reuse needs --database-url")
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        bench(url, args.residents, args.queries, not args.no_http, args.reuse)
        if args.postgres_url:
            pg_url, drop = postgres_scratch(args.postgres_url)
            try:
                bench(pg_url, args.residents, args.queries, not args.no_http)
            finally:
                drop()


if __name__ == "__main__":
    main()
