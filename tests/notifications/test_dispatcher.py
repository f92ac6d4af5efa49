"""The dispatcher against a fake channel: sends, failures, retries, races and crashes."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from notifications.channels import Accepted, ChannelError
from notifications.dispatcher import Dispatcher
from notifications.ratelimit import SenderRateLimit
from notifications.status import apply_status
from tests.conftest import SYSTEM
from tests.notifications.fake_channel import FakeChannel
from welfare import delivery as outbox
from welfare import wakeup
from welfare.channels import ChannelKind
from welfare.db import utcnow
from welfare.incidents import service as incidents
from welfare.incidents import timeline
from welfare.incidents.models import Incident, IncidentCreate, IncidentStatus
from welfare.outbox.models import OutboxMessage, OutboxStatus
from welfare.residents.models import Contact, Resident
from welfare.settings import Settings


@pytest.fixture
def report_found(
    db: Session,
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Contact],
) -> Callable[..., uuid.UUID]:
    """Report a new resident found whose contacts are (relationship, phone, language)s, on
    their default channels or on `channels`."""

    def report(
        *contacts: tuple[str, str, str],
        location: str | None = None,
        channels: list[str] | None = None,
    ) -> uuid.UUID:
        resident = make_resident()
        make_consent(resident)
        chosen = {"channels": channels} if channels is not None else {}
        for relationship, phone, language in contacts:
            make_contact(
                resident, relationship=relationship, phone=phone, language=language, **chosen
            )
        opened = incidents.open_incident(
            session=db,
            actor=SYSTEM,
            data=IncidentCreate(
                resident_id=resident.id, client_request_id=uuid.uuid4().hex, location=location
            ),
        )
        db.commit()
        return opened.incident.id

    return report


@pytest.fixture
def incident_id(report_found: Callable[..., uuid.UUID]) -> uuid.UUID:
    return report_found(
        ("son", "9123 4567", "zh-CN"),
        ("daughter", "6123 4567", "ko-KR"),
        location="Building 1, 3/F",
    )


@pytest.fixture
def report_another(report_found: Callable[..., uuid.UUID]) -> Callable[[], uuid.UUID]:
    """Report a second resident found, with a son on +85298765432: two more rows due."""
    return lambda: report_found(("son", "9876 5432", "zh-CN"))


def _rows(db: Session, incident_id: uuid.UUID) -> list[OutboxMessage]:
    db.expire_all()
    rows = db.exec(
        select(OutboxMessage)
        .where(OutboxMessage.incident_id == incident_id)
        .order_by(col(OutboxMessage.created_at), col(OutboxMessage.kind))
    ).all()
    db.expunge_all()  # keep the loaded values; touching them must not start a new snapshot
    db.rollback()
    return list(rows)


def _events(db: Session, incident_id: uuid.UUID) -> list[str]:
    db.expire_all()
    types = [e.type for e in timeline.events_of(db, incident_id)]
    db.rollback()
    return types


def test_due_rows_go_to_the_provider_in_the_contacts_language(
    db: Session, dispatcher: Dispatcher, channel: FakeChannel, incident_id: uuid.UUID
) -> None:
    assert dispatcher.run_once() == 2
    kinds = sorted((kind, to) for kind, to, _ in channel.sent)
    assert kinds == [("call", "+85291234567"), ("sms", "+85291234567")]
    sms = next(content for kind, _, content in channel.sent if kind == "sms")
    assert "编号" in sms  # zh-CN text for the son
    assert all(r.status == OutboxStatus.sent and r.provider_id for r in _rows(db, incident_id))
    assert _events(db, incident_id).count("sent") == 2
    db.expire_all()
    assert db.get(Incident, incident_id).first_sent_at is not None  # type: ignore[union-attr]
    assert dispatcher.run_once() == 0  # nothing twice


def test_a_permanent_failure_moves_the_escalation_on_at_once(
    db: Session, dispatcher: Dispatcher, channel: FakeChannel, incident_id: uuid.UUID
) -> None:
    channel.failures = [
        ChannelError("the number is not valid", code="21211", permanent=True),
        ChannelError("the number is not valid", code="21211", permanent=True),
    ]
    dispatcher.run_once()
    rows = _rows(db, incident_id)
    assert [r.status for r in rows[:2]] == [OutboxStatus.failed] * 2
    assert rows[0].error_code == "21211" and "not valid" in (rows[0].error_reason or "")
    assert "step_failed" in _events(db, incident_id)
    # The daughter was queued at once, not two minutes later, and goes out now.
    dispatcher.run_once()
    assert sorted(to for _, to, _ in channel.sent) == ["+85261234567", "+85261234567"]


def test_a_transient_failure_retries_with_backoff(
    db: Session,
    dispatcher: Dispatcher,
    channel: FakeChannel,
    incident_id: uuid.UUID,
    writers: sessionmaker[Session],
) -> None:
    channel.failures = [ChannelError("provider busy", code="20429", retry_after=7)]
    dispatcher.run_once()
    retrying = [r for r in _rows(db, incident_id) if r.status == OutboxStatus.pending]
    assert len(retrying) == 1 and retrying[0].attempts == 1
    assert retrying[0].next_attempt_at >= utcnow() + dt.timedelta(seconds=6)
    assert "retry_scheduled" in _events(db, incident_id)
    assert dispatcher.run_once() == 0  # not before its time
    with writers() as session:
        row = session.get(OutboxMessage, retrying[0].id)
        row.next_attempt_at = utcnow() - dt.timedelta(seconds=1)  # type: ignore[union-attr]
        session.add(row)
        session.commit()
    assert dispatcher.run_once() == 1
    assert len(channel.sent) == 2


def test_confirmation_racing_a_claimed_row_sends_nothing(
    db: Session,
    dispatcher: Dispatcher,
    channel: FakeChannel,
    incident_id: uuid.UUID,
    writers: sessionmaker[Session],
) -> None:
    with writers() as session:
        claimed = outbox.claim_due(session)
        session.commit()
    assert len(claimed) == 2
    with writers() as session:
        incident = session.get(Incident, incident_id)
        assert incidents.confirm(session=session, incident=incident, via="sms")  # type: ignore[arg-type]
        session.commit()
    for claim in claimed:
        dispatcher.deliver(claim)
    assert channel.sent == []
    assert {r.status for r in _rows(db, incident_id)} == {OutboxStatus.cancelled}
    db.expire_all()
    confirmed = [e for e in timeline.events_of(db, incident_id) if e.type == "confirmed"]
    db.rollback()
    assert confirmed[0].detail["cancelled_messages"] == 2


def test_the_gate_refuses_a_claimed_row_of_a_confirmed_incident_that_no_stop_reached(
    db: Session,
    dispatcher: Dispatcher,
    channel: FakeChannel,
    incident_id: uuid.UUID,
    writers: sessionmaker[Session],
) -> None:
    """The gate reads the incident itself, under its lock: a row still 'claimed' (a stop that
    missed it, a row written by an older version) never goes out once someone is coming."""
    with writers() as session:
        claimed = outbox.claim_due(session)
        incident = session.get(Incident, incident_id)
        assert incident is not None
        incident.status = IncidentStatus.confirmed  # confirmed without cancelling the rows
        session.add(incident)
        session.commit()
    for claim in claimed:
        dispatcher.deliver(claim)
    assert channel.sent == []
    assert {r.status for r in _rows(db, incident_id)} == {OutboxStatus.cancelled}


def test_no_lock_is_held_during_the_provider_call_and_a_confirmation_then_stops_the_rest(
    db: Session,
    dispatcher: Dispatcher,
    channel: FakeChannel,
    incident_id: uuid.UUID,
    writers: sessionmaker[Session],
) -> None:
    """While the first row is with the provider, the family confirms (another transaction on
    the same incident: it would wait for a lock held across the call, on SQLite for any write).
    The second row of the batch, claimed but not through the gate, must not go out."""
    done = threading.Event()
    confirmer_errors: list[BaseException] = []

    def confirm_now() -> None:
        try:
            with writers() as session:
                incident = session.get(Incident, incident_id)
                assert incidents.confirm(session=session, incident=incident, via="keypress")  # type: ignore[arg-type]
                session.commit()
        except BaseException as exc:
            confirmer_errors.append(exc)
        finally:
            done.set()

    original = channel._go

    def go(kind: str, to: str, content: str) -> Accepted:
        if not channel.sent:  # the first hand-over: confirm while the provider "answers"
            thread = threading.Thread(target=confirm_now)
            thread.start()
            assert done.wait(15), "the confirmation waited for the provider call"
        return original(kind, to, content)

    channel._go = go  # type: ignore[method-assign]
    assert dispatcher.run_once() == 2
    assert confirmer_errors == []
    assert len(channel.sent) == 1
    rows = _rows(db, incident_id)
    assert sorted((r.template, r.status.value) for r in rows) == [
        ("coming_notice", "pending"),  # the son was reached (in flight at confirmation)
        ("found_alert", "cancelled"),
        ("found_alert", "sent"),
    ]
    types = _events(db, incident_id)
    assert types.index("confirmed") < types.index("sent")  # in flight before, recorded after


def test_a_row_left_claimed_by_a_crash_is_sent_again_after_the_claim_goes_stale(
    db: Session,
    dispatcher: Dispatcher,
    channel: FakeChannel,
    incident_id: uuid.UUID,
    writers: sessionmaker[Session],
) -> None:
    with writers() as session:
        claimed = outbox.claim_due(session)  # the worker dies here, before sending
        session.commit()
    assert dispatcher.run_once() == 0  # a live claim is left alone
    _age_claims(writers, [c.message_id for c in claimed])
    assert dispatcher.run_once() == 2
    assert len(channel.sent) == 2
    for claim in claimed:  # the dead worker's tokens no longer open the gate
        dispatcher.deliver(claim)
    assert len(channel.sent) == 2


def _age_claims(writers: sessionmaker[Session], ids: list[uuid.UUID]) -> None:
    with writers() as session:
        for message_id in ids:
            row = session.get(OutboxMessage, message_id)
            row.claimed_at = utcnow() - outbox.STALE_CLAIM - dt.timedelta(seconds=1)  # type: ignore[union-attr]
            session.add(row)
        session.commit()


def test_a_claim_taken_over_after_the_stale_window_no_longer_opens_the_gate(
    db: Session,
    dispatcher: Dispatcher,
    channel: FakeChannel,
    incident_id: uuid.UUID,
    writers: sessionmaker[Session],
) -> None:
    """Worker A claims and stalls; after the stale window worker B claims the same rows anew.
    A waking up with its old claims must send nothing: the rows are B's, still 'claimed'."""
    with writers() as session:
        stale = outbox.claim_due(session)  # worker A, which then stalls
        session.commit()
    _age_claims(writers, [c.message_id for c in stale])
    with writers() as session:
        fresh = outbox.claim_due(session)  # worker B
        session.commit()
    assert sorted(c.message_id for c in fresh) == sorted(c.message_id for c in stale)
    assert {c.token for c in fresh}.isdisjoint({c.token for c in stale})
    for claim in stale:
        dispatcher.deliver(claim)
    assert channel.sent == []
    assert {r.status for r in _rows(db, incident_id)} == {OutboxStatus.claimed}
    for claim in fresh:
        dispatcher.deliver(claim)
    assert sorted(kind for kind, _, _ in channel.sent) == ["call", "sms"]
    assert {r.status for r in _rows(db, incident_id)} == {OutboxStatus.sent}


