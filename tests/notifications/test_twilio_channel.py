"""TwilioChannel through the real SDK, against a fake Twilio at the HTTP boundary."""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
from concurrent.futures import ThreadPoolExecutor

import pytest

from notifications.channels import Accepted, ChannelError
from notifications.twilio.client import (
    CALL_RING_SECONDS,
    CALL_STATUS_EVENTS,
    IDEMPOTENCY_HEADER,
    PERMANENT_ERRORS,
    REQUEST_TIMEOUT_SECONDS,
    TwilioChannel,
    rewrite_base_url,
)
from tests.notifications.fake_twilio import FakeTwilio, FakeTwilioServer
from welfare.settings import Settings

ACCOUNT = "AC" + "0123456789abcdef" * 2
TOKEN = "test-auth-token"
FROM = "+15005550006"
SERVICE = "MG" + "fedcba9876543210" * 2
TO = "+85291234567"
CALLBACK = "https://welfare.example.org/webhooks/twilio/message-status?row=42"


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "twilio_account_sid": ACCOUNT,
        "twilio_auth_token": TOKEN,
        "twilio_from_number": FROM,
        "twilio_messaging_service_sid": None,
        "twilio_api_base_url": "https://api.twilio.com",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def fake() -> FakeTwilio:
    return FakeTwilio(ACCOUNT, TOKEN)


@pytest.fixture
def channel(fake: FakeTwilio) -> TwilioChannel:
    return TwilioChannel(settings(), fake)


def sms(channel: TwilioChannel, to: str = TO) -> Accepted:
    return channel.send_sms(to=to, body="Hello", status_callback=CALLBACK, idempotency_key="k-1")


def call(channel: TwilioChannel, to: str = TO) -> Accepted:
    return channel.place_call(
        to=to,
        twiml="<Response><Say>Hi</Say></Response>",
        status_callback=CALLBACK,
        idempotency_key="k-2",
    )


# --- sending ---------------------------------------------------------------------------------


def test_sms_from_number_posts_to_messages_with_callback(
    channel: TwilioChannel, fake: FakeTwilio
) -> None:
    accepted = sms(channel)

    [request] = fake.sent("Messages")
    assert request.url == f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    assert request.form == {"To": TO, "From": FROM, "Body": "Hello", "StatusCallback": CALLBACK}
    assert request.auth == (ACCOUNT, TOKEN)
    assert request.headers[IDEMPOTENCY_HEADER.lower()] == "k-1"
    assert request.timeout == REQUEST_TIMEOUT_SECONDS
    assert accepted.provider_id in fake.messages
    assert accepted.provider_id.startswith("SM") and len(accepted.provider_id) == 34
    assert accepted.status == "queued"


def test_sms_uses_messaging_service_when_configured(fake: FakeTwilio) -> None:
    channel = TwilioChannel(settings(twilio_messaging_service_sid=SERVICE), fake)

    accepted = channel.send_sms(to=TO, body="Hello", status_callback=None, idempotency_key="k")

    [request] = fake.sent("Messages")
    assert request.form == {"To": TO, "MessagingServiceSid": SERVICE, "Body": "Hello"}
    assert accepted.status == "accepted"


def test_sms_with_only_a_messaging_service_is_enough(fake: FakeTwilio) -> None:
    channel = TwilioChannel(
        settings(twilio_from_number=None, twilio_messaging_service_sid=SERVICE), fake
    )
    assert sms(channel).provider_id in fake.messages


def test_call_carries_inline_twiml_ring_timeout_and_status_events(
    channel: TwilioChannel, fake: FakeTwilio
) -> None:
    accepted = call(channel)

    [request] = fake.sent("Calls")
    assert request.form == {
        "To": TO,
        "From": FROM,
        "Twiml": "<Response><Say>Hi</Say></Response>",
        "Timeout": str(CALL_RING_SECONDS),
        "StatusCallback": CALLBACK,
        "StatusCallbackMethod": "POST",
        "StatusCallbackEvent": CALL_STATUS_EVENTS,
    }
    assert "MachineDetection" not in request.form
    assert accepted.provider_id.startswith("CA") and accepted.provider_id in fake.calls
    assert accepted.status == "queued"


def test_call_without_callback_sends_no_status_events(
    channel: TwilioChannel, fake: FakeTwilio
) -> None:
    channel.place_call(to=TO, twiml="<Response/>", status_callback=None, idempotency_key="k")
    [request] = fake.sent("Calls")
    assert "StatusCallback" not in request.form
    assert "StatusCallbackEvent" not in request.form


