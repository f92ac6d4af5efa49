from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Enum, Index
from sqlmodel import Column, Field, SQLModel

from welfare.channels import ChannelKind
from welfare.db import UTCDateTime, utcnow


class OutboxStatus(StrEnum):
    pending = "pending"  # waiting for its time (or a retry)
    claimed = "claimed"  # taken by a dispatcher, not yet through the gate (may still be stopped)
    # Through the gate, its attempt counted: handed to the provider, whose answer is not
    # recorded yet. A crash leaves it here (and a resend keeps it here): the provider may have it.
    sending = "sending"
    sent = "sent"  # the provider accepted it (later news arrives by webhook)
    failed = "failed"  # refused for good, or out of retries
    cancelled = "cancelled"  # no longer wanted before it was handed over: nothing went out
    # No longer wanted while 'sending' (the incident stopped, the worker died with the send in
    # its hands): attempted, outcome unknown. Staff read it as "possibly sent"; never resent.
    unknown = "unknown"
    # Held back for good by a limit per recipient (the same text went to the number earlier):
    # nothing went out, on purpose (welfare/outbox/limits.py).
    held = "held"


# Rows the provider has or may have: their contact was sent something (an SMS or a call).
REACHED = (OutboxStatus.sent, OutboxStatus.sending, OutboxStatus.unknown)
# The SMS that tells contacts already sent something that the incident is closed.
ALL_CLEAR = "all_clear"

# What the statuses say to staff, in the JSON API's words (the pages translate their own).
STATUS_TEXT = {
    OutboxStatus.pending: "waiting",
    OutboxStatus.claimed: "waiting",
    OutboxStatus.sending: "sending",
    OutboxStatus.sent: "sent",
    OutboxStatus.failed: "failed",
    OutboxStatus.cancelled: "not sent (stopped)",
    OutboxStatus.unknown: "possibly sent",
    OutboxStatus.held: "held back (the same text went earlier)",
}


class OutboxMessage(SQLModel, table=True):
    """Every outbound SMS or call is this durable row before it goes anywhere.

    Written in the same transaction as the event that caused it; the unique idempotency key
    makes a repeated step (a retried worker round, two workers) queue nothing twice.
    """

    __tablename__ = "outbox_message"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    idempotency_key: str = Field(max_length=200, unique=True)
    incident_id: uuid.UUID | None = Field(
        default=None, foreign_key="incident.id", index=True, ondelete="CASCADE"
    )
    step_index: int | None = None
    contact_id: uuid.UUID | None = Field(default=None, index=True)
    user_id: uuid.UUID | None = None
    kind: ChannelKind = Field(sa_type=Enum(ChannelKind, native_enum=False, length=10))
    to_phone: str | None = Field(default=None, max_length=32)  # erased with the resident
    language: str = Field(default="en", max_length=35)
    # What to say, rendered by the dispatcher in `language` (welfare never renders provider
    # text); params hold ids and place words, never names, phone numbers or health data.
    template: str = Field(max_length=40)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: OutboxStatus = Field(
        default=OutboxStatus.pending, sa_type=Enum(OutboxStatus, native_enum=False, length=12)
    )
    attempts: int = 0
    next_attempt_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    claimed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    claim_token: str | None = Field(default=None, max_length=40)
    sent_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The provider that took it (set at the gate); a fail-over copy is pinned to its next one.
    provider: str | None = Field(default=None, max_length=20)
    provider_id: str | None = Field(default=None, max_length=64, index=True)
    provider_status: str | None = Field(default=None, max_length=30)
    error_code: str | None = Field(default=None, max_length=64)  # Aliyun: dotted words
    error_reason: str | None = Field(default=None, max_length=300)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class RecipientText(SQLModel, table=True):
    """Which row last sent a text to a number, and when (welfare/outbox/limits.py): the same text
    goes to one number once within the window. Both keys are HMACs, never the number or text."""

    __tablename__ = "recipient_text"

    phone_key: str = Field(primary_key=True, max_length=64)
    text_key: str = Field(primary_key=True, max_length=64)
    message_id: uuid.UUID = Field(index=True)
    sent_at: dt.datetime = Field(sa_type=UTCDateTime, index=True)


class RecipientAllowance(SQLModel, table=True):
    """The times of the messages outside an escalation that went to a number within the window
    (welfare/outbox/limits.py); the key is an HMAC of the number."""

    __tablename__ = "recipient_allowance"

    phone_key: str = Field(primary_key=True, max_length=64)
    recent: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    updated_at: dt.datetime = Field(sa_type=UTCDateTime, index=True)
