"""What one found report costs: `python bench/report_cost.py [--reports N] [--postgres-url URL]`.

In one process, against a database seeded with `welfare.seed` and migrated as in production:

- the guard's `POST /api/v1/incidents` through the real app (`create_app`, a bearer session),
- then the worker's round that hands that report's first SMS and call to the provider: the
  worker's dispatcher (`notifications.runtime.dispatcher`: `pump` claims and gates the due rows
  and hands them to its pool, and the answers are recorded together) with the real
  `TwilioSender` over a stand-in for Twilio's two requests that answers at once
  (tests/notifications/fake_channel.py).

For each report it counts the SQL statements the request and the worker send (a cursor hook on
the app's engines and the worker's), and the CPU time (`time.process_time`) each part takes.
The baseline, measured in the same run and the same way: a bare FastAPI app whose one route
inserts one row through an engine made by the same `make_engine`. Prints the median CPU per
report and per baseline request, their ratio, and the statements. Never part of the test run.

PostgreSQL runs in a scratch schema of the given database, dropped afterwards.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402

from api.app import create_app  # noqa: E402
from bench import response as response_bench  # noqa: E402
from bench.lookup import postgres_scratch  # noqa: E402
from notifications import runtime  # noqa: E402
from notifications.channels import ChannelRegistry  # noqa: E402
from tests.notifications.fake_channel import FakeChannel  # noqa: E402
from welfare.db import (  # noqa: E402
    make_engine,
    make_sessionmaker,
)
from welfare.settings import Settings  # noqa: E402

SECRET = secrets.token_urlsafe(48)
BASE = "https://welfare.bench"


CONTROL = ("BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT")


class Statements:
    """Counts the statements sent to the database through the engines it is attached to, and
    the transactions begun; savepoints and the like are counted as neither."""

    def __init__(self, *engines: Engine) -> None:
        self.count = 0
        self.transactions = 0
        for engine in engines:
            event.listen(engine, "before_cursor_execute", self._seen)
            event.listen(engine, "begin", self._began)

    def _seen(self, _connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.lstrip().upper().startswith(CONTROL):
            self.count += 1

    def _began(self, _connection: Any) -> None:
        self.transactions += 1

    def take(self) -> tuple[int, int]:
        seen = (self.count, self.transactions)
        self.count = self.transactions = 0
        return seen


@contextmanager
def database(postgres_url: str | None) -> Iterator[str]:
    """A new SQLite file, or a scratch schema of the PostgreSQL database (dropped after)."""
    if postgres_url is None:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    url, drop = postgres_scratch(postgres_url)
    try:
        yield url
    finally:
        drop()


def baseline_cpu(url: str, runs: int) -> list[float]:
    """CPU per request of a bare app whose one route inserts one row."""
    from fastapi import FastAPI

    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE bench_baseline (id VARCHAR(36) PRIMARY KEY)"))
    app = FastAPI()

    @app.post("/baseline", status_code=201)
    def insert_one() -> dict[str, str]:
        row_id = str(uuid.uuid4())
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO bench_baseline (id) VALUES (:id)"), {"id": row_id})
        return {"id": row_id}

    samples = []
    with TestClient(app, base_url=BASE) as client:
        for i in range(runs + 5):
            started = time.process_time()
            assert client.post("/baseline").status_code == 201
            if i >= 5:  # the first requests warm the engine and the route
                samples.append(time.process_time() - started)
    engine.dispose()
    return samples


def report_cost(url: str, ids: list[uuid.UUID], token: str, runs: int) -> dict[str, Any]:
    settings = Settings(
        database_url=url,
        secret_key=SECRET,
        public_base_url=BASE,
        run_worker_in_process=False,
        # The provider's rate limit would hold the call back to a later round.
        outbox_max_per_second=10_000,
        media_dir=Path(tempfile.mkdtemp()),
        _env_file=None,  # type: ignore[call-arg]
    )
    app = create_app(settings)
    worker_engine = make_engine(url)
    channel = FakeChannel(settings)
    dispatcher = runtime.dispatcher(
        settings, make_sessionmaker(worker_engine), ChannelRegistry.every_kind(channel)
    )
    statements = Statements(app.state.engine, app.state.read_engine, worker_engine)
    headers = {"Authorization": f"Bearer {token}"}
    request_cpu: list[float] = []
    worker_cpu: list[float] = []
    request_statements: list[tuple[int, int]] = []
    worker_statements: list[tuple[int, int]] = []
    sent = 0
    with TestClient(app, base_url=BASE) as client:
        for i, resident_id in enumerate(ids[: runs + 5]):
            body = {"resident_id": str(resident_id), "client_request_id": uuid.uuid4().hex}
            statements.take()
            started = time.process_time()
            response = client.post("/api/v1/incidents", json=body, headers=headers)
            request_done = time.process_time()
            assert response.status_code == 201, response.text
            in_request = statements.take()
            before = len(channel.sent)
            # The worker's round as `welfare worker` runs it: claim and gate, hand over in the
            # pool; then the answers recorded together (`close` waits for them).
            dispatcher.pump()
            dispatcher.close()
            worker_done = time.process_time()
            in_worker = statements.take()
            if i < 5:  # warm-up: the first requests build the routes and the statement caches
                continue
            sent += len(channel.sent) - before
            request_cpu.append(request_done - started)
            worker_cpu.append(worker_done - request_done)
            request_statements.append(in_request)
            worker_statements.append(in_worker)
    dispatcher.close()
    worker_engine.dispose()
    app.state.engine.dispose()
    app.state.read_engine.dispose()
    return {
        "request_cpu": request_cpu,
        "worker_cpu": worker_cpu,
        "request_statements": statistics.median(n for n, _ in request_statements),
        "worker_statements": statistics.median(n for n, _ in worker_statements),
        "request_transactions": statistics.median(t for _, t in request_statements),
        "worker_transactions": statistics.median(t for _, t in worker_statements),
        "messages_per_report": sent / max(1, len(request_cpu)),
    }


def measure(postgres_url: str | None, runs: int) -> dict[str, Any]:
    with database(postgres_url) as url:
        # Residents with a consenting contact each (a number of their own, or the limits per
        # recipient would hold messages back) and a guard's bearer token.
        world = response_bench.seed(url, runs + 5, guards=1)
        ids, token = [resident for resident, _ in world.residents], world.tokens[0]
        baseline = baseline_cpu(url, runs)
        cost = report_cost(url, ids, token, runs)
    per_report = [a + b for a, b in zip(cost["request_cpu"], cost["worker_cpu"], strict=True)]
    return {
        **cost,
        "report_ms": statistics.median(per_report) * 1000,
        "request_ms": statistics.median(cost["request_cpu"]) * 1000,
        "worker_ms": statistics.median(cost["worker_cpu"]) * 1000,
        "baseline_ms": statistics.median(baseline) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, default=100)
    parser.add_argument("--postgres-url", help="PostgreSQL instead of a SQLite file")
    args = parser.parse_args()
    figures = measure(args.postgres_url, args.reports)
    kind = "PostgreSQL" if args.postgres_url else "SQLite"
    print(f"found report cost on {kind}, {args.reports} reports (medians)")
    print(f"  messages handed to the provider per report: {figures['messages_per_report']:.1f}")
    print(
        f"  statements: request {figures['request_statements']:.0f}, "
        f"worker {figures['worker_statements']:.0f}, "
        f"total {figures['request_statements'] + figures['worker_statements']:.0f}; "
        f"transactions: request {figures['request_transactions']:.0f}, "
        f"worker {figures['worker_transactions']:.0f}"
    )
    print(
        f"  CPU per report {figures['report_ms']:.2f} ms (request {figures['request_ms']:.2f}, "
        f"worker {figures['worker_ms']:.2f}); one-row-insert app {figures['baseline_ms']:.2f} ms"
    )
    print(f"  ratio {figures['report_ms'] / figures['baseline_ms']:.1f}x")


if __name__ == "__main__":
    main()
