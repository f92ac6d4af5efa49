"""Alembic environment: the URL comes from the caller's config or WELFARE_DATABASE_URL."""

from __future__ import annotations

from typing import Any

from sqlmodel.sql.sqltypes import AutoString

from alembic import context
from welfare.db import UTCDateTime, make_engine, normalise_url
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


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
        render_item=_render_item,
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
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
