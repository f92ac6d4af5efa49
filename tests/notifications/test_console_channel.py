"""ConsoleChannel: records, masks numbers in logs, and simulates Twilio's status news."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest

from notifications.channels import Accepted, Channel
from notifications.console_channel import ConsoleChannel, mask_phone

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
    channel: Channel = ConsoleChannel()
    assert channel.name == "console"


def test_sends_are_recorded_with_twilio_shaped_sids() -> None:
    channel = ConsoleChannel()

    text = channel.send_sms(to=TO, body="Hello", status_callback="https://cb", idempotency_key="a")
    voice = channel.place_call(
        to=TO, twiml="<Response/>", status_callback=None, idempotency_key="b"
    )

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
    assert (first.status_callback, first.idempotency_key) == ("https://cb", "a")
    assert (second.kind, second.content, second.idempotency_key) == ("call", "<Response/>", "b")


def test_repeated_idempotency_key_is_recorded_twice_so_tests_can_see_double_sends() -> None:
    channel = ConsoleChannel()
    for _ in range(2):
        channel.send_sms(to=TO, body="x", status_callback=None, idempotency_key="same")
    assert [item.idempotency_key for item in channel.sent] == ["same", "same"]
    assert len({item.provider_id for item in channel.sent}) == 2


def test_sent_is_a_copy_and_clear_empties_it() -> None:
    channel = ConsoleChannel()
    channel.send_sms(to=TO, body="x", status_callback=None, idempotency_key="k")
    channel.sent.clear()
    assert len(channel.sent) == 1
    channel.clear()
    assert channel.sent == []


def test_recording_is_thread_safe() -> None:
    channel = ConsoleChannel()

    def send_many(worker: int) -> None:
        for n in range(50):
            channel.send_sms(to=TO, body="x", status_callback=None, idempotency_key=f"{worker}-{n}")

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
    channel.send_sms(to=TO, body="Secret words", status_callback=None, idempotency_key="k")
    channel.place_call(to=TO, twiml="<Say>Hi</Say>", status_callback=None, idempotency_key="k2")

    assert "+852****4567" in caplog.text
    assert "91234567" not in caplog.text
    assert "Secret words" not in caplog.text and "<Say>" not in caplog.text


def test_text_is_only_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="notifications.console_channel")
    ConsoleChannel().send_sms(to=TO, body="Some words", status_callback=None, idempotency_key="k")
    debug = [r for r in caplog.records if "Some words" in r.getMessage()]
    assert debug and all(r.levelno == logging.DEBUG for r in debug)
    assert "91234567" not in caplog.text


def test_sms_news_is_sent_then_delivered_at_the_configured_delays() -> None:
    timer = FakeTimer()
    seen, on_status = collector()
    channel = ConsoleChannel(on_status, sms_delays=(0.5, 1.5), scheduler=timer)

    sid = channel.send_sms(to=TO, body="x", status_callback=None, idempotency_key="k").provider_id

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

    sid = channel.place_call(
        to=TO, twiml="<x/>", status_callback=None, idempotency_key="k"
    ).provider_id

    assert timer.run_all() == [1.0, 3.0]
    assert [(s, k, status) for s, k, status, _ in seen] == [
        (sid, "call", "ringing"),
        (sid, "call", "no-answer"),
    ]
    assert "answered" not in [status for _, _, status, _ in seen]


def test_no_on_status_schedules_nothing() -> None:
    timer = FakeTimer()
    ConsoleChannel(scheduler=timer).send_sms(
        to=TO, body="x", status_callback=None, idempotency_key="k"
    )
    assert timer.scheduled == []


def test_close_cancels_pending_news() -> None:
    timer = FakeTimer()
    seen, on_status = collector()
    channel = ConsoleChannel(on_status, scheduler=timer)
    channel.send_sms(to=TO, body="x", status_callback=None, idempotency_key="k")

    channel.close()
    timer.run_all()
    channel.send_sms(to=TO, body="x", status_callback=None, idempotency_key="k2")
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
    channel.send_sms(to=TO, body="x", status_callback=None, idempotency_key="k")
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
    channel.send_sms(to=TO, body="x", status_callback=None, idempotency_key="k")
    assert done.wait(5)
    done.clear()
    channel.place_call(to=TO, twiml="<x/>", status_callback=None, idempotency_key="k2")
    assert done.wait(5)
    assert seen == ["sent", "delivered", "ringing", "no-answer"]
    channel.close()
