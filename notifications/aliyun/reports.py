"""Aliyun's delivery reports, fetched by polling `QuerySendDetails` (the report push needs a
public MNS queue or HTTP endpoint registered with Alibaba; polling works from anywhere).

Every `interval` seconds, for the SMS sent through Aliyun (the row's provider; its provider id
is the BizId) in the last `REPORT_WINDOW` that have no final status yet, newest first and at
most `BATCH` a round: ask for the SMS's report and record it in the shared words through
`notifications.status.apply_status`, which puts it on the incident's timeline once (and, given
the settings, hands an undelivered SMS to the next provider of its route):

- SendStatus 3: "delivered".
- SendStatus 2: "undelivered", with the carrier's ErrCode and our words for it.
- SendStatus 1 (waiting for the carrier's receipt): "sent" (on its way to the carrier), once.

An Aliyun error stops the round (a wrong key or throttling would answer the same to every
row); the next interval tries again. A round runs in a thread of its own, started from the
worker's round by `tick`, so the provider's answer times never hold back the outbox.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, or_, select

from notifications.aliyun.sms import NAME, AliyunSmsSender, SendDetail
from notifications.channels import ChannelError
from notifications.status import apply_status
from welfare.channels import ChannelKind
from welfare.db import session_scope, utcnow
from welfare.outbox.models import OutboxMessage, OutboxStatus
from welfare.settings import Settings

log = logging.getLogger(__name__)

# Aliyun keeps reports for 30 days; a carrier that has not answered in 3 never will.
REPORT_WINDOW = dt.timedelta(days=3)
BATCH = 50
FINAL_STATUSES = ("delivered", "undelivered", "failed")
# Aliyun's SendDate is the day in Beijing; an SMS sent a minute around midnight may be filed
# under either day.
BEIJING = ZoneInfo("Asia/Shanghai")
MIDNIGHT_SLACK = dt.timedelta(minutes=1)
SEND_STATUS_WORDS = {3: "delivered", 2: "undelivered", 1: "sent"}


@dataclass(frozen=True)
class Waiting:
    """An SMS sent through Aliyun whose report has not come yet."""

    message_id: uuid.UUID
    biz_id: str  # the row's provider id
    phone: str
    sent_at: dt.datetime


def waiting_for_reports(
    session: Session, now: dt.datetime | None = None, limit: int = BATCH
) -> list[Waiting]:
    now = now or utcnow()
    rows = session.exec(
        select(OutboxMessage)
        .where(
            OutboxMessage.provider == NAME,
            col(OutboxMessage.provider_id).is_not(None),
            OutboxMessage.kind == ChannelKind.sms,
            OutboxMessage.status == OutboxStatus.sent,
            col(OutboxMessage.to_phone).is_not(None),
            col(OutboxMessage.sent_at) >= now - REPORT_WINDOW,
            or_(
                col(OutboxMessage.provider_status).is_(None),
                col(OutboxMessage.provider_status).not_in(FINAL_STATUSES),
            ),
        )
        .order_by(col(OutboxMessage.sent_at).desc())
        .limit(limit)
    ).all()
    return [
        Waiting(row.id, str(row.provider_id), str(row.to_phone), row.sent_at or now) for row in rows
    ]


def send_dates(sent_at: dt.datetime) -> list[dt.date]:
    """The Beijing days Aliyun may have filed an SMS handed over at `sent_at` under."""
    days = [
        (sent_at + slack).astimezone(BEIJING).date() for slack in (-MIDNIGHT_SLACK, MIDNIGHT_SLACK)
    ]
    return sorted(set(days))


def report_words(detail: SendDetail) -> tuple[str, dict[str, str]] | None:
    """The shared status word and its extra for an Aliyun report (None: nothing to say)."""
    word = SEND_STATUS_WORDS.get(detail.send_status)
    if word is None:
        return None
    if word != "undelivered":
        return word, {}
    code = (detail.err_code or "").strip()[:64] or None
    reason = "the carrier reported the SMS as not delivered"
    return word, {
        "error_code": code,
        "error_reason": f"{reason} (Aliyun {code})" if code else reason,
    }


def poll_once(
    sender: AliyunSmsSender,
    factory: sessionmaker[Session],
    settings: Settings | None = None,
    now: dt.datetime | None = None,
) -> int:
    """One round: fetch and record the reports of the SMS still waiting; returns how many pieces
    of news changed something. With `settings`, an undelivered SMS fails over (routes)."""
    with session_scope(factory) as session:
        waiting = waiting_for_reports(session, now)
    recorded = 0
    for sms in waiting:
        try:
            detail = _report_of(sender, sms)
        except ChannelError as error:
            log.warning("aliyun reports stopped for this round: %s", error.reason)
            break
        news = report_words(detail) if detail is not None else None
        if news is not None and apply_status(factory, sms.biz_id, *news, settings=settings):
            recorded += 1
    return recorded


def _report_of(sender: AliyunSmsSender, sms: Waiting) -> SendDetail | None:
    for day in send_dates(sms.sent_at):
        details = sender.send_details(phone=sms.phone, biz_id=sms.biz_id, send_date=day)
        if details:
            return max(details, key=lambda detail: detail.send_status)
    return None


class AliyunReportPoller:
    """The worker's report job: `tick` (each worker round) starts a round in its own thread
    when `interval` seconds have passed since the last one started and none is running;
    `close` waits for a running one (the worker is stopping). `clock` is for tests."""

    def __init__(
        self,
        sender: AliyunSmsSender,
        factory: sessionmaker[Session],
        *,
        interval: float,
        settings: Settings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sender = sender
        self.factory = factory
        self.settings = settings
        self.interval = interval
        self.clock = clock
        self._next_at: float | None = None
        self._thread: threading.Thread | None = None

    def tick(self) -> bool:
        """True when a round was started."""
        now = self.clock()
        if self._next_at is not None and now < self._next_at:
            return False
        if self._thread is not None and self._thread.is_alive():
            return False
        self._next_at = now + self.interval  # a failing round waits for the next interval too
        self._thread = threading.Thread(target=self._round, name="aliyun-reports", daemon=True)
        self._thread.start()
        return True

    def _round(self) -> None:
        try:
            poll_once(self.sender, self.factory, self.settings)
        except Exception:
            log.exception("aliyun report round failed; retrying next interval")

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
