"""incident: one running (open / notifying / confirmed) incident per resident

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 08:40:00.000000

`open_incident` looked for a running incident with a plain SELECT and then inserted: on
PostgreSQL, guards reporting the same resident at once opened one incident each, and the family
got one escalation per incident. A partial unique index makes the database refuse the second
running incident; the service reuses the first on that conflict.

Databases that already hold several running incidents for one resident keep the oldest; the
others are cancelled (their unsent messages with them) and say so on their timelines.
"""

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUNNING = "status IN ('open', 'notifying', 'confirmed') AND resident_id IS NOT NULL"


incident = sa.table(
    "incident",
    sa.column("id", sa.Uuid()),
    sa.column("resident_id", sa.Uuid()),
    sa.column("status", sa.String()),
    sa.column("opened_at", sa.DateTime(timezone=True)),
    sa.column("next_step_at", sa.DateTime(timezone=True)),
    sa.column("closed_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
outbox_message = sa.table(
    "outbox_message",
    sa.column("incident_id", sa.Uuid()),
    sa.column("status", sa.String()),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
incident_event = sa.table(
    "incident_event",
    sa.column("incident_id", sa.Uuid()),
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("type", sa.String()),
    sa.column("actor", sa.String()),
    sa.column("detail", sa.JSON()),
)


def _cancel_duplicates() -> None:
    bind = op.get_bind()
    now = dt.datetime.now(dt.UTC)
    if bind.dialect.name == "sqlite":  # stored as naive UTC there (welfare.db.UTCDateTime)
        now = now.replace(tzinfo=None)
    running = bind.execute(
        sa.select(incident.c.id, incident.c.resident_id)
        .where(sa.text(RUNNING))
        .order_by(incident.c.resident_id, incident.c.opened_at, incident.c.id)
    ).all()
    kept: dict[object, object] = {}
    for incident_id, resident_id in running:
        if resident_id not in kept:
            kept[resident_id] = incident_id
            continue
        bind.execute(
            incident.update()
            .where(incident.c.id == incident_id)
            .values(status="cancelled", next_step_at=None, closed_at=now, updated_at=now)
        )
        bind.execute(
            outbox_message.update()
            .where(
                outbox_message.c.incident_id == incident_id,
                outbox_message.c.status.in_(("pending", "claimed")),
            )
            .values(status="cancelled", updated_at=now)
        )
        bind.execute(
            incident_event.insert().values(
                incident_id=incident_id,
                at=now,
                type="cancelled",
                actor="system",
                detail={
                    "reason": "duplicate running incident",
                    "kept_incident_id": str(kept[resident_id]),
                },
            )
        )


def upgrade() -> None:
    _cancel_duplicates()
    op.create_index(
        "uq_incident_running_resident",
        "incident",
        ["resident_id"],
        unique=True,
        sqlite_where=sa.text(RUNNING),
        postgresql_where=sa.text(RUNNING),
    )


def downgrade() -> None:
    op.drop_index("uq_incident_running_resident", table_name="incident")
