"""Fixtures: every database test runs on SQLite and, with WELFARE_TEST_POSTGRES_URL, PostgreSQL.

The schema always comes from the Alembic migrations (never `create_all`): once per database per
run into a template, then each test gets a copy (SQLite) or truncated tables (PostgreSQL).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, make_url, text, update
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col

from api.app import create_app
from notifications.dispatcher import Dispatcher
from tests.notifications.fake_channel import FakeChannel
from welfare import consents
from welfare.authz import Actor, Role
from welfare.consent.models import Consent, ConsentCreate
from welfare.db import make_engine, make_sessionmaker, normalise_url, upgrade_database, utcnow
from welfare.models import metadata
from welfare.residents import service as residents
from welfare.residents.models import Contact, ContactCreate, Resident, ResidentCreate
from welfare.sealed import unseal
from welfare.settings import Settings
from welfare.sites import service as sites
from welfare.sites.models import Household, HouseholdCreate, Site, SiteCreate
from welfare.users import second_factor, totp
from welfare.users import service as users
from welfare.users.models import User, UserCreate


def _per_worker(url: str | None) -> str | None:
    """Under pytest-xdist each worker gets its own database (`<name>_gw0`, ...) next to the one
    named: the PostgreSQL fixtures drop and truncate whole schemas."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not url or not worker:
        return url
    named = make_url(normalise_url(url))
    return named.set(database=f"{named.database}_{worker}").render_as_string(hide_password=False)


POSTGRES_URL = _per_worker(os.environ.get("WELFARE_TEST_POSTGRES_URL"))
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """Argon2 with minimal cost in tests (as Django tests swap in a fast hasher): signing in is in
    most tests, and production-strength hashing would make it most of the run time."""
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    from welfare.users import service as user_service

    saved = (user_service.password_hasher, user_service._DUMMY_HASH)
    fast = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))
    user_service.password_hasher = fast
    user_service._DUMMY_HASH = fast.hash("dummy password for unknown users")
    yield
    user_service.password_hasher, user_service._DUMMY_HASH = saved


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade_database(f"sqlite:///{path}")
    # Fold the WAL into the main file so a plain copy carries the whole schema.
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return path


@pytest.fixture(scope="session", autouse=True)
def postgres_worker_database() -> None:
    """Creates this worker's database (see `_per_worker`) when it is not there yet."""
    if not POSTGRES_URL or not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    url = make_url(POSTGRES_URL)
    admin = make_engine(url.set(database="postgres").render_as_string(hide_password=False))
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            exists = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": url.database}
            ).first()
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{url.database}"'))
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_migrated() -> str:
    assert POSTGRES_URL
    url = normalise_url(POSTGRES_URL)
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    upgrade_database(url)
    return url


# DELETE, not TRUNCATE: TRUNCATE gives each table new files on disk, about 0.3 s for the schema's
# tables, before every one of some two thousand PostgreSQL tests; a DELETE of the few rows a test
# leaves takes milliseconds. Children before parents (the reverse of the foreign keys' order), then
# every sequence back to 1, as TRUNCATE ... RESTART IDENTITY did.
_EMPTY_EVERY_TABLE = ";".join(f'DELETE FROM "{t.name}"' for t in reversed(metadata.sorted_tables))
_RESTART_SEQUENCES = """
    SELECT setval(c.oid::regclass, 1, false) FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'S' AND n.nspname = current_schema()
"""


@cache
def _emptier(url: str) -> Engine:
    """One connection kept for emptying the tables (a new one per test costs more than the
    emptying)."""
    return make_engine(url)


