"""The Alembic migrations build exactly the schema the SQLModel tables describe, both ways."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, insert, inspect, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from alembic import command
from tests.conftest import POSTGRES_URL
from welfare.db import (
    alembic_config,
    current_revision,
    head_revision,
    make_engine,
    normalise_url,
    upgrade_database,
    utcnow,
)
from welfare.incidents.models import Incident, IncidentEvent
from welfare.lookup.index import is_index_object
from welfare.models import metadata
from welfare.outbox.models import OutboxMessage
from welfare.residents.models import Resident
from welfare.sites.models import Site

TABLES = {t.name for t in metadata.sorted_tables}


def differences(engine: Engine) -> list:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                # As alembic/env.py: the lookup's FTS5 table and trigram indexes are hand-made.
                "include_object": lambda obj, name, type_, *_: not is_index_object(name, type_),
            },
        )
        return compare_metadata(context, metadata)


def table_names(engine: Engine) -> set[str]:
    names = set(inspect(engine).get_table_names()) - {"alembic_version"}
    return {n for n in names if not is_index_object(n, "table")}


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
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables yet: a new SQLite file, or a scratch PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    assert POSTGRES_URL
    schema = f"migration_test_{uuid.uuid4().hex[:8]}"
    base = normalise_url(POSTGRES_URL)
    admin = make_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert table_names(engine) == TABLES
        assert differences(engine) == []
        assert current_revision(engine) == head_revision(database_url)
    finally:
        engine.dispose()


def test_alembic_check_finds_nothing_to_generate(database_url: str) -> None:
    """`alembic check` runs autogenerate through alembic/env.py: no pending schema change."""
    command.check(alembic_config(database_url))


def test_autogenerate_writes_utc_datetime_as_a_plain_timezone_aware_datetime(
    tmp_path: Path,
) -> None:
    """A new migration must not import app code: UTCDateTime is written as what it stores."""
    versions = tmp_path / "versions"
    versions.mkdir()
    config = alembic_config(f"sqlite:///{tmp_path / 'empty.db'}")
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(versions))
    command.revision(config, message="probe", autogenerate=True, rev_id="probe")
    [script] = versions.glob("*.py")
    code = script.read_text()
    assert "sa.Column('at', sa.DateTime(timezone=True), nullable=False)" in code
    assert "UTCDateTime" not in code
    assert "welfare." not in code and "import welfare" not in code  # no app imports
    compile(code, str(script), "exec")


def test_migrations_go_down_to_base_and_up_to_head_again(empty_database_url: str) -> None:
    url = empty_database_url
    upgrade_database(url)
    engine = make_engine(url)
    try:
        assert table_names(engine) == TABLES
        assert current_revision(engine) == head_revision(url)
        assert differences(engine) == []

        command.downgrade(alembic_config(url), "base")
        assert table_names(engine) == set()
        assert current_revision(engine) is None

        upgrade_database(url)
        assert table_names(engine) == TABLES
        assert current_revision(engine) == head_revision(url)
        assert differences(engine) == []
    finally:
        engine.dispose()


def test_every_revision_steps_down_and_up_one_at_a_time(empty_database_url: str) -> None:
    from alembic.script import ScriptDirectory

    url = empty_database_url
    config = alembic_config(url)
    revisions = [r.revision for r in ScriptDirectory.from_config(config).walk_revisions()]
    upgrade_database(url)
    for _ in revisions:
        command.downgrade(config, "-1")
    engine = make_engine(url)
    try:
        assert table_names(engine) == set()
        for expected in reversed(revisions):
            command.upgrade(config, "+1")
            assert current_revision(engine) == expected
        assert differences(engine) == []
    finally:
        engine.dispose()


def test_scratch_postgres_schema_is_really_separate(empty_database_url: str) -> None:
    """Guards the fixture above: migrating the scratch schema leaves the shared one alone."""
    engine = make_engine(empty_database_url)
    try:
        assert table_names(engine) == set()
    finally:
        engine.dispose()


def test_0016_keeps_the_oldest_running_incident_and_cancels_the_duplicates(
    database_url: str,
    db: Session,
    site: Site,
    make_resident: Callable[..., Resident],
) -> None:
    """A database that the old race left with several running incidents for one resident."""
    resident = make_resident()
    config = alembic_config(database_url)
    db.commit()
    db.close()
    command.downgrade(config, "0015")
    try:
        start = utcnow()
        made = [
            Incident(
                reference=f"DUP{n}",
                site_id=site.id,
                resident_id=resident.id,
                kind="found",
                status=status,
                opened_at=start + dt.timedelta(seconds=n),
            )
            for n, status in enumerate(("notifying", "notifying", "confirmed", "resolved"))
        ]
        # Only the columns 0015 has: the model's later ones (public_finder, 0024_finder) are not.
        columns = (
            "id",
            "reference",
            "site_id",
            "resident_id",
            "kind",
            "status",
            "condition",
            "escalation",
            "opened_at",
            "updated_at",
        )
        db.execute(
            insert(Incident.__table__),  # type: ignore[arg-type]
            [{name: getattr(incident, name) for name in columns} for incident in made],
        )
        unsent = OutboxMessage(
            idempotency_key=f"{made[1].id}:0:x:sms",
            incident_id=made[1].id,
            kind="sms",
            to_phone="+85291234567",
            language="en",
            template="found_alert",
            next_attempt_at=start,
        )
        # The row's columns as 0015 has them (`provider` came with 0024).
        row_columns = [c.name for c in OutboxMessage.__table__.columns if c.name != "provider"]  # type: ignore[attr-defined]
        db.execute(
            insert(OutboxMessage.__table__),  # type: ignore[arg-type]
            [{name: getattr(unsent, name) for name in row_columns}],
        )
        db.commit()
    finally:
        db.close()
        command.upgrade(config, "head")

    status = {i.reference: i.status.value for i in db.exec(select(Incident)).all()}
    assert status == {
        "DUP0": "notifying",
        "DUP1": "cancelled",
        "DUP2": "cancelled",
        "DUP3": "resolved",
    }
    assert db.get(OutboxMessage, unsent.id).status.value == "cancelled"  # type: ignore[union-attr]
    [event] = db.exec(select(IncidentEvent).where(IncidentEvent.incident_id == made[1].id)).all()
    assert event.type == "cancelled"
    assert event.detail == {
        "reason": "duplicate running incident",
        "kept_incident_id": str(made[0].id),
    }


def test_0023_names_calls_voice_in_outbox_rows_and_timeline_events_and_back(
    database_url: str,
    db: Session,
    site: Site,
    make_resident: Callable[..., Resident],
) -> None:
    """One channel word: 0023 turns the old 'call' into 'voice', and its downgrade turns it back."""
    resident = make_resident()
    incident = Incident(reference="VOC1", site_id=site.id, resident_id=resident.id, kind="found")
    db.add(incident)
    db.flush()
    call = OutboxMessage(
        idempotency_key=f"{incident.id}:0:x:voice",
        incident_id=incident.id,
        kind="voice",
        to_phone="+85291234567",
        template="found_alert",
    )
    db.add(call)
    db.add(
        IncidentEvent(
            incident_id=incident.id, type="sent", actor="system", detail={"channel": "voice"}
        )
    )
    db.add(
        IncidentEvent(
            incident_id=incident.id, type="sent", actor="system", detail={"channel": "sms"}
        )
    )
    db.commit()
    db.close()

    def stored() -> tuple[str, list[str]]:
        with db.get_bind().connect() as connection:
            kind = connection.execute(text("SELECT kind FROM outbox_message")).scalar_one()
            details = connection.execute(text("SELECT detail FROM incident_event")).scalars()
            channels = sorted(
                (d if isinstance(d, dict) else json.loads(d))["channel"] for d in details
            )
        return kind, channels

    config = alembic_config(database_url)
    command.downgrade(config, "0022")
    try:
        assert stored() == ("call", ["call", "sms"])
    finally:
        command.upgrade(config, "head")
    assert stored() == ("voice", ["sms", "voice"])