@pytest.mark.parametrize("late_answer", ["accepted", "transient", "permanent"])
def test_a_late_answer_to_a_send_another_worker_took_over_changes_nothing(
    db: Session,
    dispatcher: Dispatcher,
    channel: FakeChannel,
    incident_id: uuid.UUID,
    writers: sessionmaker[Session],
    settings: Settings,
    late_answer: str,
) -> None:
    """Worker A is handing a row over when its claim goes stale; worker B takes the row over
    and sends it. Whatever A's provider then answers, the row keeps B's send: A's acceptance
    must not overwrite B's provider id, nor A's failure put the row back to retry (a third
    send) or fail it (moving the escalation on past a contact who was reached)."""
    provider_answers, in_provider = threading.Event(), threading.Event()
    slow = FakeChannel()
    if late_answer != "accepted":
        permanent = late_answer == "permanent"
        slow.failures = [ChannelError("provider busy", code="20429", permanent=permanent)]
    original, a_provider_ids = slow._go, []

    def hang(kind: str, to: str, content: str) -> Accepted:
        in_provider.set()
        assert provider_answers.wait(10)
        accepted = original(kind, to, content)
        a_provider_ids.append(accepted.provider_id)
        return accepted

    slow._go = hang  # type: ignore[method-assign]
    worker_a = Dispatcher(writers, slow, settings)
    with writers() as session:
        (claim,) = outbox.claim_due(session, limit=1)
        session.commit()
    errors: list[BaseException] = []

    def deliver_as_a() -> None:
        try:
            worker_a.deliver(claim)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=deliver_as_a)
    thread.start()
    try:
        assert in_provider.wait(10)  # A is through the gate: the row is 'sending', A's token
        _age_claims(writers, [claim.message_id])
        assert dispatcher.run_once() == 2  # worker B: the stale row and the son's other row
    finally:
        provider_answers.set()
        thread.join(10)
    assert not thread.is_alive() and errors == []
    (row,) = [r for r in _rows(db, incident_id) if r.id == claim.message_id]
    b_sent = [c for kind, _, c in channel.sent if kind == row.kind.value]
    assert len(b_sent) == 1  # B's send of the row
    assert row.status == OutboxStatus.sent
    assert row.provider_id and row.provider_id not in a_provider_ids
    # Two hand-overs (A's, then B's resend), each counted at the gate; A's answer left no mark.
    assert (row.attempts, row.error_code, row.error_reason) == (2, None, None)
    events = _events(db, incident_id)
    assert events.count("sent") == 2  # B's two sends, nothing recorded for A's
    assert "retry_scheduled" not in events and "step_failed" not in events
    assert dispatcher.run_once() == 0  # nothing left to send again


