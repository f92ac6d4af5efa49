"""Browser tests: the app served by uvicorn on a loopback port, driven by the system Chromium.

SQLite only (the browser tests exercise pages, not the database), the worker in process and the
console channel, as in `welfare demo`. Without Chromium the `browser` fixture skips, with a reason.

The live server's worker writes whenever it likes, so the tests arrange their rows through `db`,
a writer that waits its turn (BEGIN IMMEDIATE under the busy timeout), and inspect through
`reader`, whose reads never hold the write lock. Nothing here sleeps for a fixed time: pages are
waited for with Playwright's conditions. Screenshots go to the test's tmp_path, and to
docs/screenshots (the README's pictures) only with WELFARE_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from api.app import create_app
from tests.conftest import PASSWORD, TEST_SECRET
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
def db(writers: sessionmaker[Session]) -> Iterator[Session]:
    """For arranging rows while the live server runs: every transaction begins with BEGIN
    IMMEDIATE, so a write waits for the worker's (busy timeout) instead of failing "database is
    locked" the moment the worker commits between a read and a write of a deferred transaction.
    The factories commit at once. Never leave a transaction of it open across page steps: it
    holds the write lock and stalls the app. So read with `reader`, not through it, and end
    what begins one (a refresh, a query) with a commit: a rollback expires every object of the
    session, and touching one of them afterwards quietly begins the next transaction."""
    session = writers()
    yield session
    session.rollback()
    session.close()


@pytest.fixture
def reader(session_factory: sessionmaker[Session]) -> Callable[[Any], list[Any]]:
    """Run one read in a transaction of its own (deferred: it never holds the write lock) and
    return its rows, detached with their loaded values."""

    def read(query: Any) -> list[Any]:
        with session_factory() as session:
            rows = list(session.exec(query).all())
            for row in rows:
                if hasattr(row, "_sa_instance_state"):
                    session.expunge(row)
            session.rollback()
            return rows

    return read


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
def live_server(settings: Settings, live_socket: socket.socket) -> Iterator[str]:
    """The whole app, in-process worker included, on a real socket; yields its base URL once
    uvicorn serves (the worker starts with it and writes as it pleases: see `db`)."""
    app = create_app(settings)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [live_socket]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("live server did not start")
        time.sleep(0.05)  # uvicorn offers no event to wait on; this polls its flag
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
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_load_state()

    return do


SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
UPDATE_SCREENSHOTS = "WELFARE_UPDATE_SCREENSHOTS"

Screenshot = Callable[[Any, str], Path]


@pytest.fixture
def screenshot(tmp_path: Path) -> Screenshot:
    """Take a full-page picture of a main page. Into docs/screenshots, the README's tracked
    pictures, only when WELFARE_UPDATE_SCREENSHOTS=1; otherwise into the test's tmp_path, so
    an ordinary run still takes them (a page that cannot be drawn fails) but changes no file."""
    update = os.environ.get(UPDATE_SCREENSHOTS) == "1"
    folder = SCREENSHOTS if update else tmp_path / "screenshots"

    def take(page: Any, name: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
