"""An Alibaba Cloud SMS stand-in at the HTTP boundary, so the real SDK's code path runs in tests.

`FakeAliyunServer` listens on 127.0.0.1 (an ephemeral port, in a thread); point the SDK at it
with `WELFARE_ALIYUN_ENDPOINT=server.endpoint` (plain http). It answers the RPC-style actions the
SDK sends, as Aliyun does:

- `SendSms` (POST /, action in `x-acs-action`, parameters in the query): HTTP 200 with Code "OK",
  Message, BizId and RequestId; or HTTP 200 with an error Code (isv.*); an unknown sign name or
  template, a missing template variable or a number that is not a mainland mobile answer the
  codes Aliyun answers for them.
- `QuerySendDetails`: the SMS's report (`SmsSendDetailDTOs.SmsSendDetailDTO[]`, SendStatus 1
  waiting, 2 failed with ErrCode, 3 delivered), for the 11-digit PhoneNumber and SendDate
  (yyyyMMdd, Beijing time) Aliyun requires; `report(biz_id, ...)` is what the carrier says.

Every request is checked as Aliyun checks it: the ACS3-HMAC-SHA256 `Authorization` (AccessKeyId,
signed headers, the canonical request, the payload hash), the API version, a nonce never seen
before. A wrong key id answers 404 InvalidAccessKeyId.NotFound, a wrong signature 400
SignatureDoesNotMatch, a reused nonce 400 SignatureNonceUsed. Failures can be queued with
`fail_next(code, status=...)` (Aliyun's error JSON; its Message quotes the number, so tests can
prove it never reaches our reasons), `stall_next()` and `drop_next()` for the network.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit
from zoneinfo import ZoneInfo

VERSION = "2017-05-25"
BEIJING = ZoneInfo("Asia/Shanghai")
_AUTH = re.compile(
    r"^ACS3-HMAC-SHA256 Credential=(?P<key>[^,]+),SignedHeaders=(?P<signed>[^,]+),"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)
_MAINLAND_MOBILE = re.compile(r"^(?:86)?1\d{10}$")
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


@dataclass(frozen=True)
class RecordedRequest:
    action: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names


@dataclass
class SentSms:
    biz_id: str
    phone: str
    sign_name: str
    template_code: str
    params: dict[str, str]
    out_id: str | None
    send_date: str  # yyyyMMdd, Beijing time
    send_status: int = 1
    err_code: str = ""


@dataclass(frozen=True)
class _Planned:
    code: str | None = None
    status: int = 200
    retry_after_ms: int | None = None
    stall_seconds: float = 0.0
    drop: bool = False
    body: str | None = None


def canonical_query(query: dict[str, str]) -> str:
    return "&".join(
        f"{key}={quote(query[key], safe='~')}" for key in sorted(query) if query[key] is not None
    )


def expected_signature(
    secret: str, method: str, path: str, query: dict[str, str], headers: dict[str, str], signed: str
) -> str:
    """The ACS3-HMAC-SHA256 signature Aliyun computes for the request."""
    names = signed.split(";")
    canonical_headers = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in names)
    canonical = "\n".join(
        [
            method,
            path or "/",
            canonical_query(query),
            canonical_headers,
            signed,
            headers.get("x-acs-content-sha256", ""),
        ]
    )
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


class FakeAliyunServer:
    """Use as a context manager; `endpoint` is the value for WELFARE_ALIYUN_ENDPOINT.

    `sign_names`: the approved sign names (None: any). `templates`: approved TemplateCode ->
    its text with `${variable}` placeholders (None: any code, any parameters)."""

    def __init__(
        self,
        access_key_id: str,
        access_key_secret: str,
        *,
        sign_names: set[str] | None = None,
        templates: dict[str, str] | None = None,
    ) -> None:
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.sign_names = sign_names
        self.templates = templates
        self.requests: list[RecordedRequest] = []
        self.messages: dict[str, SentSms] = {}
        self._nonces: set[str] = set()
        self._planned: deque[_Planned] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> FakeAliyunServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- planning ---

    def fail_next(
        self,
        code: str,
        *,
        status: int = 200,
        retry_after_ms: int | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` requests answer Aliyun's error `code` with HTTP `status`."""
        with self._lock:
            self._planned.extend(
                _Planned(code=code, status=status, retry_after_ms=retry_after_ms)
                for _ in range(times)
            )

    def garble_next(self, body: str = "<html>gateway</html>") -> None:
        """The next request answers HTTP 200 with `body`, which is not Aliyun's JSON."""
        with self._lock:
            self._planned.append(_Planned(body=body))

    def stall_next(self, seconds: float) -> None:
        with self._lock:
            self._planned.append(_Planned(stall_seconds=seconds))

    def drop_next(self) -> None:
        with self._lock:
            self._planned.append(_Planned(drop=True))

    def report(self, biz_id: str, send_status: int, err_code: str = "") -> None:
        """What the carrier reported for the SMS `biz_id` (3 delivered, 2 failed, 1 waiting)."""
        with self._lock:
            sms = self.messages[biz_id]
            sms.send_status = send_status
            sms.err_code = err_code or ("DELIVERED" if send_status == 3 else "")

    # --- looking ---

    def sent(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.action == "SendSms"]

    def queries(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.action == "QuerySendDetails"]

    # --- answering ---

    def _answer(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]] | _Planned:
        action = headers.get("x-acs-action", "")
        with self._lock:
            self.requests.append(RecordedRequest(action, dict(query), dict(headers)))
            planned = self._planned.popleft() if self._planned else None
        if planned is not None and (planned.drop or planned.stall_seconds or planned.body):
            return planned
        refusal = self._check_signature(method, path, query, headers, body)
        if refusal is not None:
            return refusal
        if planned is not None and planned.code is not None:
            extra = {}
            if planned.retry_after_ms is not None:
                extra["x-acs-retry-after"] = str(planned.retry_after_ms)
            phone = query.get("PhoneNumbers") or query.get("PhoneNumber") or ""
            return planned.status, self._error(planned.code, f"refused for {phone}"), extra
        if headers.get("x-acs-version") != VERSION:
            return (
                400,
                self._error("InvalidVersion", "Specified parameter Version is not valid."),
                {},
            )
        if action == "SendSms":
            return self._send_sms(query)
        if action == "QuerySendDetails":
            return self._query(query)
        return (
            404,
            self._error("InvalidAction.NotFound", f"Specified api {action} is not found"),
            {},
        )

    def _check_signature(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        match = _AUTH.match(headers.get("authorization", ""))
        if match is None:
            return 400, self._error("MissingAuthorization", "Authorization is mandatory."), {}
        if match["key"] != self.access_key_id:
            return (
                404,
                self._error("InvalidAccessKeyId.NotFound", "Specified access key is not found."),
                {},
            )
        if headers.get("x-acs-content-sha256") != hashlib.sha256(body).hexdigest():
            return 400, self._error("ContentSHA256NotMatch", "The payload hash does not match."), {}
        signed = match["signed"]
        if not {"host", "x-acs-action", "x-acs-date", "x-acs-signature-nonce"} <= set(
            signed.split(";")
        ):
            return (
                400,
                self._error("IncompleteSignature", "The request signature is incomplete."),
                {},
            )
        signature = expected_signature(self.access_key_secret, method, path, query, headers, signed)
        if not hmac.compare_digest(signature, match["signature"]):
            return (
                400,
                self._error("SignatureDoesNotMatch", "Specified signature is not matched."),
                {},
            )
        nonce = headers["x-acs-signature-nonce"]
        with self._lock:
            if nonce in self._nonces:
                return (
                    400,
                    self._error("SignatureNonceUsed", "Specified signature nonce was used."),
                    {},
                )
            self._nonces.add(nonce)
        return None

    def _send_sms(self, query: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        missing = [k for k in ("PhoneNumbers", "SignName", "TemplateCode") if not query.get(k)]
        if missing:
            return 400, self._error(f"Missing{missing[0]}", f"{missing[0]} is mandatory."), {}
        phone = query["PhoneNumbers"]
        if not _MAINLAND_MOBILE.match(phone):
            return 200, self._error("isv.MOBILE_NUMBER_ILLEGAL", f"invalid mobile {phone}"), {}
        if self.sign_names is not None and query["SignName"] not in self.sign_names:
            return 200, self._error("isv.SMS_SIGNATURE_ILLEGAL", "sign name not approved"), {}
        try:
            params = json.loads(query.get("TemplateParam") or "{}")
        except ValueError:
            return 200, self._error("isv.INVALID_JSON_PARAM", "TemplateParam is not JSON"), {}
        if self.templates is not None:
            text = self.templates.get(query["TemplateCode"])
            if text is None:
                return 200, self._error("isv.SMS_TEMPLATE_ILLEGAL", "template not approved"), {}
            if any(name not in params for name in _PLACEHOLDER.findall(text)):
                return 200, self._error("isv.TEMPLATE_MISSING_PARAMETERS", "missing variable"), {}
        biz_id = f"{secrets.randbelow(10**18):018d}^0"
        with self._lock:
            self.messages[biz_id] = SentSms(
                biz_id=biz_id,
                phone=phone,
                sign_name=query["SignName"],
                template_code=query["TemplateCode"],
                params=params,
                out_id=query.get("OutId"),
                send_date=dt.datetime.now(BEIJING).strftime("%Y%m%d"),
            )
        return 200, {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": _request_id()}, {}

    def _query(self, query: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        for required in ("PhoneNumber", "SendDate", "PageSize", "CurrentPage"):
            if not query.get(required):
                return 400, self._error(f"Missing{required}", f"{required} is mandatory."), {}
        if not re.fullmatch(r"1\d{10}", query["PhoneNumber"]):
            return 200, self._error("isv.MOBILE_NUMBER_ILLEGAL", "invalid mobile"), {}
        with self._lock:
            found = [
                sms
                for sms in self.messages.values()
                if sms.phone[-11:] == query["PhoneNumber"]
                and sms.send_date == query["SendDate"]
                and query.get("BizId") in (None, "", sms.biz_id)
            ]
            details = [
                {
                    "PhoneNum": sms.phone[-11:],
                    "SendStatus": sms.send_status,
                    "ErrCode": sms.err_code,
                    "TemplateCode": sms.template_code,
                    "Content": f"template {sms.template_code}",
                    "SendDate": sms.send_date,
                    "ReceiveDate": sms.send_date if sms.send_status != 1 else "",
                    "OutId": sms.out_id or "",
                }
                for sms in found
            ]
        return (
            200,
            {
                "Code": "OK",
                "Message": "OK",
                "RequestId": _request_id(),
                "TotalCount": len(details),
                "SmsSendDetailDTOs": {"SmsSendDetailDTO": details},
            },
            {},
        )

    @staticmethod
    def _error(code: str, message: str) -> dict[str, Any]:
        return {
            "RequestId": _request_id(),
            "HostId": "dysmsapi.aliyuncs.com",
            "Code": code,
            "Message": message,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={code}",
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                headers = {k.lower(): v for k, v in self.headers.items()}
                answer = fake._answer("POST", parts.path, query, headers, body)
                if isinstance(answer, _Planned):
                    if answer.drop:
                        self.close_connection = True
                        self.connection.close()
                        return
                    time.sleep(answer.stall_seconds)
                    raw = (answer.body or json.dumps({"Code": "OK", "BizId": "late^0"})).encode()
                    self._write(200, raw, {})
                    return
                status, payload, extra = answer
                self._write(status, json.dumps(payload).encode(), extra)

            def _write(self, status: int, data: bytes, extra: dict[str, str]) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json;charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a stall test)

        return Handler


def _request_id() -> str:
    return secrets.token_hex(16).upper()
