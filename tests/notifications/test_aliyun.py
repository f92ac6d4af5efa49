# Chinese template texts use fullwidth punctuation on purpose.
# ruff: noqa: RUF001
"""Alibaba Cloud SMS for mainland-China numbers: `AliyunSmsSender` through the real SDK against a
local fake at the HTTP boundary (tests/notifications/fake_aliyun.py), which checks the SDK's
ACS3-HMAC-SHA256 signature; its delivery reports by `QuerySendDetails` polling."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from notifications import runtime
from notifications.aliyun import reports
from notifications.aliyun.sms import (
    PERMANENT_ERRORS,
    TRANSIENT_ERRORS,
    AliyunSmsSender,
    parse_endpoint,
)
from notifications.channels import ChannelError, ChannelRegistry, Outgoing, Text
from notifications.console_channel import ConsoleChannel
from notifications.dispatcher import Dispatcher
from tests.notifications.fake_aliyun import FakeAliyunServer
from tests.notifications.test_dispatcher import _rows, report_found  # noqa: F401 (a fixture)
from tests.notifications.test_routes import Provider
from welfare.channels import ChannelKind
from welfare.db import utcnow
from welfare.incidents import timeline
from welfare.outbox.models import OutboxMessage, OutboxStatus
from welfare.settings import Settings

KEY_ID = "LTAI5tTestKeyId000000000"
SECRET = "test-access-key-secret"
SIGN = "翠园物业"
SON = "+8613800138000"
DAUGHTER = "+8613900139000"
# Approved templates as Alibaba holds them: their variables are the Text's field names.
APPROVED = {
    "SMS_100001": "${site_name}：您作为紧急联系人的住户已在${location}找到。请致电${office_phone}，"
    "编号${reference}。回复：${link}",
    "SMS_100002": "${site_name}: the resident was found at ${location}. Call ${office_phone}. "
    "Ref ${reference}. ${link}",
    "SMS_100003": "${site_name}：编号${reference}的事件已结束。${at}",
}
TEMPLATES = {
    "found_alert": {"zh-CN": "SMS_100001", "en": "SMS_100002"},
    "all_clear": {"zh-CN": "SMS_100003"},
}


@pytest.fixture
def fake() -> Iterator[FakeAliyunServer]:
    with FakeAliyunServer(KEY_ID, SECRET, sign_names={SIGN}, templates=APPROVED) as server:
        yield server


def aliyun_settings(
    fake: FakeAliyunServer, base: Settings | None = None, **changes: Any
) -> Settings:
    values: dict[str, Any] = {
        "aliyun_access_key_id": KEY_ID,
        "aliyun_access_key_secret": SECRET,
        "aliyun_sign_name": SIGN,
        "aliyun_endpoint": fake.endpoint,
        "aliyun_templates": TEMPLATES,
    } | changes
    if base is not None:
        return base.model_copy(update=values)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def sender(fake: FakeAliyunServer) -> AliyunSmsSender:
    return AliyunSmsSender(aliyun_settings(fake), request_timeout=1.0)


FIELDS = {
    "site_name": "翠园",
    "location": "3号楼大堂",
    "office_phone": "+852 2345 6789",
    "reference": "INC-7K2Q",
    "link": "https://welfare.test/r/abc",
}


def outgoing(
    to: str = SON,
    *,
    language: str = "zh-CN",
    template: str = "found_alert",
    kind: ChannelKind = ChannelKind.sms,
    fields: dict[str, str] | None = None,
) -> Outgoing:
    return Outgoing(
        message_id=uuid.uuid4(),
        kind=kind,
        to=to,
        language=language,
        idempotency_key=uuid.uuid4().hex,
        content=Text(
            "the rendered body, never sent to Aliyun", dict(FIELDS if fields is None else fields)
        ),
        template=template,
    )


# --- sending --------------------------------------------------------------------------------------


def test_an_sms_is_the_approved_template_with_the_texts_fields_and_the_row_id(
    sender: AliyunSmsSender, fake: FakeAliyunServer
) -> None:
    message = outgoing()
    accepted = sender.send(message)
    [request] = fake.sent()
    assert request.query["PhoneNumbers"] == "8613800138000"  # +86 without the +
    assert request.query["SignName"] == SIGN
    assert request.query["TemplateCode"] == "SMS_100001"
    assert json.loads(request.query["TemplateParam"]) == FIELDS
    assert request.query["OutId"] == str(message.message_id)
    assert "body" not in request.query["TemplateParam"]  # our free text is not what goes out
    [sms] = fake.messages.values()
    assert accepted.provider_id == sms.biz_id


def test_the_template_follows_the_contacts_language(
    sender: AliyunSmsSender, fake: FakeAliyunServer
) -> None:
    sender.send(outgoing(language="en-GB"))
    sender.send(outgoing(language="zh-Hant-HK"))  # any Chinese reads the Simplified template
    assert [r.query["TemplateCode"] for r in fake.sent()] == ["SMS_100002", "SMS_100001"]


def test_a_template_without_a_code_for_the_language_fails_permanently_in_words(
    sender: AliyunSmsSender, fake: FakeAliyunServer
) -> None:
    with pytest.raises(ChannelError) as failed:
        sender.send(outgoing(language="en", template="all_clear"))
    assert failed.value.reason == "no Aliyun template for all_clear in en"
    assert failed.value.permanent
    with pytest.raises(ChannelError, match="no Aliyun template for coming_notice in zh-CN"):
        sender.send(outgoing(template="coming_notice"))
    assert fake.requests == []


def test_only_mainland_numbers_and_only_sms_are_carried(
    sender: AliyunSmsSender, fake: FakeAliyunServer
) -> None:
    with pytest.raises(ChannelError, match=r"only mainland-China \(\+86\)") as failed:
        sender.send(outgoing("+85291234567"))
    assert failed.value.permanent
    with pytest.raises(ChannelError, match="calls to \\+86 go through Twilio") as failed:
        sender.send(outgoing(kind=ChannelKind.voice))
    assert failed.value.permanent
    assert fake.requests == []


def test_the_rate_limit_counts_per_sign_name(sender: AliyunSmsSender) -> None:
    assert sender.rate_key(ChannelKind.sms) == f"sms:aliyun:{SIGN}"


def test_the_fake_checks_the_sdks_signature_so_a_wrong_secret_or_key_is_permanent(
    fake: FakeAliyunServer,
) -> None:
    wrong_secret = AliyunSmsSender(aliyun_settings(fake, aliyun_access_key_secret="not-it"))
    with pytest.raises(ChannelError) as failed:
        wrong_secret.send(outgoing())
    assert (failed.value.code, failed.value.permanent) == ("SignatureDoesNotMatch", True)
    assert "secret is wrong" in failed.value.reason
    wrong_key = AliyunSmsSender(aliyun_settings(fake, aliyun_access_key_id="LTAIother"))
    with pytest.raises(ChannelError) as failed:
        wrong_key.send(outgoing())
    assert (failed.value.code, failed.value.permanent) == ("InvalidAccessKeyId.NotFound", True)
    assert fake.messages == {}


def test_an_unapproved_sign_name_or_template_is_permanent(fake: FakeAliyunServer) -> None:
    unsigned = AliyunSmsSender(aliyun_settings(fake, aliyun_sign_name="某公司"))
    with pytest.raises(ChannelError) as failed:
        unsigned.send(outgoing())
    assert (failed.value.code, failed.value.permanent) == ("isv.SMS_SIGNATURE_ILLEGAL", True)
    unknown = AliyunSmsSender(
        aliyun_settings(fake, aliyun_templates={"found_alert": {"zh-CN": "SMS_999"}})
    )
    with pytest.raises(ChannelError) as failed:
        unknown.send(outgoing())
    assert (failed.value.code, failed.value.permanent) == ("isv.SMS_TEMPLATE_ILLEGAL", True)


def test_a_variable_the_message_does_not_fill_is_permanent(
    sender: AliyunSmsSender, fake: FakeAliyunServer
) -> None:
    with pytest.raises(ChannelError) as failed:
        sender.send(outgoing(fields={"site_name": "翠园"}))
    assert (failed.value.code, failed.value.permanent) == ("isv.TEMPLATE_MISSING_PARAMETERS", True)


def test_a_number_that_is_no_mainland_mobile_is_permanent(sender: AliyunSmsSender) -> None:
    with pytest.raises(ChannelError) as failed:
        sender.send(outgoing("+861012345678"))  # a Beijing landline
    assert (failed.value.code, failed.value.permanent) == ("isv.MOBILE_NUMBER_ILLEGAL", True)
    assert "not a valid mainland mobile number" in failed.value.reason


@pytest.mark.parametrize("code", sorted(PERMANENT_ERRORS))
def test_each_permanent_code_fails_at_once_in_our_words(
    sender: AliyunSmsSender, fake: FakeAliyunServer, code: str
) -> None:
    status = 404 if code.startswith("InvalidAccessKeyId") else 400 if "." not in code else 200
    fake.fail_next(code, status=status)
    with pytest.raises(ChannelError) as failed:
        sender.send(outgoing())
    assert failed.value.permanent and failed.value.code == code
    assert failed.value.reason == f"Aliyun {code}: {PERMANENT_ERRORS[code]}"
    assert "138" not in failed.value.reason  # Aliyun's message quotes the number; ours does not


@pytest.mark.parametrize("code", sorted(TRANSIENT_ERRORS))
def test_each_transient_code_is_retried(
    sender: AliyunSmsSender, fake: FakeAliyunServer, code: str
) -> None:
    status = {"ServiceUnavailable": 503, "InternalError": 500}.get(code, 400)
    status = 200 if code.startswith(("isv.", "isp.")) else status
    fake.fail_next(code, status=status)
    with pytest.raises(ChannelError) as failed:
        sender.send(outgoing())
    assert not failed.value.permanent and failed.value.code == code
    assert failed.value.reason == f"Aliyun {code}: {TRANSIENT_ERRORS[code]}"


def test_flow_control_on_one_number_waits_a_minute(
    sender: AliyunSmsSender, fake: FakeAliyunServer
) -> None:
    fake.fail_next("isv.BUSINESS_LIMIT_CONTROL")
    with pytest.raises(ChannelError) as failed:
        sender.send(outgoing())
    assert failed.value.retry_after == 60.0


def test_throttling_takes_alibabas_wait_in_milliseconds(
    sender: AliyunSmsSender, fake: FakeAliyunServer
) -> None:
    fake.fail_next("Throttling.User", status=400, retry_after_ms=2500)
    with pytest.raises(ChannelError) as failed:
        sender.send(outgoing())
    assert (failed.value.permanent, failed.value.retry_after) == (False, 2.5)


def test_unknown_codes_are_permanent_when_refused_and_transient_when_aliyun_failed(
    sender: AliyunSmsSender, fake: FakeAliyunServer
) -> None:
    fake.fail_next("isv.SOMETHING_NEW")
    fake.fail_next("isp.SOMETHING_NEW")
    fake.fail_next("Gateway.Timeout", status=504)
    answers = []
    for _ in range(3):
        with pytest.raises(ChannelError) as failed:
            sender.send(outgoing())
        answers.append((failed.value.code, failed.value.permanent))
    assert answers == [
        ("isv.SOMETHING_NEW", True),
        ("isp.SOMETHING_NEW", False),
        ("Gateway.Timeout", False),
    ]


def test_network_failures_and_unreadable_answers_are_transient(
    sender: AliyunSmsSender, fake: FakeAliyunServer
) -> None:
    fake.drop_next()
    fake.stall_next(2.0)  # over the sender's 1 s
    fake.garble_next()
    reasons = []
    for _ in range(3):
        with pytest.raises(ChannelError) as failed:
            sender.send(outgoing())
        assert not failed.value.permanent
        reasons.append(failed.value.reason)
    assert reasons == [
        "could not connect to Aliyun (connection error)",
        "Aliyun did not answer within 1 s (the request may have reached Aliyun)",
        "Aliyun's answer could not be read (RuntimeError)",
    ]


def test_nothing_logged_carries_the_number(
    sender: AliyunSmsSender, fake: FakeAliyunServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.fail_next("isv.MOBILE_NUMBER_ILLEGAL")
    fake.drop_next()
    for _ in range(2):
        with pytest.raises(ChannelError):
            sender.send(outgoing())
    sender.send(outgoing())
    assert caplog.records
    assert "13800138000" not in caplog.text


def test_each_sdk_request_has_a_nonce_of_its_own(
    sender: AliyunSmsSender, fake: FakeAliyunServer
) -> None:
    for _ in range(3):
        sender.send(outgoing())
    nonces = {r.headers["x-acs-signature-nonce"] for r in fake.sent()}
    assert len(nonces) == 3 and len(fake.messages) == 3


# --- settings -------------------------------------------------------------------------------------


def test_the_endpoint_is_a_host_over_https_or_a_url() -> None:
    assert parse_endpoint("dysmsapi.aliyuncs.com") == ("https", "dysmsapi.aliyuncs.com")
    assert parse_endpoint("http://127.0.0.1:8123/") == ("http", "127.0.0.1:8123")
    with pytest.raises(ValueError, match="host or an http"):
        parse_endpoint("ftp://example.org")


def test_a_template_table_with_an_unknown_template_or_language_is_refused_in_words(
    fake: FakeAliyunServer,
) -> None:
    with pytest.raises(ValueError, match="names found_alerts, which is no SMS template"):
        AliyunSmsSender(aliyun_settings(fake, aliyun_templates={"found_alerts": {"en": "SMS_1"}}))
    with pytest.raises(ValidationError, match="has a code for 'zh'; the languages are en, zh-CN"):
        Settings(_env_file=None, aliyun_templates={"found_alert": {"zh": "SMS_1"}})  # type: ignore[call-arg]


def test_without_credentials_the_sender_is_refused() -> None:
    with pytest.raises(ValueError, match="WELFARE_ALIYUN_ACCESS_KEY_ID"):
        AliyunSmsSender(Settings(_env_file=None, aliyun_sign_name=SIGN))  # type: ignore[call-arg]


def test_the_templates_setting_is_json_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WELFARE_ALIYUN_TEMPLATES", '{"found_alert": {"zh-CN": "SMS_123"}}')
    assert Settings(_env_file=None).aliyun_templates == {"found_alert": {"zh-CN": "SMS_123"}}  # type: ignore[call-arg]


# --- through the dispatcher -----------------------------------------------------------------------


@pytest.fixture
def report_sms_only(report_found: Callable[..., uuid.UUID]) -> Callable[..., uuid.UUID]:  # noqa: F811
    """A resident found, whose contacts are (relationship, phone, language) and take SMS only."""
    return partial(report_found, location="3号楼大堂", channels=["sms"])


@pytest.fixture
def mainland(report_sms_only: Callable[..., uuid.UUID]) -> uuid.UUID:
    return report_sms_only(
        ("son", "+86 138 0013 8000", "zh-CN"), ("daughter", "+86 139 0013 9000", "en")
    )


@pytest.fixture
def dispatcher(
    writers: sessionmaker[Session], settings: Settings, fake: FakeAliyunServer
) -> Dispatcher:
    configured = aliyun_settings(fake, settings)
    sms = AliyunSmsSender(configured, request_timeout=2.0)
    registry = ChannelRegistry({ChannelKind.sms: sms, ChannelKind.voice: ConsoleChannel()})
    return Dispatcher(writers, registry, configured)


def _events(db: Session, incident_id: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
    db.expire_all()
    events = [(e.type, dict(e.detail)) for e in timeline.events_of(db, incident_id)]
    db.rollback()
    return events


def test_a_found_alert_to_a_mainland_contact_goes_out_through_aliyun_without_names(
    db: Session, dispatcher: Dispatcher, fake: FakeAliyunServer, mainland: uuid.UUID
) -> None:
    assert dispatcher.run_once() == 1  # the son's step first
    [request] = fake.sent()
    assert request.query["PhoneNumbers"] == "8613800138000"
    assert request.query["TemplateCode"] == "SMS_100001"
    params = json.loads(request.query["TemplateParam"])
    assert set(params) == {"site_name", "location", "office_phone", "reference", "link"}
    assert params["location"] == "3号楼大堂"
    assert params["link"].startswith("https://welfare.test/r/")
    everything = json.dumps(request.query, ensure_ascii=False)
    for private in ("Wang", "Jianguo", "Mr.", "Alzheimer", "grandson"):
        assert private not in everything
    [row] = _rows(db, mainland)
    assert row.status == OutboxStatus.sent
    assert request.query["OutId"] == str(row.id)
    assert (row.provider, row.provider_id) == ("aliyun", next(iter(fake.messages)))


def test_a_permanent_aliyun_error_moves_the_escalation_on(
    db: Session, dispatcher: Dispatcher, fake: FakeAliyunServer, mainland: uuid.UUID
) -> None:
    fake.fail_next("isv.MOBILE_NUMBER_ILLEGAL")
    dispatcher.run_once()
    rows = {row.to_phone: row for row in _rows(db, mainland)}
    son = rows[SON]
    assert (son.status, son.error_code) == (OutboxStatus.failed, "isv.MOBILE_NUMBER_ILLEGAL")
    assert rows[DAUGHTER].status == OutboxStatus.pending  # queued at once, not minutes later
    assert (
        son.error_reason
        == "Aliyun isv.MOBILE_NUMBER_ILLEGAL: " + PERMANENT_ERRORS["isv.MOBILE_NUMBER_ILLEGAL"]
    )
    types = [t for t, _ in _events(db, mainland)]
    assert "failed" in types and "step_failed" in types
    dispatcher.run_once()  # the daughter's step was pulled forward: it goes out now
    assert [r.query["PhoneNumbers"] for r in fake.sent()] == ["8613800138000", "8613900139000"]
    assert fake.sent()[1].query["TemplateCode"] == "SMS_100002"  # her language is English


def test_aliyun_flow_control_retries_the_same_sms_a_minute_later(
    db: Session,
    dispatcher: Dispatcher,
    fake: FakeAliyunServer,
    mainland: uuid.UUID,
    writers: sessionmaker[Session],
) -> None:
    fake.fail_next("isv.BUSINESS_LIMIT_CONTROL")
    before = utcnow()
    dispatcher.run_once()
    [son] = _rows(db, mainland)
    assert (son.status, son.attempts, son.error_code) == (
        OutboxStatus.pending,
        1,
        "isv.BUSINESS_LIMIT_CONTROL",  # 26 characters: the column holds Aliyun's codes
    )
    assert son.next_attempt_at >= before + dt.timedelta(seconds=60)
    assert "retry_scheduled" in [t for t, _ in _events(db, mainland)]
    assert dispatcher.run_once() == 0  # not before its time
    assert dispatcher.run_once(now=utcnow() + dt.timedelta(seconds=61)) >= 1
    assert _rows(db, mainland)[0].status == OutboxStatus.sent
    assert len(fake.messages) == 1


def test_a_missing_template_fails_the_row_in_words(
    db: Session,
    writers: sessionmaker[Session],
    settings: Settings,
    fake: FakeAliyunServer,
    report_sms_only: Callable[..., uuid.UUID],
) -> None:
    incident_id = report_sms_only(("son", "+86 138 0013 8000", "ko-KR"))
    configured = aliyun_settings(fake, settings)
    sms = AliyunSmsSender(configured)
    Dispatcher(writers, ChannelRegistry({ChannelKind.sms: sms}), configured).run_once()
    [row] = _rows(db, incident_id)
    assert (row.status, row.error_reason) == (
        OutboxStatus.failed,
        "no Aliyun template for found_alert in ko-KR",
    )
    failed = [d for t, d in _events(db, incident_id) if t == "failed"]
    assert failed[0]["reason"] == "no Aliyun template for found_alert in ko-KR"
    assert fake.requests == []


# --- delivery reports -----------------------------------------------------------------------------


def _biz_id(row: OutboxMessage) -> str:
    assert row.provider == "aliyun" and row.provider_id
    return row.provider_id


@pytest.fixture
def aliyun(dispatcher: Dispatcher) -> AliyunSmsSender:
    """The dispatcher's SMS sender, which also asks for the reports."""
    sender = dispatcher.channels.sender(ChannelKind.sms)
    assert isinstance(sender, AliyunSmsSender)
    return sender


