"""A Twilio stand-in at the HTTP boundary, so the real SDK code path runs in tests.

- `FakeTwilio` is a `twilio.http.HttpClient`: pass it to `TwilioChannel(settings, fake)`.
- `FakeTwilioServer` answers the same way over real HTTP on 127.0.0.1 (an ephemeral port, in a
  thread); point the SDK at it with `WELFARE_TWILIO_API_BASE_URL=server.base_url`.

Both record every request (method, URL, path, form fields, headers, auth) and answer Messages
and Calls like Twilio's 2010-04-01 API: JSON with `sid`, `status`, `to`, `from`... A call may ask
for answering-machine detection (`MachineDetection`, `AsyncAmd`, `AsyncAmdStatusCallback`,
checked as Twilio checks them); `amd_callback_form` gives the verdict Twilio would post. A POST
to `Calls/<sid>.json` updates the live call (`Twiml`), as `calls(sid).update(...)` does, and is
refused with 21220 once `end_call` ended it. Failures are
queued: `fail_next(...)` for any HTTP status with Twilio's error JSON (and Retry-After), and
`timeout_next()` / `drop_next()` for the network. Twilio's test-credential magic numbers fail as
Twilio documents them (+15005550001 invalid, ...0002 unreachable, ...0003 no permission for the
region, ...0004 unsubscribed/blocked, ...0009 not a mobile), so end-to-end tests can provoke a
provider error by contact number alone. Error messages quote the number, as Twilio's do, so
tests can prove it never reaches our reasons or logs.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import json
import logging
import re
import secrets
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from twilio.http import HttpClient
from twilio.http.response import Response

API = "/2010-04-01"
_ROUTE = re.compile(
    r"^/2010-04-01/Accounts/(?P<account>[^/]+)/(?P<resource>Messages|Calls)"
    r"(?:/(?P<sid>[A-Za-z0-9]+))?\.json$"
)

# Twilio's test-credential numbers and what Twilio answers for them.
MAGIC_SMS: dict[str, tuple[int, str]] = {
    "+15005550001": (21211, "The 'To' number {to} is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number: {to}, is not currently reachable."),
    "+15005550003": (21408, "Permission to send an SMS has not been enabled for {to}."),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient {to}."),
    "+15005550009": (21614, "'To' number {to} is not a valid mobile number."),
}
MAGIC_CALLS: dict[str, tuple[int, str]] = {
    "+15005550001": (21217, "Phone number {to} does not appear to be valid."),
    "+15005550002": (21214, "'To' phone number {to} cannot be reached."),
    "+15005550003": (21215, "Account not authorized to call {to}."),
    "+15005550004": (21216, "Call blocked: {to}."),
}

# Twilio's MachineDetection values, and the call states an update is refused in.
MACHINE_DETECTION = frozenset({"Enable", "DetectMessageEnd"})
ENDED_CALL_STATUSES = frozenset({"completed", "canceled", "failed", "busy", "no-answer"})


def twilio_error(status: int, code: int | None, message: str) -> dict[str, Any]:
    """Twilio's error body."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}" if code else None,
        "status": status,
    }


def _rfc2822(now: dt.datetime) -> str:
    return email.utils.format_datetime(now, usegmt=True)


def _form(data: Any) -> dict[str, str | list[str]]:
    """Form fields as a server sees them: one value -> str, repeated -> list of str."""
    if not data:
        return {}
    if isinstance(data, (str, bytes)):
        encoded = data.decode() if isinstance(data, bytes) else data
    else:
        pairs: list[tuple[str, str]] = []
        for key, value in dict(data).items():
            values = value if isinstance(value, (list, tuple)) else [value]
            pairs.extend((str(key), str(item)) for item in values)
        encoded = urlencode(pairs)
    parsed = parse_qs(encoded, keep_blank_values=True)
    return {key: values[0] if len(values) == 1 else values for key, values in parsed.items()}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    url: str
    path: str
    form: dict[str, str | list[str]]
    headers: dict[str, str]  # lower-case names
    auth: tuple[str, str] | None
    timeout: float | None = None  # what the SDK asked for (FakeTwilio only)


@dataclass(frozen=True)
class _Reply:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Timeout:
    connect: bool = False
    seconds: float = 0.0  # the server stalls this long before answering


@dataclass(frozen=True)
class _Drop:
    pass


_Planned = _Reply | _Timeout | _Drop


