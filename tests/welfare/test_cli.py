"""The `welfare` command line, and the demo and benchmark seeding behind it. No server starts."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, select

from welfare import cli, demo_address
from welfare import settings as settings_module
from welfare.audit.models import AuditEntry
from welfare.audit.service import verify_chain
from welfare.demo import DEMO_SITE_NAME, DEMO_USERS, seed_demo
from welfare.residents.models import Contact, Resident
from welfare.seed import BENCH_SITE_NAME, seed_residents
from welfare.settings import DEFAULT_SECRET_KEY
from welfare.sites.models import Household, Site
from welfare.users.models import User, UserSite
from welfare.users.service import password_hasher

SECRET = "cli-test-secret-key-that-is-long-enough-0123456789"
NEW_PASSWORD = "a long cli password"

Invoke = Callable[..., Result]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "cli.db"


@pytest.fixture
def invoke(db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    for name in list(os.environ):
        if name.startswith("WELFARE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("WELFARE_DATABASE_URL", f"sqlite:///{db_path}")
    monkeypatch.setenv("WELFARE_SECRET_KEY", SECRET)
    monkeypatch.chdir(tmp_path)  # no developer .env
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Result:
        settings_module.get_settings.cache_clear()  # the CLI caches settings per process
        return runner.invoke(cli.main, list(args), input=input)

    yield run
    settings_module.get_settings.cache_clear()


@pytest.fixture
def migrated(invoke: Invoke) -> Invoke:
    result = invoke("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "database at head" in result.output
    return invoke


def query(db_path: Path, sql: str, *params: object) -> list[tuple]:
    connection = sqlite3.connect(db_path)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def add_site(db_path: Path, name: str) -> str:
    from welfare.authz import Actor
    from welfare.db import make_engine, make_sessionmaker, session_scope
    from welfare.sites import service as sites
    from welfare.sites.models import SiteCreate

    engine = make_engine(f"sqlite:///{db_path}")
    with session_scope(make_sessionmaker(engine)) as session:
        site = sites.create_site(
            session=session,
            actor=Actor.system(),
            data=SiteCreate(name=name, timezone="Asia/Hong_Kong", phone_region="HK"),
        )
        site_id = str(site.id)
    engine.dispose()
    return site_id


# --- db upgrade ---------------------------------------------------------------------------------


def test_db_upgrade_creates_the_schema_and_is_repeatable(invoke: Invoke, db_path: Path) -> None:
    assert invoke("db", "upgrade").exit_code == 0
    tables = {row[0] for row in query(db_path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"user_account", "auth_session", "audit_entry", "resident", "alembic_version"} <= tables
    again = invoke("db", "upgrade")
    assert again.exit_code == 0, again.output


# --- user add -----------------------------------------------------------------------------------


def test_user_add_reads_the_password_from_stdin(migrated: Invoke, db_path: Path) -> None:
    site_id = add_site(db_path, "Harbour View Gardens")
    result = migrated(
        "user", "add", "Joyce", "--role", "staff", "--site", "Harbour View Gardens",
        input=NEW_PASSWORD + "\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.startswith("added joyce (staff) id ")
    assert NEW_PASSWORD not in result.output
    [(user_id, role, password_hash, display)] = query(
        db_path, "SELECT id, role, password_hash, display_name FROM user_account"
    )
    assert role == "staff"
    assert display == "Joyce"
    assert password_hasher.verify(NEW_PASSWORD, password_hash)
    assert query(db_path, "SELECT site_id FROM user_site WHERE user_id = ?", user_id) == [
        (site_id.replace("-", ""),)
    ]


def test_user_add_accepts_a_site_id_and_several_sites(migrated: Invoke, db_path: Path) -> None:
    first = add_site(db_path, "First")
    add_site(db_path, "Second")
    result = migrated(
        "user", "add", "ada", "--role", "admin", "--site", first, "--site", "Second",
        "--display-name", "Ada Admin", input=NEW_PASSWORD + "\r\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [(password_hash, display)] = query(
        db_path, "SELECT password_hash, display_name FROM user_account"
    )
    assert display == "Ada Admin"
    assert password_hasher.verify(NEW_PASSWORD, password_hash)  # the CR is not part of it
    assert query(db_path, "SELECT count(*) FROM user_site") == [(2,)]


def test_user_add_with_an_unknown_site_fails_and_adds_nobody(
    migrated: Invoke, db_path: Path
) -> None:
    result = migrated(
        "user", "add", "joyce", "--role", "staff", "--site", "Nowhere", input=NEW_PASSWORD + "\n"
    )
    assert result.exit_code == 1
    assert "no site 'Nowhere' (give its name or id)" in result.output
    assert query(db_path, "SELECT count(*) FROM user_account") == [(0,)]


def test_user_add_refuses_a_short_password_without_echoing_it(
    migrated: Invoke, db_path: Path
) -> None:
    result = migrated("user", "add", "joyce", "--role", "staff", input="tiny-pw\n")
    assert result.exit_code == 1
    assert "password" in result.output
    assert "tiny-pw" not in result.output
    assert query(db_path, "SELECT count(*) FROM user_account") == [(0,)]


def test_user_add_refuses_a_taken_username(migrated: Invoke, db_path: Path) -> None:
    assert migrated("user", "add", "joyce", "--role", "staff", input=NEW_PASSWORD).exit_code == 0
    result = migrated("user", "add", "JOYCE", "--role", "guard", input=NEW_PASSWORD + "\n")
    assert result.exit_code == 1
    assert "username 'joyce' is taken" in result.output


def test_user_add_refuses_an_unknown_role(migrated: Invoke) -> None:
    result = migrated("user", "add", "joyce", "--role", "root", input=NEW_PASSWORD + "\n")
    assert result.exit_code == 2
    assert "Invalid value for '--role'" in result.output


# --- seed ---------------------------------------------------------------------------------------


def test_seed_inserts_residents_in_bulk_and_twice_gives_double(
    migrated: Invoke, db_path: Path
) -> None:
    first = migrated("seed", "--residents", "2000")
    assert first.exit_code == 0, first.output
    assert first.output.startswith(f"seeded 2000 residents into {BENCH_SITE_NAME!r}")
    assert query(db_path, "SELECT count(*) FROM resident") == [(2000,)]
    second = migrated("seed", "--residents", "2000")
    assert second.exit_code == 0, second.output
    assert query(db_path, "SELECT count(*) FROM resident") == [(4000,)]
    assert query(db_path, "SELECT count(*) FROM household") == [(4000,)]
    assert query(db_path, "SELECT count(*) FROM contact") == [(4000,)]
    assert query(db_path, "SELECT count(*) FROM site") == [(1,)]
    # Bulk: one summary audit entry per run, not one per resident.
    assert query(db_path, "SELECT action, count(*) FROM audit_entry GROUP BY action") == [
        ("seed.residents", 2)
    ]
    units = query(db_path, "SELECT building || '-' || unit FROM household")
    assert len(set(units)) == 4000
    assert migrated("audit", "verify").exit_code == 0


def test_seed_refuses_a_count_below_one(migrated: Invoke) -> None:
    result = migrated("seed", "--residents", "0")
    assert result.exit_code == 2


def test_seed_residents_resumes_after_a_partial_building(db: Session) -> None:
    seed_residents(db, 450)
    seed_residents(db, 450)
    db.commit()
    site = db.exec(select(Site).where(Site.name == BENCH_SITE_NAME)).one()
    count = db.exec(select(func.count()).select_from(Resident).where(Resident.site_id == site.id))
    assert count.one() == 900
    buildings = db.exec(select(Household.building).where(Household.site_id == site.id)).all()
    assert sorted(set(buildings), key=int) == ["1", "2", "3", "4"]
    assert verify_chain(db).ok
    db.rollback()


# --- audit verify -------------------------------------------------------------------------------


def test_audit_verify_exits_0_on_an_intact_chain_and_1_naming_a_tampered_entry(
    migrated: Invoke, db_path: Path
) -> None:
    for name in ("joyce", "peter", "ada"):
        result = migrated("user", "add", name, "--role", "staff", input=NEW_PASSWORD + "\n")
        assert result.exit_code == 0, result.output
    intact = migrated("audit", "verify")
    assert intact.exit_code == 0, intact.output
    assert intact.output == "audit chain intact: 3 entries\n"
    [(second_id,)] = query(db_path, "SELECT id FROM audit_entry ORDER BY id LIMIT 1 OFFSET 1")
    connection = sqlite3.connect(db_path)
    connection.execute("UPDATE audit_entry SET action = 'user.read' WHERE id = ?", (second_id,))
    connection.commit()
    connection.close()
    broken = migrated("audit", "verify")
    assert broken.exit_code == 1
    assert broken.stdout == ""
    assert broken.stderr == (
        f"audit chain BROKEN at entry {second_id}: contents do not match the stored hash "
        "(1 entries before it are intact)\n"
    )


def test_audit_verify_names_the_entry_after_a_deleted_one(migrated: Invoke, db_path: Path) -> None:
    for name in ("joyce", "peter", "ada"):
        assert migrated("user", "add", name, "--role", "guard", input=NEW_PASSWORD).exit_code == 0
    ids = [row[0] for row in query(db_path, "SELECT id FROM audit_entry ORDER BY id")]
    connection = sqlite3.connect(db_path)
    connection.execute("DELETE FROM audit_entry WHERE id = ?", (ids[1],))
    connection.commit()
    connection.close()
    result = migrated("audit", "verify")
    assert result.exit_code == 1
    assert f"BROKEN at entry {ids[2]}: prev_hash does not match" in result.stderr


def test_audit_anchor_appends_a_signed_head_and_verify_checks_the_chain_still_holds_it(
    migrated: Invoke, db_path: Path, tmp_path: Path
) -> None:
    anchors = tmp_path / "offsite" / "audit-anchors.log"
    anchors.parent.mkdir()
    for name in ("joyce", "peter"):
        assert migrated("user", "add", name, "--role", "staff", input=NEW_PASSWORD).exit_code == 0
    first = migrated("audit", "anchor", "--append", str(anchors))
    assert first.exit_code == 0, first.output
    assert migrated("user", "add", "ada", "--role", "staff", input=NEW_PASSWORD).exit_code == 0
    second = migrated("audit", "anchor", "--append", str(anchors))
    assert second.exit_code == 0, second.output
    lines = anchors.read_text().splitlines()
    assert lines == [first.output.strip(), second.output.strip()]
    head = json.loads(lines[1])
    newest = "SELECT id, hash FROM audit_entry ORDER BY id DESC LIMIT 1"
    [(last_id, last_hash)] = query(db_path, newest)
    assert (head["count"], head["last_id"], head["last_hash"]) == (3, last_id, last_hash)
    assert "joyce" not in anchors.read_text()

    intact = migrated("audit", "verify", "--anchor", str(anchors))
    assert intact.exit_code == 0, intact.output
    assert intact.output == (
        "audit chain intact: 3 entries, holding all 2 anchored heads; "
        "no entries newer than the last anchor\n"
    )

    # Cut the newest entry: the chain alone still verifies, the anchor does not.
    connection = sqlite3.connect(db_path)
    connection.execute("DELETE FROM audit_entry WHERE id = ?", (last_id,))
    connection.commit()
    connection.close()
    assert migrated("audit", "verify").exit_code == 0
    cut = migrated("audit", "verify", "--anchor", str(anchors))
    assert cut.exit_code == 1
    assert cut.stdout == ""
    assert cut.stderr == (
        f"audit anchor FAILED: {anchors}:2: entry {last_id} (anchored {head['at']}) is gone: "
        "the chain was cut to 2 entries\n"
    )


def test_audit_verify_with_anchors_says_how_many_entries_are_newer_than_the_last(
    migrated: Invoke, tmp_path: Path
) -> None:
    anchors = tmp_path / "audit-anchors.log"
    assert migrated("user", "add", "joyce", "--role", "staff", input=NEW_PASSWORD).exit_code == 0
    assert migrated("audit", "anchor", "--append", str(anchors)).exit_code == 0
    assert migrated("user", "add", "peter", "--role", "staff", input=NEW_PASSWORD).exit_code == 0
    one = migrated("audit", "verify", "--anchor", str(anchors))
    assert one.exit_code == 0, one.output
    assert one.output == (
        "audit chain intact: 2 entries, holding all 1 anchored heads; "
        "1 entry newer than the last anchor (not protected by an anchor yet)\n"
    )
    assert migrated("user", "add", "ada", "--role", "staff", input=NEW_PASSWORD).exit_code == 0
    two = migrated("audit", "verify", "--anchor", str(anchors))
    assert "; 2 entries newer than the last anchor (not protected" in two.output


def test_audit_anchor_refuses_the_demo_secret(
    migrated: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WELFARE_SECRET_KEY", DEFAULT_SECRET_KEY)
    result = migrated("audit", "anchor")
    assert result.exit_code == 1
    assert "WELFARE_SECRET_KEY" in result.output


# --- serve refuses unsafe settings without starting anything ------------------------------------


def test_serve_refuses_the_default_secret(
    migrated: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    def no_server(*args: object, **kwargs: object) -> None:
        raise AssertionError("a server was started")

    monkeypatch.setattr(uvicorn, "run", no_server)
    monkeypatch.setenv("WELFARE_SECRET_KEY", DEFAULT_SECRET_KEY)
    result = migrated("serve")
    assert result.exit_code == 1
    assert "WELFARE_SECRET_KEY" in result.output


# --- demo: the address its links carry -----------------------------------------------------------


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Catches what `welfare demo` would serve instead of starting a server."""
    import uvicorn

    caught: dict[str, Any] = {}

    def catch(app: Any, **kwargs: Any) -> None:
        caught.update(app=app, **kwargs)

    monkeypatch.setattr(uvicorn, "run", catch)
    return caught


