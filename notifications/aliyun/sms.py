"""Alibaba Cloud SMS through its official SDK (`alibabacloud-dysmsapi20170525`).

Mainland carriers take only approved templates, never free text: each outbox template (found
alert, coming notice...) has, per language, an Aliyun TemplateCode approved by Alibaba
(`WELFARE_ALIYUN_TEMPLATES`), and the message's named values (the `Text`'s `fields`: site,
reference, office phone, link...) travel as its TemplateParam JSON. Our rendered body is not
sent. A template or language without a code fails permanently, in words.

- `SendSms(PhoneNumbers, SignName, TemplateCode, TemplateParam, OutId)`: the number is the
  E.164 +86 number without the "+" ("8613800138000"), OutId the outbox row's id. Aliyun answers
  HTTP 200 with Code "OK" and a BizId (the row's provider id), or with an error
  Code; signature, key and throttling errors come as HTTP 4xx/5xx with the same JSON.
- `QuerySendDetails(PhoneNumber, BizId, SendDate)`: the delivery report of one SMS
  (reports.py polls it).
- Only +86 numbers: another number fails permanently (a route must not send it here).
- Requests go to `WELFARE_ALIYUN_ENDPOINT` (a host, over https; or an http:// URL, for a local
  fake), signed ACS3-HMAC-SHA256 by the SDK, time out after `REQUEST_TIMEOUT_SECONDS` and are
  never retried by the SDK: the dispatcher owns retries.
- Errors: our own words for each code (`PERMANENT_ERRORS`, `TRANSIENT_ERRORS`), never Aliyun's
  message or the SDK's text, which quote the request URL and so the phone number.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import requests
from alibabacloud_dysmsapi20170525 import models as sms_models
from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException
from alibabacloud_tea_openapi.utils_models import Config
from darabonba.exceptions import RetryError, UnretryableException
from darabonba.runtime import RuntimeOptions

from notifications.channels import Accepted, ChannelError, Outgoing, Text
from notifications.messages import pick_language
from welfare.channels import ChannelKind
from welfare.settings import Settings

logger = logging.getLogger(__name__)

NAME = "aliyun"
REQUEST_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 5.0
MAINLAND = "+86"

# The outbox templates that are SMS (notifications/dispatcher.py renders them): a template
# table naming anything else has a typo and would never be used.
SMS_TEMPLATES = frozenset(
    {
        "found_alert",
        "welfare_concern_alert",
        "manager_escalation",
        "missing_alert",
        "coming_notice",
        "all_clear",
        "consent_review",
        "visit_reminder",
        "visit_overdue",
        "visit_missed",
        "visit_not_home",
        "visit_concern",
    }
)

# Codes where the same request cannot succeed later: the escalation moves on at once (to the
# next contact or channel, or a route's next provider).
PERMANENT_ERRORS: dict[str, str] = {
    # The number itself: sending it again sends the same number.
    "isv.MOBILE_NUMBER_ILLEGAL": "the number is not a valid mainland mobile number",
    "isv.MOBILE_COUNT_OVER_LIMIT": "the request names more numbers than Aliyun allows",
    # Our configuration: nothing changes until someone changes it.
    "isv.SMS_TEMPLATE_ILLEGAL": "the template code is unknown, not approved or not this account's",
    "isv.SMS_SIGNATURE_ILLEGAL": "the sign name is unknown or not approved",
    "isv.SMS_SIGNATURE_SCENE_ILLEGAL": "the sign name is not approved for this template's use",
    "isv.TEMPLATE_MISSING_PARAMETERS": "the template has a variable the message does not fill",
    "isv.TEMPLATE_PARAMS_ILLEGAL": "a value does not fit the template's variable rules",
    "isv.INVALID_JSON_PARAM": "the template parameters are not valid JSON",
    "isv.PARAM_LENGTH_LIMIT": "a value is longer than the template's variable allows",
    "isv.INVALID_PARAMETERS": "Aliyun found a request parameter invalid",
    "isv.DOMESTIC_NUMBER_NOT_SUPPORTED": "the template is international-only",
    "isv.BLACK_KEY_CONTROL_LIMIT": "the text contains a word the carriers block",
    "isv.SMS_CONTENT_ILLEGAL": "Aliyun refused the text's content",
    "isv.DENY_IP_RANGE": "this server's address may not use the Aliyun account",
    "SignatureDoesNotMatch": "the AccessKey secret is wrong (signature does not match)",
    "InvalidAccessKeyId.NotFound": "the AccessKey id is unknown",
    "InvalidAccessKeyId.Inactive": "the AccessKey is disabled",
    "Forbidden.RAM": "the AccessKey's RAM user may not send SMS",
    "isp.RAM_PERMISSION_DENY": "the AccessKey's RAM user may not send SMS",
    # The server's clock is more than 15 minutes off: every retry is signed with it too.
    "InvalidTimeStamp.Expired": "this server's clock differs from Aliyun's by over 15 minutes",
    # The account: no retry within the escalation's minutes can fix it; a person must.
    "isv.AMOUNT_NOT_ENOUGH": "the Aliyun account's balance is used up",
    "isv.OUT_OF_SERVICE": "the Aliyun account is suspended (overdue payment)",
    "isv.ACCOUNT_NOT_EXISTS": "the Aliyun account does not exist",
    "isv.ACCOUNT_ABNORMAL": "the Aliyun account is restricted",
    "isv.DAY_LIMIT_CONTROL": "the account's SMS limit for today is reached",
}
# Codes that say "try again later".
TRANSIENT_ERRORS: dict[str, str] = {
    # Per-number flow control (by default 1 a minute, 5 an hour, 10 a day to one number per
    # sign name): the next minute may pass.
    "isv.BUSINESS_LIMIT_CONTROL": "too many SMS to this number just now (flow control)",
    "Throttling": "Aliyun is limiting the request rate",
    "Throttling.User": "Aliyun is limiting the request rate",
    "Throttling.Api": "Aliyun is limiting the request rate",
    "isp.SYSTEM_ERROR": "Aliyun had an internal error",
    "isp.GATEWAY_ERROR": "Aliyun's gateway had an error",
    "InternalError": "Aliyun had an internal error",
    "ServiceUnavailable": "Aliyun is temporarily unavailable",
    "SignatureNonceUsed": "Aliyun saw this request's nonce before",  # a retry signs a new one
}
# Waits Aliyun does not say but that are known (seconds).
RETRY_AFTER: dict[str, float] = {"isv.BUSINESS_LIMIT_CONTROL": 60.0}


def error_from_aliyun(
    code: str | None, status: int = 200, *, retry_after: float | None = None
) -> ChannelError:
    """Our ChannelError for Aliyun's error `code` answered with HTTP `status`."""
    code = (code or "").strip() or None
    if code in PERMANENT_ERRORS:
        return ChannelError(f"Aliyun {code}: {PERMANENT_ERRORS[code]}", code=code, permanent=True)
    wait = retry_after if retry_after is not None else RETRY_AFTER.get(code or "")
    if code in TRANSIENT_ERRORS:
        return ChannelError(f"Aliyun {code}: {TRANSIENT_ERRORS[code]}", code=code, retry_after=wait)
    label = f"Aliyun {code}" if code else f"Aliyun HTTP {status}"
    if status >= 500 or status in (408, 429) or (code or "").startswith(("isp.", "Throttling")):
        return ChannelError(f"{label}: Aliyun could not take the request just now", code=code)
    return ChannelError(f"{label}: Aliyun refused the request", code=code, permanent=True)


