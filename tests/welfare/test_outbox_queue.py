"""`outbox.enqueue` (the one way rows are added) and `can_receive` (the one rule for contacts)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlmodel import Session, select

from welfare import outbox, wakeup
from welfare.channels import ChannelKind
from welfare.outbox import reach
from welfare.outbox.models import OutboxMessage
from welfare.residents.models import Contact

HK = "Asia/Hong_Kong"


def _contact(**overrides: object) -> Contact:
    data: dict[str, object] = {
        "resident_id": uuid.uuid4(),
        "name": "Wang Lei",
        "relationship": "son",
        "phone": "+85291234567",
        "language": "zh-CN",
        "priority": 1,
        "channels": ["sms", "voice"],
        "consent_to_contact": True,
    } | overrides
    return Contact(**data)


@pytest.mark.parametrize(
    ("overrides", "channel", "why"),
    [
        ({}, ChannelKind.sms, None),
        ({}, ChannelKind.voice, None),
        ({"consent_to_contact": False}, ChannelKind.voice, reach.NO_CONSENT),
        ({"channels": ["voice"]}, ChannelKind.sms, "takes no SMS"),
        ({"channels": ["sms"]}, ChannelKind.voice, "takes no calls"),
        ({"sms_opted_out": True}, ChannelKind.sms, reach.OPTED_OUT),
        ({"sms_opted_out": True}, ChannelKind.voice, None),
        ({"phone_line_type": "landline"}, ChannelKind.sms, reach.LANDLINE),
        ({"phone_line_type": "landline"}, ChannelKind.voice, None),
    ],
)
def test_can_receive_says_which_rule_refuses(
    overrides: dict[str, object], channel: ChannelKind, why: str | None
) -> None:
    contact = _contact(**overrides)
    assert reach.refusal(contact, channel) == why
    assert reach.can_receive(contact, channel) is (why is None)


@pytest.mark.parametrize(
    ("local_time", "held"),
    [("22:59", False), ("23:00", True), ("03:00", True), ("06:59", True), ("07:00", False)],
)
def test_quiet_hours_across_midnight_hold_back_only_when_the_moment_is_given(
    local_time: str, held: bool
) -> None:
    contact = _contact(quiet_hours_start=dt.time(23, 0), quiet_hours_end=dt.time(7, 0))
    hour, minute = map(int, local_time.split(":"))
    at = dt.datetime(2026, 12, 3, hour, minute, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert reach.can_receive(contact, ChannelKind.voice, at=at, timezone=HK) is not held
    assert reach.can_receive(contact, ChannelKind.voice) is True  # urgent: no moment given


def test_enqueue_wakes_the_dispatcher_only_when_the_row_commits(db: Session) -> None:
    wakeup.outbox_ready.clear()
    outbox.enqueue(
        db, kind=ChannelKind.sms, to="+85291234567", language="en", template="t", key="k1"
    )
    db.flush()
    assert not wakeup.outbox_ready.is_set()
    db.rollback()
    assert not wakeup.outbox_ready.is_set()
    outbox.enqueue(
        db, kind=ChannelKind.sms, to="+85291234567", language="en", template="t", key="k2"
    )
    db.commit()
    assert wakeup.outbox_ready.is_set()
    assert [m.idempotency_key for m in db.exec(select(OutboxMessage)).all()] == ["k2"]


def test_enqueue_once_refuses_a_taken_key_and_keeps_the_transaction(db: Session) -> None:
    first = outbox.enqueue(
        db,
        kind=ChannelKind.voice,
        to="+85291234567",
        language="en",
        template="t",
        key="k",
        params={"visit_id": uuid.UUID(int=7)},
        once=True,
    )
    assert first is not None and first.params == {"visit_id": str(uuid.UUID(int=7))}
    again = outbox.enqueue(
        db,
        kind=ChannelKind.voice,
        to="+85291234567",
        language="en",
        template="t",
        key="k",
        once=True,
    )
    assert again is None
    db.commit()
    assert len(db.exec(select(OutboxMessage)).all()) == 1