@pytest.fixture
def son_sms(db: Session, dispatcher: Dispatcher, mainland: uuid.UUID) -> OutboxMessage:
    """The son's found alert, sent through Aliyun."""
    dispatcher.run_once()
    [row] = _rows(db, mainland)
    return row


def test_delivery_reports_land_on_the_timeline_once(
    db: Session,
    aliyun: AliyunSmsSender,
    fake: FakeAliyunServer,
    mainland: uuid.UUID,
    son_sms: OutboxMessage,
    writers: sessionmaker[Session],
) -> None:
    assert reports.poll_once(aliyun, writers) == 1  # waiting for the carrier: on its way
    fake.report(_biz_id(son_sms), 3)
    assert reports.poll_once(aliyun, writers) == 1
    [query] = fake.queries()[-1:]
    assert query.query["PhoneNumber"] == "13800138000" and query.query["BizId"] == _biz_id(son_sms)
    asked = len(fake.queries())
    assert reports.poll_once(aliyun, writers) == 0  # final: not asked again
    assert len(fake.queries()) == asked
    types = [t for t, _ in _events(db, mainland)]
    assert types.count("sent_to_carrier") == 1 and types.count("delivered") == 1
    assert _rows(db, mainland)[0].provider_status == "delivered"


def test_an_undelivered_report_carries_the_carriers_code_in_our_words(
    db: Session,
    aliyun: AliyunSmsSender,
    fake: FakeAliyunServer,
    mainland: uuid.UUID,
    son_sms: OutboxMessage,
    writers: sessionmaker[Session],
) -> None:
    fake.report(_biz_id(son_sms), 2, "MK:0001")
    assert reports.poll_once(aliyun, writers) == 1
    [undelivered] = [d for t, d in _events(db, mainland) if t == "undelivered"]
    assert undelivered["error_code"] == "MK:0001"
    assert undelivered["reason"] == "the carrier reported the SMS as not delivered (Aliyun MK:0001)"
    [row] = _rows(db, mainland)
    assert (row.provider_status, row.error_code) == ("undelivered", "MK:0001")