def parse_endpoint(value: str) -> tuple[str, str]:
    """(protocol, host[:port]) of `WELFARE_ALIYUN_ENDPOINT`: a host means https."""
    value = value.strip().rstrip("/")
    if "://" not in value:
        return "https", value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"WELFARE_ALIYUN_ENDPOINT must be a host or an http(s) URL, not {value!r}")
    return parts.scheme, parts.netloc


def mainland_number(phone: str) -> str:
    """Aliyun's form of an E.164 +86 number: the digits without the "+"."""
    if not phone.startswith(MAINLAND) or not phone[1:].isdigit():
        raise ChannelError(
            "Aliyun carries only mainland-China (+86) numbers here", code=None, permanent=True
        )
    return phone[1:]


@dataclass(frozen=True)
class SendDetail:
    """One SMS's delivery report (QuerySendDetails): SendStatus 1 waiting for the carrier's
    receipt, 2 failed, 3 delivered; ErrCode the carrier's code ("DELIVERED" when delivered)."""

    send_status: int
    err_code: str | None
    phone: str | None
    out_id: str | None


class _WithoutQueryStrings(logging.Filter):
    """The SDK sends every SendSms parameter in the URL's query string, and urllib3 logs each
    request's URL at DEBUG: this keeps the path and drops the query (the phone number)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(arg, str) and "?" in arg for arg in record.args
        ):
            record.args = tuple(
                arg.split("?", 1)[0] + "?..." if isinstance(arg, str) and "?" in arg else arg
                for arg in record.args
            )
        return True


def hide_query_strings_in_http_logs() -> None:
    """Install the filter on urllib3's request log once (idempotent)."""
    http_log = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _WithoutQueryStrings) for f in http_log.filters):
        http_log.addFilter(_WithoutQueryStrings())


