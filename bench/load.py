"""Load on PostgreSQL with two API processes: `python bench/load.py --postgres-url URL`.

Seeds N residents (default 20,000) into a scratch database next to the one in the URL (created
and dropped here), starts two `welfare serve` processes and, as the baseline, two processes of a
bare FastAPI app whose one endpoint does one indexed SELECT through the same engine settings.
Then drives each scenario for a fixed time at a fixed concurrency, spread over both processes:

- baseline:   GET /bare?unit=...            (one indexed SELECT, no auth, no audit)
- lookup:     GET /api/v1/lookup?q=<unit>    (a guard's lookup: auth, search, audit, commit)
- found:      POST /api/v1/incidents         (a found report: incident, timeline, outbox rows)

and prints throughput and p50/p99 latency per scenario, with p99 and throughput as ratios to the
baseline measured in the same run (target: at most 2). No worker runs, so nothing is sent.
Never part of the test run; the load generator shares the machine's cores with the servers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from welfare.authz import Actor, Role  # noqa: E402
from welfare.db import make_engine, make_sessionmaker, session_scope, upgrade_database  # noqa: E402
from welfare.seed import seed_residents  # noqa: E402
from welfare.users import service as users  # noqa: E402
from welfare.users.models import UserCreate  # noqa: E402

SECRET = "bench-secret-key-that-is-long-enough-for-serving"
GUARD_PASSWORD = "bench guard password"


def bare_app(database_url: str):  # type: ignore[no-untyped-def]
    """The baseline: FastAPI, one dependency-free endpoint, one indexed SELECT, JSON out."""
    from fastapi import FastAPI

    engine = make_engine(database_url)
    app = FastAPI()

    @app.get("/bare")
    def bare(unit: str) -> dict[str, str | None]:
        with engine.connect() as connection:
            found = connection.execute(
                text("SELECT id FROM household WHERE unit = :unit LIMIT 1"), {"unit": unit}
            ).first()
        return {"id": str(found[0]) if found else None}

    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def scratch_database(url: str) -> tuple[str, str]:
    """A new database beside the given one: (its URL, the admin URL used to drop it)."""
    base = make_url(url).set(drivername="postgresql+psycopg")
    admin = base.set(database="postgres")
    name = f"welfare_load_{uuid.uuid4().hex[:8]}"
    engine = make_engine(admin.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False), admin.render_as_string(
        hide_password=False
    )


def drop_database(admin_url: str, url: str) -> None:
    name = make_url(url).database
    engine = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_up(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server at {url} did not come up")


async def drive(
    name: str,
    make_request: object,
    bases: list[str],
    *,
    seconds: float,
    concurrency: int,
    headers: dict[str, str],
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds
    counter = 0

    async def one_client(client: httpx.AsyncClient) -> None:
        nonlocal errors, counter
        while time.perf_counter() < stop_at:
            counter += 1
            base = bases[counter % len(bases)]
            method, path, body = make_request(counter)  # type: ignore[operator]
            started = time.perf_counter()
            response = await client.request(method, base + path, json=body, headers=headers)
            latencies.append(time.perf_counter() - started)
            if response.status_code >= 400:
                errors += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        begun = time.perf_counter()
        await asyncio.gather(*(one_client(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - begun
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50": percentile(latencies, 0.50) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
    }


@dataclass
class Load:
    """Per scenario (baseline, lookup, found): requests, errors, rps, p50 and p99 in ms."""

    residents: int
    seconds: float
    concurrency: int
    seed_seconds: float
    scenarios: dict[str, dict[str, float]]

    def p99_ratio(self, name: str) -> float:
        return self.scenarios[name]["p99"] / self.scenarios["baseline"]["p99"]

    def throughput_ratio(self, name: str) -> float:
        """How many times lower the scenario's throughput is than the baseline's."""
        return self.scenarios["baseline"]["rps"] / self.scenarios[name]["rps"]


def measure(postgres_url: str, residents: int, seconds: float, concurrency: int) -> Load:
    """Seed a scratch database beside `postgres_url`, start the processes, drive each scenario
    (after a one-second warm-up) and drop it all again."""
    url, admin_url = scratch_database(postgres_url)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        upgrade_database(url)
        engine = make_engine(url)
        factory = make_sessionmaker(engine)
        started = time.perf_counter()
        with session_scope(factory) as session:
            site = seed_residents(session, residents)
            guard = users.create_user(
                session=session,
                actor=Actor.system(),
                data=UserCreate(
                    username="bench-guard",
                    display_name="Bench guard",
                    role=Role.guard,
                    password=GUARD_PASSWORD,
                    site_ids=[site.id],
                ),
            )
            guard_name = guard.username
        with engine.connect() as connection:
            units = [
                row[0] for row in connection.execute(text("SELECT unit FROM household LIMIT 2000"))
            ]
            resident_ids = [
                str(row[0]) for row in connection.execute(text("SELECT id FROM resident"))
            ]
        engine.dispose()
        seed_seconds = time.perf_counter() - started

        env = {
            **os.environ,
            "WELFARE_DATABASE_URL": url,
            "WELFARE_SECRET_KEY": SECRET,
            "WELFARE_RUN_WORKER_IN_PROCESS": "false",
        }
        api_ports = [free_port(), free_port()]
        bare_ports = [free_port(), free_port()]
        for port in api_ports:
            processes.append(
                start(
                    ["-c", "from welfare.cli import main; main()", "serve", "--port", str(port)],
                    env,
                )
            )
        for port in bare_ports:
            processes.append(start([__file__, "--serve-bare", str(port)], env))
        deadline = time.monotonic() + 60
        for port in api_ports:
            wait_up(f"http://127.0.0.1:{port}/healthz", deadline)
        for port in bare_ports:
            wait_up(f"http://127.0.0.1:{port}/bare?unit=0", deadline)
        apis = [f"http://127.0.0.1:{port}" for port in api_ports]
        bares = [f"http://127.0.0.1:{port}" for port in bare_ports]
        token = httpx.post(
            f"{apis[0]}/api/v1/auth/token",
            data={"username": guard_name, "password": GUARD_PASSWORD},
            timeout=30,
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        rng = random.Random(1609)
        rng.shuffle(resident_ids)

        def bare_request(_n: int) -> tuple[str, str, None]:
            return "GET", f"/bare?unit={rng.choice(units)}", None

        def lookup_request(_n: int) -> tuple[str, str, None]:
            return "GET", f"/api/v1/lookup?q={rng.choice(units)}", None

        def found_request(n: int) -> tuple[str, str, dict[str, str]]:
            body = {
                "kind": "found",
                "resident_id": resident_ids[n % len(resident_ids)],
                "location": "main gate",
                "client_request_id": uuid.uuid4().hex,
            }
            return "POST", "/api/v1/incidents", body

        figures = {}
        for name, bases, make_request, headers in [
            ("baseline", bares, bare_request, {}),
            ("lookup", apis, lookup_request, auth),
            ("found", apis, found_request, auth),
        ]:
            # A short warm-up so connection pools and caches are filled before timing.
            asyncio.run(
                drive(
                    name,
                    make_request,
                    bases,
                    seconds=1.0,
                    concurrency=concurrency,
                    headers=headers,
                )
            )
            figures[name] = asyncio.run(
                drive(
                    name,
                    make_request,
                    bases,
                    seconds=seconds,
                    concurrency=concurrency,
                    headers=headers,
                )
            )
        return Load(
            residents=residents,
            seconds=seconds,
            concurrency=concurrency,
            seed_seconds=seed_seconds,
            scenarios=figures,
        )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        drop_database(admin_url, url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--postgres-url", required=False, default=os.environ.get("WELFARE_BENCH_POSTGRES_URL")
    )
    parser.add_argument("--residents", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        import uvicorn

        uvicorn.run(
            bare_app(os.environ["WELFARE_DATABASE_URL"]),
            port=args.serve_bare,
            log_level="warning",
            access_log=False,
        )
        return
    if not args.postgres_url:
        raise SystemExit(
            "give --postgres-url postgresql+psycopg://user@host/db "
            "(a scratch database is made beside it)"
        )
    load = measure(args.postgres_url, args.residents, args.seconds, args.concurrency)
    print(f"seeded {args.residents} residents in {load.seed_seconds:.1f} s")
    print(
        f"\n{args.residents} residents, 2 API processes, concurrency {args.concurrency}, "
        f"{args.seconds:.0f} s per scenario"
    )
    columns = ("requests", "errors", "req/s", "p50 ms", "p99 ms", "p99 ratio", "req/s ratio")
    print(f"{'scenario':<10}" + "".join(f"{c:>12}" for c in columns))
    for name, row in load.scenarios.items():
        print(
            f"{name:<10}{row['requests']:>12.0f}{row['errors']:>12.0f}{row['rps']:>12.1f}"
            f"{row['p50']:>12.1f}{row['p99']:>12.1f}{load.p99_ratio(name):>12.2f}"
            f"{load.throughput_ratio(name):>12.2f}"
        )
    print("ratios are against the baseline (target: at most 2)")


if __name__ == "__main__":
    main()
