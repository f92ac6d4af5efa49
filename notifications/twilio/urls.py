"""Where Twilio calls back about an outbox row: every URL is under `WELFARE_PUBLIC_BASE_URL`,
which is also what the webhooks check Twilio's signatures against."""

from __future__ import annotations

import uuid

from welfare.settings import Settings

PREFIX = "/webhooks/twilio"


def webhook_url(settings: Settings, path: str, message_id: uuid.UUID) -> str:
    return f"{settings.public_base_url}{PREFIX}/{path}?message_id={message_id}"
