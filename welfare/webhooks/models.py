"""Receipts of provider callbacks, so a repeated webhook changes nothing the second time."""

from __future__ import annotations

import datetime as dt

from sqlmodel import Field, SQLModel

from welfare.db import UTCDateTime, utcnow


class WebhookReceipt(SQLModel, table=True):
    """One row per callback already acted on.

    `key` names the callback by provider ids only (never a phone number or a text), e.g.
    `status:SM...:delivered`, `gather:CA...:1:1`, `inbound:SM...`. Inserted in the same
    transaction as the callback's effects: a failed callback leaves no receipt and is retried.
    """

    __tablename__ = "webhook_receipt"

    key: str = Field(primary_key=True, max_length=200)
    received_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
