"""Limits per recipient, checked at the gate just before a message goes out.

- **The same text once.** A written message (SMS, WhatsApp) whose text already went to the same
  number within `identical_text_hours` is held back for good: mainland carriers reject the third
  identical SMS, and a repeat adds nothing to the one already on the phone. The escalation's
  second pass down the list sends its calls again; its SMS would be the same text, so it is held.
  A fail-over copy (the same message through the next provider) and a retry of the same row are
  not repeats. A text that failed for good, or was reported undelivered, is forgotten, so the
  next identical text may go.
- **At most N per window outside a running escalation.** Messages that are not about an incident
  (visit notices, consent reviews, check-in calls, contact tests) go to one number at most
  `recipient_limit` times per `recipient_limit_minutes`; the next waits until the oldest of them
  leaves the window. Messages about an incident (its alerts, coming notices, the all-clear) are
  never slowed down, and do not use up the allowance.

Both are decided by the database, so several workers cannot both let the N+1th message through:
the same-text rule is one conditional upsert; the allowance is read and written under the
number's row lock (PostgreSQL) or the one writer's lock (SQLite). Numbers and texts are kept
only as keyed hashes (HMAC with the secret key): no phone number or text is stored here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, or_
from sqlmodel import Session, col, select

from welfare.channels import CONTACT_CHANNELS, WRITTEN, ChannelKind
from welfare.db import for_update, upsert, utcnow
from welfare.outbox.models import OutboxMessage, RecipientAllowance, RecipientText
from welfare.settings import Settings

# The reasons on the timeline and the audit (the console translates them).
SAME_TEXT = "the same text went to this number earlier"
TOO_MANY = "too many messages to this number"


@dataclass(frozen=True)
class RecipientLimits:
    """The limits in force (from the settings); a zero turns that limit off."""

    per_window: int
    window: dt.timedelta
    identical_within: dt.timedelta
    secret: str

    @classmethod
    def from_settings(cls, settings: Settings) -> RecipientLimits:
        return cls(
            per_window=settings.recipient_limit,
            window=dt.timedelta(minutes=settings.recipient_limit_minutes),
            identical_within=dt.timedelta(hours=settings.identical_text_hours),
            secret=settings.secret_key,
        )


@dataclass(frozen=True)
class Held:
    """Why a message does not go now. `until`: when it may go (too many); None: never (the
    same text went at `since`)."""

    reason: str
    until: dt.datetime | None = None
    since: dt.datetime | None = None

    @property
    def limit(self) -> str:
        """The limit's short name, for metrics."""
        return "same_text" if self.until is None else "too_many"


def phone_key(limits: RecipientLimits, phone: str) -> str:
    return hmac.new(limits.secret.encode(), phone.encode(), hashlib.sha256).hexdigest()


def text_key(limits: RecipientLimits, kind: ChannelKind, body: str) -> str:
    data = f"{kind.value}\n{body}".encode()
    return hmac.new(limits.secret.encode(), data, hashlib.sha256).hexdigest()


def check(
    session: Session,
    limits: RecipientLimits,
    message: OutboxMessage,
    body: str | None,
    *,
    now: dt.datetime | None = None,
) -> Held | None:
    """In the gate's transaction: None when `message` (its text `body`, None for a call) may go
    now, and then it counts against the limits; else why it is held back."""
    # The kinds that go to a phone number (a push goes to a phone's browser, not a number).
    if message.to_phone is None or message.kind not in CONTACT_CHANNELS:
        return None
    now = now or utcnow()
    phone = phone_key(limits, message.to_phone)
    failover_copy = bool(message.params.get("tried"))  # the same message, through the next one
    if (
        body is not None
        and message.kind in WRITTEN
        and limits.identical_within
        and not failover_copy
    ):
        since = _same_text_sent(session, limits, message, phone, body, now)
        if since is not None:
            return Held(SAME_TEXT, since=since)
    if limits.per_window and message.incident_id is None:
        until = _allowance_used_up(session, limits, phone, now)
        if until is not None:
            return Held(TOO_MANY, until=until)
    return None


def _same_text_sent(
    session: Session,
    limits: RecipientLimits,
    message: OutboxMessage,
    phone: str,
    body: str,
    now: dt.datetime,
) -> dt.datetime | None:
    """Claim (number, text) for this message in one statement: it succeeds when nobody holds it,
    when the holder's text is older than the window, or when the holder is this very row (a
    retry, or a row put back by the allowance). Else the time the same text went."""
    key = text_key(limits, message.kind, body)
    table = RecipientText.__table__  # type: ignore[attr-defined]
    insert = upsert(session)(table).values(
        phone_key=phone, text_key=key, message_id=message.id, sent_at=now
    )
    claimed = session.execute(
        insert.on_conflict_do_update(
            index_elements=[table.c.phone_key, table.c.text_key],
            set_={"message_id": message.id, "sent_at": now},
            where=or_(
                table.c.sent_at <= now - limits.identical_within,
                table.c.message_id == message.id,
            ),
        ).returning(table.c.message_id)
    ).first()
    if claimed is not None:
        return None
    return session.execute(
        select(table.c.sent_at).where(table.c.phone_key == phone, table.c.text_key == key)
    ).scalar_one()


def _allowance_used_up(
    session: Session, limits: RecipientLimits, phone: str, now: dt.datetime
) -> dt.datetime | None:
    """Count this message against the number's allowance; or, when the window is full, the time
    its oldest message leaves it."""
    table = RecipientAllowance.__table__  # type: ignore[attr-defined]
    session.execute(
        upsert(session)(table)
        .values(phone_key=phone, recent=[], updated_at=now)
        .on_conflict_do_nothing(index_elements=[table.c.phone_key])
    )
    query = for_update(
        session, select(RecipientAllowance).where(col(RecipientAllowance.phone_key) == phone)
    )
    allowance = session.exec(query.execution_options(populate_existing=True)).one()
    cutoff = now - limits.window
    recent = sorted(t for t in map(dt.datetime.fromisoformat, allowance.recent) if t > cutoff)
    if len(recent) >= limits.per_window:
        return recent[len(recent) - limits.per_window] + limits.window
    allowance.recent = [t.isoformat() for t in [*recent, now]]
    allowance.updated_at = now
    session.add(allowance)
    return None


def forget(session: Session, message_id: uuid.UUID) -> None:
    """The message's text did not arrive (failed for good, or undelivered): an identical text
    may go again."""
    session.execute(delete(RecipientText).where(col(RecipientText.message_id) == message_id))


def prune(session: Session, limits: RecipientLimits, now: dt.datetime | None = None) -> int:
    """Drop what no limit looks at any more (the worker's housekeeping); how many rows went."""
    now = now or utcnow()
    longest = max(limits.identical_within, limits.window)
    texts = session.execute(
        delete(RecipientText).where(col(RecipientText.sent_at) <= now - longest)
    ).rowcount
    allowances = session.execute(
        delete(RecipientAllowance).where(col(RecipientAllowance.updated_at) <= now - longest)
    ).rowcount
    return int(texts or 0) + int(allowances or 0)
