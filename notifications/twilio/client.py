"""Twilio's REST client: SMS and calls through the official SDK, errors as `ChannelError`.
It is also a sender for the dispatcher (`send`, through notifications/twilio/sender.py).

- SMS go through the messaging service when `WELFARE_TWILIO_MESSAGING_SERVICE_SID` is set (its
  sender pool and opt-out handling), otherwise from `WELFARE_TWILIO_FROM_NUMBER`. Calls always
  need the from-number; with only a messaging service every call fails permanently, saying so.
- Calls carry their TwiML inline (`twiml=`), ring for `CALL_RING_SECONDS`, and report
  initiated, ringing, answered and completed to the status callback.
- Answering-machine detection runs asynchronously (`MachineDetection=DetectMessageEnd`,
  `AsyncAmd=true`) when the caller gives a `machine_callback`: the script plays at once (a
  person hears no delay) while Twilio listens; its verdict (`AnsweredBy`) goes to that URL, and
  on a machine the webhook replaces the live call's TwiML with a short voicemail
  (`update_call`). DetectMessageEnd waits for the greeting's beep, so the voicemail is recorded
  whole.
- Status callback URLs are built by the caller (absolute, under `WELFARE_PUBLIC_BASE_URL`) and
  passed through unchanged.
- Every SDK request goes to `WELFARE_TWILIO_API_BASE_URL` (`RoutingHttpClient` rewrites the
  scheme and host of any `*.twilio.com` URL and keeps the path), so staging and tests can point
  the real SDK at a Twilio-compatible server. Requests time out after `REQUEST_TIMEOUT_SECONDS`
  and are never retried here: the dispatcher owns retries.
- The idempotency key travels as the `X-Welfare-Idempotency-Key` header. Twilio ignores it (its
  API has no idempotency keys); a Twilio-compatible fake can use it to spot a double send.
- Errors: the reason is our own words for the code, never Twilio's message, which can quote
  the phone number. See `PERMANENT_ERRORS` and `TRANSIENT_ERRORS`.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import email.utils
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from notifications.channels import Accepted, ChannelError, Outgoing
from notifications.twilio.sender import TwilioSender
from notifications.twilio.twiml import MAX_INLINE_TWIML
from welfare.channels import ChannelKind
from welfare.settings import Settings

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 10.0
CALL_RING_SECONDS = 25
CALL_STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]
# Answering-machine detection: report once the greeting's beep (or silence) ended.
MACHINE_DETECTION = "DetectMessageEnd"
IDEMPOTENCY_HEADER = "X-Welfare-Idempotency-Key"

# Twilio error codes where retrying the same request cannot help: the escalation moves on.
PERMANENT_ERRORS: dict[int, str] = {
    20003: "Twilio rejected the account credentials",
    20404: "the Twilio account or resource was not found",
    21211: "the number is not a valid phone number",
    21214: "the number cannot be reached by phone",
    21215: "calls to this country or region are not enabled on the Twilio account",
    21216: "the number is blocked for calls",
    21217: "the number does not appear to be a valid phone number",
    21219: "a trial account can only call verified numbers",
    21401: "the number is not a valid phone number",
    21408: "SMS to this country or region is not enabled on the Twilio account",
    21602: "the message has no text",
    21606: "the sending number cannot send SMS to this destination",
    21608: "a trial account can only send SMS to verified numbers",
    21610: "the recipient replied STOP and has unsubscribed from SMS from this sender",
    21612: "the number cannot receive SMS from this sender",
    21614: "the number is not a mobile number and cannot receive SMS",
    21617: "the message is longer than Twilio allows",
    21220: "the call is no longer in progress",
    13223: "the number is not in a valid format for calls",
    13224: "the number is not a valid phone number for calls",
    # WhatsApp: each of these sends the message by SMS instead (notifications/routes.py).
    63003: "WhatsApp could not find this number (it may not use WhatsApp)",
    63007: "the WhatsApp sender is not set up on the Twilio account",
    63016: "outside WhatsApp's 24-hour window, and no approved template for this message",
    63024: "the number cannot receive WhatsApp messages",
    63032: "WhatsApp would not deliver to this user (their choice or WhatsApp's limits)",
}
# Codes that say "try again later".
TRANSIENT_ERRORS: dict[int, str] = {
    14107: "Twilio's SMS rate limit was reached",
    20429: "Twilio is limiting the request rate (too many requests)",
    20500: "Twilio had an internal error",
    20503: "Twilio is temporarily unavailable",
}


# --- HTTP: base URL, timeout, idempotency header, response headers -----------------------------


@dataclass
class _Exchange:
    """What one channel call saw at the HTTP layer (for Retry-After)."""

    idempotency_key: str | None = None
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


_exchange: contextvars.ContextVar[_Exchange | None] = contextvars.ContextVar(
    "welfare_twilio_exchange", default=None
)


def rewrite_base_url(url: str, base_url: str) -> str:
    """Send a `https://*.twilio.com/...` URL to `base_url` (which may carry a path prefix)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not (host == "twilio.com" or host.endswith(".twilio.com")):
        return url
    base = urlsplit(base_url.rstrip("/"))
    return urlunsplit(
        parts._replace(scheme=base.scheme, netloc=base.netloc, path=base.path + parts.path)
    )