T = TypeVar("T")


class AliyunSmsSender:
    """A sender for the dispatcher (SMS only) and the delivery reports' source."""

    name = NAME

    def __init__(self, settings: Settings, *, request_timeout: float = REQUEST_TIMEOUT_SECONDS):
        if not settings.aliyun_configured:
            raise ValueError(
                "Aliyun needs WELFARE_ALIYUN_ACCESS_KEY_ID, WELFARE_ALIYUN_ACCESS_KEY_SECRET "
                "and WELFARE_ALIYUN_SIGN_NAME"
            )
        unknown = sorted(set(settings.aliyun_templates) - SMS_TEMPLATES)
        if unknown:
            raise ValueError(
                f"WELFARE_ALIYUN_TEMPLATES names {', '.join(unknown)}, which is no SMS template; "
                f"the templates are {', '.join(sorted(SMS_TEMPLATES))}"
            )
        protocol, host = parse_endpoint(settings.aliyun_endpoint)
        hide_query_strings_in_http_logs()
        self.sign_name = str(settings.aliyun_sign_name)
        self.templates: Mapping[str, Mapping[str, str]] = settings.aliyun_templates
        self._timeout = request_timeout
        self.client = Client(
            Config(
                access_key_id=settings.aliyun_access_key_id,
                access_key_secret=settings.aliyun_access_key_secret,
                endpoint=host,
                protocol=protocol,
                max_idle_conns=settings.dispatch_concurrency,
            )
        )
        self._runtime = RuntimeOptions(
            read_timeout=int(request_timeout * 1000),
            connect_timeout=int(min(CONNECT_TIMEOUT_SECONDS, request_timeout) * 1000),
            max_idle_conns=settings.dispatch_concurrency,
            autoretry=False,
        )

    def rate_key(self, kind: ChannelKind) -> str:
        """Aliyun's flow control counts per sign name (and per number, which Aliyun enforces)."""
        return f"{kind.value}:{NAME}:{self.sign_name}"

    def template_code(self, template: str, language: str | None) -> str:
        lang = pick_language(language)
        code = self.templates.get(template, {}).get(lang)
        if not code:
            raise ChannelError(f"no Aliyun template for {template} in {lang}", permanent=True)
        return code

    def send(self, outgoing: Outgoing) -> Accepted:
        content = outgoing.content
        if outgoing.kind is not ChannelKind.sms or not isinstance(content, Text):
            raise ChannelError(
                "Aliyun carries SMS only here; calls to +86 go through Twilio", permanent=True
            )
        request = sms_models.SendSmsRequest(
            phone_numbers=mainland_number(outgoing.to),
            sign_name=self.sign_name,
            template_code=self.template_code(outgoing.template, outgoing.language),
            template_param=json.dumps(
                {key: str(value) for key, value in content.fields.items()},
                ensure_ascii=False,
                separators=(",", ":"),
            ),
            out_id=str(outgoing.message_id),
        )
        response = self._call(
            "sms", lambda: self.client.send_sms_with_options(request, self._runtime)
        )
        body = response.body
        if body is None or (body.code or "") != "OK":
            raise _logged("sms", error_from_aliyun(body.code if body else None))
        if not body.biz_id:
            raise _logged("sms", ChannelError("Aliyun's answer carried no BizId"))
        logger.info("aliyun sms %s accepted", body.biz_id)
        return Accepted(provider_id=str(body.biz_id), status="accepted")

    def send_details(self, *, phone: str, biz_id: str, send_date: dt.date) -> list[SendDetail]:
        """The delivery reports Aliyun holds for the SMS `biz_id` sent to `phone` (E.164 +86)
        on `send_date` (Beijing time)."""
        request = sms_models.QuerySendDetailsRequest(
            phone_number=mainland_number(phone)[2:],  # the 11 digits, as QuerySendDetails wants
            biz_id=biz_id,
            send_date=send_date.strftime("%Y%m%d"),
            page_size=10,
            current_page=1,
        )
        response = self._call(
            "report", lambda: self.client.query_send_details_with_options(request, self._runtime)
        )
        body = response.body
        if body is None or (body.code or "") != "OK":
            raise _logged("report", error_from_aliyun(body.code if body else None))
        found = body.sms_send_detail_dtos.sms_send_detail_dto if body.sms_send_detail_dtos else []
        return [
            SendDetail(
                send_status=int(item.send_status or 0),
                err_code=item.err_code,
                phone=item.phone_num,
                out_id=item.out_id,
            )
            for item in found or []
        ]

    def _call(self, kind: str, action: Callable[[], T]) -> T:
        try:
            return action()
        except AlibabaCloudException as exc:
            retry_after = exc.retry_after / 1000 if exc.retry_after else None  # milliseconds
            raise _logged(
                kind, error_from_aliyun(exc.code, exc.status_code or 0, retry_after=retry_after)
            ) from exc
        except UnretryableException as exc:
            raise _logged(kind, self._unreachable(exc.inner_exception)) from exc
        except (ValueError, TypeError, KeyError) as exc:
            # A 2xx whose body is not Aliyun's JSON, or an SDK complaint.
            error = ChannelError(f"Aliyun's answer could not be read ({type(exc).__name__})")
            raise _logged(kind, error) from exc

    def _unreachable(self, inner: BaseException | None) -> ChannelError:
        """The SDK wraps network errors (RetryError, whose text quotes the URL) around the
        requests exception: our words from the latter's type."""
        cause = inner.__context__ if isinstance(inner, RetryError) else inner
        if isinstance(cause, requests.ConnectTimeout):
            return ChannelError("could not connect to Aliyun in time")
        if isinstance(cause, requests.Timeout):
            return ChannelError(
                f"Aliyun did not answer within {self._timeout:g} s "
                "(the request may have reached Aliyun)"
            )
        if isinstance(cause, requests.ConnectionError):
            return ChannelError("could not connect to Aliyun (connection error)")
        if isinstance(inner, (ValueError, TypeError, KeyError, RuntimeError)):  # its JSON parse
            return ChannelError(f"Aliyun's answer could not be read ({type(inner).__name__})")
        return ChannelError(f"the request to Aliyun failed ({type(inner).__name__})")


def _logged(kind: str, error: ChannelError) -> ChannelError:
    logger.warning(
        "aliyun %s failed: %s (code %s, %s)",
        kind,
        error.reason,
        error.code,
        "permanent" if error.permanent else "transient",
    )
    return error