def test_reports_stop_for_the_round_on_an_aliyun_error_and_come_next_round(
    db: Session,
    dispatcher: Dispatcher,
    aliyun: AliyunSmsSender,
    fake: FakeAliyunServer,
    report_sms_only: Callable[..., uuid.UUID],
    writers: sessionmaker[Session],
) -> None:
    first = report_sms_only(("son", "+86 138 0013 8000", "zh-CN"))
    second = report_sms_only(("son", "+86 139 0013 9000", "zh-CN"))
    dispatcher.run_once()
    for incident_id in (first, second):
        fake.report(_biz_id(_rows(db, incident_id)[0]), 3)
    fake.fail_next("Throttling.User", status=400)
    asked = len(fake.queries())
    assert reports.poll_once(aliyun, writers) == 0
    assert len(fake.queries()) == asked + 1  # the second row was not asked after the refusal
    assert reports.poll_once(aliyun, writers) == 2


def test_sms_older_than_the_report_window_are_no_longer_asked_about(
    db: Session,
    aliyun: AliyunSmsSender,
    fake: FakeAliyunServer,
    son_sms: OutboxMessage,
    writers: sessionmaker[Session],
) -> None:
    later = utcnow() + reports.REPORT_WINDOW + dt.timedelta(minutes=1)
    assert reports.poll_once(aliyun, writers, now=later) == 0
    assert fake.queries() == []


