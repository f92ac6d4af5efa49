"""Found report -> the family's phones: `python bench/response.py [--postgres-url URL]`.

Starts the real server (as `welfare serve` does: the app factory, then uvicorn) and worker
(in-process on SQLite, a separate `welfare worker` process on PostgreSQL, woken across
processes by NOTIFY) against a local Twilio-compatible fake (tests/notifications/fake_twilio.py
over HTTP) that answers after `--latency` seconds (default 0.15) and records when each request
reached it: the hand-over. The real Twilio SDK path runs in between.

For each N in `--incidents` (default 1,20,100), N guards report N different residents found at
the same moment (repeated in rounds until at least `--samples` reports were made), and the bench
measures, per incident:

- report: the `POST /api/v1/incidents` request, as the guard's phone sees it;
- report -> SMS / call: from the report request's start to the first SMS and the first call of
  the incident reaching the provider (the brief: "within a second");
- missed call -> next call (a second table): each first contact's phone goes to voicemail
  (Twilio's signed answering-machine callback); the time until the next contact's call reaches
  the provider, with no interval waited out (policy `advance_on_miss`);
- confirm -> guard: each incident's guard holds its live stream (`GET .../events`); the family
  replies "1" by SMS (a signed Twilio webhook) and the time until the guard's stream shows
  "confirmed" is measured; every provider request for the incident after the confirmation was
  answered is counted (must be 0).

A baseline runs the same N concurrent clients against a bare FastAPI app whose one route inserts
one row in the same kind of database (same engine settings): the report's p99 is printed as a
ratio of it. Prints p50 and p99 in milliseconds. Never part of the test run.

PostgreSQL runs in a scratch schema of the given database, dropped afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import text, update
from sqlalchemy.engine import make_url
from sqlmodel import col, select
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.notifications.fake_twilio import FakeTwilioServer  # noqa: E402
from welfare.authz import Actor, Role  # noqa: E402
from welfare.db import (  # noqa: E402
    make_engine,
    make_sessionmaker,
    normalise_url,
    session_scope,
    upgrade_database,
    utcnow,
)
from welfare.residents.models import Contact, Resident  # noqa: E402
from welfare.seed import seed_residents  # noqa: E402
from welfare.users import service as users  # noqa: E402
from welfare.users.models import AuthSession, UserCreate  # noqa: E402

ACCOUNT = "AC" + "b" * 32
TOKEN = "bench-twilio-auth-token"
SECRET = secrets.token_urlsafe(48)
BAR_SECONDS = 1.0
SENDER_RATE = 100  # SMS (and calls) per second the bench's sender may send


# --- the provider: records when each request reached it --------------------------------------


class TimedTwilio(FakeTwilioServer):
    def __init__(self, delay: float) -> None:
        super().__init__(ACCOUNT, TOKEN, magic_numbers=False, delay=delay)
        self.arrivals: dict[str, list[tuple[float, str]]] = defaultdict(list)  # to -> (t, kind)
        self.arrived = threading.Condition()

    def _answer(self, method: str, url: str, form: Any, *args: Any, **kwargs: Any) -> Any:
        now = time.perf_counter()
        answer = super()._answer(method, url, form, *args, **kwargs)
        # Told only once the fake has stored the message or call: a waiter woken earlier could
        # look the call up (`call_sid_to`) before it is there.
        if method == "POST" and isinstance(form.get("To"), str):
            kind = "sms" if "/Messages" in url else "call"
            with self.arrived:
                self.arrivals[form["To"]].append((now, kind))
                self.arrived.notify_all()
        return answer

    def first_call_at(self, phone: str, timeout: float) -> float:
        """When the first call to `phone` reached the provider (waiting up to `timeout`)."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                calls = [t for t, k in self.arrivals.get(phone, []) if k == "call"]
                if calls:
                    return calls[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("the next contact's call never reached the provider")
                self.arrived.wait(left)

    def call_sid_to(self, phone: str) -> str:
        return next(sid for sid, call in list(self.calls.items()) if call["to"] == phone)

    def wait_for(self, phones: list[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                done = all(
                    {k for _, k in self.arrivals.get(p, [])} >= {"sms", "call"} for p in phones
                )
                left = deadline - time.monotonic()
                if done or left <= 0:
                    return done
                self.arrived.wait(left)


# --- databases -----------------------------------------------------------------------------------


@contextmanager
def database(kind: str, postgres_url: str | None) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    assert postgres_url
    base = normalise_url(postgres_url)
    schema = f"bench_response_{uuid.uuid4().hex[:8]}"
    engine = make_engine(base)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@dataclass
class World:
    residents: list[tuple[uuid.UUID, str]]  # (resident id, contact phone)
    tokens: list[str]  # one guard per concurrent reporter
    second: dict[uuid.UUID, str] = field(default_factory=dict)  # resident -> next contact's phone


def seed(url: str, residents: int, guards: int, *, second_contact: bool = False) -> World:
    upgrade_database(url)
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    with session_scope(factory) as session:
        site = seed_residents(session, residents)
        # Distinct numbers, so each hand-over is known by its number.
        contacts = session.exec(select(Contact).order_by(col(Contact.created_at))).all()
        for n, contact in enumerate(contacts):
            session.exec(  # type: ignore[call-overload]
                update(Contact).where(col(Contact.id) == contact.id).values(phone=f"+8529{n:07d}")
            )
        pairs = session.exec(
            select(Resident.id, Contact.phone).join(
                Contact, col(Contact.resident_id) == Resident.id
            )
        ).all()
        second: dict[uuid.UUID, str] = {}
        if second_contact:  # a daughter after each son, for the missed-call figure
            for n, (resident_id, _) in enumerate(pairs):
                phone = f"+8526{n:07d}"
                session.add(
                    Contact(
                        resident_id=resident_id,
                        name="Daughter",
                        relationship="daughter",
                        phone=phone,
                        language="en",
                        priority=2,
                        consent_to_contact=True,
                    )
                )
                second[resident_id] = phone
        tokens = []
        for _ in range(guards):
            guard = users.create_user(
                session=session,
                actor=Actor.system(),
                data=UserCreate(
                    username=f"guard-{uuid.uuid4().hex[:8]}",
                    display_name="guard",
                    role=Role.guard,
                    password=secrets.token_urlsafe(16),
                    site_ids=[site.id],
                ),
            )
            token = secrets.token_urlsafe(32)
            session.add(
                AuthSession(
                    user_id=guard.id,
                    token_hash=users.hash_token(token),
                    expires_at=utcnow() + dt.timedelta(hours=2),
                )
            )
            tokens.append(token)
    engine.dispose()
    return World(residents=[(r, p) for r, p in pairs], tokens=tokens, second=second)


# --- processes -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(base: str, path: str = "/healthz", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + path, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{base} did not come up")


SERVE = """
import uvicorn
from api.app import create_app
from welfare.process import freeze_startup_objects

app = create_app()
freeze_startup_objects()
uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning", timeout_keep_alive=300)
"""


@contextmanager
def server(url: str, fake: TimedTwilio, port: int) -> Iterator[str]:
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "WELFARE_DATABASE_URL": url,
        "WELFARE_SECRET_KEY": SECRET,
        "WELFARE_PUBLIC_BASE_URL": base,
        "WELFARE_TWILIO_ACCOUNT_SID": ACCOUNT,
        "WELFARE_TWILIO_AUTH_TOKEN": TOKEN,
        "WELFARE_TWILIO_FROM_NUMBER": "+15005550006",
        "WELFARE_TWILIO_API_BASE_URL": fake.base_url,
        # A sender with room for a burst (a messaging service or short code); the default 10/s
        # suits one long code and would pace 100 reports' SMS over ten seconds by design.
        "WELFARE_OUTBOX_MAX_PER_SECOND": str(SENDER_RATE),
        "PYTHONPATH": str(ROOT),
    }
    # As `welfare serve` starts (the app, its startup objects frozen, uvicorn), with a long
    # keep-alive: the clients sit idle between rounds.
    serve = SERVE.format(port=port)
    procs = [subprocess.Popen([sys.executable, "-c", serve], env=env, cwd=ROOT)]
    if not url.startswith("sqlite"):
        worker = [sys.executable, "-c", "from welfare.cli import main; main()", "worker"]
        procs.append(subprocess.Popen(worker, env=env, cwd=ROOT, stderr=subprocess.DEVNULL))
    try:
        wait_ready(base)
        yield base
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


BASELINE_APP = """
from fastapi import FastAPI
from sqlalchemy import text
from welfare.db import make_engine
import os, uuid

engine = make_engine(os.environ["WELFARE_DATABASE_URL"])
with engine.begin() as c:
    c.execute(text("CREATE TABLE IF NOT EXISTS bench_baseline (id VARCHAR(36) PRIMARY KEY)"))
app = FastAPI()

@app.get("/healthz")
def health() -> dict:
    return {"ok": True}

@app.post("/baseline", status_code=201)
def insert_one() -> dict:
    row_id = str(uuid.uuid4())
    with engine.begin() as c:
        c.execute(text("INSERT INTO bench_baseline (id) VALUES (:id)"), {"id": row_id})
    return {"id": row_id}
"""


@contextmanager
def baseline_server(url: str, port: int) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "baseline_app.py").write_text(BASELINE_APP)
        env = {**os.environ, "WELFARE_DATABASE_URL": url, "PYTHONPATH": f"{tmp}:{ROOT}"}
        cmd = [sys.executable, "-m", "uvicorn", "baseline_app:app", "--port", str(port)]
        cmd += ["--timeout-keep-alive", "300"]
        proc = subprocess.Popen([*cmd, "--log-level", "warning"], env=env, cwd=tmp)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base)
            yield base
        finally:
            proc.terminate()
            proc.wait(10)


