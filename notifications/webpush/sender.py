"""`WebPushSender`: a `Notice` to the browser's push service, encrypted for that browser alone.

The payload is JSON the service worker (api/static/sw.js) shows: title, body, the page to open,
the picture to fetch (a path behind sign-in) and a tag. It says no more than the SMS would.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

import requests
from pywebpush import WebPushException, webpush

from notifications.channels import Accepted, ChannelError, Notice, Outgoing
from welfare.channels import ChannelKind
from welfare.settings import Settings

# What a push service's answer means for the row: the subscription is gone (remove it, SMS
# instead), the request can never succeed (SMS instead), or try again.
GONE = {404: "the phone's push subscription has expired", 410: "the phone unsubscribed"}
REFUSED = {
    400: "the push service refused the request",
    401: "the push service refused our VAPID signature",
    403: "the push service refused our VAPID key for this phone",
    413: "the push payload is too large",
}


def vapid_subject(settings: Settings) -> str:
    """Who runs the service, as push services want it: a mailto or an https URL."""
    if settings.vapid_subject:
        return settings.vapid_subject
    if settings.public_base_url.startswith("https://"):
        return settings.public_base_url
    host = urlsplit(settings.public_base_url).hostname or "localhost"
    return f"mailto:push@{host}"


class WebPushSender:
    name = "webpush"

    def __init__(
        self,
        private_key: str | Callable[[], str],
        subject: str,
        *,
        ttl_seconds: int = 900,
        timeout: float = 10.0,
        http: requests.Session | None = None,
    ) -> None:
        # A callable is asked once, at the first push: the key lives in the database, which a
        # process may not reach yet when it starts (its /readyz says so; the start must not fail).
        self._private_key = private_key
        self._key_lock = threading.Lock()
        self._subject = subject
        self._ttl = ttl_seconds
        self._timeout = timeout
        self._http = http or requests.Session()

    def rate_key(self, kind: ChannelKind) -> str:
        return self.name

    def _vapid_key(self) -> str:
        with self._key_lock:
            if callable(self._private_key):
                self._private_key = self._private_key()
            return self._private_key

    def send(self, outgoing: Outgoing) -> Accepted:
        notice = outgoing.content
        if not isinstance(notice, Notice):
            raise ChannelError("a push carries a notice only", permanent=True)
        payload = {
            "title": notice.title,
            "body": notice.body,
            "url": notice.url,
            "image": notice.image,
            "tag": notice.tag,
        }
        try:
            response = webpush(
                subscription_info={
                    "endpoint": notice.target.endpoint,
                    "keys": {"p256dh": notice.target.p256dh, "auth": notice.target.auth},
                },
                data=json.dumps(payload, ensure_ascii=False),
                vapid_private_key=self._vapid_key(),
                vapid_claims={"sub": self._subject},  # a new dict: pywebpush adds aud and exp
                ttl=self._ttl,
                timeout=self._timeout,
                headers={"Urgency": "high", "Topic": _topic(notice.tag)},
                requests_session=self._http,
            )
        except WebPushException as exc:
            raise _error(exc) from None
        except requests.RequestException:
            raise ChannelError("the push service could not be reached", code="network") from None
        assert isinstance(response, requests.Response)
        location = response.headers.get("Location", "")
        provider_id = location.rstrip("/").rsplit("/", 1)[-1][:64] or uuid.uuid4().hex
        return Accepted(provider_id=provider_id, status="accepted")


def _topic(tag: str) -> str:
    """RFC 8030's Topic (at most 32 base64url characters): a newer push with the same topic
    replaces one the phone has not fetched yet."""
    return tag.replace("-", "")[:32] or "welfare"


def _error(exc: WebPushException) -> ChannelError:
    response = exc.response
    status = response.status_code if response is not None else None
    if status in GONE:
        return ChannelError(GONE[status], code=str(status), permanent=True)
    if status in REFUSED:
        return ChannelError(REFUSED[status], code=str(status), permanent=True)
    if status is None:
        # pywebpush refused the subscription itself (a malformed key): no request was made.
        return ChannelError("the phone's push subscription cannot be used", permanent=True)
    retry_after = None
    if response is not None and (response.headers.get("Retry-After") or "").isdigit():
        retry_after = float(response.headers["Retry-After"])
    return ChannelError(
        f"the push service answered {status}", code=str(status), retry_after=retry_after
    )