def pooled_http_client(timeout: float, connections: int) -> TwilioHttpClient:
    """The SDK's client, keeping a connection open for each of the dispatcher's concurrent
    sends. Its own pool keeps min(32, cores + 4), 6 here: with 32 sends in flight, most
    requests paid for a new TLS connection, and most connections were thrown away."""
    client = TwilioHttpClient(timeout=timeout)
    assert client.session is not None
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(connections, 1))
    for scheme in ("https://", "http://"):  # http: a local provider fake or gateway
        client.session.mount(scheme, adapter)
    return client


class RoutingHttpClient(HttpClient):
    """Wraps the HTTP client the SDK uses: base-URL rewrite, a default timeout, our header, and
    the response status and headers kept for the channel (the SDK's exceptions drop them)."""

    def __init__(
        self,
        *,
        base_url: str,
        inner: HttpClient | None = None,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        super().__init__(logger, False, timeout)
        self.base_url = base_url.rstrip("/")
        self.inner = inner or TwilioHttpClient(timeout=timeout)

    def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        exchange = _exchange.get()
        headers = dict(headers or {})
        if exchange is not None and exchange.idempotency_key:
            headers[IDEMPOTENCY_HEADER] = exchange.idempotency_key
        response = self.inner.request(
            method,
            rewrite_base_url(uri, self.base_url),
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout if timeout is not None else self.timeout,
            allow_redirects=allow_redirects,
        )
        if exchange is not None:
            exchange.status = response.status_code
            exchange.headers = {str(k).lower(): str(v) for k, v in (response.headers or {}).items()}
        return response


# --- Errors --------------------------------------------------------------------------------------


def retry_after_seconds(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) as seconds from now."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max((when - (now or dt.datetime.now(dt.UTC))).total_seconds(), 0.0)


def error_from_twilio(
    status: int, code: int | None, *, retry_after: float | None = None
) -> ChannelError:
    """Our ChannelError for Twilio's answer `status` with error `code` (both may be generic)."""
    if code is not None and code in PERMANENT_ERRORS:
        return ChannelError(
            f"Twilio error {code}: {PERMANENT_ERRORS[code]}", code=str(code), permanent=True
        )
    if code is not None and code in TRANSIENT_ERRORS:
        return ChannelError(
            f"Twilio error {code}: {TRANSIENT_ERRORS[code]}",
            code=str(code),
            retry_after=retry_after,
        )
    label = f"error {code}" if code is not None else f"HTTP {status}"
    code_text = str(code) if code is not None else None
    http = f" (HTTP {status})" if code is not None else ""
    if status == 429:
        return ChannelError(
            f"Twilio {label}: too many requests", code=code_text, retry_after=retry_after
        )
    if status >= 500 or status in (408, 409):
        return ChannelError(
            f"Twilio {label}: Twilio could not take the request just now{http}",
            code=code_text,
            retry_after=retry_after,
        )
    docs = f"; see https://www.twilio.com/docs/errors/{code}" if code is not None else ""
    return ChannelError(
        f"Twilio {label}: Twilio refused the request{http}{docs}",
        code=code_text,
        permanent=True,
    )


def _network_error(exc: requests.RequestException, timeout: float) -> ChannelError:
    if isinstance(exc, requests.ConnectTimeout):
        reason = f"could not connect to Twilio within {timeout:g} s"
    elif isinstance(exc, requests.Timeout):
        reason = f"Twilio did not answer within {timeout:g} s (the request may have reached Twilio)"
    elif isinstance(exc, requests.ConnectionError):
        reason = "could not connect to Twilio (connection error)"
    else:
        reason = f"the request to Twilio failed ({type(exc).__name__})"
    return ChannelError(reason)


def _logged(kind: str, error: ChannelError) -> ChannelError:
    logger.warning(
        "twilio %s failed: %s (code %s, %s)",
        kind,
        error.reason,
        error.code,
        "permanent" if error.permanent else "transient",
    )
    return error


# --- The channel ---------------------------------------------------------------------------------

T = TypeVar("T")


class TwilioChannel:
    name = "twilio"

    def __init__(
        self,
        settings: Settings,
        http_client: HttpClient | None = None,
        *,
        request_timeout: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        """`http_client`: the SDK's HTTP layer (tests pass a fake); it is wrapped either way, so
        the base URL, the timeout and the idempotency header always apply."""
        if not (settings.twilio_account_sid and settings.twilio_auth_token):
            raise ValueError(
                "Twilio needs WELFARE_TWILIO_ACCOUNT_SID and WELFARE_TWILIO_AUTH_TOKEN"
            )
        if not (settings.twilio_from_number or settings.twilio_messaging_service_sid):
            raise ValueError(
                "Twilio needs WELFARE_TWILIO_FROM_NUMBER or WELFARE_TWILIO_MESSAGING_SERVICE_SID"
            )
        self.settings = settings
        self._sender = TwilioSender(self, settings)
        self._from_number = settings.twilio_from_number
        self._whatsapp_from = settings.twilio_whatsapp_from
        self._messaging_service_sid = settings.twilio_messaging_service_sid
        self._timeout = request_timeout
        self.http_client = RoutingHttpClient(
            base_url=settings.twilio_api_base_url,
            inner=http_client or pooled_http_client(request_timeout, settings.dispatch_concurrency),
            timeout=request_timeout,
        )
        self.client = Client(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            http_client=self.http_client,
        )

    def send(self, outgoing: Outgoing) -> Accepted:
        """The dispatcher's neutral message as Twilio requests (notifications/twilio/sender.py)."""
        return self._sender.send(outgoing)

    def rate_key(self, kind: ChannelKind) -> str:
        return self._sender.rate_key(kind)

    def send_sms(
        self,
        *,
        to: str,
        body: str,
        status_callback: str | None,
        idempotency_key: str,
        language: str | None = None,
    ) -> Accepted:
        params: dict[str, Any] = {"to": to, "body": body}
        if self._messaging_service_sid:
            params["messaging_service_sid"] = self._messaging_service_sid
        else:
            params["from_"] = self._from_number
        if status_callback:
            params["status_callback"] = status_callback
        message = self._call("sms", idempotency_key, lambda: self.client.messages.create(**params))
        return self._accepted("sms", message.sid, message.status, default="queued")

    def send_whatsapp(
        self,
        *,
        to: str,
        body: str,
        status_callback: str | None,
        idempotency_key: str,
        content_sid: str | None = None,
        content_variables: dict[str, str] | None = None,
    ) -> Accepted:
        """A WhatsApp message: an approved template (`content_sid` with its numbered
        variables), which may start a conversation, or a free text, which WhatsApp delivers only
        within 24 hours of the person's last message (else 63016, and SMS takes over)."""
        if not self._whatsapp_from:
            raise ChannelError(
                "no WhatsApp sender is configured (WELFARE_TWILIO_WHATSAPP_FROM)", permanent=True
            )
        params: dict[str, Any] = {"to": f"whatsapp:{to}", "from_": self._whatsapp_from}
        if content_sid:
            params["content_sid"] = content_sid
            params["content_variables"] = json.dumps(content_variables or {}, ensure_ascii=False)
        else:
            params["body"] = body
        if status_callback:
            params["status_callback"] = status_callback
        message = self._call(
            "whatsapp", idempotency_key, lambda: self.client.messages.create(**params)
        )
        return self._accepted("whatsapp", message.sid, message.status, default="queued")

    def place_call(
        self,
        *,
        to: str,
        twiml: str,
        status_callback: str | None,
        idempotency_key: str,
        language: str | None = None,
        machine_callback: str | None = None,
    ) -> Accepted:
        if not self._from_number:
            raise ChannelError(
                "no caller number is configured (WELFARE_TWILIO_FROM_NUMBER); "
                "a messaging service cannot place calls",
                permanent=True,
            )
        if len(twiml) > MAX_INLINE_TWIML:
            raise ChannelError(
                f"the call script is longer than Twilio's {MAX_INLINE_TWIML} characters",
                permanent=True,
            )
        params: dict[str, Any] = {
            "to": to,
            "from_": self._from_number,
            "twiml": twiml,
            "timeout": CALL_RING_SECONDS,
        }
        if status_callback:
            params["status_callback"] = status_callback
            params["status_callback_event"] = CALL_STATUS_EVENTS
            params["status_callback_method"] = "POST"
        if machine_callback:
            params["machine_detection"] = MACHINE_DETECTION
            # The SDK types AsyncAmd as a string and sends it as given: Twilio's word is "true".
            params["async_amd"] = "true"
            params["async_amd_status_callback"] = machine_callback
            params["async_amd_status_callback_method"] = "POST"
        call = self._call("call", idempotency_key, lambda: self.client.calls.create(**params))
        return self._accepted("call", call.sid, call.status, default="queued")

    def update_call(self, *, provider_id: str, twiml: str) -> None:
        """Replace a live call's TwiML (the voicemail after an answering machine picked up).
        Twilio refuses it (21220) once the call has ended: a `ChannelError` like any other."""
        if len(twiml) > MAX_INLINE_TWIML:
            raise ChannelError(
                f"the call script is longer than Twilio's {MAX_INLINE_TWIML} characters",
                permanent=True,
            )
        self._call(
            "call update",
            f"update:{provider_id}",
            lambda: self.client.calls(provider_id).update(twiml=twiml),
        )
        logger.info("twilio call %s updated", provider_id)

    def _call(self, kind: str, idempotency_key: str, action: Callable[[], T]) -> T:
        exchange = _Exchange(idempotency_key=idempotency_key)
        token = _exchange.set(exchange)
        try:
            return action()
        except (TwilioRestException, TwilioServiceException) as exc:
            status = int(exc.status) if exc.status else (exchange.status or 0)
            code = exc.code if isinstance(exc.code, int) and exc.code != status else None
            retry_after = retry_after_seconds(exchange.headers.get("retry-after"))
            raise _logged(kind, error_from_twilio(status, code, retry_after=retry_after)) from exc
        except requests.RequestException as exc:
            raise _logged(kind, _network_error(exc, self._timeout)) from exc
        except (TwilioException, ValueError) as exc:
            # A 2xx whose body is not Twilio's JSON, or an SDK complaint.
            error = ChannelError(f"Twilio's answer could not be read ({type(exc).__name__})")
            raise _logged(kind, error) from exc
        finally:
            _exchange.reset(token)

    @staticmethod
    def _accepted(kind: str, sid: object, status: object, *, default: str) -> Accepted:
        if not sid:
            raise ChannelError("Twilio's answer carried no SID")
        word = str(getattr(status, "value", status) or default)
        logger.info("twilio %s %s accepted (%s)", kind, sid, word)
        return Accepted(provider_id=str(sid), status=word)