def _crash_in_hand_over(writers: sessionmaker[Session]) -> list[uuid.UUID]:
    """Claim and pass the gate, then die before the provider answered."""
    with writers() as session:
        claimed = outbox.claim_due(session)
        session.commit()
    with writers() as session:
        assert None not in outbox.open_sends(session, claimed)
        session.commit()
    return [c.message_id for c in claimed]


def test_a_row_left_sending_by_a_crash_is_sent_again_rather_than_stay_silent(
    db: Session,
    dispatcher: Dispatcher,
    channel: FakeChannel,
    incident_id: uuid.UUID,
    writers: sessionmaker[Session],
) -> None:
    ids = _crash_in_hand_over(writers)
    assert {r.status for r in _rows(db, incident_id)} == {OutboxStatus.sending}
    assert dispatcher.run_once() == 0  # maybe still with the provider: wait
    _age_claims(writers, ids)
    assert dispatcher.run_once() == 2
    assert len(channel.sent) == 2
    assert {r.status for r in _rows(db, incident_id)} == {OutboxStatus.sent}


def test_a_row_left_sending_is_possibly_sent_once_the_incident_is_confirmed(
    db: Session,
    dispatcher: Dispatcher,
    channel: FakeChannel,
    incident_id: uuid.UUID,
    writers: sessionmaker[Session],
) -> None:
    ids = _crash_in_hand_over(writers)
    # The attempt is on the row before the provider is called: a crash cannot lose it.
    assert {(r.status, r.attempts) for r in _rows(db, incident_id)} == {(OutboxStatus.sending, 1)}
    with writers() as session:
        incident = session.get(Incident, incident_id)
        assert incidents.confirm(session=session, incident=incident, via="staff")  # type: ignore[arg-type]
        session.commit()
    # The provider may have them: attempted, outcome unknown, not "cancelled".
    rows = {r.id: r for r in _rows(db, incident_id)}
    assert {(rows[i].status, rows[i].attempts) for i in ids} == {(OutboxStatus.unknown, 1)}
    _age_claims(writers, ids)
    assert dispatcher.run_once() == 1  # the son's "coming" notice only: no resend
    assert [kind for kind, _, _ in channel.sent] == ["sms"]
    rows = {r.id: r for r in _rows(db, incident_id)}
    assert {rows[i].status for i in ids} == {OutboxStatus.unknown}
    assert "send_cancelled" not in _events(db, incident_id)