def test_an_sms_sent_around_beijing_midnight_is_looked_up_under_both_days() -> None:
    just_before = dt.datetime(2026, 12, 3, 15, 59, 30, tzinfo=dt.UTC)  # 23:59:30 in Beijing
    assert reports.send_dates(just_before) == [dt.date(2026, 12, 3), dt.date(2026, 12, 4)]
    assert reports.send_dates(just_before - dt.timedelta(hours=1)) == [dt.date(2026, 12, 3)]


def test_the_worker_round_starts_report_polls_at_their_interval_and_stop_waits_for_them(
    db: Session,
    dispatcher: Dispatcher,
    aliyun: AliyunSmsSender,
    fake: FakeAliyunServer,
    mainland: uuid.UUID,
    son_sms: OutboxMessage,
    writers: sessionmaker[Session],
) -> None:
    clock = [100.0]
    poller = reports.AliyunReportPoller(aliyun, writers, interval=60, clock=lambda: clock[0])
    round_, stop = runtime.worker_round(dispatcher, [poller])
    fake.report(_biz_id(son_sms), 3)
    round_()
    poller.close()  # the round ran in its own thread
    assert [t for t, _ in _events(db, mainland)].count("delivered") == 1
    asked = len(fake.queries())
    clock[0] += 30
    assert not poller.tick()  # not yet
    clock[0] += 31
    assert poller.tick()
    stop()
    assert len(fake.queries()) == asked  # nothing left to ask about: the round asked nothing
    assert poller._thread is None