# --- one measured run ----------------------------------------------------------------------------


@dataclass
class Figures:
    report: list[float] = field(default_factory=list)
    to_sms: list[float] = field(default_factory=list)
    to_call: list[float] = field(default_factory=list)
    confirm_seen: list[float] = field(default_factory=list)
    after_confirm: int = 0
    failed_reports: int = 0
    baseline: list[float] = field(default_factory=list)


def _together(n: int, work: Any) -> list[Any]:
    """Run work(i) for i < n in n threads released at the same moment."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def _sign(base: str, path: str, form: dict[str, str]) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(base + path, form)}


def _confirm_and_watch(
    base: str, token: str, incident_id: str, phone: str, fake: TimedTwilio
) -> tuple[float, int]:
    """Hold the guard's stream, reply "1" as the family, time until the stream says confirmed."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, timeout=30) as client:
        url = f"/api/v1/incidents/{incident_id}/events"
        with client.stream("GET", url, headers=headers, params={"max_seconds": 30}) as stream:
            lines = stream.iter_lines()
            event = None
            for line in lines:  # the current state first
                if line.startswith("event: "):
                    event = line[7:]
                if not line and event == "notifications":
                    break
            path = "/webhooks/twilio/inbound-sms"
            form = {"MessageSid": f"SM{uuid.uuid4().hex}", "From": phone, "Body": "1"}
            started = time.perf_counter()
            answered = client.post(path, data=form, headers=_sign(base, path, form))
            answered.raise_for_status()
            replied = time.perf_counter()
            for line in lines:
                if line.startswith("event: "):
                    event = line[7:]
                elif (
                    line.startswith("data: ")
                    and event == "status"
                    and json.loads(line[6:])["status"] == "confirmed"
                ):
                    seen = time.perf_counter()
                    break
            else:
                raise RuntimeError("the stream ended without showing the confirmation")
    late = sum(1 for t, _ in fake.arrivals.get(phone, []) if t > replied)
    return seen - started, late