def tag_url_issued_by(app: Any) -> str:
    """A demo resident's tag URL as the staff console gets it from the API."""
    client = TestClient(app, base_url="http://demo.test")  # no lifespan: no worker thread
    token = client.post(
        "/api/v1/auth/token", data={"username": "staff", "password": "staff-demo-1609"}
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    resident = client.get("/api/v1/residents", headers=headers).json()["items"][0]
    return client.get(f"/api/v1/residents/{resident['id']}/tag", headers=headers).json()["url"]


def test_demo_on_another_port_issues_its_links_on_that_port(
    invoke: Invoke, served: dict[str, Any]
) -> None:
    result = invoke("demo", "--port", "8642")

    assert result.exit_code == 0, result.output
    assert "open:         http://127.0.0.1:8642/" in result.output
    assert "http://127.0.0.1:8642/guard" in result.output
    assert (served["host"], served["port"]) == ("127.0.0.1", 8642)
    app = served["app"]
    assert app.state.settings.public_base_url == "http://127.0.0.1:8642"
    assert tag_url_issued_by(app).startswith("http://127.0.0.1:8642/t/")
    app.state.engine.dispose()
    app.state.read_engine.dispose()


def test_demo_on_every_interface_prints_the_lan_address_and_a_qr_code(
    invoke: Invoke, served: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo_address, "lan_address", lambda: "192.168.1.20")
    result = invoke("demo", "--host", "0.0.0.0", "--port", "8642")

    assert result.exit_code == 0, result.output
    assert "open:         http://192.168.1.20:8642/" in result.output
    assert "guard app:    http://192.168.1.20:8642/guard" in result.output
    assert "scan with a phone" in result.output and "█" in result.output
    assert served["host"] == "0.0.0.0"  # listens everywhere, links to the LAN address
    assert served["app"].state.settings.public_base_url == "http://192.168.1.20:8642"
    served["app"].state.engine.dispose()
    served["app"].state.read_engine.dispose()


def test_demo_keeps_a_configured_public_base_url(
    invoke: Invoke, served: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WELFARE_PUBLIC_BASE_URL", "https://demo.example/")
    result = invoke("demo", "--port", "8642")

    assert result.exit_code == 0, result.output
    assert "open:         https://demo.example/" in result.output
    assert "127.0.0.1:8642" not in result.output
    assert served["app"].state.settings.public_base_url == "https://demo.example"
    served["app"].state.engine.dispose()
    served["app"].state.read_engine.dispose()


# --- the demo data ------------------------------------------------------------------------------


def _counts(session: Session) -> dict[str, int]:
    return {
        model.__name__: session.exec(select(func.count()).select_from(model)).one()
        for model in (Site, Household, Resident, Contact, User, UserSite, AuditEntry)
    }


def test_demo_seed_creates_the_briefs_residents_once(db: Session) -> None:
    site, created = seed_demo(db)
    db.commit()
    assert created is True
    assert site.name == DEMO_SITE_NAME

    wang, wang_home = db.exec(
        select(Resident, Household)
        .join(Household, Household.id == Resident.household_id)
        .where(Resident.preferred_name == "Mr. Wang")
    ).one()
    assert wang_home.unit_label == "1-1609"
    assert wang.site_id == site.id
    assert wang.languages == ["zh-CN"]
    wang_contacts = db.exec(
        select(Contact).where(Contact.resident_id == wang.id).order_by(Contact.priority)
    ).all()
    assert [(c.relationship, c.priority) for c in wang_contacts] == [("son", 1), ("daughter", 2)]
    assert [c.phone for c in wang_contacts] == ["+85291234567", "+85261234567"]
    assert all(c.language == "zh-CN" for c in wang_contacts)

    park, park_home = db.exec(
        select(Resident, Household)
        .join(Household, Household.id == Resident.household_id)
        .where(Resident.preferred_name == "Mrs. Park")
    ).one()
    assert park_home.unit_label == "A-14"
    assert park.languages == ["ko-KR"]
    park_contacts = db.exec(select(Contact).where(Contact.resident_id == park.id)).all()
    assert {c.language for c in park_contacts} == {"ko-KR"}

    usernames = set(db.exec(select(User.username)).all())
    assert usernames == {u.username for u in DEMO_USERS}
    assert verify_chain(db).ok

    before = _counts(db)
    again, created_again = seed_demo(db)
    db.commit()
    assert created_again is False
    assert again.id == site.id
    assert _counts(db) == before
    db.rollback()


def test_demo_users_can_sign_in_with_the_printed_passwords(db: Session) -> None:
    seed_demo(db)
    db.commit()
    for demo_user in DEMO_USERS:
        stored = db.exec(select(User).where(User.username == demo_user.username)).one()
        assert stored.role == demo_user.role
        assert password_hasher.verify(demo_user.password, stored.password_hash)
    db.rollback()