def test_build_channels_adds_aliyun_only_when_its_credentials_are_set(
    settings: Settings, writers: sessionmaker[Session], fake: FakeAliyunServer
) -> None:
    without = runtime.build_channels(settings, writers)
    assert without.sender(ChannelKind.sms, "aliyun") is None
    assert runtime.report_pollers(settings, writers) == []
    configured = aliyun_settings(fake, settings)
    registry = runtime.build_channels(configured, writers)
    assert isinstance(registry.sender(ChannelKind.sms, "aliyun"), AliyunSmsSender)
    assert registry.sender(ChannelKind.voice, "aliyun") is None  # SMS only
    # A route picks it for +86; it is never every SMS's default sender.
    assert registry.sender(ChannelKind.sms) is registry.sender(ChannelKind.sms, "console")
    [poller] = runtime.report_pollers(configured, writers)
    assert isinstance(poller, reports.AliyunReportPoller)
    assert poller.interval == configured.aliyun_report_poll_seconds


def test_concurrent_sends_through_one_sender_each_reach_aliyun_once(
    sender: AliyunSmsSender, fake: FakeAliyunServer
) -> None:
    barrier = threading.Barrier(4)
    results: list[str] = []

    def send() -> None:
        barrier.wait()
        results.append(sender.send(outgoing()).provider_id)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 4 and len(fake.messages) == 4