def test_call_needs_a_from_number(fake: FakeTwilio) -> None:
    channel = TwilioChannel(
        settings(twilio_from_number=None, twilio_messaging_service_sid=SERVICE), fake
    )
    with pytest.raises(ChannelError) as caught:
        call(channel)
    assert caught.value.permanent
    assert "WELFARE_TWILIO_FROM_NUMBER" in caught.value.reason
    assert fake.requests == []


def test_call_script_over_twilio_limit_is_refused_before_sending(
    channel: TwilioChannel, fake: FakeTwilio
) -> None:
    with pytest.raises(ChannelError) as caught:
        channel.place_call(
            to=TO,
            twiml="<Response>" + "x" * 4000 + "</Response>",
            status_callback=None,
            idempotency_key="k",
        )
    assert caught.value.permanent
    assert fake.requests == []


def test_channel_refuses_settings_without_credentials() -> None:
    with pytest.raises(ValueError, match="ACCOUNT_SID"):
        TwilioChannel(settings(twilio_auth_token=None), FakeTwilio())
    with pytest.raises(ValueError, match="FROM_NUMBER"):
        TwilioChannel(settings(twilio_from_number=None), FakeTwilio())


def test_wrong_credentials_are_a_permanent_error() -> None:
    channel = TwilioChannel(settings(twilio_auth_token="wrong"), FakeTwilio(ACCOUNT, TOKEN))
    with pytest.raises(ChannelError) as caught:
        sms(channel)
    assert (caught.value.code, caught.value.permanent) == ("20003", True)


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(PERMANENT_ERRORS))
def test_permanent_twilio_codes_fail_at_once_with_readable_reason(
    channel: TwilioChannel, fake: FakeTwilio, code: int
) -> None:
    fake.fail_next(400, code=code, message=f"The 'To' number {TO} is not allowed.")

    with pytest.raises(ChannelError) as caught:
        sms(channel)

    error = caught.value
    assert error.permanent
    assert error.code == str(code)
    assert error.retry_after is None
    assert error.reason == f"Twilio error {code}: {PERMANENT_ERRORS[code]}"
    assert "91234567" not in error.reason


@pytest.mark.parametrize(
    ("to", "code", "words"),
    [
        ("+15005550001", "21211", "not a valid phone number"),
        ("+15005550002", "21612", "cannot receive SMS"),
        ("+15005550003", "21408", "not enabled"),
        ("+15005550004", "21610", "replied STOP"),
        ("+15005550009", "21614", "not a mobile number"),
    ],
)
def test_twilio_magic_numbers_map_for_sms(
    channel: TwilioChannel, to: str, code: str, words: str
) -> None:
    with pytest.raises(ChannelError) as caught:
        sms(channel, to)
    assert (caught.value.code, caught.value.permanent) == (code, True)
    assert words in caught.value.reason
    assert "5005550" not in caught.value.reason


@pytest.mark.parametrize(
    ("to", "code"),
    [("+15005550001", "21217"), ("+15005550002", "21214"), ("+15005550003", "21215")],
)
def test_twilio_magic_numbers_map_for_calls(channel: TwilioChannel, to: str, code: str) -> None:
    with pytest.raises(ChannelError) as caught:
        call(channel, to)
    assert (caught.value.code, caught.value.permanent) == (code, True)
    assert "5005550" not in caught.value.reason


def test_call_dial_errors_13223_13224_are_permanent(
    channel: TwilioChannel, fake: FakeTwilio
) -> None:
    for code in (13223, 13224):
        fake.fail_next(400, code=code, message=f"Dial: invalid phone number {TO}")
        with pytest.raises(ChannelError) as caught:
            call(channel)
        assert (caught.value.code, caught.value.permanent) == (str(code), True)


def test_unknown_4xx_code_is_permanent_without_twilio_message(
    channel: TwilioChannel, fake: FakeTwilio
) -> None:
    fake.fail_next(400, code=21999, message=f"Something about {TO}")
    with pytest.raises(ChannelError) as caught:
        sms(channel)
    assert caught.value.permanent and caught.value.code == "21999"
    assert "HTTP 400" in caught.value.reason and "errors/21999" in caught.value.reason
    assert TO not in caught.value.reason and "Something" not in caught.value.reason