def _advance_to_the_next_step(writers: sessionmaker[Session], incident_id: uuid.UUID) -> None:
    """Two minutes on: the daughter's SMS and call are queued (pending, never handed over)."""
    with writers() as session:
        incident = session.get(Incident, incident_id)
        start = dt.datetime.fromisoformat(incident.escalation["started_at"])  # type: ignore[union-attr]
        incidents.advance(
            session=session,
            incident=incident,  # type: ignore[arg-type]
            now=start + dt.timedelta(seconds=120),
        )
        session.commit()


def _confirm(writers: sessionmaker[Session], incident_id: uuid.UUID) -> None:
    with writers() as session:
        incident = session.get(Incident, incident_id)
        assert incidents.confirm(session=session, incident=incident, via="staff")  # type: ignore[arg-type]
        session.commit()


def test_a_resend_stopped_before_its_gate_is_possibly_sent_and_unsent_rows_are_cancelled(
    db: Session,
    dispatcher: Dispatcher,
    channel: FakeChannel,
    incident_id: uuid.UUID,
    writers: sessionmaker[Session],
) -> None:
    """The worker died with the son's rows at the provider; another takes them over after the
    stale window, and the confirmation lands between its claim and its gate."""
    ids = _crash_in_hand_over(writers)
    _age_claims(writers, ids)
    with writers() as session:
        reclaimed = outbox.claim_due(session)
        session.commit()
    assert {c.message_id for c in reclaimed} == set(ids)
    assert all(c.resend for c in reclaimed)
    _advance_to_the_next_step(writers, incident_id)
    _confirm(writers, incident_id)
    for claim in reclaimed:
        dispatcher.deliver(claim)
    assert channel.sent == []
    states = {(r.status, r.attempts) for r in _rows(db, incident_id) if r.template == "found_alert"}
    assert states == {(OutboxStatus.unknown, 1), (OutboxStatus.cancelled, 0)}
    by_phone = {
        (r.to_phone, r.status) for r in _rows(db, incident_id) if r.template == "found_alert"
    }
    assert by_phone == {
        ("+85291234567", OutboxStatus.unknown),  # the son: possibly sent
        ("+85261234567", OutboxStatus.cancelled),  # the daughter: never handed over
    }