def test_only_the_aliyun_package_imports_alibabas_sdk() -> None:
    from tests.notifications.test_channels import imports_outside

    sdk = ("alibabacloud_dysmsapi20170525", "alibabacloud_tea_openapi", "darabonba")
    assert imports_outside("notifications/aliyun", (*sdk, "notifications.aliyun")) == []


def test_two_workers_polling_at_once_record_each_report_once(
    db: Session,
    aliyun: AliyunSmsSender,
    fake: FakeAliyunServer,
    mainland: uuid.UUID,
    son_sms: OutboxMessage,
    writers: sessionmaker[Session],
) -> None:
    fake.report(_biz_id(son_sms), 3)
    barrier = threading.Barrier(2)
    recorded: list[int] = []

    def worker() -> None:
        barrier.wait()
        recorded.append(reports.poll_once(aliyun, writers))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(recorded) == [0, 1]
    assert [t for t, _ in _events(db, mainland)].count("delivered") == 1


# --- routes and fail-over (notifications/routes.py) -----------------------------------------------


@pytest.fixture
def routed(
    writers: sessionmaker[Session], settings: Settings, fake: FakeAliyunServer
) -> tuple[Dispatcher, Provider]:
    """+86 goes through Aliyun, then Twilio (a stand-in, the default sender of both kinds)."""
    configured = aliyun_settings(
        fake,
        settings,
        routes="+86=aliyun,twilio",
        twilio_account_sid="AC" + "1" * 32,
        twilio_auth_token="token",
        twilio_from_number="+15005550006",
    )
    twilio = Provider("twilio")
    registry = ChannelRegistry.every_kind(twilio)
    registry.register(ChannelKind.sms, AliyunSmsSender(configured, request_timeout=2.0))
    return Dispatcher(writers, registry, configured), twilio