def test_rate_limit_20429_is_transient_with_retry_after(
    channel: TwilioChannel, fake: FakeTwilio
) -> None:
    fake.fail_next(429, code=20429, message="Too Many Requests", retry_after=7)
    with pytest.raises(ChannelError) as caught:
        sms(channel)
    error = caught.value
    assert (error.code, error.permanent, error.retry_after) == ("20429", False, 7.0)
    assert "too many requests" in error.reason


def test_http_429_without_code_takes_retry_after_as_http_date(
    channel: TwilioChannel, fake: FakeTwilio
) -> None:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    fake.fail_next(429, body="", retry_after=email.utils.format_datetime(when, usegmt=True))
    with pytest.raises(ChannelError) as caught:
        sms(channel)
    error = caught.value
    assert not error.permanent and error.code is None
    assert error.retry_after is not None and 25 <= error.retry_after <= 31


def test_429_without_retry_after_leaves_backoff_to_dispatcher(
    channel: TwilioChannel, fake: FakeTwilio
) -> None:
    fake.fail_next(429, code=20429, message="Too Many Requests")
    with pytest.raises(ChannelError) as caught:
        sms(channel)
    assert caught.value.retry_after is None and not caught.value.permanent


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_transient(channel: TwilioChannel, fake: FakeTwilio, status: int) -> None:
    fake.fail_next(status, body="<html>Bad gateway</html>")
    with pytest.raises(ChannelError) as caught:
        call(channel)
    assert not caught.value.permanent
    assert caught.value.reason.startswith(f"Twilio HTTP {status}:")


def test_twilio_5xx_code_is_transient(channel: TwilioChannel, fake: FakeTwilio) -> None:
    fake.fail_next(503, code=20503, message="Service unavailable", retry_after="2")
    with pytest.raises(ChannelError) as caught:
        sms(channel)
    assert (caught.value.code, caught.value.permanent, caught.value.retry_after) == (
        "20503",
        False,
        2.0,
    )


def test_read_timeout_is_transient_and_says_it_may_have_arrived(
    channel: TwilioChannel, fake: FakeTwilio
) -> None:
    fake.timeout_next()
    with pytest.raises(ChannelError) as caught:
        sms(channel)
    assert not caught.value.permanent
    assert "did not answer within 10 s" in caught.value.reason
    assert "may have reached" in caught.value.reason


def test_connect_timeout_and_connection_error_are_transient(
    channel: TwilioChannel, fake: FakeTwilio
) -> None:
    fake.timeout_next(connect=True)
    with pytest.raises(ChannelError) as caught:
        sms(channel)
    assert not caught.value.permanent and "could not connect" in caught.value.reason

    fake.drop_next()
    with pytest.raises(ChannelError) as caught:
        call(channel)
    assert not caught.value.permanent and "connection error" in caught.value.reason


def test_unreadable_success_body_is_transient(channel: TwilioChannel, fake: FakeTwilio) -> None:
    fake.fail_next(201, body="not json")
    with pytest.raises(ChannelError) as caught:
        sms(channel)
    assert not caught.value.permanent and "could not be read" in caught.value.reason


def test_channel_recovers_after_a_failure(channel: TwilioChannel, fake: FakeTwilio) -> None:
    fake.fail_next(500, body="")
    with pytest.raises(ChannelError):
        sms(channel)
    assert sms(channel).provider_id in fake.messages


def test_logs_carry_no_phone_number(
    channel: TwilioChannel, fake: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sms(channel)
    fake.fail_next(400, code=21211, message=f"The 'To' number {TO} is not a valid phone number.")
    with pytest.raises(ChannelError):
        sms(channel)
    assert "twilio sms" in caplog.text
    assert "91234567" not in caplog.text
    assert "Hello" not in caplog.text


# --- base URL ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        (
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json",
            "http://127.0.0.1:9000",
            "http://127.0.0.1:9000/2010-04-01/Accounts/AC1/Messages.json",
        ),
        (
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Calls.json",
            "https://twilio-mock.staging.example/prefix/",
            "https://twilio-mock.staging.example/prefix/2010-04-01/Accounts/AC1/Calls.json",
        ),
        (
            "https://api.dublin.ie1.twilio.com/2010-04-01/Accounts/AC1/Calls.json",
            "http://localhost:1",
            "http://localhost:1/2010-04-01/Accounts/AC1/Calls.json",
        ),
        ("https://example.org/x", "http://localhost:1", "https://example.org/x"),
    ],
)
def test_rewrite_base_url(url: str, base: str, expected: str) -> None:
    assert rewrite_base_url(url, base) == expected