def _held_back_resend(
    db: Session,
    writers: sessionmaker[Session],
    channel: FakeChannel,
    settings: Settings,
    incident_id: uuid.UUID,
) -> tuple[Dispatcher, list[uuid.UUID], dt.datetime]:
    """Crash in the hand-over, then a new worker whose sender is over its rate takes over."""
    ids = _crash_in_hand_over(writers)
    _age_claims(writers, ids)
    limit = SenderRateLimit(1, clock=lambda: 1000.0)  # one a second, and the clock stands still
    for kind in ChannelKind:
        assert limit.acquire(channel.rate_key(kind)) == 0.0  # the one is used up
    limited = Dispatcher(writers, channel, settings, rate_limit=limit)
    now = utcnow()
    assert limited.run_once(now=now) == 0  # both held back
    rows = _rows(db, incident_id)
    assert {(r.status, r.attempts, r.claim_token) for r in rows} == {
        (OutboxStatus.sending, 1, None)  # still possibly with the provider from before
    }
    return limited, ids, now


def test_a_resend_held_back_by_the_rate_limit_and_then_stopped_is_possibly_sent(
    db: Session,
    writers: sessionmaker[Session],
    channel: FakeChannel,
    settings: Settings,
    incident_id: uuid.UUID,
) -> None:
    _held_back_resend(db, writers, channel, settings, incident_id)
    _confirm(writers, incident_id)
    assert {r.status for r in _rows(db, incident_id) if r.template == "found_alert"} == {
        OutboxStatus.unknown
    }