def test_a_mainland_sms_aliyun_cannot_send_goes_once_through_twilio(
    db: Session, routed: tuple[Dispatcher, Provider], fake: FakeAliyunServer, mainland: uuid.UUID
) -> None:
    dispatcher, twilio = routed
    fake.fail_next("isv.AMOUNT_NOT_ENOUGH")  # the balance is used up: a person must top it up
    dispatcher.run_once()
    dispatcher.run_once()
    assert [item.to for item in twilio.sent] == [SON]
    assert len(fake.sent()) == 1  # Aliyun was asked once, never again for this message
    [failover] = [d for t, d in _events(db, mainland) if t == "failover"]
    assert (failover["from_provider"], failover["to_provider"]) == ("aliyun", "twilio")
    assert (
        failover["reason"]
        == "Aliyun isv.AMOUNT_NOT_ENOUGH: " + PERMANENT_ERRORS["isv.AMOUNT_NOT_ENOUGH"]
    )


def test_an_sms_aliyun_reports_undelivered_goes_once_through_twilio(
    db: Session,
    routed: tuple[Dispatcher, Provider],
    fake: FakeAliyunServer,
    mainland: uuid.UUID,
    writers: sessionmaker[Session],
) -> None:
    dispatcher, twilio = routed
    dispatcher.run_once()
    [row] = _rows(db, mainland)
    fake.report(_biz_id(row), 2, "MK:0001")
    aliyun = dispatcher.channels.sender(ChannelKind.sms, "aliyun")
    assert isinstance(aliyun, AliyunSmsSender)
    assert reports.poll_once(aliyun, writers, dispatcher.settings) == 1
    assert reports.poll_once(aliyun, writers, dispatcher.settings) == 0  # a repeat: no copy
    dispatcher.run_once()
    assert [item.to for item in twilio.sent] == [SON]
    types = [t for t, _ in _events(db, mainland)]
    assert types.count("undelivered") == 1 and types.count("failover") == 1