def _truncate_postgres(url: str) -> None:
    """Empty every table of the migrated schema, as a new database would be."""
    with _emptier(url).begin() as connection:
        connection.execute(text(_EMPTY_EVERY_TABLE))
        connection.execute(text(_RESTART_SEQUENCES))


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(
                not POSTGRES_URL, reason="set WELFARE_TEST_POSTGRES_URL to run on PostgreSQL"
            ),
        ),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "welfare.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_migrated")
    _truncate_postgres(url)
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key=TEST_SECRET,
        media_dir=tmp_path / "media",
        public_base_url="https://welfare.test",
        run_worker_in_process=False,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    # Deferred transactions: a test reading rows between requests must not hold SQLite's
    # write lock (touching an expired object starts a transaction) and block the app.
    engine = make_engine(settings.database_url, immediate_transactions=False)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def writers(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """Sessions like the app's (BEGIN IMMEDIATE on SQLite), for code that writes as the worker or
    a request would; `db` and `session_factory` are for arranging and inspecting."""
    engine = make_engine(settings.database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def db(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for arranging data; commit what the app should see."""
    session = session_factory()
    yield session
    session.rollback()
    session.close()


@pytest.fixture
def app(settings: Settings) -> Iterator[Any]:
    application = create_app(settings)
    yield application
    application.state.engine.dispose()
    application.state.read_engine.dispose()


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, base_url="https://welfare.test") as test_client:
        yield test_client


SYSTEM = Actor.system()


@pytest.fixture
def channel() -> FakeChannel:
    """Twilio's requests as Twilio would get them, recorded (notifications/fake_channel.py)."""
    return FakeChannel()


@pytest.fixture
def dispatcher(
    writers: sessionmaker[Session], channel: FakeChannel, settings: Settings
) -> Dispatcher:
    """The outbox dispatcher, sending through `channel`."""
    return Dispatcher(writers, channel, settings)


@pytest.fixture
def make_site(db: Session) -> Callable[..., Site]:
    def make(**overrides: Any) -> Site:
        data = {
            "name": f"Site {uuid.uuid4().hex[:6]}",
            "timezone": "Asia/Hong_Kong",
            "phone_region": "HK",
            "office_phone": "2345 6789",
            # Tests of two-factor sign-in turn it on; everything else signs in with a password.
            "require_second_factor_staff": False,
        } | overrides
        site = sites.create_site(session=db, actor=SYSTEM, data=SiteCreate(**data))
        db.commit()
        return site

    return make


@pytest.fixture
def site(make_site: Callable[..., Site]) -> Site:
    return make_site(name="Harbour View Gardens")


@pytest.fixture
def make_user(db: Session) -> Callable[..., User]:
    def make(role: Role | str, sites_: list[Site] | None = None, **overrides: Any) -> User:
        role = Role(role)
        data = {
            "username": f"{role.value}-{uuid.uuid4().hex[:8]}",
            "display_name": role.value,
            "role": role,
            "password": PASSWORD,
            "site_ids": [s.id for s in (sites_ or [])],
        } | overrides
        user = users.create_user(session=db, actor=SYSTEM, data=UserCreate(**data))
        db.commit()
        return user

    return make


@dataclass(frozen=True)
class TotpEnrolment:
    secret: str
    recovery_codes: list[str]

    def code(self, moment: dt.datetime | None = None) -> str:
        return totp.code_at(self.secret, moment or utcnow())


@pytest.fixture
def enrol_totp(db: Session, settings: Settings) -> Callable[[User], TotpEnrolment]:
    """Turn TOTP on for a user, through the account's own enrolment (start, then confirm with a
    code); the step the confirmation used is forgotten again, so the test may sign in with the
    current code."""

    def enrol(user: User) -> TotpEnrolment:
        db.commit()  # read afresh: requests may have changed the user since
        db.expire_all()
        actor = Actor(user_id=user.id, role=user.role)
        second_factor.start_enrolment(session=db, settings=settings, actor=actor)
        secret = unseal(settings.secret_key, db.get(User, user.id).totp_secret_sealed)  # type: ignore[union-attr,arg-type]
        codes = second_factor.confirm_enrolment(
            session=db, settings=settings, actor=actor, code=totp.code_at(secret, utcnow())
        )
        db.commit()
        db.exec(update(User).where(col(User.id) == user.id).values(totp_last_step=None))
        db.commit()
        db.expire_all()
        return TotpEnrolment(secret=secret, recovery_codes=codes)

    return enrol


@pytest.fixture
def login(client: TestClient) -> Callable[..., dict[str, str]]:
    def do(user: User, password: str = PASSWORD) -> dict[str, str]:
        response = client.post(
            "/api/v1/auth/token", data={"username": user.username, "password": password}
        )
        assert response.status_code == 200, response.text
        client.cookies.clear()  # tests speak bearer unless they test cookies
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    return do


@pytest.fixture
def headers_for(
    make_user: Callable[..., User], login: Callable[..., dict[str, str]], site: Site
) -> Callable[..., dict[str, str]]:
    """Bearer headers for a new user of `role` at `site` (or the given sites)."""

    def make(role: Role | str, sites_: list[Site] | None = None) -> dict[str, str]:
        return login(make_user(role, sites_ if sites_ is not None else [site]))

    return make


@pytest.fixture
def make_household(db: Session, site: Site) -> Callable[..., Household]:
    def make(building: str = "1", unit: str | None = None, site_: Site | None = None) -> Household:
        data = HouseholdCreate(
            site_id=(site_ or site).id,
            building=building,
            unit=unit or str(uuid.uuid4().int % 9000 + 1000),
        )
        household = sites.create_household(session=db, actor=SYSTEM, data=data)
        db.commit()
        return household

    return make


@pytest.fixture
def make_resident(db: Session, make_household: Callable[..., Household]) -> Callable[..., Resident]:
    def make(household: Household | None = None, **overrides: Any) -> Resident:
        household = household or make_household()
        data = {
            "household_id": household.id,
            "full_name": "Wang Jianguo",
            "preferred_name": "Mr. Wang",
            "languages": ["zh-CN"],
            "approach": "Talk about his grandson.",
            "medical_notes": "Alzheimer's disease",
        } | overrides
        resident = residents.create_resident(session=db, actor=SYSTEM, data=ResidentCreate(**data))
        db.commit()
        return resident

    return make


ALL_SCOPES = [
    "registry",
    "lost_person_response",
    "welfare_visits",
    "photo",
    "share_with_responders",
]


@pytest.fixture
def make_consent(db: Session) -> Callable[..., Consent]:
    """Record a consent (all scopes unless told otherwise) given by the resident."""

    def make(resident: Resident, scopes: list[str] | None = None, **overrides: Any) -> Consent:
        data = {
            "given_by_kind": "resident",
            "given_by_name": "the resident",
            "method": "written",
            "scopes": scopes or ALL_SCOPES,
        } | overrides
        consent = consents.record_consent(
            session=db, actor=SYSTEM, resident_id=resident.id, data=ConsentCreate(**data)
        )
        db.commit()
        return consent

    return make


@pytest.fixture
def make_contact(db: Session) -> Callable[..., Contact]:
    def make(resident: Resident, **overrides: Any) -> Contact:
        data = {
            "name": "Wang Lei",
            "relationship": "son",
            "phone": "9123 4567",
            "language": "zh-CN",
        } | overrides
        contact = residents.create_contact(
            session=db, actor=SYSTEM, resident_id=resident.id, data=ContactCreate(**data)
        )
        db.commit()
        return contact

    return make


CSRF_FIELD_PATTERN = re.compile(r'name="csrf_token" value="([^"]+)"')


def form_csrf(html: str) -> str:
    """The CSRF token a page put in its forms."""
    found = CSRF_FIELD_PATTERN.search(html)
    assert found, "page has no CSRF field"
    return found.group(1)


@pytest.fixture
def page_login(client: TestClient) -> Callable[..., str]:
    """Sign in through the sign-in page, as a browser does; returns the form CSRF token."""

    def do(user: User, password: str = PASSWORD) -> str:
        client.cookies.clear()
        login_page = client.get("/login")
        response = client.post(
            "/login",
            data={
                "username": user.username,
                "password": password,
                "csrf_token": form_csrf(login_page.text),
            },
            follow_redirects=False,
        )
        assert response.status_code == 303, response.text
        account = client.get("/account")
        assert account.status_code == 200, account.text
        return form_csrf(account.text)

    return do


@pytest.fixture
def oidc_provider() -> Iterator[Any]:
    """A local OpenID Connect provider (tests/oidc_provider.py), fresh per test."""
    from tests.oidc_provider import running_provider
    from welfare.identity.oidc import forget_cached_metadata

    forget_cached_metadata()
    with running_provider() as provider:
        yield provider
    forget_cached_metadata()


@pytest.fixture
def make_identity_provider(db: Session, settings: Settings, site: Site) -> Callable[..., Any]:
    """Configure `provider` (a LocalOidcProvider) as a company sign-in for `site` (or sites_)."""
    from welfare.identity import service as identity
    from welfare.identity.models import IdentityProviderCreate

    def make(provider: Any, sites_: list[Site] | None = None, **overrides: Any) -> Any:
        data = {
            "display_name": "Sign in with Acme",
            "issuer": provider.issuer,
            "client_id": provider.client_id,
            "client_secret": provider.client_secret,
            "site_ids": [s.id for s in (sites_ or [site])],
        } | overrides
        configured = identity.create_provider(
            session=db, settings=settings, actor=SYSTEM, data=IdentityProviderCreate(**data)
        )
        db.commit()
        return configured

    return make