class FakeTwilioState:
    """What both fakes share: the records, the queued failures and Twilio's answers."""

    def __init__(
        self,
        account_sid: str | None = None,
        auth_token: str | None = None,
        *,
        magic_numbers: bool = True,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.magic_numbers = magic_numbers
        self.requests: list[RecordedRequest] = []
        self.messages: dict[str, dict[str, Any]] = {}
        self.calls: dict[str, dict[str, Any]] = {}
        self._planned: deque[_Planned] = deque()
        self._lock = threading.Lock()

    # --- queueing failures ---

    def fail_next(
        self,
        status: int = 400,
        *,
        code: int | None = None,
        message: str = "The request failed.",
        retry_after: str | int | None = None,
        body: str | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` requests answer `status` with Twilio's error JSON (or `body`)."""
        headers = {"Content-Type": "application/json"}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        text = body if body is not None else json.dumps(twilio_error(status, code, message))
        with self._lock:
            self._planned.extend(_Reply(status, text, headers) for _ in range(times))

    def timeout_next(self, *, connect: bool = False, stall_seconds: float = 1.0) -> None:
        """The next request times out (FakeTwilio raises; the server stalls `stall_seconds`)."""
        with self._lock:
            self._planned.append(_Timeout(connect=connect, seconds=stall_seconds))

    def drop_next(self) -> None:
        """The next request's connection is dropped without an answer."""
        with self._lock:
            self._planned.append(_Drop())

    # --- looking at what happened ---

    def sent(self, resource: str = "Messages") -> list[RecordedRequest]:
        """Recorded POSTs creating `resource` ("Messages" or "Calls")."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.method == "POST" and r.path.endswith(f"/{resource}.json")
            ]

    def status_callback_form(
        self, sid: str, status: str, **extra: str
    ) -> tuple[str | None, dict[str, str]]:
        """The URL and form Twilio would POST to the status callback of `sid` for `status`."""
        with self._lock:
            message = self.messages.get(sid)
            call = self.calls.get(sid)
        if message is not None:
            form = {
                "MessageSid": sid,
                "SmsSid": sid,
                "AccountSid": message["account_sid"],
                "MessageStatus": status,
                "SmsStatus": status,
                "To": message["to"],
                "From": message["from"] or "",
                "ApiVersion": "2010-04-01",
            }
            if message["messaging_service_sid"]:
                form["MessagingServiceSid"] = message["messaging_service_sid"]
            return message["_status_callback"], {**form, **extra}
        if call is not None:
            form = {
                "CallSid": sid,
                "AccountSid": call["account_sid"],
                "CallStatus": status,
                "To": call["to"],
                "From": call["from"],
                "Direction": "outbound-api",
                "ApiVersion": "2010-04-01",
            }
            return call["_status_callback"], {**form, **extra}
        raise KeyError(sid)

    def amd_callback_form(
        self, sid: str, answered_by: str, **extra: str
    ) -> tuple[str | None, dict[str, str]]:
        """The URL and form of Twilio's asynchronous AMD callback for the call `sid`."""
        with self._lock:
            call = self.calls[sid]
        form = {
            "CallSid": sid,
            "AccountSid": call["account_sid"],
            "AnsweredBy": answered_by,
            "MachineDetectionDuration": "4100",
        }
        return call["_amd_callback"], {**form, **extra}

    def end_call(self, sid: str, status: str = "completed") -> None:
        """The call is over (the far end hung up, or it rang out): updates are refused now."""
        with self._lock:
            self.calls[sid]["status"] = status

    def updates(self, sid: str | None = None) -> list[RecordedRequest]:
        """Recorded POSTs updating a live call (`sid`, or any)."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.method == "POST"
                and re.search(r"/Calls/CA[0-9a-f]+\.json$", r.path)
                and (sid is None or r.path.endswith(f"/Calls/{sid}.json"))
            ]

    # --- answering ---

    def _answer(
        self,
        method: str,
        url: str,
        form: dict[str, str | list[str]],
        headers: dict[str, str],
        auth: tuple[str, str] | None,
        timeout: float | None = None,
    ) -> _Planned:
        path = urlsplit(url).path
        with self._lock:
            self.requests.append(
                RecordedRequest(method.upper(), url, path, form, headers, auth, timeout)
            )
            if self._planned:
                return self._planned.popleft()
        return self._route(method.upper(), path, form, auth)

    def _route(
        self,
        method: str,
        path: str,
        form: dict[str, str | list[str]],
        auth: tuple[str, str] | None,
    ) -> _Reply:
        if self.account_sid and self.auth_token and auth != (self.account_sid, self.auth_token):
            return _json(401, twilio_error(401, 20003, "Authentication Error - invalid username"))
        match = _ROUTE.match(path)
        if match is None or (self.account_sid and match["account"] != self.account_sid):
            return _json(
                404, twilio_error(404, 20404, f"The requested resource {path} was not found")
            )
        account, resource, sid = match["account"], match["resource"], match["sid"]
        store = self.messages if resource == "Messages" else self.calls
        if method == "GET" and sid:
            with self._lock:
                record = store.get(sid)
            if record is None:
                return _json(
                    404, twilio_error(404, 20404, f"The requested resource {path} was not found")
                )
            return _json(200, _public(record))
        if method == "POST" and sid and resource == "Calls":
            return self._update_call(sid, form)
        if method != "POST" or sid:
            return _json(405, twilio_error(405, 20004, "Method not allowed"))
        if resource == "Messages":
            return self._create_message(account, form)
        return self._create_call(account, form)

    def _create_message(self, account: str, form: dict[str, str | list[str]]) -> _Reply:
        to, sender = str(form.get("To", "")), form.get("From")
        service = form.get("MessagingServiceSid")
        if not to:
            return _json(400, twilio_error(400, 21604, "A 'To' phone number is required."))
        if not sender and not service:
            return _json(400, twilio_error(400, 21603, "A 'From' phone number is required."))
        whatsapp = to.startswith("whatsapp:")
        if whatsapp and not str(sender or "").startswith("whatsapp:"):
            return _json(
                400,
                twilio_error(
                    400, 63007, "Twilio could not find a Channel with the specified From address"
                ),
            )
        if form.get("ContentSid") and not str(form["ContentSid"]).startswith("HX"):
            return _json(400, twilio_error(400, 21656, "The ContentSid is invalid."))
        if not form.get("Body") and not form.get("ContentSid"):
            return _json(400, twilio_error(400, 21602, "Message body is required."))
        if self.magic_numbers and to in MAGIC_SMS:
            code, text = MAGIC_SMS[to]
            return _json(400, twilio_error(400, code, text.format(to=to)))
        now = dt.datetime.now(dt.UTC)
        sid = "SM" + secrets.token_hex(16)
        record = {
            "account_sid": account,
            "api_version": "2010-04-01",
            "body": form.get("Body", ""),
            "_content_sid": form.get("ContentSid"),
            "_content_variables": form.get("ContentVariables"),
            "date_created": _rfc2822(now),
            "date_updated": _rfc2822(now),
            "date_sent": None,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            # Twilio answers "accepted" when a messaging service still has to pick the sender.
            "status": "queued" if sender else "accepted",
            "subresource_uris": {"media": f"{API}/Accounts/{account}/Messages/{sid}/Media.json"},
            "to": to,
            "uri": f"{API}/Accounts/{account}/Messages/{sid}.json",
            "_status_callback": form.get("StatusCallback"),
        }
        with self._lock:
            self.messages[sid] = record
        return _json(201, _public(record))

    def _create_call(self, account: str, form: dict[str, str | list[str]]) -> _Reply:
        to, sender = str(form.get("To", "")), form.get("From")
        if not to:
            return _json(400, twilio_error(400, 21201, "No 'To' number is specified."))
        if not sender:
            return _json(400, twilio_error(400, 21213, "No 'From' number is specified."))
        if not (form.get("Url") or form.get("Twiml") or form.get("ApplicationSid")):
            return _json(400, twilio_error(400, 21205, "Url parameter is required."))
        detection = form.get("MachineDetection")
        if detection is not None and detection not in MACHINE_DETECTION:
            return _json(
                400, twilio_error(400, None, f"MachineDetection {detection} is not valid.")
            )
        amd_async = str(form.get("AsyncAmd", "false")).lower()
        if amd_async not in ("true", "false"):
            return _json(400, twilio_error(400, None, f"AsyncAmd {amd_async} is not valid."))
        if amd_async == "true" and detection is None:
            return _json(400, twilio_error(400, None, "AsyncAmd needs MachineDetection."))
        if self.magic_numbers and to in MAGIC_CALLS:
            code, text = MAGIC_CALLS[to]
            return _json(400, twilio_error(400, code, text.format(to=to)))
        now = dt.datetime.now(dt.UTC)
        sid = "CA" + secrets.token_hex(16)
        record = {
            "account_sid": account,
            "annotation": None,
            "answered_by": None,
            "api_version": "2010-04-01",
            "caller_name": None,
            "date_created": _rfc2822(now),
            "date_updated": _rfc2822(now),
            "direction": "outbound-api",
            "duration": None,
            "end_time": None,
            "forwarded_from": None,
            "from": sender,
            "from_formatted": sender,
            "parent_call_sid": None,
            "phone_number_sid": None,
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "start_time": None,
            "status": "queued",
            "to": to,
            "to_formatted": to,
            "uri": f"{API}/Accounts/{account}/Calls/{sid}.json",
            "_status_callback": form.get("StatusCallback"),
            "_machine_detection": detection,
            "_async_amd": amd_async == "true",
            "_amd_callback": form.get("AsyncAmdStatusCallback"),
            "_amd_callback_method": form.get("AsyncAmdStatusCallbackMethod"),
            "_twiml": form.get("Twiml"),
        }
        with self._lock:
            self.calls[sid] = record
        return _json(201, _public(record))

    def _update_call(self, sid: str, form: dict[str, str | list[str]]) -> _Reply:
        with self._lock:
            record = self.calls.get(sid)
            if record is None:
                return _json(
                    404,
                    twilio_error(404, 20404, f"The requested resource Calls/{sid} was not found"),
                )
            if record["status"] in ENDED_CALL_STATUSES:
                return _json(
                    400, twilio_error(400, 21220, "Call is not in-progress. Cannot redirect.")
                )
            if form.get("Twiml") is not None:
                record["_twiml"] = form["Twiml"]
                record["_updated_twiml"] = form["Twiml"]
            if form.get("Status") in ("completed", "canceled"):
                record["status"] = form["Status"]
            record["date_updated"] = _rfc2822(dt.datetime.now(dt.UTC))
            return _json(200, _public(record))


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if not key.startswith("_")}


def _json(status: int, body: dict[str, Any]) -> _Reply:
    return _Reply(status, json.dumps(body), {"Content-Type": "application/json"})


class FakeTwilio(FakeTwilioState, HttpClient):
    """The fake as the SDK's HTTP client: `Client(..., http_client=FakeTwilio())`."""

    def __init__(
        self,
        account_sid: str | None = None,
        auth_token: str | None = None,
        *,
        magic_numbers: bool = True,
    ) -> None:
        FakeTwilioState.__init__(self, account_sid, auth_token, magic_numbers=magic_numbers)
        HttpClient.__init__(self, logger=_null_logger(), is_async=False)

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
        url = uri + ("?" + urlencode(params, doseq=True) if params else "")
        lowered = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
        planned = self._answer(method, url, _form(data), lowered, auth, timeout)
        if isinstance(planned, _Timeout):
            if planned.connect:
                raise requests.ConnectTimeout("fake: connect timed out")
            raise requests.ReadTimeout("fake: read timed out")
        if isinstance(planned, _Drop):
            raise requests.ConnectionError("fake: connection reset by peer")
        return Response(planned.status, planned.body, planned.headers)


class FakeTwilioServer(FakeTwilioState):
    """The fake over HTTP: `with FakeTwilioServer() as server: ... server.base_url ...`.

    `delay` (seconds) is added before every answer, like Twilio's own latency.
    """

    def __init__(
        self,
        account_sid: str | None = None,
        auth_token: str | None = None,
        *,
        magic_numbers: bool = True,
        delay: float = 0.0,
    ) -> None:
        super().__init__(account_sid, auth_token, magic_numbers=magic_numbers)
        self.delay = delay
        self.connections: set[tuple[str, int]] = set()  # client addresses that connected
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake Twilio server is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeTwilioServer:
        state = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle on, the body waits for the
            # client's delayed ACK, 40 ms on Linux, on every request (Twilio adds no such wait).
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the records are in `state.requests`

            def _handle(self) -> None:
                state.connections.add(self.client_address[:2])
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                headers = {k.lower(): v for k, v in self.headers.items()}
                planned = state._answer(
                    self.command,
                    f"{state.base_url}{self.path}",
                    _form(raw),
                    headers,
                    _basic_auth(headers.get("authorization")),
                )
                if isinstance(planned, _Drop):
                    self.close_connection = True
                    return
                if isinstance(planned, _Timeout):
                    time.sleep(planned.seconds)
                    self.close_connection = True
                    return
                if state.delay:
                    time.sleep(state.delay)
                body = planned.body.encode()
                try:
                    self.send_response(planned.status)
                    for name, value in planned.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        class Server(ThreadingHTTPServer):
            # The dispatcher connects up to 32 at once; socketserver's default backlog of 5
            # refused some of them under load (Twilio's never does).
            request_queue_size = 128

            def handle_error(self, request: Any, client_address: Any) -> None:
                # A client that goes away with a kept-alive connection open (a server process
                # stopping) is not an error of the fake's; anything else still prints.
                if not isinstance(sys.exc_info()[1], ConnectionResetError):
                    super().handle_error(request, client_address)

        server = Server(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeTwilioServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _basic_auth(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None
    return user, password


def _null_logger() -> logging.Logger:
    log = logging.getLogger("tests.fake_twilio")
    log.propagate = False
    if not log.handlers:
        log.addHandler(logging.NullHandler())
    return log
