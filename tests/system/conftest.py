"""Real processes for the system tests: `welfare serve` and `welfare worker` on one PostgreSQL
database, with the fake Twilio server over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import POSTGRES_URL, TEST_SECRET, _truncate_postgres
from tests.notifications.fake_twilio import FakeTwilioServer

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "f" * 32
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str:
    if not POSTGRES_URL:
        pytest.skip("set WELFARE_TEST_POSTGRES_URL to run the multi-process test on PostgreSQL")
    url: str = request.getfixturevalue("postgres_migrated")
    _truncate_postgres(url)
    return url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Processes:
    """`welfare serve` and `welfare worker` as real processes, stopped at the end of the test."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-c", "from welfare.cli import main; main()", *args],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.running[name] = process
        return process

    def stop_all(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.terminate()
        for process in self.running.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def twilio() -> Iterator[FakeTwilioServer]:
    # Twilio's own latency, roughly: long enough that a kill lands on sends in flight.
    with FakeTwilioServer(ACCOUNT_SID, AUTH_TOKEN, delay=0.03) as server:
        yield server


@pytest.fixture
def processes(database_url: str, twilio: FakeTwilioServer, tmp_path: Path) -> Iterator[Processes]:
    env = {
        **os.environ,
        "WELFARE_DATABASE_URL": database_url,
        "WELFARE_SECRET_KEY": TEST_SECRET,
        "WELFARE_PUBLIC_BASE_URL": "https://welfare.test",
        "WELFARE_MEDIA_DIR": str(tmp_path / "media"),
        "WELFARE_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "WELFARE_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "WELFARE_TWILIO_FROM_NUMBER": "+15005550006",
        "WELFARE_TWILIO_API_BASE_URL": twilio.base_url,
        "WELFARE_RUN_WORKER_IN_PROCESS": "false",
    }
    running = Processes(env, tmp_path)
    yield running
    running.stop_all()


def wait_healthy(base_urls: list[str], processes: Processes) -> None:
    deadline = time.monotonic() + 60
    for base in base_urls:
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            dead = [n for n, p in processes.running.items() if p.poll() is not None]
            assert not dead, f"process exited early: {dead}"
            assert time.monotonic() < deadline, f"{base} did not come up"
            time.sleep(0.2)


def wait_for_log(processes: Processes, name: str, line: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    path = processes.logs / f"{name}.log"
    while line not in path.read_text(errors="replace"):
        assert processes.running[name].poll() is None, f"{name} exited"
        assert time.monotonic() < deadline, f"{name} never logged {line!r}"
        time.sleep(0.2)
