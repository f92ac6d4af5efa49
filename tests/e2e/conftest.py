"""Browser tests: the app served by uvicorn on a loopback port, driven by the system Chromium.

SQLite only (the browser tests exercise pages, not the database), the worker in process and the
console channel, as in `welfare demo`. Without Chromium the `browser` fixture skips, with a reason.
"""

from __future__ import annotations

import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from api.app import create_app
from tests.conftest import PASSWORD, TEST_SECRET
from welfare.heartbeat import service as heartbeats
from welfare.settings import Settings
from welfare.users.models import User

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PHONE = {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}


@pytest.fixture
def database_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "welfare.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def live_socket() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


@pytest.fixture
def settings(database_url: str, tmp_path: Path, live_socket: socket.socket) -> Settings:
    port = live_socket.getsockname()[1]
    return Settings(
        database_url=database_url,
        secret_key=TEST_SECRET,
        media_dir=tmp_path / "media",
        public_base_url=f"http://127.0.0.1:{port}",
        run_worker_in_process=True,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
def live_server(
    settings: Settings, live_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The whole app, in-process worker included, on a real socket; yields its base URL."""
    # The worker beats once at start (waited for below) and then not again during a test: a
    # beat committed between a test's read and its write through the deferred `db` session
    # fails that write at once ("database is locked").
    monkeypatch.setattr(heartbeats, "HEARTBEAT_SECONDS", 3600.0)
    app = create_app(settings)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [live_socket]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("live server did not start")
        time.sleep(0.05)
    # Let the in-process worker's start-up burst (heartbeat, first scheduler tick, audit head)
    # pass before the test writes its rows: a deferred SQLite transaction of the test that reads
    # and then writes right after such a commit fails at once ("database is locked").
    path = settings.database_url.removeprefix("sqlite:///")
    while time.monotonic() < deadline:
        with closing(sqlite3.connect(path)) as connection:
            if connection.execute("SELECT count(*) FROM worker_heartbeat").fetchone()[0]:
                break
        time.sleep(0.05)
    time.sleep(1.0)
    yield settings.public_base_url
    server.should_exit = True
    thread.join(timeout=15)
    app.state.engine.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def phone(browser: Any, live_server: str) -> Iterator[Any]:
    """A page in a phone-sized browser context (360 px wide, touch)."""
    context = browser.new_context(base_url=live_server, **PHONE)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def desktop(browser: Any, live_server: str) -> Iterator[Any]:
    context = browser.new_context(base_url=live_server, **DESKTOP)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def sign_in() -> Callable[..., None]:
    """Sign a browser page in through the sign-in form."""

    def do(page: Any, user: User, password: str = PASSWORD) -> None:
        page.goto("/login")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()

    return do


SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def screenshot(page: Any, name: str) -> None:
    """Keep a picture of a main page for the README (docs/screenshots)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