def test_a_resend_held_back_by_the_rate_limit_goes_out_when_its_time_comes(
    db: Session,
    writers: sessionmaker[Session],
    channel: FakeChannel,
    settings: Settings,
    incident_id: uuid.UUID,
) -> None:
    _limited, _ids, now = _held_back_resend(db, writers, channel, settings, incident_id)
    assert Dispatcher(writers, channel, settings).run_once(now=now + dt.timedelta(seconds=2)) == 2
    assert len(channel.sent) == 2
    rows = _rows(db, incident_id)
    assert {(r.status, r.attempts) for r in rows} == {(OutboxStatus.sent, 2)}


def test_after_confirmation_only_the_coming_notice_goes_out(
    db: Session,
    dispatcher: Dispatcher,
    channel: FakeChannel,
    incident_id: uuid.UUID,
    writers: sessionmaker[Session],
) -> None:
    dispatcher.run_once()  # the son's SMS and call
    with writers() as session:
        incident = session.get(Incident, incident_id)
        reference = incident.reference  # type: ignore[union-attr]
        start = dt.datetime.fromisoformat(incident.escalation["started_at"])  # type: ignore[union-attr]
        incidents.advance(
            session=session,
            incident=incident,  # type: ignore[arg-type]
            now=start + dt.timedelta(seconds=120),
        )
        daughter = session.exec(select(Contact).where(Contact.relationship == "daughter")).one()
        incidents.confirm(
            session=session,
            incident=incident,
            via="keypress",  # type: ignore[arg-type]
            contact_id=daughter.id,
        )
        session.commit()
    channel.sent.clear()
    dispatcher.run_once()
    assert [(kind, to) for kind, to, _ in channel.sent] == [("sms", "+85291234567")]
    # The son reads Chinese: his notice names the daughter in Chinese, never in English.
    assert channel.sent[0][2] == f"最新消息（{reference}）：居民的女儿已确认会前来。谢谢。"  # noqa: RUF001


def test_provider_news_is_recorded_once(
    db: Session, dispatcher: Dispatcher, incident_id: uuid.UUID, writers: sessionmaker[Session]
) -> None:
    dispatcher.run_once()
    sms = next(r for r in _rows(db, incident_id) if r.kind == "sms")
    assert apply_status(writers, sms.provider_id, "delivered", {})  # type: ignore[arg-type]
    assert not apply_status(writers, sms.provider_id, "delivered", {})  # type: ignore[arg-type]  # a repeat changes nothing
    assert _events(db, incident_id).count("delivered") == 1
    assert not apply_status(writers, "SMunknown", "delivered", {})


def test_the_real_twilio_sdk_path_records_a_permanent_error_in_words(
    db: Session, writers: sessionmaker[Session], settings: Settings, incident_id: uuid.UUID
) -> None:
    from notifications.twilio.client import TwilioChannel
    from tests.notifications.fake_twilio import FakeTwilio

    account, token = "AC" + "1" * 32, "secret-token"
    twilio_settings = settings.model_copy(
        update={
            "twilio_account_sid": account,
            "twilio_auth_token": token,
            "twilio_from_number": "+15005550006",
        }
    )
    fake = FakeTwilio(account, token)
    fake.fail_next(400, code=21211, message="The To number is not a valid phone number.")
    Dispatcher(writers, TwilioChannel(twilio_settings, fake), twilio_settings).run_once()
    rows = _rows(db, incident_id)
    failed = [r for r in rows if r.status == OutboxStatus.failed]
    sent = [r for r in rows if r.status == OutboxStatus.sent]
    assert len(failed) == 1 and len(sent) == 1
    assert failed[0].error_code == "21211"
    assert failed[0].error_reason and "+852" not in failed[0].error_reason
    # Which of the two was first (and failed) is the claim order of equal times; the one sent
    # carries the SID of its own kind: a Message SID for the SMS, a Call SID for the call.
    assert (sent[0].provider_id or "")[:2] == {"sms": "SM", "voice": "CA"}[sent[0].kind.value]
    assert {failed[0].kind, sent[0].kind} == {ChannelKind.sms, ChannelKind.voice}
    assert len(fake.sent("Messages")) + len(fake.sent("Calls")) == 2


