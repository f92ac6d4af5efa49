"""ConsoleChannel: records, masks numbers in logs, shows sends in the demo's terminal, and
simulates Twilio's status news."""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, select

from notifications import messages, runtime
from notifications.channels import Accepted, CallScript, Sender
from notifications.console_channel import ConsoleChannel, describe_call, mask_phone
from tests.conftest import SYSTEM
from welfare.channels import ChannelKind
from welfare.demo import seed_demo
from welfare.incidents import service as incidents
from welfare.incidents.models import IncidentCreate
from welfare.residents.models import Resident
from welfare.settings import Settings

TO = "+85291234567"


class FakeTimer:
    """Collects scheduled actions; the test runs them in order, advancing a fake clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.scheduled: list[tuple[float, Callable[[], None], FakeTimer.Handle]] = []

    class Handle:
        def __init__(self) -> None:
            self.cancelled = False

        def cancel(self) -> None:
            self.cancelled = True

    def __call__(self, delay: float, action: Callable[[], None]) -> FakeTimer.Handle:
        handle = FakeTimer.Handle()
        self.scheduled.append((self.now + delay, action, handle))
        return handle

    def run_all(self) -> list[float]:
        """Fire everything due, earliest first (including what firing schedules)."""
        fired = []
        while self.scheduled:
            self.scheduled.sort(key=lambda item: item[0])
            at, action, handle = self.scheduled.pop(0)
            self.now = at
            if not handle.cancelled:
                fired.append(at)
                action()
        return fired


News = tuple[str, str, str, dict[str, Any]]


def collector() -> tuple[list[News], Callable[[str, Any, str, dict[str, Any]], None]]:
    seen: list[News] = []

    def on_status(sid: str, kind: Any, status: str, extra: dict[str, Any]) -> None:
        seen.append((sid, kind, status, extra))

    return seen, on_status


def test_console_channel_is_a_channel() -> None:
    channel: Sender = ConsoleChannel()
    assert channel.name == "console"


def test_sends_are_recorded_with_twilio_shaped_sids() -> None:
    channel = ConsoleChannel()

    text = channel.send_sms(to=TO, body="Hello", idempotency_key="a")
    voice = channel.call(to=TO, script=CallScript("Hi there"), idempotency_key="b")

    assert isinstance(text, Accepted) and text.status == "queued"
    assert re.fullmatch(r"SM[0-9a-f]{32}", text.provider_id)
    assert re.fullmatch(r"CA[0-9a-f]{32}", voice.provider_id)
    first, second = channel.sent
    assert (first.kind, first.provider_id, first.to, first.content) == (
        "sms",
        text.provider_id,
        TO,
        "Hello",
    )
    assert first.idempotency_key == "a"
    assert (second.kind, second.content, second.idempotency_key) == ("voice", "Hi there", "b")


def test_repeated_idempotency_key_is_recorded_twice_so_tests_can_see_double_sends() -> None:
    channel = ConsoleChannel()
    for _ in range(2):
        channel.send_sms(to=TO, body="x", idempotency_key="same")
    assert [item.idempotency_key for item in channel.sent] == ["same", "same"]
    assert len({item.provider_id for item in channel.sent}) == 2


def test_sent_is_a_copy_and_clear_empties_it() -> None:
    channel = ConsoleChannel()
    channel.send_sms(to=TO, body="x", idempotency_key="k")
    channel.sent.clear()
    assert len(channel.sent) == 1
    channel.clear()
    assert channel.sent == []


def test_recording_is_thread_safe() -> None:
    channel = ConsoleChannel()

    def send_many(worker: int) -> None:
        for n in range(50):
            channel.send_sms(to=TO, body="x", idempotency_key=f"{worker}-{n}")

    threads = [threading.Thread(target=send_many, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(channel.sent) == 400
    assert len({item.idempotency_key for item in channel.sent}) == 400


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("+85291234567", "+852****4567"),
        ("+821012345678", "+82****5678"),
        ("+14155550123", "+1****0123"),
        ("91234567", "****4567"),
        ("123", "****"),
        ("", "****"),
    ],
)
def test_mask_phone(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


def test_logs_mask_the_number_and_keep_the_text_out_of_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="notifications.console_channel")
    channel = ConsoleChannel()
    channel.send_sms(to=TO, body="Secret words", idempotency_key="k")
    channel.call(to=TO, script=CallScript("Hi there"), idempotency_key="k2")

    assert "+852****4567" in caplog.text
    assert "91234567" not in caplog.text
    assert "Secret words" not in caplog.text and "Hi there" not in caplog.text


def test_text_is_only_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="notifications.console_channel")
    ConsoleChannel().send_sms(to=TO, body="Some words", idempotency_key="k")
    debug = [r for r in caplog.records if "Some words" in r.getMessage()]
    assert debug and all(r.levelno == logging.DEBUG for r in debug)
    assert "91234567" not in caplog.text


def test_sms_news_is_sent_then_delivered_at_the_configured_delays() -> None:
    timer = FakeTimer()
    seen, on_status = collector()
    channel = ConsoleChannel(on_status, sms_delays=(0.5, 1.5), scheduler=timer)

    sid = channel.send_sms(to=TO, body="x", idempotency_key="k").provider_id

    assert seen == []  # never from inside send_sms
    assert timer.run_all() == [0.5, 1.5]
    assert [(s, k, status) for s, k, status, _ in seen] == [
        (sid, "sms", "sent"),
        (sid, "sms", "delivered"),
    ]
    assert all(extra["simulated"] for *_, extra in seen)


def test_call_news_is_ringing_then_no_answer_never_answered() -> None:
    timer = FakeTimer()
    seen, on_status = collector()
    channel = ConsoleChannel(on_status, call_delays=(1.0, 3.0), scheduler=timer)

    sid = channel.call(to=TO, script=CallScript("x"), idempotency_key="k").provider_id

    assert timer.run_all() == [1.0, 3.0]
    assert [(s, k, status) for s, k, status, _ in seen] == [
        (sid, "voice", "ringing"),
        (sid, "voice", "no-answer"),
    ]
    assert "answered" not in [status for _, _, status, _ in seen]


def test_no_on_status_schedules_nothing() -> None:
    timer = FakeTimer()
    ConsoleChannel(scheduler=timer).send_sms(to=TO, body="x", idempotency_key="k")
    assert timer.scheduled == []


def test_close_cancels_pending_news() -> None:
    timer = FakeTimer()
    seen, on_status = collector()
    channel = ConsoleChannel(on_status, scheduler=timer)
    channel.send_sms(to=TO, body="x", idempotency_key="k")

    channel.close()
    timer.run_all()
    channel.send_sms(to=TO, body="x", idempotency_key="k2")
    timer.run_all()

    assert seen == []


def test_a_failing_status_handler_does_not_stop_the_next_news(
    caplog: pytest.LogCaptureFixture,
) -> None:
    timer = FakeTimer()
    seen: list[str] = []

    def on_status(sid: str, kind: Any, status: str, extra: dict[str, Any]) -> None:
        seen.append(status)
        if status == "sent":
            raise RuntimeError("boom")

    channel = ConsoleChannel(on_status, scheduler=timer)
    channel.send_sms(to=TO, body="x", idempotency_key="k")
    timer.run_all()
    assert seen == ["sent", "delivered"]
    assert "status handler failed" in caplog.text


def test_zero_delays_with_real_timers_deliver_in_order() -> None:
    done = threading.Event()
    seen: list[str] = []

    def on_status(sid: str, kind: Any, status: str, extra: dict[str, Any]) -> None:
        seen.append(status)
        if status in ("delivered", "no-answer"):
            done.set()

    channel = ConsoleChannel(on_status, sms_delays=(0, 0), call_delays=(0, 0))
    channel.send_sms(to=TO, body="x", idempotency_key="k")
    assert done.wait(5)
    done.clear()
    channel.call(to=TO, script=CallScript("x"), idempotency_key="k2")
    assert done.wait(5)
    assert seen == ["sent", "delivered", "ringing", "no-answer"]
    channel.close()


# --- what the demo's terminal shows ------------------------------------------------------------


LINK = "http://127.0.0.1:8000/r/AbCdEfGhIjKlMnOp"


def found_call(lang: str) -> str:
    text = messages.found_call_text(lang, site_name="Harbour View Gardens", location="Lobby")
    return CallScript(text, "found")


def test_echo_shows_an_sms_as_the_family_gets_it() -> None:
    shown: list[str] = []
    channel = ConsoleChannel(echo=shown.append)
    body = messages.found_sms(
        "zh-CN",
        site_name="Harbour View",
        location="Lobby",
        office_phone="2345 6789",
        reference="R1",
        link=LINK,
    )
    channel.send_sms(to=TO, body=body, idempotency_key="k", language="zh-HK")

    (block,) = shown
    assert block.startswith("---- SMS to +852 ****4567, language zh-CN (contact: zh-HK) ----")
    assert body in block
    assert "91234567" not in block
    # The link on a line of its own, for whoever runs the demo to open and answer.
    assert block.splitlines()[-1] == f"  answer as the family: {LINK}"


def test_echo_shows_no_answer_line_for_an_sms_without_an_answer_link() -> None:
    shown: list[str] = []
    channel = ConsoleChannel(echo=shown.append)
    body = messages.coming_notice_sms("en", relationship="son", reference="7K3QAB")
    channel.send_sms(to=TO, body=body, idempotency_key="k", language="en")
    (block,) = shown
    assert "answer as the family" not in block


def test_echo_shows_the_calls_spoken_script_its_keys_and_what_follows_no_key() -> None:
    shown: list[str] = []
    channel = ConsoleChannel(echo=shown.append)
    channel.call(to=TO, script=found_call("ko"), idempotency_key="k", language="ko")

    (block,) = shown
    lines = block.splitlines()
    assert lines[0] == "---- call to +852 ****4567, language ko-KR (contact: ko), voice ko-KR ----"
    spoken = messages.found_call_text("ko", site_name="Harbour View Gardens", location="Lobby")
    assert lines[1] == f"  says: {spoken}"
    assert lines[2].strip() == messages.call_prompt("ko", "found")
    assert lines[3] == "  keys: 1 = confirms, 2 = connects to the site office"
    assert lines[4] == f"  no key: said once more, then: {messages.call_goodbye('ko')}"
    assert "<" not in block and "91234567" not in block


def test_an_incident_call_says_a_machine_gets_a_voicemail_and_the_next_contact_is_called() -> None:
    block = describe_call(to=TO, script=CallScript("Hi", detect_machine=True), language="en")
    assert block.splitlines()[1] == "  says: Hi"
    assert block.splitlines()[-1].startswith("  answering machine: a short voicemail")
    assert "answering machine" not in describe_call(
        to=TO, script=CallScript("Hi", "checkin"), language="en"
    )


def test_without_echo_nothing_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    channel = ConsoleChannel()
    channel.send_sms(to=TO, body="Words", idempotency_key="k")
    channel.call(to=TO, script=found_call("en"), idempotency_key="k2")
    assert capsys.readouterr().out == ""


def test_a_failing_echo_never_fails_the_send(caplog: pytest.LogCaptureFixture) -> None:
    def broken(block: str) -> None:
        raise OSError("terminal gone")

    channel = ConsoleChannel(echo=broken)
    accepted = channel.send_sms(to=TO, body="x", idempotency_key="k")
    assert accepted.status == "queued" and len(channel.sent) == 1
    assert "could not show a send" in caplog.text


def test_a_found_report_in_the_demo_prints_each_sms_and_call_masked_and_without_a_name(
    db: Session,
    writers: sessionmaker[Session],
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed_demo(db)
    db.commit()
    wang = db.exec(select(Resident).where(Resident.preferred_name == "Mr. Wang")).one()
    incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(
            resident_id=wang.id, client_request_id=uuid.uuid4().hex, location="Building 1 lobby"
        ),
    )
    db.commit()
    sender = runtime.dispatcher(settings, writers, show_sends=True)
    try:
        assert sender.run_once() == 2
    finally:
        sender.channels.sender(ChannelKind.sms).close()  # type: ignore[union-attr]

    out = capsys.readouterr().out
    assert "---- SMS to +852 ****4567, language zh-CN ----" in out
    assert "---- call to +852 ****4567, language zh-CN, voice cmn-CN ----" in out
    assert "Building 1 lobby" in out and "  says: " in out and "  keys: 1 = confirms" in out
    assert "91234567" not in out and "9123 4567" not in out
    for name in ("Wang", "王建国", "Old Wang", "Jianguo"):
        assert name not in out