def run(url: str, n: int, samples: int, latency: float) -> Figures:
    rounds = max(1, -(-samples // n))
    world = seed(url, n * rounds, n)
    figures = Figures()
    with TimedTwilio(latency) as fake, server(url, fake, free_port()) as base:
        clients = [httpx.Client(base_url=base, timeout=30) for _ in range(n)]
        for i, client in enumerate(clients):  # warm connections and the app
            client.get("/api/v1/me", headers={"Authorization": f"Bearer {world.tokens[i]}"})
        for r in range(rounds):
            batch = world.residents[r * n : (r + 1) * n]

            def report(
                i: int, batch: list[tuple[uuid.UUID, str]] = batch
            ) -> tuple[float, str] | None:
                body = {"resident_id": str(batch[i][0]), "client_request_id": uuid.uuid4().hex}
                headers = {"Authorization": f"Bearer {world.tokens[i]}"}
                started = time.perf_counter()
                response = clients[i].post("/api/v1/incidents", json=body, headers=headers)
                figures.report.append(time.perf_counter() - started)
                if response.status_code != 201:  # a guard's phone would retry; we count it
                    figures.failed_reports += 1
                    return None
                return started, response.json()["id"]

            results = _together(n, report)
            kept = [(r, b) for r, b in zip(results, batch, strict=True) if r is not None]
            opened = [r for r, _ in kept]
            phones = [phone for _, (_, phone) in kept]
            if not fake.wait_for(phones, timeout=60):
                raise RuntimeError("not every first SMS and call reached the provider in 60 s")
            for (started, _), phone in zip(opened, phones, strict=True):
                arrivals = fake.arrivals[phone]
                figures.to_sms.append(min(t for t, k in arrivals if k == "sms") - started)
                figures.to_call.append(min(t for t, k in arrivals if k == "call") - started)

            def confirm(
                i: int, opened: list[tuple[float, str]] = opened, phones: list[str] = phones
            ) -> tuple[float, int]:
                return _confirm_and_watch(base, world.tokens[i], opened[i][1], phones[i], fake)

            for seen, late in _together(len(opened), confirm):
                figures.confirm_seen.append(seen)
                figures.after_confirm += late
        for client in clients:
            client.close()
    return figures


def run_missed(url: str, n: int, samples: int, latency: float) -> list[float]:
    """N incidents at once; each first contact's phone goes to voicemail (Twilio's signed AMD
    callback, `machine_end_beep`); the time from that callback's start to the next contact's
    call reaching the provider (advance-on-miss: no interval waited out)."""
    rounds = max(1, -(-samples // n))
    world = seed(url, n * rounds, n, second_contact=True)
    times: list[float] = []
    with TimedTwilio(latency) as fake, server(url, fake, free_port()) as base:
        clients = [httpx.Client(base_url=base, timeout=30) for _ in range(n)]
        for r in range(rounds):
            batch = world.residents[r * n : (r + 1) * n]

            def report(i: int, batch: list[tuple[uuid.UUID, str]] = batch) -> None:
                body = {"resident_id": str(batch[i][0]), "client_request_id": uuid.uuid4().hex}
                headers = {"Authorization": f"Bearer {world.tokens[i]}"}
                clients[i].post("/api/v1/incidents", json=body, headers=headers).raise_for_status()

            _together(n, report)
            if not fake.wait_for([phone for _, phone in batch], timeout=60):
                raise RuntimeError("not every first SMS and call reached the provider in 60 s")

            def voicemail(i: int, batch: list[tuple[uuid.UUID, str]] = batch) -> float:
                resident_id, phone = batch[i]
                callback, form = fake.amd_callback_form(fake.call_sid_to(phone), "machine_end_beep")
                assert callback is not None
                parts = urlsplit(callback)
                path = f"{parts.path}?{parts.query}"
                started = time.perf_counter()
                clients[i].post(path, data=form, headers=_sign(base, path, form)).raise_for_status()
                return fake.first_call_at(world.second[resident_id], timeout=60) - started

            times += _together(n, voicemail)
        for client in clients:
            client.close()
    return times


def run_baseline(url: str, n: int, samples: int) -> list[float]:
    rounds = max(1, -(-samples // n))
    times: list[float] = []
    with baseline_server(url, free_port()) as base:
        clients = [httpx.Client(base_url=base, timeout=30) for _ in range(n)]
        for client in clients:
            client.get("/healthz")

        def insert(i: int) -> None:
            started = time.perf_counter()
            clients[i].post("/baseline").raise_for_status()
            times.append(time.perf_counter() - started)

        for _ in range(rounds):
            _together(n, insert)
        for client in clients:
            client.close()
    return times


# --- output --------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def ms(values: list[float]) -> str:
    return f"{pct(values, 50) * 1000:7.1f} {pct(values, 99) * 1000:7.1f}"


@dataclass
class Result:
    """One database and N: the figures and whether the brief's bar (< 1 s) was met."""

    kind: str
    n: int
    figures: Figures

    @property
    def sms_p99(self) -> float:
        return pct(self.figures.to_sms, 99)

    @property
    def ratio(self) -> float | None:
        """The report's p99 over the one-row-insert baseline's, when that was measured."""
        if not self.figures.baseline:
            return None
        return pct(self.figures.report, 99) / pct(self.figures.baseline, 99)

    @property
    def ok(self) -> bool:
        worst = max(self.sms_p99, pct(self.figures.to_call, 99))
        return worst < BAR_SECONDS and not self.figures.after_confirm and not self.refused

    @property
    def refused(self) -> int:
        return self.figures.failed_reports


def measure(
    kind: str,
    postgres_url: str | None,
    n: int,
    samples: int,
    latency: float,
    *,
    baseline: bool = True,
) -> Result:
    """N concurrent reporters on `kind` ("sqlite" or "postgresql", in a scratch schema of
    `postgres_url`), and the one-row-insert baseline unless `baseline` is False."""
    with database(kind, postgres_url) as url:
        figures = run(url, n, samples, latency)
        if baseline:
            figures.baseline = run_baseline(url, n, samples)
    return Result(kind=kind, n=n, figures=figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres-url", help="also run on PostgreSQL (in a scratch schema)")
    parser.add_argument("--incidents", default="1,20,100", help="concurrent reports per round")
    parser.add_argument("--samples", type=int, default=100, help="reports per N, at least")
    parser.add_argument("--latency", type=float, default=0.15, help="provider answer time, s")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    kinds = ([] if args.skip_sqlite else ["sqlite"]) + (["postgresql"] if args.postgres_url else [])
    counts = [int(x) for x in args.incidents.split(",")]
    print(
        f"provider latency {args.latency * 1000:.0f} ms; sender rate {SENDER_RATE}/s; "
        "times in ms as p50 p99"
    )
    header = (
        f"{'db':<10} {'N':>4} {'reports':>7} | {'report':>15} | {'-> SMS':>15} | "
        f"{'-> call':>15} | {'confirm->guard':>15} | {'baseline':>15} {'x p99':>6} | "
        f"late  bar(<{BAR_SECONDS:g}s)"
    )
    print(header)
    failed = False
    for kind in kinds:
        for n in counts:
            result = measure(kind, args.postgres_url, n, args.samples, args.latency)
            figures = result.figures
            failed |= not result.ok
            refused = f" ({result.refused} refused)" if result.refused else ""
            print(
                f"{kind:<10} {n:>4} {len(figures.report):>7} | {ms(figures.report)} | "
                f"{ms(figures.to_sms)} | {ms(figures.to_call)} | {ms(figures.confirm_seen)} | "
                f"{ms(figures.baseline)} {result.ratio or 0:6.2f} | {figures.after_confirm:>4}  "
                f"{'ok' if result.ok else 'MISSED'}{refused}",
                flush=True,
            )
    print()
    print("missed call (voicemail) -> the next contact's call reaches the provider, ms p50 p99")
    for kind in kinds:
        for n in counts:
            with database(kind, args.postgres_url) as url:
                missed = run_missed(url, n, args.samples, args.latency)
            ok = pct(missed, 99) < BAR_SECONDS
            failed |= not ok
            print(
                f"{kind:<10} {n:>4} {len(missed):>7} | {ms(missed)} | "
                f"{'ok' if ok else 'MISSED'} (bar < {BAR_SECONDS:g} s)",
                flush=True,
            )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