def test_with_concurrency_rows_are_handed_over_side_by_side(
    db: Session,
    channel: FakeChannel,
    incident_id: uuid.UUID,
    writers: sessionmaker[Session],
    settings: Settings,
) -> None:
    """The son's SMS and call are with the provider at the same time (each waits for the other:
    one by one, the barrier would break), and both are recorded."""
    both_in_flight = threading.Barrier(2, timeout=10)
    original = channel._go

    def go(kind: str, to: str, content: str) -> Accepted:
        both_in_flight.wait()
        return original(kind, to, content)

    channel._go = go  # type: ignore[method-assign]
    dispatcher = Dispatcher(writers, channel, settings, concurrency=4)
    assert dispatcher.run_once() == 2
    assert sorted(kind for kind, _, _ in channel.sent) == ["call", "sms"]
    assert {r.status for r in _rows(db, incident_id)} == {OutboxStatus.sent}
    assert _events(db, incident_id).count("sent") == 2


def test_the_pump_hands_over_rows_while_earlier_sends_are_still_in_flight(
    db: Session,
    channel: FakeChannel,
    incident_id: uuid.UUID,
    writers: sessionmaker[Session],
    settings: Settings,
    report_another: Callable[[], uuid.UUID],
) -> None:
    """The worker's round returns at once: the first incident's provider calls hang, and the
    next incident's rows still go out in the free slot; with every slot busy nothing more is
    claimed (so nothing sits claimed behind a slow provider)."""
    report_another()
    release, release_other = threading.Event(), threading.Event()
    original = channel._go

    def go(kind: str, to: str, content: str) -> Accepted:
        # The first incident's son: a provider that hangs; the other's: held until told.
        assert (release if to == "+85291234567" else release_other).wait(10)
        return original(kind, to, content)

    channel._go = go  # type: ignore[method-assign]
    dispatcher = Dispatcher(writers, channel, settings, concurrency=3)
    try:
        assert dispatcher.pump() == 3  # the son's SMS and call and one of the other's
        assert dispatcher.pump() == 0  # every slot busy: the last row waits unclaimed
        release_other.set()
        for _ in range(200):
            if channel.sent:
                break
            release.wait(0.05)
        assert [to for _, to, _ in channel.sent] == ["+85298765432"]
        # Its slot is free again: the next round records its outcome and claims the last row.
        done = 0
        for _ in range(200):
            done += dispatcher.pump()
            if done >= 2:
                break
            release.wait(0.05)
        assert done == 2
        for _ in range(200):  # the last row, handed over: the other's provider answers at once
            if len(channel.sent) == 2:
                break
            release.wait(0.05)
        # ...while the first incident's son is still hanging: nothing of his has gone out.
        assert [to for _, to, _ in channel.sent] == ["+85298765432"] * 2
    finally:
        release.set()
        dispatcher.close()
    assert sorted(to for _, to, _ in channel.sent) == ["+85291234567"] * 2 + ["+85298765432"] * 2
    assert {r.status for r in _rows(db, incident_id)} == {OutboxStatus.sent}


