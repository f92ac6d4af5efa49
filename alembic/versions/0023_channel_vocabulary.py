"""one channel vocabulary: outbox rows and timeline events say 'voice' for a call, as contacts and
escalation policies always did

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03 06:45:00.000000

Contacts and policies named a call 'voice'; outbox rows and the timeline named it 'call'. One
word now runs through all of them (welfare/channels.py), so a channel added later (WhatsApp,
push) is one new word, not two.
"""

from collections.abc import Sequence

from alembic import op


revision: str = '0023'
down_revision: str | None = '0022'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rename(old: str, new: str) -> None:
    op.execute(f"UPDATE outbox_message SET kind = '{new}' WHERE kind = '{old}'")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE incident_event SET detail ="
            f" jsonb_set(detail::jsonb, '{{channel}}', '\"{new}\"')::json"
            f" WHERE detail->>'channel' = '{old}'"
        )
    else:
        op.execute(
            f"UPDATE incident_event SET detail = json_set(detail, '$.channel', '{new}')"
            f" WHERE json_extract(detail, '$.channel') = '{old}'"
        )


def upgrade() -> None:
    _rename("call", "voice")


def downgrade() -> None:
    _rename("voice", "call")