def test_base_url_override_applies_to_an_injected_client(fake: FakeTwilio) -> None:
    channel = TwilioChannel(settings(twilio_api_base_url="http://twilio.test:8080/"), fake)
    sms(channel)
    assert fake.requests[0].url.startswith("http://twilio.test:8080/2010-04-01/Accounts/")


def test_real_sdk_reaches_local_server_through_base_url() -> None:
    with FakeTwilioServer(ACCOUNT, TOKEN) as server:
        channel = TwilioChannel(settings(twilio_api_base_url=server.base_url))

        text = sms(channel)
        voice = call(channel)

        assert text.provider_id in server.messages and voice.provider_id in server.calls
        message, placed = server.requests
        assert message.form == {"To": TO, "From": FROM, "Body": "Hello", "StatusCallback": CALLBACK}
        assert message.auth == (ACCOUNT, TOKEN)
        assert message.headers[IDEMPOTENCY_HEADER.lower()] == "k-1"
        assert placed.form["StatusCallbackEvent"] == CALL_STATUS_EVENTS
        assert placed.form["Twiml"] == "<Response><Say>Hi</Say></Response>"


def test_local_server_errors_map_like_twilio() -> None:
    with FakeTwilioServer(ACCOUNT, TOKEN) as server:
        channel = TwilioChannel(settings(twilio_api_base_url=server.base_url))

        server.fail_next(400, code=21610, message=f"Attempt to send to unsubscribed {TO}")
        with pytest.raises(ChannelError) as caught:
            sms(channel)
        assert (caught.value.code, caught.value.permanent) == ("21610", True)

        server.fail_next(429, code=20429, message="Too Many Requests", retry_after=3)
        with pytest.raises(ChannelError) as caught:
            sms(channel)
        assert (caught.value.permanent, caught.value.retry_after) == (False, 3.0)

        with pytest.raises(ChannelError) as caught:
            sms(channel, "+15005550001")
        assert caught.value.code == "21211"


def test_local_server_stall_and_drop_are_transient() -> None:
    with FakeTwilioServer(ACCOUNT, TOKEN) as server:
        channel = TwilioChannel(settings(twilio_api_base_url=server.base_url), request_timeout=0.3)

        server.timeout_next(stall_seconds=1.0)
        with pytest.raises(ChannelError) as caught:
            sms(channel)
        assert not caught.value.permanent and "within 0.3 s" in caught.value.reason

        server.drop_next()
        with pytest.raises(ChannelError) as caught:
            sms(channel)
        assert not caught.value.permanent

        assert sms(channel).provider_id in server.messages


def test_unreachable_base_url_is_a_transient_connection_error() -> None:
    with FakeTwilioServer() as server:
        base = server.base_url  # a port that is free again once the server stops
    channel = TwilioChannel(settings(twilio_api_base_url=base), request_timeout=1.0)
    with pytest.raises(ChannelError) as caught:
        sms(channel)
    assert not caught.value.permanent and "could not connect" in caught.value.reason


def test_server_delay_is_applied() -> None:
    with FakeTwilioServer(ACCOUNT, TOKEN, delay=0.05) as server:
        channel = TwilioChannel(settings(twilio_api_base_url=server.base_url))
        started = dt.datetime.now(dt.UTC)
        sms(channel)
        assert dt.datetime.now(dt.UTC) - started >= dt.timedelta(seconds=0.05)


def test_concurrent_sends_reuse_their_connections() -> None:
    """As many connections kept open as the dispatcher sends at once: a second burst opens
    none (the SDK's own pool kept 6 and threw the others away, a new TLS handshake each)."""
    with FakeTwilioServer(ACCOUNT, TOKEN, delay=0.05) as server:
        channel = TwilioChannel(
            settings(twilio_api_base_url=server.base_url, dispatch_concurrency=12)
        )
        with ThreadPoolExecutor(12) as pool:
            for _burst in range(2):
                list(pool.map(lambda n: sms(channel, f"+8529123{n:04d}"), range(12)))
        assert len(server.messages) == 24
        assert len(server.connections) <= 12


def test_status_callback_form_looks_like_twilio(channel: TwilioChannel, fake: FakeTwilio) -> None:
    sid = sms(channel).provider_id
    url, form = fake.status_callback_form(sid, "delivered")
    assert url == CALLBACK
    assert form["MessageSid"] == sid and form["MessageStatus"] == "delivered"
    assert form["AccountSid"] == ACCOUNT