def _count_looks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times the dispatcher looked for due rows (a write transaction each)."""
    looks = [0]
    claim_due = outbox.claim_due

    def counted(*args: Any, **kwargs: Any) -> list[outbox.Claim]:
        looks[0] += 1
        return claim_due(*args, **kwargs)

    monkeypatch.setattr(outbox, "claim_due", counted)
    return looks


def _wait_for_outcomes(dispatcher: Dispatcher, count: int) -> None:
    for _ in range(200):
        if dispatcher._outcomes.qsize() >= count:
            return
        threading.Event().wait(0.01)
    raise AssertionError("the sends did not come back")


def test_a_send_coming_back_is_recorded_without_a_look_at_the_outbox(
    db: Session,
    channel: FakeChannel,
    incident_id: uuid.UUID,
    writers: sessionmaker[Session],
    settings: Settings,
    report_another: Callable[[], uuid.UUID],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each finished send wakes the worker to record it; looking for due rows then too was a
    write transaction per send, on SQLite in the found reports' queue for the one writer."""
    looks = _count_looks(monkeypatch)
    dispatcher = Dispatcher(writers, channel, settings, concurrency=4)
    wakeup.outbox_ready.set()  # as the report's commit did
    try:
        assert dispatcher.pump() == 2 and looks == [1]  # two rows for four slots: all there was
        _wait_for_outcomes(dispatcher, 2)
        assert dispatcher.pump() == 2  # both recorded...
        assert dispatcher.pump() == 0
        assert looks == [1]  # ...without looking again
        report_another()  # its commit says so
        assert wakeup.outbox_ready.is_set()
        assert dispatcher.pump() == 2 and looks == [2]
    finally:
        dispatcher.close()
    assert len(channel.sent) == 4


class _SecondWaits:
    """A sender's rate limit that puts the second send back for a while, once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.asked = 0

    def acquire(self, key: str) -> float:
        self.asked += 1
        return self.seconds if self.asked == 2 else 0.0


def test_a_row_put_back_by_the_rate_limit_is_looked_for_when_its_time_comes(
    db: Session,
    channel: FakeChannel,
    incident_id: uuid.UUID,
    writers: sessionmaker[Session],
    settings: Settings,
) -> None:
    limit = _SecondWaits(0.2)
    dispatcher = Dispatcher(writers, channel, settings, concurrency=4, rate_limit=limit)  # type: ignore[arg-type]
    wakeup.outbox_ready.set()
    try:
        assert dispatcher.pump() == 2  # one handed over, one put back for 0.2 s
        _wait_for_outcomes(dispatcher, 1)
        assert dispatcher.pump() == 1
        wakeup.work_ready.clear()
        assert wakeup.work_ready.wait(2), "nothing woke the worker for the row put back"
        for _ in range(100):  # the row is due by the database's clock a moment later
            if dispatcher.pump() and len(channel.sent) == 2:
                break
            threading.Event().wait(0.02)
    finally:
        dispatcher.close()
    assert len(channel.sent) == 2
    assert {r.status for r in _rows(db, incident_id)} == {OutboxStatus.sent}


def test_a_round_records_acceptances_and_failures_of_several_incidents_together(
    db: Session,
    channel: FakeChannel,
    incident_id: uuid.UUID,
    writers: sessionmaker[Session],
    settings: Settings,
    report_another: Callable[[], uuid.UUID],
) -> None:
    other = report_another()
    channel.failures = [ChannelError("provider busy", code="20429", retry_after=7)]
    dispatcher = Dispatcher(writers, channel, settings, concurrency=4)
    wakeup.outbox_ready.set()
    try:
        assert dispatcher.pump() == 4
        _wait_for_outcomes(dispatcher, 4)
        assert dispatcher.pump() == 4  # one transaction: three sent, one to retry
    finally:
        dispatcher.close()
    rows = _rows(db, incident_id) + _rows(db, other)
    assert sorted(r.status for r in rows) == [OutboxStatus.pending] + [OutboxStatus.sent] * 3
    events = _events(db, incident_id) + _events(db, other)
    assert events.count("sent") == 3 and events.count("retry_scheduled") == 1
    assert all(r.provider_id for r in rows if r.status == OutboxStatus.sent)
