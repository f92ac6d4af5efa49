"""Alembic environment: the URL comes from the caller's config or WELFARE_DATABASE_URL."""

from __future__ import annotations

from alembic import context
from welfare.db import make_engine, normalise_url
from welfare.models import metadata
from welfare.settings import Settings

config = context.config


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or normalise_url(Settings().database_url)


def run_migrations_offline() -> None:
    context.configure(
        url=_url(), target_metadata=metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url())
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
