"""Alembic environment: the URL comes from the caller's config or WELFARE_DATABASE_URL."""

from __future__ import annotations

from typing import Any

from sqlmodel.sql.sqltypes import AutoString

from alembic import context
from welfare.db import UTCDateTime, make_engine, normalise_url
from welfare.lookup.index import is_index_object
from welfare.models import metadata
from welfare.settings import Settings

config = context.config


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or normalise_url(Settings().database_url)


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Write UTCDateTime (and SQLModel's AutoString) into new migrations as the plain column
    types they store.

    The decorator only converts values in Python; the database column is a plain
    `DateTime(timezone=True)`. Rendered as itself, a migration would import `welfare.db` and break
    whenever that module changes; comparison already looks through to the same impl, so
    autogenerate reports no difference between the two.
    """
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, AutoString):  # SQLModel's str: a plain VARCHAR
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    return False


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, other: Any) -> bool:
    """Leave the lookup's text indexes out of autogenerate's comparison.

    Migration 0004 makes them by hand, per database, because SQLModel metadata cannot describe
    them: SQLite's FTS5 virtual table `lookup_fts` (and the shadow tables FTS5 creates for it) and
    PostgreSQL's GIN trigram indexes. Without this, every `alembic check` would offer to drop them.
    """
    return not is_index_object(name, type_)


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
        render_item=_render_item,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url())
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=True,
            render_item=_render_item,
            include_object=include_object,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
